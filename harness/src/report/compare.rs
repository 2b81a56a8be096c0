//! `brokerbench compare`: several runs or brokers side by side, and, against a baseline, each
//! metric's change with a regression flag (for nightly CI).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use minijinja::context;
use serde::Serialize;

use super::format::fmt_metric;
use super::html::{histogram, page};
use super::judge::{self, Change, Judgement};
use super::plots::{self, Series, PALETTE};
use super::sweep;
use super::{RunResult, Status};
use crate::check::metrics::{Metric, METRICS};
use crate::check::Metrics;
use crate::workload::BrokerKind;
use std::collections::BTreeMap;

const TEMPLATE: &str = include_str!("templates/compare.html");

/// One (run, broker) column.
#[derive(Clone)]
pub struct Column {
    pub label: String,
    pub run_id: String,
    pub workload: String,
    /// The workload's digest as the run recorded it (empty in older results).
    pub digest: String,
    pub broker: BrokerKind,
    pub product: String,
    pub status: Status,
    pub metrics: Metrics,
}

/// The runs at `path`: a result.json file, a run directory, or a directory of runs (a suite
/// run, or a night's repeats), each run in a folder of its own.
pub fn load(path: &Path) -> Result<Vec<RunResult>> {
    if !path.is_dir() {
        return Ok(vec![RunResult::read(path)?]);
    }
    if path.join("result.json").is_file() {
        return Ok(vec![RunResult::read(&path.join("result.json"))?]);
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path().join("result.json")))
        .filter(|f| f.is_file())
        .collect();
    runs.sort();
    anyhow::ensure!(
        !runs.is_empty(),
        "{} holds no run (no result.json in it or in its folders)",
        path.display()
    );
    runs.iter().map(|f| RunResult::read(f)).collect()
}

pub fn columns(results: &[RunResult]) -> Vec<Column> {
    let many_runs = results.len() > 1;
    results
        .iter()
        .flat_map(|r| {
            r.brokers.iter().filter_map(move |b| {
                let metrics = b.metrics.clone()?;
                let label = if many_runs {
                    format!("{} · {}", b.broker, short(&r.run_id))
                } else {
                    b.broker.to_string()
                };
                Some(Column {
                    label,
                    run_id: r.run_id.clone(),
                    workload: r.workload.clone(),
                    digest: r.workload_digest.clone(),
                    broker: b.broker.clone(),
                    product: b.product.clone(),
                    status: b.status(),
                    metrics,
                })
            })
        })
        .collect()
}

fn short(run_id: &str) -> String {
    run_id.splitn(3, '-').take(2).collect::<Vec<_>>().join("-")
}

/// The noise threshold per metric: a change must lie beyond it to count (`--threshold 10%`
/// for every metric, `--threshold p99_end_to_end=25%` for one). Left unset, each metric's own
/// (`Metric::default_noise`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    pub all: Option<f64>,
    pub per_metric: BTreeMap<String, f64>,
}

impl Thresholds {
    pub fn of(&self, metric: &Metric) -> f64 {
        self.per_metric
            .get(metric.key)
            .copied()
            .or(self.all)
            .unwrap_or_else(|| metric.default_noise())
    }

    /// Add one `--threshold` value: `10%` for every metric, or `KEY=10%` for one metric.
    pub fn set(
        &mut self,
        arg: &str,
        parse: impl Fn(&str) -> Result<f64, String>,
    ) -> Result<(), String> {
        match arg.split_once('=') {
            None => self.all = Some(parse(arg)?),
            Some((key, value)) => {
                let key = key.trim();
                if crate::check::metrics::find(key).is_none() {
                    return Err(format!("--threshold {arg}: no metric is named `{key}`"));
                }
                self.per_metric.insert(key.to_string(), parse(value)?);
            }
        }
        Ok(())
    }
}

/// One metric of one workload × broker against the baseline.
#[derive(Debug, Serialize)]
pub struct Judged {
    /// "workload · broker"
    pub subject: String,
    pub key: &'static str,
    pub metric: &'static str,
    pub baseline: String,
    pub now: String,
    pub runs: (usize, usize),
    pub threshold: String,
    pub judgement: Judgement,
    pub change: &'static str,
    pub text: String,
    /// The workload was edited since the baseline (its digest differs).
    pub edited: bool,
}

/// What to do with a workload whose digest differs from the baseline's: it was edited under the
/// same name, so the two sides measured different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    /// Judge it anyway, and say so: comparing a tuned workload with the baseline is a question
    /// people ask on purpose.
    Judge,
    /// Judge nothing of it: a nightly job's first night after an edit is not a regression.
    Skip,
}

