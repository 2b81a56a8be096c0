//! RabbitMQ's options under `topology.rabbitmq` in a workload.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum QueueType {
    Classic,
    Quorum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Sharding {
    /// One queue per partition behind a consistent-hash exchange keyed by the message key.
    ConsistentHash,
    /// A single queue regardless of `partitions`.
    None,
}

/// How a cluster's nodes react to a partition (RabbitMQ's `cluster_partition_handling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionHandling {
    /// A node that sees fewer than half of the nodes stops serving until the partition heals.
    PauseMinority,
    /// Both sides go on; once the partition heals, the side with fewer clients restarts.
    Autoheal,
    /// Both sides go on and stay apart until an operator restarts one.
    Ignore,
}

impl PartitionHandling {
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionHandling::PauseMinority => "pause_minority",
            PartitionHandling::Autoheal => "autoheal",
            PartitionHandling::Ignore => "ignore",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(rename = "RabbitTopology")]
pub struct Options {
    pub queue_type: QueueType,
    pub sharding: Sharding,
    /// Only one consumer receives from each queue at a time (keeps per-queue order).
    pub single_active_consumer: bool,
    /// basic.qos prefetch per consumer channel.
    pub prefetch: u16,
    /// AMQP channels each consumer spreads its queues over (queue i on channel i mod n), each with
    /// its own prefetch, all on the consumer's one connection. A channel is one process in the
    /// broker and one ordered stream of deliveries and acks, so one channel can be what limits a
    /// consumer of many shards.
    pub channels_per_consumer: u16,
    /// A cluster's partition handling for this run, set through the target's
    /// `partition_handling` command before anything is declared. Unset: as the cluster is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_handling: Option<PartitionHandling>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            queue_type: QueueType::Classic,
            sharding: Sharding::ConsistentHash,
            single_active_consumer: true,
            prefetch: 100,
            channels_per_consumer: 1,
            partition_handling: None,
        }
    }
}
