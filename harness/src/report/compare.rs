//! `brokerbench compare`: several runs or brokers side by side, and, against a baseline, each
//! metric's change with a regression flag (for nightly CI).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use minijinja::{context, Environment};
use serde::Serialize;

use super::html::{fmt_metric, histogram, CSS};
use super::plots::{self, Series, PALETTE};
use super::RunResult;
use crate::check::metrics::METRICS;
use crate::check::Metrics;
use crate::workload::BrokerKind;

const TEMPLATE: &str = include_str!("templates/compare.html");

/// One (run, broker) column.
pub struct Column {
    pub label: String,
    pub run_id: String,
    pub workload: String,
    pub broker: BrokerKind,
    pub product: String,
    pub passed: bool,
    pub metrics: Metrics,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Regression {
    pub column: String,
    pub metric: String,
    pub baseline: String,
    pub now: String,
    pub change: String,
}

/// A run directory or a result.json file.
pub fn load(path: &Path) -> Result<RunResult> {
    let file = if path.is_dir() {
        path.join("result.json")
    } else {
        path.to_owned()
    };
    RunResult::read(&file)
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
                    broker: b.broker,
                    product: b.product.clone(),
                    passed: b.passed(),
                    metrics,
                })
            })
        })
        .collect()
}

fn short(run_id: &str) -> String {
    run_id.splitn(3, '-').take(2).collect::<Vec<_>>().join("-")
}

/// Relative change from `base` to `now` when "worse" means larger (`lower_better`) or smaller.
/// Returns (text, is_regression) given a relative `threshold` (0.1 = 10%).
pub fn change(base: f64, now: f64, lower_better: bool, threshold: f64) -> (String, bool) {
    if base == now {
        return ("±0".into(), false);
    }
    let worse = if lower_better { now > base } else { now < base };
    if base.is_infinite() || now.is_infinite() {
        // A recovery that never happened, or happened again.
        let text = if now.is_infinite() { "never" } else { "again" };
        return (text.into(), worse);
    }
    if base == 0.0 {
        // From nothing to something: any increase of a bad count is a regression.
        return ("new".into(), worse);
    }
    let rel = (now - base) / base.abs();
    (
        format!("{:+.1}%", rel * 100.0),
        worse && rel.abs() > threshold,
    )
}

pub fn regressions(columns: &[Column], baseline: &[Column], threshold: f64) -> Vec<Regression> {
    let mut out = Vec::new();
    for c in columns {
        let Some(b) = baseline
            .iter()
            .find(|b| b.broker == c.broker && b.workload == c.workload)
        else {
            continue;
        };
        for metric in METRICS {
            let (Some(base), Some(now)) = ((metric.get)(&b.metrics), (metric.get)(&c.metrics))
            else {
                continue;
            };
            let (text, regressed) = change(base, now, metric.lower_is_better(), threshold);
            if regressed {
                out.push(Regression {
                    column: c.label.clone(),
                    metric: metric.label.to_string(),
                    baseline: fmt_metric(metric, Some(base)),
                    now: fmt_metric(metric, Some(now)),
                    change: text,
                });
            }
        }
    }
    out
}

pub fn render(
    columns: &[Column],
    baseline: Option<(&str, &[Column])>,
    threshold: f64,
) -> Result<(String, Vec<Regression>)> {
    let regs = baseline
        .map(|(_, b)| regressions(columns, b, threshold))
        .unwrap_or_default();
    let rows: Vec<_> = METRICS
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
                    let base = baseline
                        .and_then(|(_, b)| {
                            b.iter()
                                .find(|b| b.broker == c.broker && b.workload == c.workload)
                        })
                        .and_then(|b| (metric.get)(&b.metrics));
                    let (chg, regressed) = match (base, v) {
                        (Some(b), Some(v)) => {
                            let (t, r) = change(b, *v, lower_better, threshold);
                            (Some(t), r)
                        }
                        _ => (None, false),
                    };
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
        .collect();
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
            histogram(&c.metrics.end_to_end_histogram)
                .map(|h| Series::new(c.label.clone(), color(i), plots::quantile_curve(&h)))
        })
        .collect();
    let plots = vec![
        context! { title => "Acknowledged throughput", svg => plots::time_plot("acked messages / s", "messages / s", &timeline(|w| Some(w.acked as f64)), &[], 1.0) },
        context! { title => "End-to-end p99 over time", svg => plots::time_plot("end-to-end p99", "ms", &timeline(|w| w.e2e_p99_ms), &[], 1.0) },
        context! { title => "End-to-end latency by percentile", svg => plots::quantile_plot("end-to-end latency quantiles", &quantiles) },
        context! { title => "Unseen (lag)", svg => plots::time_plot("unseen messages", "messages", &timeline(|w| Some(w.unseen.max(0) as f64)), &[], 1.0) },
    ];
    let cols: Vec<_> = columns
        .iter()
        .map(|c| context! { label => c.label, workload => c.workload, product => c.product, run_id => c.run_id, passed => c.passed })
        .collect();
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("compare.html", TEMPLATE)?;
    let html = env.get_template("compare.html")?.render(context! {
        css => CSS,
        columns => cols,
        rows => rows,
        plots => plots,
        baseline => baseline.map(|(name, _)| name),
        threshold => format!("{:.0}%", threshold * 100.0),
        regressions => &regs,
    })?;
    Ok((html, regs))
}

