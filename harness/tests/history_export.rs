//! `brokerbench history --format jsonl`: every event comes out as one JSON line, and a checker
//! written independently of the Rust ones (tests/independent/check_history.py, over the JSON
//! lines) agrees with result.json on recorded runs.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use brokerbench::check::Metrics;
use common::*;

const COUNTS: [&str; 9] = [
    "lost",
    "unread",
    "unverified",
    "delivered",
    "redeliveries",
    "broker_redeliveries",
    "per_key_order_violations",
    "per_key_order_violations_flagged",
    "per_key_order_violations_redelivered",
];

/// Export `run`'s history of `broker`, run the independent checker on it, and hold every count
/// against the Rust checkers' `m`.
fn independent_check_agrees(run: &std::path::Path, broker: &str, m: &Metrics) {
    let out = brokerbench(&["history", run.to_str().unwrap(), "--broker", broker]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = String::from_utf8(out.stdout).unwrap();
    assert!(lines.lines().count() > 10);
    for l in lines.lines() {
        brokerbench::history::export::parse_line(l).expect("every line is an event");
    }
    let script = repo().join("harness/tests/independent/check_history.py");
    let mut py = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let got = py.wait_with_output().unwrap();
    assert!(got.status.success());
    let theirs: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    let ours = serde_json::to_value(m).unwrap();
    for name in COUNTS {
        assert_eq!(theirs[name], ours[name], "{name}: python {theirs} vs rust");
    }
}

/// A RabbitMQ run recorded before the final read existed (a consumer SIGKILLed mid-run).
#[test]
fn independent_checker_agrees_on_a_recorded_history_without_a_final_read() {
    let run = repo().join("harness/tests/fixtures/run-crash");
    let m = brokerbench::check::check_history(&run.join("rabbitmq/history.bin")).unwrap();
    assert!(
        m.delivery.broker_redeliveries > 0,
        "the fixture holds a redelivery after its crash"
    );
    independent_check_agrees(&run, "rabbitmq", &m);
}

/// A fresh run with a crash (redeliveries with the broker's flag, reorders) and a final read.
#[test]
fn independent_checker_agrees_on_a_real_run_with_a_crash_and_a_final_read() {
    let yaml = "name: crash-export
brokers: [rabbitmq]
topology: { partitions: 2 }
load: { rate: 100/s, keys: { count: 5 }, duration: 8s }
consumers: { count: 2, ack: after-process, processing_time: 15ms }
faults:
  - { at: 3s, kind: consumer-crash, target: all, restart_after: 1s }
";
    let ran = run_ok(yaml, "rabbitmq");
    let run_dir = only_run_dir(&ran.dir.path().join("reports"));
    assert!(
        ran.metrics.delivery.final_read.verified(),
        "{:?}",
        ran.metrics.delivery.final_read
    );
    assert!(
        ran.metrics.delivery.broker_redeliveries > 0,
        "the crash returned flagged messages"
    );
    independent_check_agrees(&run_dir, "rabbitmq", &ran.metrics);
}

#[test]
fn history_of_a_directory_without_one_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = brokerbench(&["history", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("holds no history"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn history_schema_in_docs_matches_the_code() {
    let out = brokerbench(&["schema", "--history"]);
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let documented: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("docs/history.schema.json")).unwrap())
            .unwrap();
    assert_eq!(
        generated, documented,
        "docs/history.schema.json is stale: regenerate with `brokerbench schema --history > \
         docs/history.schema.json` and bump history::export::JSONL_VERSION if an event changed"
    );
}
