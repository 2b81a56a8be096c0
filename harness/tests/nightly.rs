//! The nightly use against the real local brokers: suites with repeats, and regressions judged
//! against the noise rather than against a fixed share between two numbers.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A short fixed-rate workload; `extra` adds faults or changes the consumers.
fn night(name: &str, extra: &str) -> String {
    format!(
        "name: {name}
brokers: [rabbitmq]
topology: {{ partitions: 2 }}
load: {{ rate: 200/s, duration: 12s, warmup: 1s, keys: {{ count: 8 }} }}
consumers: {{ count: 2 }}
{extra}
expect:
  lost: 0
"
    )
}

fn compare(now: &Path, baseline: &Path, out: &Path) -> std::process::Output {
    brokerbench(&[
        "compare",
        now.to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
}

fn the_run(out: &Path) -> PathBuf {
    only_run_dir(out)
}

#[test]
fn unchanged_nights_do_not_regress_and_a_slower_or_lossy_night_does() {
    // Alone on the machine, as a nightly job is: other tests' load is not the noise measured.
    let _brokers = owning_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = workload(d, "plain", &night("nightly-check", ""));
    // +20 ms on the producers' traffic for the whole load.
    let slow = workload(
        d,
        "slow",
        &night(
            "nightly-check",
            "faults:\n  - { kind: latency, between: [producers, broker], latency: 20ms, at: 0s, duration: 12s }",
        ),
    );
    // Acknowledged before processing, then crashed: messages are lost.
    let lossy = workload(
        d,
        "lossy",
        &night(
            "nightly-check",
            "faults:\n  - { kind: consumer-crash, target: all, at: 4s, restart_after: 1s }",
        )
        .replace(
            "consumers: { count: 2 }",
            "consumers: { count: 2, ack: before-process, processing_time: 20ms }",
        ),
    );
    let mut nights = Vec::new();
    let mut summaries = String::new();
    for (i, w) in [&plain, &plain, &slow, &lossy].iter().enumerate() {
        let out = d.join(format!("night{i}"));
        let o = run_into(&out, &[w.to_str().unwrap()]);
        summaries.push_str(&String::from_utf8_lossy(&o.stdout));
        // The lossy night fails its own expectation; the others pass.
        assert_eq!(
            o.status.code(),
            Some(if i == 3 { 1 } else { 0 }),
            "{}",
            stderr(&o)
        );
        nights.push(the_run(&out));
    }
    let cmp = d.join("cmp");

    let same = compare(&nights[1], &nights[0], &cmp);
    let text = String::from_utf8_lossy(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{text}{}", stderr(&same));
    assert!(text.contains("0 regressed"), "{text}");

    let slower = compare(&nights[2], &nights[0], &cmp);
    let text = String::from_utf8_lossy(&slower.stdout);
    assert_eq!(slower.status.code(), Some(1), "{text}{summaries}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("REGRESSION") && l.contains("publish p99")),
        "{text}"
    );
    // Injecting the latency edited the workload: compare says so, and bin/nightly's
    // --skip-edited judges nothing of it.
    assert!(
        text.contains("EDITED nightly-check · rabbitmq") && text.contains("judged anyway"),
        "{text}"
    );
    let o = brokerbench(&[
        "compare",
        nights[2].to_str().unwrap(),
        "--baseline",
        nights[0].to_str().unwrap(),
        "--skip-edited",
        "-o",
        cmp.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("0 regressed") && text.contains("; not judged"),
        "{text}"
    );

    let lost = compare(&nights[3], &nights[0], &cmp);
    let text = String::from_utf8_lossy(&lost.stdout);
    assert_eq!(lost.status.code(), Some(1), "{text}{}", stderr(&lost));
    assert!(
        text.lines()
            .any(|l| l.starts_with("REGRESSION") && l.contains(" lost ")),
        "{text}"
    );
}

#[test]
fn repeats_of_an_unchanged_workload_never_regress_against_each_other() {
    let _brokers = owning_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = workload(d, "w", &night("noise", ""));
    let out = d.join("reports");
    let o = run_into(&out, &["--repeat", "5", w.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let suite = the_run(&out);
    let suite_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(suite.join("suite.json")).unwrap()).unwrap();
    let runs: Vec<PathBuf> = suite_json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| suite.join(r.as_str().unwrap()))
        .collect();
    assert_eq!(runs.len(), 5, "every repetition is kept");
    for (i, a) in runs.iter().enumerate() {
        for b in &runs[i + 1..] {
            let o = compare(a, b, &d.join("cmp"));
            let text = String::from_utf8_lossy(&o.stdout);
            assert_eq!(o.status.code(), Some(0), "{a:?} vs {b:?}: {text}");
        }
    }
    // The repeats pooled: per-run figures are judged too, and still nothing regresses.
    let o = compare(&suite, &suite, &d.join("cmp"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("0 regressed"), "{text}");
}

#[test]
fn a_suite_runs_every_workload_and_reports_them_together() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let suite_dir = d.join("suite");
    std::fs::create_dir(&suite_dir).unwrap();
    let short = |name: &str, expect: &str| {
        format!(
            "name: {name}\nbrokers: [kafka, rabbitmq]\nload: {{ rate: 50/s, duration: 3s }}\nexpect:\n  {expect}\n"
        )
    };
    std::fs::write(suite_dir.join("a-pass.yaml"), short("passes", "lost: 0")).unwrap();
    // Impossible on purpose: no broker delivers within a microsecond.
    std::fs::write(
        suite_dir.join("b-fail.yaml"),
        short("fails", "p99_end_to_end: \"< 1us\""),
    )
    .unwrap();
    std::fs::write(
        d.join("nightly.yaml"),
        "suite: mini\ndescription: one passing, one failing\nworkloads: [suite]\nbrokers: [rabbitmq]\n",
    )
    .unwrap();
    let out = d.join("reports");
    let o = run_into(&out, &[d.join("nightly.yaml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let suite = the_run(&out);
    assert!(
        suite
            .file_name()
            .unwrap()
            .to_string_lossy()
            .contains("mini"),
        "{suite:?}"
    );
    let page = std::fs::read_to_string(suite.join("index.html")).unwrap();
    assert!(
        page.contains("passes") && page.contains("fails"),
        "both workloads are in the matrix"
    );
    assert!(
        page.contains(">PASS</a>") && page.contains(">FAIL</a>"),
        "{page}"
    );
    assert!(
        !page.contains(">kafka<"),
        "the suite limited the brokers to rabbitmq"
    );
    let junit = std::fs::read_to_string(suite.join("junit.xml")).unwrap();
    assert!(
        junit.contains("passes.rabbitmq") && junit.contains("fails.rabbitmq"),
        "{junit}"
    );
    assert!(junit.contains("failures=\"1\""), "{junit}");
    // Each run's own report is linked from the matrix and exists.
    for link in page.split("href=\"").skip(1) {
        let target = link[..link.find('"').unwrap()].replace("&#x2f;", "/");
        assert!(suite.join(&target).is_file(), "{target}");
    }
}
