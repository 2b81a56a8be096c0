//! result.json: what a run found, per broker, with its status; versioned and read back.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::check::expect::{Outcome, Verdict};
use crate::check::Metrics;
use crate::workload::BrokerKind;

/// Bumped whenever a field changes meaning or disappears (adding fields keeps the version).
/// Version 3: a verdict's `passed` became its `outcome` (pass, not-judged, fail), and each
/// broker says why its run is `inconclusive`.
pub const SCHEMA_VERSION: u32 = 3;
/// Version 1 (before the final read) is still read: its new fields take their defaults, and its
/// `lost` counted every acknowledged value that was not processed. Versions 1 and 2 verdicts'
/// `passed` reads as a pass or a fail; they knew no inconclusive runs.
const OLDEST_READABLE: u32 = 1;

/// What a run (or a broker's part of it, or a suite) comes to. Ordered by severity, so the
/// worst of several is their max: a failure seen is a failure whatever else went wrong, and
/// anything untrusted is not a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    /// Nothing failed, but something could not be judged: a planned fault did not happen as
    /// planned, nothing was measured, the history is damaged, or the run broke off.
    Inconclusive,
    Fail,
}

impl Status {
    /// As the terminal and the pages write it.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Inconclusive => "INCONCLUSIVE",
            Status::Fail => "FAIL",
        }
    }

    /// The pages' CSS class for it.
    pub fn class(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Inconclusive => "warn",
            Status::Fail => "fail",
        }
    }

    /// What one verdict comes to.
    pub fn of(o: Outcome) -> Status {
        match o {
            Outcome::Pass => Status::Pass,
            Outcome::NotJudged => Status::Inconclusive,
            Outcome::Fail => Status::Fail,
        }
    }

    /// The worst of `statuses`; a pass when there are none.
    pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
        statuses.into_iter().max().unwrap_or(Status::Pass)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunResult {
    pub schema_version: u32,
    pub run_id: String,
    pub workload: String,
    /// What the workload measured, as `Workload::digest`: compare and trend judge two runs of a
    /// workload against each other only when their digests agree. Empty in results written
    /// before it existed.
    #[serde(default)]
    pub workload_digest: String,
    pub description: String,
    pub harness_version: String,
    pub started_at: String,
    pub seed: u64,
    pub target: String,
    pub interrupted: bool,
    #[serde(default)]
    pub environment: Environment,
    pub brokers: Vec<BrokerResult>,
    /// Set when the run was one step of a stepped rate (a sweep or a search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<super::sweep::Step>,
}

/// The machine the harness ran on (brokers may run elsewhere: see each broker's `product`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Environment {
    pub host: String,
    pub os: String,
    pub cpus: usize,
    pub cpu_model: String,
}

impl Environment {
    pub fn detect() -> Environment {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Environment {
            host: read("/proc/sys/kernel/hostname"),
            os: format!(
                "{} {}",
                std::env::consts::OS,
                read("/proc/sys/kernel/osrelease")
            ),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BrokerResult {
    pub broker: BrokerKind,
    pub product: String,
    /// The settings the run's clients used (harness defaults and the workload's own), e.g.
    /// `producer.linger.ms: "1"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_settings: BTreeMap<String, String>,
    /// Set when the run against this broker could not happen or broke off.
    pub error: Option<String>,
    pub metrics: Option<Metrics>,
    pub verdicts: Vec<Verdict>,
    /// Why this run cannot vouch for its verdicts (see `check::inconclusive`): a fault that
    /// did not happen as planned, nothing measured, a damaged history, no final read, an error
    /// or an interruption. Empty when it can.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inconclusive: Vec<String>,
    /// What was checked before the run: an earlier run of the job left this broker faulted,
    /// and whether it answered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<String>,
}

impl BrokerResult {
    /// A result with nothing measured: the run against `broker` could not happen.
    pub fn errored(broker: &BrokerKind, error: String) -> BrokerResult {
        BrokerResult {
            broker: broker.clone(),
            product: String::new(),
            client_settings: BTreeMap::new(),
            inconclusive: vec![format!("the run could not happen: {error}")],
            error: Some(error),
            metrics: None,
            verdicts: Vec::new(),
            preflight: None,
        }
    }

    /// Fail when any verdict failed; otherwise inconclusive when anything could not be judged
    /// or the run errored; otherwise pass.
    pub fn status(&self) -> Status {
        let worst = Status::worst(self.verdicts.iter().map(|v| Status::of(v.outcome)));
        if worst == Status::Pass && (self.error.is_some() || !self.inconclusive.is_empty()) {
            return Status::Inconclusive;
        }
        worst
    }

    pub fn passed(&self) -> bool {
        self.status() == Status::Pass
    }

    /// Why the run is inconclusive, in one line; None when it is not (it passed or failed).
    pub fn inconclusive_because(&self) -> Option<String> {
        (self.status() == Status::Inconclusive).then(|| self.why_inconclusive())
    }

    /// One line: why the run is inconclusive, or what errored.
    pub fn why_inconclusive(&self) -> String {
        let mut why = self.inconclusive.clone();
        if let Some(e) = &self.error {
            if !why.iter().any(|w| w.contains(e.as_str())) {
                why.push(format!("the run errored: {e}"));
            }
        }
        why.join("; ")
    }
}

/// The JSON Schema of result.json (kept in docs/result.schema.json).
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(RunResult)).unwrap_or_default();
    crate::driver::name_brokers(&mut schema);
    schema
}

/// Whether runs of one workload measured the same thing, by their workloads' digests (see
/// `Workload::digest`). A result written before digests existed tells nothing either way.
pub fn same_workload<'a>(digests: impl IntoIterator<Item = &'a str>) -> bool {
    let mut known = digests.into_iter().filter(|d| !d.is_empty());
    match known.next() {
        None => true,
        Some(first) => known.all(|d| d == first),
    }
}

/// Why a run is not judged against a baseline whose workload differs from its own.
pub const WORKLOAD_CHANGED: &str =
    "the workload changed since the baseline (its topology, load, consumers, faults or run settings)";

impl RunResult {
    /// A result for a run of `w` that starts now, with no broker results yet.
    pub fn new(run_id: &str, w: &crate::workload::Workload, seed: u64, target: &str) -> RunResult {
        RunResult {
            schema_version: SCHEMA_VERSION,
            run_id: run_id.to_string(),
            workload: w.name.clone(),
            workload_digest: w.digest(),
            description: w.description.clone(),
            harness_version: env!("CARGO_PKG_VERSION").into(),
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            seed,
            target: target.to_string(),
            interrupted: false,
            environment: Environment::detect(),
            brokers: Vec::new(),
            step: None,
        }
    }

    pub fn status(&self) -> Status {
        Status::worst(self.brokers.iter().map(BrokerResult::status))
    }

    pub fn passed(&self) -> bool {
        self.status() == Status::Pass
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("result.json");
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        super::junit::write(self, &dir.join("junit.xml"))?;
        super::html::write_run(self, dir)
    }

    pub fn read(path: &Path) -> Result<RunResult> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let r: RunResult =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(
            (OLDEST_READABLE..=SCHEMA_VERSION).contains(&r.schema_version),
            "{} has schema version {}, this brokerbench reads {OLDEST_READABLE} to {SCHEMA_VERSION}",
            path.display(),
            r.schema_version
        );
        Ok(r)
    }
}
