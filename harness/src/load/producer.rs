//! One open-loop producer: sends on the schedule, keeps up to `max_in_flight` sends outstanding,
//! and records invoke / ok / fail / info for every message.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::watch;

use super::envelope::{Envelope, MsgId};
use super::schedule::{KeyChooser, Schedule};
use super::Counters;
use crate::driver::{AckFuture, Driver, Publisher, SendError};
use crate::history::{now_ns, Event, Position, Recorder};
use crate::workload::Workload;

pub struct ProducerTask {
    /// Identity in message ids: never reused, so a replacement's sequences cannot collide.
    pub index: u32,
    /// Which share of the offered rate this producer sends.
    pub slot: u32,
    pub run_tag: u64,
    pub seed: u64,
    pub start_ns: u64,
    /// Intended send times before this are skipped (a replacement starts mid-run).
    pub resume_ns: u64,
    pub recorder: Recorder,
    pub counters: Arc<Counters>,
    pub stop: watch::Receiver<bool>,
    /// To replace a publisher whose connection died (see `Publisher::is_broken`).
    pub driver: Arc<dyn Driver>,
}

/// How often a producer with a dead connection tries to reconnect.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

type Outcome = (MsgId, u64, Result<Position, SendError>);

/// One send awaiting its acknowledgement. It names its message, so that sends still unresolved
/// when the producer stops waiting can be recorded as indeterminate.
struct InFlight {
    id: MsgId,
    intended: u64,
    ack: AckFuture,
}

impl Future for InFlight {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let (id, intended) = (self.id, self.intended);
        self.ack.poll_unpin(cx).map(|r| (id, intended, r))
    }
}

