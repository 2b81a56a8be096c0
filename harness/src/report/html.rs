//! The self-contained HTML report of one run: verdicts first, then plots, anomaly examples, and
//! the exact workload, target and environment. Every string is escaped by the template engine
//! (auto-escaping for .html templates); only our own SVG is inserted raw.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use minijinja::{context, Environment};
use serde::Serialize;

use super::format::{fmt_metric, fmt_num, fmt_secs, fmt_verdict};
use super::plots::{self, Series, PALETTE};
use super::{BrokerResult, RunResult, Status};
use crate::check::metrics::METRICS;
use crate::check::Metrics;

pub const CSS: &str = include_str!("templates/base.css");
const RUN_TEMPLATE: &str = include_str!("templates/run.html");

#[derive(Serialize)]
struct Plot {
    title: String,
    note: String,
    svg: String,
}

#[derive(Serialize)]
struct VerdictRow {
    broker: String,
    metric: String,
    measured: String,
    bound: String,
    outcome: &'static str,
    class: &'static str,
    note: String,
}

#[derive(Serialize)]
pub struct Row {
    pub label: String,
    pub cells: Vec<String>,
}

/// Decode a serialized HdrHistogram from result.json.
pub fn histogram(b64: &str) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Deserializer::new().deserialize(&mut &bytes[..]).ok()
}

/// Render one of the report's pages from its template: HTML-escaped, with the shared stylesheet
/// as `css`.
pub fn page(name: &str, template: &str, ctx: minijinja::Value) -> Result<String> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template(name, template)
        .with_context(|| format!("loading the {name} template"))?;
    Ok(env
        .get_template(name)?
        .render(context! { css => CSS, ..ctx })?)
}

fn summary_rows(brokers: &[&BrokerResult]) -> Vec<Row> {
    METRICS
        .iter()
        .map(|metric| Row {
            label: metric.label.to_string(),
            cells: brokers
                .iter()
                .map(|b| fmt_metric(metric, b.metrics.as_ref().and_then(metric.get)))
                .collect(),
        })
        .collect()
}

fn series(
    name: &str,
    color: usize,
    m: &Metrics,
    f: impl Fn(&crate::check::Window) -> Option<f64>,
) -> Series {
    let pts = m
        .timing
        .timeline
        .iter()
        .filter_map(|w| f(w).map(|v| (w.second as f64 + 0.5, v)))
        .collect();
    Series::new(name, PALETTE[color % PALETTE.len()], pts)
}

/// One row per client of the harness: the nodes it connected to, in order, with the second of
/// the load each connection began.
fn clients_table(connections: &[crate::check::ClientConnection]) -> Vec<minijinja::Value> {
    let mut rows: Vec<(crate::history::ClientRole, u32, Vec<String>)> = Vec::new();
    for c in connections {
        let at = format!("{} from {:.1} s", c.endpoint, c.at_s.max(0.0));
        match rows
            .iter_mut()
            .find(|(r, i, _)| *r == c.role && *i == c.index)
        {
            Some((_, _, seen)) => seen.push(at),
            None => rows.push((c.role, c.index, vec![at])),
        }
    }
    rows.sort_by_key(|(r, i, _)| (*r == crate::history::ClientRole::Consumer, *i));
    rows.into_iter()
        .map(|(role, index, seen)| {
            let role = match role {
                crate::history::ClientRole::Producer => "producer",
                crate::history::ClientRole::Consumer => "consumer",
            };
            context! { client => format!("{role} {index}"), moves => seen.len() - 1, nodes => seen.join(" → ") }
        })
        .collect()
}