/// Columns grouped by what they measured: (workload, broker) → its runs' metrics.
fn groups(columns: &[Column]) -> BTreeMap<(String, BrokerKind), Vec<&Metrics>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for c in columns {
        out.entry((c.workload.clone(), c.broker.clone()))
            .or_default()
            .push(&c.metrics);
    }
    out
}

/// The median of the runs' figures for `metric`, as the reports show it.
fn figure(metric: &Metric, runs: &[&Metrics]) -> String {
    fmt_metric(metric, median_figure(metric, runs))
}

/// The median of the runs' own figures for `metric` (repeats of one workload on one broker).
pub fn median_figure(metric: &Metric, runs: &[&Metrics]) -> Option<f64> {
    let mut v: Vec<f64> = runs.iter().filter_map(|m| (metric.get)(m)).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Every metric of every workload × broker that both sides measured, judged against the
/// baseline. Refuses a baseline that has nothing in common with the runs.
pub fn judgements(
    columns: &[Column],
    baseline: &[Column],
    thresholds: &Thresholds,
    edited: Edited,
) -> Result<Vec<Judged>> {
    let (now, base) = (groups(columns), groups(baseline));
    let common: Vec<_> = now.keys().filter(|k| base.contains_key(k)).collect();
    if common.is_empty() {
        let names = |g: &BTreeMap<(String, BrokerKind), Vec<&Metrics>>| {
            g.keys()
                .map(|(w, b)| format!("{w} on {b}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        anyhow::bail!(
            "the baseline measured {}, these runs {}: nothing to compare (a baseline must be a run of the same workload on the same broker)",
            names(&base),
            names(&now)
        );
    }
    let digests = |side: &'_ [Column], key: &(String, BrokerKind)| {
        side.iter()
            .filter(|c| c.workload == key.0 && c.broker == key.1)
            .map(|c| c.digest.clone())
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for key in common {
        let (n, b) = (&now[key], &base[key]);
        let (dn, db) = (digests(columns, key), digests(baseline, key));
        let same = super::same_workload(dn.iter().chain(&db).map(String::as_str));
        for metric in METRICS {
            let threshold = thresholds.of(metric);
            let judgement = if same || edited == Edited::Judge {
                judge::judge(metric, b, n, threshold)
            } else {
                judge::Judgement::not_judged(super::WORKLOAD_CHANGED)
            };
            out.push(Judged {
                subject: format!("{} · {}", key.0, key.1),
                key: metric.key,
                metric: metric.label,
                baseline: figure(metric, b),
                now: figure(metric, n),
                runs: (b.len(), n.len()),
                threshold: format!("{:.0}%", threshold * 100.0),
                change: judgement.change.as_str(),
                text: judgement.text(),
                edited: !same,
                judgement,
            });
        }
    }
    Ok(out)
}

pub fn render(
    columns: &[Column],
    baseline: Option<(&str, &[Column])>,
    thresholds: &Thresholds,
    edited: Edited,
    curves: &[(String, Vec<sweep::Line>)],
) -> Result<(String, Vec<Judged>)> {
    let judged = match baseline {
        Some((_, b)) => judgements(columns, b, thresholds, edited)?,
        None => Vec::new(),
    };
    let rows = metric_rows(columns, &judged);
    let plots = side_by_side_plots(columns);
    let cols: Vec<_> = columns
        .iter()
        .map(|c| context! { label => c.label, workload => c.workload, product => c.product, run_id => c.run_id, verdict => c.status.label(), class => c.status.class() })
        .collect();
    let html = page(
        "compare.html",
        TEMPLATE,
        context! {
        columns => cols,
        rows => rows,
        plots => plots,
        curves => curves.iter().map(|(w, lines)| context! { workload => w, plots => sweep::plots(lines) }).collect::<Vec<_>>(),
        baseline => baseline.map(|(name, _)| name),
        threshold => thresholds.all.map_or("per metric (see below)".to_string(), |t| format!("{:.0}%", t * 100.0)),
        regressions => judged.iter().filter(|j| j.judgement.change == Change::Regressed).collect::<Vec<_>>(),
        judged => judged.iter().filter(|j| j.judgement.change != Change::NotJudged).collect::<Vec<_>>(),
        edited => judged.iter().filter(|j| j.edited).map(|j| j.subject.clone()).collect::<std::collections::BTreeSet<_>>(),
        why_edited => super::WORKLOAD_CHANGED,
        not_judged => judged.iter().filter(|j| j.judgement.change == Change::NotJudged).map(|j| format!("{} ({})", j.metric, j.judgement.basis)).collect::<std::collections::BTreeSet<_>>(),
        },
    )?;
    Ok((html, judged))
}

/// One row per metric: each column's value, its change against the baseline, and whether it
/// is the best of the row or regressed.
fn metric_rows(columns: &[Column], judged: &[Judged]) -> Vec<minijinja::Value> {
    let verdict = |c: &Column, key: &str| {
        let subject = format!("{} · {}", c.workload, c.broker);
        judged.iter().find(|j| j.subject == subject && j.key == key)
    };
    METRICS
        .iter()
        .map(|metric| {
            let lower_better = metric.lower_is_better();
            let vals: Vec<Option<f64>> = columns.iter().map(|c| (metric.get)(&c.metrics)).collect();
            let finite: Vec<f64> = vals
                .iter()
                .flatten()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            let best = if lower_better {
                finite.iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                finite.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            };
            let distinct = finite.iter().any(|v| *v != best);
            let cells: Vec<_> = columns
                .iter()
                .zip(&vals)
                .map(|(c, v)| {
                    let judged = verdict(c, metric.key);
                    let chg = judged.map(|j| match j.judgement.change {
                        Change::NotJudged => j.change.to_string(),
                        _ => format!("{} {}", j.change, j.text),
                    });
                    let regressed = judged.is_some_and(|j| j.judgement.change == Change::Regressed);
                    let class = if regressed {
                        "worse"
                    } else if distinct && *v == Some(best) {
                        "best"
                    } else {
                        ""
                    };
                    context! { value => fmt_metric(metric, *v), change => chg, class => class }
                })
                .collect();
            context! { label => metric.label, cells => cells }
        })
        .collect()
}

/// The columns' throughput, p99, latency distribution and lag, drawn together.
fn side_by_side_plots(columns: &[Column]) -> Vec<minijinja::Value> {
    let color = |i: usize| PALETTE[i % PALETTE.len()];
    let timeline = |f: fn(&crate::check::Window) -> Option<f64>| -> Vec<Series> {
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Series::new(
                    c.label.clone(),
                    color(i),
                    c.metrics
                        .timing
                        .timeline
                        .iter()
                        .filter_map(|w| f(w).map(|v| (w.second as f64 + 0.5, v)))
                        .collect(),
                )
            })
            .collect()
    };
    let quantiles: Vec<Series> = columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            histogram(&c.metrics.timing.end_to_end_histogram)
                .map(|h| Series::new(c.label.clone(), color(i), plots::quantile_curve(&h)))
        })
        .collect();
    vec![
        context! { title => "Acknowledged throughput", svg => plots::time_plot("acked messages / s", "messages / s", &timeline(|w| Some(w.acked as f64)), &[], 1.0) },
        context! { title => "End-to-end p99 over time", svg => plots::time_plot("end-to-end p99", "ms", &timeline(|w| w.e2e_p99_ms), &[], 1.0) },
        context! { title => "End-to-end latency by percentile", svg => plots::quantile_plot("end-to-end latency quantiles", &quantiles) },
        context! { title => "Unseen (lag)", svg => plots::time_plot("unseen messages", "messages", &timeline(|w| Some(w.unseen.max(0) as f64)), &[], 1.0) },
    ]
}

