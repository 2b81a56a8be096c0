//! The fault proxy: an in-process TCP proxy on loopback between the harness's clients and one
//! broker, with one listener per client group so that producers and consumers can be cut off or
//! slowed down separately. Network faults add and remove toxics on a group; every connection of
//! that group sees the change at once.

mod link;
pub mod toxic;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use tokio::sync::watch;

use crate::message::{sub_seed, Stream};

pub use toxic::{Group, Toxic, ToxicSet};

/// A broker's wire protocol as the proxy must follow it. Most pass as plain bytes (no `Wire`);
/// a broker that tells clients where to connect (Kafka's metadata) gives filters that point those
/// addresses at the proxy's own listeners, so no client slips past the faults. The broker's own
/// folder in `driver/` implements it.
pub trait Wire: Send + Sync {
    /// The filters of one new connection: (client to broker, broker to client).
    fn filters(&self, router: Arc<dyn Router>) -> (Box<dyn Filter>, Box<dyn Filter>);
}

/// Sees, and may rewrite, one direction of one connection, chunk by chunk.
pub trait Filter: Send {
    /// The bytes to pass on for `chunk`. An error closes the connection: a stream the proxy
    /// cannot follow would let clients bypass it.
    fn apply(&mut self, chunk: Bytes) -> Result<Bytes>;
}

/// Maps a broker address the cluster advertises to the proxy listener that stands for it.
pub trait Router: Send + Sync {
    fn route(&self, host: &str, port: i32) -> Result<(String, i32)>;
}

/// The proxy in front of one broker.
pub struct Proxy {
    upstream: String,
    groups: Vec<Arc<GroupProxy>>,
    shutdown: watch::Sender<bool>,
}

/// Ports handed out to listeners: from a base the user chose, or any free one.
struct Ports(Mutex<Option<u16>>);

impl Ports {
    fn next(&self) -> u16 {
        match self.0.lock() {
            Ok(mut g) => match *g {
                Some(p) => {
                    *g = Some(p.wrapping_add(1));
                    p
                }
                None => 0,
            },
            Err(_) => 0,
        }
    }
}

/// One client group's side of the proxy: its toxics and its listeners (for Kafka, one per broker
/// node the cluster names, made when it first names it).
pub struct GroupProxy {
    group: Group,
    wire: Option<Arc<dyn Wire>>,
    toxics: watch::Sender<Arc<ToxicSet>>,
    next_toxic: AtomicU64,
    /// Upstream address to the local listener that stands for it.
    listeners: Mutex<HashMap<String, SocketAddr>>,
    ports: Arc<Ports>,
    shutdown: watch::Receiver<bool>,
    connections: AtomicU64,
    open: AtomicUsize,
    seed: u64,
    this: Weak<GroupProxy>,
}

impl Proxy {
    /// Listen for each client group on 127.0.0.1, starting at `first_port` (None: any free port).
    pub fn start(
        upstream: &str,
        wire: Option<Arc<dyn Wire>>,
        first_port: Option<u16>,
        seed: u64,
    ) -> Result<Proxy> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let ports = Arc::new(Ports(Mutex::new(first_port)));
        let mut groups = Vec::new();
        for (i, group) in Group::ALL.into_iter().enumerate() {
            let g = Arc::new_cyclic(|this| GroupProxy {
                group,
                wire: wire.clone(),
                toxics: watch::channel(Arc::new(ToxicSet::default())).0,
                next_toxic: AtomicU64::new(1),
                listeners: Mutex::new(HashMap::new()),
                ports: ports.clone(),
                shutdown: shutdown_rx.clone(),
                connections: AtomicU64::new(0),
                open: AtomicUsize::new(0),
                seed: sub_seed(seed, Stream::Proxy, i as u64),
                this: this.clone(),
            });
            g.listen(upstream)?;
            groups.push(g);
        }
        Ok(Proxy {
            upstream: upstream.to_string(),
            groups,
            shutdown,
        })
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    pub fn group(&self, g: Group) -> &Arc<GroupProxy> {
        let i = Group::ALL.iter().position(|x| *x == g).unwrap_or(0);
        &self.groups[i]
    }

    /// Where clients of `g` connect instead of the broker.
    pub fn address(&self, g: Group) -> SocketAddr {
        let group = self.group(g);
        group
            .listener_for(&self.upstream)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for g in &self.groups {
            g.toxics.send_replace(Arc::new(ToxicSet::default()));
        }
        let _ = self.shutdown.send(true);
    }
}

impl GroupProxy {
    /// Start a toxic on every connection of this group, open or new; returns its id.
    pub fn add(&self, toxic: Toxic) -> u64 {
        let id = self.next_toxic.fetch_add(1, Ordering::Relaxed);
        self.toxics.send_modify(|set| {
            let mut s = (**set).clone();
            s.active.push((id, toxic));
            *set = Arc::new(s);
        });
        id
    }

    pub fn remove(&self, id: u64) {
        self.toxics.send_modify(|set| {
            let mut s = (**set).clone();
            s.active.retain(|(i, _)| *i != id);
            *set = Arc::new(s);
        });
    }

    /// Reset every connection accepted so far (new ones follow the active toxics).
    pub fn reset_open(&self) {
        let before = self.connections.load(Ordering::Relaxed);
        self.toxics.send_modify(|set| {
            let mut s = (**set).clone();
            s.reset_before = before;
            *set = Arc::new(s);
        });
    }

    /// Connections open now, and accepted so far.
    pub fn connections(&self) -> (usize, u64) {
        (
            self.open.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
        )
    }

    fn listener_for(&self, upstream: &str) -> Option<SocketAddr> {
        self.listeners.lock().ok()?.get(upstream).copied()
    }

    /// The loopback listener that forwards to `upstream`, made on first use.
    fn listen(&self, upstream: &str) -> Result<SocketAddr> {
        let mut table = self
            .listeners
            .lock()
            .map_err(|_| anyhow!("fault proxy: listener table poisoned"))?;
        if let Some(a) = table.get(upstream) {
            return Ok(*a);
        }
        let bind = SocketAddr::from(([127, 0, 0, 1], self.ports.next()));
        let what = || {
            format!(
                "fault proxy: cannot listen on {bind} for {} → {upstream}",
                self.group.name()
            )
        };
        let std_listener = std::net::TcpListener::bind(bind).with_context(what)?;
        std_listener.set_nonblocking(true).with_context(what)?;
        let listener = tokio::net::TcpListener::from_std(std_listener).with_context(what)?;
        let local = listener.local_addr().with_context(what)?;
        let me = self
            .this
            .upgrade()
            .context("fault proxy is shutting down")?;
        table.insert(upstream.to_string(), local);
        let upstream = upstream.to_string();
        tokio::spawn(async move { me.accept_loop(listener, upstream).await });
        Ok(local)
    }

    async fn accept_loop(self: Arc<Self>, listener: tokio::net::TcpListener, upstream: String) {
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((client, _)) = accepted else { continue };
                    let n = self.connections.fetch_add(1, Ordering::Relaxed);
                    let me = self.clone();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        me.open.fetch_add(1, Ordering::Relaxed);
                        link::serve(&me, client, &upstream, n).await;
                        me.open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Clients that connect to whatever the cluster names (Kafka) get a listener of this group for
/// each name.
impl Router for GroupProxy {
    fn route(&self, host: &str, port: i32) -> Result<(String, i32)> {
        let local = self.listen(&format!("{host}:{port}"))?;
        Ok((local.ip().to_string(), local.port() as i32))
    }
}

#[cfg(test)]
mod tests;
