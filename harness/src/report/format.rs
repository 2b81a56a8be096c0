//! How every page and the terminal print numbers: counts, seconds, shares, a metric in its unit
//! and a verdict's measured value against its bound.

use crate::check::metrics::{Metric, Unit};
use crate::workload::units::Bound;

/// A number as short as it can be without losing what it says.
pub fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Seconds in seconds or milliseconds, whichever reads better ("never" for infinity).
pub fn fmt_secs(s: f64) -> String {
    if s.is_nan() {
        "—".into()
    } else if s.is_infinite() {
        "never".into()
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}

/// A fraction as a percentage.
pub fn fmt_pct(f: f64) -> String {
    format!("{:.3}%", f * 100.0)
}

/// A verdict's measured value and bound, in the metric's unit ("11.03 s" against "< 20.00 s"
/// rather than bare base units). Keys the registry does not know print as they are.
pub fn fmt_verdict(metric: &str, measured: Option<f64>, bound: &str) -> (String, String) {
    let Some(m) = crate::check::metrics::find(metric) else {
        return (measured.map_or("n/a".into(), fmt_num), bound.to_string());
    };
    let measured = measured.map_or("n/a".into(), |v| fmt_metric(m, Some(v)));
    // The verdict keeps the bound as `Bound` displays it, in base units: read it back with the
    // same parser the workload used.
    let bound = match bound.parse::<Bound>() {
        Ok(b) => format!("{} {}", b.op.symbol(), fmt_metric(m, Some(b.value))),
        Err(_) => bound.to_string(),
    };
    (measured, bound)
}

/// A metric's value as every report prints it ("—" when the run did not measure it).
pub fn fmt_metric(metric: &Metric, value: Option<f64>) -> String {
    let Some(v) = value else { return "—".into() };
    match metric.unit {
        Unit::Count => fmt_num(v),
        // A rate measured over seconds of drifting load: a tenth is already more than it knows.
        Unit::PerSecond if v.abs() < 100.0 => format!("{v:.1}"),
        Unit::PerSecond => format!("{v:.0}"),
        Unit::Fraction => fmt_pct(v),
        Unit::Seconds => fmt_secs(v),
        Unit::Bytes => bytesize::ByteSize::b(v.max(0.0) as u64)
            .display()
            .iec()
            .to_string(),
    }
}
