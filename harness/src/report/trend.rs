//! `brokerbench trend`: the key metrics over many nights, one line per workload × broker. Each
//! night is judged against the night before (as `compare --baseline` would), so a regression
//! is marked where it happened; a night whose run failed an expectation is marked too.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use minijinja::context;

use super::compare::{self, median_figure, Thresholds};
use super::format::fmt_metric;
use super::html::page;
use super::judge::{judge, Change, Judgement};
use super::plots::{self, Series, PALETTE};
use super::{same_workload, WORKLOAD_CHANGED};
use super::{RunResult, Status};
use crate::check::metrics::{find, Metric, Unit};
use crate::check::Metrics;

const TEMPLATE: &str = include_str!("templates/trend.html");

/// The metrics a trend page draws, in this order.
const KEY: &[&str] = &[
    "throughput",
    "p99_end_to_end",
    "p99_publish",
    "lost",
    "unread",
    "recovery_time",
    "send_outage",
];

/// One night: everything one path given to `trend` holds (a run, or a suite run with repeats).
struct Night {
    label: String,
    path: PathBuf,
    results: Vec<RunResult>,
}

impl Night {
    /// This night's runs of one workload on one broker, the worst of their statuses, why any
    /// was inconclusive, and the digests of the workload they ran.
    fn of(&self, workload: &str, broker: &str) -> (Vec<&Metrics>, Status, String, Vec<&str>) {
        let mut status = Status::Pass;
        let mut why = Vec::new();
        let mut runs = Vec::new();
        let mut digests = Vec::new();
        for r in self.results.iter().filter(|r| r.workload == workload) {
            for b in r.brokers.iter().filter(|b| b.broker.as_str() == broker) {
                status = status.max(b.status());
                why.extend(b.inconclusive_because());
                runs.extend(b.metrics.as_ref());
                digests.push(r.workload_digest.as_str());
            }
        }
        (runs, status, why.join("; "), digests)
    }
}

/// A regression found between two nights, for the table under the plots.
#[derive(serde::Serialize)]
struct Marked {
    night: String,
    subject: String,
    metric: &'static str,
    before: String,
    after: String,
    change: String,
}

/// What the nights say beyond their plots: the regressions marked, where the workload changed,
/// which runs could not vouch for their figures, and how many regressions the newest night has.
#[derive(Default)]
struct Findings {
    marked: Vec<Marked>,
    /// (night, workload · broker) where the workload differs from the night before's.
    changed: Vec<(String, String)>,
    /// (night, workload · broker, why) whose runs could not vouch for their figures.
    untrusted: Vec<(String, String, String)>,
    newest_regressions: usize,
}

/// Read the nights at `paths` (oldest first, by start time), write `<out>/index.html`, and
/// return how many regressions the newest night has against the one before it.
pub fn trend(paths: &[PathBuf], out: &Path) -> Result<usize> {
    let nights = load_nights(paths)?;
    let subjects = subjects_of(&nights);
    let labels: Vec<String> = nights.iter().map(|n| n.label.clone()).collect();
    let mut findings = Findings::default();
    let mut plots = Vec::new();
    for metric in KEY.iter().filter_map(|k| find(k)) {
        let mut marks = plots::NightMarks::default();
        let series: Vec<Series> = subjects
            .iter()
            .enumerate()
            .map(|(i, subject)| {
                let points = points_of(metric, subject, &nights, &mut marks, &mut findings);
                let name = format!("{} · {}", subject.0, subject.1);
                Series::new(name, PALETTE[i % PALETTE.len()], points)
            })
            .collect();
        let svg = plots::trend_plot(metric.label, unit_label(metric), &series, &marks, &labels);
        plots.push(context! { title => metric.label, svg => svg });
    }
    write_page(out, &nights, plots, &findings)?;
    Ok(findings.newest_regressions)
}

/// The nights at `paths`, oldest first by the start of their first run.
fn load_nights(paths: &[PathBuf]) -> Result<Vec<Night>> {
    let mut nights = Vec::new();
    for p in paths {
        let results = compare::load(p)?;
        let started = results
            .iter()
            .map(|r| r.started_at.clone())
            .min()
            .unwrap_or_default();
        nights.push((started, p.clone(), results));
    }
    nights.sort_by(|a, b| a.0.cmp(&b.0));
    let nights: Vec<Night> = nights
        .into_iter()
        .map(|(started, path, results)| Night {
            // 2026-12-01T02:00:00Z → "12-01 02:00"
            label: started.get(5..16).unwrap_or(&started).replace('T', " "),
            path,
            results,
        })
        .collect();
    anyhow::ensure!(!nights.is_empty(), "no nights given");
    Ok(nights)
}

