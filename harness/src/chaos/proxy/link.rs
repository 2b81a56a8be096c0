//! One proxied connection: two directions, each a reader and a writer joined by a short queue,
//! so that delay toxics hold data back the way a slow network does (reading goes on while a
//! chunk waits out its latency) and the link behaves like a plain copy when no toxic is active.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::toxic::{ConnectionState, ToxicSet};
use super::{Filter, GroupProxy};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Chunks read ahead of the writer; bounds what a slow direction buffers.
const QUEUE_CHUNKS: usize = 64;
const READ_SIZE: usize = 64 * 1024;

/// The group's toxics, as one connection sees them: `serial` is its place in the order the group
/// accepted connections (a reset after `reset_after` applies to those before a given serial).
#[derive(Clone)]
struct Toxics {
    rx: watch::Receiver<Arc<ToxicSet>>,
    serial: u64,
}

impl Toxics {
    fn state(&self) -> ConnectionState {
        self.rx.borrow().connection(self.serial)
    }

    fn state_and_update(&mut self) -> ConnectionState {
        self.rx.borrow_and_update().connection(self.serial)
    }

    async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.rx.changed().await
    }

    fn shaping(&self, upstream: bool) -> super::toxic::Shaping {
        self.rx.borrow().direction(upstream)
    }

    fn close_delay(&self) -> Duration {
        self.rx.borrow().close_delay()
    }
}

enum Chunk {
    Data {
        data: Bytes,
        read_at: Instant,
    },
    /// The sender closed its side cleanly.
    Eof,
    /// The sender's side failed (e.g. reset): pass the failure on as a reset.
    Failed,
}

fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Reset the connection `to` writes to. Dropping a write half would send a FIN first.
fn reset_half(to: OwnedWriteHalf) {
    reset(to.as_ref());
    to.forget();
}

/// End a direction the way the toxics say: reset (reset_peer) or close (down, shutdown).
async fn close(mut to: OwnedWriteHalf, toxics: &Toxics) {
    if toxics.state() == ConnectionState::Reset {
        reset_half(to);
    } else {
        let _ = to.shutdown().await;
    }
}

/// Wait while the connection is stalled; false once it must close.
async fn wait_open(toxics: &mut Toxics) -> bool {
    loop {
        match toxics.state_and_update() {
            ConnectionState::Open => return true,
            ConnectionState::Stalled => {
                if toxics.changed().await.is_err() {
                    return false;
                }
            }
            ConnectionState::Closed | ConnectionState::Reset => return false,
        }
    }
}

/// Wait while the connection is stalled or this direction is black-holed; false once the
/// connection must close.
async fn wait_passable(toxics: &mut Toxics, upstream: bool) -> bool {
    loop {
        if !wait_open(toxics).await {
            return false;
        }
        if !toxics.shaping(upstream).blackhole {
            return true;
        }
        if toxics.changed().await.is_err() {
            return false;
        }
    }
}

