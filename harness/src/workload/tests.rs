use std::path::Path;

use super::*;

/// A valid workload using most features; tests elsewhere in the crate build on it too.
pub(crate) const VALID: &str = "\
name: smoke
brokers: [kafka, rabbitmq, sqs]
topology:
  partitions: 3
  rabbitmq: { queue_type: quorum, sharding: consistent-hash, single_active_consumer: true }
  sqs: { fifo: true, visibility_timeout: 5s }
load:
  producers: 2
  rate: 500/s
  keys: { count: 20, distribution: zipf(1.1) }
  message_size: 1KiB
  duration: 10s
  warmup: 1s
consumers:
  count: 2
  ack: after-process
  processing_time: 1ms
expect:
  lost: 0
  duplicate_rate: \"< 1%\"
  p99_end_to_end: \"< 250ms\"
";

fn parse_err(src: &str) -> WorkloadError {
    parse(Path::new("w.yaml"), src, &[]).expect_err("should be rejected")
}

#[test]
fn parses_a_full_workload_with_units() {
    let w = parse(Path::new("w.yaml"), VALID, &[]).unwrap();
    assert_eq!(w.brokers, ["kafka", "rabbitmq", "sqs"].map(BrokerKind::new));
    assert_eq!(w.load.rate, LoadRate::One(Rate::PerSecond(500.0)));
    assert_eq!(w.load.message_size.0, 1024);
    assert_eq!(w.load.duration, units::Dur::secs(10));
    assert_eq!(w.load.keys.distribution, KeyDistribution::Zipf(1.1));
    // Each broker's options are kept as written, for its driver to read.
    let rabbitmq = &w.topology.brokers[&BrokerKind::new("rabbitmq")];
    assert_eq!(rabbitmq["queue_type"], "quorum");
    assert_eq!(w.topology.brokers[&BrokerKind::new("sqs")]["fifo"], true);
    assert_eq!(w.consumers.processing_time, units::Dur::millis(1));
    assert_eq!(w.expect["duplicate_rate"].value, "< 1%".parse().unwrap());
    assert_eq!(w.expect["lost"].referenced.line(), 19);
}

#[test]
fn unknown_field_is_reported_at_its_position() {
    let src = VALID.replace("  warmup: 1s", "  warmpu: 1s");
    let e = parse_err(&src);
    assert_eq!((e.line, e.column), (13, 3), "{e}");
    assert!(e.message.contains("warmpu"), "{e}");
    assert!(e.to_string().starts_with("w.yaml:13:3: "), "{e}");
}

#[test]
fn bad_unit_is_reported_at_the_value() {
    let e = parse_err(&VALID.replace("duration: 10s", "duration: 10 parsecs"));
    assert_eq!(e.line, 12, "{e}");
    assert!(e.message.contains("invalid duration"), "{e}");
    let e = parse_err(&VALID.replace("rate: 500/s", "rate: 500"));
    assert_eq!(e.line, 9, "{e}");
    assert!(e.message.contains("invalid rate"), "{e}");
}

#[test]
fn unknown_enum_value_names_the_choices() {
    let e = parse_err(&VALID.replace("ack: after-process", "ack: sometimes"));
    assert_eq!(e.line, 16, "{e}");
    assert!(e.message.contains("after-process"), "{e}");
}

#[test]
fn semantic_errors_point_at_the_field() {
    let e = parse_err(&VALID.replace("warmup: 1s", "warmup: 20s"));
    assert_eq!((e.line, e.column), (13, 3), "{e}");
    assert!(e.message.contains("shorter than duration"), "{e}");
    let e = parse_err(&VALID.replace("partitions: 3", "partitions: 0"));
    assert_eq!((e.line, e.column), (4, 3), "{e}");
    let e = parse_err(&VALID.replace("message_size: 1KiB", "message_size: 8B"));
    assert_eq!(e.line, 11, "{e}");
}