/// The cluster over time: a column per name the view printed (in the order first seen), a row
/// per change, each cell the state then; a state unchanged from the row above is marked as such.
fn cluster_table(views: &[crate::check::ClusterView]) -> Option<minijinja::Value> {
    if views.is_empty() {
        return None;
    }
    let mut columns: Vec<&str> = Vec::new();
    for v in views {
        for (name, _) in &v.lines {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let mut before: Vec<Option<&str>> = vec![None; columns.len()];
    let rows: Vec<_> = views
        .iter()
        .map(|v| {
            let cells: Vec<_> = columns
                .iter()
                .zip(before.iter_mut())
                .map(|(c, was)| {
                    let now = v
                        .lines
                        .iter()
                        .find(|(n, _)| n == c)
                        .map(|(_, s)| s.as_str());
                    let same = *was == now;
                    *was = now;
                    context! { state => now.unwrap_or("—"), same => same }
                })
                .collect();
            context! { at => format!("{:.1}", v.at_s), cells => cells }
        })
        .collect();
    Some(context! { columns => columns, rows => rows })
}

/// How far the run's time axes reach: its last second, or the end of a fault or a cluster view
/// after it.
fn seconds(m: &Metrics) -> f64 {
    // Where the time plots end: their points sit mid-second.
    let last = m.timing.timeline.iter().map(|w| w.second as f64 + 0.5);
    let ends = m.timing.faults.iter().filter_map(|f| f.end_s);
    let views = m.timing.cluster.iter().map(|v| v.at_s);
    last.chain(ends).chain(views).fold(1.0, f64::max)
}

/// When a fault began, for the table, and when it was in force if applying it took a while
/// (a node restart: seconds).
fn started(f: &crate::check::FaultWindow) -> String {
    match f.applied_s {
        Some(a) if a - f.start_s >= 0.5 => format!("{:.1} (in force {a:.1})", f.start_s),
        _ => format!("{:.1}", f.start_s),
    }
}

/// A fault's recovery time for the table: seconds, or why there is none.
fn recovered(end: Option<f64>, after: Option<f64>) -> String {
    match (end, after) {
        (None, _) => "—".into(),
        (Some(_), Some(s)) => format!("{s:.2}"),
        (Some(_), None) => "never".into(),
    }
}

fn broker_plots(m: &Metrics) -> Vec<Plot> {
    let mut plots = traffic_plots(m);
    plots.push(quantile_plot(m));
    plots.extend(health_plots(m));
    plots.extend(cost_plot(m));
    plots
}

/// Throughput and latency, second by second.
fn traffic_plots(m: &Metrics) -> Vec<Plot> {
    let faults = &m.timing.faults;
    vec![
        Plot {
            title: "Throughput".into(),
            note: "Messages per second: sends attempted, acknowledged by the broker, processed by consumers. Shaded: fault windows.".into(),
            svg: plots::time_plot(
                "throughput",
                "messages / s",
                &[
                    series("sent", 0, m, |w| Some(w.sent as f64)),
                    series("acked", 1, m, |w| Some(w.acked as f64)),
                    series("delivered", 2, m, |w| Some(w.delivered as f64)),
                ],
                faults,
                1.0,
            ),
        },
        Plot {
            title: "Latency over time".into(),
            note: "Per second, measured from each message's intended send time (no coordinated omission).".into(),
            svg: plots::time_plot(
                "latency percentiles",
                "ms",
                &[
                    series("publish p50", 0, m, |w| w.publish_p50_ms),
                    series("publish p99", 1, m, |w| w.publish_p99_ms),
                    series("end-to-end p50", 2, m, |w| w.e2e_p50_ms),
                    series("end-to-end p99", 3, m, |w| w.e2e_p99_ms),
                ],
                faults,
                1.0,
            ),
        },
    ]
}

/// The whole latency distribution after warmup.
fn quantile_plot(m: &Metrics) -> Plot {
    let mut curves = Vec::new();
    if let Some(h) = histogram(&m.timing.publish_histogram) {
        curves.push(Series::new(
            "publish",
            PALETTE[0],
            plots::quantile_curve(&h),
        ));
    }
    if let Some(h) = histogram(&m.timing.end_to_end_histogram) {
        curves.push(Series::new(
            "end-to-end",
            PALETTE[2],
            plots::quantile_curve(&h),
        ));
    }
    Plot {
        title: "Latency by percentile".into(),
        note: "The whole distribution after warmup; read the tail on the right (99% → 99.99%)."
            .into(),
        svg: plots::quantile_plot("latency quantiles", &curves),
    }
}

/// Availability, what is waiting, and the anomalies, second by second.
fn health_plots(m: &Metrics) -> Vec<Plot> {
    let faults = &m.timing.faults;
    vec![
        Plot {
            title: "Availability".into(),
            note: "Per second: share of send attempts that succeeded, counted in the second their outcome came (a send that timed out shows run.send_timeout after it was made), and whether consumers processed anything while messages were waiting.".into(),
            svg: plots::time_plot(
                "availability",
                "% of sends ok",
                &[series("producers", 1, m, |w| (w.acked + w.failed > 0).then(|| 100.0 * w.acked as f64 / (w.acked + w.failed) as f64))],
                faults,
                100.0,
            ),
        },
        Plot {
            title: "Unseen (lag) and unread".into(),
            note: "Unseen: acknowledged by the broker but not yet processed by any consumer. Unread: by the second they were meant to be sent, values the final read found still stored that no consumer ever processed.".into(),
            svg: plots::time_plot(
                "unseen messages",
                "messages",
                &[
                    series("unseen", 4, m, |w| Some(w.unseen.max(0) as f64)),
                    series("unread", 3, m, |w| Some(w.unread as f64)),
                ],
                faults,
                1.0,
            ),
        },
        Plot {
            title: "Duplicates, reorders and failures over time".into(),
            note: "Redeliveries, per-key order violations among first deliveries, failed or indeterminate sends, and reconnects of the harness's own clients (a replaced client redelivers what it held).".into(),
            svg: plots::time_plot(
                "anomalies",
                "per second",
                &[
                    series("redelivered", 1, m, |w| Some(w.redelivered as f64)),
                    series("order violations", 3, m, |w| Some(w.order_violations as f64)),
                    series("failed sends", 5, m, |w| Some(w.failed as f64)),
                    series("reconnects", 6, m, |w| Some(w.reconnects as f64)),
                ],
                faults,
                1.0,
            ),
        },
    ]
}

/// What the broker's own processes cost, when the target names them.
fn cost_plot(m: &Metrics) -> Option<Plot> {
    let faults = &m.timing.faults;
    let cost = m.cost.broker_cost.as_ref()?;
    let per_message = cost.cpu_us_per_message.map_or(String::new(), |us| {
        format!(", {us:.1} µs of CPU per message")
    });
    Some(Plot {
        title: "What the broker costs".into(),
        note: format!(
            "Per second: CPU cores kept busy and resident memory of the broker's own processes (its pid file's process and every descendant), {} samples. After warmup: {:.2} cores on average{per_message}; peak memory {}.",
            cost.samples,
            cost.cpu_cores_mean,
            fmt_metric_key("broker_rss_peak", cost.rss_peak_bytes as f64),
        ),
        svg: plots::time_plot(
            "broker CPU",
            "cores",
            &[series("CPU (cores)", 0, m, |w| w.broker_cpu_cores)],
            faults,
            1.0,
        ) + &plots::time_plot(
            "broker memory",
            "MiB",
            &[series("resident memory (MiB)", 1, m, |w| {
                w.broker_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0))
            })],
            faults,
            1.0,
        ),
    })
}

