//! SQS's options under `topology.sqs` in a workload.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::workload::units::Dur;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "SqsTopology")]
pub struct Options {
    /// FIFO queue with MessageGroupId = key (per-key order) instead of a standard queue.
    pub fifo: bool,
    pub visibility_timeout: Dur,
    /// Long-polling wait per ReceiveMessage call.
    pub wait_time: Dur,
    /// Messages per ReceiveMessage call (1..=10).
    pub batch: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fifo: false,
            visibility_timeout: Dur::secs(30),
            wait_time: Dur::secs(1),
            batch: 10,
        }
    }
}
