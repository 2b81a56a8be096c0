//! No false verdicts, against the real local brokers: a fault that did not happen as planned, a
//! run that measured nothing, a damaged history or an interrupted run is inconclusive (exit 3),
//! never a pass; a bound that failed still fails (exit 1); codes combine by severity.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use brokerbench::report::{RunResult, Status};
use common::*;

/// A profile for the local RabbitMQ whose fault commands are `commands` (YAML lines under
/// `control:`), run in `dir`.
fn profile(dir: &Path, commands: &str) -> PathBuf {
    let p = dir.join("target.yaml");
    std::fs::write(
        &p,
        format!(
            "name: broken\nrabbitmq:\n  url: amqp://guest:guest@127.0.0.1:5672/%2f\n  product: RabbitMQ (local)\n  control:\n{commands}"
        ),
    )
    .unwrap();
    p
}

/// A short RabbitMQ workload with `faults` and `expect`.
fn short(name: &str, faults: &str, expect: &str) -> String {
    format!(
        "name: {name}
brokers: [rabbitmq]
load: {{ producers: 1, rate: 100/s, duration: 5s }}
consumers: {{ count: 2, ack: after-process }}
faults:
{faults}
expect: {expect}
run: {{ drain_quiet: 1s }}
"
    )
}

/// Every run of a suite run directory, by workload name.
fn runs_of(suite: &Path) -> Vec<RunResult> {
    let mut runs: Vec<RunResult> = std::fs::read_dir(suite)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path().join("result.json");
            p.is_file().then(|| RunResult::read(&p).unwrap())
        })
        .collect();
    runs.sort_by(|a, b| a.workload.cmp(&b.workload));
    runs
}

fn run_named<'a>(runs: &'a [RunResult], name: &str) -> &'a RunResult {
    runs.iter()
        .find(|r| r.workload == name)
        .unwrap_or_else(|| panic!("no run of {name}"))
}

