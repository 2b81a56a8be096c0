//! One open-loop producer: sends on the schedule, keeps up to `max_in_flight` sends outstanding,
//! and records invoke / ok / fail / info for every message.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use slab::Slab;
use tokio::sync::watch;

use super::schedule::{KeyChooser, Schedule};
use super::window::SendWindow;
use super::Counters;
use crate::driver::{Driver, Publisher, SendError, SendOutcome};
use crate::history::{now_ns, ClientRole, Event, Position, Recorder};
use crate::message::{sub_seed, Envelope, MsgId, Stream};
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
/// How often a producer waiting for room in its window checks the stall watchdog.
const WATCHDOG_TICK: Duration = Duration::from_secs(1);

type Outcome = (MsgId, u64, Result<Position, SendError>);

/// Sends awaiting their acknowledgement, by the token their publisher reports them with. They
/// are kept here, not in the publisher, so that sends still unresolved when the producer stops
/// waiting (or replaces a dead client) can be recorded as indeterminate.
type InFlight = Slab<(MsgId, u64)>;

/// One producer's outcomes so far: acknowledged, and failed or without an outcome.
#[derive(Default)]
struct Tally {
    acked: u64,
    failed: u64,
}

impl ProducerTask {
    pub async fn run(mut self, w: &Workload, mut publisher: Box<dyn Publisher>) {
        self.connected(&*publisher);
        let load = &w.load;
        // The runner refuses a stepped workload: its steps are run one by one, each at one rate.
        let Some(rate) = load.rate.single() else {
            return;
        };
        let mut schedule = Schedule::new(
            rate,
            load.producers,
            self.slot,
            self.start_ns,
            load.duration.as_nanos(),
        );
        schedule.skip_until(self.resume_ns);
        let mut keys = KeyChooser::new(
            load.keys.count,
            load.keys.distribution,
            sub_seed(self.seed, Stream::Keys, self.index as u64),
        );
        let size = load.message_size.0 as usize;
        let mut body = Vec::with_capacity(size);
        let mut window = SendWindow::new(
            load.window(self.driver.max_rate_window()),
            self.driver.auto_window_start(),
        );
        // This producer's own totals, for an `auto` window to learn from.
        let mut tally = Tally::default();
        let send_timeout = w.run.send_timeout.0;
        let mut in_flight = InFlight::with_capacity(window.size());
        let mut outcomes = Vec::with_capacity(window.size());
        let mut last_reconnect = std::time::Instant::now();
        // The stall watchdog: sending, yet no send acknowledged for this long (no outcome at
        // all, or only failures and timeouts), means a wedged client, which is replaced like one
        // whose connection died. Its clock runs from the first send after the last success.
        let stall_timeout = w.run.stall_timeout.0;
        let stall_reason = format!(
            "stall watchdog: no send acknowledged in {}",
            w.run.stall_timeout
        );
        let mut trying_since: Option<std::time::Instant> = None;
        let stalled = |since: &Option<std::time::Instant>| {
            since.is_some_and(|t| t.elapsed() >= stall_timeout)
        };
        let mut watchdog_tick = tokio::time::interval(WATCHDOG_TICK);
        watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            while in_flight.len() >= window.size() {
                window.full();
                tokio::select! {
                    _ = publisher.acks(&mut outcomes) => {
                        if self.complete_all(&mut in_flight, &mut outcomes, &mut tally) {
                            trying_since = None;
                        }
                        self.learn(&mut window, &tally);
                    }
                    _ = self.stop.changed() => {}
                    _ = &mut give_up_timer => break 'send,
                    _ = watchdog_tick.tick() => {}
                }
                if *self.stop.borrow() {
                    break 'send;
                }
                if stalled(&trying_since) {
                    publisher = self
                        .replace(
                            publisher,
                            &mut in_flight,
                            &mut outcomes,
                            &stall_reason,
                            &mut tally,
                        )
                        .await;
                    trying_since = Some(std::time::Instant::now());
                    last_reconnect = std::time::Instant::now();
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
                    _ = publisher.acks(&mut outcomes), if !in_flight.is_empty() => {
                        if self.complete_all(&mut in_flight, &mut outcomes, &mut tally) {
                            trying_since = None;
                        }
                        self.learn(&mut window, &tally);
                    }
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
            trying_since.get_or_insert_with(std::time::Instant::now);
            let stuck = stalled(&trying_since);
            if (publisher.is_broken() || stuck) && last_reconnect.elapsed() >= RECONNECT_EVERY {
                last_reconnect = std::time::Instant::now();
                let why = if stuck {
                    stall_reason.as_str()
                } else {
                    "the client lost its connection"
                };
                publisher = self
                    .replace(publisher, &mut in_flight, &mut outcomes, why, &mut tally)
                    .await;
                trying_since = Some(std::time::Instant::now());
            }
            if publisher.is_broken() {
                self.complete(
                    (
                        id,
                        intended,
                        Err(SendError::Failed("not connected to the broker".into())),
                    ),
                    &mut tally,
                );
                continue;
            }
            let token = in_flight.insert((id, intended));
            // No timer per send: each client times its sends out itself (configured from
            // send_timeout); one deadline below bounds the wait at the end.
            if let Err(e) = publisher.submit(token, id, &body).await {
                in_flight.remove(token);
                self.complete((id, intended, Err(e)), &mut tally);
            }
        }
        let deadline = (tokio::time::Instant::now() + send_timeout).max(give_up);
        while !in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, publisher.acks(&mut outcomes)).await {
                Ok(()) => {
                    self.complete_all(&mut in_flight, &mut outcomes, &mut tally);
                }
                Err(_) => break,
            }
        }
        self.abandon(
            &mut in_flight,
            "no acknowledgement before the producer stopped waiting",
            &mut tally,
        );
        publisher.close().await;
    }

    /// A fresh client for `old`, whose sends still unresolved are given up as indeterminate (they
    /// may have been stored); recorded as a reconnect. Keeps `old` if no new client can be made.
    async fn replace(
        &self,
        mut old: Box<dyn Publisher>,
        in_flight: &mut InFlight,
        outcomes: &mut Vec<SendOutcome>,
        why: &str,
        tally: &mut Tally,
    ) -> Box<dyn Publisher> {
        let fresh = match self.driver.publisher(self.index).await {
            Ok(p) => p,
            Err(_) => return old,
        };
        if old.acks(outcomes).now_or_never().is_some() {
            self.complete_all(in_flight, outcomes, tally);
        }
        self.abandon(
            in_flight,
            &format!("the client was replaced ({why})"),
            tally,
        );
        self.recorder.record(Event::Reconnect {
            t: now_ns(),
            role: ClientRole::Producer,
            index: self.index,
            reason: why.to_string(),
        });
        self.connected(&*fresh);
        fresh
    }

    /// Which node `publisher` went to, where the driver can say.
    fn connected(&self, publisher: &dyn Publisher) {
        if let Some(endpoint) = publisher.endpoint() {
            self.recorder.record(Event::Connected {
                t: now_ns(),
                role: ClientRole::Producer,
                index: self.index,
                endpoint,
            });
        }
    }

    /// Record the outcomes the publisher reported, emptying `outcomes` for the next batch;
    /// true if any send was acknowledged.
    fn complete_all(
        &self,
        in_flight: &mut InFlight,
        outcomes: &mut Vec<SendOutcome>,
        tally: &mut Tally,
    ) -> bool {
        let mut acked = false;
        for (token, outcome) in outcomes.drain(..) {
            // A token not in flight belongs to no send of ours: nothing to record.
            if let Some((id, intended)) = in_flight.try_remove(token) {
                acked |= outcome.is_ok();
                self.complete((id, intended, outcome), tally);
            }
        }
        acked
    }

    /// An `auto` window looks at what this producer's sends achieved; once it settles, the
    /// history says on what.
    fn learn(&self, window: &mut SendWindow, tally: &Tally) {
        if !window.probing() {
            return;
        }
        let t = now_ns();
        if let Some(size) = window.observe(t, tally.acked, tally.failed) {
            self.recorder.record(Event::SendWindow {
                t,
                producer: self.index,
                size: size as u32,
            });
        }
    }

    /// Sends that will get no acknowledgement from us: they may or may not have been stored.
    fn abandon(&self, in_flight: &mut InFlight, why: &str, tally: &mut Tally) {
        for (id, intended) in in_flight.drain() {
            self.complete(
                (id, intended, Err(SendError::Indeterminate(why.into()))),
                tally,
            );
        }
    }

    fn complete(&self, (id, intended, outcome): Outcome, tally: &mut Tally) {
        let t = now_ns();
        let c = &self.counters;
        if outcome.is_ok() {
            tally.acked += 1;
        } else {
            tally.failed += 1;
        }
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
    use crate::driver::{Consumer, SendToken};
    use crate::history::FrameReader;
    use async_trait::async_trait;

    /// A client that acknowledges its first `acknowledges` sends at once and the rest never,
    /// and loses its connection once it has taken `dies_after` sends.
    struct Scripted {
        acknowledges: usize,
        dies_after: usize,
        submitted: usize,
        ready: Vec<SendOutcome>,
    }

    impl Scripted {
        fn new(acknowledges: usize, dies_after: usize) -> Box<Scripted> {
            Box::new(Scripted {
                acknowledges,
                dies_after,
                submitted: 0,
                ready: Vec::new(),
            })
        }
        /// A broker gone silent.
        fn silent() -> Box<Scripted> {
            Scripted::new(0, usize::MAX)
        }
        fn healthy() -> Box<Scripted> {
            Scripted::new(usize::MAX, usize::MAX)
        }
    }

    #[async_trait]
    impl Publisher for Scripted {
        async fn submit(&mut self, token: SendToken, _: MsgId, _: &[u8]) -> Result<(), SendError> {
            self.submitted += 1;
            if self.submitted <= self.acknowledges {
                self.ready.push((token, Ok(Position::Unknown)));
            }
            Ok(())
        }
        async fn acks(&mut self, out: &mut Vec<SendOutcome>) {
            if self.ready.is_empty() {
                std::future::pending().await
            }
            out.append(&mut self.ready);
        }
        fn is_broken(&self) -> bool {
            self.submitted >= self.dies_after
        }
    }

    /// Hands out healthy clients to replace dead ones.
    struct Replacements;

    #[async_trait]
    impl Driver for Replacements {
        async fn setup(&self) -> anyhow::Result<()> {
            Ok(())
        }
        async fn publisher(&self, _: u32) -> anyhow::Result<Box<dyn Publisher>> {
            Ok(Scripted::healthy())
        }
        async fn consumer(&self, _: u32) -> anyhow::Result<Box<dyn Consumer>> {
            anyhow::bail!("not used")
        }
        async fn final_reader(&self) -> anyhow::Result<Box<dyn Consumer>> {
            anyhow::bail!("not used")
        }
        async fn teardown(&self) -> anyhow::Result<()> {
            Ok(())
        }
        async fn product(&self) -> String {
            String::new()
        }
        async fn list_created(&self, _: &str) -> anyhow::Result<Vec<crate::driver::Resource>> {
            anyhow::bail!("not used")
        }
        async fn delete_created(&self, _: &crate::driver::Resource) -> anyhow::Result<()> {
            anyhow::bail!("not used")
        }
    }

    /// Runs one producer with `publisher` first and `driver` for replacements; returns its
    /// history and counters.
    async fn run_producer(
        yaml: &str,
        driver: Arc<dyn Driver>,
        publisher: Box<dyn Publisher>,
    ) -> (Vec<Event>, Arc<Counters>) {
        let w = crate::workload::parse(std::path::Path::new("t.yaml"), yaml, &[]).unwrap();
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
            driver,
        };
        let started = std::time::Instant::now();
        task.run(&w, publisher).await;
        assert!(started.elapsed() < Duration::from_secs(10));
        writer.finish().unwrap();
        let events = FrameReader::new(std::fs::File::open(&path).unwrap())
            .map(|e| e.unwrap())
            .collect();
        (events, counters)
    }

    #[tokio::test]
    async fn sends_of_a_replaced_client_end_as_indeterminate_and_each_send_has_one_outcome() {
        let yaml = "name: t\nbrokers: [kafka]\nload: { rate: 100/s, duration: 800ms }\n";
        let (events, counters) = run_producer(
            yaml,
            Arc::new(Replacements),
            // Acknowledges 3 of its first 5 sends, then dies.
            Scripted::new(3, 5),
        )
        .await;
        let mut outcomes = std::collections::HashMap::new();
        let mut invoked = 0;
        for e in &events {
            match e {
                Event::SendInvoke { .. } => invoked += 1,
                Event::SendOk { id, .. }
                | Event::SendFail { id, .. }
                | Event::SendInfo { id, .. } => *outcomes.entry(*id).or_insert(0) += 1,
                _ => {}
            }
        }
        assert!(invoked > 40, "only {invoked} sends");
        assert_eq!(outcomes.len(), invoked, "every send has an outcome");
        assert!(outcomes.values().all(|&n| n == 1), "and only one");
        // The two sends the dead client never acknowledged, and nothing else, given up on when
        // the client was replaced (not left to the end, holding places in the window).
        assert_eq!(counters.indeterminate.load(Ordering::Relaxed), 2);
        let given_up = events
            .iter()
            .position(|e| matches!(e, Event::SendInfo { .. }))
            .unwrap();
        let acked_after = events[given_up..]
            .iter()
            .filter(|e| matches!(e, Event::SendOk { .. }))
            .count();
        assert!(acked_after > 0);
        // Sends while it was dead, before the reconnect, failed; the replacement took the rest.
        assert!(counters.failed.load(Ordering::Relaxed) > 0);
        assert!(counters.acked.load(Ordering::Relaxed) > 3);
    }

    #[tokio::test]
    async fn a_client_that_acknowledges_nothing_is_replaced_by_the_stall_watchdog() {
        let yaml = "name: t\nbrokers: [kafka]\nload: { rate: 100/s, duration: 1500ms }\nrun: { stall_timeout: 300ms }\n";
        let (events, counters) =
            run_producer(yaml, Arc::new(Replacements), Scripted::silent()).await;
        let reasons: Vec<&String> = events
            .iter()
            .filter_map(|e| match e {
                Event::Reconnect {
                    role: ClientRole::Producer,
                    reason,
                    ..
                } => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("stall watchdog"), "{reasons:?}");
        // What the silent client held is indeterminate; the replacement's sends are acknowledged.
        assert!(counters.indeterminate.load(Ordering::Relaxed) > 0);
        assert!(counters.acked.load(Ordering::Relaxed) > 50);
    }

    #[tokio::test]
    async fn unacknowledged_sends_end_as_indeterminate_without_hanging() {
        let yaml = "name: t\nbrokers: [kafka]\nload: { rate: 100/s, duration: 200ms, max_in_flight: 5 }\nrun: { send_timeout: 100ms }\n";
        let (events, counters) =
            run_producer(yaml, Arc::new(Replacements), Scripted::silent()).await;
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
