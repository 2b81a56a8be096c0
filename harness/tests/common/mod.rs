//! Helpers for tests that run the real `brokerbench` binary against the local brokers
//! (start them with `bin/brokers up`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use brokerbench::report::RunResult;

/// Tests run side by side against the same local brokers: two at a time in each test binary,
/// and bin/test runs binaries beside each other. One that kills or pauses a broker must not hit
/// another test's run (a memory-only broker forgets every topic; a paused one stalls everyone):
/// it owns the brokers, and the others share them. The lock is a file lock, so it holds across
/// processes as well as threads (each lock opens the file anew, and flock locks belong to the
/// open file).
pub struct Held {
    _file: std::fs::File,
}

pub fn sharing_brokers() -> Held {
    lock("brokers", false)
}

pub fn owning_brokers() -> Held {
    lock("brokers", true)
}

/// The lock called `name`, shared or exclusive. Everyone passes a turnstile first, and an
/// exclusive taker waits for the lock inside it: sharers arriving meanwhile queue behind it
/// rather than keeping the lock shared for ever.
pub fn lock(name: &str, exclusive: bool) -> Held {
    let dir = repo().join(".brokers/test-locks");
    std::fs::create_dir_all(&dir).expect("creating .brokers/test-locks");
    let open = |file: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(file))
            .unwrap_or_else(|e| panic!("opening the test lock {file}: {e}"))
    };
    let turnstile = open(&format!("{name}.turnstile"));
    turnstile.lock().expect("taking the turnstile");
    let file = open(&format!("{name}.lock"));
    if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    }
    .unwrap_or_else(|e| panic!("taking the test lock {name}: {e}"));
    drop(turnstile);
    Held { _file: file }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn local_target() -> PathBuf {
    repo().join("targets/local.yaml")
}

/// Write a workload into `dir` and return its path.
pub fn workload(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, yaml).unwrap();
    p
}

pub fn brokerbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brokerbench"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("running brokerbench")
}

/// `brokerbench run` with the local target into `out_dir`, with `args` (workloads, options).
pub fn run_into(out_dir: &Path, args: &[&str]) -> Output {
    run_against(&local_target(), out_dir, args)
}

/// `brokerbench run` with the target profile `target` into `out_dir`, with `args`.
pub fn run_against(target: &Path, out_dir: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "run",
        "--quiet",
        "--target",
        target.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    brokerbench(&all)
}

/// Run a workload with the local target, returning the process output and the parsed result.
pub fn run(dir: &Path, workload: &Path, extra: &[&str]) -> (Output, RunResult) {
    let out_dir = dir.join("reports");
    let mut args = vec![workload.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run_into(&out_dir, &args);
    if !out_dir.exists() {
        panic!("no run directory; stderr: {}", stderr(&out));
    }
    let run_dir = only_run_dir(&out_dir);
    let result = RunResult::read(&run_dir.join("result.json")).unwrap();
    (out, result)
}

/// The one run directory a run wrote into `out_dir`.
pub fn only_run_dir(out_dir: &Path) -> PathBuf {
    std::fs::read_dir(out_dir)
        .expect("the reports directory")
        .next()
        .expect("one run directory")
        .unwrap()
        .path()
}

/// Every event of one broker's history in a run made by [`run`].
pub fn history_of(dir: &Path, r: &RunResult, broker: &str) -> Vec<brokerbench::history::Event> {
    let path = dir
        .join("reports")
        .join(&r.run_id)
        .join(broker)
        .join("history.bin");
    brokerbench::history::read(&path)
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One finished run of a single-broker workload that must exit 0: its metrics and history.
pub struct Ran {
    /// Keeps the run directory alive as long as the result is looked at.
    pub dir: tempfile::TempDir,
    pub metrics: brokerbench::check::Metrics,
    pub events: Vec<brokerbench::history::Event>,
}

pub fn run_ok(yaml: &str, broker: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let w = workload(dir.path(), "w", yaml);
    let (out, r) = run(dir.path(), &w, &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        String::from_utf8_lossy(&out.stdout)
    );
    let metrics = r.brokers[0].metrics.clone().expect("metrics");
    let events = history_of(dir.path(), &r, broker);
    Ran {
        dir,
        metrics,
        events,
    }
}

/// Run `check` for every broker in the registry, one after another, so that a broker added to
/// the registry is tested without anyone listing it here. A failure for one broker does not hide
/// another's: the test fails at the end, naming each broker that failed and why. A broker whose
/// server this machine cannot run (`bin/brokers available NAME` says why) is skipped, and the
/// reason goes to stderr and to the file `$BROKERBENCH_SKIPPED` names (bin/test prints it),
/// never silently.
pub fn for_every_broker(check: impl Fn(&str)) {
    let (mut failed, mut checked) = (Vec::new(), 0);
    for broker in brokerbench::driver::names() {
        if let Some(why) = unavailable(broker) {
            skipped(broker, &why);
            continue;
        }
        checked += 1;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(broker)));
        if let Err(panic) = outcome {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{broker}: {msg}"));
        }
    }
    assert!(failed.is_empty(), "failed for:\n{}", failed.join("\n"));
    assert!(checked > 0, "every broker was skipped: nothing was tested");
}

/// Why this machine cannot run `broker`'s server, if it cannot (`bin/brokers available` exits
/// 3 and says why). Any other failure of bin/brokers fails the test: it is no reason to skip.
fn unavailable(broker: &str) -> Option<String> {
    let out = Command::new(repo().join("bin/brokers"))
        .args(["available", broker])
        .output()
        .expect("bin/brokers runs");
    match out.status.code() {
        Some(0) => None,
        Some(3) => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        _ => panic!("bin/brokers available {broker} failed: {}", stderr(&out)),
    }
}

fn skipped(broker: &str, why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    eprintln!("skipped {broker} in {test}: {why}");
    if let Some(file) = std::env::var_os("BROKERBENCH_SKIPPED") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            let _ = writeln!(f, "{test}: skipped {broker}: {why}");
        }
    }
}
