//! What every checker shares: the `Checker` protocol, the facts one checker passes the next,
//! latency summaries, anomalies, the final read's outcome and per-(producer, key) state.

use rustc_hash::FxHashMap as HashMap;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::history::{self, Event};

/// One checker: sees every event once, in history order, then returns its own section of the
/// metrics. No checker writes into another's figures; `Metrics::combine` puts the sections
/// together in one place.
pub trait Checker {
    type Section;
    fn observe(&mut self, ev: &Event, facts: &mut Facts);
    fn finish(self) -> Self::Section;
}

/// What a checker learned about the current event that checkers after it may use, so that
/// per-message state is looked up once per event rather than once per checker.
#[derive(Debug, Default, Clone, Copy)]
pub struct Facts {
    /// For a delivery: the first of this message (set by the delivery checker).
    pub first_delivery: bool,
    /// For a delivery: a first delivery of its key out of order, counted in
    /// `per_key_order_violations` (set by the delivery checker).
    pub order_violation: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LatencySummary {
    pub count: u64,
    /// Seconds.
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencySummary {
    /// The summary, if anything was measured: no latency is not a latency of zero.
    pub fn measured(&self) -> Option<&LatencySummary> {
        (self.count > 0).then_some(self)
    }

    pub(crate) fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let s = |us: u64| us as f64 / 1e6;
        LatencySummary {
            count: h.len(),
            p50: s(h.value_at_quantile(0.5)),
            p99: s(h.value_at_quantile(0.99)),
            p999: s(h.value_at_quantile(0.999)),
            max: s(h.max()),
        }
    }
}

/// A concrete instance of an anomaly, for the report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Anomaly {
    pub kind: String,
    /// ns since the Unix epoch (0 when the anomaly is an absence, like a loss).
    pub t: u64,
    /// producer-key-seq
    pub id: Option<String>,
    pub key: Option<u32>,
    pub detail: String,
}

/// How the final read ended, as result.json gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FinalReadStatus {
    /// Read everything the broker still held: `lost` is verified.
    Complete,
    /// Stopped by `run.final_read_timeout`.
    TimedOut,
    /// Could not run (e.g. the broker was unreachable).
    Failed,
    /// The history has no final read (an older brokerbench, or a run that ended early).
    NotRun,
}

impl From<history::FinalReadOutcome> for FinalReadStatus {
    fn from(o: history::FinalReadOutcome) -> Self {
        match o {
            history::FinalReadOutcome::Complete => FinalReadStatus::Complete,
            history::FinalReadOutcome::TimedOut => FinalReadStatus::TimedOut,
            history::FinalReadOutcome::Failed => FinalReadStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FinalRead {
    pub outcome: FinalReadStatus,
    /// Values of the run it found.
    pub read: u64,
    pub detail: String,
}

impl FinalRead {
    pub fn not_run() -> FinalRead {
        FinalRead {
            outcome: FinalReadStatus::NotRun,
            read: 0,
            detail: "not verified by a final read: this history has none (recorded by an older \
                     brokerbench, or the run ended before it)"
                .into(),
        }
    }

    pub fn verified(&self) -> bool {
        self.outcome == FinalReadStatus::Complete
    }
}

impl Default for FinalRead {
    fn default() -> Self {
        FinalRead::not_run()
    }
}

/// Per-(producer, key) state, indexed directly: producers and keys are small dense numbers, so
/// no hashing on the hot path. Out-of-range ids (from a foreign or corrupt message) go to a map.
pub struct PerKey<T> {
    dense: Vec<Vec<T>>,
    sparse: HashMap<(u32, u32), T>,
}

const DENSE_PRODUCERS: u32 = 1024;
const DENSE_KEYS: u32 = 1 << 20;

impl<T: Default> Default for PerKey<T> {
    fn default() -> Self {
        PerKey {
            dense: Vec::new(),
            sparse: HashMap::default(),
        }
    }
}

impl<T: Default> PerKey<T> {
    #[inline]
    pub fn get(&mut self, producer: u32, key: u32) -> &mut T {
        if producer >= DENSE_PRODUCERS || key >= DENSE_KEYS {
            return self.sparse.entry((producer, key)).or_default();
        }
        let (p, k) = (producer as usize, key as usize);
        if self.dense.len() <= p {
            self.dense.resize_with(p + 1, Vec::new);
        }
        let keys = &mut self.dense[p];
        if keys.len() <= k {
            keys.resize_with(k + 1, T::default);
        }
        &mut keys[k]
    }

    /// Every (producer, key) with state, in order.
    pub fn iter(&self) -> impl Iterator<Item = ((u32, u32), &T)> {
        let dense = self.dense.iter().enumerate().flat_map(|(p, keys)| {
            keys.iter()
                .enumerate()
                .map(move |(k, v)| ((p as u32, k as u32), v))
        });
        let mut sparse: Vec<_> = self.sparse.iter().map(|(k, v)| (*k, v)).collect();
        sparse.sort_by_key(|(k, _)| *k);
        dense.chain(sparse)
    }
}

pub(crate) fn serialize_hist(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2Serializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}
