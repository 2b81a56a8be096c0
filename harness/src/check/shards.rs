//! Who consumed what: deliveries per shard (a Kafka partition, a RabbitMQ queue) and consumer.
//! It shows how the broker spread the work: which consumer was active on which shard, and how
//! much each one carried.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Checker, Facts};
use crate::history::{Event, Phase, Position, WorkerEvent};

/// Deliveries one consumer received from one shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ShardLoad {
    pub shard: i64,
    pub consumer: u32,
    pub deliveries: u64,
}

/// A stretch of time in which one consumer consumed one shard: deliveries no more than
/// `SPAN_GAP_NS` apart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ShardSpan {
    pub shard: i64,
    pub consumer: u32,
    /// Seconds since the load started: the span's first and last delivery.
    pub from: f64,
    pub to: f64,
}

/// Deliveries of one shard to one consumer further apart than this start a new span: at the
/// lowest rates a workload runs (a few messages per second per shard) a busy shard delivers
/// more often, and a rebalance that moves a shard takes it away for longer.
const SPAN_GAP_NS: u64 = 2_000_000_000;

/// How the broker spread the shards over the consumers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct ShardSection {
    /// Deliveries per shard (Kafka partition, RabbitMQ queue) and consumer: how the broker
    /// spread the work. Empty for a broker with one queue (SQS).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shard_load: Vec<ShardLoad>,
    /// Consumers that were ready and received nothing from any shard: standbys, as a group with
    /// more members than shards keeps them (a Kafka member assigned no partition, a RabbitMQ
    /// single active consumer's waiting peers). Empty for a broker with one queue (SQS).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub idle_consumers: Vec<u32>,
    /// Who consumed which shard when, in the order of shard and consumer: the picture of the
    /// rebalances. Empty for a broker with one queue (SQS).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shard_spans: Vec<ShardSpan>,
}

/// One consumer's deliveries from one shard. The span under way is kept apart from the closed
/// ones so that a delivery touches only the first three fields.
#[derive(Default)]
struct Pair {
    deliveries: u64,
    /// The span under way: its first and latest delivery, ns since the Unix epoch.
    from: u64,
    last: u64,
    closed: Vec<(u64, u64)>,
}

/// Every (shard, consumer) pair's deliveries, looked up on every delivery: shards and consumers
/// are small numbers, so most pairs sit in vectors indexed by both, the rest in a map.
#[derive(Default)]
struct Pairs {
    /// Index [shard + 1][consumer].
    dense: Vec<Vec<Pair>>,
    sparse: BTreeMap<(i64, u32), Pair>,
}

const DENSE_SHARDS: i64 = 4096;
const DENSE_CONSUMERS: u32 = 1024;

impl Pairs {
    #[inline]
    fn get(&mut self, shard: i64, consumer: u32) -> &mut Pair {
        if !(-1..DENSE_SHARDS).contains(&shard) || consumer >= DENSE_CONSUMERS {
            return self.sparse.entry((shard, consumer)).or_default();
        }
        let (s, c) = ((shard + 1) as usize, consumer as usize);
        if self.dense.len() <= s {
            self.dense.resize_with(s + 1, Vec::new);
        }
        let consumers = &mut self.dense[s];
        if consumers.len() <= c {
            consumers.resize_with(c + 1, Pair::default);
        }
        &mut consumers[c]
    }

    /// The pairs that had deliveries, in (shard, consumer) order.
    fn into_map(self) -> BTreeMap<(i64, u32), Pair> {
        let mut map = self.sparse;
        for (s, consumers) in self.dense.into_iter().enumerate() {
            for (c, pair) in consumers.into_iter().enumerate() {
                if pair.deliveries > 0 {
                    map.insert((s as i64 - 1, c as u32), pair);
                }
            }
        }
        map
    }
}

#[derive(Default)]
pub struct ShardChecker {
    pairs: Pairs,
    ready: std::collections::BTreeSet<u32>,
    load_start: u64,
}

impl Checker for ShardChecker {
    type Section = ShardSection;

    fn observe(&mut self, ev: &Event, _: &mut Facts) {
        match ev {
            Event::Deliver {
                t, consumer, pos, ..
            } => {
                let shard = match pos {
                    Position::Offset { shard, .. } => *shard as i64,
                    Position::Transient { queue, .. } => *queue as i64,
                    // One queue (SQS), or no position: nothing to spread.
                    Position::Id { .. } | Position::Unknown => return,
                };
                let pair = self.pairs.get(shard, *consumer);
                if pair.deliveries == 0 {
                    pair.from = *t;
                } else if *t > pair.last + SPAN_GAP_NS {
                    pair.closed.push((pair.from, pair.last));
                    pair.from = *t;
                }
                pair.last = pair.last.max(*t);
                pair.deliveries += 1;
            }
            Event::Phase {
                t,
                phase: Phase::LoadStart { .. },
            } => self.load_start = *t,
            Event::Worker {
                consumer,
                event: WorkerEvent::Ready { .. },
                ..
            } => {
                self.ready.insert(*consumer);
            }
            _ => {}
        }
    }

