//! Expectations: turn the workload's `expect:` bounds and the measured metrics into verdicts.
//!
//! A verdict passes only when its bound held *and* the run can be trusted
//! (`inconclusive::reasons` found nothing wrong with it). A bound that failed fails whatever
//! else went wrong: a loss seen is a loss. A bound that held in a run that cannot be trusted is
//! *not judged*, with the reasons in its note.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::Metrics;
use crate::workload::units::Bound;

/// What became of one expectation. Ordered by severity: the worst of several is their max.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The bound held, in a run that did what it planned and measured something.
    Pass,
    /// The bound held, but the run cannot vouch for it (a fault that did not happen, nothing
    /// measured, a damaged history, no final read): its note says why.
    NotJudged,
    /// The bound did not hold.
    Fail,
}

impl Outcome {
    /// As the terminal, JUnit and the HTML pages write it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::NotJudged => "NOT JUDGED",
            Outcome::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Verdict {
    pub metric: String,
    pub bound: String,
    pub measured: Option<f64>,
    pub outcome: Outcome,
    /// What a reader must know to trust the verdict: why it was not judged, that it was not
    /// verified, or that the harness's own clients may have shaped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A verdict as result.json files of every readable version hold it: up to version 2 a bool
/// `passed`, since version 3 an `outcome`.
#[derive(Deserialize)]
struct VerdictFile {
    metric: String,
    bound: String,
    measured: Option<f64>,
    #[serde(default)]
    outcome: Option<Outcome>,
    #[serde(default)]
    passed: Option<bool>,
    #[serde(default)]
    note: Option<String>,
}

impl<'de> Deserialize<'de> for Verdict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        VerdictFile::deserialize(d).map(Verdict::from)
    }
}

impl From<VerdictFile> for Verdict {
    fn from(f: VerdictFile) -> Verdict {
        let outcome = f.outcome.unwrap_or(match f.passed {
            Some(true) => Outcome::Pass,
            _ => Outcome::Fail,
        });
        Verdict {
            metric: f.metric,
            bound: f.bound,
            measured: f.measured,
            outcome,
            note: f.note,
        }
    }
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }

    /// Judge `measured` against `bound` in a run whose trust is `untrusted` (the reasons it
    /// cannot be trusted; empty when it can).
    pub fn judge(
        metric: &str,
        bound: &Bound,
        measured: Option<f64>,
        untrusted: &[String],
        note: Option<String>,
    ) -> Verdict {
        let outcome = match measured {
            Some(v) if !bound.holds(v) => Outcome::Fail,
            Some(_) if untrusted.is_empty() => Outcome::Pass,
            _ => Outcome::NotJudged,
        };
        let why = match (outcome, measured) {
            (Outcome::NotJudged, None) => Some("not judged: not measured in this run".to_string()),
            (Outcome::NotJudged, Some(_)) => Some(format!("not judged: {}", untrusted.join("; "))),
            _ => None,
        };
        let note = match (why, note) {
            (Some(w), Some(n)) => Some(format!("{w}; {n}")),
            (w, n) => w.or(n),
        };
        Verdict {
            metric: metric.to_string(),
            bound: bound.to_string(),
            measured,
            outcome,
            note,
        }
    }
}

/// Every expectation's verdict, in a run that `untrusted` says cannot be trusted (or can, when
/// it is empty: see `inconclusive::reasons`).
pub fn verdicts(
    expect: &BTreeMap<String, Spanned<Bound>>,
    m: &Metrics,
    untrusted: &[String],
) -> Vec<Verdict> {
    expect
        .iter()
        .map(|(name, bound)| {
            let mut reasons = untrusted.to_vec();
            // Values the final read could not vouch for may be lost: a `lost` bound that
            // would not hold if they all were is not judged. (An unverified final read already
            // makes the whole run inconclusive; this names the values at stake.)
            if name == "lost"
                && m.delivery.unverified > 0
                && !bound
                    .value
                    .holds((m.delivery.lost + m.delivery.unverified) as f64)
            {
                reasons.push(format!(
                    "the {} unverified values may be lost",
                    m.delivery.unverified
                ));
            }
            Verdict::judge(name, &bound.value, m.metric(name), &reasons, note(name, m))
        })
        .collect()
}

/// Next to a verdict: whether it rests on a final read, and where the harness's own clients
/// (replaced after a fault) rather than the broker may have shaped the figure.
pub fn note(metric: &str, m: &Metrics) -> Option<String> {
    let mut notes = Vec::new();
    let reconnected = m.timing.reconnects > 0;
    match metric {
        "lost" => {
            if !m.delivery.final_read.verified() {
                notes.push(format!(
                    "not verified by a final read ({}); {} acknowledged values were never \
                     processed and may or may not still be stored",
                    m.delivery.final_read.detail, m.delivery.unverified
                ));
            }
            if m.delivery.unread > 0 {
                notes.push(format!(
                    "{} more were still stored but never processed: unread, a failure of the \
                     consumers, not a loss by the broker",
                    m.delivery.unread
                ));
            }
        }
        "unread" | "consumer_availability" | "recovery_time" | "delivered" if reconnected => {
            notes.push(format!(
                "the harness replaced its own clients {} times; this figure depends on how \
                 quickly they recovered",
                m.timing.reconnects
            ));
        }
        "redeliveries" | "duplicate_rate" | "broker_redeliveries" if reconnected => {
            notes.push(format!(
                "the harness replaced its own clients {} times; each replaced consumer's \
                 unacknowledged messages are redelivered",
                m.timing.reconnects
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
                m.timing.reconnects
            ));
        }
        _ => {}
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}