/// Every workload × broker any night measured, in first-seen order.
fn subjects_of(nights: &[Night]) -> Vec<(String, String)> {
    let mut subjects: Vec<(String, String)> = Vec::new();
    for n in nights {
        for r in &n.results {
            for b in &r.brokers {
                let s = (r.workload.clone(), b.broker.to_string());
                if !subjects.contains(&s) {
                    subjects.push(s);
                }
            }
        }
    }
    subjects
}

/// One subject's points of `metric`, night by night, each night judged against the last one
/// before it that could vouch for its figures; what is marked goes to `marks` and `findings`.
fn points_of(
    metric: &'static Metric,
    (w, b): &(String, String),
    nights: &[Night],
    marks: &mut plots::NightMarks,
    findings: &mut Findings,
) -> Vec<(f64, f64)> {
    let subject = format!("{w} · {b}");
    let mut points = Vec::new();
    let mut previous: Option<(Vec<&Metrics>, Vec<&str>)> = None;
    for (x, night) in nights.iter().enumerate() {
        let (runs, status, why, digests) = night.of(w, b);
        if runs.is_empty() {
            previous = None;
            continue;
        }
        let Some(v) = median_figure(metric, &runs) else {
            continue;
        };
        let point = (x as f64, shown(metric, v));
        points.push(point);
        if status == Status::Fail {
            marks.failed.push(point);
        }
        // A night that could not vouch for its figures is drawn but never judged, nor
        // judged against: the next night is judged against the last one that could.
        if status == Status::Inconclusive {
            marks.inconclusive.push(point);
            let row = (night.label.clone(), subject.clone(), why);
            if !findings.untrusted.contains(&row) {
                findings.untrusted.push(row);
            }
            continue;
        }
        if let Some((before, before_digests)) = &previous {
            let same = same_workload(before_digests.iter().chain(&digests).copied());
            let at = (night.label.clone(), subject.clone());
            if !same && !findings.changed.contains(&at) {
                findings.changed.push(at);
            }
            let j = if same {
                judge(metric, before, &runs, Thresholds::default().of(metric))
            } else {
                Judgement::not_judged(WORKLOAD_CHANGED)
            };
            if j.change == Change::Regressed {
                marks.regressed.push(point);
                if x + 1 == nights.len() {
                    findings.newest_regressions += 1;
                }
                findings.marked.push(Marked {
                    night: night.label.clone(),
                    subject: subject.clone(),
                    metric: metric.label,
                    before: median_figure(metric, before)
                        .map_or("—".into(), |v| fmt_metric(metric, Some(v))),
                    after: fmt_metric(metric, Some(v)),
                    change: j.text(),
                });
            }
        }
        previous = Some((runs, digests));
    }
    points
}

/// The trend page: the nights, a plot per key metric, and the findings.
fn write_page(
    out: &Path,
    nights: &[Night],
    plots: Vec<minijinja::Value>,
    f: &Findings,
) -> Result<()> {
    let list: Vec<_> = nights
        .iter()
        .map(|n| {
            let status = Status::worst(n.results.iter().map(RunResult::status));
            context! { label => n.label, path => n.path.display().to_string(), runs => n.results.len(), verdict => status.label(), class => status.class() }
        })
        .collect();
    let changed: Vec<_> = f
        .changed
        .iter()
        .map(|(night, subject)| context! { night, subject })
        .collect();
    let inconclusive: Vec<_> = f
        .untrusted
        .iter()
        .map(|(night, subject, why)| context! { night, subject, why })
        .collect();
    let html = page(
        "trend.html",
        TEMPLATE,
        context! {
            nights => list,
            plots => plots,
            marked => f.marked,
            changed => changed,
            why_changed => WORKLOAD_CHANGED,
            inconclusive => inconclusive,
        },
    )?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("index.html"), html)
        .with_context(|| format!("writing {}/index.html", out.display()))
}

/// The value as plotted: latency in ms, a recovery that never happened at the top.
fn shown(metric: &Metric, v: f64) -> f64 {
    let v = if v.is_finite() { v } else { 0.0 };
    match metric.unit {
        Unit::Seconds => v * 1e3,
        Unit::Fraction => v * 100.0,
        Unit::Bytes => v / (1024.0 * 1024.0),
        _ => v,
    }
}

