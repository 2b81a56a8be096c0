//! Kafka's options under `topology.kafka` in a workload.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::workload::units::Dur;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "KafkaTopology")]
pub struct Options {
    pub replication_factor: u16,
    /// enable.idempotence on the producer (no producer-side duplicates on retry).
    pub idempotence: bool,
    /// Consumer session timeout: how long a crashed member keeps its partitions.
    pub session_timeout: Dur,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            replication_factor: 1,
            idempotence: true,
            session_timeout: Dur::secs(6),
        }
    }
}