    fn finish(self) -> ShardSection {
        let pairs = self.pairs.into_map();
        let busy: std::collections::BTreeSet<u32> = pairs.keys().map(|k| k.1).collect();
        let idle_consumers = if busy.is_empty() {
            Vec::new() // no shards seen: nothing was spread
        } else {
            self.ready.difference(&busy).copied().collect()
        };
        let since_start = |t: u64| t.saturating_sub(self.load_start) as f64 / 1e9;
        let mut shard_load = Vec::new();
        let mut shard_spans = Vec::new();
        for ((shard, consumer), pair) in pairs {
            shard_load.push(ShardLoad {
                shard,
                consumer,
                deliveries: pair.deliveries,
            });
            let spans = pair.closed.into_iter().chain([(pair.from, pair.last)]);
            shard_spans.extend(spans.map(|(from, to)| ShardSpan {
                shard,
                consumer,
                from: since_start(from),
                to: since_start(to),
            }));
        }
        ShardSection {
            shard_load,
            idle_consumers,
            shard_spans,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deliver(consumer: u32, pos: Position) -> Event {
        Event::Deliver {
            t: 1,
            consumer,
            id: crate::message::MsgId {
                producer: 0,
                key: 0,
                seq: 0,
            },
            intended: 0,
            pos,
            redelivered: false,
            receive_count: 1,
        }
    }

    #[test]
    fn deliveries_are_counted_per_shard_and_consumer() {
        let mut c = ShardChecker::default();
        let mut f = Facts::default();
        for (consumer, pos) in [
            (0, Position::Transient { queue: 1, tag: 1 }),
            (0, Position::Transient { queue: 1, tag: 2 }),
            (2, Position::Transient { queue: 0, tag: 1 }),
            (
                1,
                Position::Offset {
                    shard: 3,
                    offset: 9,
                },
            ),
            (1, Position::Id { id: "m".into() }),
        ] {
            c.observe(&deliver(consumer, pos), &mut f);
        }
        // Consumers 0 to 3 were ready; 3 received nothing from a shard.
        for consumer in 0..4 {
            let ready = Event::Worker {
                t: 0,
                consumer,
                event: WorkerEvent::Ready { pid: 1 },
            };
            c.observe(&ready, &mut f);
        }
        let load = |shard, consumer, deliveries| ShardLoad {
            shard,
            consumer,
            deliveries,
        };
        let section = c.finish();
        assert_eq!(
            section.shard_load,
            vec![load(0, 2, 1), load(1, 0, 2), load(3, 1, 1)]
        );
        assert_eq!(section.idle_consumers, vec![3]);
    }

    #[test]
    fn a_consumers_deliveries_from_a_shard_form_spans_split_by_long_gaps() {
        let mut c = ShardChecker::default();
        let mut f = Facts::default();
        let start = Event::Phase {
            t: 1_000_000_000,
            phase: Phase::LoadStart {
                warmup_ns: 0,
                duration_ns: 0,
            },
        };
        c.observe(&start, &mut f);
        let s = 1_000_000_000;
        // Consumer 0 on shard 2 at 2 s and 3 s, then after a 5 s gap at 8 s; consumer 1 at 4 s.
        for (t, consumer) in [(2 * s, 0), (3 * s, 0), (4 * s, 1), (8 * s, 0)] {
            let mut ev = deliver(consumer, Position::Transient { queue: 2, tag: t });
            if let Event::Deliver { t: at, .. } = &mut ev {
                *at = t;
            }
            c.observe(&ev, &mut f);
        }
        let spans: Vec<(u32, f64, f64)> = c
            .finish()
            .shard_spans
            .iter()
            .map(|x| (x.consumer, x.from, x.to))
            .collect();
        assert_eq!(spans, [(0, 1.0, 2.0), (0, 7.0, 7.0), (1, 3.0, 3.0)]);
    }

    /// Without shards (one SQS queue) no consumer counts as idle: nothing was there to spread.
    #[test]
    fn no_consumer_is_idle_where_there_are_no_shards() {
        let mut c = ShardChecker::default();
        let mut f = Facts::default();
        let ready = Event::Worker {
            t: 0,
            consumer: 0,
            event: WorkerEvent::Ready { pid: 1 },
        };
        c.observe(&ready, &mut f);
        c.observe(&deliver(0, Position::Id { id: "m".into() }), &mut f);
        assert_eq!(c.finish(), ShardSection::default());
    }
}
