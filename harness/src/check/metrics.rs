//! Every metric, described once: the key `expect:` and result.json use, the label the reports
//! show, its unit, which direction is better, and how to read it from `Metrics`. Validation of
//! `expect:`, verdicts, the summary and compare tables, best-value highlighting and regressions
//! all read this table, so a new metric is one field in its checker's section plus one entry
//! here.

use super::Metrics;
use crate::workload::steps::MAX_SUSTAINABLE_RATE;
use crate::workload::{At, Steps, Workload};

/// What a metric's number is, so each report formats it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    /// 0..=1, shown as a percentage.
    Fraction,
    Seconds,
    /// Messages per second.
    PerSecond,
    /// Bytes, shown in KiB/MiB/GiB.
    Bytes,
}

/// Which way a metric gets better: the compare page highlights the best value, and a change
/// the other way can be a regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

pub struct Metric {
    /// As written in `expect:` (base units: counts, fractions, seconds).
    pub key: &'static str,
    /// As the reports' tables show it.
    pub label: &'static str,
    pub unit: Unit,
    pub better: Better,
    /// How `compare --baseline` tells a change from noise.
    pub judge: Judge,
    /// None: not measured in this run (shown as "—"; an expectation on it fails).
    pub get: fn(&Metrics) -> Option<f64>,
    /// It measures what consumers received: with `consumers.count: 0` it measures nothing, and
    /// a bound on it would pass without meaning anything.
    pub needs_consumers: bool,
}

/// Which samples decide whether a metric changed against a baseline (see `report::judge`).
#[derive(Debug, Clone, Copy)]
pub enum Judge {
    /// A correctness count: any increase is a regression, however small.
    AnyIncrease,
    /// The metric's value in each second of the load, from the timeline (pooled over repeats).
    PerSecond(fn(&super::Window) -> Option<f64>),
    /// The runs' own figures: judged only with repeats on both sides.
    PerRun,
}

impl Metric {
    pub fn lower_is_better(&self) -> bool {
        self.better == Better::Lower
    }

    /// The change `compare --baseline` ignores unless told otherwise. Latency moves more than
    /// throughput between identical runs here: medians of per-second latency differed by up to
    /// 26% between repeats of one workload (docs/benchmarks.md), throughput by a few percent.
    ///
    /// What the broker's own processes cost moves as much: two identical 12 s RabbitMQ runs at
    /// 200 msg/s kept 0.175 and 0.22 cores busy (+35%, interval +10% to +53%).
    pub fn default_noise(&self) -> f64 {
        match (self.judge, self.unit) {
            (Judge::PerSecond(_), Unit::Seconds) => 0.30,
            _ if self.key.starts_with("broker_") => 0.30,
            _ => 0.10,
        }
    }

    /// The least change a per-second metric must show when a side has fewer than
    /// `judge::MIN_RUNS` runs. Seconds of one run share that run's conditions, so their
    /// interval leaves out how much whole runs differ: in CI, two identical 12 s RabbitMQ
    /// runs at 200 msg/s had per-second publish p99 medians of 4.89 and 11.74 ms (interval
    /// +67% to +202%), and this machine's throughput drifts 10–20% in an hour. A light load's
    /// broker CPU is mostly the broker's own background work: two identical such runs in CI
    /// had means of 0.098 and 0.163 cores (+78%, interval +59% to +113%).
    pub fn single_run_noise(&self) -> f64 {
        match (self.unit, self.key) {
            (Unit::Seconds, _) | (_, "broker_cpu_cores") => 1.0,
            _ => 0.25,
        }
    }
}

