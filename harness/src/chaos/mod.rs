//! Fault injection: the schedule turns the workload's `faults:` into windows; each window's fault
//! is applied behind one small trait and its start, stop or failure goes into the history.

pub mod faults;
pub mod network;
pub mod node;
pub mod packet_queue;
pub mod process;
pub mod proxy;
pub mod schedule;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use async_trait::async_trait;

use crate::history::{now_ns, Event, FaultPhase, Recorder};
use crate::target::Control;
use schedule::Window;

/// A fault that can be applied and undone. `start` and `stop` return what they did, for the history.
#[async_trait]
pub trait Fault: Send {
    async fn start(&mut self) -> Result<String>;
    async fn stop(&mut self) -> Result<String>;
    /// What the broker says once the fault is undone (a cluster's leader by then), recorded
    /// after the stop.
    async fn after(&mut self) -> Option<String> {
        None
    }
    /// Whether the fault is over once its start returns, with nothing to undo (a node restart
    /// brings the node back itself), as opposed to lasting until the run ends (a kill with no
    /// restart).
    fn over_once_started(&self) -> bool {
        false
    }
    /// Once started, the cluster nodes it acts on, each with what it does to that node; empty
    /// for faults that do not act on a cluster's nodes.
    fn nodes(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What faults act on.
#[derive(Clone)]
pub struct Scope {
    /// The consumer processes.
    pub fleet: Arc<dyn process::Processes>,
    /// The producer processes, when the schedule crashes producers (otherwise they are tasks).
    pub producers: Option<Arc<dyn process::Processes>>,
    pub control: Control,
    /// Directory the target's control commands run in.
    pub control_dir: PathBuf,
    pub seed: u64,
    /// The run's resource prefix: node faults ask for the leader of the run's queues by it.
    pub prefix: String,
    /// The fault proxy in front of the broker, when the schedule has network faults.
    pub proxy: Option<Arc<proxy::Proxy>>,
    /// Which faults are in effect now, for the stall watchdog.
    pub activity: Arc<Activity>,
}

/// Whether any fault is in effect, and when the last one ended: the stall watchdog only judges
/// clients once every fault has healed, and counts from that moment.
#[derive(Debug, Default)]
pub struct Activity {
    active: AtomicU32,
    last_end_ns: AtomicU64,
}

impl Activity {
    pub fn any_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// ns since the Unix epoch when the last fault ended (0: none has).
    pub fn last_end_ns(&self) -> u64 {
        self.last_end_ns.load(Ordering::Relaxed)
    }

    fn begin(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    fn end(&self) {
        self.last_end_ns.fetch_max(now_ns(), Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Scope {
    fn producers(&self) -> Result<Arc<dyn process::Processes>> {
        self.producers
            .clone()
            .context("producers are not running as processes")
    }
}

/// Run every window's fault at its time (relative to `load_start`); returns when all are done.
pub async fn run(windows: Vec<Window>, scope: Scope, recorder: Recorder, load_start: Instant) {
    let tasks: Vec<_> = windows
        .into_iter()
        .map(|w| {
            let (scope, rec) = (scope.clone(), recorder.clone());
            tokio::spawn(async move { run_window(w, scope, rec, load_start).await })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn run_window(w: Window, scope: Scope, rec: Recorder, load_start: Instant) {
    let kind = faults::name(w.kind()).to_string();
    let record = |phase, detail: String| {
        rec.record(Event::Fault {
            t: now_ns(),
            index: w.index,
            kind: kind.clone(),
            phase,
            detail,
        })
    };
    tokio::time::sleep_until((load_start + w.start).into()).await;
    let mut fault = match (faults::kind(w.kind()).build)(&w, &scope) {
        Ok(f) => f,
        Err(e) => return record(FaultPhase::Failed, format!("{e:#}")),
    };
    scope.activity.begin();
    record(FaultPhase::Invoke, String::new());
    match fault.start().await {
        Ok(detail) => {
            record(FaultPhase::Start, detail);
            let nodes = fault.nodes();
            if !nodes.is_empty() {
                rec.record(Event::FaultNodes {
                    t: now_ns(),
                    index: w.index,
                    nodes,
                });
            }
        }
        Err(e) => {
            scope.activity.end();
            return record(FaultPhase::Failed, format!("{e:#}"));
        }
    }
    // How it ends: undone when its window closes; over as soon as it started (a node
    // restart); or never, for a fault with no undo (a crash without restart).
    let stopped = if w.stop.is_none() && fault.over_once_started() {
        Some(Ok(String::new()))
    } else if let Some(stop) = w.stop {
        tokio::time::sleep_until((load_start + stop).into()).await;
        Some(fault.stop().await)
    } else {
        None
    };
    match stopped {
        Some(Ok(detail)) => {
            // Recorded when it happened: the checkers read events in time order, and
            // recovery counts from the stop.
            record(FaultPhase::Stop, detail);
            scope.activity.end();
            if let Some(after) = fault.after().await {
                record(FaultPhase::After, after);
            }
        }
        Some(Err(e)) => {
            record(FaultPhase::Failed, format!("undoing: {e:#}"));
            scope.activity.end();
        }
        None => scope.activity.end(),
    }
}

/// Broker faults through the target's control commands (shell commands that return when done).
pub(crate) struct BrokerCommand {
    /// Control command names (see `command`) that apply the fault, and those that undo it.
    start: &'static [&'static str],
    undo: &'static [&'static str],
    control: Control,
    dir: PathBuf,
}

const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

impl BrokerCommand {
    pub(crate) fn new(
        start: &'static [&'static str],
        undo: &'static [&'static str],
        control: &Control,
        dir: PathBuf,
    ) -> Self {
        BrokerCommand {
            start,
            undo,
            control: control.clone(),
            dir,
        }
    }

    /// Run `names` in order; the history's detail says what each took.
    async fn exec_all(&self, names: &[&str]) -> Result<String> {
        let mut done = Vec::new();
        for &name in names {
            let d = self.exec(name).await?;
            done.push(match name {
                "start" => format!("broker answered again: {d}"),
                _ => d,
            });
        }
        Ok(done.join("; "))
    }

    async fn exec(&self, name: &str) -> Result<String> {
        let cmd = self
            .control
            .command(name)
            .with_context(|| format!("the target profile has no `{name}` control command"))?;
        let (_, took) = run_command(cmd, &self.dir).await?;
        Ok(format!("`{cmd}` took {took:.1}s"))
    }
}

/// Run one control command in `dir` (within `COMMAND_TIMEOUT`): what it printed, and how many
/// seconds it took. A failure carries its exit status and what it said on stderr.
pub(crate) async fn run_command(cmd: &str, dir: &std::path::Path) -> Result<(String, f64)> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new("sh");
    child.arg("-c").arg(cmd).current_dir(dir);
    // A profile's commands may need this binary's own helpers (the local cluster's `delay`
    // runs `brokerbench packet-faults`): they find it here.
    if let Ok(me) = std::env::current_exe() {
        child.env("BROKERBENCH", me);
    }
    // What such a helper lives as long as: this process (see `packet_queue::watch_owner`).
    child.env("BROKERBENCH_OWNER", std::process::id().to_string());
    let child = child.kill_on_drop(true).output();
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .with_context(|| format!("`{cmd}` did not finish within {COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("`{cmd}` could not be started in {}", dir.display()))?;
    if !out.status.success() {
        bail!(
            "`{cmd}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        started.elapsed().as_secs_f64(),
    ))
}

#[async_trait]
impl Fault for BrokerCommand {
    async fn start(&mut self) -> Result<String> {
        self.exec_all(self.start).await
    }

    async fn stop(&mut self) -> Result<String> {
        self.exec_all(self.undo).await
    }
}