/// Load runs and an optional baseline, write `<out>/index.html`, return the regressions.
pub fn compare(
    paths: &[PathBuf],
    baseline: Option<&Path>,
    thresholds: &Thresholds,
    edited: Edited,
    out: &Path,
) -> Result<Vec<Judged>> {
    let mut loaded = Vec::new();
    for p in paths {
        let label = match paths.len() {
            1 => String::new(),
            _ => p.file_name().map_or(p.display().to_string(), |n| {
                n.to_string_lossy().into_owned()
            }),
        };
        loaded.push((label, load(p)?));
    }
    // Steps of a stepped workload also make curves, one line per run set and broker.
    let curves = sweep::lines_of(
        loaded
            .iter()
            .flat_map(|(label, runs)| runs.iter().map(move |r| (label.clone(), r))),
    );
    let results: Vec<RunResult> = loaded.into_iter().flat_map(|(_, r)| r).collect();
    let cols = columns(&results);
    anyhow::ensure!(
        !cols.is_empty(),
        "none of the given runs has measured results"
    );
    let base = baseline.map(load).transpose()?;
    let base_cols = base.as_deref().map(columns);
    let base_name = baseline.map(|p| p.display().to_string());
    let (html, judged) = render(
        &cols,
        base_name.as_deref().zip(base_cols.as_deref()),
        thresholds,
        edited,
        &curves,
    )?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("index.html"), html)
        .with_context(|| format!("writing {}/index.html", out.display()))?;
    Ok(judged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 30-second run whose per-second acks wobble ±5% around `throughput`.
    fn col(broker: BrokerKind, throughput: f64, lost: u64) -> Column {
        let timeline = (0..32)
            .map(|s| crate::check::Window {
                second: s,
                acked: (throughput * (1.0 + 0.05 * ((s % 5) as f64 - 2.0) / 2.0)) as u64,
                ..Default::default()
            })
            .collect();
        let metrics = Metrics {
            timing: crate::check::TimingSection {
                throughput,
                duration_s: 30.0,
                timeline,
                ..Default::default()
            },
            delivery: crate::check::DeliverySection {
                lost,
                ..Default::default()
            },
            ..Default::default()
        };
        Column {
            label: broker.to_string(),
            run_id: "r".into(),
            workload: "w".into(),
            digest: "d1".into(),
            broker,
            product: String::new(),
            status: Status::Pass,
            metrics,
        }
    }

    fn regressed(judged: &[Judged]) -> Vec<(&str, &str)> {
        judged
            .iter()
            .filter(|j| j.judgement.change == Change::Regressed)
            .map(|j| (j.subject.as_str(), j.key))
            .collect()
    }

    #[test]
    fn regressions_are_found_per_broker_and_workload() {
        let base = vec![
            col(BrokerKind::new("kafka"), 1000.0, 0),
            col(BrokerKind::new("rabbitmq"), 500.0, 0),
        ];
        let now = vec![
            col(BrokerKind::new("kafka"), 700.0, 0),
            col(BrokerKind::new("rabbitmq"), 520.0, 2),
        ];
        let judged = judgements(&now, &base, &Thresholds::default(), Edited::Judge).unwrap();
        assert_eq!(
            regressed(&judged),
            vec![("w · kafka", "throughput"), ("w · rabbitmq", "lost")]
        );
        // +4% is inside the noise threshold.
        let up = judged
            .iter()
            .find(|j| j.subject == "w · rabbitmq" && j.key == "throughput")
            .unwrap();
        assert_eq!(up.judgement.change, Change::NoChange, "{up:?}");
        // A threshold of its own for one metric: a 30% drop is within 40%.
        let mut t = Thresholds::default();
        t.set("throughput=40%", |v| {
            Ok(v.trim_end_matches('%').parse::<f64>().unwrap() / 100.0)
        })
        .unwrap();
        let judged = judgements(&now, &base, &t, Edited::Judge).unwrap();
        assert_eq!(regressed(&judged), vec![("w · rabbitmq", "lost")]);
        assert!(t.set("trhoughput=5%", |_| Ok(0.05)).is_err());
    }

    #[test]
    fn a_workload_edited_under_the_same_name_is_judged_only_when_asked() {
        let mut edited = col(BrokerKind::new("kafka"), 500.0, 3);
        edited.digest = "d2".into();
        let base = [col(BrokerKind::new("kafka"), 1000.0, 0)];
        let both = vec![("w · kafka", "lost"), ("w · kafka", "throughput")];
        // Asked on purpose (a tuned workload against the baseline): judged, and marked edited.
        let judged = judgements(
            &[edited.clone()],
            &base,
            &Thresholds::default(),
            Edited::Judge,
        )
        .unwrap();
        assert_eq!(regressed(&judged), both);
        assert!(judged.iter().all(|j| j.edited));
        // The nightly use: nothing judged, and why.
        let judged = judgements(&[edited], &base, &Thresholds::default(), Edited::Skip).unwrap();
        assert!(!judged.is_empty());
        for j in &judged {
            assert_eq!(j.judgement.change, Change::NotJudged, "{j:?}");
            assert_eq!(j.judgement.basis, super::super::WORKLOAD_CHANGED);
        }
        // A result from before digests existed is judged as it always was.
        let mut old = col(BrokerKind::new("kafka"), 500.0, 3);
        old.digest = String::new();
        let judged = judgements(&[old], &base, &Thresholds::default(), Edited::Skip).unwrap();
        assert_eq!(regressed(&judged), both);
        assert!(judged.iter().all(|j| !j.edited));
    }

    #[test]
    fn a_baseline_of_another_workload_is_refused() {
        let mut other = col(BrokerKind::new("kafka"), 1000.0, 0);
        other.workload = "other".into();
        let now = [col(BrokerKind::new("kafka"), 1000.0, 0)];
        let e = judgements(&now, &[other], &Thresholds::default(), Edited::Judge).unwrap_err();
        assert!(e.to_string().contains("other on kafka"), "{e}");
        assert!(e.to_string().contains("nothing to compare"), "{e}");
    }

    #[test]
    fn comparison_page_highlights_the_best_and_escapes_names() {
        let mut a = col(BrokerKind::new("kafka"), 1000.0, 0);
        a.workload = "<script>alert(1)</script>".into();
        let b = col(BrokerKind::new("rabbitmq"), 500.0, 0);
        let (html, judged) =
            render(&[a, b], None, &Thresholds::default(), Edited::Judge, &[]).unwrap();
        assert!(judged.is_empty());
        assert!(
            html.contains("<td class=\"best\">1000"),
            "best throughput highlighted"
        );
        assert!(!html.contains("<script>alert(1)</script>") && html.contains("&lt;script&gt;"));
    }
}
