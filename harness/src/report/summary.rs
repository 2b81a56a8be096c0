//! The table printed at the end of a run.

use std::fmt::Write as _;

use super::format::fmt_verdict;
use super::RunResult;

fn ms(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2}s")
    } else {
        format!("{:.1}ms", s * 1e3)
    }
}

/// p50/p99/p999/max, or "—" when nothing was measured (no consumers: no end-to-end latency).
fn quantiles(l: &crate::check::LatencySummary) -> String {
    match l.measured() {
        Some(l) => format!("{}/{}/{}/{}", ms(l.p50), ms(l.p99), ms(l.p999), ms(l.max)),
        None => "—".into(),
    }
}

pub fn render(r: &RunResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n{} — run {}", r.workload, r.run_id);
    let _ = writeln!(
        out,
        "{:<9} {:>8} {:>8} {:>7} {:>9} {:>6} {:>7} {:>9}  {:<33}  {:<33}",
        "broker",
        "sent",
        "acked",
        "failed",
        "delivered",
        "lost",
        "dup%",
        "msg/s",
        "publish p50/p99/p999/max",
        "end-to-end p50/p99/p999/max"
    );
    for b in &r.brokers {
        match (&b.metrics, &b.error) {
            (Some(m), _) => {
                let p = &m.timing.publish_latency;
                let e = &m.timing.end_to_end_latency;
                let _ = writeln!(
                    out,
                    "{:<9} {:>8} {:>8} {:>7} {:>9} {:>6} {:>6.2}% {:>9.0}  {:<33}  {:<33}",
                    b.broker.as_str(),
                    m.counts.sent,
                    m.counts.acked,
                    m.counts.failed + m.counts.indeterminate,
                    m.delivery.delivered,
                    m.delivery.lost,
                    m.delivery.duplicate_rate * 100.0,
                    m.timing.throughput,
                    quantiles(p),
                    quantiles(e),
                );
                if let Some(w) = &m.history_warning {
                    let _ = writeln!(out, "          warning: {w}");
                }
            }
            (None, Some(err)) => {
                let _ = writeln!(out, "{:<9} error: {err}", b.broker.as_str());
            }
            (None, None) => {}
        }
        if let (Some(_), Some(err)) = (&b.metrics, &b.error) {
            let _ = writeln!(out, "          error: {err}");
        }
    }
    let verdicts: Vec<_> = r
        .brokers
        .iter()
        .flat_map(|b| b.verdicts.iter().map(move |v| (&b.broker, v)))
        .collect();
    if !verdicts.is_empty() {
        let _ = writeln!(out, "\nexpectations:");
        for (broker, v) in verdicts {
            let (measured, bound) = fmt_verdict(&v.metric, v.measured, &v.bound);
            let _ = writeln!(
                out,
                "  {:<10} {:<9} {:<28} measured {measured:<12} expected {bound}",
                v.outcome.label(),
                broker.as_str(),
                v.metric,
            );
        }
    }
    // Why a broker's verdicts could not pass: one line each, naming the reason.
    for b in &r.brokers {
        if let Some(why) = b.inconclusive_because() {
            let _ = writeln!(out, "INCONCLUSIVE {}: {why}", b.broker.as_str());
        }
    }
    out
}

/// The lines printed when a stepped workload's last step is done: each broker's steps and the
/// highest rate it sustained.
pub fn render_curve(c: &super::sweep::Curve) -> String {
    use super::sweep::fmt_rate;
    let mut out = String::new();
    let _ = writeln!(out, "\n{} — {}", c.workload, c.plan);
    for b in &c.brokers {
        let steps: Vec<String> = b
            .points
            .iter()
            .map(|p| {
                let p99 = p.end_to_end.as_ref().map_or("—".into(), |l| ms(l.p99));
                format!(
                    "{} → {:.0} msg/s, e2e p99 {p99}{}",
                    fmt_rate(p.offered),
                    p.achieved,
                    if p.sustained.held { " ✓" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(out, "  {:<9} {}", b.broker.as_str(), steps.join("; "));
        let found = b
            .max_sustainable_rate
            .map_or("no step was sustained".into(), |r| {
                format!("{} sustained", fmt_rate(Some(r)))
            });
        let verdict = b.verdict.as_ref().map_or(String::new(), |v| {
            format!(" — {} max_sustainable_rate {}", v.outcome.label(), v.bound)
        });
        let _ = writeln!(out, "  {:<9} highest: {found}{verdict}", "");
    }
    out
}
