//! Starting, stopping and killing worker processes (consumers always, producers when the fault
//! schedule crashes them), and forwarding what they stream into the history.

use std::fs::File;
use std::io::{BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::Counters;
use crate::history::{now_ns, Event, FrameReader, Recorder, Stop, WorkerEvent};

/// Start `cmd` so that it dies with the coordinator. A worker stops when its stdin closes, but
/// one stopped by a pause fault never reads it. When the coordinator is killed (SIGKILL), the
/// worker's process group is usually orphaned, and the kernel sends a stopped member SIGHUP
/// and SIGCONT, which ends it; but not when the worker is re-parented to a subreaper in the
/// coordinator's session (a container's init, a service manager). The parent-death signal
/// kills it whatever adopts it. That signal follows the *thread* that started the child, so
/// every worker is started by one thread that lives as long as the process (tokio's blocking
/// threads come and go).
fn spawn_bound(cmd: Command) -> std::io::Result<Child> {
    type Ask = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Ask>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Ask>();
        let _ = std::thread::Builder::new()
            .name("worker-spawner".into())
            .spawn(move || {
                for (mut cmd, answer) in rx {
                    let parent = std::process::id();
                    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
                    unsafe {
                        cmd.pre_exec(move || {
                            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                            // The coordinator died before the signal was armed.
                            if nix::unistd::getppid().as_raw() as u32 != parent {
                                return Err(std::io::Error::other("the coordinator is gone"));
                            }
                            Ok(())
                        });
                    }
                    let _ = answer.send(cmd.spawn());
                }
            });
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    spawner
        .lock()
        .map_err(|_| std::io::Error::other("the worker spawner failed"))?
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("the worker spawner is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the worker spawner is gone"))?
}

pub use super::worker::Role;

impl Role {
    /// The history record of a worker's life event (the final read reports its own end).
    fn life(self, index: u32, event: WorkerEvent) -> Option<Event> {
        let t = now_ns();
        match self {
            Role::Consumer => Some(Event::Worker {
                t,
                consumer: index,
                event,
            }),
            Role::Producer { .. } => Some(Event::ProducerWorker {
                t,
                producer: index,
                event,
            }),
            Role::FinalRead => None,
        }
    }
}

pub struct WorkerProc {
    pub index: u32,
    role: Role,
    /// Producers: the share of the schedule this one sends.
    slot: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
    pub log: PathBuf,
}

/// Where a role's workers start and report: the plan they read, the directory their logs go to,
/// and the history and live counters their events feed.
#[derive(Clone)]
pub struct Home {
    pub spec: PathBuf,
    pub dir: PathBuf,
    pub recorder: Recorder,
    pub counters: Arc<Counters>,
}

impl WorkerProc {
    /// Start worker `index` of `role` (producers: sending share `slot` of the schedule).
    pub fn spawn(role: Role, index: u32, slot: u32, home: &Home) -> Result<WorkerProc> {
        let (spec, dir) = (&home.spec, &home.dir);
        let (recorder, counters) = (home.recorder.clone(), home.counters.clone());
        let exe = std::env::current_exe().context("locating the brokerbench executable")?;
        let name = role.name();
        let log = dir.join(format!("{name}-{index}.log"));
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(exe);
        cmd.args(super::worker::Args::of(role, index, slot, spec));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // Own process group: a terminal's Ctrl-C goes to the coordinator only, which then
            // stops the workers in order (closing stdin) instead of losing their last events.
            .process_group(0);
        let mut child =
            spawn_bound(cmd).with_context(|| format!("starting a {name} worker process"))?;
        if let Some(ev) = role.life(index, WorkerEvent::Started { pid: child.id() }) {
            recorder.record(ev);
        }
        let stdout = child.stdout.take().context("worker stdout")?;
        let stdin = child.stdin.take();
        let reader = std::thread::Builder::new()
            .name(format!("{name}-{index}"))
            .spawn(move || forward(role, index, stdout, recorder, counters))
            .context("starting a worker reader thread")?;
        Ok(WorkerProc {
            index,
            role,
            slot,
            child,
            stdin,
            reader: Some(reader),
            log,
        })
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        kill(self.pid(), sig)
            .with_context(|| format!("sending {sig} to {} {}", self.role.name(), self.index))
    }

