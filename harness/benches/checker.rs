//! Checker throughput over a synthetic history of 10 million deliveries (plus their sends),
//! generated on the fly so the benchmark measures the checkers, not a giant Vec.

use brokerbench::check::check_events;
use brokerbench::history::{Event, Phase, Position};
use brokerbench::load::envelope::MsgId;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// `n` values over 1000 keys at 100k messages/s: invoke, ok, deliver, processed for each.
pub fn synthetic(n: u64) -> impl Iterator<Item = Event> {
    let start = std::iter::once(Event::Phase {
        t: 0,
        phase: Phase::LoadStart {
            warmup_ns: 0,
            duration_ns: n * 10_000,
        },
    });
    start.chain((0..n).flat_map(|i| {
        let t = i * 10_000;
        let id = MsgId {
            producer: 0,
            key: (i % 1000) as u32,
            seq: i / 1000,
        };
        [
            Event::SendInvoke { t, id, intended: t },
            Event::SendOk {
                t: t + 2_000_000,
                id,
                intended: t,
                pos: Position::Unknown,
            },
            Event::Deliver {
                t: t + 3_000_000,
                consumer: (i % 3) as u32,
                id,
                intended: t,
                pos: Position::Kafka {
                    partition: (i % 6) as i32,
                    offset: i as i64,
                },
                redelivered: false,
                receive_count: 1,
            },
            Event::Processed {
                t: t + 3_100_000,
                consumer: (i % 3) as u32,
                id,
            },
        ]
    }))
}

fn checker(c: &mut Criterion) {
    let mut g = c.benchmark_group("checker");
    g.sample_size(10);
    let n = 10_000_000;
    g.throughput(Throughput::Elements(n));
    g.bench_function("10M_deliveries", |b| {
        b.iter(|| check_events(synthetic(n)).delivered)
    });
    g.finish();
}

criterion_group!(benches, checker);
criterion_main!(benches);
