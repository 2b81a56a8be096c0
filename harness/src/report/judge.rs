//! Whether a metric changed between a baseline and now, decided from samples rather than from
//! two single figures. Throughput and latency swing ±10–20% between identical runs on a shared
//! machine, so a fixed share between two numbers is either noise or blind.
//!
//! As criterion.rs does, a change needs two things to count: a 95% bootstrap interval of the
//! relative change that excludes zero, and the whole interval beyond the metric's noise
//! threshold. Correctness counts are the exception: any increase is a regression.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::check::metrics::{Judge, Metric, Unit};
use crate::check::Metrics;

/// Resamples per bootstrap; enough for stable 2.5% and 97.5% percentiles.
const ROUNDS: usize = 2000;
/// Per-run figures are judged only with this many runs on each side (`--repeat`).
pub const MIN_RUNS: usize = 3;
/// Per-second samples are judged only with this many seconds on each side.
const MIN_SECONDS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Improved,
    NoChange,
    Regressed,
    /// Too few samples to tell change from noise (the reason says how many are needed).
    NotJudged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Improved => "improved",
            Change::NoChange => "no change",
            Change::Regressed => "regressed",
            Change::NotJudged => "not judged",
        }
    }
}

/// One metric's verdict for one workload × broker.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub change: Change,
    /// Relative change of the statistic from the baseline (0.12 = 12% larger).
    pub estimate: Option<f64>,
    /// Its 95% interval.
    pub interval: Option<(f64, f64)>,
    /// What the decision rests on, e.g. "per-second samples, 58 vs 60".
    pub basis: String,
}

impl Judgement {
    /// A metric left unjudged, and why.
    pub fn not_judged(basis: impl Into<String>) -> Judgement {
        Judgement::new(Change::NotJudged, basis)
    }

    fn new(change: Change, basis: impl Into<String>) -> Judgement {
        Judgement {
            change,
            estimate: None,
            interval: None,
            basis: basis.into(),
        }
    }

    /// The change and its interval as a reader wants them: "+12.3% [+8.1%, +16.0%]".
    pub fn text(&self) -> String {
        match (self.estimate, self.interval) {
            (Some(e), Some((lo, hi))) => format!("{} [{}, {}]", pct(e), pct(lo), pct(hi)),
            (Some(e), None) => pct(e),
            _ => String::new(),
        }
    }
}

fn pct(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "+∞" } else { "−∞" }.into();
    }
    format!("{:+.1}%", x * 100.0)
}

/// Judge `metric` from the baseline's runs and now's runs of one workload × broker, with the
/// relative noise `threshold` (0.1 = 10%).
pub fn judge(metric: &Metric, base: &[&Metrics], now: &[&Metrics], threshold: f64) -> Judgement {
    match metric.judge {
        Judge::AnyIncrease => any_increase(metric, base, now),
        Judge::PerSecond(sample) => per_second_medians(metric, sample, base, now, threshold),
        Judge::PerRun => per_run(metric, base, now, threshold),
    }
}

/// A correctness count: the worst run of each side, and any increase regresses.
fn any_increase(metric: &Metric, base: &[&Metrics], now: &[&Metrics]) -> Judgement {
    let worst = |runs: &[&Metrics]| runs.iter().filter_map(|m| (metric.get)(m)).reduce(f64::max);
    let (Some(b), Some(n)) = (worst(base), worst(now)) else {
        return Judgement::new(Change::NotJudged, "not measured");
    };
    let change = if n > b {
        Change::Regressed
    } else if n < b {
        Change::Improved
    } else {
        Change::NoChange
    };
    let mut j = Judgement::new(change, "a correctness count: any increase regresses");
    j.estimate = (b > 0.0).then(|| (n - b) / b);
    j
}

