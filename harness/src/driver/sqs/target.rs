//! SQS's section of a target profile, and what the run does with it.

use anyhow::{Context, Result};

use crate::target::{plain_url_authority, with_address, Control, Section, SqsTarget};

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

    fn route_through(&mut self, proxy: std::net::SocketAddr) -> Result<()> {
        self.endpoint = self
            .endpoint
            .as_deref()
            .map(|e| with_address(e, proxy))
            .transpose()?;
        Ok(())
    }
}