    /// Producers: tell the process when the load started and from when it sends (it waits for
    /// this to begin).
    fn start(&mut self, start_ns: u64, resume_ns: u64) -> Result<()> {
        let stdin = self.stdin.as_mut().context("worker stdin is closed")?;
        writeln!(stdin, "start {start_ns} {resume_ns}")
            .and_then(|_| stdin.flush())
            .with_context(|| format!("starting {} {}", self.role.name(), self.index))
    }

    fn finished(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait (blocking) until the process exits or `deadline`; true if it exited.
    pub fn wait_exit(&mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if self.finished() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finished()
    }

    /// Ask the worker to finish (close its stdin), wait up to `grace`, then SIGKILL.
    pub fn stop(mut self, grace: Duration, recorder: &Recorder) {
        if let Some(ev) = self.role.life(self.index, WorkerEvent::Stopping) {
            recorder.record(ev);
        }
        let _ = self.signal(Signal::SIGCONT);
        drop(self.stdin.take());
        let deadline = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break self.join_reader(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break self.kill(recorder, "SIGKILL (did not stop in time)"),
            }
        }
    }

    /// SIGKILL now: no graceful close, no final commit or ack. Returns once the process is gone.
    pub fn crash(mut self, recorder: &Recorder) {
        self.kill(recorder, "SIGKILL");
    }

