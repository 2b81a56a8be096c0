//! SQS's section of a target profile, and what the run does with it.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::target::{plain_url_authority, with_address, Control, Section};
use crate::workload::Raw;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqsTarget {
    /// Endpoint URL; omit for AWS's regional endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    /// Static credentials (LocalStack accepts any); otherwise AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub product: String,
    #[serde(default)]
    pub control: Control,
}

impl Section for SqsTarget {
    fn control(&self) -> &Control {
        &self.control
    }

    fn address(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS {}", self.region))
    }

    fn upstream(&self) -> Result<String> {
        let ep = self.endpoint.as_deref().context(
            "network faults need the sqs target's `endpoint` (the proxy cannot stand in for AWS's TLS endpoint)",
        )?;
        plain_url_authority(ep, "http", 80)
    }

    fn routed_through(&self, proxy: std::net::SocketAddr) -> Result<Raw> {
        let mut routed = self.clone();
        routed.endpoint = self
            .endpoint
            .as_deref()
            .map(|e| with_address(e, proxy))
            .transpose()?;
        Ok(serde_json::to_value(routed)?)
    }
}