#[test]
fn missing_required_field_is_an_error() {
    let e = parse_err("name: x\nbrokers: [kafka]\n");
    assert!(e.message.contains("load"), "{e}");
}

#[test]
fn schema_describes_the_top_level_fields() {
    let s = json_schema();
    let props = s["properties"].as_object().unwrap();
    for f in [
        "name",
        "brokers",
        "topology",
        "load",
        "consumers",
        "faults",
        "expect",
    ] {
        assert!(props.contains_key(f), "schema lacks {f}");
    }
    assert_eq!(s["additionalProperties"], serde_json::json!(false));
}

#[test]
fn fault_times_are_checked_against_the_load() {
    let late = format!("{VALID}faults:\n  - {{ at: 30s, kind: consumer-crash }}\n");
    let e = parse_err(&late);
    assert_eq!(e.line, 23, "{e}");
    assert!(e.message.contains("lasts only"), "{e}");
    let repeats_past_end =
        format!("{VALID}faults:\n  - {{ at: 3s, kind: consumer-crash, every: 4s, count: 3 }}\n");
    assert!(parse_err(&repeats_past_end)
        .message
        .contains("last repetition starts at 11s"));
    let half = format!("{VALID}faults:\n  - {{ at: 3s, kind: consumer-crash, every: 4s }}\n");
    assert!(parse_err(&half).message.contains("go together"));
}

#[test]
fn the_digest_changes_with_what_is_measured_and_only_with_that() {
    let digest = |src: &str| parse(Path::new("w.yaml"), src, &[]).unwrap().digest();
    let base = digest(VALID);
    assert_eq!(base.len(), 16);
    // Reported differently, measured the same: another name, description, broker list,
    // expectations, key order, comments, or a default written out.
    for same in [
        VALID.replace("name: smoke", "name: other\ndescription: d"),
        VALID.replace("[kafka, rabbitmq, sqs]", "[sqs]"),
        VALID.replace("  lost: 0\n", "  lost: 0\n  unread: 0\n"),
        VALID.replace(
            "  producers: 2\n  rate: 500/s\n",
            "  rate: 500/s # per second\n  producers: 2\n",
        ),
        VALID.replace("consumers:\n", "consumers:\n  dedupe: none\n"),
    ] {
        assert_eq!(digest(&same), base, "{same}");
    }
    for other in [
        VALID.replace("rate: 500/s", "rate: 400/s"),
        VALID.replace("processing_time: 1ms", "processing_time: 2ms"),
        VALID.replace("fifo: true", "fifo: false"),
        format!("{VALID}faults:\n  - {{ at: 2s, kind: consumer-crash, target: one }}\n"),
    ] {
        assert_ne!(digest(&other), base, "{other}");
    }
}

#[test]
fn a_rate_can_be_stepped_as_a_sweep_or_a_search() {
    let with = |rate: &str| VALID.replace("rate: 500/s", &format!("rate: {rate}"));
    let rate = |rate: &str| {
        parse(Path::new("w.yaml"), &with(rate), &[])
            .unwrap()
            .load
            .rate
    };
    let per = Rate::PerSecond;
    assert_eq!(
        rate("{ sweep: [1000/s, 5000/s, max] }"),
        LoadRate::Steps(Steps::Sweep(vec![per(1000.0), per(5000.0), Rate::Max]))
    );
    assert_eq!(
        rate("{ sweep: { from: 1000/s, to: 9000/s, steps: 5 } }"),
        LoadRate::Steps(Steps::Sweep(
            [1000.0, 3000.0, 5000.0, 7000.0, 9000.0].map(per).to_vec()
        ))
    );
    let LoadRate::Steps(Steps::FindMax { bounds, to, steps }) =
        rate("{ find_max: { p99_end_to_end: \"< 50ms\" }, to: 40000/s }")
    else {
        panic!("not a search");
    };
    assert_eq!(bounds["p99_end_to_end"].value, 0.05);
    assert_eq!((to, steps), (Some(40_000.0), steps::DEFAULT_SEARCH_STEPS));
}