/// In the order the reports list them.
pub const METRICS: &[Metric] = &[
    Metric {
        key: "sent",
        label: "sent",
        unit: Unit::Count,
        better: Better::Higher,
        judge: Judge::PerRun,
        get: |m| Some(m.counts.sent as f64),
        needs_consumers: false,
    },
    Metric {
        key: "acked",
        label: "acked",
        unit: Unit::Count,
        better: Better::Higher,
        judge: Judge::PerRun,
        get: |m| Some(m.counts.acked as f64),
        needs_consumers: false,
    },
    Metric {
        key: "failed",
        label: "failed sends",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.counts.failed as f64),
        needs_consumers: false,
    },
    Metric {
        key: "indeterminate",
        label: "indeterminate sends",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.counts.indeterminate as f64),
        needs_consumers: false,
    },
    Metric {
        key: "delivered",
        label: "delivered (distinct)",
        unit: Unit::Count,
        better: Better::Higher,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.delivered as f64),
        needs_consumers: true,
    },
    Metric {
        key: "lost",
        label: "lost",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| Some(m.delivery.lost as f64),
        needs_consumers: false,
    },
    Metric {
        key: "unread",
        label: "unread (stored, never processed)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| Some(m.delivery.unread as f64),
        needs_consumers: true,
    },
    Metric {
        key: "unverified",
        label: "unverified (final read incomplete)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| Some(m.delivery.unverified as f64),
        needs_consumers: false,
    },
    Metric {
        key: "unexpected",
        label: "unexpected",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| Some(m.delivery.unexpected as f64),
        needs_consumers: false,
    },
    Metric {
        key: "recovered",
        label: "recovered",
        unit: Unit::Count,
        better: Better::Higher,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.recovered as f64),
        needs_consumers: false,
    },
    Metric {
        key: "redeliveries",
        label: "redeliveries (values seen again)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.redeliveries as f64),
        needs_consumers: true,
    },
    Metric {
        key: "broker_redeliveries",
        label: "broker-flagged redeliveries",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.broker_redeliveries as f64),
        needs_consumers: true,
    },
    Metric {
        key: "duplicate_rate",
        label: "duplicate rate",
        unit: Unit::Fraction,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.duplicate_rate),
        needs_consumers: true,
    },
    Metric {
        key: "duplicates_stored",
        label: "duplicates stored",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.duplicates_stored as f64),
        needs_consumers: false,
    },
    Metric {
        key: "per_key_order_violations",
        label: "per-key order violations (first deliveries)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| Some(m.delivery.per_key_order_violations as f64),
        needs_consumers: true,
    },
    Metric {
        key: "per_key_order_violations_redelivered",
        label: "per-key order violations (redeliveries)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.per_key_order_violations_redelivered as f64),
        needs_consumers: true,
    },
    Metric {
        key: "per_key_order_violations_flagged",
        label: "per-key order violations (flagged by the broker)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.per_key_order_violations_flagged as f64),
        needs_consumers: true,
    },
    Metric {
        key: "final_read_order_violations",
        label: "per-key order as stored (final read)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| Some(m.delivery.final_read_order_violations as f64),
        needs_consumers: false,
    },
    Metric {
        key: "skips",
        label: "skips",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.delivery.skips as f64),
        needs_consumers: true,
    },
    Metric {
        key: "effective_duplicates",
        label: "effective duplicates (after dedupe)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| Some(m.delivery.effective_duplicates as f64),
        needs_consumers: true,
    },
    Metric {
        key: "processed_per_store",
        label: "processed per the consumers' store only",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        // Only with `consumers.dedupe`, once the store was read.
        get: |m| {
            m.delivery
                .store_read
                .map(|_| m.delivery.processed_per_store as f64)
        },
        needs_consumers: false,
    },
    Metric {
        key: "store_anomalies",
        label: "consumers' store anomalies",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| {
            m.delivery
                .store_read
                .map(|_| m.delivery.store_anomalies as f64)
        },
        needs_consumers: false,
    },
    Metric {
        key: "throughput",
        label: "throughput (acked msg/s)",
        unit: Unit::PerSecond,
        better: Better::Higher,
        judge: Judge::PerSecond(|w| Some(w.acked as f64)),
        get: |m| Some(m.timing.throughput),
        needs_consumers: false,
    },
    Metric {
        key: "p50_publish",
        label: "publish p50",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerSecond(|w| w.publish_p50_ms.map(|ms| ms / 1e3)),
        get: |m| m.timing.publish_latency.measured().map(|l| l.p50),
        needs_consumers: false,
    },
    Metric {
        key: "p99_publish",
        label: "publish p99",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerSecond(|w| w.publish_p99_ms.map(|ms| ms / 1e3)),
        get: |m| m.timing.publish_latency.measured().map(|l| l.p99),
        needs_consumers: false,
    },
    Metric {
        key: "p999_publish",
        label: "publish p99.9",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| m.timing.publish_latency.measured().map(|l| l.p999),
        needs_consumers: false,
    },
    Metric {
        key: "max_publish",
        label: "publish max",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| m.timing.publish_latency.measured().map(|l| l.max),
        needs_consumers: false,
    },
    Metric {
        key: "p50_end_to_end",
        label: "end-to-end p50",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerSecond(|w| w.e2e_p50_ms.map(|ms| ms / 1e3)),
        get: |m| m.timing.end_to_end_latency.measured().map(|l| l.p50),
        needs_consumers: true,
    },
    Metric {
        key: "p99_end_to_end",
        label: "end-to-end p99",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerSecond(|w| w.e2e_p99_ms.map(|ms| ms / 1e3)),
        get: |m| m.timing.end_to_end_latency.measured().map(|l| l.p99),
        needs_consumers: true,
    },
    Metric {
        key: "p999_end_to_end",
        label: "end-to-end p99.9",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| m.timing.end_to_end_latency.measured().map(|l| l.p999),
        needs_consumers: true,
    },
    Metric {
        key: "max_end_to_end",
        label: "end-to-end max",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| m.timing.end_to_end_latency.measured().map(|l| l.max),
        needs_consumers: true,
    },
    Metric {
        key: "availability",
        label: "producer availability",
        unit: Unit::Fraction,
        better: Better::Higher,
        judge: Judge::PerRun,
        get: |m| Some(m.timing.availability),
        needs_consumers: false,
    },
    Metric {
        key: "consumer_availability",
        label: "consumer availability",
        unit: Unit::Fraction,
        better: Better::Higher,
        judge: Judge::PerRun,
        get: |m| Some(m.timing.consumer_availability),
        needs_consumers: true,
    },
    Metric {
        key: "recovery_time",
        label: "worst recovery time",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: worst_recovery,
        needs_consumers: false,
    },
    Metric {
        key: "send_outage",
        label: "longest send outage in a fault",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| {
            m.timing
                .faults
                .iter()
                .filter_map(|f| f.send_outage_s)
                .reduce(f64::max)
        },
        needs_consumers: false,
    },
    Metric {
        key: "catch_up_time",
        label: "backlog caught up in",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerRun,
        // A backlog never caught up took forever; a run without one measured nothing.
        get: |m| {
            m.timing
                .catch_up
                .as_ref()
                .map(|c| c.time_s.unwrap_or(f64::INFINITY))
        },
        needs_consumers: true,
    },
    Metric {
        key: "catch_up_rate",
        label: "catching up (msg/s)",
        unit: Unit::PerSecond,
        better: Better::Higher,
        judge: Judge::PerRun,
        get: |m| m.timing.catch_up.as_ref().and_then(|c| c.rate),
        needs_consumers: true,
    },
    Metric {
        key: "rebalances",
        label: "rebalances",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.rebalance.rebalances.len() as f64),
        needs_consumers: true,
    },
    Metric {
        key: "max_rebalance_pause",
        label: "longest rebalance pause",
        unit: Unit::Seconds,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| m.rebalance.max_rebalance_pause,
        needs_consumers: true,
    },
    Metric {
        key: "rebalance_redeliveries",
        label: "redeliveries in rebalances",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.rebalance.rebalance_redeliveries as f64),
        needs_consumers: true,
    },
    Metric {
        key: "per_key_order_violations_in_rebalance",
        label: "per-key order violations in rebalances",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::AnyIncrease,
        get: |m| Some(m.rebalance.per_key_order_violations_in_rebalance as f64),
        needs_consumers: true,
    },
    Metric {
        key: "reconnects",
        label: "client reconnects (harness)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| Some(m.timing.reconnects as f64),
        needs_consumers: false,
    },
    Metric {
        key: "broker_cpu_cores",
        label: "broker CPU (cores, mean)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerSecond(|w| w.broker_cpu_cores),
        get: |m| m.cost.broker_cost.as_ref().map(|c| c.cpu_cores_mean),
        needs_consumers: false,
    },
    Metric {
        key: "broker_cpu_us_per_message",
        label: "broker CPU per message (µs)",
        unit: Unit::Count,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| {
            m.cost
                .broker_cost
                .as_ref()
                .and_then(|c| c.cpu_us_per_message)
        },
        needs_consumers: false,
    },
    Metric {
        key: "broker_rss_peak",
        label: "broker memory (peak RSS)",
        unit: Unit::Bytes,
        better: Better::Lower,
        judge: Judge::PerRun,
        get: |m| m.cost.broker_cost.as_ref().map(|c| c.rss_peak_bytes as f64),
        needs_consumers: false,
    },
];

