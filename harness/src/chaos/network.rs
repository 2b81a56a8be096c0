//! Network faults: a toxic added to the fault proxy for the window's client groups, removed when
//! the window ends. With `reset_after`, the connections that were open when the fault began are
//! reset once it has lasted that long, as the operating system would give up on them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;

use super::proxy::{Group, Proxy, Toxic};
use super::Fault;

pub struct NetworkFault {
    proxy: Arc<Proxy>,
    groups: Vec<Group>,
    toxic: Toxic,
    reset_after: Option<Duration>,
    active: Vec<(Group, u64)>,
    reset_task: Option<tokio::task::JoinHandle<()>>,
    reset_done: Arc<AtomicBool>,
}

impl NetworkFault {
    pub fn new(
        proxy: Arc<Proxy>,
        groups: Vec<Group>,
        toxic: Toxic,
        reset_after: Option<Duration>,
    ) -> Self {
        NetworkFault {
            proxy,
            groups,
            toxic,
            reset_after,
            active: Vec::new(),
            reset_task: None,
            reset_done: Arc::new(AtomicBool::new(false)),
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
        if let Some(after) = self.reset_after {
            let (proxy, groups, done) = (
                self.proxy.clone(),
                self.groups.clone(),
                self.reset_done.clone(),
            );
            self.reset_task = Some(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                for g in groups {
                    proxy.group(g).reset_open();
                }
                done.store(true, Ordering::Relaxed);
            }));
        }
        let reset = match self.reset_after {
            Some(d) => format!(
                "; open connections reset after {}",
                humantime::format_duration(d)
            ),
            None => String::new(),
        };
        Ok(format!(
            "{} between {} (connections open: {open}){reset}",
            self.toxic.describe(),
            self.who()
        ))
    }

    async fn stop(&mut self) -> Result<String> {
        if let Some(t) = self.reset_task.take() {
            t.abort();
        }
        for (g, id) in self.active.drain(..) {
            self.proxy.group(g).remove(id);
        }
        let reset = if self.reset_done.load(Ordering::Relaxed) {
            " (the connections open at its start were reset)"
        } else {
            ""
        };
        Ok(format!(
            "{} removed between {}{reset}",
            self.toxic.describe(),
            self.who()
        ))
    }
}