/// Per-second samples, grouped by run: repeats resample whole runs first, so the interval
/// also holds the difference between runs, not only between seconds of one run.
fn per_second_medians(
    metric: &Metric,
    sample: fn(&crate::check::Window) -> Option<f64>,
    base: &[&Metrics],
    now: &[&Metrics],
    threshold: f64,
) -> Judgement {
    let seconds = |runs: &[&Metrics]| -> Vec<Vec<f64>> {
        runs.iter().map(|m| per_second(m, sample)).collect()
    };
    let (b, n) = (seconds(base), seconds(now));
    let count = |g: &[Vec<f64>]| g.iter().map(Vec::len).sum::<usize>();
    let basis = format!(
        "medians of per-second samples, {} vs {} (runs: {} vs {})",
        count(&b),
        count(&n),
        b.len(),
        n.len()
    );
    if count(&b) < MIN_SECONDS || count(&n) < MIN_SECONDS {
        return Judgement::new(Change::NotJudged, basis);
    }
    if b.len() < MIN_RUNS || n.len() < MIN_RUNS {
        // The seconds of one run say nothing about how whole runs differ: the bar rises to
        // what whole runs were seen to differ by.
        let bar = threshold.max(metric.single_run_noise());
        let basis = format!(
            "{basis}; from single runs a change must pass {:.0}%{} \
             (--repeat {MIN_RUNS} judges finer changes)",
            bar * 100.0,
            if metric.unit == Unit::Seconds {
                format!(" and {} ms", SINGLE_RUN_LATENCY_FLOOR_S * 1e3)
            } else {
                String::new()
            }
        );
        return decide(&b, &n, metric, bar, SINGLE_RUN_LATENCY_FLOOR_S, basis);
    }
    decide(&b, &n, metric, threshold, LATENCY_FLOOR_S, basis)
}

/// One figure per run: judged only with repeats on both sides, except that a recovery that
/// never happened is infinitely worse, whatever the noise.
fn per_run(metric: &Metric, base: &[&Metrics], now: &[&Metrics], threshold: f64) -> Judgement {
    let figures =
        |runs: &[&Metrics]| -> Vec<f64> { runs.iter().filter_map(|m| (metric.get)(m)).collect() };
    let (b, n) = (figures(base), figures(now));
    let basis = format!("one figure per run, {} vs {}", b.len(), n.len());
    let never = |v: &[f64]| v.iter().any(|x| x.is_infinite());
    if never(&n) != never(&b) && !b.is_empty() && !n.is_empty() {
        let change = if never(&n) == metric.lower_is_better() {
            Change::Regressed
        } else {
            Change::Improved
        };
        return Judgement::new(change, format!("{basis}; one side never recovered"));
    }
    if b.len() < MIN_RUNS || n.len() < MIN_RUNS {
        return Judgement::new(
            Change::NotJudged,
            format!("{basis}: needs {MIN_RUNS} runs on each side (--repeat {MIN_RUNS})"),
        );
    }
    let one_each = |v: &[f64]| v.iter().map(|x| vec![*x]).collect::<Vec<_>>();
    decide(
        &one_each(&b),
        &one_each(&n),
        metric,
        threshold,
        LATENCY_FLOOR_S,
        basis,
    )
}

/// The metric's value in each whole second of the load (the first second, which starts part
/// way, is left out), in the metric's unit.
fn per_second(m: &Metrics, sample: fn(&crate::check::Window) -> Option<f64>) -> Vec<f64> {
    m.timing
        .timeline
        .iter()
        .filter(|w| w.second >= 1 && (w.second + 1) as f64 <= m.timing.duration_s)
        .filter_map(sample)
        .filter(|v| v.is_finite())
        .collect()
}

/// A latency change smaller than this is below what repeated runs on one machine can tell
/// apart: identical runs here moved a 2 ms median by up to 0.7 ms (docs/benchmarks.md).
pub const LATENCY_FLOOR_S: f64 = 0.002;
/// The same from single runs: in CI, a whole run's conditions moved a 4.9 ms publish p99 to
/// 11.7 ms, +6.9 ms.
pub const SINGLE_RUN_LATENCY_FLOOR_S: f64 = 0.010;

/// Improved, no change or regressed, from the bootstrap interval of the relative change of
/// the medians: the whole interval must lie beyond the threshold (and, for a latency, move it
/// by more than `latency_floor_s`).
fn decide(
    base: &[Vec<f64>],
    now: &[Vec<f64>],
    metric: &Metric,
    threshold: f64,
    latency_floor_s: f64,
    basis: String,
) -> Judgement {
    let Some((estimate, lo, hi, base_median)) = bootstrap(base, now) else {
        return Judgement::new(Change::NotJudged, format!("{basis}; the baseline is zero"));
    };
    let floor = if metric.unit == Unit::Seconds {
        latency_floor_s / base_median.abs()
    } else {
        0.0
    };
    let threshold = threshold.max(floor);
    // Larger is worse for a lower-is-better metric, and better for the others.
    let (worse_lo, worse_hi) = if metric.lower_is_better() {
        (lo, hi)
    } else {
        (-hi, -lo)
    };
    let change = if worse_lo > threshold {
        Change::Regressed
    } else if worse_hi < -threshold {
        Change::Improved
    } else {
        Change::NoChange
    };
    Judgement {
        change,
        estimate: Some(estimate),
        interval: Some((lo, hi)),
        basis,
    }
}

