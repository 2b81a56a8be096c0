//! Faults on the harness's own worker processes: SIGKILL (no graceful close, no leave-group, no
//! final commit or ack) with an optional fresh replacement, SIGSTOP/SIGCONT pauses, and scaling
//! the consumers out (fresh ones join) and in (the newest leave gracefully).

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use nix::sys::signal::Signal;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;

use super::schedule::Targets;
use super::Fault;

/// A process's state letter (`R`, `S`, `T` stopped, `Z` zombie, ...) from /proc/PID/stat;
/// None when there is no such process.
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

/// The worker processes a process fault acts on. The load stage's fleets implement it, so this
/// stage names no type of the stages above it.
pub trait Processes: Send + Sync {
    /// "consumer" or "producer", for the history's details.
    fn role(&self) -> &'static str;
    /// Indices of the running workers.
    fn alive(&self) -> Result<Vec<u32>>;
    /// SIGKILL one worker; returns its pid.
    fn crash(&self, index: u32) -> Result<i32>;
    /// Start one fresh worker; returns its index.
    fn spawn(&self) -> Result<u32>;
    /// Send one worker a signal; returns its pid.
    fn signal(&self, index: u32, sig: Signal) -> Result<i32>;
    /// Stop one worker as a well-behaved instance shuts down: it finishes what it is
    /// processing, acknowledges or commits it and leaves (SIGKILL only if it does not within a
    /// grace period). Returns its pid.
    fn retire(&self, index: u32) -> Result<i32>;
}

/// Pick the victims among the running workers, reproducibly from the seed.
fn choose(fleet: &dyn Processes, targets: Targets, seed: u64) -> Result<Vec<u32>> {
    let alive = fleet.alive()?;
    anyhow::ensure!(!alive.is_empty(), "no {} is running", fleet.role());
    let n = targets.how_many(alive.len() as u32) as usize;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut v: Vec<u32> = alive.choose_multiple(&mut rng, n).copied().collect();
    v.sort();
    Ok(v)
}

pub struct Crash {
    fleet: Arc<dyn Processes>,
    targets: Targets,
    seed: u64,
    killed: usize,
}

impl Crash {
    pub fn new(fleet: Arc<dyn Processes>, targets: Targets, seed: u64) -> Self {
        Crash {
            fleet,
            targets,
            seed,
            killed: 0,
        }
    }
}

#[async_trait]
impl Fault for Crash {
    async fn start(&mut self) -> Result<String> {
        let (fleet, targets, seed) = (self.fleet.clone(), self.targets, self.seed);
        let done = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            let victims = choose(&*fleet, targets, seed)?;
            let role = fleet.role();
            victims
                .iter()
                .map(|&i| fleet.crash(i).map(|pid| format!("{role} {i} (pid {pid})")))
                .collect()
        })
        .await??;
        self.killed = done.len();
        Ok(format!("SIGKILL {}", done.join(", ")))
    }

    /// Start as many fresh workers as were killed; they join like new instances.
    async fn stop(&mut self) -> Result<String> {
        let (f, role) = (&self.fleet, self.fleet.role());
        let started: Result<Vec<String>> = (0..self.killed)
            .map(|_| f.spawn().map(|i| format!("{role} {i}")))
            .collect();
        Ok(format!("started {}", started?.join(", ")))
    }
}

pub struct Pause {
    fleet: Arc<dyn Processes>,
    targets: Targets,
    seed: u64,
    paused: Vec<u32>,
}

impl Pause {
    pub fn new(fleet: Arc<dyn Processes>, targets: Targets, seed: u64) -> Self {
        Pause {
            fleet,
            targets,
            seed,
            paused: Vec::new(),
        }
    }
}

#[async_trait]
impl Fault for Pause {
    async fn start(&mut self) -> Result<String> {
        self.paused = choose(&*self.fleet, self.targets, self.seed)?;
        let (f, role) = (&self.fleet, self.fleet.role());
        let pids: Result<Vec<String>> = self
            .paused
            .iter()
            .map(|&i| {
                f.signal(i, Signal::SIGSTOP)
                    .map(|pid| format!("{role} {i} (pid {pid})"))
            })
            .collect();
        Ok(format!("SIGSTOP {}", pids?.join(", ")))
    }

