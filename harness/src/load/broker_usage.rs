//! What the broker itself costs while the workload runs: once a second, the CPU time, resident
//! memory and storage writes of the broker's processes (the one in the target's pid file and
//! every descendant of it), recorded in the history as `BrokerUsage`. The pid file is read
//! again at every sample, so a broker killed and started again by a fault is followed to its
//! new process.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use crate::history::{now_ns, Event, Recorder};

const EVERY: Duration = Duration::from_secs(1);

/// One process as /proc shows it at a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// Start time in clock ticks since boot: with the pid, who this process is (pids get reused).
    pub start: u64,
    /// User + system CPU time so far, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
    /// Bytes this process caused to be written to storage so far (0 when /proc does not say).
    pub written_bytes: u64,
}

/// `root` and every process descended from it, among `all`.
pub fn tree(root: i32, all: &[Proc]) -> Vec<&Proc> {
    let mut out: Vec<&Proc> = all.iter().filter(|p| p.pid == root).collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].pid;
        out.extend(all.iter().filter(|p| p.ppid == parent && p.pid != parent));
        i += 1;
    }
    out
}

/// Usage between consecutive samples of one broker's processes.
#[derive(Default)]
pub struct Deltas {
    /// Per process (pid, start): its counters at the previous sample.
    previous: HashMap<(i32, u64), (u64, u64)>,
    primed: bool,
}

/// What the broker's processes used between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Used {
    pub processes: u32,
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
    pub written_bytes: u64,
}

impl Deltas {
    /// The usage since the previous sample. A process that was not there then (a restarted
    /// broker) counts from its start. None for the first sample, which only sets the baseline.
    pub fn sample(&mut self, procs: &[&Proc]) -> Option<Used> {
        let mut used = Used {
            processes: procs.len() as u32,
            cpu_ticks: 0,
            rss_bytes: 0,
            written_bytes: 0,
        };
        let mut now = HashMap::with_capacity(procs.len());
        for p in procs {
            let (cpu0, written0) = self
                .previous
                .get(&(p.pid, p.start))
                .copied()
                .unwrap_or((0, 0));
            used.cpu_ticks += p.cpu_ticks.saturating_sub(cpu0);
            used.written_bytes += p.written_bytes.saturating_sub(written0);
            used.rss_bytes += p.rss_bytes;
            now.insert((p.pid, p.start), (p.cpu_ticks, p.written_bytes));
        }
        self.previous = now;
        let first = !self.primed;
        self.primed = true;
        (!first).then_some(used)
    }
}

/// Every process on this machine, as far as /proc lets us read it.
fn processes() -> Vec<Proc> {
    let page = procfs::page_size();
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(|p| {
        let p = p.ok()?;
        let stat = p.stat().ok()?;
        let written_bytes = p.io().map(|io| io.write_bytes).unwrap_or(0);
        Some(Proc {
            pid: stat.pid,
            ppid: stat.ppid,
            start: stat.starttime,
            cpu_ticks: stat.utime + stat.stime,
            rss_bytes: stat.rss * page,
            written_bytes,
        })
    })
    .collect()
}

fn read_pid(file: &PathBuf) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Sampling in the background until `stop` is set (or its sender dropped).
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Start sampling the broker whose pid is in `pid_file`.
    pub fn start(pid_file: PathBuf, recorder: Recorder) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let ns_per_tick = 1e9 / procfs::ticks_per_second() as f64;
            let mut deltas = Deltas::default();
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = now_ns();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                // Reading /proc is a few ms of blocking file reads.
                let file = pid_file.clone();
                let sampled = tokio::task::spawn_blocking(move || {
                    let root = read_pid(&file)?;
                    let all = processes();
                    let procs: Vec<Proc> = tree(root, &all).into_iter().cloned().collect();
                    (!procs.is_empty()).then_some(procs)
                })
                .await
                .ok()
                .flatten();
                let t = now_ns();
                // The broker is down (between a kill and its restart): nothing to record.
                let Some(procs) = sampled else {
                    last = t;
                    continue;
                };
                let refs: Vec<&Proc> = procs.iter().collect();
                if let Some(u) = deltas.sample(&refs) {
                    recorder.record(Event::BrokerUsage {
                        t,
                        interval_ns: t.saturating_sub(last),
                        processes: u.processes,
                        cpu_ns: (u.cpu_ticks as f64 * ns_per_tick) as u64,
                        rss_bytes: u.rss_bytes,
                        written_bytes: u.written_bytes,
                    });
                }
                last = t;
            }
        });
        Sampler { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, start: u64, cpu: u64, rss: u64) -> Proc {
        Proc {
            pid,
            ppid,
            start,
            cpu_ticks: cpu,
            rss_bytes: rss,
            written_bytes: cpu * 10,
        }
    }

    #[test]
    fn the_tree_is_the_root_and_all_its_descendants() {
        let all = [
            p(1, 0, 0, 0, 0),
            p(10, 1, 5, 0, 0),  // the broker's wrapper script
            p(11, 10, 6, 0, 0), // its VM
            p(12, 11, 7, 0, 0), // a helper the VM started
            p(20, 1, 8, 0, 0),  // someone else
        ];
        let pids: Vec<i32> = tree(10, &all).iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![10, 11, 12]);
        assert!(tree(99, &all).is_empty(), "no such process: nothing");
    }

    #[test]
    fn usage_counts_since_the_previous_sample_and_follows_a_restart() {
        let mut d = Deltas::default();
        let a = p(10, 1, 5, 1000, 50);
        assert_eq!(d.sample(&[&a]), None, "the first sample is the baseline");
        let a2 = p(10, 1, 5, 1100, 60);
        let used = d.sample(&[&a2]).unwrap();
        assert_eq!(
            (used.cpu_ticks, used.rss_bytes, used.written_bytes),
            (100, 60, 1000)
        );
        // Killed and started again: a new process (same pid reused, another start time)
        // counts from its own start.
        let b = p(10, 1, 900, 30, 20);
        let used = d.sample(&[&b]).unwrap();
        assert_eq!(
            (used.processes, used.cpu_ticks, used.rss_bytes),
            (1, 30, 20)
        );
    }

    #[test]
    fn this_process_reads_from_proc() {
        let all = processes();
        let me = std::process::id() as i32;
        let mine = tree(me, &all);
        assert!(!mine.is_empty(), "this test's own process is in /proc");
        assert!(mine[0].rss_bytes > 0);
    }
}
