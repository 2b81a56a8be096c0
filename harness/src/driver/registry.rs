//! The registry's entries: what the rest of the crate asks of one broker, and how it finds one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Driver, Plan, Problem, BROKERS};
use crate::chaos::proxy::Wire;
use crate::target::Section;
use crate::workload::{self, BrokerKind, Raw, Workload};

/// Everything the rest of the crate asks of one broker. Each broker's folder defines its own.
pub struct Broker {
    /// How workloads, target profiles and the command line name it.
    pub name: &'static str,
    /// The driver for one run (the plan's target has this broker's section).
    pub connect: fn(Arc<Plan>) -> Result<Box<dyn Driver>>,
    /// Its section of a target profile, read from what the profile holds under its name.
    pub section: fn(&Raw) -> Result<Box<dyn Section>, Problem>,
    /// Its options under `topology.<name>`: whether they read (`read_problem::<T>`), and their
    /// schema for editors.
    pub options: fn(&Raw) -> Option<Problem>,
    pub options_schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// How the fault proxy must follow its wire protocol (None: plain bytes).
    pub wire: Option<fn() -> Arc<dyn Wire>>,
    /// What its consumers may need beyond `run.connect_timeout` to become ready.
    pub ready_slack: fn(&Workload) -> Duration,
    /// Its own checks of a workload that lists it (option values, size limits).
    pub validate: workload::Rule,
    /// The target's control commands its options call on (by `Control::command` name), each with
    /// the workload key that asks for it: checked before anything runs.
    pub needs_controls: fn(&Workload) -> Vec<NeededControl>,
}

/// A control command an option calls on: the option's keys in the workload, and the command's
/// name (as `Control::command` knows it).
pub type NeededControl = (Vec<String>, &'static str);

/// The registry's entry named `kind`, or an error listing the names there are.
pub fn broker(kind: &BrokerKind) -> Result<&'static Broker> {
    BROKERS
        .iter()
        .copied()
        .find(|b| b.name == kind.as_str())
        .with_context(|| {
            format!(
                "no broker is named `{kind}` (brokers: {})",
                names().join(", ")
            )
        })
}

/// The registry's names, in its order.
pub fn names() -> Vec<&'static str> {
    BROKERS.iter().map(|b| b.name).collect()
}
