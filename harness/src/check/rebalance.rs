//! Rebalances: what a change of the consumer group's membership cost while the load ran.
//!
//! A change is a consumer started mid-run (a scale-out, a crashed consumer's replacement), a
//! consumer asked to leave (a scale-in), or one that died (a crash). A change is under way until
//! a started consumer is ready (for Kafka: the group has given it its partitions) and a leaving
//! one has exited (it committed and left the group). The rebalance is over once no change is
//! under way and every shard that was being consumed (a Kafka partition, a RabbitMQ queue;
//! SQS's one queue) has delivered again after the last of them. Changes that come before it is
//! over belong to it.
//!
//! Its pause is the longest any shard went without a delivery, over the deliveries from the
//! first change until it was over: how long consumption of a shard stopped. It includes the
//! ordinary gap between two deliveries of a shard, so a broker that moves nothing shows about
//! that gap. Repeats and per-key order violations count to a rebalance from its first change
//! until `AFTERMATH_NS` after it was over: a new owner re-reads what its predecessor took and had
//! not acknowledged right when it resumes the shard.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Checker, Facts};
use crate::history::{Event, Phase, Position, WorkerEvent};

/// How long after a rebalance was over its repeats and order violations still count to it: a
/// new owner's re-read of unacknowledged deliveries takes milliseconds here.
const AFTERMATH_NS: u64 = 1_000_000_000;

/// The shard a delivery came from: one number per partition or queue; SQS's one queue is -1.
pub fn shard_of(pos: &Position) -> Option<i64> {
    match pos {
        Position::Offset { shard, .. } => Some(*shard as i64),
        Position::Transient { queue, .. } => Some(*queue as i64),
        Position::Id { .. } => Some(-1),
        Position::Unknown => None,
    }
}

/// One rebalance, as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rebalance {
    /// ns since the Unix epoch: the first change.
    pub t: u64,
    /// The membership changes, in order ("consumer 3 joined", "consumer 1 left").
    pub changes: Vec<String>,
    /// Seconds: the longest any shard went without a delivery during the rebalance. For one
    /// that was not over when the run ended, at least the time from its start to the end.
    pub pause: f64,
    /// Whether it was over before the run ended: every change done, every shard consumed again.
    pub over: bool,
    /// Seconds from its first change until it was over (or until the run ended).
    pub lasted: f64,
    /// Shards that had to deliver again.
    pub shards: u32,
    /// Deliveries of values already delivered, inside the rebalance.
    pub redeliveries: u64,
    /// Per-key order violations among first deliveries, inside the rebalance.
    pub order_violations: u64,
}

/// What changes of the consumer group cost while the load ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct RebalanceSection {
    /// Every rebalance during the load, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rebalances: Vec<Rebalance>,
    /// The longest pause of any rebalance, in seconds (None: no rebalance).
    pub max_rebalance_pause: Option<f64>,
    /// Repeated deliveries inside rebalances.
    pub rebalance_redeliveries: u64,
    /// Per-key order violations (of first deliveries) inside rebalances; they are also counted
    /// in `per_key_order_violations`.
    pub per_key_order_violations_in_rebalance: u64,
}

/// A rebalance still being measured.
struct Open {
    rebalance: Rebalance,
    /// Consumers whose change is under way: started and not yet ready, leaving and not gone.
    under_way: BTreeSet<u32>,
    /// The latest change, or the latest to finish: every shard must deliver after it.
    last_change: u64,
    /// Shards that have not delivered since then.
    waiting: BTreeSet<i64>,
    /// When it was over.
    over: Option<u64>,
}

impl Open {
    /// The change at `t` is made, or `consumer`'s change finished: every shard must deliver
    /// again after this.
    fn restart_wait(&mut self, t: u64, shards: &ShardTimes) {
        self.last_change = t;
        self.waiting = shards.shards().collect();
        self.rebalance.shards = self.rebalance.shards.max(self.waiting.len() as u32);
    }
}