    async fn stop(&mut self) -> Result<String> {
        let (f, role) = (&self.fleet, self.fleet.role());
        // A paused worker may have been crashed by an overlapping fault meanwhile; skip it.
        let resumed: Vec<String> = self
            .paused
            .iter()
            .filter_map(|&i| {
                f.signal(i, Signal::SIGCONT)
                    .ok()
                    .map(|_| format!("{role} {i}"))
            })
            .collect();
        Ok(format!("SIGCONT {}", resumed.join(", ")))
    }
}

/// Scale the workers to `to`: start fresh ones, which join as new instances do, or retire the
/// newest gracefully. With a window end (`undo`), the count goes back: the ones it started are
/// retired, or as many fresh ones start as it retired.
pub struct Scale {
    fleet: Arc<dyn Processes>,
    to: u32,
    undo: bool,
    started: Vec<u32>,
    retired: usize,
}

impl Scale {
    pub fn new(fleet: Arc<dyn Processes>, to: u32, undo: bool) -> Self {
        Scale {
            fleet,
            to,
            undo,
            started: Vec::new(),
            retired: 0,
        }
    }
}

/// Start `n` fresh workers; their indices.
fn start_fresh(fleet: &dyn Processes, n: usize) -> Result<Vec<u32>> {
    (0..n).map(|_| fleet.spawn()).collect()
}

/// Retire `indices` gracefully, one after another; what it did, for the history.
fn retire_all(fleet: &dyn Processes, indices: &[u32]) -> Result<String> {
    let role = fleet.role();
    let done: Result<Vec<String>> = indices
        .iter()
        .map(|&i| fleet.retire(i).map(|pid| format!("{role} {i} (pid {pid})")))
        .collect();
    Ok(done?.join(", "))
}

fn names(role: &str, indices: &[u32]) -> String {
    let v: Vec<String> = indices.iter().map(|i| format!("{role} {i}")).collect();
    v.join(", ")
}

#[async_trait]
impl Fault for Scale {
    async fn start(&mut self) -> Result<String> {
        let (fleet, to) = (self.fleet.clone(), self.to as usize);
        let (started, retired, said) = tokio::task::spawn_blocking(move || {
            let alive = fleet.alive()?;
            let role = fleet.role();
            let from = alive.len();
            if to > from {
                let started = start_fresh(&*fleet, to - from)?;
                let said = format!("{from} to {to}: started {}", names(role, &started));
                anyhow::Ok((started, 0, said))
            } else if to < from {
                // The newest leave first, as an autoscaler removes its latest instances.
                let newest: Vec<u32> = alive.iter().rev().take(from - to).copied().collect();
                let said = format!("{from} to {to}: stopped {}", retire_all(&*fleet, &newest)?);
                Ok((Vec::new(), newest.len(), said))
            } else {
                Ok((Vec::new(), 0, format!("already {to}: nothing to do")))
            }
        })
        .await??;
        self.started = started;
        self.retired = retired;
        Ok(said)
    }

    /// Back to the count before: retire the ones it started (those still running), or start
    /// as many fresh ones as it retired.
    async fn stop(&mut self) -> Result<String> {
        let (fleet, started, retired) = (
            self.fleet.clone(),
            std::mem::take(&mut self.started),
            self.retired,
        );
        tokio::task::spawn_blocking(move || {
            let role = fleet.role();
            if !started.is_empty() {
                let alive = fleet.alive()?;
                let still: Vec<u32> = started.into_iter().filter(|i| alive.contains(i)).collect();
                Ok(format!("stopped {}", retire_all(&*fleet, &still)?))
            } else if retired > 0 {
                let fresh = start_fresh(&*fleet, retired)?;
                Ok(format!("started {}", names(role, &fresh)))
            } else {
                Ok("nothing to undo".into())
            }
        })
        .await?
    }

    /// Without a window end the new count stays: nothing is left to undo.
    fn over_once_started(&self) -> bool {
        !self.undo
    }
}