/// Deliveries by shard (rows) and consumer (columns), with each consumer's total, for the
/// "who consumed what" table; None when no delivery had a shard.
/// Who consumed what: a row per shard, a column per consumer, the idle ones (standbys) too.
fn shard_table(section: &crate::check::shards::ShardSection) -> Option<minijinja::Value> {
    let load = &section.shard_load;
    if load.is_empty() {
        return None;
    }
    let mut consumers: std::collections::BTreeSet<u32> = load.iter().map(|l| l.consumer).collect();
    consumers.extend(&section.idle_consumers);
    let shards: std::collections::BTreeSet<i64> = load.iter().map(|l| l.shard).collect();
    let count = |s: i64, c: u32| {
        load.iter()
            .find(|l| l.shard == s && l.consumer == c)
            .map_or(0, |l| l.deliveries)
    };
    let rows: Vec<_> = shards
        .iter()
        .map(|&s| {
            let cells: Vec<u64> = consumers.iter().map(|&c| count(s, c)).collect();
            let top = cells.iter().copied().max().unwrap_or(0);
            let cells: Vec<_> = cells
                .into_iter()
                .map(|n| context! { n => n, top => n > 0 && n == top })
                .collect();
            context! { shard => s, cells => cells }
        })
        .collect();
    let totals: Vec<u64> = consumers
        .iter()
        .map(|&c| {
            load.iter()
                .filter(|l| l.consumer == c)
                .map(|l| l.deliveries)
                .sum()
        })
        .collect();
    let idle = match section.idle_consumers.as_slice() {
        [] => String::new(),
        [one] => format!("Consumer {one} took no shard: it stood by (a group with more members than shards keeps the extra ones waiting)."),
        many => format!(
            "Consumers {} took no shard: they stood by (a group with more members than shards keeps the extra ones waiting).",
            many.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    Some(context! { consumers => consumers, rows => rows, totals => totals, idle => idle })
}

/// The decoupling section: each consumer outage with what the producers saw, and the
/// synchronous chain beside the asynchronous one; None when the consumers were never out.
fn decoupling_view(m: &Metrics) -> Option<minijinja::Value> {
    let d = &m.decoupling;
    if d.consumer_outages.is_empty() {
        return None;
    }
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let rows: Vec<_> = d
        .consumer_outages
        .iter()
        .map(|o| {
            context! {
                from => format!("{:.0}", o.from),
                to => format!("{:.0}", o.to),
                producers => o.producer_availability.map_or("—".into(), pct),
                accepted => fmt_num(o.accepted as f64),
                backlog => fmt_num(o.backlog as f64),
                drained => o.drained_after.map_or("not by the end".into(), fmt_secs),
            }
        })
        .collect();
    Some(context! {
        rows => rows,
        sync_failed => fmt_num(d.sync_failed_requests as f64),
        chain => d.sync_chain_availability.map_or("—".into(), pct),
        producers => pct(m.timing.availability),
    })
}

/// When each rebalance ran, seconds since the load start (from, to).
fn rebalance_windows(m: &Metrics) -> Vec<(f64, f64)> {
    let since = |t: u64| t.saturating_sub(m.timing.load_start_ns) as f64 / 1e9;
    m.rebalance
        .rebalances
        .iter()
        .map(|r| (since(r.t), since(r.t) + r.lasted))
        .collect()
}

/// The rebalances table: when each began, what changed, its pause and what it cost.
fn rebalance_rows(m: &Metrics) -> Vec<minijinja::Value> {
    m.rebalance
        .rebalances
        .iter()
        .map(|r| {
            context! {
                start => format!("{:.1}", r.t.saturating_sub(m.timing.load_start_ns) as f64 / 1e9),
                changes => r.changes.join(", "),
                lasted => fmt_secs(r.lasted),
                pause => if r.over { fmt_secs(r.pause) } else { format!("not over by the end (≥ {})", fmt_secs(r.pause)) },
                shards => r.shards,
                redeliveries => r.redeliveries,
                order => r.order_violations,
            }
        })
        .collect()
}

/// `value` of the registry's metric `key`, formatted in its unit.
fn fmt_metric_key(key: &str, value: f64) -> String {
    crate::check::metrics::find(key).map_or_else(|| fmt_num(value), |m| fmt_metric(m, Some(value)))
}

pub fn render_run(r: &RunResult, workload_yaml: &str, target_json: &str) -> Result<String> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("run.html", RUN_TEMPLATE)
        .context("loading the report template")?;
    let brokers: Vec<_> = r.brokers.iter().map(broker_section).collect();
    let refs: Vec<&BrokerResult> = r.brokers.iter().collect();
    let tmpl = env.get_template("run.html")?;
    Ok(tmpl.render(context! {
        css => CSS,
        run => r,
        status => context! { label => r.status().label(), class => r.status().class() },
        verdicts => verdict_rows(r),
        summary => summary_rows(&refs),
        brokers => brokers,
        workload_yaml => workload_yaml,
        target_json => target_json,
    })?)
}

/// Every broker's verdicts, one row each, as the verdict table shows them.
fn verdict_rows(r: &RunResult) -> Vec<VerdictRow> {
    r.brokers
        .iter()
        .flat_map(|b| {
            b.verdicts.iter().map(move |v| {
                let (measured, bound) = fmt_verdict(&v.metric, v.measured, &v.bound);
                VerdictRow {
                    broker: b.broker.to_string(),
                    metric: v.metric.clone(),
                    measured,
                    bound,
                    outcome: v.outcome.label(),
                    class: Status::of(v.outcome).class(),
                    note: v.note.clone().unwrap_or_default(),
                }
            })
        })
        .collect()
}

/// The anomalies' examples, their times in seconds since the load started.
fn example_rows(m: &Metrics) -> Vec<minijinja::Value> {
    let at = |t: u64| {
        if t == 0 {
            "—".to_string()
        } else {
            format!(
                "{:.3}",
                t.saturating_sub(m.timing.load_start_ns) as f64 / 1e9
            )
        }
    };
    m.delivery
        .examples
        .iter()
        .map(|e| {
            context! { kind => e.kind, id => e.id.clone().unwrap_or_default(), t => at(e.t), detail => e.detail }
        })
        .collect()
}

/// The faults table: when each fault ran, its send outage and how long each side took to
/// recover.
fn fault_rows(m: &Metrics) -> Vec<minijinja::Value> {
    m.timing
        .faults
        .iter()
        .map(|f| {
            context! {
                index => f.index,
                kind => f.kind,
                start => started(f),
                end => f.end_s.map_or("—".into(), |e| format!("{e:.1}")),
                outage => f.send_outage_s.map_or("—".into(), |s| format!("{s:.2}")),
                producers => recovered(f.end_s, f.producers_recovered_s),
                consumers => recovered(f.end_s, f.consumers_recovered_s),
                detail => f.detail,
            }
        })
        .collect()
}

/// One broker's part of the run page.
fn broker_section(b: &BrokerResult) -> minijinja::Value {
    let m = b.metrics.as_ref();
    let examples = m.map(example_rows).unwrap_or_default();
    let faults = m.map(fault_rows).unwrap_or_default();
    let clients = m
        .map(|m| clients_table(&m.timing.connections))
        .unwrap_or_default();
    context! {
        name => b.broker.to_string(),
        product => b.product,
        clients => clients,
        cluster => m.and_then(|m| cluster_table(&m.timing.cluster)),
        lanes => m.and_then(|m| plots::lanes_plot(&m.timing.faults, &m.timing.cluster, seconds(m))),
        client_settings => b.client_settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>(),
        shard_load => m.map(|m| shard_table(&m.shards)),
        consumers_plot => m.and_then(|m| plots::consumers_plot(&m.shards.shard_spans, &rebalance_windows(m), seconds(m))),
        rebalances => m.map(rebalance_rows).unwrap_or_default(),
        decoupling => m.and_then(decoupling_view),
        window => m.and_then(|m| m.timing.in_flight_window),
        catch_up => m.and_then(|m| m.timing.catch_up.as_ref()).map(|c| context! {
            started => format!("{:.1}", c.started_s),
            backlog => fmt_num(c.backlog as f64),
            time => c.time_s.map(fmt_secs),
            rate => c.rate.map(|r| format!("{r:.0}")),
        }),
        error => b.error,
        preflight => b.preflight,
        inconclusive => b.inconclusive_because(),
        warning => m.and_then(|m| m.history_warning.clone()),
        plots => m.map(broker_plots).unwrap_or_default(),
        examples => examples,
        faults => faults,
        final_read => m.map(|m| context! {
            outcome => format!("{:?}", m.delivery.final_read.outcome),
            verified => m.delivery.final_read.verified(),
            read => m.delivery.final_read.read,
            detail => m.delivery.final_read.detail,
            unread => m.delivery.unread,
            unverified => m.delivery.unverified,
        }),
        reconnects => m.map_or(0, |m| m.timing.reconnects),
    }
}

/// Write index.html next to result.json, from the run directory's own files.
pub fn write_run(r: &RunResult, dir: &Path) -> Result<()> {
    let workload = std::fs::read_to_string(dir.join("workload.yaml")).unwrap_or_default();
    let target = std::fs::read_to_string(dir.join("target.json")).unwrap_or_default();
    let html = render_run(r, &workload, &target)?;
    let path = dir.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{FaultWindow, Window};
    use crate::report::{BrokerResult, Environment};
    use crate::workload::BrokerKind;

    #[test]
    fn verdicts_read_in_the_metric_unit() {
        let v = |m: &str, x: f64, b: &str| fmt_verdict(m, Some(x), b);
        assert_eq!(
            v("recovery_time", 11.0293, "< 20"),
            ("11.03 s".to_string(), "< 20.00 s".to_string())
        );
        assert_eq!(
            v("duplicate_rate", 0.0, "< 0.01"),
            ("0.000%".to_string(), "< 1.000%".to_string())
        );
        assert_eq!(
            v("lost", 3.0, "== 0"),
            ("3".to_string(), "== 0".to_string())
        );
        assert_eq!(fmt_verdict("lost", None, "== 0").0, "n/a");
        // A never-recovered fault reads as such.
        assert_eq!(v("recovery_time", f64::INFINITY, "< 20").0, "never");
        // Rates to a tenth below 100/s, whole above.
        assert_eq!(v("throughput", 99.7333, "> 50").0, "99.7");
        assert_eq!(v("throughput", 20431.77, "> 20000").0, "20432");
    }

    #[test]
    fn the_cluster_table_has_a_column_per_name_and_greys_what_did_not_change() {
        let view = |at_s: f64, lines: &[(&str, &str)]| crate::check::ClusterView {
            at_s,
            lines: lines
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        assert!(cluster_table(&[]).is_none());
        let t = cluster_table(&[
            view(0.1, &[("n1", "n1 n2"), ("leader", "n1")]),
            view(
                12.0,
                &[("n1", "paused"), ("leader", "n2"), ("view", "slow")],
            ),
            view(14.0, &[("n1", "paused"), ("leader", "n2")]),
        ])
        .unwrap();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["columns"], serde_json::json!(["n1", "leader", "view"]));
        let cell = |row: usize, col: usize| json["rows"][row]["cells"][col].clone();
        assert_eq!(json["rows"][1]["at"], "12.0");
        assert_eq!(cell(0, 2)["state"], "—");
        assert_eq!(cell(1, 0)["state"], "paused");
        assert_eq!(cell(1, 0)["same"], false);
        assert_eq!(cell(2, 0)["same"], true);
        // A line that disappears is a change too.
        assert_eq!(cell(2, 2)["state"], "—");
        assert_eq!(cell(2, 2)["same"], false);
    }

    /// A ten-minute run on three brokers with a fault every minute must stay under 2 MB.
    #[test]
    fn ten_minute_report_stays_small() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..100_000u64 {
            h.record(v * 7 % 90_000 + 1).unwrap();
        }
        let hist = crate::check::serialize_hist(&h);
        let timeline: Vec<Window> = (0..600u64)
            .map(|s| Window {
                second: s,
                sent: 1000 + s % 7,
                acked: 1000,
                delivered: 990 + s % 20,
                unseen: (s % 50) as i64,
                publish_p50_ms: Some(2.0 + (s % 5) as f64),
                publish_p99_ms: Some(9.5),
                e2e_p50_ms: Some(3.1),
                e2e_p99_ms: Some(40.0 + (s % 13) as f64),
                broker_cpu_cores: Some(0.4 + (s % 3) as f64 / 10.0),
                broker_rss_bytes: Some(150 << 20),
                ..Default::default()
            })
            .collect();
        let faults: Vec<FaultWindow> = (0..10)
            .map(|i| FaultWindow {
                index: i,
                kind: "consumer-crash".into(),
                start_s: 60.0 * i as f64 + 5.0,
                end_s: Some(60.0 * i as f64 + 10.0),
                detail: "SIGKILL consumer 1".into(),
                recovery_s: Some(0.5),
                producers_recovered_s: Some(0.1),
                consumers_recovered_s: Some(0.5),
                send_outage_s: Some(1.5),
                ..Default::default()
            })
            .collect();
        let metrics = Metrics {
            timing: crate::check::TimingSection {
                timeline,
                faults,
                publish_histogram: hist.clone(),
                end_to_end_histogram: hist,
                ..Default::default()
            },
            counts: crate::check::Counts {
                acked: 600_000,
                ..Default::default()
            },
            cost: crate::check::cost::CostSection {
                broker_cost: Some(crate::check::cost::BrokerCost {
                    samples: 600,
                    cpu_cores_mean: 0.5,
                    rss_peak_bytes: 150 << 20,
                    cpu_us_per_message: Some(500.0),
                    written_bytes_per_s: 1e6,
                }),
                ..Default::default()
            },
            shards: crate::check::shards::ShardSection {
                shard_load: (0..6)
                    .map(|s| crate::check::shards::ShardLoad {
                        shard: s,
                        consumer: (s % 3) as u32,
                        deliveries: 100_000,
                    })
                    .collect(),
                idle_consumers: vec![3],
                ..Default::default()
            },
            ..Default::default()
        };
        let brokers = ["kafka", "rabbitmq", "sqs"]
            .map(BrokerKind::new)
            .into_iter()
            .map(|broker| BrokerResult {
                broker,
                product: "x".into(),
                client_settings: [("producer.linger.ms".to_string(), "5".to_string())].into(),
                error: None,
                metrics: Some(metrics.clone()),
                verdicts: Vec::new(),
                inconclusive: Vec::new(),
                preflight: None,
            })
            .collect();
        let r = RunResult {
            schema_version: 1,
            run_id: "r".into(),
            workload: "ten-minutes".into(),
            workload_digest: String::new(),
            description: String::new(),
            harness_version: "0".into(),
            started_at: String::new(),
            seed: 1,
            target: "local".into(),
            interrupted: false,
            step: None,
            environment: Environment::default(),
            brokers,
        };
        let html = render_run(&r, "name: ten-minutes\n", "{}").unwrap();
        assert!(html.matches("<svg").count() >= 18);
        for section in [
            "What the broker costs",
            "Who consumed what",
            "producer.linger.ms",
        ] {
            assert_eq!(
                html.matches(section).count(),
                3,
                "{section}, once per broker"
            );
        }
        assert!(
            html.contains("<b>100000</b>"),
            "the active consumer of a shard"
        );
        assert!(html.contains("150.0 MiB"), "peak memory in its unit");
        assert!(
            html.len() < 2 * 1024 * 1024,
            "report is {} bytes",
            html.len()
        );
    }
}
