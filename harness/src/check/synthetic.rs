//! Synthetic histories for benchmarks and memory measurements: `n` messages over 1000 keys at
//! 100k messages/s, in the order a real history has them (acknowledgements trail sends by 2 ms,
//! deliveries by 3 ms), generated lazily so nothing but the checkers holds memory.

use crate::history::{Event, Phase, Position};
use crate::message::MsgId;

const STEP_NS: u64 = 10_000;
const ACK_LAG: u64 = 200;
const DELIVERY_LAG: u64 = 300;

fn id(j: u64) -> MsgId {
    MsgId {
        producer: 0,
        key: (j % 1000) as u32,
        seq: j / 1000,
    }
}

pub fn steady(n: u64) -> impl Iterator<Item = Event> {
    Steady {
        n,
        step: 0,
        part: Part::Start,
    }
}

/// A hand-rolled state machine rather than an iterator chain: the benchmark should measure the
/// checkers, and the chain (four `Option<Event>`s built per step, then flattened) cost a fifth of
/// the whole run.
struct Steady {
    n: u64,
    step: u64,
    part: Part,
}

/// The records of one step, in history order.
#[derive(Clone, Copy)]
enum Part {
    Start,
    Send,
    Ack,
    Deliver,
    Processed,
}

impl Iterator for Steady {
    type Item = Event;

    #[inline]
    fn next(&mut self) -> Option<Event> {
        loop {
            let (i, n) = (self.step, self.n);
            if i >= n + DELIVERY_LAG {
                return None;
            }
            let t = i * STEP_NS;
            let part = self.part;
            self.part = match part {
                Part::Start | Part::Send => Part::Ack,
                Part::Ack => Part::Deliver,
                Part::Deliver => Part::Processed,
                Part::Processed => {
                    self.step += 1;
                    Part::Send
                }
            };
            match part {
                Part::Start => {
                    self.part = Part::Send;
                    return Some(Event::Phase {
                        t: 0,
                        phase: Phase::LoadStart {
                            warmup_ns: 0,
                            duration_ns: n * STEP_NS,
                        },
                    });
                }
                Part::Send if i < n => {
                    return Some(Event::SendInvoke {
                        t,
                        id: id(i),
                        intended: t,
                    })
                }
                Part::Ack if i >= ACK_LAG && i - ACK_LAG < n => {
                    let j = i - ACK_LAG;
                    return Some(Event::SendOk {
                        t,
                        id: id(j),
                        intended: j * STEP_NS,
                        pos: Position::Unknown,
                    });
                }
                Part::Deliver if i >= DELIVERY_LAG => {
                    let j = i - DELIVERY_LAG;
                    return Some(Event::Deliver {
                        t,
                        consumer: (j % 3) as u32,
                        id: id(j),
                        intended: j * STEP_NS,
                        pos: Position::Offset {
                            shard: (j % 6) as i32,
                            offset: j as i64,
                        },
                        redelivered: false,
                        receive_count: 1,
                    });
                }
                Part::Processed if i >= DELIVERY_LAG => {
                    let j = i - DELIVERY_LAG;
                    return Some(Event::Processed {
                        t: t + 100,
                        consumer: (j % 3) as u32,
                        id: id(j),
                    });
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn synthetic_history_is_clean() {
        let m = super::super::check_events(super::steady(5000));
        assert_eq!(
            (
                m.counts.sent,
                m.counts.acked,
                m.delivery.delivered,
                m.delivery.lost,
                m.delivery.redeliveries,
                m.delivery.per_key_order_violations
            ),
            (5000, 5000, 5000, 0, 0, 0)
        );
    }
}
