//! RabbitMQ's section of a target profile, and what the run does with it.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::target::{plain_url_authority, redact_url, with_address, Control, Section};
use crate::workload::Raw;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitTarget {
    /// amqp://user:password@host:port/vhost
    pub url: String,
    pub product: String,
    #[serde(default)]
    pub control: Control,
}

impl Section for RabbitTarget {
    fn control(&self) -> &Control {
        &self.control
    }

    fn address(&self) -> String {
        redact_url(&self.url)
    }

    fn upstream(&self) -> Result<String> {
        plain_url_authority(&self.url, "amqp", 5672)
    }

    fn routed_through(&self, proxy: std::net::SocketAddr) -> Result<Raw> {
        let mut routed = self.clone();
        routed.url = with_address(&self.url, proxy)?;
        Ok(serde_json::to_value(routed)?)
    }
}