/// Each shard's latest delivery, looked up on every delivery: shards are small numbers
/// (partitions, queues; SQS's one queue is -1), so most sit in a vector, the rest in a map.
#[derive(Default)]
struct ShardTimes {
    /// Index shard + 1; 0 = no delivery yet.
    dense: Vec<u64>,
    sparse: BTreeMap<i64, u64>,
}

const DENSE_SHARDS: i64 = 4096;

impl ShardTimes {
    /// Record a delivery of `shard` at `t`; returns the one before, if any.
    #[inline]
    fn insert(&mut self, shard: i64, t: u64) -> Option<u64> {
        if !(-1..DENSE_SHARDS).contains(&shard) {
            return self.sparse.insert(shard, t);
        }
        let i = (shard + 1) as usize;
        if self.dense.len() <= i {
            self.dense.resize(i + 1, 0);
        }
        let before = std::mem::replace(&mut self.dense[i], t);
        (before != 0).then_some(before)
    }

    /// Every shard that delivered.
    fn shards(&self) -> impl Iterator<Item = i64> + '_ {
        let dense = self.dense.iter().enumerate();
        dense
            .filter(|(_, t)| **t != 0)
            .map(|(i, _)| i as i64 - 1)
            .chain(self.sparse.keys().copied())
    }
}

