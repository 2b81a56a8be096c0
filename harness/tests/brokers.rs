//! Short workloads against each real local broker: every acknowledged message must be delivered.

mod common;

use common::*;

fn steady(broker: &str, extra_topology: &str) -> String {
    format!(
        "name: it-{broker}
brokers: [{broker}]
topology:
  partitions: 3
{extra_topology}
load:
  producers: 2
  rate: 300/s
  keys: {{ count: 10 }}
  message_size: 200B
  duration: 3s
consumers:
  count: 2
  ack: after-process
run: {{ drain_quiet: 1s }}
expect:
  lost: 0
  unexpected: 0
  per_key_order_violations: 0
"
    )
}

/// `ordered`: whether the topology promises per-key order (competing consumers on one queue,
/// or a standard SQS queue, do not).
fn assert_all_delivered(broker: &str, topology: &str, ordered: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = steady(broker, topology);
    if !ordered {
        yaml = yaml.replace("  per_key_order_violations: 0\n", "");
    }
    let w = workload(dir.path(), broker, &yaml);
    let (out, result) = run(dir.path(), &w, &[]);
    assert!(
        out.status.success(),
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let b = &result.brokers[0];
    let m = b.metrics.as_ref().unwrap();
    assert!(m.counts.acked >= 800, "only {} acked", m.counts.acked);
    assert_eq!(
        m.counts.sent, m.counts.acked,
        "no send may fail on an idle broker"
    );
    assert_eq!(m.delivery.lost, 0);
    assert!(
        m.delivery.delivered >= m.counts.acked,
        "{} delivered of {} acked",
        m.delivery.delivered,
        m.counts.acked
    );
    assert!(m.timing.end_to_end_latency.count > 0 && m.timing.publish_latency.p50 > 0.0);
    assert!(b.verdicts.iter().all(|v| v.passed()), "{:?}", b.verdicts);
    assert!(!b.product.is_empty());
    // The run directory holds the workload copy, the history and JUnit XML.
    let run_dir = dir.path().join("reports").join(&result.run_id);
    for f in [
        "workload.yaml",
        "result.json",
        "junit.xml",
        &format!("{broker}/history.bin"),
    ] {
        assert!(run_dir.join(f).exists(), "missing {f}");
    }
}

/// Every registered broker, with its default options: per-key order is not asked of them all
/// (an SQS standard queue does not keep it); the tests below ask it of the settings that do.
#[test]
fn every_broker_delivers_every_acknowledged_message_with_its_defaults() {
    let _brokers = sharing_brokers();
    for_every_broker(|broker| assert_all_delivered(broker, "", false));
}

#[test]
fn kafka_delivers_every_acknowledged_message_in_key_order() {
    assert_all_delivered("kafka", "", true);
}

#[test]
fn rabbitmq_quorum_sharded_delivers_every_acknowledged_message() {
    assert_all_delivered("rabbitmq", "  rabbitmq: { queue_type: quorum, sharding: consistent-hash, single_active_consumer: true }", true);
}

#[test]
fn rabbitmq_classic_single_queue_delivers_every_acknowledged_message() {
    // Two competing consumers on one queue: delivery is promised, per-key order is not.
    assert_all_delivered(
        "rabbitmq",
        "  rabbitmq: { queue_type: classic, sharding: none, single_active_consumer: false }",
        false,
    );
}

#[test]
fn sqs_fifo_delivers_every_acknowledged_message() {
    assert_all_delivered("sqs", "  sqs: { fifo: true }", true);
}

#[test]
fn sqs_batched_deletes_remove_every_processed_message_once() {
    let _brokers = sharing_brokers();
    let yaml = "name: it-sqs-batched-deletes
brokers: [sqs]
topology:
  sqs: { fifo: false, batch: 10, visibility_timeout: 2s }
load:
  producers: 1
  rate: 300/s
  keys: { count: 10 }
  duration: 3s
consumers:
  count: 2
  ack: after-process
run: { drain_quiet: 4s }
";
    let ran = run_ok(yaml, "sqs");
    let m = &ran.metrics;
    assert!(m.counts.acked >= 800, "only {} acked", m.counts.acked);
    assert_eq!((m.delivery.lost, m.delivery.unread), (0, 0), "{m:?}");
    assert_eq!(
        m.delivery.redeliveries, 0,
        "a processed message came back: {m:?}"
    );
    assert_eq!(m.delivery.broker_redeliveries, 0, "{m:?}");
    let acks = ran
        .events
        .iter()
        .filter(|e| matches!(e, brokerbench::history::Event::Ack { .. }))
        .count() as u64;
    assert_eq!(
        acks, m.delivery.delivered,
        "each processed message acknowledged once"
    );
    let errors: Vec<_> = ran
        .events
        .iter()
        .filter(|e| matches!(e, brokerbench::history::Event::ConsumerError { .. }))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// Client properties from the workload reach librdkafka (a compressed, lingering producer still
/// delivers everything) and the result records the settings the clients used.
#[test]
fn kafka_client_properties_from_the_workload_are_used_and_recorded() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let yaml = steady(
        "kafka",
        "  kafka:\n    producer: { linger.ms: 5, compression.type: lz4 }\n    consumer: { fetch.min.bytes: 1024 }",
    );
    let w = workload(dir.path(), "kafka-props", &yaml);
    let (out, result) = run(dir.path(), &w, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b = &result.brokers[0];
    assert_eq!(b.metrics.as_ref().unwrap().delivery.lost, 0);
    for (k, v) in [
        ("producer.linger.ms", "5"),
        ("producer.compression.type", "lz4"),
        ("producer.acks", "all"),
        ("consumer.fetch.min.bytes", "1024"),
    ] {
        assert_eq!(
            b.client_settings.get(k).map(String::as_str),
            Some(v),
            "{:?}",
            b.client_settings
        );
    }
    let page = std::fs::read_to_string(
        dir.path()
            .join("reports")
            .join(&result.run_id)
            .join("index.html"),
    )
    .unwrap();
    assert!(
        page.contains("producer.compression.type"),
        "the run page lists them"
    );
}

/// A Kafka consumer commits once per polled batch, after processing it or (at-most-once) before,
/// as the documented poll loop does: one commit per message queued thousands of OffsetCommit
/// requests at 10,000 msg/s, the group's heartbeats waited behind them, the session timed out
/// and deliveries stopped for 20 s. The consumers' own librdkafka log (with `debug: cgrp`, in the
/// run directory) counts the commits, and says whether a session ever timed out.
#[test]
fn kafka_consumers_commit_per_batch_and_keep_their_group_session() {
    let _brokers = sharing_brokers();
    for mode in ["after-process", "before-process"] {
        let dir = tempfile::tempdir().unwrap();
        let yaml = steady(
            "kafka",
            "  kafka:\n    consumer: { debug: cgrp, log_level: 7 }",
        )
        .replace("rate: 300/s", "rate: 2000/s")
        .replace("ack: after-process", &format!("ack: {mode}"));
        let w = workload(dir.path(), "kafka-commits", &yaml);
        let (out, result) = run(dir.path(), &w, &[]);
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        let m = result.brokers[0].metrics.as_ref().unwrap();
        assert_eq!(m.delivery.lost, 0, "{mode}");
        let kafka = dir
            .path()
            .join("reports")
            .join(&result.run_id)
            .join("kafka");
        let mut log = String::new();
        for i in 0..2 {
            log += &std::fs::read_to_string(kafka.join(format!("consumer-{i}.log"))).unwrap();
        }
        let commits = log.matches("Committing offsets for").count() as u64;
        assert!(
            commits > 0,
            "{mode}: librdkafka's debug log reaches the consumers' log files"
        );
        assert!(
            commits * 5 < m.delivery.delivered,
            "{mode}: {commits} commits for {} deliveries: not one per polled batch",
            m.delivery.delivered
        );
        assert!(
            !log.contains("session timed out"),
            "{mode}: a session timed out"
        );
    }
}

/// `consumers.count: 0` publishes only: the final read finds every acknowledged message stored,
/// and none of them counts as unread.
#[test]
fn producers_only_runs_verify_what_was_stored() {
    let _brokers = sharing_brokers();
    for_every_broker(|broker| {
        let yaml = format!(
            "name: producers-only-{broker}
brokers: [{broker}]
topology: {{ partitions: 2 }}
load: {{ rate: 400/s, duration: 3s, keys: {{ count: 8 }} }}
consumers: {{ count: 0 }}
expect: {{ lost: 0 }}
"
        );
        let ran = run_ok(&yaml, broker);
        let m = &ran.metrics;
        assert!(m.counts.acked >= 1000, "{broker}: {} acked", m.counts.acked);
        assert_eq!(
            (m.delivery.lost, m.delivery.unread, m.delivery.delivered),
            (0, 0, 0),
            "{broker}: {m:?}"
        );
        assert_eq!(
            m.delivery.final_read.read, m.counts.acked,
            "{broker}: {:?}",
            m.delivery.final_read
        );
        assert!(
            m.timing.throughput > 300.0,
            "{broker}: {}",
            m.timing.throughput
        );
    });
}

#[test]
fn backlog_runs_start_the_consumers_late_and_measure_the_catch_up() {
    let _brokers = sharing_brokers();
    for_every_broker(|broker| {
        // 1,200 messages at 400/s: the consumers start about 3 s in, then catch up.
        let yaml = format!(
            "name: backlog-{broker}
brokers: [{broker}]
topology: {{ partitions: 2 }}
load: {{ rate: 400/s, duration: 8s, keys: {{ count: 8 }}, backlog: {{ messages: 1200 }} }}
consumers: {{ count: 2 }}
expect: {{ lost: 0, unread: 0, catch_up_time: \"< 20s\" }}
"
        );
        let ran = run_ok(&yaml, broker);
        let m = &ran.metrics;
        assert_eq!(
            (m.delivery.lost, m.delivery.unread),
            (0, 0),
            "{broker}: {m:?}"
        );
        assert!(
            m.delivery.delivered >= m.counts.acked && m.counts.acked >= 3000,
            "{broker}: {m:?}"
        );
        let c = m.timing.catch_up.as_ref().expect("a catch-up");
        assert!(
            (2.5..4.5).contains(&c.started_s) && c.backlog >= 1000,
            "{broker}: consumers started {} s in with {} waiting",
            c.started_s,
            c.backlog
        );
        // Catching up means taking more than the 400/s that keep arriving.
        assert!(c.rate.is_some_and(|r| r > 400.0), "{broker}: {c:?}");
        let none_before = m
            .timing
            .timeline
            .iter()
            .filter(|w| (w.second as f64) < c.started_s.floor())
            .all(|w| w.delivered == 0);
        assert!(
            none_before,
            "{broker}: delivered before the consumers started"
        );
        // The stopped consumers were not unavailable (a Kafka consumer's seconds joining its
        // group, with the backlog waiting, are).
        if broker != "kafka" {
            assert!(
                m.timing.consumer_availability > 0.9,
                "{broker}: {}",
                m.timing.consumer_availability
            );
        }
        let started = ran.events.iter().any(|e| {
            matches!(
                e,
                brokerbench::history::Event::Phase {
                    phase: brokerbench::history::Phase::ConsumersStart { .. },
                    ..
                }
            )
        });
        assert!(
            started,
            "{broker}: the history records when the consumers started"
        );
    });
}

#[test]
fn rate_max_takes_the_drivers_window_and_auto_grows_while_it_pays() {
    // A throughput measurement: the window settles on what doubling it gains, which a run beside
    // it (LocalStack's producers-only run took most of both cores) makes noise of, so that it
    // never settled within the load. It owns the brokers, and the machine, while it measures.
    let _brokers = owning_brokers();
    let yaml = "name: auto-window
brokers: [rabbitmq]
topology: { rabbitmq: { sharding: none } }
load: { rate: max, duration: 8s, warmup: 2s, keys: { count: 100 } }
consumers: { count: 0 }
expect: { lost: 0 }
";
    let windows = |events: &[brokerbench::history::Event]| -> Vec<u32> {
        events
            .iter()
            .filter_map(|e| match e {
                brokerbench::history::Event::SendWindow { size, .. } => Some(*size),
                _ => None,
            })
            .collect()
    };
    // Unset, RabbitMQ's driver fixes 10,000 in flight: nothing to settle, and the report's
    // client settings say what was used.
    let dir = tempfile::tempdir().unwrap();
    let (out, result) = run(dir.path(), &workload(dir.path(), "w", yaml), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b = &result.brokers[0];
    assert_eq!(
        b.client_settings.get("max_in_flight").map(String::as_str),
        Some("10000"),
        "{:?}",
        b.client_settings
    );
    assert_eq!(b.metrics.as_ref().unwrap().timing.in_flight_window, None);
    assert!(windows(&history_of(dir.path(), &result, "rabbitmq")).is_empty());

    // Asked for, `auto` starts at the driver's 8000 and settles once, on 8000 or a doubling.
    let ran = run_ok(
        &yaml.replace(
            "keys: { count: 100 } }",
            "keys: { count: 100 }, max_in_flight: auto }",
        ),
        "rabbitmq",
    );
    let settled = windows(&ran.events);
    assert_eq!(settled.len(), 1, "one producer, one decision: {settled:?}");
    let size = settled[0];
    assert!(
        size.is_multiple_of(8000) && (size / 8000).is_power_of_two() && size <= 128_000,
        "a doubling of the first 8000: {size}"
    );
    assert_eq!(ran.metrics.timing.in_flight_window, Some(size));
}

#[test]
fn failed_expectation_exits_1_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        steady("rabbitmq", "").replace("  lost: 0\n", "  lost: 0\n  delivered: \"> 1000000\"\n");
    let w = workload(dir.path(), "fail", &yaml);
    let (out, result) = run(dir.path(), &w, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let failed: Vec<_> = result.brokers[0]
        .verdicts
        .iter()
        .filter(|v| !v.passed())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].metric, "delivered");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL       rabbitmq  delivered"),
        "{stdout}"
    );
    let junit = std::fs::read_to_string(
        dir.path()
            .join("reports")
            .join(&result.run_id)
            .join("junit.xml"),
    )
    .unwrap();
    assert!(junit.contains("<failure message=\"delivered = "), "{junit}");
}

#[test]
fn run_resources_are_deleted_afterwards() {
    // After a run, the queue created for it is gone (RabbitMQ answers 404 on a passive declare).
    let dir = tempfile::tempdir().unwrap();
    let w = workload(
        dir.path(),
        "cleanup",
        &steady("rabbitmq", "  rabbitmq: { sharding: none }"),
    );
    let (out, result) = run(dir.path(), &w, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("reports")
                .join(&result.run_id)
                .join("rabbitmq/plan.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let queue = format!("{}-q0", plan["resource_prefix"].as_str().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let exists = runtime.block_on(async {
        let conn = lapin::Connection::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let opts = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        ch.queue_declare(queue.as_str().into(), opts, Default::default())
            .await
            .is_ok()
    });
    assert!(!exists, "queue {queue} should have been deleted");
}

#[test]
fn ctrl_c_stops_cleanly_keeping_history_and_printing_the_summary() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let yaml = steady("rabbitmq", "").replace("duration: 3s", "duration: 60s");
    let w = workload(dir.path(), "long", &yaml);
    let out_dir = dir.path().join("reports");
    let child = Command::new(env!("CARGO_BIN_EXE_brokerbench"))
        .args([
            "run",
            "--quiet",
            "--target",
            local_target().to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            w.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the load run for a while, then interrupt like a terminal would.
    std::thread::sleep(std::time::Duration::from_secs(6));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?} to stop",
        started.elapsed()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("sent") && stdout.contains("rabbitmq"),
        "summary missing: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = only_run_dir(&out_dir);
    let result = brokerbench::report::RunResult::read(&run_dir.join("result.json")).unwrap();
    assert!(result.interrupted);
    let m = result.brokers[0].metrics.as_ref().unwrap();
    // Far fewer than the 18000 a full minute would send, and nothing acknowledged went missing.
    assert!(
        m.counts.acked > 500 && m.counts.acked < 10_000,
        "{} acked",
        m.counts.acked
    );
    assert_eq!(m.delivery.lost, 0);
}

/// A consumer group with more members than shards starts, as any group scaled past its shard
/// count does: the extra members stand by (Kafka assigns them no partition, RabbitMQ's single
/// active consumer keeps them waiting), the run page says so, and nothing is lost. A broker with
/// one queue and no shards to give out (SQS) has its consumers compete: none counts as idle.
#[test]
fn a_group_with_more_members_than_shards_starts_and_the_extra_ones_stand_by() {
    let _brokers = sharing_brokers();
    for_every_broker(|broker| {
        let yaml = format!(
            "name: it-standby-{broker}
brokers: [{broker}]
topology: {{ partitions: 2 }}
load: {{ rate: 100/s, keys: {{ count: 20 }}, duration: 4s }}
consumers: {{ count: 4 }}
expect: {{ lost: 0 }}
"
        );
        let ran = run_ok(&yaml, broker);
        let s = &ran.metrics.shards;
        assert_eq!(ran.metrics.delivery.lost, 0, "{broker}");
        if s.shard_load.is_empty() {
            assert!(s.idle_consumers.is_empty(), "{broker}: {s:?}");
            return;
        }
        let busy: std::collections::BTreeSet<u32> =
            s.shard_load.iter().map(|l| l.consumer).collect();
        assert_eq!(busy.len(), 2, "{broker}: one consumer per shard: {s:?}");
        assert_eq!(s.idle_consumers.len(), 2, "{broker}: two standbys: {s:?}");
        assert!(busy.iter().all(|c| !s.idle_consumers.contains(c)), "{s:?}");
        let reports = ran.dir.path().join("reports");
        let page = std::fs::read_to_string(only_run_dir(&reports).join("index.html")).unwrap();
        let standbys = format!(
            "Consumers {}, {} took no shard: they stood by",
            s.idle_consumers[0], s.idle_consumers[1]
        );
        assert!(
            page.contains(&standbys),
            "{broker}: the run page does not say {standbys:?}"
        );
    });
}

#[test]
fn rabbitmq_single_active_consumers_spread_over_the_shards() {
    // Consistent-hash shards with single active consumer: each consumer is active on its own
    // shards, as a partitioned-channel deployment assigns them, instead of the first consumer to
    // subscribe being active everywhere while the others idle.
    let _brokers = sharing_brokers();
    let yaml = steady("rabbitmq", "  rabbitmq: { single_active_consumer: true }")
        .replace("partitions: 3", "partitions: 4")
        .replace("duration: 3s", "duration: 6s")
        .replace("count: 10 }", "count: 200 }");
    let ran = run_ok(&yaml, "rabbitmq");
    let load = &ran.metrics.shards.shard_load;
    let mut active: std::collections::BTreeMap<u32, Vec<i64>> = Default::default();
    for shard in 0..4 {
        let on: Vec<_> = load.iter().filter(|l| l.shard == shard).collect();
        let total: u64 = on.iter().map(|l| l.deliveries).sum();
        let top = on
            .iter()
            .max_by_key(|l| l.deliveries)
            .unwrap_or_else(|| panic!("nothing from shard {shard}: {load:?}"));
        assert_eq!(
            top.deliveries, total,
            "one active consumer per shard: {load:?}"
        );
        active.entry(top.consumer).or_default().push(shard);
    }
    let shards: Vec<usize> = active.values().map(Vec::len).collect();
    assert_eq!(
        shards,
        [2, 2],
        "two shards for each of the two consumers: {active:?}"
    );
}

/// `channels_per_consumer` spreads one consumer's queues over that many AMQP channels, as
/// RabbitMQ itself sees them, and each delivery is acknowledged on the channel it came on (an ack
/// on another channel is a channel error: redeliveries and duplicates, or a stuck run).
#[test]
fn rabbitmq_consumer_channels_are_what_the_broker_sees_and_acks_find_their_channel() {
    let _brokers = sharing_brokers();
    let yaml = steady(
        "rabbitmq",
        "  rabbitmq: { single_active_consumer: false, channels_per_consumer: 2 }",
    )
    .replace("name: it-rabbitmq", "name: it-rabbit-channels")
    .replace("partitions: 3", "partitions: 4")
    .replace("duration: 3s", "duration: 8s")
    .replace("count: 2\n  ack", "count: 1\n  ack");
    // Ask the broker which channel consumes each of the run's queues while the run is going on.
    let seen = std::thread::spawn(|| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < until {
            let out = std::process::Command::new(repo().join("bin/brokers"))
                .args([
                    "rabbitmqctl",
                    "list_consumers",
                    "-q",
                    "queue_name",
                    "channel_pid",
                ])
                .output()
                .expect("bin/brokers rabbitmqctl");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let ours: Vec<(String, String)> = text
                .lines()
                .filter(|l| l.contains("it-rabbit-channels"))
                .filter_map(|l| l.split_once('\t'))
                .map(|(q, c)| (q.to_string(), c.to_string()))
                .collect();
            if ours.len() == 4 {
                return ours;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        panic!("the run's four queues never all had a consumer");
    });
    let ran = run_ok(&yaml, "rabbitmq");
    let consumers = seen.join().unwrap();
    let channels: std::collections::BTreeSet<_> = consumers.iter().map(|(_, c)| c).collect();
    assert_eq!(channels.len(), 2, "{consumers:?}");
    assert_eq!(ran.metrics.delivery.lost, 0);
    assert_eq!(
        ran.metrics.delivery.broker_redeliveries, 0,
        "acks on the wrong channel close it, and its deliveries come again"
    );
    assert!(ran.metrics.delivery.delivered > 0);
}

/// Several ReceiveMessage calls in flight per SQS consumer (`receivers_per_consumer`) lose
/// nothing, duplicate nothing, and keep per-key order on a FIFO queue (a group stays locked to one
/// call until its messages are deleted), and the report says how the consumer received.
#[test]
fn sqs_consumers_with_several_receive_calls_in_flight_keep_every_message_in_key_order() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let yaml = steady(
        "sqs",
        "  sqs: { fifo: true, receivers_per_consumer: 4, batch: 5 }",
    )
    .replace("rate: 300/s", "rate: 100/s")
    .replace("count: 2\n  ack", "count: 1\n  ack");
    let w = workload(dir.path(), "sqs-receivers", &yaml);
    let (out, result) = run(dir.path(), &w, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let b = &result.brokers[0];
    let m = b.metrics.as_ref().unwrap();
    assert_eq!(m.delivery.lost, 0);
    assert_eq!(m.delivery.redeliveries, 0);
    assert_eq!(m.delivery.per_key_order_violations, 0);
    assert!(m.delivery.delivered >= 250, "{}", m.delivery.delivered);
    assert_eq!(
        b.client_settings
            .get("receivers_per_consumer")
            .map(String::as_str),
        Some("4"),
        "{:?}",
        b.client_settings
    );
}
