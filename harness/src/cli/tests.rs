//! Workloads checked completely, as `run` and `validate` check them: this stage composes the
//! workload's own checks with the fault table's and the metric registry's.

use std::path::Path;

use super::load_workload;
use crate::workload::{parse, FaultKind, WorkloadError};

use crate::workload::tests::VALID;

fn parse_err(src: &str) -> WorkloadError {
    parse(Path::new("w.yaml"), src, super::RULES).expect_err("should be rejected")
}

#[test]
fn every_shipped_workload_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
    let mut n = 0;
    // The cluster's workloads (targets/local-cluster.yaml) and the article's patterns are
    // shipped too.
    for d in [dir.clone(), dir.join("cluster"), dir.join("patterns")] {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                load_workload(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
    }
    assert!(
        n >= 3,
        "expected the shipped workloads in {}",
        dir.display()
    );
}

#[test]
fn unknown_metric_in_expect_lists_known_ones() {
    let e = parse_err(&VALID.replace("  lost: 0", "  lozt: 0"));
    assert_eq!(e.line, 19, "{e}");
    assert!(
        e.message.contains("unknown metric `lozt`")
            && e.message.contains("per_key_order_violations"),
        "{e}"
    );
}

#[test]
fn faults_parse_and_are_checked_against_the_load() {
    let with_fault = format!(
        "{VALID}faults:\n  - {{ at: 3s, kind: consumer-crash, target: one, restart_after: 2s }}\n"
    );
    let w = parse(Path::new("w.yaml"), &with_fault, super::RULES).unwrap();
    assert_eq!(w.faults[0].value.kind, FaultKind::ConsumerCrash);
    let late = format!("{VALID}faults:\n  - {{ at: 30s, kind: consumer-crash }}\n");
    let e = parse_err(&late);
    assert_eq!(e.line, 23, "{e}");
    assert!(e.message.contains("lasts only"), "{e}");
    let bad_target =
        format!("{VALID}faults:\n  - {{ at: 3s, kind: pause, duration: 1s, target: some }}\n");
    assert!(parse_err(&bad_target).message.contains("invalid target"));
    let no_duration = format!("{VALID}faults:\n  - {{ at: 3s, kind: pause }}\n");
    assert!(parse_err(&no_duration)
        .message
        .contains("needs a `duration`"));
    let restart_first = format!(
        "{VALID}faults:\n  - {{ at: 3s, kind: consumer-crash, duration: 4s, restart_after: 1s }}\n"
    );
    assert!(parse_err(&restart_first)
        .message
        .contains("restart_after (1s) is shorter than duration (4s)"));
    let repeats_past_end =
        format!("{VALID}faults:\n  - {{ at: 3s, kind: consumer-crash, every: 4s, count: 3 }}\n");
    assert!(parse_err(&repeats_past_end)
        .message
        .contains("last repetition starts at 11s"));
    let restart_on_pause =
        format!("{VALID}faults:\n  - {{ at: 3s, kind: pause, duration: 1s, restart_after: 2s }}\n");
    assert!(parse_err(&restart_on_pause)
        .message
        .contains("`restart_after` does not apply to pause; it applies to consumer-crash, producer-crash, broker-kill"));
}

