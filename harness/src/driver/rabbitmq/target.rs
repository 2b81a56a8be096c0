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
    /// A cluster: every node's URL (`url` among them or not). Each new connection goes to the
    /// next node in turn, and on to the others when that one does not answer, as a production
    /// client given a node list does; so a client that reconnects after a fault lands on
    /// another node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    pub product: String,
    #[serde(default)]
    pub control: Control,
}

impl Section for RabbitTarget {
    fn control(&self) -> &Control {
        &self.control
    }

    fn address(&self) -> String {
        if self.urls.is_empty() {
            redact_url(&self.url)
        } else {
            self.urls
                .iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    fn upstream(&self) -> Result<String> {
        plain_url_authority(&self.url, "amqp", 5672)
    }

    fn routed_through(&self, proxy: std::net::SocketAddr) -> Result<Raw> {
        let mut routed = self.clone();
        routed.url = with_address(&self.url, proxy)?;
        // Through the proxy, every connection goes to it (and on to `url`'s node): the other
        // nodes would be reached around the faults.
        routed.urls.clear();
        Ok(serde_json::to_value(routed)?)
    }
}
