//! Synthetic histories for benchmarks and memory measurements: `n` messages over 1000 keys at
//! 100k messages/s, in the order a real history has them (acknowledgements trail sends by 2 ms,
//! deliveries by 3 ms), generated lazily so nothing but the checkers holds memory.

use crate::history::{Event, Phase, Position};
use crate::load::envelope::MsgId;

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
    let start = std::iter::once(Event::Phase {
        t: 0,
        phase: Phase::LoadStart {
            warmup_ns: 0,
            duration_ns: n * STEP_NS,
        },
    });
    start.chain((0..n + DELIVERY_LAG).flat_map(move |i| {
        let t = i * STEP_NS;
        let send = (i < n).then(|| Event::SendInvoke {
            t,
            id: id(i),
            intended: t,
        });
        let ack = i
            .checked_sub(ACK_LAG)
            .filter(|j| *j < n)
            .map(|j| Event::SendOk {
                t,
                id: id(j),
                intended: j * STEP_NS,
                pos: Position::Unknown,
            });
        let delivered = i.checked_sub(DELIVERY_LAG).filter(|j| *j < n);
        let deliver = delivered.map(|j| Event::Deliver {
            t,
            consumer: (j % 3) as u32,
            id: id(j),
            intended: j * STEP_NS,
            pos: Position::Kafka {
                partition: (j % 6) as i32,
                offset: j as i64,
            },
            redelivered: false,
            receive_count: 1,
        });
        let processed = delivered.map(|j| Event::Processed {
            t: t + 100,
            consumer: (j % 3) as u32,
            id: id(j),
        });
        [send, ack, deliver, processed].into_iter().flatten()
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn synthetic_history_is_clean() {
        let m = super::super::check_events(super::steady(5000));
        assert_eq!(
            (
                m.sent,
                m.acked,
                m.delivered,
                m.lost,
                m.redeliveries,
                m.per_key_order_violations
            ),
            (5000, 5000, 5000, 0, 0, 0)
        );
    }
}