    /// Recorded before the signal, which cannot be refused: the kill's moment is when a
    /// consumer group starts to miss the member, and the record precedes the `Exited` the
    /// reader thread writes as the pipe closes.
    fn kill(&mut self, recorder: &Recorder, signal: &str) {
        let killed = WorkerEvent::Killed {
            signal: signal.into(),
        };
        if let Some(ev) = self.role.life(self.index, killed) {
            recorder.record(ev);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_reader();
    }

    /// The reader thread ends once the dead worker's pipe is drained: nothing it wrote is lost.
    fn join_reader(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Copy the worker's events into the history until its stdout closes.
fn forward(
    role: Role,
    index: u32,
    stdout: std::process::ChildStdout,
    recorder: Recorder,
    counters: Arc<Counters>,
) {
    let mut frames = FrameReader::new(BufReader::with_capacity(1 << 16, stdout));
    // Frames are passed on in batches: whatever has arrived by the time the pipe's buffer runs
    // dry, so nothing waits for input that may not come.
    let mut batch = Batch::default();
    while let Some(Ok(ev)) = frames.next() {
        match &ev {
            Event::SendInvoke { .. } => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Event::SendOk { .. } => {
                counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Event::SendFail { .. } => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            Event::SendInfo { .. } => {
                counters.indeterminate.fetch_add(1, Ordering::Relaxed);
            }
            Event::ProducerWorker {
                event: WorkerEvent::Ready { .. },
                ..
            } => {
                counters.ready_producers.fetch_add(1, Ordering::Relaxed);
            }
            Event::Processed { t, .. } => {
                batch.processed += 1;
                batch.last_delivery = batch.last_delivery.max(*t);
            }
            Event::Deliver { t, .. } => {
                batch.last_delivery = batch.last_delivery.max(*t);
            }
            Event::Worker {
                event: WorkerEvent::Ready { .. },
                ..
            } => {
                counters.ready_workers.fetch_add(1, Ordering::Relaxed);
            }
            Event::FinalReadDone { .. } => {
                counters.final_read_done.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
        batch.frames.extend_from_slice(frames.frame());
        batch.count += 1;
        if frames.get_ref().buffer().is_empty() || batch.frames.len() >= 1 << 16 {
            batch.pass_on(&recorder, &counters);
        }
    }
    batch.pass_on(&recorder, &counters);
    let detail = match frames.stop() {
        Some(Stop::Truncated { skipped_bytes }) => {
            format!("output ended mid-record ({skipped_bytes} bytes dropped)")
        }
        Some(Stop::Corrupt { reason, .. }) => format!("corrupt output: {reason}"),
        _ => "exited".into(),
    };
    if let Some(ev) = role.life(index, WorkerEvent::Exited { detail }) {
        recorder.record(ev);
    }
}

/// A worker's frames read but not yet in the history, with what they add to the counters.
#[derive(Default)]
struct Batch {
    frames: Vec<u8>,
    count: u64,
    processed: u64,
    last_delivery: u64,
}

impl Batch {
    fn pass_on(&mut self, recorder: &Recorder, counters: &Counters) {
        if self.count == 0 {
            return;
        }
        recorder.record_frames(&self.frames, self.count);
        counters
            .delivered
            .fetch_add(self.processed, Ordering::Relaxed);
        counters
            .last_delivery_ns
            .fetch_max(self.last_delivery, Ordering::Relaxed);
        self.frames.clear();
        (self.count, self.processed, self.last_delivery) = (0, 0, 0);
    }
}

/// The worker processes of one role in a run. Crashed workers leave; replacements get fresh
/// indexes so the history tells a restarted worker from the one it replaced (and a replacement
/// producer's message ids cannot collide with its victim's); a replacement producer takes over
/// its victim's share of the schedule.
pub struct Fleet {
    role: Role,
    /// Producers' schedule shares left by crashed producers.
    free_slots: Vec<u32>,
    /// Producers: when the load started, once it has.
    start_ns: Option<u64>,
    home: Home,
    procs: Vec<WorkerProc>,
    next_index: u32,
}

impl Fleet {
    pub fn new(
        role: Role,
        spec: PathBuf,
        dir: PathBuf,
        recorder: Recorder,
        counters: Arc<Counters>,
    ) -> Fleet {
        Fleet {
            role,
            free_slots: Vec::new(),
            start_ns: None,
            home: Home {
                spec,
                dir,
                recorder,
                counters,
            },
            procs: Vec::new(),
            next_index: 0,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Start one more worker (a producer takes a free share of the schedule, if any; once the
    /// load runs it starts sending at once).
    pub fn spawn(&mut self) -> Result<u32> {
        let index = self.next_index;
        let slot = self.free_slots.pop().unwrap_or(index);
        let mut p = WorkerProc::spawn(self.role, index, slot, &self.home)?;
        if let Some(start) = self.start_ns {
            // A replacement sends from now on: its victim's missed sends were never made.
            p.start(start, now_ns().max(start))?;
        }
        self.procs.push(p);
        self.next_index += 1;
        Ok(index)
    }

    /// Producers: the load starts at `start_ns`; every running producer is told.
    pub fn start(&mut self, start_ns: u64) -> Result<()> {
        self.start_ns = Some(start_ns);
        self.procs
            .iter_mut()
            .try_for_each(|p| p.start(start_ns, start_ns))
    }

    /// How many workers are still running (finished ones are reaped).
    pub fn running(&mut self) -> usize {
        let mut still = Vec::new();
        for mut p in self.procs.drain(..) {
            if p.finished() {
                p.join_reader();
            } else {
                still.push(p);
            }
        }
        self.procs = still;
        self.procs.len()
    }

    pub fn alive(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.index).collect()
    }

    pub fn logs(&self) -> Vec<String> {
        self.procs
            .iter()
            .map(|p| p.log.display().to_string())
            .collect()
    }

    /// SIGKILL one worker; returns its pid.
    pub fn crash(&mut self, index: u32) -> Result<i32> {
        let p = self.take(index)?;
        let pid = p.pid().as_raw();
        p.crash(&self.home.recorder);
        Ok(pid)
    }

    /// Take one worker out of the fleet (a producer's share of the schedule is freed for the
    /// next one started).
    fn take(&mut self, index: u32) -> Result<WorkerProc> {
        let at = self
            .procs
            .iter()
            .position(|p| p.index == index)
            .with_context(|| format!("{} {index} is not running", self.role.name()))?;
        let p = self.procs.remove(at);
        self.free_slots.push(p.slot);
        Ok(p)
    }

    pub fn signal(&self, index: u32, sig: Signal) -> Result<i32> {
        let p = self
            .procs
            .iter()
            .find(|p| p.index == index)
            .with_context(|| format!("{} {index} is not running", self.role.name()))?;
        p.signal(sig)?;
        Ok(p.pid().as_raw())
    }

    /// Ask every worker to finish (close its stdin) without waiting.
    pub fn close_inputs(&mut self) {
        for p in &mut self.procs {
            drop(p.stdin.take());
        }
    }

    /// Stop every worker in order (they finish their current batch and close cleanly).
    pub fn stop_all(&mut self, grace: Duration) {
        for p in self.procs.drain(..) {
            p.stop(grace, &self.home.recorder);
        }
    }
}

/// The fault stage crashes, pauses and restarts workers through this.
impl crate::chaos::process::Processes for std::sync::Mutex<Fleet> {
    fn role(&self) -> &'static str {
        lock(self).map(|f| f.role().name()).unwrap_or("worker")
    }
    fn alive(&self) -> Result<Vec<u32>> {
        Ok(lock(self)?.alive())
    }
    fn crash(&self, index: u32) -> Result<i32> {
        lock(self)?.crash(index)
    }
    fn spawn(&self) -> Result<u32> {
        lock(self)?.spawn()
    }
    fn signal(&self, index: u32, sig: Signal) -> Result<i32> {
        lock(self)?.signal(index, sig)
    }
    fn retire(&self, index: u32) -> Result<i32> {
        // Out of the fleet under its lock, stopped outside it: the stop waits for the worker.
        let (p, recorder) = {
            let mut f = lock(self)?;
            (f.take(index)?, f.home.recorder.clone())
        };
        let pid = p.pid().as_raw();
        p.stop(RETIRE_GRACE, &recorder);
        Ok(pid)
    }
}

/// How long a retired worker gets to finish its batch, acknowledge it and leave before SIGKILL:
/// a Kafka member's leave and final commit take well under a second here.
const RETIRE_GRACE: Duration = Duration::from_secs(10);

/// Lock a fleet shared between the run and its faults. A poisoned lock (a panic while holding it)
/// is an error for the caller, never a second panic.
pub fn lock(fleet: &std::sync::Mutex<Fleet>) -> Result<std::sync::MutexGuard<'_, Fleet>> {
    fleet
        .lock()
        .map_err(|_| anyhow::anyhow!("worker fleet lock poisoned"))
}

/// Wait until `n` workers of `fleet` have said they are ready (counted in `ready`). On timeout
/// or when `give_up` says so, stop them all and fail naming their logs.
pub async fn wait_ready(
    fleet: &Arc<std::sync::Mutex<Fleet>>,
    ready: &std::sync::atomic::AtomicU64,
    n: u64,
    deadline: Instant,
    give_up: impl Fn() -> bool,
) -> Result<()> {
    while ready.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline || give_up() {
            let fleet = fleet.clone();
            let (role, logs) = tokio::task::spawn_blocking(move || {
                let mut f = lock(&fleet)?;
                let logs = f.logs();
                f.stop_all(Duration::from_secs(2));
                anyhow::Ok((f.role().name(), logs))
            })
            .await??;
            anyhow::bail!(
                "{role}s did not become ready in time; see {}",
                logs.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
