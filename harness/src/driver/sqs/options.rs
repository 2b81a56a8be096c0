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
    /// ReceiveMessage calls each consumer keeps in flight at once (1..=10). One is the simple
    /// receive loop; on a broker that answers each call slowly, one call at a time caps a consumer
    /// at `batch` messages per round trip, and more calls are how an application gets past that
    /// without more consumers.
    pub receivers_per_consumer: u8,
    /// Messages per SendMessageBatch call (1..=10; 1 sends each with SendMessage).
    pub publish_batch: u8,
    /// How long a send may wait for others to fill its batch (the AWS Java SDK's buffered client
    /// waits up to 200 ms). Fewer, fuller requests are what lets LocalStack, one busy Python
    /// process, keep up: at 500 msg/s from two producers, 5 ms left end-to-end p99 at 19 s, 25 ms
    /// brought it to 0.25 s.
    pub linger: Dur,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fifo: false,
            visibility_timeout: Dur::secs(30),
            wait_time: Dur::secs(1),
            batch: 10,
            receivers_per_consumer: 1,
            publish_batch: 10,
            linger: Dur::millis(20),
        }
    }
}