/// The issue's own case, and each family's: a broker-kill, a broker-pause and a node fault whose
/// command fails, and a consumer crash that finds nothing to kill. Each would have passed;
/// each is inconclusive, naming the fault and the command's own words, everywhere a verdict
/// shows. A passing run beside them keeps its pass; the suite exits 3.
#[test]
fn faults_that_did_not_happen_make_their_runs_inconclusive_never_a_pass() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = profile(
        d,
        "    kill: \"echo 'rabbitmq: not running under bin/brokers' >&2; exit 1\"
    start: 'true'
    pause: exit 4
    resume: 'true'
    nodes: [n1, n2]
    node_kill: echo 'no such node' >&2; exit 1
    node_start: 'true'
",
    );
    let ws = d.join("suite");
    std::fs::create_dir(&ws).unwrap();
    let fault = |kind: &str| format!("  - {{ at: 2s, {kind} }}");
    for (name, faults) in [
        ("kill", fault("kind: broker-kill, restart_after: 1s")),
        ("pause", fault("kind: broker-pause, duration: 1s")),
        ("node", fault("kind: node-kill, target: one, restart_after: 1s")),
        // Both consumers are gone at 1 s: the crash at 2 s finds none.
        (
            "crash",
            "  - { at: 1s, kind: consumer-crash, target: all }\n  - { at: 2s, kind: consumer-crash, target: one }".into(),
        ),
        ("plain", "  []".into()),
    ] {
        let yaml = short(name, &faults, "{ lost: 0 }").replace("faults:\n  []", "faults: []");
        workload(&ws, name, &yaml);
    }
    let out_dir = d.join("reports");
    let out = run_against(&target, &out_dir, &[ws.to_str().unwrap()]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{said}");
    let suite = only_run_dir(&out_dir);
    let runs = runs_of(&suite);
    for (name, words) in [
        ("kill", "fault #0 (broker-kill) did not happen"),
        ("pause", "fault #0 (broker-pause) did not happen"),
        ("node", "fault #0 (node-kill) did not happen"),
        (
            "crash",
            "fault #1 (consumer-crash) did not happen: no consumer is running",
        ),
    ] {
        let b = &run_named(&runs, name).brokers[0];
        assert_eq!(b.status(), Status::Inconclusive, "{name}: {b:?}");
        let why = b.why_inconclusive();
        assert!(why.contains(words), "{name}: {why}");
        // The measured loss was 0: a pass it would have been, not judged it is.
        let v = &b.verdicts[0];
        assert_eq!(
            (v.measured, v.outcome),
            (Some(0.0), brokerbench::check::expect::Outcome::NotJudged),
            "{name}"
        );
        assert!(
            said.contains(&format!("INCONCLUSIVE rabbitmq: {words}")),
            "{said}"
        );
        let page = std::fs::read_to_string(
            suite
                .join(&run_named(&runs, name).run_id)
                .join("index.html"),
        )
        .unwrap();
        assert!(
            page.contains(">INCONCLUSIVE<") && page.contains("NOT JUDGED"),
            "{name}"
        );
    }
    // The command's own words reach the reader.
    let kill = run_named(&runs, "kill").brokers[0].why_inconclusive();
    assert!(kill.contains("not running under bin/brokers"), "{kill}");
    assert!(run_named(&runs, "pause").brokers[0]
        .why_inconclusive()
        .contains("exit status: 4"));
    assert!(run_named(&runs, "node").brokers[0]
        .why_inconclusive()
        .contains("no such node"));
    assert_eq!(run_named(&runs, "plain").status(), Status::Pass);
    // JUnit: the not-judged cases are skipped with the reason, none passes.
    let junit = std::fs::read_to_string(suite.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<skipped message=").count(), 4, "{junit}");
    assert!(
        junit.contains("skipped=\"4\"") && junit.contains("failures=\"0\""),
        "{junit}"
    );
    let matrix = std::fs::read_to_string(suite.join("index.html")).unwrap();
    assert!(
        matrix.contains("badge warn\">INCONCLUSIVE"),
        "the suite's badge"
    );
}

/// A bound that fails in an inconclusive run still fails: a failure seen is a failure. Beside a
/// passing run, the suite exits 1.
#[test]
fn a_failed_bound_fails_even_when_its_fault_did_not_happen() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let target = profile(d, "    kill: exit 1\n    start: 'true'\n");
    let ws = d.join("suite");
    std::fs::create_dir(&ws).unwrap();
    workload(
        &ws,
        "plain",
        &short("plain", "  []", "{ lost: 0 }").replace("faults:\n  []", "faults: []"),
    );
    workload(
        &ws,
        "kill",
        &short(
            "kill",
            "  - { at: 2s, kind: broker-kill, restart_after: 1s }",
            "{ lost: 0, delivered: \"< 1\" }",
        ),
    );
    let out_dir = d.join("reports");
    let out = run_against(&target, &out_dir, &[ws.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{said}{}", stderr(&out));
    let runs = runs_of(&only_run_dir(&out_dir));
    let b = &run_named(&runs, "kill").brokers[0];
    assert_eq!(b.status(), Status::Fail);
    let outcome = |m: &str| b.verdicts.iter().find(|v| v.metric == m).unwrap().outcome;
    use brokerbench::check::expect::Outcome;
    assert_eq!(
        (outcome("lost"), outcome("delivered")),
        (Outcome::NotJudged, Outcome::Fail)
    );
    assert!(said.contains("FAIL       rabbitmq  delivered"), "{said}");
    assert!(said.contains("NOT JUDGED rabbitmq  lost"), "{said}");
}

/// An undo that fails leaves the broker faulted: the next run of the job asks the profile's
/// `ready` command first and says what it found; when the broker does not answer, that run is
/// an error, not a measurement.
#[test]
fn after_a_failed_undo_the_next_run_checks_the_broker_answers() {
    let _brokers = sharing_brokers();
    let status = repo().join("bin/brokers");
    for (ready, answers) in [
        (format!("{} status rabbitmq", status.display()), true),
        ("exit 1".into(), false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The "kill" does nothing; its restart fails, so the run leaves the broker "faulted".
        let target = profile(
            d,
            &format!("    kill: 'true'\n    start: echo 'cannot start' >&2; exit 1\n    ready: {ready}\n"),
        );
        let ws = d.join("suite");
        std::fs::create_dir(&ws).unwrap();
        workload(
            &ws,
            "a-undo-fails",
            &short(
                "a-undo-fails",
                "  - { at: 1s, kind: broker-kill, restart_after: 1s }",
                "{ lost: 0 }",
            ),
        );
        workload(
            &ws,
            "b-next",
            &short("b-next", "  []", "{ lost: 0 }").replace("faults:\n  []", "faults: []"),
        );
        let out_dir = d.join("reports");
        let out = run_against(&target, &out_dir, &[ws.to_str().unwrap()]);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(3), "{said}");
        let runs = runs_of(&only_run_dir(&out_dir));
        let first = &run_named(&runs, "a-undo-fails").brokers[0];
        assert!(
            first
                .why_inconclusive()
                .contains("was not undone as planned"),
            "{first:?}"
        );
        assert!(
            first.why_inconclusive().contains("cannot start"),
            "{first:?}"
        );
        let next = &run_named(&runs, "b-next").brokers[0];
        if answers {
            let pre = next.preflight.clone().unwrap_or_default();
            assert!(
                pre.contains("left it faulted") && pre.contains("says it answers"),
                "{pre}"
            );
            assert_eq!(next.status(), Status::Pass, "{next:?}");
            assert!(said.contains("says it answers"), "{said}");
        } else {
            let err = next.error.clone().unwrap_or_default();
            assert!(
                err.contains("left it faulted") && err.contains("does not answer"),
                "{err}"
            );
            assert!(next.metrics.is_none(), "nothing was run against it");
        }
    }
}

/// One short real run to damage: its directory.
fn one_run(d: &Path) -> PathBuf {
    let w = workload(
        d,
        "w",
        &short("damage", "  []", "{ lost: 0 }").replace("faults:\n  []", "faults: []"),
    );
    let out = run_into(&d.join("reports"), &[w.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    only_run_dir(&d.join("reports"))
}

fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("rabbitmq")).unwrap();
    for f in ["workload.yaml", "target.json", "result.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

/// A damaged history (random bytes, or damage in the middle) is inconclusive under `report`
/// (exit 3). One cut short at its tail, as a killed coordinator leaves it, still renders a full
/// report of what it holds, the cut-off named, inconclusive only for its missing final read.
#[test]
fn damaged_histories_are_inconclusive_and_a_cut_off_one_says_what_it_lacks() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = one_run(d);
    let history = std::fs::read(run.join("rabbitmq/history.bin")).unwrap();
    let report = |name: &str, bytes: &[u8]| {
        let to = d.join(name);
        copy_run(&run, &to);
        std::fs::write(to.join("rabbitmq/history.bin"), bytes).unwrap();
        let out = brokerbench(&["report", to.to_str().unwrap()]);
        let r = RunResult::read(&to.join("result.json")).unwrap();
        (out, r, to)
    };
    // 1,000 random bytes: nothing measured, and damaged.
    let noise: Vec<u8> = (0..1000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (out, r, _) = report("noise", &noise);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(!said.contains("PASS "), "{said}");
    let why = r.brokers[0].why_inconclusive();
    assert!(
        why.contains("nothing was measured") && why.contains("the history is damaged"),
        "{why}"
    );
    // Damaged in the middle: a byte flipped half way.
    let mut middle = history.clone();
    let at = middle.len() / 2;
    middle[at] ^= 0x5a;
    middle[at + 1] ^= 0xa5;
    let (out, r, _) = report("middle", &middle);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(r.brokers[0]
        .why_inconclusive()
        .contains("the history is damaged"));
    // Cut short mid-record, as a coordinator killed while writing leaves it.
    let mut reader = brokerbench::history::read(&run.join("rabbitmq/history.bin")).unwrap();
    let n = reader.by_ref().count();
    let mut reader = brokerbench::history::read(&run.join("rabbitmq/history.bin")).unwrap();
    for _ in 0..n * 6 / 10 {
        reader.next().unwrap().unwrap();
    }
    let cut = reader.offset() as usize + 3;
    let (out, r, to) = report("cut", &history[..cut]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let b = &r.brokers[0];
    let m = b.metrics.as_ref().unwrap();
    assert!(
        m.counts.sent > 0 && m.delivery.delivered > 0 && !m.history_damaged,
        "{m:?}"
    );
    assert!(m
        .history_warning
        .as_deref()
        .unwrap_or("")
        .contains("ends mid-record"));
    assert_eq!(b.inconclusive.len(), 1, "{:?}", b.inconclusive);
    assert!(
        b.inconclusive[0].starts_with("the final read did not verify"),
        "{:?}",
        b.inconclusive
    );
    let page = std::fs::read_to_string(to.join("index.html")).unwrap();
    assert!(page.contains("ends mid-record") && page.contains("INCONCLUSIVE"));
}

/// SIGINT and SIGTERM stop a run, keep its history and a partial report, and say so in the
/// exit code (130, 143).
#[test]
fn an_interrupted_run_exits_130_or_143_and_keeps_its_report() {
    let _brokers = sharing_brokers();
    for (signal, code) in [
        (nix::sys::signal::Signal::SIGINT, 130),
        (nix::sys::signal::Signal::SIGTERM, 143),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let yaml = short("long", "  []", "{ lost: 0 }")
            .replace("faults:\n  []", "faults: []")
            .replace("duration: 5s", "duration: 60s");
        let w = workload(d, "w", &yaml);
        let out_dir = d.join("reports");
        let child = Command::new(env!("CARGO_BIN_EXE_brokerbench"))
            .args([
                "run",
                "--quiet",
                "--out",
                out_dir.to_str().unwrap(),
                w.to_str().unwrap(),
            ])
            .current_dir(repo())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Well into the load: the history has something in it.
        std::thread::sleep(Duration::from_secs(6));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{signal}: {}", stderr(&out));
        let run = only_run_dir(&out_dir);
        let r = RunResult::read(&run.join("result.json")).unwrap();
        assert!(r.interrupted);
        let b = &r.brokers[0];
        assert_eq!(b.status(), Status::Inconclusive, "{b:?}");
        assert!(b.why_inconclusive().contains("the run was interrupted"));
        assert!(b.metrics.as_ref().is_some_and(|m| m.counts.acked > 0));
        assert!(run.join("index.html").is_file() && run.join("rabbitmq/history.bin").is_file());
    }
}

/// The consumers' own store is evidence of processing: under repeated crashes of idempotent
/// consumers, nothing is lost and nothing is processed twice, whatever the crashes cut short.
#[test]
fn idempotent_consumers_under_repeated_crashes_lose_nothing_and_process_nothing_twice() {
    let _brokers = sharing_brokers();
    let yaml = "name: idempotent-crashes
brokers: [rabbitmq]
topology: { rabbitmq: { prefetch: 100 } }
load: { producers: 1, rate: 200/s, duration: 12s, keys: { count: 10 } }
consumers: { count: 2, ack: after-process, processing_time: 10ms, dedupe: processed-ids }
faults:
  - { at: 1s, kind: consumer-crash, target: one, restart_after: 500ms, every: 1s, count: 9 }
run: { drain_quiet: 2s, drain_missing: 15s }
expect: { lost: 0, effective_duplicates: 0 }
";
    let ran = run_ok(yaml, "rabbitmq");
    let m = &ran.metrics;
    assert_eq!(
        (m.delivery.lost, m.delivery.effective_duplicates),
        (0, 0),
        "{:?}",
        m.delivery.examples
    );
    assert_eq!(m.delivery.store_read, Some(true));
    let rows = ran
        .events
        .iter()
        .filter(|e| matches!(e, brokerbench::history::Event::StoreHolds { .. }))
        .count() as u64;
    // Every value processed has its row, and no row is for a value never sent.
    assert_eq!(rows, m.delivery.delivered, "{:?}", m.delivery.examples);
    assert_eq!(m.delivery.unexpected, 0);
}