fn unit_label(metric: &Metric) -> &'static str {
    match metric.unit {
        Unit::Seconds => "ms",
        Unit::Fraction => "%",
        Unit::PerSecond => "messages / s",
        Unit::Count => "count",
        Unit::Bytes => "MiB",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn night(dir: &Path, name: &str, started: &str, p99: f64, lost: u64) -> PathBuf {
        night_of(dir, name, started, p99, lost, "d1")
    }

    /// A night whose workload has the digest `digest`.
    fn night_of(
        dir: &Path,
        name: &str,
        started: &str,
        p99: f64,
        lost: u64,
        digest: &str,
    ) -> PathBuf {
        let metrics = Metrics {
            delivery: crate::check::DeliverySection {
                lost,
                ..Default::default()
            },
            timing: crate::check::TimingSection {
                end_to_end_latency: crate::check::LatencySummary {
                    p99,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        let r = RunResult {
            schema_version: super::super::SCHEMA_VERSION,
            run_id: name.into(),
            workload: "w".into(),
            workload_digest: digest.into(),
            description: String::new(),
            harness_version: "0".into(),
            started_at: started.into(),
            seed: 1,
            target: "local".into(),
            interrupted: false,
            step: None,
            environment: Default::default(),
            brokers: vec![super::super::BrokerResult {
                broker: crate::workload::BrokerKind::new("kafka"),
                product: String::new(),
                client_settings: Default::default(),
                error: None,
                verdicts: Vec::new(),
                metrics: Some(metrics),
                inconclusive: Vec::new(),
                preflight: None,
            }],
        };
        let p = dir.join(format!("{name}.json"));
        std::fs::write(&p, serde_json::to_vec(&r).unwrap()).unwrap();
        p
    }

    #[test]
    fn nights_are_ordered_by_time_and_a_new_loss_is_marked_where_it_happened() {
        let d = tempfile::tempdir().unwrap();
        // Given out of order: the page orders by start time.
        let late = night(d.path(), "b", "2026-12-02T02:00:00Z", 0.01, 3);
        let early = night(d.path(), "a", "2026-12-01T02:00:00Z", 0.01, 0);
        let out = d.path().join("trend");
        let newest = trend(&[late, early], &out).unwrap();
        assert_eq!(
            newest, 1,
            "the second night lost messages the first did not"
        );
        let html = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(
            html.contains("12-01 02:00") && html.contains("12-02 02:00"),
            "{html}"
        );
        let first = html.find("12-01 02:00").unwrap();
        assert!(
            first < html.find("12-02 02:00").unwrap(),
            "oldest night first"
        );
        assert!(html.contains("<svg"), "plots are inline SVG");
        assert!(html.contains("w · kafka"));
    }

    #[test]
    fn a_night_that_ran_an_edited_workload_is_not_judged_against_the_night_before() {
        let d = tempfile::tempdir().unwrap();
        let first = night_of(d.path(), "a", "2026-12-01T02:00:00Z", 0.01, 0, "d1");
        let edited = night_of(d.path(), "b", "2026-12-02T02:00:00Z", 0.01, 3, "d2");
        let out = d.path().join("trend");
        let newest = trend(&[first, edited], &out).unwrap();
        assert_eq!(
            newest, 0,
            "a new loss under an edited workload is no regression"
        );
        let html = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(html.contains("Not judged"), "{html}");
        assert!(html.contains(WORKLOAD_CHANGED), "{html}");
    }

    #[test]
    fn an_inconclusive_night_is_never_judged_and_the_next_is_judged_against_the_last_conclusive() {
        let d = tempfile::tempdir().unwrap();
        let first = night(d.path(), "a", "2026-12-01T02:00:00Z", 0.01, 0);
        // The second night lost messages, but its fault did not happen: never judged.
        let untrusted = night(d.path(), "b", "2026-12-02T02:00:00Z", 0.01, 3);
        let mut r: RunResult = serde_json::from_slice(&std::fs::read(&untrusted).unwrap()).unwrap();
        r.brokers[0].inconclusive =
            vec!["fault #0 (broker-kill) did not happen: `false` failed".into()];
        std::fs::write(&untrusted, serde_json::to_vec(&r).unwrap()).unwrap();
        let out = d.path().join("trend");
        assert_eq!(trend(&[first.clone(), untrusted.clone()], &out).unwrap(), 0);
        let html = std::fs::read_to_string(out.join("index.html")).unwrap();
        assert!(
            html.contains(">INCONCLUSIVE<") && html.contains("did not happen"),
            "{html}"
        );
        // The third night lost messages too: judged against the first, the last conclusive.
        let third = night(d.path(), "c", "2026-12-03T02:00:00Z", 0.01, 3);
        assert_eq!(trend(&[first, untrusted, third], &out).unwrap(), 1);
    }
}
