//! A suite run's own outputs: the matrix page (workload × broker, one cell per repetition,
//! each linking to its run's report), one junit.xml for every run, and suite.json, which names
//! the runs for `compare` and `trend`.

use std::path::Path;

use anyhow::{Context, Result};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::format::fmt_metric;
use super::html::page;
use super::sweep::{self, fmt_rate, Curve, Line};
use super::{junit, RunResult, Status};
use crate::check::expect::Outcome;
use crate::check::metrics::find;

const TEMPLATE: &str = include_str!("templates/suite.html");

/// suite.json: what the suite was and which runs it made, in the order they ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteRun {
    pub suite: String,
    pub description: String,
    pub started_at: String,
    /// Each run's directory name (its run id), next to suite.json.
    pub runs: Vec<String>,
    /// Runs that could not even start (unreachable broker before any history): what failed.
    pub errors: Vec<String>,
    /// The curve of each stepped workload (a sweep or a search), built from its steps' runs.
    #[serde(default)]
    pub curves: Vec<Curve>,
}

impl SuiteRun {
    /// The worst of its runs and curves; a run that could not even start is inconclusive.
    pub fn status(&self, runs: &[RunResult]) -> Status {
        let errors = (!self.errors.is_empty()).then_some(Status::Inconclusive);
        Status::worst(
            runs.iter()
                .map(RunResult::status)
                .chain(self.curves.iter().map(Curve::status))
                .chain(errors),
        )
    }
}

/// The figures each cell shows, from the metric registry.
const KEY_FIGURES: &[&str] = &["throughput", "p99_end_to_end", "lost"];

pub fn render(s: &SuiteRun, runs: &[RunResult]) -> Result<String> {
    let mut workloads: Vec<&str> = Vec::new();
    let mut brokers: Vec<String> = Vec::new();
    for r in runs {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
        for b in &r.brokers {
            if !brokers.contains(&b.broker.to_string()) {
                brokers.push(b.broker.to_string());
            }
        }
    }
    let figures: Vec<_> = KEY_FIGURES.iter().filter_map(|k| find(k)).collect();
    let rows: Vec<_> = workloads
        .iter()
        .map(|w| {
            let cells: Vec<_> = brokers
                .iter()
                .map(|broker| {
                    let reps: Vec<_> = runs
                        .iter()
                        .filter(|r| r.workload == *w)
                        .filter_map(|r| {
                            let b = r.brokers.iter().find(|b| b.broker.as_str() == broker)?;
                            let status = b.status();
                            let verdict = if b.metrics.is_none() {
                                "ERROR"
                            } else {
                                status.label()
                            };
                            let shown: Vec<String> = figures
                                .iter()
                                .map(|m| {
                                    let v = b.metrics.as_ref().and_then(|x| (m.get)(x));
                                    format!("{} {}", m.key, fmt_metric(m, v))
                                })
                                .collect();
                            let failed: Vec<String> = b
                                .verdicts
                                .iter()
                                .filter(|v| v.outcome == Outcome::Fail)
                                .map(|v| v.metric.clone())
                                .chain(b.error.iter().cloned())
                                .collect();
                            Some(context! {
                                verdict => verdict,
                                class => status.class(),
                                why => b.inconclusive_because(),
                                link => format!("{}/index.html", r.run_id),
                                figures => shown.join(" · "),
                                failed => failed.join("; "),
                            })
                        })
                        .collect();
                    context! { reps => reps }
                })
                .collect();
            context! { workload => w, cells => cells }
        })
        .collect();
    let status = s.status(runs);
    let curves: Vec<_> = s.curves.iter().map(|c| curve_view(c, runs)).collect();
    page(
        "suite.html",
        TEMPLATE,
        context! {
        suite => s,
        brokers => brokers,
        rows => rows,
        status => context! { label => status.label(), class => status.class() },
        runs => runs.len(),
        curves => curves,
        },
    )
}

/// Write (or rewrite, after each run) the suite's page, junit.xml and suite.json into `dir`.
pub fn write(dir: &Path, s: &SuiteRun, runs: &[RunResult]) -> Result<()> {
    let json = serde_json::to_string_pretty(s)?;
    std::fs::write(dir.join("suite.json"), json)
        .with_context(|| format!("writing {}/suite.json", dir.display()))?;
    std::fs::write(
        dir.join("junit.xml"),
        junit::render_all(&s.suite, runs, &curve_verdicts(&s.curves)),
    )
    .with_context(|| format!("writing {}/junit.xml", dir.display()))?;
    std::fs::write(dir.join("index.html"), render(s, runs)?)
        .with_context(|| format!("writing {}/index.html", dir.display()))
}

/// The curves' own verdicts, each named `<workload>.<broker>` as junit.xml names its suites.
fn curve_verdicts(curves: &[Curve]) -> Vec<(String, crate::check::expect::Verdict)> {
    curves
        .iter()
        .flat_map(|c| {
            c.brokers.iter().filter_map(move |b| {
                Some((format!("{}.{}", c.workload, b.broker), b.verdict.clone()?))
            })
        })
        .collect()
}

/// A curve as the suite's page shows it: each broker's highest sustained rate and verdict, the
/// latency-against-throughput plots, and a row per step linking to its run.
fn curve_view(c: &Curve, runs: &[RunResult]) -> minijinja::Value {
    let lines: Vec<Line> = c
        .brokers
        .iter()
        .map(|b| Line {
            name: b.broker.to_string(),
            points: b
                .points
                .iter()
                .filter(|p| p.error.is_none())
                .cloned()
                .collect(),
        })
        .collect();
    let ms = |l: Option<&crate::check::LatencySummary>,
              q: fn(&crate::check::LatencySummary) -> f64| {
        l.map_or("—".to_string(), |l| super::format::fmt_secs(q(l)))
    };
    let brokers: Vec<_> = c
        .brokers
        .iter()
        .map(|b| {
            let steps: Vec<_> = b
                .points
                .iter()
                .map(|p| {
                    let e = p.end_to_end.as_ref();
                    context! {
                        offered => fmt_rate(p.offered),
                        achieved => format!("{:.0}", p.achieved),
                        e2e => {
                            let shown = format!("{} / {} / {}", ms(e, |l| l.p50), ms(e, |l| l.p99), ms(e, |l| l.p999));
                            if p.processed < sweep::DRAWN && e.is_some() {
                                format!("≥ {shown} (of the {:.0}% processed; not drawn)", p.processed * 100.0)
                            } else {
                                shown
                            }
                        },
                        publish => ms(p.publish.as_ref(), |l| l.p99),
                        held => p.sustained.held,
                        why => p.error.clone().into_iter().chain(p.sustained.why_not.iter().cloned()).collect::<Vec<_>>().join("; "),
                        link => runs.iter().any(|r| r.run_id == p.run_id).then(|| format!("{}/index.html", p.run_id)),
                    }
                })
                .collect();
            context! {
                broker => b.broker.to_string(),
                found => b.max_sustainable_rate.map_or("none of the steps".to_string(), |r| fmt_rate(Some(r))),
                verdict => b.verdict.as_ref().map(|v| context! { label => v.outcome.label(), class => Status::of(v.outcome).class(), bound => v.bound.clone(), note => v.note.clone() }),
                steps => steps,
            }
        })
        .collect();
    context! {
        workload => c.workload.clone(),
        plan => c.plan.clone(),
        brokers => brokers,
        plots => sweep::plots(&lines),
    }
}
