//! Kafka's section of a target profile, and what the run does with it.

use anyhow::Result;

use crate::target::{Control, KafkaTarget, Section};

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

    fn route_through(&mut self, proxy: std::net::SocketAddr) -> Result<()> {
        self.bootstrap = proxy.to_string();
        Ok(())
    }
}