#[test]
fn network_faults_are_checked_for_their_parameters() {
    let fault = |f: &str| format!("{VALID}faults:\n  - {{ at: 2s, duration: 3s, {f} }}\n");
    let ok = parse(
        Path::new("w.yaml"),
        &fault("kind: latency, latency: 200ms, jitter: 50ms, between: [producers, broker], direction: upstream"),
        super::RULES,
    )
    .unwrap();
    assert_eq!(ok.faults[0].value.kind, FaultKind::Latency);
    let cases = [
        ("kind: latency", "latency needs `latency`"),
        ("kind: bandwidth", "bandwidth needs `rate"),
        (
            "kind: slicer, slice_delay: 1ms",
            "slicer needs `slice_size`",
        ),
        (
            "kind: partition, latency: 1s",
            "`latency` does not apply to partition",
        ),
        (
            "kind: partition, direction: upstream",
            "`direction` does not apply to partition",
        ),
        (
            "kind: down, between: [consumers, producers]",
            "between must name a client group and the broker",
        ),
        ("kind: partition, target: one", "use `between`"),
        (
            "kind: broker-pause, target: one",
            "`target` does not apply to broker-pause; it applies to consumer-crash, producer-crash, pause",
        ),
        (
            "kind: reset-peer, reset_after: 1s",
            "`reset_after` does not apply to reset-peer; it applies to partition, blackhole",
        ),
        (
            "kind: pause, latency: 1s",
            "`latency` does not apply to pause; it applies to latency",
        ),
        (
            "kind: consumer-crash, workers: producers",
            "`workers` does not apply to consumer-crash; it applies to pause",
        ),
    ];
    for (f, expected) in cases {
        let e = parse_err(&fault(f));
        assert!(e.message.contains(expected), "{f}: {e}");
        assert_eq!(e.line, 23, "{f}: {e}");
    }
    let forever = format!("{VALID}faults:\n  - {{ at: 2s, kind: down }}\n");
    assert!(parse_err(&forever).message.contains("needs a `duration`"));
}

#[test]
fn every_problem_in_a_file_is_reported_with_its_position() {
    let src = "name: t
brokers: [kafka]
load:
  rate: 10/s
  duration: 5s
  producers: 0
consumers:
  count: 65
faults:
  - { at: 1s, kind: pause }
expect:
  lots: 0
";
    let e = parse_err(src);
    let all: Vec<String> = std::iter::once(&e)
        .chain(e.more.iter())
        .map(|p| p.to_string())
        .collect();
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(all[0].starts_with("w.yaml:6:3: producers"), "{all:#?}");
    assert!(
        all[1].starts_with("w.yaml:8:3: consumers.count must be between 0"),
        "{all:#?}"
    );
    // Fault kinds are named as the workload writes them.
    assert!(
        all[2].starts_with("w.yaml:10:5: pause needs a `duration`"),
        "{all:#?}"
    );
    assert!(all[3].contains("unknown metric `lots`"), "{all:#?}");
    // Printed one per line, compiler style.
    assert_eq!(e.to_string().lines().count(), 4);
}

