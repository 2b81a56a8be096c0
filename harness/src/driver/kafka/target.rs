//! Kafka's section of a target profile, and what the run does with it.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::target::{Control, Section};
use crate::workload::Raw;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTarget {
    /// bootstrap.servers, e.g. 127.0.0.1:9092
    pub bootstrap: String,
    /// What the broker is, for reports: e.g. "Kafka protocol (tansu 0.6.0)" or "Apache Kafka 3.9".
    pub product: String,
    #[serde(default)]
    pub control: Control,
}

impl Section for KafkaTarget {
    fn control(&self) -> &Control {
        &self.control
    }

    fn address(&self) -> String {
        self.bootstrap.clone()
    }

    /// The first bootstrap server: the proxy stands for it, and for every node it names.
    fn upstream(&self) -> Result<String> {
        let first = self.bootstrap.split(',').next().unwrap_or_default().trim();
        Ok(first.to_string())
    }

    fn routed_through(&self, proxy: std::net::SocketAddr) -> Result<Raw> {
        let mut routed = self.clone();
        routed.bootstrap = proxy.to_string();
        Ok(serde_json::to_value(routed)?)
    }
}
