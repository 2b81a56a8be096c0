//! Network faults: a toxic added to the fault proxy for the window's client groups, removed when
//! the window ends.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;

use super::proxy::{Group, Proxy, Toxic};
use super::Fault;

pub struct NetworkFault {
    proxy: Arc<Proxy>,
    groups: Vec<Group>,
    toxic: Toxic,
    active: Vec<(Group, u64)>,
}

impl NetworkFault {
    pub fn new(proxy: Arc<Proxy>, groups: Vec<Group>, toxic: Toxic) -> Self {
        NetworkFault {
            proxy,
            groups,
            toxic,
            active: Vec::new(),
        }
    }

    fn who(&self) -> String {
        let names: Vec<&str> = self.groups.iter().map(|g| g.name()).collect();
        format!("{} ↔ broker {}", names.join("+"), self.proxy.upstream())
    }
}

#[async_trait]
impl Fault for NetworkFault {
    async fn start(&mut self) -> Result<String> {
        let mut open = 0;
        for g in &self.groups {
            let group = self.proxy.group(*g);
            self.active.push((*g, group.add(self.toxic.clone())));
            open += group.connections().0;
        }
        Ok(format!(
            "{} between {} (connections open: {open})",
            self.toxic.describe(),
            self.who()
        ))
    }

    async fn stop(&mut self) -> Result<String> {
        for (g, id) in self.active.drain(..) {
            self.proxy.group(g).remove(id);
        }
        Ok(format!(
            "{} removed between {}",
            self.toxic.describe(),
            self.who()
        ))
    }
}
