//! Network toxics (Toxiproxy's vocabulary) resolved from a workload fault, and what the set of
//! active toxics means for one direction of one connection.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::workload::{Direction, Fault};

/// One network fault as the proxy applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Toxic {
    /// A network partition: nothing moves either way and new connections hang, as when packets
    /// are dropped; TCP holds the bytes, so what was sent arrives once the partition heals.
    Partition,
    /// The proxy is down: open connections are closed and new ones reset at once.
    Down,
    /// Every connection, open or new, is reset (RST, "connection reset by peer").
    ResetPeer,
    /// A black hole in one direction (or both): nothing passes that way, and nothing is lost
    /// either. As with packets dropped on a real network, TCP keeps the unacknowledged bytes and
    /// delivers them, in order, once the hole closes; the connection stalls meanwhile. (A stream
    /// with a hole in it is something no TCP connection can deliver, so no toxic makes one.)
    Blackhole(Direction),
    Latency {
        latency: Duration,
        jitter: Duration,
        direction: Direction,
    },
    /// At most this many bytes per second.
    Bandwidth { rate: u64, direction: Direction },
    /// Data cut into slices of about `size` bytes, `delay` apart.
    Slicer {
        size: u64,
        delay: Duration,
        direction: Direction,
    },
    /// Each connection is closed once `bytes` have passed after the toxic started.
    LimitData { bytes: u64, direction: Direction },
    /// Closing is delayed by this much.
    SlowClose(Duration),
}

/// Which clients a network fault cuts off or slows down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Group {
    Producers,
    Consumers,
}

impl Group {
    pub const ALL: [Group; 2] = [Group::Producers, Group::Consumers];

    pub fn name(self) -> &'static str {
        match self {
            Group::Producers => "producers",
            Group::Consumers => "consumers",
        }
    }
}

/// The client groups `between` names; the other side must be the broker.
pub fn groups(f: &Fault) -> Result<Vec<Group>, String> {
    let Some(sides) = &f.between else {
        return Ok(Group::ALL.to_vec());
    };
    let bad = || {
        format!(
            "between must name a client group and the broker, e.g. [consumers, broker]; got {sides:?} \
             (client groups: producers, consumers, clients)"
        )
    };
    let clients: Vec<&str> = sides
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "broker")
        .collect();
    if sides.len() != 2 || clients.len() != 1 {
        return Err(bad());
    }
    match clients[0] {
        "producers" => Ok(vec![Group::Producers]),
        "consumers" => Ok(vec![Group::Consumers]),
        "clients" => Ok(Group::ALL.to_vec()),
        _ => Err(bad()),
    }
}

impl Toxic {
    fn direction(&self) -> Option<Direction> {
        match self {
            Toxic::Blackhole(d)
            | Toxic::Latency { direction: d, .. }
            | Toxic::Bandwidth { direction: d, .. }
            | Toxic::Slicer { direction: d, .. }
            | Toxic::LimitData { direction: d, .. } => Some(*d),
            _ => None,
        }
    }

    /// Whether the toxic acts on data flowing `upstream` (client to broker) or downstream.
    pub fn acts_on(&self, upstream: bool) -> bool {
        match self.direction() {
            None => true,
            Some(Direction::Both) => true,
            Some(Direction::Upstream) => upstream,
            Some(Direction::Downstream) => !upstream,
        }
    }

    /// How the history describes it.
    pub fn describe(&self) -> String {
        let dir = |d: &Direction| match d {
            Direction::Both => "both ways",
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        };
        let ms = |d: &Duration| format!("{}", humantime::format_duration(*d));
        match self {
            Toxic::Partition => "partition (nothing passes; bytes held until it heals)".into(),
            Toxic::Down => "down (connections closed, new ones reset)".into(),
            Toxic::ResetPeer => "reset_peer (every connection reset)".into(),
            Toxic::Blackhole(d) => format!("blackhole {} (nothing passes; bytes held)", dir(d)),
            Toxic::Latency {
                latency,
                jitter,
                direction,
            } => format!(
                "latency {} ± {} {}",
                ms(latency),
                ms(jitter),
                dir(direction)
            ),
            Toxic::Bandwidth { rate, direction } => {
                format!("bandwidth {rate} B/s {}", dir(direction))
            }
            Toxic::Slicer {
                size,
                delay,
                direction,
            } => format!("slicer {size} B every {} {}", ms(delay), dir(direction)),
            Toxic::LimitData { bytes, direction } => {
                format!("limit_data {bytes} B {}", dir(direction))
            }
            Toxic::SlowClose(d) => format!("slow_close {}", ms(d)),
        }
    }
}