impl ProducerTask {
    pub async fn run(mut self, w: &Workload, mut publisher: Box<dyn Publisher>) {
        let load = &w.load;
        let mut schedule = Schedule::new(
            load.rate,
            load.producers,
            self.slot,
            self.start_ns,
            load.duration.as_nanos(),
        );
        schedule.skip_until(self.resume_ns);
        let mut keys = KeyChooser::new(
            load.keys.count,
            load.keys.distribution,
            self.seed ^ (self.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let size = load.message_size.0 as usize;
        let mut body = Vec::with_capacity(size);
        let max_in_flight = load.max_in_flight as usize;
        let send_timeout = w.run.send_timeout.0;
        let mut in_flight = FuturesUnordered::new();
        let mut last_reconnect = std::time::Instant::now();
        // However the client behaves, stop waiting for room in the window once the schedule is
        // over and a send could have timed out: a run never hangs.
        let schedule_left = Duration::from_nanos(
            (self.start_ns + load.duration.as_nanos()).saturating_sub(now_ns()),
        );
        let give_up = tokio::time::Instant::now() + schedule_left + send_timeout;
        // One timer for the whole run rather than one per wait: at `rate: max` the window is
        // always full and this loop runs for every acknowledgement.
        let give_up_timer = tokio::time::sleep_until(give_up);
        tokio::pin!(give_up_timer);

        'send: loop {
            while in_flight.len() >= max_in_flight {
                tokio::select! {
                    Some(done) = in_flight.next() => {
                        self.complete(done);
                        // Acknowledgements come in batches: take the rest of the batch without
                        // another round of select (and its wake-up registrations).
                        while let Some(Some(done)) = in_flight.next().now_or_never() {
                            self.complete(done);
                        }
                    }
                    _ = self.stop.changed() => {}
                    _ = &mut give_up_timer => break 'send,
                }
                if *self.stop.borrow() {
                    break 'send;
                }
            }
            let mut now = now_ns();
            let Some(intended) = schedule.next(now) else {
                break;
            };
            // Wait for the intended time, finishing acknowledgements meanwhile. Sub-millisecond
            // gaps are not slept: the timer is coarser than that, and the intended time is what
            // latency is measured from anyway.
            while intended > now + 500_000 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_nanos(intended - now)) => {}
                    Some(done) = in_flight.next(), if !in_flight.is_empty() => self.complete(done),
                    _ = self.stop.changed() => {}
                }
                if *self.stop.borrow() {
                    break 'send;
                }
                now = now_ns();
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
            let t = now;
            Envelope {
                run_tag: self.run_tag,
                id,
                intended_ns: intended,
                sent_ns: t,
            }
            .encode_body(&mut body, size);
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
                    Err(SendError::Failed("not connected to the broker".into())),
                ));
                continue;
            }
            match publisher.submit(id, &body).await {
                // No timer per send: each client times its sends out itself (configured from
                // send_timeout); one deadline below bounds the wait at the end.
                Ok(ack) => in_flight.push(InFlight { id, intended, ack }),
                Err(e) => self.complete((id, intended, Err(e))),
            }
        }
        let deadline = (tokio::time::Instant::now() + send_timeout).max(give_up);
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, in_flight.next()).await {
            self.complete(done);
        }
        // Whatever is still unresolved may or may not have been stored.
        for send in in_flight.iter() {
            self.complete((
                send.id,
                send.intended,
                Err(SendError::Indeterminate(
                    "no acknowledgement before the producer stopped waiting".into(),
                )),
            ));
        }
        drop(in_flight);
        publisher.close().await;
    }

    fn complete(&self, (id, intended, outcome): Outcome) {
        let t = now_ns();
        let c = &self.counters;
        let event = match outcome {
            Ok(pos) => {
                c.acked.fetch_add(1, Ordering::Relaxed);
                Event::SendOk {
                    t,
                    id,
                    intended,
                    pos,
                }
            }
            Err(SendError::Failed(error)) => {
                c.failed.fetch_add(1, Ordering::Relaxed);
                Event::SendFail { t, id, error }
            }
            Err(SendError::Indeterminate(error)) => {
                c.indeterminate.fetch_add(1, Ordering::Relaxed);
                Event::SendInfo { t, id, error }
            }
        };
        self.recorder.record(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{AckFuture, Consumer};
    use crate::history::FrameReader;
    use async_trait::async_trait;
    use futures::FutureExt;

    /// A client that accepts sends and never acknowledges them (a broker gone silent).
    struct Silent;

    #[async_trait]
    impl Publisher for Silent {
        async fn submit(&mut self, _id: MsgId, _body: &[u8]) -> Result<AckFuture, SendError> {
            Ok(futures::future::pending().boxed())
        }
    }

    #[async_trait]
    impl Driver for Silent {
        async fn setup(&self) -> anyhow::Result<()> {
            Ok(())
        }
        async fn publisher(&self, _: u32) -> anyhow::Result<Box<dyn Publisher>> {
            Ok(Box::new(Silent))
        }
        async fn consumer(&self, _: u32) -> anyhow::Result<Box<dyn Consumer>> {
            anyhow::bail!("not used")
        }
        async fn teardown(&self) -> anyhow::Result<()> {
            Ok(())
        }
        async fn product(&self) -> String {
            String::new()
        }
    }

    #[tokio::test]
    async fn unacknowledged_sends_end_as_indeterminate_without_hanging() {
        let yaml = "name: t\nbrokers: [kafka]\nload: { rate: 100/s, duration: 200ms, max_in_flight: 5 }\nrun: { send_timeout: 100ms }\n";
        let w = crate::workload::parse(std::path::Path::new("t.yaml"), yaml).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.bin");
        let (recorder, writer) = crate::history::create(&path).unwrap();
        let counters = Arc::new(Counters::default());
        let (_stop_tx, stop) = watch::channel(false);
        let start_ns = now_ns();
        let task = ProducerTask {
            index: 0,
            slot: 0,
            run_tag: 1,
            seed: 1,
            start_ns,
            resume_ns: start_ns,
            recorder,
            counters: counters.clone(),
            stop,
            driver: Arc::new(Silent),
        };
        let started = std::time::Instant::now();
        task.run(&w, Box::new(Silent)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        writer.finish().unwrap();
        let events: Vec<Event> = FrameReader::new(std::fs::File::open(&path).unwrap())
            .map(|e| e.unwrap())
            .collect();
        let invoked = events
            .iter()
            .filter(|e| matches!(e, Event::SendInvoke { .. }))
            .count();
        let info = events
            .iter()
            .filter(|e| matches!(e, Event::SendInfo { .. }))
            .count();
        // The window of 5 filled up and stalled the schedule; every send made is accounted for.
        assert_eq!(invoked, 5);
        assert_eq!(info, 5);
        assert_eq!(counters.indeterminate.load(Ordering::Relaxed), 5);
    }
}