/// What a consumer's life event is to its group.
enum Change {
    /// A change begins, under way until the consumer is ready (a start) or gone (a leave).
    Begins(&'static str),
    /// A change that is done at once (a crash: the broker finds out in its own time).
    At(&'static str),
    /// The change under way for this consumer finished.
    Done,
    /// A second record of an end already seen.
    Nothing,
}

#[derive(Default)]
pub struct RebalanceChecker {
    load_end: Option<u64>,
    load_started: bool,
    /// The load has started and some consumer delivered: the group had formed, so membership
    /// changes from now on are rebalances, not the group's start.
    formed: bool,
    /// Consumers asked to leave: their exit is part of that change, not another.
    leaving: BTreeSet<u32>,
    /// Consumers that exited or were killed: a second record of their end (a killed worker's
    /// pipe closing) is no change.
    gone: BTreeSet<u32>,
    /// Every shard's latest delivery.
    last_delivery: ShardTimes,
    /// The latest delivery, consumer record or phase (the drain's end): where a rebalance not
    /// over by the end is measured to.
    last_t: u64,
    open: Option<Open>,
    done: Vec<Rebalance>,
}

impl RebalanceChecker {
    fn classify(&mut self, consumer: u32, event: &WorkerEvent) -> Change {
        match event {
            WorkerEvent::Started { .. } => Change::Begins("joined"),
            WorkerEvent::Ready { .. } => Change::Done,
            WorkerEvent::Stopping => {
                self.leaving.insert(consumer);
                Change::Begins("left")
            }
            WorkerEvent::Killed { .. } | WorkerEvent::Exited { .. }
                if !self.gone.insert(consumer) =>
            {
                Change::Nothing
            }
            WorkerEvent::Killed { .. } | WorkerEvent::Exited { .. }
                if self.leaving.contains(&consumer) =>
            {
                Change::Done
            }
            WorkerEvent::Killed { .. } => Change::At("crashed"),
            WorkerEvent::Exited { .. } => Change::At("exited"),
        }
    }

    fn worker(&mut self, t: u64, consumer: u32, event: &WorkerEvent) {
        let change = self.classify(consumer, event);
        let during_load = self.formed && self.load_end.is_none_or(|end| t < end);
        let what = match change {
            Change::Begins(what) | Change::At(what) if during_load => what,
            Change::Done => {
                if let Some(open) = &mut self.open {
                    if open.under_way.remove(&consumer) {
                        open.restart_wait(t, &self.last_delivery);
                    }
                }
                return;
            }
            _ => return,
        };
        if self.open.as_ref().is_none_or(|o| o.over.is_some()) {
            self.close();
            self.open = Some(Open {
                rebalance: Rebalance {
                    t,
                    changes: Vec::new(),
                    pause: 0.0,
                    over: false,
                    lasted: 0.0,
                    shards: 0,
                    redeliveries: 0,
                    order_violations: 0,
                },
                under_way: BTreeSet::new(),
                last_change: t,
                waiting: BTreeSet::new(),
                over: None,
            });
        }
        if let Some(open) = &mut self.open {
            open.rebalance
                .changes
                .push(format!("consumer {consumer} {what}"));
            if matches!(change, Change::Begins(..)) {
                open.under_way.insert(consumer);
            }
            open.restart_wait(t, &self.last_delivery);
        }
    }

    #[inline]
    fn deliver(&mut self, t: u64, shard: i64, facts: &Facts) {
        let previous = self.last_delivery.insert(shard, t);
        self.formed |= self.load_started;
        let Some(open) = &mut self.open else { return };
        if open.over.is_some_and(|o| t > o + AFTERMATH_NS) {
            self.close();
            return;
        }
        if t < open.rebalance.t {
            return;
        }
        if open.over.is_none() {
            let gap = previous.map_or(0, |p| t.saturating_sub(p));
            open.rebalance.pause = open.rebalance.pause.max(gap as f64 / 1e9);
            if t >= open.last_change {
                open.waiting.remove(&shard);
            }
            if open.waiting.is_empty() && open.under_way.is_empty() {
                open.over = Some(t);
                open.rebalance.over = true;
                open.rebalance.lasted = (t - open.rebalance.t) as f64 / 1e9;
            }
        }
        open.rebalance.redeliveries += u64::from(!facts.first_delivery);
        open.rebalance.order_violations += u64::from(facts.order_violation);
    }

    fn close(&mut self) {
        if let Some(mut open) = self.open.take() {
            if open.over.is_none() {
                let lasted = self.last_t.saturating_sub(open.rebalance.t) as f64 / 1e9;
                open.rebalance.pause = open.rebalance.pause.max(lasted);
                open.rebalance.lasted = lasted;
            }
            self.done.push(open.rebalance);
        }
    }
}

impl Checker for RebalanceChecker {
    type Section = RebalanceSection;

    fn observe(&mut self, ev: &Event, facts: &mut Facts) {
        match ev {
            Event::Deliver { t, pos, .. } => {
                self.last_t = self.last_t.max(*t);
                if let Some(shard) = shard_of(pos) {
                    self.deliver(*t, shard, facts);
                }
            }
            Event::Worker { t, consumer, event } => {
                self.last_t = self.last_t.max(*t);
                self.worker(*t, *consumer, event)
            }
            Event::Phase { t, phase } => {
                self.last_t = self.last_t.max(*t);
                match phase {
                    Phase::LoadStart { .. } => self.load_started = true,
                    Phase::LoadEnd => self.load_end = Some(*t),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn finish(mut self) -> RebalanceSection {
        self.close();
        let rebalances = self.done;
        RebalanceSection {
            max_rebalance_pause: rebalances.iter().map(|r| r.pause).max_by(f64::total_cmp),
            rebalance_redeliveries: rebalances.iter().map(|r| r.redeliveries).sum(),
            per_key_order_violations_in_rebalance: rebalances
                .iter()
                .map(|r| r.order_violations)
                .sum(),
            rebalances,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MsgId;

    const S: u64 = 1_000_000_000;

    fn deliver(t: u64, shard: u32) -> Event {
        Event::Deliver {
            t,
            consumer: 0,
            id: MsgId {
                producer: 0,
                key: shard,
                seq: t,
            },
            intended: 0,
            pos: Position::Offset {
                shard: shard as i32,
                offset: t as i64,
            },
            redelivered: false,
            receive_count: 1,
        }
    }

    fn worker(t: u64, consumer: u32, event: WorkerEvent) -> Event {
        Event::Worker { t, consumer, event }
    }

    fn load_start() -> Event {
        Event::Phase {
            t: 0,
            phase: Phase::LoadStart {
                warmup_ns: 0,
                duration_ns: 100 * S,
            },
        }
    }

    /// Feeds `events`; deliveries listed in `repeats` are not first deliveries, those in
    /// `violations` are order violations.
    fn run(events: &[Event], repeats: &[u64], violations: &[u64]) -> RebalanceSection {
        let mut c = RebalanceChecker::default();
        for ev in events {
            let mut facts = Facts {
                first_delivery: !repeats.contains(&ev.time()),
                order_violation: violations.contains(&ev.time()),
            };
            c.observe(ev, &mut facts);
        }
        c.finish()
    }

    fn approx(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn the_pause_is_the_longest_a_shard_went_undelivered_until_the_group_settled() {
        let started = WorkerEvent::Started { pid: 9 };
        let ready = WorkerEvent::Ready { pid: 9 };
        let events = [
            load_start(),
            deliver(S, 0),
            deliver(S + 1, 1),
            worker(2 * S, 2, started.clone()),
            // A second consumer started before the first was ready: the same rebalance.
            worker(2 * S + 100, 3, started),
            worker(2 * S + S / 2, 2, ready.clone()),
            worker(2 * S + S / 2 + 100, 3, ready),
            deliver(3 * S, 0),
            // A repeat and an order violation inside it.
            deliver(4 * S, 0),
            deliver(5 * S, 1),
            // Past the aftermath: no longer the rebalance's.
            deliver(7 * S, 0),
        ];
        let section = run(&events, &[4 * S, 7 * S], &[5 * S, 7 * S]);
        assert_eq!(section.rebalances.len(), 1);
        let r = &section.rebalances[0];
        assert_eq!(r.changes, ["consumer 2 joined", "consumer 3 joined"]);
        assert_eq!(r.shards, 2);
        assert!(r.over);
        // Shard 1: from its delivery at 1 s to the next at 5 s.
        assert!(approx(r.pause, 4.0), "{}", r.pause);
        assert!(approx(r.lasted, 3.0));
        assert_eq!(section.max_rebalance_pause, Some(r.pause));
        assert_eq!(section.rebalance_redeliveries, 1);
        assert_eq!(section.per_key_order_violations_in_rebalance, 1);
    }

    #[test]
    fn a_leave_lasts_until_the_consumer_is_gone_and_the_groups_start_is_no_rebalance() {
        let events = [
            // The group's own start: before any delivery.
            worker(0, 0, WorkerEvent::Started { pid: 1 }),
            load_start(),
            deliver(S, 0),
            worker(2 * S, 1, WorkerEvent::Stopping),
            deliver(2 * S + 5, 0),
            worker(
                3 * S,
                1,
                WorkerEvent::Exited {
                    detail: "exited".into(),
                },
            ),
            deliver(5 * S, 0),
            worker(
                6 * S,
                0,
                WorkerEvent::Killed {
                    signal: "SIGKILL".into(),
                },
            ),
            // The killed worker's pipe closes: the same end, recorded again.
            worker(
                6 * S + 1,
                0,
                WorkerEvent::Exited {
                    detail: "exited".into(),
                },
            ),
            Event::Phase {
                t: 9 * S,
                phase: Phase::DrainEnd,
            },
        ];
        let section = run(&events, &[], &[]);
        let changes: Vec<_> = section.rebalances.iter().map(|r| &r.changes).collect();
        assert_eq!(
            changes,
            [
                &vec!["consumer 1 left".to_string()],
                &vec!["consumer 0 crashed".to_string()]
            ]
        );
        // The shard had to deliver after the leaver was gone (3 s): from 2 s + 5 ns to 5 s.
        assert!(section.rebalances[0].over);
        assert!(approx(section.rebalances[0].pause, 3.0));
        // The crash's shard never delivered again: not over, and lasting at least until the end.
        let crash = &section.rebalances[1];
        assert!(!crash.over);
        assert!(approx(crash.pause, 3.0));
    }

    #[test]
    fn changes_after_the_load_ended_are_the_runs_end_not_a_rebalance() {
        let events = [
            load_start(),
            deliver(S, 0),
            Event::Phase {
                t: 2 * S,
                phase: Phase::LoadEnd,
            },
            worker(3 * S, 0, WorkerEvent::Stopping),
        ];
        let section = run(&events, &[], &[]);
        assert!(section.rebalances.is_empty());
        assert_eq!(section.max_rebalance_pause, None);
    }
}
