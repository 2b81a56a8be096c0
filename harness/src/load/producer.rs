//! One open-loop producer: sends on the schedule, keeps up to `max_in_flight` sends outstanding,
//! and records invoke / ok / fail / info for every message.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use super::envelope::{Envelope, MsgId};
use super::schedule::{KeyChooser, Schedule};
use super::Counters;
use crate::driver::{Driver, Publisher, SendError};
use crate::history::{now_ns, Event, Position, Recorder};
use crate::workload::Workload;

pub struct ProducerTask {
    pub index: u32,
    pub run_tag: u64,
    pub seed: u64,
    pub start_ns: u64,
    pub recorder: Recorder,
    pub counters: Arc<Counters>,
    pub stop: watch::Receiver<bool>,
    /// To replace a publisher whose connection died (see `Publisher::is_broken`).
    pub driver: Arc<dyn Driver>,
}

/// How often a producer with a dead connection tries to reconnect.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

type Outcome = (
    MsgId,
    u64,
    Result<Result<Position, SendError>, tokio::time::error::Elapsed>,
);

impl ProducerTask {
    pub async fn run(mut self, w: &Workload, mut publisher: Box<dyn Publisher>) {
        let load = &w.load;
        let mut schedule = Schedule::new(
            load.rate,
            load.producers,
            self.index,
            self.start_ns,
            load.duration.as_nanos(),
        );
        let mut keys = KeyChooser::new(
            load.keys.count,
            load.keys.distribution,
            self.seed ^ (self.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let size = load.message_size.0 as usize;
        let max_in_flight = load.max_in_flight as usize;
        let send_timeout = w.run.send_timeout.0;
        let mut in_flight = FuturesUnordered::new();
        let mut last_reconnect = std::time::Instant::now();

        'send: loop {
            while in_flight.len() >= max_in_flight {
                if let Some(done) = in_flight.next().await {
                    self.complete(done);
                }
            }
            let Some(intended) = schedule.next(now_ns()) else {
                break;
            };
            // Wait for the intended time, finishing acknowledgements meanwhile. Sub-millisecond
            // gaps are not slept: the timer is coarser than that, and the intended time is what
            // latency is measured from anyway.
            loop {
                let now = now_ns();
                if intended <= now + 500_000 {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_nanos(intended - now)) => {}
                    Some(done) = in_flight.next(), if !in_flight.is_empty() => self.complete(done),
                    _ = self.stop.changed() => {}
                }
                if *self.stop.borrow() {
                    break 'send;
                }
            }
            if *self.stop.borrow() {
                break;
            }
            let (key, seq) = keys.next_id();
            let id = MsgId {
                producer: self.index,
                key,
                seq,
            };
            let t = now_ns();
            let body = Envelope {
                run_tag: self.run_tag,
                id,
                intended_ns: intended,
                sent_ns: t,
            }
            .encode(size);
            self.recorder.record(Event::SendInvoke { t, id, intended });
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            if publisher.is_broken() && last_reconnect.elapsed() >= RECONNECT_EVERY {
                last_reconnect = std::time::Instant::now();
                if let Ok(p) = self.driver.publisher(self.index).await {
                    publisher = p;
                }
            }
            if publisher.is_broken() {
                self.complete((
                    id,
                    intended,
                    Ok(Err(SendError::Failed("not connected to the broker".into()))),
                ));
                continue;
            }
            match publisher.submit(id, body).await {
                Ok(ack) => in_flight.push(async move {
                    (id, intended, tokio::time::timeout(send_timeout, ack).await)
                }),
                Err(e) => self.complete((id, intended, Ok(Err(e)))),
            }
        }
        while let Some(done) = in_flight.next().await {
            self.complete(done);
        }
        publisher.close().await;
    }

    fn complete(&self, (id, intended, outcome): Outcome) {
        let t = now_ns();
        let c = &self.counters;
        let event = match outcome {
            Ok(Ok(pos)) => {
                c.acked.fetch_add(1, Ordering::Relaxed);
                Event::SendOk {
                    t,
                    id,
                    intended,
                    pos,
                }
            }
            Ok(Err(SendError::Failed(error))) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                Event::SendFail { t, id, error }
            }
            Ok(Err(SendError::Indeterminate(error))) => {
                c.indeterminate.fetch_add(1, Ordering::Relaxed);
                Event::SendInfo { t, id, error }
            }
            Err(_) => {
                c.indeterminate.fetch_add(1, Ordering::Relaxed);
                Event::SendInfo {
                    t,
                    id,
                    error: "no acknowledgement within send_timeout".into(),
                }
            }
        };
        self.recorder.record(event);
    }
}