/// Load runs and an optional baseline, write `<out>/index.html`, return the regressions.
pub fn compare(
    paths: &[PathBuf],
    baseline: Option<&Path>,
    threshold: f64,
    out: &Path,
) -> Result<Vec<Regression>> {
    let results: Vec<RunResult> = paths.iter().map(|p| load(p)).collect::<Result<_>>()?;
    let cols = columns(&results);
    anyhow::ensure!(
        !cols.is_empty(),
        "none of the given runs has measured results"
    );
    let base = baseline.map(load).transpose()?;
    let base_cols = base.as_ref().map(|b| columns(std::slice::from_ref(b)));
    let base_name = baseline.map(|p| p.display().to_string());
    let (html, regs) = render(
        &cols,
        base_name.as_deref().zip(base_cols.as_deref()),
        threshold,
    )?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("index.html"), html)
        .with_context(|| format!("writing {}/index.html", out.display()))?;
    Ok(regs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_knows_which_direction_is_worse() {
        assert_eq!(change(100.0, 80.0, false, 0.1), ("-20.0%".into(), true)); // throughput fell 20%
        assert_eq!(change(100.0, 95.0, false, 0.1), ("-5.0%".into(), false)); // within threshold
        assert_eq!(change(0.010, 0.020, true, 0.1), ("+100.0%".into(), true)); // latency doubled
        assert_eq!(change(0.020, 0.010, true, 0.1), ("-50.0%".into(), false)); // latency halved
        assert_eq!(change(0.0, 3.0, true, 0.1), ("new".into(), true)); // lost 0 → 3
        assert_eq!(change(5.0, 5.0, true, 0.1), ("±0".into(), false));
    }

    fn col(broker: BrokerKind, throughput: f64, lost: u64) -> Column {
        let metrics = Metrics {
            throughput,
            lost,
            ..Default::default()
        };
        Column {
            label: broker.to_string(),
            run_id: "r".into(),
            workload: "w".into(),
            broker,
            product: String::new(),
            passed: true,
            metrics,
        }
    }

    #[test]
    fn regressions_are_found_per_broker_and_workload() {
        let base = vec![
            col(BrokerKind::Kafka, 1000.0, 0),
            col(BrokerKind::Rabbitmq, 500.0, 0),
        ];
        let now = vec![
            col(BrokerKind::Kafka, 700.0, 0),
            col(BrokerKind::Rabbitmq, 520.0, 2),
        ];
        let regs = regressions(&now, &base, 0.1);
        let names: Vec<(&str, &str)> = regs
            .iter()
            .map(|r| (r.column.as_str(), r.metric.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![("kafka", "throughput (acked msg/s)"), ("rabbitmq", "lost")]
        );
    }

    #[test]
    fn comparison_page_highlights_the_best_and_escapes_names() {
        let mut a = col(BrokerKind::Kafka, 1000.0, 0);
        a.workload = "<script>alert(1)</script>".into();
        let b = col(BrokerKind::Rabbitmq, 500.0, 0);
        let (html, regs) = render(&[a, b], None, 0.1).unwrap();
        assert!(regs.is_empty());
        assert!(
            html.contains("<td class=\"best\">1000"),
            "best throughput highlighted"
        );
        assert!(!html.contains("<script>alert(1)</script>") && html.contains("&lt;script&gt;"));
    }
}
