//! Expectations: turn the workload's `expect:` bounds and the measured metrics into verdicts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::Metrics;
use crate::workload::units::Bound;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Verdict {
    pub metric: String,
    pub bound: String,
    pub measured: Option<f64>,
    pub passed: bool,
    /// What a reader must know to trust the verdict: it was not verified, or the harness's own
    /// clients may have shaped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub fn verdicts(expect: &BTreeMap<String, Spanned<Bound>>, m: &Metrics) -> Vec<Verdict> {
    expect
        .iter()
        .map(|(name, bound)| {
            let measured = m.metric(name);
            let mut passed = measured.is_some_and(|v| bound.value.holds(v));
            // Values the final read could not vouch for may be lost: the bound must hold even
            // if they all are.
            if name == "lost" && m.unverified > 0 {
                passed &= bound.value.holds((m.lost + m.unverified) as f64);
            }
            Verdict {
                metric: name.clone(),
                bound: bound.value.to_string(),
                measured,
                passed,
                note: note(name, m),
            }
        })
        .collect()
}

/// Next to a verdict: whether it rests on a final read, and where the harness's own clients
/// (replaced after a fault) rather than the broker may have shaped the figure.
pub fn note(metric: &str, m: &Metrics) -> Option<String> {
    let mut notes = Vec::new();
    let reconnected = m.reconnects > 0;
    match metric {
        "lost" => {
            if !m.final_read.verified() {
                notes.push(format!(
                    "not verified by a final read ({}); {} acknowledged values were never \
                     processed and may or may not still be stored",
                    m.final_read.detail, m.unverified
                ));
            }
            if m.unread > 0 {
                notes.push(format!(
                    "{} more were still stored but never processed: unread, a failure of the \
                     consumers, not a loss by the broker",
                    m.unread
                ));
            }
        }
        "unread" | "consumer_availability" | "recovery_time" | "delivered" if reconnected => {
            notes.push(format!(
                "the harness replaced its own clients {} times; this figure depends on how \
                 quickly they recovered",
                m.reconnects
            ));
        }
        "redeliveries" | "duplicate_rate" | "broker_redeliveries" if reconnected => {
            notes.push(format!(
                "the harness replaced its own clients {} times; each replaced consumer's \
                 unacknowledged messages are redelivered",
                m.reconnects
            ));
        }
        "per_key_order_violations"
        | "per_key_order_violations_redelivered"
        | "per_key_order_violations_flagged"
            if reconnected =>
        {
            notes.push(format!(
                "the harness replaced its own clients {} times; a replaced consumer's messages \
                 return to the queue behind later ones",
                m.reconnects
            ));
        }
        _ => {}
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}
