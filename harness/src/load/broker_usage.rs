//! What the broker itself costs while the workload runs: once a second, the CPU time, resident
//! memory and storage writes of the broker's processes (the one in the target's pid file and
//! every descendant of it), recorded in the history as `BrokerUsage`. The pid file is read
//! again at every sample, so a broker killed and started again by a fault is followed to its
//! new process.
//!
//! A broker in a container has no pid of ours: the target's `stats` command instead streams
//! `docker stats --format '{{json .}}'` lines for its container, and each line is one sample.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::Beside;
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

/// Sample the broker whose pid is in `pid_file`, beside the load until stopped.
pub fn sample(pid_file: PathBuf, recorder: Recorder) -> Beside {
    Beside::spawn(move |mut stopped| async move {
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
    })
}

/// Sample from `command`'s output (run with `sh -c` in `dir`), one `docker stats --format
/// '{{json .}}'` line per sample, beside the load until stopped; the command is killed then.
pub fn sample_stats(command: String, dir: PathBuf, recorder: Recorder) -> Beside {
    Beside::spawn(move |mut stopped| async move {
        use tokio::io::AsyncBufReadExt;
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let Ok(mut child) = child else {
            crate::note!("warning: could not run the broker's stats command `{command}`");
            return;
        };
        let Some(out) = child.stdout.take() else {
            return;
        };
        let mut lines = tokio::io::BufReader::new(out).lines();
        let mut last: Option<(u64, u64)> = None;
        loop {
            let line = tokio::select! {
                l = lines.next_line() => l,
                _ = stopped.changed() => break,
            };
            let Ok(Some(line)) = line else { break };
            let Some(s) = DockerStats::parse(&line) else {
                continue;
            };
            let t = now_ns();
            // The first line sets the baseline of the storage writes and the interval.
            if let Some((t0, written0)) = last {
                let interval_ns = t.saturating_sub(t0);
                recorder.record(Event::BrokerUsage {
                    t,
                    interval_ns,
                    processes: s.processes,
                    cpu_ns: (s.cores * interval_ns as f64) as u64,
                    rss_bytes: s.rss_bytes,
                    written_bytes: s.written_bytes.saturating_sub(written0),
                });
            }
            last = Some((t, s.written_bytes));
        }
        let _ = child.kill().await;
    })
}

/// One line of `docker stats --format '{{json .}}'`.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerStats {
    /// `CPUPerc` / 100: cores kept busy, as docker measured over its last interval.
    pub cores: f64,
    /// `MemUsage`'s first half.
    pub rss_bytes: u64,
    /// `BlockIO`'s second half: written so far.
    pub written_bytes: u64,
    pub processes: u32,
}

impl DockerStats {
    /// None for a line that is not one (docker's screen-clearing codes come before each
    /// refresh, and a stopped container shows `--`).
    pub fn parse(line: &str) -> Option<DockerStats> {
        let json = &line[line.find('{')?..];
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::trim);
        let cores = field("CPUPerc")?
            .strip_suffix('%')?
            .trim()
            .parse::<f64>()
            .ok()?
            / 100.0;
        let size = |s: &str| {
            s.trim()
                .parse::<bytesize::ByteSize>()
                .ok()
                .map(|b| b.as_u64())
        };
        let rss_bytes = size(field("MemUsage")?.split('/').next()?)?;
        let written_bytes = field("BlockIO")
            .and_then(|b| b.split('/').nth(1))
            .and_then(size)
            .unwrap_or(0);
        let processes = field("PIDs").and_then(|p| p.parse().ok()).unwrap_or(1);
        Some(DockerStats {
            cores,
            rss_bytes,
            written_bytes,
            processes,
        })
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

    const LINE: &str = r#"{"BlockIO":"1.5MB / 24.6MB","CPUPerc":"37.50%","Container":"c0ffee","ID":"c0ffee","MemPerc":"4.10%","MemUsage":"512MiB / 7.6GiB","Name":"brokerbench-kafka-1","NetIO":"1kB / 2kB","PIDs":"97"}"#;

    #[test]
    fn docker_stats_lines_read_as_samples() {
        let s = DockerStats::parse(&format!("\u{1b}[2J\u{1b}[H{LINE}")).unwrap();
        assert_eq!(
            s,
            DockerStats {
                cores: 0.375,
                rss_bytes: 512 << 20,
                written_bytes: 24_600_000,
                processes: 97,
            }
        );
        // A stopped container, and what is not a stats line at all.
        assert_eq!(DockerStats::parse(&LINE.replace("37.50%", "--")), None);
        assert_eq!(DockerStats::parse("Error response from daemon"), None);
    }

    #[tokio::test]
    async fn a_stats_command_is_sampled_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.bin");
        let (recorder, writer) = crate::history::create(&path).unwrap();
        // Three refreshes a second apart, as `docker stats` streams them; storage writes grow.
        let lines: Vec<String> = [24.6, 25.6, 27.6]
            .iter()
            .map(|mb| LINE.replace("24.6MB", &format!("{mb}MB")))
            .collect();
        let script = dir.path().join("stats.sh");
        let body: String = lines
            .iter()
            .map(|l| format!("echo '{l}'; sleep 0.3\n"))
            .collect();
        std::fs::write(&script, format!("{body}sleep 30\n")).unwrap();
        let sampler = sample_stats(
            format!("sh {}", script.display()),
            dir.path().to_owned(),
            recorder.clone(),
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sampler.stop().await;
        drop(recorder);
        writer.finish().unwrap();
        let usage: Vec<(u64, u64, u64)> = crate::history::read(&path)
            .unwrap()
            .filter_map(|e| match e.unwrap() {
                Event::BrokerUsage {
                    interval_ns,
                    cpu_ns,
                    written_bytes,
                    ..
                } => Some((interval_ns, cpu_ns, written_bytes)),
                _ => None,
            })
            .collect();
        assert_eq!(usage.len(), 2, "the first line is the baseline: {usage:?}");
        for (interval, cpu, _) in &usage {
            assert_eq!(*cpu, (0.375 * *interval as f64) as u64);
        }
        let written: Vec<u64> = usage.iter().map(|u| u.2).collect();
        assert_eq!(written, [1_000_000, 2_000_000]);
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