#[test]
fn the_shipped_nightly_suite_is_valid_and_says_how_long_it_takes() {
    let s = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/nightly/suite.yaml");
    let job =
        super::suite::expand(std::slice::from_ref(&s), None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(job.suite.as_deref(), Some("nightly"));
    assert_eq!(job.workloads.len(), 5);
    let text = std::fs::read_to_string(&s).unwrap();
    assert!(text.contains("minutes on a 2-core runner"), "{text}");
    // Its trend page draws one line per workload × broker: each needs a colour of its own.
    let lines: usize = job.workloads.iter().map(|(_, w)| w.brokers.len()).sum();
    assert!(
        lines <= crate::report::plots::PALETTE.len(),
        "{lines} trend lines, {} colours",
        crate::report::plots::PALETTE.len()
    );
}

#[test]
fn a_producers_only_workload_refuses_what_needs_consumers_where_it_is_written() {
    let src = "name: w
brokers: [kafka]
load: { rate: 10/s, duration: 5s }
consumers: { count: 0 }
faults:
  - { at: 1s, kind: consumer-crash }
  - { at: 1s, kind: partition, between: [consumers, broker], duration: 1s }
  - { at: 1s, kind: latency, latency: 5ms, duration: 1s }
  - { at: 1s, kind: pause, workers: producers, duration: 1s }
expect:
  lost: 0
  p99_end_to_end: \"< 1s\"
";
    let e = parse_err(src).to_string();
    let all: Vec<&str> = e.lines().collect();
    assert_eq!(
        all,
        vec![
            "w.yaml:6:5: consumer-crash acts on the consumers, and this workload has none (consumers.count: 0)",
            "w.yaml:7:5: partition acts on the consumers, and this workload has none (consumers.count: 0)",
            "w.yaml:12:19: `p99_end_to_end` measures what consumers received, and this workload has none (consumers.count: 0)",
        ],
        "a latency on every client, a pause of producers and `lost` are fine"
    );
}

/// `consumer-scale` needs `to`, from 0 to the consumer limit, and consumers to scale: each
/// problem is reported where it is written.
#[test]
fn a_consumer_scale_is_checked_where_it_is_written() {
    let src = "name: w
brokers: [kafka]
load: { rate: 10/s, duration: 9s }
consumers: { count: 2 }
faults:
  - { at: 1s, kind: consumer-scale }
  - { at: 1s, kind: consumer-scale, to: 0, duration: 2s }
  - { at: 1s, kind: consumer-scale, to: 65 }
  - { at: 1s, kind: consumer-scale, to: 3, target: one }
  - { at: 1s, kind: consumer-scale, to: 4, duration: 2s }
";
    let e = parse_err(src).to_string();
    let all: Vec<&str> = e.lines().collect();
    // Every line but the scale to 0 (the consumers taken away for a while).
    assert_eq!(all.len(), 3, "{e}");
    assert!(
        all[0].starts_with("w.yaml:6:5: ") && all[0].contains("`to`"),
        "{e}"
    );
    assert!(
        all[1].starts_with("w.yaml:8:5: ") && all[1].contains("at most 64"),
        "{e}"
    );
    assert!(
        all[2].starts_with("w.yaml:9:") && all[2].contains("target"),
        "{e}"
    );
    let none = src.replace("count: 2", "count: 0");
    let e = parse_err(&none).to_string();
    assert!(
        e.contains("w.yaml:10:5: consumer-scale acts on the consumers, and this workload has none"),
        "{e}"
    );
}

#[test]
fn a_stepped_rate_checks_its_bounds_and_its_own_expectation() {
    let with = |rate: &str, expect: &str| {
        format!("name: s\nbrokers: [kafka]\nload: {{ rate: {rate}, duration: 2s }}\nexpect:\n  {expect}\n")
    };
    let e = parse_err(&with(
        "{ find_max: { p99_end_to_edn: \"< 50ms\" } }",
        "lost: 0",
    ))
    .to_string();
    assert!(
        e.starts_with("w.yaml:3:29: unknown metric `p99_end_to_edn`"),
        "{e}"
    );
    assert!(e.contains("(in find_max)"), "{e}");
    // The curve's expectation needs a curve...
    let e = parse_err(&with("100/s", "max_sustainable_rate: \"> 50\"")).to_string();
    assert!(
        e.contains("w.yaml:5:25: `max_sustainable_rate` is measured by stepping the rate"),
        "{e}"
    );
    // ...and a curve accepts it.
    let src = with(
        "{ sweep: [100/s, 200/s] }",
        "max_sustainable_rate: \"> 50\"",
    );
    assert!(parse(Path::new("w.yaml"), &src, super::RULES).is_ok());
}

#[test]
fn node_faults_take_shapes_and_node_targets_and_nothing_else() {
    let with = |fault: &str| format!("{VALID}faults:\n  - {fault}\n");
    let w = parse(
        Path::new("w.yaml"),
        &with("{ at: 3s, kind: node-partition, shape: [[n1], [n2, n3]], duration: 2s }"),
        super::RULES,
    )
    .unwrap();
    assert_eq!(w.faults[0].value.kind, FaultKind::NodePartition);
    for ok in [
        "{ at: 3s, kind: node-partition, shape: isolate-leader, duration: 2s }",
        "{ at: 3s, kind: node-kill, target: leader, restart_after: 2s }",
        "{ at: 3s, kind: node-pause, target: minority, duration: 2s }",
        "{ at: 3s, kind: node-restart, target: n2 }",
        "{ at: 3s, kind: node-loss, loss: 5%, duration: 2s }",
        "{ at: 3s, kind: node-loss, loss: 20%, links: peers, target: leader, duration: 2s }",
        "{ at: 3s, kind: node-delay, latency: 50ms, duration: 2s }",
        "{ at: 3s, kind: node-delay, latency: 50ms, jitter: 10ms, links: all, target: n2, duration: 2s }",
        "{ at: 3s, kind: node-delay, latency: 20ms, reorder: 25%, duration: 2s }",
        "{ at: 3s, kind: node-loss, loss: 3%, correlation: 50%, duration: 2s }",
        "{ at: 3s, kind: node-duplicate, duplicate: 5%, links: all, duration: 2s }",
        "{ at: 3s, kind: node-corrupt, corrupt: 1%, target: leader, duration: 2s }",
    ] {
        parse(Path::new("w.yaml"), &with(ok), super::RULES).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let e = parse_err(&with(
        "{ at: 3s, kind: node-partition, shape: halfs, duration: 2s }",
    ));
    assert_eq!(e.line, 23, "{e}");
    let e = parse_err(&with("{ at: 3s, kind: node-partition }"));
    assert!(e.message.contains("needs a `duration`"), "{e}");
    let e = parse_err(&with(
        "{ at: 3s, kind: pause, shape: halves, duration: 2s }",
    ));
    assert!(
        e.message
            .contains("`shape` does not apply to pause; it applies to node-partition"),
        "{e}"
    );
    let e = parse_err(&with("{ at: 3s, kind: node-kill, target: 50% }"));
    assert!(e.message.contains("invalid node target"), "{e}");
    let e = parse_err(&with("{ at: 3s, kind: node-loss, duration: 2s }"));
    assert!(e.message.contains("node-loss needs `loss`"), "{e}");
    let e = parse_err(&with(
        "{ at: 3s, kind: node-loss, loss: 0.5%, duration: 2s }",
    ));
    assert!(e.message.contains("whole percentage"), "{e}");
    assert_eq!((e.line, e.column), (23, 38), "at the value: {e}");
    let e = parse_err(&with("{ at: 3s, kind: node-duplicate, duration: 2s }"));
    assert!(
        e.message.contains("node-duplicate needs `duplicate`"),
        "{e}"
    );
    let e = parse_err(&with("{ at: 3s, kind: node-corrupt, corrupt: 1% }"));
    assert!(e.message.contains("node-corrupt needs a `duration`"), "{e}");
    let e = parse_err(&with(
        "{ at: 3s, kind: node-delay, latency: 5ms, correlation: 50%, duration: 2s }",
    ));
    assert!(
        e.message
            .contains("`correlation` does not apply to node-delay; it applies to node-loss"),
        "{e}"
    );
    let e = parse_err(&with("{ at: 3s, kind: node-delay, duration: 2s }"));
    assert!(e.message.contains("node-delay needs `latency`"), "{e}");
    let e = parse_err(&with(
        "{ at: 3s, kind: node-delay, latency: 10ms, jitter: 20ms, duration: 2s }",
    ));
    assert!(e.message.contains("at most the latency (10ms)"), "{e}");
    let e = parse_err(&with(
        "{ at: 3s, kind: node-delay, latency: 500us, duration: 2s }",
    ));
    assert!(
        e.message.contains("whole milliseconds, at least 1ms"),
        "{e}"
    );
    let e = parse_err(&with(
        "{ at: 3s, kind: node-delay, latency: 5ms, loss: 5%, duration: 2s }",
    ));
    assert!(
        e.message.contains("`loss` does not apply to node-delay"),
        "{e}"
    );
    let e = parse_err(&with(
        "{ at: 3s, kind: node-loss, loss: 5%, reorder: 5%, duration: 2s }",
    ));
    assert!(
        e.message.contains("`reorder` does not apply to node-loss"),
        "{e}"
    );
    let e = parse_err(&with("{ at: 3s, kind: node-kill, links: peers }"));
    assert!(
        e.message.contains("`links` does not apply to node-kill"),
        "{e}"
    );
}