/// Toxics active on one client group, each with the id the fault that added it holds.
#[derive(Debug, Clone, Default)]
pub struct ToxicSet {
    pub active: Vec<(u64, Toxic)>,
    /// Connections accepted before this serial number are reset: what an operating system does
    /// to a connection whose retransmissions went unanswered for too long (`reset_after`).
    pub reset_before: u64,
}

/// What the active toxics mean for a connection as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Open,
    /// Hold everything (partition).
    Stalled,
    /// Close gracefully and refuse new connections (down).
    Closed,
    /// Close with RST (reset_peer).
    Reset,
}

impl ToxicSet {
    /// What the toxics mean for the connection with this serial number (its place in the order
    /// the group accepted connections).
    pub fn connection(&self, serial: u64) -> ConnectionState {
        let has = |t: &Toxic| self.active.iter().any(|(_, a)| a == t);
        if has(&Toxic::ResetPeer) || serial < self.reset_before {
            ConnectionState::Reset
        } else if has(&Toxic::Down) {
            ConnectionState::Closed
        } else if has(&Toxic::Partition) {
            ConnectionState::Stalled
        } else {
            ConnectionState::Open
        }
    }

    /// The longest slow_close among the active toxics.
    pub fn close_delay(&self) -> Duration {
        self.active
            .iter()
            .filter_map(|(_, t)| match t {
                Toxic::SlowClose(d) => Some(*d),
                _ => None,
            })
            .max()
            .unwrap_or_default()
    }

    /// The data toxics for one direction, combined.
    pub fn direction(&self, upstream: bool) -> Shaping {
        let mut s = Shaping::default();
        for (id, t) in self.active.iter().filter(|(_, t)| t.acts_on(upstream)) {
            match *t {
                Toxic::Blackhole(_) => s.blackhole = true,
                Toxic::Latency {
                    latency, jitter, ..
                } => {
                    s.latency += latency;
                    s.jitter += jitter;
                }
                Toxic::Bandwidth { rate, .. } => {
                    s.rate = Some(s.rate.map_or(rate, |r: u64| r.min(rate)))
                }
                Toxic::Slicer { size, delay, .. } => s.slice = Some((size, delay)),
                Toxic::LimitData { bytes, .. } => s.limits.push((*id, bytes)),
                _ => {}
            }
        }
        s
    }
}

/// How one direction shapes its data while the current toxics are active.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shaping {
    pub blackhole: bool,
    pub latency: Duration,
    pub jitter: Duration,
    /// Bytes per second.
    pub rate: Option<u64>,
    /// (slice size, delay between slices).
    pub slice: Option<(u64, Duration)>,
    /// (toxic id, bytes allowed after it started).
    pub limits: Vec<(u64, u64)>,
}

impl Shaping {
    /// When a chunk read at `read_at` may be passed on: latency ± jitter after it was read.
    pub fn release_delay(&self, rng: &mut impl Rng) -> Duration {
        if self.jitter.is_zero() {
            return self.latency;
        }
        let j = self.jitter.as_nanos() as i128;
        let offset = rng.random_range(-j..=j);
        let total = self.latency.as_nanos() as i128 + offset;
        Duration::from_nanos(total.max(0) as u64)
    }

    /// How long sending `bytes` takes at the bandwidth limit.
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        match self.rate {
            Some(r) => Duration::from_secs_f64(bytes as f64 / r as f64),
            None => Duration::ZERO,
        }
    }

    /// Slice sizes for a chunk of `len` bytes. slicer: about `size` each, varied by up to a
    /// quarter so that the broker's parser sees arbitrary boundaries; bandwidth: at most a tenth
    /// of a second's worth, so that data trickles rather than arriving in bursts.
    pub fn slices(&self, len: usize, rng: &mut impl Rng) -> Vec<usize> {
        let sliced = self.slice.map(|(s, _)| s.max(1));
        let paced = self.rate.map(|r| (r / 10).max(1));
        let size = match (sliced, paced) {
            (None, None) => return vec![len],
            (Some(s), None) | (None, Some(s)) => s as usize,
            (Some(s), Some(p)) => s.min(p) as usize,
        };
        let spread = if sliced.is_some() { size / 4 } else { 0 };
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let s = if spread == 0 {
                size
            } else {
                rng.random_range(size - spread..=size + spread)
            };
            let s = s.clamp(1, left);
            out.push(s);
            left -= s;
        }
        out
    }
}
