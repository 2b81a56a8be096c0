//! Checker throughput over a synthetic history of 10 million deliveries (plus their sends),
//! generated on the fly so the benchmark measures the checkers, not a giant Vec.

use brokerbench::check::{check_events, synthetic};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn checker(c: &mut Criterion) {
    let mut g = c.benchmark_group("checker");
    g.sample_size(10);
    // `cargo bench` passes --bench; under `cargo test` the bench only has to run, so keep it small.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let n = if benchmarking { 10_000_000 } else { 100_000 };
    g.throughput(Throughput::Elements(n));
    g.bench_function(
        if benchmarking {
            "10M_deliveries"
        } else {
            "100k_deliveries"
        },
        |b| b.iter(|| check_events(synthetic::steady(n)).delivery.delivered),
    );
    // The cost of generating the events alone, to subtract.
    g.bench_function(
        if benchmarking {
            "10M_generate_only"
        } else {
            "100k_generate_only"
        },
        |b| b.iter(|| synthetic::steady(n).count()),
    );
    g.finish();
}

criterion_group!(benches, checker);
criterion_main!(benches);
