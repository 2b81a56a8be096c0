//! Kafka's options under `topology.kafka` in a workload.

use std::collections::BTreeMap;
use std::fmt;

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
    /// librdkafka producer properties, passed through as written (`linger.ms: 5`,
    /// `compression.type: lz4`) over the harness's defaults. Those the harness must own are
    /// refused, with the reason (see `OWNED`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub producer: BTreeMap<String, Property>,
    /// librdkafka consumer properties, the same way (`fetch.min.bytes: 1024`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub consumer: BTreeMap<String, Property>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            replication_factor: 1,
            idempotence: true,
            session_timeout: Dur::secs(6),
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
        }
    }
}

/// One client property's value as YAML gives it; librdkafka takes them all as text.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum Property {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Property::Bool(b) => write!(f, "{b}"),
            Property::Int(i) => write!(f, "{i}"),
            Property::Float(x) => write!(f, "{x}"),
            Property::Text(s) => f.write_str(s),
        }
    }
}

/// Which client a property is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Producer,
    Consumer,
}

/// Properties the harness sets itself, for the role(s) named, and why a workload may not.
pub const OWNED: &[(&str, Option<Role>, &str)] = &[
    (
        "bootstrap.servers",
        None,
        "the target profile names the brokers (kafka.bootstrap)",
    ),
    (
        "enable.idempotence",
        Some(Role::Producer),
        "set topology.kafka.idempotence instead",
    ),
    (
        "message.timeout.ms",
        Some(Role::Producer),
        "set run.send_timeout instead: the harness counts a send without an answer by then as indeterminate",
    ),
    (
        "delivery.report.only.error",
        Some(Role::Producer),
        "the harness records every send's acknowledgement from its delivery report",
    ),
    (
        "group.id",
        Some(Role::Consumer),
        "each run uses a fresh consumer group, so no earlier run's offsets apply",
    ),
    (
        "enable.auto.commit",
        Some(Role::Consumer),
        "set consumers.ack instead (auto commits on a timer, the others after or before processing)",
    ),
    (
        "enable.auto.offset.store",
        Some(Role::Consumer),
        "the harness stores an offset only once its message is processed, or a crash would skip messages",
    ),
    (
        "auto.offset.reset",
        Some(Role::Consumer),
        "consumers start from the earliest offset, so nothing sent before they joined is missed",
    ),
    (
        "session.timeout.ms",
        Some(Role::Consumer),
        "set topology.kafka.session_timeout instead",
    ),
];

/// Why the harness keeps `key` for itself on `role`'s client, if it does.
pub fn owned(role: Role, key: &str) -> Option<&'static str> {
    OWNED
        .iter()
        .find(|(k, r, _)| *k == key && r.is_none_or(|r| r == role))
        .map(|(_, _, why)| *why)
}
