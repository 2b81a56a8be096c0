//! Invalid workloads and unreachable brokers: clear errors; exit code 2 (nothing run) for bad
//! input, 3 (inconclusive: nothing measured) for a broker that cannot be reached.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn invalid_workload_exits_2_with_position_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let w = workload(
        dir.path(),
        "bad",
        "name: bad\nbrokers: [kafka]\nload:\n  rate: 10/s\n  duration: 1s\n  colour: blue\n",
    );
    let out_dir = dir.path().join("reports");
    let out = brokerbench(&[
        "run",
        "--out",
        out_dir.to_str().unwrap(),
        w.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml:6:3:") && err.contains("colour"),
        "{err}"
    );
    assert!(
        !out_dir.exists(),
        "an invalid workload must not create a run directory"
    );

    let out = brokerbench(&["validate", w.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

/// A profile of brokers nothing answers for (nothing listens on port 1 of loopback), with
/// `rabbitmq` added to RabbitMQ's section.
fn nowhere(dir: &std::path::Path, rabbitmq: &str) -> std::path::PathBuf {
    let target = dir.join("nowhere.yaml");
    std::fs::write(
        &target,
        format!("name: nowhere
kafka: {{ bootstrap: 127.0.0.1:1, product: test }}
rabbitmq: {{ url: amqp://guest:guest@127.0.0.1:1/%2f, product: test{rabbitmq} }}
sqs: {{ endpoint: http://127.0.0.1:1, region: us-east-1, access_key_id: a, secret_access_key: b, product: test }}
"),
    )
    .unwrap();
    target
}

#[test]
fn unreachable_brokers_fail_fast_naming_broker_and_address() {
    let dir = tempfile::tempdir().unwrap();
    let target = nowhere(dir.path(), "");
    let w = workload(dir.path(), "w", "name: w\nbrokers: [kafka, rabbitmq, sqs]\nload: { rate: 10/s, duration: 1s }\nrun: { connect_timeout: 3s }\n");
    let started = Instant::now();
    let out = run_against(&target, &dir.path().join("r"), &[w.to_str().unwrap()]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    for broker in ["kafka", "rabbitmq", "sqs"] {
        assert!(
            all.contains(&format!("INCONCLUSIVE {broker}: the run could not happen")),
            "{all}"
        );
    }
    assert!(
        all.contains("kafka") && all.contains("127.0.0.1:1"),
        "{all}"
    );
    // Refused at once, or (lapin sometimes retries a refused connect) no answer within the
    // connect timeout: either way the broker and its address, password hidden.
    assert!(
        all.contains("rabbitmq: cannot connect to amqp://guest:***@127.0.0.1:1")
            || all.contains("rabbitmq: no answer from amqp://guest:***@127.0.0.1:1"),
        "{all}"
    );
    assert!(
        all.contains("sqs") && all.contains("http://127.0.0.1:1"),
        "{all}"
    );
}

#[test]
fn schema_command_prints_json_schema() {
    let out = brokerbench(&["schema"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["properties"]["load"].is_object());
}

#[test]
fn report_rebuilds_from_a_run_directory_with_a_truncated_history() {
    // A recorded run directory whose coordinator "died": history cut mid-record, no result.json.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("20260101-000000-crashed-0000");
    std::fs::create_dir_all(run.join("rabbitmq")).unwrap();
    std::fs::write(run.join("workload.yaml"), "name: crashed\nbrokers: [rabbitmq]\nload: { rate: 10/s, duration: 1s }\nexpect: { lost: 0 }\n").unwrap();
    let mut bytes = Vec::new();
    use brokerbench::history::{codec::encode_frame, Event, Phase, Position};
    use brokerbench::message::MsgId;
    encode_frame(
        &Event::Phase {
            t: 0,
            phase: Phase::LoadStart {
                warmup_ns: 0,
                duration_ns: 1_000_000_000,
            },
        },
        &mut bytes,
    );
    for s in 0..5u64 {
        let id = MsgId {
            producer: 0,
            key: 0,
            seq: s,
        };
        encode_frame(
            &Event::SendInvoke {
                t: s * 10,
                id,
                intended: s * 10,
            },
            &mut bytes,
        );
        encode_frame(
            &Event::SendOk {
                t: s * 10 + 1,
                id,
                intended: s * 10,
                pos: Position::Unknown,
            },
            &mut bytes,
        );
        encode_frame(
            &Event::Deliver {
                t: s * 10 + 2,
                consumer: 0,
                id,
                intended: s * 10,
                pos: Position::Unknown,
                redelivered: false,
                receive_count: 1,
            },
            &mut bytes,
        );
        encode_frame(
            &Event::Processed {
                t: s * 10 + 3,
                consumer: 0,
                id,
            },
            &mut bytes,
        );
    }
    bytes.truncate(bytes.len() - 4);
    std::fs::write(run.join("rabbitmq/history.bin"), &bytes).unwrap();
    let out = brokerbench(&["report", run.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The last Processed record was cut: seq 4 is acked but not processed. This history
    // predates the final read, so nothing can say whether the broker still held it: it is
    // unverified, not lost, and `lost: 0` cannot pass: the run is inconclusive (exit 3), and
    // the bound is not judged rather than failed (nothing was seen to be lost).
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", stderr(&out));
    assert!(stdout.contains("history ends mid-record"), "{stdout}");
    assert!(stdout.contains("NOT JUDGED rabbitmq  lost"), "{stdout}");
    assert!(
        stdout.contains("INCONCLUSIVE rabbitmq: the final read did not verify"),
        "{stdout}"
    );
    let result = brokerbench::report::RunResult::read(&run.join("result.json")).unwrap();
    let m = result.brokers[0].metrics.as_ref().unwrap();
    assert_eq!(
        (
            m.counts.acked,
            m.delivery.delivered,
            m.delivery.lost,
            m.delivery.unverified
        ),
        (5, 4, 0, 1)
    );
    let html = std::fs::read_to_string(run.join("index.html")).unwrap();
    assert!(
        html.contains("not verified by a final read"),
        "the report says why"
    );
}

#[test]
fn result_schema_in_docs_matches_the_code() {
    let out = brokerbench(&["schema", "--result"]);
    assert!(out.status.success());
    let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = repo().join("docs/result.schema.json");
    let documented: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(generated, documented, "docs/result.schema.json is stale: regenerate with `brokerbench schema --result > docs/result.schema.json` and bump SCHEMA_VERSION if a field changed meaning");
}

/// A final read that cannot reach its broker says so, naming the broker and its address, within
/// its timeout: it never hangs, and the run's values are then unverified rather than lost.
#[test]
fn a_final_read_that_cannot_connect_says_where_and_never_hangs() {
    use brokerbench::driver::Plan;
    use brokerbench::history::{Event, FinalReadOutcome};
    use brokerbench::workload::BrokerKind;
    let yaml = "name: unreachable-final-read
brokers: [kafka, rabbitmq, sqs]
load: { rate: 1/s, duration: 1s }
run: { connect_timeout: 2s, final_read_timeout: 5s }
";
    let w = brokerbench::workload::parse(std::path::Path::new("w.yaml"), yaml, &[]).unwrap();
    let local = brokerbench::target::TargetProfile::load(
        &local_target(),
        &[brokerbench::driver::check_target],
    )
    .unwrap();
    let closed: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for broker in brokerbench::driver::names()
        .into_iter()
        .map(BrokerKind::new)
    {
        let target = brokerbench::driver::through_proxy(&local, &broker, closed).unwrap();
        let plan = Plan::new("unreachable", broker.clone(), &w, &target);
        let spec = dir.path().join(format!("{broker}.json"));
        std::fs::write(&spec, serde_json::to_vec(&plan).unwrap()).unwrap();
        let started = Instant::now();
        let out = brokerbench(&["worker", "--final-read", "--plan", spec.to_str().unwrap()]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{broker} took {:?}",
            started.elapsed()
        );
        let events: Vec<Event> = brokerbench::history::FrameReader::new(&out.stdout[..])
            .map(|e| e.unwrap())
            .collect();
        match events.last() {
            Some(Event::FinalReadDone {
                outcome: FinalReadOutcome::Failed,
                detail,
                ..
            }) => {
                assert!(detail.contains(broker.as_str()), "{broker}: {detail}");
                assert!(detail.contains("127.0.0.1:1"), "{broker}: {detail}");
            }
            other => panic!("{broker}: {other:?}; stderr: {}", stderr(&out)),
        }
    }
}

#[test]
fn a_partition_handling_the_target_cannot_set_is_refused_at_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let w = workload(
        dir.path(),
        "w",
        "name: w\nbrokers: [rabbitmq]\ntopology:\n  rabbitmq:\n    queue_type: quorum\n    partition_handling: autoheal\nload: { rate: 10/s, duration: 1s }\n",
    );
    // The single-node profile: nothing there to set a cluster's partition handling with.
    let target = repo().join("targets/local.yaml");
    let out = run_against(&target, &dir.path().join("r"), &[w.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("w.yaml:6:5: topology.rabbitmq.partition_handling needs the `partition_handling` control command")
            && err.contains("target profile `local`"),
        "{err}"
    );
    assert!(!dir.path().join("r").exists());
    // A mode RabbitMQ does not have is refused where it is written, naming the ones there are.
    let w = workload(
        dir.path(),
        "w2",
        "name: w\nbrokers: [rabbitmq]\ntopology:\n  rabbitmq: { partition_handling: pause-minority }\nload: { rate: 10/s, duration: 1s }\n",
    );
    let out = brokerbench(&["validate", w.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("w2.yaml:4:") && err.contains("pause_minority"),
        "{err}"
    );
}

/// A profile whose loss command has no `{correlation}` would run bursty loss as independent
/// loss without a word: the run is refused at the fault, naming the missing placeholder.
#[test]
fn a_fault_parameter_the_profiles_command_does_not_take_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let profile = std::fs::read_to_string(repo().join("targets/local-cluster.yaml"))
        .unwrap()
        .replace(" {percent} {correlation}", " {percent}");
    assert!(!profile.contains("{correlation}"));
    // Refused before any of its commands runs, so it can live anywhere.
    let target = dir.path().join("without-correlation.yaml");
    std::fs::write(&target, profile).unwrap();
    let w = workload(
        dir.path(),
        "w",
        "name: w\nbrokers: [rabbitmq]\nload: { rate: 10/s, duration: 1s }\nfaults:\n  - { kind: node-loss, loss: 5%, correlation: 50%, at: 0s, duration: 1s }\n",
    );
    let out = run_against(&target, &dir.path().join("r"), &[w.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("w.yaml:5:5: fault node-loss sets parameters")
            && err.contains("has no {correlation}"),
        "{err}"
    );
    assert!(!dir.path().join("r").exists());
}

#[test]
fn leftovers_on_brokers_that_are_down_name_each_and_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let target = nowhere(dir.path(), ", control: { list: exit 7 }");
    let out = brokerbench(&["leftovers", "--target", target.to_str().unwrap()]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{said}");
    for (broker, address) in [
        ("kafka", "127.0.0.1:1"),
        ("rabbitmq", "amqp://guest:***@127.0.0.1:1"),
        ("sqs", "http://127.0.0.1:1"),
    ] {
        let line = said
            .lines()
            .find(|l| l.starts_with(&format!("{broker}: could not list")))
            .unwrap_or_else(|| panic!("{broker}: {said}"));
        assert!(line.contains(address), "{line}");
    }
    assert!(said.contains("exit status: 7"), "{said}");
}

/// Output into a pipe nobody reads any more (`| head -1` once it has its line, a CI log
/// collector gone) is no reason to stop: a run would otherwise die at its next line, leaving
/// its faults and resources behind. `validate` prints as a run does.
#[test]
fn a_closed_output_pipe_is_no_panic() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_brokerbench"))
        .args(["validate", "workloads/smoke.yaml", "workloads/patterns"])
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting brokerbench");
    // Close the read ends before it writes anything.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().expect("brokerbench ends");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// `validate` reads its arguments as `run` does: a directory stands for its workload files.
#[test]
fn validate_takes_a_directory_as_run_does() {
    let out = brokerbench(&["validate", "workloads/patterns"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    for f in [
        "downstream-outage",
        "scale-out-in",
        "scale-out-in-cooperative",
    ] {
        assert!(
            said.contains(&format!("workloads/patterns/{f}.yaml: ok")),
            "{said}"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let out = brokerbench(&["validate", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no workload files"),
        "{}",
        stderr(&out)
    );
}
