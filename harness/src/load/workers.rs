//! Starting, stopping and killing consumer worker processes, and forwarding what they stream.

use std::fs::File;
use std::io::BufReader;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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

pub struct WorkerProc {
    pub index: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
    pub log: PathBuf,
}

impl WorkerProc {
    pub fn spawn(
        index: u32,
        spec: &Path,
        dir: &Path,
        recorder: Recorder,
        counters: Arc<Counters>,
    ) -> Result<WorkerProc> {
        let exe = std::env::current_exe().context("locating the brokerbench executable")?;
        let log = dir.join(format!("consumer-{index}.log"));
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(exe)
            .arg("worker")
            .arg("--plan")
            .arg(spec)
            .arg("--consumer")
            .arg(index.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // Own process group: a terminal's Ctrl-C goes to the coordinator only, which then
            // stops the workers in order (closing stdin) instead of losing their last events.
            .process_group(0)
            .spawn()
            .context("starting a consumer worker process")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let stdin = child.stdin.take();
        let reader = std::thread::Builder::new()
            .name(format!("consumer-{index}"))
            .spawn(move || forward(index, stdout, recorder, counters))
            .context("starting a worker reader thread")?;
        Ok(WorkerProc {
            index,
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
        kill(self.pid(), sig).with_context(|| format!("sending {sig} to consumer {}", self.index))
    }

    /// Ask the worker to finish (close its stdin), wait up to `grace`, then SIGKILL.
    pub fn stop(mut self, grace: Duration, recorder: &Recorder) {
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

    fn kill(&mut self, recorder: &Recorder, signal: &str) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        recorder.record(Event::Worker {
            t: now_ns(),
            consumer: self.index,
            event: WorkerEvent::Killed {
                signal: signal.into(),
            },
        });
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
    index: u32,
    stdout: std::process::ChildStdout,
    recorder: Recorder,
    counters: Arc<Counters>,
) {
    let mut frames = FrameReader::new(BufReader::with_capacity(1 << 16, stdout));
    for ev in frames.by_ref() {
        let Ok(ev) = ev else { break };
        match &ev {
            Event::Processed { t, .. } => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                counters.last_delivery_ns.fetch_max(*t, Ordering::Relaxed);
            }
            Event::Deliver { t, .. } => {
                counters.last_delivery_ns.fetch_max(*t, Ordering::Relaxed);
            }
            Event::Worker {
                event: WorkerEvent::Ready { .. },
                ..
            } => {
                counters.ready_workers.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        recorder.record(ev);
    }
    let detail = match frames.stop() {
        Some(Stop::Truncated { skipped_bytes }) => {
            format!("output ended mid-record ({skipped_bytes} bytes dropped)")
        }
        Some(Stop::Corrupt { reason, .. }) => format!("corrupt output: {reason}"),
        _ => "exited".into(),
    };
    recorder.record(Event::Worker {
        t: now_ns(),
        consumer: index,
        event: WorkerEvent::Exited { detail },
    });
}

/// The consumer processes of one run. Crashed workers leave; replacements get fresh indexes so
/// the history tells a restarted consumer from the one it replaced.
pub struct Fleet {
    spec: PathBuf,
    dir: PathBuf,
    recorder: Recorder,
    counters: Arc<Counters>,
    procs: Vec<WorkerProc>,
    next_index: u32,
}

impl Fleet {
    pub fn new(spec: PathBuf, dir: PathBuf, recorder: Recorder, counters: Arc<Counters>) -> Fleet {
        Fleet {
            spec,
            dir,
            recorder,
            counters,
            procs: Vec::new(),
            next_index: 0,
        }
    }

    pub fn spawn(&mut self) -> Result<u32> {
        let index = self.next_index;
        self.procs.push(WorkerProc::spawn(
            index,
            &self.spec,
            &self.dir,
            self.recorder.clone(),
            self.counters.clone(),
        )?);
        self.next_index += 1;
        Ok(index)
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
        let at = self
            .procs
            .iter()
            .position(|p| p.index == index)
            .with_context(|| format!("consumer {index} is not running"))?;
        let p = self.procs.remove(at);
        let pid = p.pid().as_raw();
        p.crash(&self.recorder);
        Ok(pid)
    }

    pub fn signal(&self, index: u32, sig: Signal) -> Result<i32> {
        let p = self
            .procs
            .iter()
            .find(|p| p.index == index)
            .with_context(|| format!("consumer {index} is not running"))?;
        p.signal(sig)?;
        Ok(p.pid().as_raw())
    }

    /// Stop every worker in order (they finish their current batch and close cleanly).
    pub fn stop_all(&mut self, grace: Duration) {
        for p in self.procs.drain(..) {
            p.stop(grace, &self.recorder);
        }
    }
}
