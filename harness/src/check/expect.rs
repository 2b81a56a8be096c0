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
}

pub fn verdicts(expect: &BTreeMap<String, Spanned<Bound>>, m: &Metrics) -> Vec<Verdict> {
    expect
        .iter()
        .map(|(name, bound)| {
            let measured = m.metric(name);
            Verdict {
                metric: name.clone(),
                bound: bound.value.to_string(),
                measured,
                passed: measured.is_some_and(|v| bound.value.holds(v)),
            }
        })
        .collect()
}
