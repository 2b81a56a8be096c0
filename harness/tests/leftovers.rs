//! Nothing is left behind, against the real local brokers: a coordinator killed with SIGKILL
//! leaves no worker behind, `brokerbench leftovers` finds what it left on every broker and the
//! fault it left in force, and `--delete` removes and heals them without touching a live run.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn spawn_run(out: &Path, workload: &Path, broker: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_brokerbench"))
        .args([
            "run",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
            workload.to_str().unwrap(),
        ])
        .args(["-b", broker])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Worker processes whose plan lies under `dir`.
fn workers_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(" worker ") && c.contains(&needle))
        .collect()
}

fn leftovers(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["leftovers"];
    all.extend_from_slice(args);
    let out = brokerbench(&all);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    (out.status.code(), said)
}

/// Removes what the killed runs left (the paused broker resumed) however the test ends, so a
/// failure here does not fail every test after it on a broker left stopped.
struct CleanUpAfter;

impl Drop for CleanUpAfter {
    fn drop(&mut self) {
        let _ = brokerbench(&["leftovers", "--delete"]);
    }
}

#[test]
fn a_killed_coordinators_leftovers_are_found_and_removed_and_a_live_run_is_untouched() {
    let _brokers = owning_brokers();
    let _clean_up = CleanUpAfter;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A live run beside them, on Kafka: nothing of it may be taken for a leftover.
    let live = workload(
        d,
        "live",
        "name: still-running\nbrokers: [kafka]\nload: { rate: 50/s, duration: 25s }\nconsumers: { count: 1 }\nexpect: { lost: 0 }\n",
    );
    let live_out = d.join("live-out");
    let live_run = spawn_run(&live_out, &live, "kafka");
    // One coordinator per broker (a run goes through its brokers one after the other), each
    // killed mid-load; RabbitMQ's with the broker paused and the consumers cut off.
    let doomed = workload(
        d,
        "doomed",
        "name: killed-mid-run
brokers: [kafka, rabbitmq, sqs]
topology: { partitions: 2 }
load: { rate: 50/s, duration: 40s }
consumers: { count: 2 }
faults:
  - { at: 3s, kind: broker-pause, duration: 30s }
  - { at: 3s, kind: partition, between: [consumers, broker], duration: 30s }
",
    );
    let doomed_out = d.join("doomed-out");
    let mut killed: Vec<Child> = ["kafka", "rabbitmq", "sqs"]
        .iter()
        .map(|b| {
            // Only RabbitMQ's run pauses its broker; Kafka's pauses its consumers (SIGSTOP:
            // they never see their stdin close; the orphaned process group's SIGHUP or the
            // parent-death signal must end them).
            let instead = match *b {
                "rabbitmq" => None,
                "kafka" => Some("  - { at: 3s, kind: pause, target: all, duration: 30s }\n"),
                _ => Some(""),
            };
            let w = match instead {
                None => doomed.clone(),
                Some(fault) => {
                    let text = std::fs::read_to_string(&doomed)
                        .unwrap()
                        .replace("  - { at: 3s, kind: broker-pause, duration: 30s }\n", fault);
                    workload(d, &format!("doomed-{b}"), &text)
                }
            };
            spawn_run(&doomed_out, &w, b)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(7));
    for c in &mut killed {
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }
    // Within 5 s no worker of theirs is left (the paused broker's consumers included).
    let since = Instant::now();
    while !workers_under(&doomed_out).is_empty() && since.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(workers_under(&doomed_out), Vec::<String>::new());

    // Listed: the paused broker (whose queues cannot be listed while it is stopped), the
    // Kafka topic and group, the SQS queue; nothing of the live run.
    let (code, said) = leftovers(&[]);
    assert_eq!(
        code,
        Some(1),
        "RabbitMQ cannot be listed while stopped: {said}"
    );
    assert!(
        said.contains("rabbitmq: the broker's process") && said.contains("is stopped (SIGSTOP)"),
        "{said}"
    );
    assert!(
        said.contains("rabbitmq: could not list what runs left: at amqp://"),
        "{said}"
    );
    for (broker, kind) in [("kafka", "topic"), ("kafka", "group"), ("sqs", "queue")] {
        assert!(
            said.contains(&format!("{broker}: {kind} bb-")) && said.contains("killed-mid-run"),
            "{said}"
        );
    }
    assert!(!said.contains("still-running"), "{said}");

    // Removed and healed: the broker resumed first, then RabbitMQ's queues and exchange too.
    let (code, said) = leftovers(&["--delete"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("is stopped (SIGSTOP), as broker-pause leaves it: undone"),
        "{said}"
    );
    for (broker, kind) in [
        ("rabbitmq", "queue"),
        ("rabbitmq", "exchange"),
        ("kafka", "topic"),
        ("kafka", "group"),
        ("sqs", "queue"),
    ] {
        let deleted = said
            .lines()
            .any(|l| l.starts_with(&format!("{broker}: {kind} bb-")) && l.ends_with(": deleted"));
        assert!(deleted, "{broker} {kind}: {said}");
    }
    assert!(!said.contains("still-running"), "{said}");
    let (code, said) = leftovers(&[]);
    assert_eq!(code, Some(0), "{said}");
    for broker in ["rabbitmq", "sqs"] {
        assert!(
            said.contains(&format!("{broker}: nothing left by earlier runs")),
            "{said}"
        );
    }
    assert!(!said.contains("killed-mid-run"), "{said}");

    // The live run was never touched: it ends as it would have.
    let out = live_run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A packet-fault loop lives as long as the coordinator whose control command started it
/// (`BROKERBENCH_OWNER`), so a coordinator killed with SIGKILL leaves no loop running.
#[test]
fn a_packet_fault_loop_stops_when_its_coordinator_is_gone() {
    let mut owner = Command::new("sleep").arg("60").spawn().unwrap();
    let mut lp = Command::new(env!("CARGO_BIN_EXE_brokerbench"))
        .args([
            "packet-faults",
            "--queue",
            "31977",
            "--mark",
            "268435456",
            "--delay",
            "1ms",
        ])
        .env("BROKERBENCH_OWNER", owner.id().to_string())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        lp.try_wait().unwrap().is_none(),
        "the loop runs while its owner does"
    );
    owner.kill().unwrap();
    owner.wait().unwrap();
    let since = Instant::now();
    let status = loop {
        if let Some(s) = lp.try_wait().unwrap() {
            break s;
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "still running 5 s after its owner died"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}