#[test]
fn bad_steps_are_refused_where_they_are_written() {
    let bad = |rate: &str, expect: &str| {
        let src = VALID.replace("rate: 500/s", &format!("rate: {rate}"));
        let e = parse_err(&src);
        assert_eq!(e.line, 9, "{e}");
        assert!(e.to_string().contains(expect), "{rate}: {e}");
    };
    bad("{ sweep: [] }", "a sweep has 1 to 30 steps, not 0");
    bad("{ sweep: [1000/s, fast] }", "invalid rate \"fast\"");
    bad(
        "{ sweep: { from: 5000/s, to: 1000/s, steps: 3 } }",
        "must be below to",
    );
    bad("{ sweep: [1000/s], find_max: { lost: 0 } }", "choose one");
    bad("{ find_max: {} }", "find_max needs a bound");
    bad(
        "{ find_max: { p99_end_to_end: \"< 50ms\" }, to: max }",
        "to must be a rate",
    );
    bad("{ swep: [1000/s] }", "unknown field `swep`");
}

#[test]
fn a_step_is_the_workload_at_one_rate_and_reads_back_as_written() {
    let src = VALID
        .replace("rate: 500/s", "rate: { sweep: [100/s, max] }")
        .replace(
            "  lost: 0\n",
            "  lost: 0\n  max_sustainable_rate: \"> 50\"\n",
        );
    let w = parse(Path::new("w.yaml"), &src, &[]).unwrap();
    let step = w.at(Rate::PerSecond(100.0));
    assert_eq!(step.name, "smoke@100/s");
    assert_eq!(step.load.rate, LoadRate::One(Rate::PerSecond(100.0)));
    assert!(step.expect.contains_key("lost"));
    assert!(!step.expect.contains_key(steps::MAX_SUSTAINABLE_RATE));
    // Written into the step's run directory, it reads back as the same workload.
    let text = serde_saphyr::to_string(&step).unwrap();
    let back = parse(Path::new("step.yaml"), &text, &[]).unwrap();
    assert_eq!(back.digest(), step.digest(), "{text}");
    assert_eq!(back.name, step.name);
    assert_ne!(step.digest(), w.at(Rate::Max).digest());
}

#[test]
fn the_window_is_the_workloads_else_1000_at_a_fixed_rate_else_the_drivers_at_max() {
    let w = parse(Path::new("w.yaml"), VALID, &[]).unwrap();
    let drivers = InFlight::Fixed(10_000);
    assert_eq!(w.load.window(drivers), InFlight::Fixed(DEFAULT_IN_FLIGHT));
    let max = parse(
        Path::new("w.yaml"),
        &VALID.replace("rate: 500/s", "rate: max"),
        &[],
    )
    .unwrap();
    assert_eq!(max.load.max_in_flight, None, "left to the driver");
    assert_eq!(max.load.window(drivers), drivers);
    assert_eq!(max.load.window(InFlight::Auto), InFlight::Auto);
    let set = parse(
        Path::new("w.yaml"),
        &VALID.replace("rate: 500/s", "rate: max\n  max_in_flight: auto"),
        &[],
    )
    .unwrap();
    assert_eq!(
        set.load.window(drivers),
        InFlight::Auto,
        "the workload's own wins"
    );
    // A step at max leaves it to the driver too, and one at a fixed rate writes 1000 out.
    let stepped = parse(
        Path::new("w.yaml"),
        &VALID.replace("rate: 500/s", "rate: { sweep: [100/s, max] }"),
        &[],
    )
    .unwrap();
    assert_eq!(stepped.at(Rate::Max).load.max_in_flight, None);
    assert_eq!(
        stepped.at(Rate::PerSecond(100.0)).load.max_in_flight,
        Some(InFlight::Fixed(DEFAULT_IN_FLIGHT))
    );
}