/// The entry for an `expect:` key.
pub fn find(key: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.key == key)
}

/// The slowest recovery among the faults that ended (a fault that never recovered counts as
/// forever); not measured when no fault ended.
fn worst_recovery(m: &Metrics) -> Option<f64> {
    m.timing
        .faults
        .iter()
        .filter(|f| f.end_s.is_some() && !f.failed)
        .map(|f| f.recovery_s.unwrap_or(f64::INFINITY))
        .reduce(f64::max)
}

/// The workload rule the run and `validate` add: every `expect:` key names a metric here, and
/// one the workload can measure.
pub fn validate(w: &Workload) -> Vec<(At, String)> {
    let known = || METRICS.iter().map(|m| m.key).collect::<Vec<_>>().join(", ");
    let problem = |name: &str| {
        if find(name).is_none() {
            Some(format!(
                "unknown metric `{name}`; known metrics: {}",
                known()
            ))
        } else if w.consumers.count == 0 && find(name).is_some_and(|m| m.needs_consumers) {
            Some(format!("`{name}` measures what consumers received, and this workload has none (consumers.count: 0)"))
        } else {
            None
        }
    };
    let stepped = w.load.rate.steps().is_some();
    let expected = w.expect.iter().filter_map(|(name, bound)| {
        let p = if name == MAX_SUSTAINABLE_RATE {
            (!stepped).then(|| format!("`{name}` is measured by stepping the rate; set load.rate to {{ sweep: [...] }} or {{ find_max: {{...}} }}"))
        } else {
            problem(name)
        };
        Some((At::Span(bound.referenced), p?))
    });
    let searched = match w.load.rate.steps() {
        Some(Steps::FindMax { bounds, .. }) => bounds.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let searched = searched.into_iter().filter_map(|name| {
        let p = problem(&name)?;
        Some(crate::workload::at_keys(
            ["load", "rate", "find_max", name.as_str()]
                .map(String::from)
                .to_vec(),
            format!("{p} (in find_max)"),
        ))
    });
    expected.chain(searched).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_moves_between_identical_runs_gets_the_wider_noise_threshold() {
        let noise = |k| find(k).unwrap().default_noise();
        assert_eq!(noise("p99_end_to_end"), 0.30);
        assert_eq!(noise("broker_cpu_cores"), 0.30);
        let single = |k| find(k).unwrap().single_run_noise();
        assert_eq!(single("broker_cpu_cores"), 1.0);
        assert_eq!(single("throughput"), 0.25);
        assert_eq!(noise("broker_rss_peak"), 0.30);
        assert_eq!(noise("throughput"), 0.10);
    }

    #[test]
    fn keys_and_labels_are_unique() {
        for (i, m) in METRICS.iter().enumerate() {
            for o in &METRICS[i + 1..] {
                assert_ne!(m.key, o.key);
                assert_ne!(m.label, o.label);
            }
        }
    }

    #[test]
    fn a_fault_that_never_recovered_is_the_worst_recovery() {
        let fault = |end: Option<f64>, rec: Option<f64>| super::super::FaultWindow {
            index: 0,
            kind: "partition".into(),
            start_s: 1.0,
            end_s: end,
            recovery_s: rec,
            producers_recovered_s: rec,
            consumers_recovered_s: rec,
            ..Default::default()
        };
        let mut m = Metrics::default();
        assert_eq!(worst_recovery(&m), None, "no fault: nothing measured");
        m.timing.faults = vec![fault(Some(2.0), Some(0.5)), fault(None, None)];
        assert_eq!(
            worst_recovery(&m),
            Some(0.5),
            "a crash without restart has no end"
        );
        m.timing.faults.push(fault(Some(5.0), None));
        assert_eq!(worst_recovery(&m), Some(f64::INFINITY));
    }
}
