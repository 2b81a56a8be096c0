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

/// One consumer's deliveries from one shard.
#[derive(Default)]
struct Pair {
    deliveries: u64,
    /// (first, last) delivery of each span, ns since the Unix epoch.
    spans: Vec<(u64, u64)>,
}

#[derive(Default)]
pub struct ShardChecker {
    pairs: BTreeMap<(i64, u32), Pair>,
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
                let pair = self.pairs.entry((shard, *consumer)).or_default();
                pair.deliveries += 1;
                match pair.spans.last_mut() {
                    Some((_, last)) if *t <= *last + SPAN_GAP_NS => *last = (*last).max(*t),
                    _ => pair.spans.push((*t, *t)),
                }
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
        let busy: std::collections::BTreeSet<u32> = self.pairs.keys().map(|k| k.1).collect();
        let idle_consumers = if busy.is_empty() {
            Vec::new() // no shards seen: nothing was spread
        } else {
            self.ready.difference(&busy).copied().collect()
        };
        let since_start = |t: u64| t.saturating_sub(self.load_start) as f64 / 1e9;
        let mut shard_load = Vec::new();
        let mut shard_spans = Vec::new();
        for ((shard, consumer), pair) in self.pairs {
            shard_load.push(ShardLoad {
                shard,
                consumer,
                deliveries: pair.deliveries,
            });
            shard_spans.extend(pair.spans.into_iter().map(|(from, to)| ShardSpan {
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
