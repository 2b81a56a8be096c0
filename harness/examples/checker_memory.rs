//! Peak memory of the checkers per tracked message: checks N synthetic deliveries (streamed, not
//! stored) and prints the growth of the process's peak RSS. Run for two sizes and compare:
//!   cargo run --release --example checker_memory -- 1000000
//!   cargo run --release --example checker_memory -- 10000000

use brokerbench::check::{check_events, synthetic};

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
    let started = std::time::Instant::now();
    let m = check_events(synthetic::steady(n));
    let secs = started.elapsed().as_secs_f64();
    let grown = peak_rss_kib().saturating_sub(before);
    println!(
        "messages={n} delivered={} peak_rss_growth_kib={grown} bytes_per_message={:.1} deliveries_per_s={:.0}",
        m.delivery.delivered,
        grown as f64 * 1024.0 / n as f64,
        n as f64 / secs
    );
}
