//! Whether one step of a stepped rate was sustained: the broker kept up with the offered rate
//! (acknowledged at least 98% of it after warmup), its consumers kept up too (the backlog did not
//! grow), and every bound of the search held. A pure function of the step's metrics, so a sweep
//! and a search judge their steps alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metrics::{find, Unit};
use super::Metrics;
use crate::workload::units::Bound;

/// Share of the offered rate a sustained step must have acknowledged, after warmup.
pub const KEEP_UP: f64 = 0.98;
/// Backlog growth, as a share of the offered rate per second, that counts as falling behind.
pub const BACKLOG_GROWTH: f64 = 0.02;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sustained {
    pub held: bool,
    /// Each reason it did not, in words (empty when it held).
    pub why_not: Vec<String>,
}

/// Judge one step: `offered` is its rate (None for `max`, which measures a ceiling and is never
/// a sustained rate), `consumers` whether the workload has any, `bounds` what must also hold.
pub fn sustained(
    offered: Option<f64>,
    m: &Metrics,
    warmup_s: f64,
    consumers: bool,
    bounds: &BTreeMap<String, Bound>,
) -> Sustained {
    let mut why_not = Vec::new();
    let achieved = acked_rate(m, warmup_s);
    match offered {
        None => why_not.push("offered as fast as the broker acknowledged (max): a ceiling".into()),
        Some(rate) => {
            if achieved < KEEP_UP * rate {
                why_not.push(format!(
                    "acknowledged {achieved:.0} msg/s, below {:.0}% of the {rate:.0} offered",
                    KEEP_UP * 100.0
                ));
            }
            let growth = backlog_growth(m, warmup_s);
            if consumers && growth > BACKLOG_GROWTH * rate {
                why_not.push(format!(
                    "the consumers fell behind: the backlog grew by {growth:.0} msg/s"
                ));
            }
        }
    }
    for (key, bound) in bounds {
        match m.metric(key) {
            None => why_not.push(format!("{key} was not measured")),
            Some(v) if !bound.holds(v) => why_not.push(format!(
                "{key} was {}, not {} {}",
                shown(key, v),
                bound.op.symbol(),
                shown(key, bound.value)
            )),
            Some(_) => {}
        }
    }
    Sustained {
        held: why_not.is_empty(),
        why_not,
    }
}

/// The measured seconds of the load: whole seconds after warmup, before the load's end.
fn measured(m: &Metrics, warmup_s: f64) -> impl Iterator<Item = &super::Window> {
    let last = m.timing.duration_s.floor() as u64;
    let first = warmup_s.ceil() as u64;
    m.timing
        .timeline
        .iter()
        .filter(move |w| w.second >= first && w.second < last)
}

/// Acknowledged sends per second over the measured seconds: what the broker kept up with. The
/// run's `throughput` divides by the time to the last acknowledgement, so one late answer after
/// the load's end would count as falling behind.
pub fn acked_rate(m: &Metrics, warmup_s: f64) -> f64 {
    let (n, acked) = measured(m, warmup_s).fold((0u64, 0u64), |(n, a), w| (n + 1, a + w.acked));
    if n == 0 {
        m.timing.throughput
    } else {
        acked as f64 / n as f64
    }
}

/// How fast the consumers' backlog (acknowledged, not yet processed) grew over the measured,
/// whole seconds of the load, in messages per second: the least-squares slope, so one slow
/// second does not decide it.
pub fn backlog_growth(m: &Metrics, warmup_s: f64) -> f64 {
    let points: Vec<(f64, f64)> = measured(m, warmup_s)
        .map(|w| (w.second as f64, w.unseen as f64))
        .collect();
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// A value of metric `key` as the reasons and a search's description show it: latencies in
/// milliseconds, the rest as numbers.
pub fn shown(key: &str, v: f64) -> String {
    match find(key).map(|m| m.unit) {
        Some(Unit::Seconds) => format!("{:.1} ms", v * 1e3),
        Some(Unit::Fraction) => format!("{:.2}%", v * 100.0),
        _ => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Window;

    fn step(throughput: f64, unseen: impl Fn(u64) -> i64, p99_s: f64) -> Metrics {
        let mut m = Metrics {
            timing: crate::check::TimingSection {
                throughput,
                duration_s: 10.0,
                ..Default::default()
            },
            ..Default::default()
        };
        m.timing.end_to_end_latency.count = 100;
        m.timing.end_to_end_latency.p99 = p99_s;
        m.timing.timeline = (0..10)
            .map(|s| Window {
                second: s,
                acked: throughput as u64,
                unseen: unseen(s),
                ..Default::default()
            })
            .collect();
        m
    }

    fn p99_under(s: f64) -> BTreeMap<String, Bound> {
        [(
            "p99_end_to_end".to_string(),
            format!("< {s}s").parse().unwrap(),
        )]
        .into()
    }

    #[test]
    fn a_step_that_keeps_up_within_its_bound_is_sustained() {
        // A steady backlog of what is in flight, 980 of 1000 msg/s acknowledged.
        let m = step(980.0, |_| 40, 0.02);
        let s = sustained(Some(1000.0), &m, 2.0, true, &p99_under(0.05));
        assert_eq!(
            s,
            Sustained {
                held: true,
                why_not: vec![]
            }
        );
        // A late acknowledgement after the load stretches `throughput`, not the per-second rate.
        let mut late = step(980.0, |_| 40, 0.02);
        late.timing.throughput = 900.0;
        assert!(sustained(Some(1000.0), &late, 2.0, true, &p99_under(0.05)).held);
    }

    #[test]
    fn each_way_of_falling_short_is_named() {
        let m = step(900.0, |_| 40, 0.02);
        let s = sustained(Some(1000.0), &m, 2.0, true, &BTreeMap::new());
        assert!(!s.held);
        assert!(s.why_not[0].contains("acknowledged 900 msg/s"), "{s:?}");

        // Consumers 100 msg/s behind: the backlog grows although every send was acknowledged.
        let m = step(1000.0, |t| 100 * t as i64, 0.02);
        let s = sustained(Some(1000.0), &m, 2.0, true, &BTreeMap::new());
        assert_eq!(s.why_not.len(), 1);
        assert!(s.why_not[0].contains("grew by 100 msg/s"), "{s:?}");
        // Without consumers, a growing backlog is the point of the run.
        assert!(sustained(Some(1000.0), &m, 2.0, false, &BTreeMap::new()).held);

        let m = step(1000.0, |_| 40, 0.08);
        let s = sustained(Some(1000.0), &m, 2.0, true, &p99_under(0.05));
        assert_eq!(s.why_not, ["p99_end_to_end was 80.0 ms, not < 50.0 ms"]);

        let s = sustained(None, &m, 2.0, true, &BTreeMap::new());
        assert!(!s.held, "max is a ceiling, not a sustained rate");
    }

    #[test]
    fn backlog_growth_ignores_warmup_and_the_last_partial_second() {
        // Growing during warmup (seconds 0-1) and in the drain after the load's 10 s only.
        let mut m = step(1000.0, |_| 0, 0.0);
        m.timing.timeline = (0..14)
            .map(|t| Window {
                second: t,
                unseen: if !(2..10).contains(&t) {
                    5000 * t as i64
                } else {
                    10_000
                },
                ..Default::default()
            })
            .collect();
        assert_eq!(backlog_growth(&m, 2.0), 0.0);
        m.timing.duration_s = 14.0;
        assert!(backlog_growth(&m, 2.0) > 1000.0);
    }
}
