//! The curve of a stepped workload: per broker, each step's achieved throughput and latency,
//! whether the step was sustained, and the highest rate that was. Kept in suite.json, drawn on
//! the suite's page; `compare` draws the same curves from the steps' own results.

use serde::{Deserialize, Serialize};

use super::format::fmt_num;
use super::plots::{curve_plot, Series, PALETTE};
use super::{BrokerResult, RunResult, Status};
use crate::check::expect::Verdict;
use crate::check::sustain::{acked_rate, Sustained};
use crate::check::LatencySummary;
use crate::workload::BrokerKind;

/// Which step of which stepped workload a run was (in its result.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Step {
    /// The stepped workload's own name (the run's is `name@rate`).
    pub of: String,
    /// Messages per second offered; None for `max`.
    pub offered: Option<f64>,
    /// The step's warmup, which its achieved rate leaves out.
    #[serde(default)]
    pub warmup_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curve {
    pub workload: String,
    /// How the rates were chosen, in words.
    pub plan: String,
    pub brokers: Vec<BrokerCurve>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerCurve {
    pub broker: BrokerKind,
    /// In the order they ran.
    pub points: Vec<Point>,
    /// The highest offered rate that was sustained; None when no step was.
    pub max_sustainable_rate: Option<f64>,
    /// The workload's `max_sustainable_rate` expectation, judged.
    pub verdict: Option<Verdict>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub run_id: String,
    pub offered: Option<f64>,
    /// Acknowledged sends per second after warmup.
    pub achieved: f64,
    /// Share of the acknowledged messages the consumers processed in the run: below 99%, the
    /// end-to-end latency is only of those that made it, a lower bound, and is not drawn.
    #[serde(default = "all")]
    pub processed: f64,
    pub sustained: Sustained,
    pub publish: Option<LatencySummary>,
    pub end_to_end: Option<LatencySummary>,
    /// The step's run measured nothing (the broker failed it): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The step's run could not vouch for its figures (a fault that did not happen, nothing
    /// measured, no final read): why. The curve's verdict is then not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<String>,
}

fn all() -> f64 {
    1.0
}

/// Below this share processed, a step's end-to-end latency is not drawn on its curve.
pub const DRAWN: f64 = 0.99;

impl Curve {
    /// The worst of its brokers' `max_sustainable_rate` verdicts.
    pub fn status(&self) -> Status {
        Status::worst(
            self.brokers
                .iter()
                .filter_map(|b| b.verdict.as_ref())
                .map(|v| Status::of(v.outcome)),
        )
    }
}

impl Point {
    /// Broker `b`'s point of the step run `r`.
    pub fn of(r: &RunResult, b: &BrokerResult, sustained: Sustained) -> Point {
        let m = b.metrics.as_ref();
        let warmup_s = r.step.as_ref().map_or(0.0, |s| s.warmup_s);
        Point {
            run_id: r.run_id.clone(),
            offered: r.step.as_ref().and_then(|s| s.offered),
            achieved: m.map_or(0.0, |m| acked_rate(m, warmup_s)),
            processed: m.map_or(0.0, |m| {
                if m.counts.acked == 0 {
                    1.0
                } else {
                    (m.delivery.delivered as f64 / m.counts.acked as f64).min(1.0)
                }
            }),
            sustained,
            publish: m.and_then(|m| m.timing.publish_latency.measured().cloned()),
            end_to_end: m.and_then(|m| m.timing.end_to_end_latency.measured().cloned()),
            error: b.error.clone(),
            inconclusive: b.inconclusive_because(),
        }
    }
}

/// One line of a curve plot: a broker (and, in compare, the run set it came from) through its
/// steps.
pub struct Line {
    pub name: String,
    pub points: Vec<Point>,
}

#[derive(Serialize)]
pub struct Plot {
    pub title: String,
    pub svg: String,
}

type Quantile = (&'static str, fn(&LatencySummary) -> f64);
const QUANTILES: [Quantile; 3] = [
    ("p50", |l| l.p50),
    ("p99", |l| l.p99),
    ("p99.9", |l| l.p999),
];

/// Latency against achieved throughput, end to end and for publishing, at p50, p99 and p99.9:
/// one plot each, one line per `Line`, its steps in the order of their throughput.
pub fn plots(lines: &[Line]) -> Vec<Plot> {
    type Side = (&'static str, fn(&Point) -> Option<&LatencySummary>);
    let sides: [Side; 2] = [
        ("end-to-end", |p| {
            p.end_to_end.as_ref().filter(|_| p.processed >= DRAWN)
        }),
        ("publish", |p| p.publish.as_ref()),
    ];
    let mut out = Vec::new();
    for (side, latency) in sides {
        for (q, value) in QUANTILES {
            let series: Vec<Series> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let mut pts: Vec<(f64, f64)> = l
                        .points
                        .iter()
                        .filter_map(|p| latency(p).map(|s| (p.achieved, value(s) * 1e3)))
                        .collect();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series::new(l.name.clone(), PALETTE[i % PALETTE.len()], pts)
                })
                .filter(|s| !s.points.is_empty())
                .collect();
            if series.is_empty() {
                continue;
            }
            let title = format!("{side} latency {q} against throughput");
            out.push(Plot {
                svg: curve_plot(&title, &series),
                title,
            });
        }
    }
    out
}

/// The curves of whichever runs were steps, grouped by the stepped workload they belong to and
/// by `label` (a broker, or a run set and a broker in compare), in first-seen order.
pub fn lines_of<'a>(
    runs: impl IntoIterator<Item = (String, &'a RunResult)>,
) -> Vec<(String, Vec<Line>)> {
    let mut groups: Vec<(String, Vec<Line>)> = Vec::new();
    for (label, r) in runs {
        let Some(step) = &r.step else { continue };
        let at = match groups.iter().position(|(w, _)| w == &step.of) {
            Some(i) => i,
            None => {
                groups.push((step.of.clone(), Vec::new()));
                groups.len() - 1
            }
        };
        for b in &r.brokers {
            let name = if label.is_empty() {
                b.broker.to_string()
            } else {
                format!("{label} {}", b.broker)
            };
            let p = Point::of(r, b, Sustained::default());
            let lines = &mut groups[at].1;
            match lines.iter_mut().find(|l| l.name == name) {
                Some(l) => l.points.push(p),
                None => lines.push(Line {
                    name,
                    points: vec![p],
                }),
            }
        }
    }
    groups
}

/// A rate as the curve tables show it.
pub fn fmt_rate(r: Option<f64>) -> String {
    r.map_or("max".into(), |r| format!("{}/s", fmt_num(r.round())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(achieved: f64, p99_ms: f64) -> Point {
        let l = LatencySummary {
            count: 10,
            p50: p99_ms / 2e3,
            p99: p99_ms / 1e3,
            p999: p99_ms / 1e3,
            max: p99_ms / 1e3,
        };
        Point {
            run_id: "r".into(),
            offered: Some(achieved),
            achieved,
            processed: 1.0,
            sustained: Sustained::default(),
            publish: None,
            end_to_end: Some(l),
            error: None,
            inconclusive: None,
        }
    }

    #[test]
    fn one_plot_per_side_and_quantile_that_has_points() {
        let lines = [Line {
            name: "kafka".into(),
            points: vec![point(2000.0, 9.0), point(1000.0, 4.0)],
        }];
        let p = plots(&lines);
        // Publish latency was not measured: only the three end-to-end plots.
        let titles: Vec<&str> = p.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "end-to-end latency p50 against throughput",
                "end-to-end latency p99 against throughput",
                "end-to-end latency p99.9 against throughput"
            ]
        );
        assert!(p[1].svg.starts_with("<svg"), "{}", &p[1].svg[..80]);
        assert!(p[1].svg.contains("kafka"));
    }
}
