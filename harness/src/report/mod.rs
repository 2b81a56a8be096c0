//! Outputs of a run: result.json (versioned), the terminal summary, and JUnit XML.

pub mod junit;
pub mod summary;

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::check::expect::Verdict;
use crate::check::Metrics;
use crate::workload::BrokerKind;

/// Bumped whenever a field changes meaning or disappears (adding fields keeps the version).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub schema_version: u32,
    pub run_id: String,
    pub workload: String,
    pub description: String,
    pub harness_version: String,
    pub started_at: String,
    pub seed: u64,
    pub target: String,
    pub interrupted: bool,
    pub brokers: Vec<BrokerResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerResult {
    pub broker: BrokerKind,
    pub product: String,
    /// Set when the run against this broker could not happen or broke off.
    pub error: Option<String>,
    pub metrics: Option<Metrics>,
    pub verdicts: Vec<Verdict>,
}

impl BrokerResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.verdicts.iter().all(|v| v.passed)
    }
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.brokers.iter().all(BrokerResult::passed)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("result.json");
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        junit::write(self, &dir.join("junit.xml"))
    }

    pub fn read(path: &Path) -> Result<RunResult> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let r: RunResult = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(r.schema_version == SCHEMA_VERSION, "{} has schema version {}, this brokerbench reads {SCHEMA_VERSION}", path.display(), r.schema_version);
        Ok(r)
    }
}