/// Forward one accepted client connection to `upstream` until either side is done.
pub(super) async fn serve(proxy: &Arc<GroupProxy>, client: TcpStream, upstream: &str, serial: u64) {
    let seed = proxy.seed.wrapping_add(serial);
    let mut toxics = Toxics {
        rx: proxy.toxics.subscribe(),
        serial,
    };
    // A new connection during a partition hangs (as a SYN would go unanswered); when down or
    // resetting it is refused with a reset.
    if !wait_open(&mut toxics).await {
        reset(&client);
        return;
    }
    let server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(s)) => s,
        _ => {
            // The broker is unreachable: tell the client the same way.
            reset(&client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (filter_up, filter_down) = match &proxy.wire {
        None => (None, None),
        Some(wire) => {
            let (up, down) = wire.filters(proxy.clone());
            (Some(up), Some(down))
        }
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        direction(
            client_read,
            server_write,
            true,
            toxics.clone(),
            filter_up,
            seed
        ),
        direction(
            server_read,
            client_write,
            false,
            toxics,
            filter_down,
            seed ^ 1
        ),
    );
}

async fn direction(
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    upstream: bool,
    toxics: Toxics,
    filter: Option<Box<dyn Filter>>,
    seed: u64,
) {
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    tokio::join!(
        read_side(from, tx, toxics.clone(), filter),
        write_side(to, rx, upstream, toxics, seed),
    );
}

async fn read_side(
    mut from: OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
    mut toxics: Toxics,
    mut filter: Option<Box<dyn Filter>>,
) {
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    loop {
        if !wait_open(&mut toxics).await {
            return;
        }
        buf.reserve(READ_SIZE);
        let read = tokio::select! {
            biased;
            changed = toxics.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            r = from.read_buf(&mut buf) => r,
        };
        let chunk = match read {
            Ok(0) => Chunk::Eof,
            Ok(_) => {
                let raw = buf.split().freeze();
                let data = match &mut filter {
                    None => raw,
                    Some(f) => match f.apply(raw) {
                        Ok(d) => d,
                        Err(e) => {
                            // A stream we cannot follow would let clients bypass the proxy.
                            crate::note!("warning: fault proxy: closing a connection it cannot follow: {e:#}");
                            let _ = tx.send(Chunk::Failed).await;
                            return;
                        }
                    },
                };
                if data.is_empty() {
                    continue;
                }
                Chunk::Data {
                    data,
                    read_at: Instant::now(),
                }
            }
            Err(_) => Chunk::Failed,
        };
        let last = !matches!(chunk, Chunk::Data { .. });
        if tx.send(chunk).await.is_err() || last {
            return;
        }
    }
}

async fn write_side(
    mut to: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Chunk>,
    upstream: bool,
    mut toxics: Toxics,
    seed: u64,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    // Bytes passed since each limit_data toxic started.
    let mut passed: HashMap<u64, u64> = HashMap::new();
    let mut line_free = Instant::now();
    loop {
        let chunk = tokio::select! {
            c = rx.recv() => c,
            changed = toxics.changed() => {
                let state = toxics.state_and_update();
                match (changed, state) {
                    (Err(_), _) => return,
                    (_, ConnectionState::Reset | ConnectionState::Closed) => {
                        return close(to, &toxics).await
                    }
                    _ => continue,
                }
            }
        };
        let (data, read_at) = match chunk {
            // The reader stopped because of a toxic.
            None => return close(to, &toxics).await,
            Some(Chunk::Failed) => return reset_half(to),
            Some(Chunk::Eof) => {
                let delay = toxics.close_delay();
                tokio::time::sleep(delay).await;
                let _ = to.shutdown().await;
                return;
            }
            Some(Chunk::Data { data, read_at }) => (data, read_at),
        };
        // Data read before a partition or a black hole waits for it to heal, as TCP would keep
        // retransmitting it: it is delayed, never dropped.
        if !wait_passable(&mut toxics, upstream).await {
            return close(to, &toxics).await;
        }
        let shaping = toxics.shaping(upstream);
        let delay = shaping.release_delay(&mut rng);
        if !delay.is_zero() {
            tokio::time::sleep_until(read_at + delay).await;
        }
        // limit_data: pass what the tightest limit still allows, then close.
        let mut allowed = data.len();
        for (id, limit) in &shaping.limits {
            let seen = passed.entry(*id).or_insert(0);
            allowed = allowed.min(limit.saturating_sub(*seen) as usize);
        }
        let data = data.slice(..allowed);
        let mut at = 0;
        for size in shaping.slices(data.len(), &mut rng) {
            if shaping.rate.is_some() {
                // A slice arrives once the line has carried it.
                line_free = line_free.max(Instant::now()) + shaping.transmit_time(size);
                tokio::time::sleep_until(line_free).await;
            }
            if to.write_all(&data[at..at + size]).await.is_err() {
                return;
            }
            at += size;
            if let Some((_, gap)) = shaping.slice {
                if at < data.len() {
                    tokio::time::sleep(gap).await;
                }
            }
        }
        for (id, _) in &shaping.limits {
            *passed.entry(*id).or_insert(0) += allowed as u64;
        }
        if shaping
            .limits
            .iter()
            .any(|(id, limit)| passed.get(id).copied().unwrap_or(0) >= *limit)
        {
            let _ = to.shutdown().await;
            return;
        }
    }
}
