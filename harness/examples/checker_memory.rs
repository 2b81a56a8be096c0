//! Peak memory of the checkers per tracked message: checks N synthetic deliveries (streamed, not
//! stored) and prints the growth of the process's peak RSS. Run for two sizes and compare:
//!   cargo run --release --example checker_memory -- 1000000
//!   cargo run --release --example checker_memory -- 10000000

use brokerbench::check::check_events;
use brokerbench::history::{Event, Phase, Position};
use brokerbench::load::envelope::MsgId;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let before = peak_rss_kib();
    let events = std::iter::once(Event::Phase {
        t: 0,
        phase: Phase::LoadStart {
            warmup_ns: 0,
            duration_ns: n * 10_000,
        },
    })
    .chain((0..n).flat_map(|i| {
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
                consumer: 0,
                id,
                intended: t,
                pos: Position::Kafka {
                    partition: 0,
                    offset: i as i64,
                },
                redelivered: false,
                receive_count: 1,
            },
            Event::Processed {
                t: t + 3_100_000,
                consumer: 0,
                id,
            },
        ]
    }));
    let started = std::time::Instant::now();
    let m = check_events(events);
    let secs = started.elapsed().as_secs_f64();
    let grown = peak_rss_kib().saturating_sub(before);
    println!(
        "messages={n} delivered={} peak_rss_growth_kib={grown} bytes_per_message={:.1} deliveries_per_s={:.0}",
        m.delivered,
        grown as f64 * 1024.0 / n as f64,
        n as f64 / secs
    );
}
