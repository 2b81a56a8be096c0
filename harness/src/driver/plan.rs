//! What a run tells a driver: the plan, the names of what it creates, and the driver it gets.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{address, broker, section, Broker, Driver};
#[cfg(test)]
use super::{check_target, validate};
use crate::target::TargetProfile;
use crate::workload::{self, BrokerKind, Workload};

/// Everything a driver needs to know, in the coordinator and in each worker process alike.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub run_id: String,
    pub broker: BrokerKind,
    pub workload: Workload,
    pub target: TargetProfile,
    /// Prefix of every topic, queue and exchange this run creates: unique to the run.
    pub resource_prefix: String,
}

impl Plan {
    pub fn new(
        run_id: &str,
        broker: BrokerKind,
        workload: &Workload,
        target: &TargetProfile,
    ) -> Plan {
        Plan {
            run_id: run_id.to_string(),
            broker,
            workload: workload.clone(),
            target: target.clone(),
            resource_prefix: resource_prefix(run_id),
        }
    }
}

/// What every run's resources are named with first (see `resource_prefix`).
pub const RESOURCE_PREFIX: &str = "bb-";

/// What run `run_id`'s topics, queues, exchanges and groups are named with first: unique to
/// the run. Names must be valid everywhere: SQS allows [A-Za-z0-9_-] up to 80 chars.
pub fn resource_prefix(run_id: &str) -> String {
    format!("{RESOURCE_PREFIX}{}", workload::slug(run_id, 57))
}

/// Something a run created on a broker: its kind as the broker calls it (`topic`, `group`,
/// `queue`, `exchange`) and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resource {
    pub kind: &'static str,
    pub name: String,
}

impl Plan {
    /// A plan for no run, to list and delete what runs created on `broker` (its clients need
    /// a plan; this one's workload only sets defaults, and its resource prefix is none).
    pub fn janitor(broker: BrokerKind, target: &TargetProfile) -> Result<Plan> {
        let yaml = format!(
            "name: leftovers\nbrokers: [{broker}]\nload: {{ rate: 1/s, duration: 1s }}\nconsumers: {{ count: 0 }}\n"
        );
        let w = workload::parse(std::path::Path::new("leftovers"), &yaml, &[])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Plan {
            run_id: String::new(),
            broker,
            workload: w,
            target: target.clone(),
            resource_prefix: RESOURCE_PREFIX.into(),
        })
    }
}

impl Plan {
    /// The registry's entry for the run's broker.
    pub fn broker(&self) -> Result<&'static Broker> {
        broker(&self.broker)
    }

    /// Where the run's broker listens, for messages.
    pub fn address(&self) -> String {
        address(&self.target, &self.broker)
    }

    /// How long a consumer may take to become ready.
    pub fn ready_timeout(&self) -> Duration {
        let slack = self
            .broker()
            .map_or(Duration::ZERO, |b| (b.ready_slack)(&self.workload));
        self.workload.run.connect_timeout.0 + slack
    }
}

/// The driver for the plan's broker; fails naming the broker when the target lacks it.
pub fn driver(plan: Arc<Plan>) -> Result<Box<dyn Driver>> {
    section(&plan.target, &plan.broker)?;
    (plan.broker()?.connect)(plan)
}

/// A plan for `yaml`'s workload against the shipped local profile, for drivers' own tests.
#[cfg(test)]
pub(crate) fn test_plan(broker: &str, yaml: &str) -> Arc<Plan> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
    let target = TargetProfile::load(&root.join("local.yaml"), &[check_target]).unwrap();
    let w = workload::parse(std::path::Path::new("w.yaml"), yaml, &[validate]).unwrap();
    Arc::new(Plan::new("t", BrokerKind::new(broker), &w, &target))
}
