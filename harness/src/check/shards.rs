//! Who consumed what: deliveries per shard (a Kafka partition, a RabbitMQ queue) and consumer.
//! It shows how the broker spread the work: which consumer was active on which shard, and how
//! much each one carried.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Checker, Facts};
use crate::history::{Event, Position};

/// Deliveries one consumer received from one shard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct ShardLoad {
    pub shard: i64,
    pub consumer: u32,
    pub deliveries: u64,
}

#[derive(Default)]
pub struct ShardChecker {
    counts: BTreeMap<(i64, u32), u64>,
}

impl Checker for ShardChecker {
    type Section = Vec<ShardLoad>;

    fn observe(&mut self, ev: &Event, _: &mut Facts) {
        if let Event::Deliver { consumer, pos, .. } = ev {
            let shard = match pos {
                Position::Offset { shard, .. } => *shard as i64,
                Position::Transient { queue, .. } => *queue as i64,
                // One queue (SQS), or no position: nothing to spread.
                Position::Id { .. } | Position::Unknown => return,
            };
            *self.counts.entry((shard, *consumer)).or_default() += 1;
        }
    }

    fn finish(self) -> Vec<ShardLoad> {
        self.counts
            .into_iter()
            .map(|((shard, consumer), deliveries)| ShardLoad {
                shard,
                consumer,
                deliveries,
            })
            .collect()
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
        let load = |shard, consumer, deliveries| ShardLoad {
            shard,
            consumer,
            deliveries,
        };
        assert_eq!(
            c.finish(),
            vec![load(0, 2, 1), load(1, 0, 2), load(3, 1, 1)]
        );
    }
}