/// The relative change of the median from `base` to `now`, with its 95% percentile-bootstrap
/// interval, and the baseline's median. Each side is a list of runs: a resample draws runs
/// with replacement, then values within each drawn run. Seeded, so the same runs always get
/// the same verdict. None when the baseline's median is zero.
pub fn bootstrap(base: &[Vec<f64>], now: &[Vec<f64>]) -> Option<(f64, f64, f64, f64)> {
    let rel = |b: f64, n: f64| (b != 0.0 && b.is_finite()).then(|| (n - b) / b.abs());
    let pooled = |g: &[Vec<f64>]| g.iter().flatten().copied().collect::<Vec<_>>();
    let base_median = median(pooled(base));
    let estimate = rel(base_median, median(pooled(now)))?;
    let mut rng = StdRng::seed_from_u64(0x6272_6f6b_6572);
    let resample = |groups: &[Vec<f64>], rng: &mut StdRng| -> Vec<f64> {
        let mut out = Vec::new();
        for _ in 0..groups.len() {
            let g = &groups[rng.random_range(0..groups.len())];
            for _ in 0..g.len() {
                out.push(g[rng.random_range(0..g.len())]);
            }
        }
        out
    };
    let mut draws = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let (b, n) = (resample(base, &mut rng), resample(now, &mut rng));
        if let Some(r) = rel(median(b), median(n)) {
            draws.push(r);
        }
    }
    if draws.is_empty() {
        return None;
    }
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((draws.len() - 1) as f64 * q).round() as usize];
    Some((estimate, at(0.025), at(0.975), base_median))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::metrics::find;
    use crate::check::Window;
    use rand_distr::{Distribution, Normal};

    /// A run whose per-second throughput and end-to-end p99 are drawn around the given means.
    fn run(seed: u64, rate: f64, p99_ms: f64, spread: f64) -> Metrics {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = |mean: f64| Normal::new(mean, mean * spread).unwrap();
        let (r, l) = (n(rate), n(p99_ms));
        Metrics {
            timing: crate::check::TimingSection {
                duration_s: 60.0,
                throughput: rate,
                timeline: (0..62)
                    .map(|s| Window {
                        second: s,
                        acked: r.sample(&mut rng).max(0.0) as u64,
                        e2e_p99_ms: Some(l.sample(&mut rng).max(0.1)),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn verdict(key: &str, base: &[Metrics], now: &[Metrics]) -> Judgement {
        let (b, n): (Vec<&Metrics>, Vec<&Metrics>) = (base.iter().collect(), now.iter().collect());
        judge(find(key).unwrap(), &b, &n, 0.10)
    }

    #[test]
    fn noisy_but_unchanged_runs_are_no_change() {
        // ±20% per second, as this machine swings: no pair of unchanged runs regresses.
        for seed in 0..10 {
            let (a, b) = (
                run(seed, 1000.0, 20.0, 0.2),
                run(seed + 100, 1000.0, 20.0, 0.2),
            );
            for key in ["throughput", "p99_end_to_end"] {
                let j = verdict(key, std::slice::from_ref(&a), std::slice::from_ref(&b));
                assert_eq!(j.change, Change::NoChange, "{key} seed {seed}: {j:?}");
            }
        }
    }

    /// Three runs around the same means, as `--repeat 3` gives.
    fn runs(seed: u64, rate: f64, p99_ms: f64) -> Vec<Metrics> {
        (0..3)
            .map(|i| run(seed * 10 + i, rate, p99_ms, 0.2))
            .collect()
    }

    #[test]
    fn a_real_shift_is_flagged_in_the_right_direction_with_its_interval() {
        let base = runs(1, 1000.0, 20.0);
        // +20 ms on every end-to-end p99: regressed, and the interval holds the true +100%.
        let j = verdict("p99_end_to_end", &base, &runs(2, 1000.0, 40.0));
        assert_eq!(j.change, Change::Regressed, "{j:?}");
        let (lo, hi) = j.interval.unwrap();
        assert!(lo < 1.0 && 1.0 < hi && lo > 0.1, "{j:?}");
        // Throughput down 30%: regressed; up 30%: improved.
        let j = verdict("throughput", &base, &runs(3, 700.0, 20.0));
        assert_eq!(j.change, Change::Regressed, "{j:?}");
        let j = verdict("throughput", &base, &runs(4, 1300.0, 20.0));
        assert_eq!(j.change, Change::Improved, "{j:?}");
    }

    #[test]
    fn single_runs_need_a_change_beyond_what_whole_runs_differ_by() {
        let one = |seed, rate, p99_ms| [run(seed, rate, p99_ms, 0.2)];
        // What CI saw between two identical runs (a 5 ms p99 at 12 ms, the whole run long):
        // the seconds alone exclude zero, but single runs cannot tell it from noise.
        let j = verdict(
            "p99_end_to_end",
            &one(1, 1000.0, 4.9),
            &one(2, 1000.0, 11.7),
        );
        assert_eq!(j.change, Change::NoChange, "{j:?}");
        assert!(j.interval.unwrap().0 > 0.3, "{j:?}");
        assert!(
            j.basis.contains("single runs") && j.basis.contains("--repeat 3"),
            "{j:?}"
        );
        // The same shift in three runs on each side is a change.
        let j = verdict(
            "p99_end_to_end",
            &runs(1, 1000.0, 4.9),
            &runs(2, 1000.0, 11.7),
        );
        assert_eq!(j.change, Change::Regressed, "{j:?}");
        // A latency toxic's +20 ms still shows from single runs, and so does halved throughput.
        let j = verdict(
            "p99_end_to_end",
            &one(1, 1000.0, 4.9),
            &one(2, 1000.0, 25.0),
        );
        assert_eq!(j.change, Change::Regressed, "{j:?}");
        let j = verdict("throughput", &one(1, 1000.0, 20.0), &one(2, 500.0, 20.0));
        assert_eq!(j.change, Change::Regressed, "{j:?}");
        // Throughput 15% down, within this machine's drift: no change from single runs.
        let j = verdict("throughput", &one(1, 1000.0, 20.0), &one(2, 850.0, 20.0));
        assert_eq!(j.change, Change::NoChange, "{j:?}");
    }

    #[test]
    fn a_change_smaller_than_the_noise_threshold_is_no_change() {
        // 5% slower with almost no noise: real, but inside the 10% threshold.
        let j = verdict(
            "p99_end_to_end",
            &[run(1, 1000.0, 20.0, 0.01)],
            &[run(2, 1000.0, 21.0, 0.01)],
        );
        assert_eq!(j.change, Change::NoChange, "{j:?}");
        assert!(
            j.interval.unwrap().0 > 0.0,
            "the shift itself is visible: {j:?}"
        );
    }

    #[test]
    fn correctness_counts_regress_on_any_increase() {
        let mut lost = run(1, 1000.0, 20.0, 0.2);
        lost.delivery.lost = 1;
        let clean = run(2, 1000.0, 20.0, 0.2);
        assert_eq!(
            verdict(
                "lost",
                std::slice::from_ref(&clean),
                std::slice::from_ref(&lost)
            )
            .change,
            Change::Regressed
        );
        assert_eq!(
            verdict("lost", &[lost], std::slice::from_ref(&clean)).change,
            Change::Improved
        );
        assert_eq!(
            verdict(
                "lost",
                std::slice::from_ref(&clean),
                std::slice::from_ref(&clean)
            )
            .change,
            Change::NoChange
        );
    }

    #[test]
    fn per_run_figures_need_repeats_and_then_are_judged() {
        let runs = |p: f64| -> Vec<Metrics> {
            (0..3)
                .map(|i| {
                    let mut m = run(i, 1000.0, 20.0, 0.2);
                    m.timing.end_to_end_latency.count = 1000;
                    m.timing.end_to_end_latency.p999 = p * (1.0 + 0.02 * i as f64);
                    m
                })
                .collect()
        };
        let one = verdict("p999_end_to_end", &runs(0.1)[..1], &runs(0.1)[..1]);
        assert_eq!(one.change, Change::NotJudged, "{one:?}");
        assert!(one.basis.contains("--repeat 3"), "{one:?}");
        let j = verdict("p999_end_to_end", &runs(0.1), &runs(0.3));
        assert_eq!(j.change, Change::Regressed, "{j:?}");
        let j = verdict("p999_end_to_end", &runs(0.1), &runs(0.1));
        assert_eq!(j.change, Change::NoChange, "{j:?}");
    }

    #[test]
    fn a_recovery_that_never_happens_regresses_even_from_one_run() {
        let mut never = run(1, 1000.0, 20.0, 0.2);
        never.timing.faults.push(crate::check::FaultWindow {
            index: 0,
            kind: "partition".into(),
            start_s: 5.0,
            end_s: Some(10.0),
            ..Default::default()
        });
        let mut fine = never.clone();
        fine.timing.faults[0].recovery_s = Some(1.0);
        let j = verdict("recovery_time", &[fine], &[never]);
        assert_eq!(j.change, Change::Regressed, "{j:?}");
    }
}
