//! RabbitMQ's section of a target profile, and what the run does with it.

use anyhow::Result;

use crate::target::{
    plain_url_authority, redact_url, with_address, Control, RabbitTarget, Section,
};

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

    fn route_through(&mut self, proxy: std::net::SocketAddr) -> Result<()> {
        self.url = with_address(&self.url, proxy)?;
        Ok(())
    }
}
