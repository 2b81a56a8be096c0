//! The harness is never the weakest link: after every fault it injects heals, its clients
//! recover within a bounded time, nothing acknowledged is lost, and nothing is left unread. And
//! the final read tells the broker's losses from the consumers' failures: real loss is still
//! loss, and what slow consumers leave behind is unread. Against the real local brokers
//! (`bin/brokers up`).

mod common;

use brokerbench::check::{FinalReadStatus, Metrics};
use brokerbench::history::{ClientRole, Event};
use common::*;

/// Every network toxic in turn, each for 2 s with 3 s to recover before the next.
const TOXICS: [&str; 9] = [
    "kind: partition",
    "kind: blackhole",
    "kind: down",
    "kind: reset-peer",
    "kind: latency, latency: 200ms, jitter: 50ms",
    "kind: bandwidth, rate: 20KiB",
    "kind: slicer, slice_size: 64B, slice_delay: 1ms",
    "kind: limit-data, bytes: 10KiB",
    "kind: slow-close, delay: 1s",
];

fn every_toxic(broker: &str, group: &str) -> String {
    let faults: String = TOXICS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "  - {{ at: {}s, duration: 2s, between: [{group}, broker], {t} }}\n",
                3 + 5 * i
            )
        })
        .collect();
    // SQS: a FIFO queue keeps LocalStack's work per message low on two cores; a short
    // visibility timeout returns what a cut-off consumer held while the load still runs.
    format!(
        "name: every-toxic-{group}
brokers: [{broker}]
topology: {{ partitions: 3, sqs: {{ visibility_timeout: 5s }} }}
load: {{ rate: 40/s, keys: {{ count: 10 }}, duration: 50s }}
consumers: {{ count: 2, ack: after-process }}
faults:
{faults}run: {{ send_timeout: 10s, stall_timeout: 8s, drain_missing: 30s, drain_timeout: 90s }}
expect: {{ lost: 0, unread: 0 }}
"
    )
}

/// Longest a client may take to work again after a fault heals: a Kafka rebalance after a
/// member timed out (session timeout 6 s, then a rejoin) is the slowest seen here. The runs set
/// `stall_timeout: 8s`, so a client that wedges anyway is replaced well within it.
const RECOVERY_BOUND_S: f64 = 20.0;

fn assert_recovered_from_every_toxic(m: &Metrics, label: &str) {
    assert_eq!(
        m.delivery.final_read.outcome,
        FinalReadStatus::Complete,
        "{label}: {:?}",
        m.delivery.final_read
    );
    assert_eq!(
        (m.delivery.lost, m.delivery.unread, m.delivery.unverified),
        (0, 0, 0),
        "{label}"
    );
    assert_eq!(
        m.timing.faults.len(),
        TOXICS.len(),
        "{label}: {:?}",
        m.timing.faults
    );
    for f in &m.timing.faults {
        assert!(!f.failed, "{label}: {f:?}");
        for (side, t) in [
            ("producers", f.producers_recovered_s),
            ("consumers", f.consumers_recovered_s),
        ] {
            let t = t.unwrap_or_else(|| panic!("{label}: {side} never recovered from {f:?}"));
            assert!(
                t <= RECOVERY_BOUND_S,
                "{label}: {side} took {t:.1}s after {f:?}"
            );
        }
    }
}

fn every_toxic_on(broker: &str, group: &str) {
    let ran = run_ok(&every_toxic(broker, group), broker);
    assert_recovered_from_every_toxic(&ran.metrics, &format!("{broker}, {group}"));
}

/// Every registered broker, every toxic in turn between its consumers and the broker.
#[test]
fn every_broker_recovers_from_every_toxic_between_consumers_and_broker() {
    let _brokers = sharing_brokers();
    for_every_broker(|broker| every_toxic_on(broker, "consumers"));
}

/// Every registered broker, every toxic in turn between its producers and the broker.
#[test]
fn every_broker_recovers_from_every_toxic_between_producers_and_broker() {
    let _brokers = sharing_brokers();
    for_every_broker(|broker| every_toxic_on(broker, "producers"));
}

fn reconnects(events: &[Event], role: ClientRole) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reconnect {
                role: r, reason, ..
            } if *r == role => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// A black hole longer than the AMQP heartbeat: the consumers' connections are declared dead,
/// replaced once the hole closes, and everything is processed.
#[test]
fn rabbitmq_consumers_wedged_by_a_long_blackhole_are_replaced_and_nothing_is_lost() {
    let _brokers = sharing_brokers();
    let yaml = "name: long-blackhole
brokers: [rabbitmq]
topology: { partitions: 2 }
load: { rate: 50/s, keys: { count: 10 }, duration: 20s }
consumers: { count: 2, ack: after-process }
faults:
  - { at: 3s, duration: 10s, kind: blackhole, between: [consumers, broker] }
run: { heartbeat: 2s, connect_timeout: 3s }
expect: { lost: 0, unread: 0 }
";
    let ran = run_ok(yaml, "rabbitmq");
    let m = &ran.metrics;
    let replaced = reconnects(&ran.events, ClientRole::Consumer);
    assert!(!replaced.is_empty(), "the wedged consumers were replaced");
    assert_eq!(m.timing.reconnects as usize, replaced.len());
    assert_eq!((m.delivery.lost, m.delivery.unread), (0, 0));
    assert!(m.timing.faults[0]
        .consumers_recovered_s
        .is_some_and(|t| t < RECOVERY_BOUND_S));
}

/// A black hole that outlasts `reset_after`: the connections are reset, as an operating system
/// would, and the producer's client is replaced; its unanswered sends are indeterminate, never
/// acknowledged and lost.
#[test]
fn a_blackhole_past_reset_after_resets_connections_and_the_producer_reconnects() {
    let _brokers = sharing_brokers();
    let yaml = "name: blackhole-reset
brokers: [rabbitmq]
topology: { partitions: 2 }
load: { rate: 50/s, keys: { count: 10 }, duration: 16s }
consumers: { count: 1, ack: after-process }
faults:
  - { at: 3s, duration: 6s, reset_after: 2s, kind: blackhole, between: [producers, broker] }
expect: { lost: 0 }
";
    let ran = run_ok(yaml, "rabbitmq");
    let m = &ran.metrics;
    assert!(!reconnects(&ran.events, ClientRole::Producer).is_empty());
    assert!(
        m.timing.faults[0].detail.contains("were reset"),
        "{:?}",
        m.timing.faults[0]
    );
    assert_eq!((m.delivery.lost, m.delivery.unread), (0, 0));
    assert!(m.timing.faults[0]
        .producers_recovered_s
        .is_some_and(|t| t < RECOVERY_BOUND_S));
}

/// The stall watchdog's signal: each consumer replaces its client, records why, and the run
/// still loses nothing.
#[test]
fn a_consumer_told_to_replace_its_client_reconnects_and_loses_nothing() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: kick
brokers: [kafka]
topology: { partitions: 2 }
load: { rate: 50/s, keys: { count: 10 }, duration: 14s }
consumers: { count: 1, ack: after-process }
expect: { lost: 0, unread: 0 }
";
    let w = workload(dir.path(), "w", yaml);
    let out_dir = dir.path().join("reports");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_brokerbench"))
        .args(["run", "--quiet", "--target"])
        .arg(local_target())
        .arg("--out")
        .arg(&out_dir)
        .arg(&w)
        .current_dir(repo())
        .spawn()
        .unwrap();
    // Once the load runs, signal the consumer as the coordinator's watchdog would.
    std::thread::sleep(std::time::Duration::from_secs(8));
    let marker = out_dir.to_string_lossy().into_owned();
    let kicked = std::process::Command::new("pkill")
        .args([
            "-USR1",
            "-f",
            &format!("worker --plan {marker}.*--consumer"),
        ])
        .status()
        .unwrap();
    assert!(kicked.success(), "a consumer worker was running");
    assert!(child.wait().unwrap().success());
    let run_dir = only_run_dir(&out_dir);
    let r = brokerbench::report::RunResult::read(&run_dir.join("result.json")).unwrap();
    let m = r.brokers[0].metrics.as_ref().unwrap();
    let events = history_of(dir.path(), &r, "kafka");
    let why = reconnects(&events, ClientRole::Consumer);
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(why[0].contains("stall watchdog"), "{why:?}");
    assert_eq!(
        (m.delivery.lost, m.delivery.unread, m.timing.reconnects),
        (0, 0, 1)
    );
}

/// Real loss is still loss: an auto-ack consumer SIGKILLed with a full prefetch buffer takes
/// those messages with it, and the final read confirms they are gone from the broker.
#[test]
fn rabbitmq_auto_ack_crash_loses_the_prefetched_messages_and_the_final_read_confirms_it() {
    let _brokers = sharing_brokers();
    let yaml = "name: auto-ack-crash
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { sharding: none, single_active_consumer: false, prefetch: 200 } }
load: { rate: 200/s, keys: { count: 10 }, duration: 8s }
consumers: { count: 2, ack: auto, processing_time: 20ms }
faults:
  - { at: 4s, kind: consumer-crash, target: one }
run: { drain_missing: 5s }
";
    let ran = run_ok(yaml, "rabbitmq");
    let m = &ran.metrics;
    assert_eq!(
        m.delivery.final_read.outcome,
        FinalReadStatus::Complete,
        "{:?}",
        m.delivery.final_read
    );
    assert!(
        m.delivery.lost > 0,
        "the killed consumer's prefetched messages are gone: {m:?}"
    );
    assert_eq!(m.delivery.unverified, 0);
    assert!(m.delivery.examples.iter().any(|e| e.kind == "lost"));
}

/// A kill of tansu's memory engine wipes its log: what no consumer had processed is lost, and
/// the final read (complete, finding an empty log) says so.
#[test]
fn kafka_memory_broker_kill_loses_the_unprocessed_log_and_the_final_read_confirms_it() {
    let _brokers = owning_brokers();
    let yaml = "name: kafka-kill
brokers: [kafka]
topology: { partitions: 2 }
load: { rate: 100/s, keys: { count: 10 }, duration: 10s }
consumers: { count: 1, ack: after-process, processing_time: 30ms }
faults:
  - { at: 4s, kind: broker-kill, restart_after: 2s }
run: { send_timeout: 5s, drain_missing: 5s, drain_timeout: 20s }
";
    let dir = tempfile::tempdir().unwrap();
    let w = workload(dir.path(), "w", yaml);
    let (out, r) = run(dir.path(), &w, &[]);
    assert!(out.status.code().is_some(), "{}", stderr(&out));
    let m = r.brokers[0].metrics.as_ref().expect("metrics");
    assert_eq!(
        m.delivery.final_read.outcome,
        FinalReadStatus::Complete,
        "{:?}",
        m.delivery.final_read
    );
    assert!(
        m.delivery.lost > 0,
        "acknowledged, unprocessed and wiped by the kill: {m:?}"
    );
    assert_eq!(m.delivery.unverified, 0);
}

/// Consumers that cannot keep up leave messages behind: unread, found by the final read, and
/// exactly those the consumers never processed.
#[test]
fn slow_consumers_leave_unread_messages_that_the_final_read_finds() {
    let _brokers = sharing_brokers();
    for_every_broker(|broker| {
        let yaml = format!(
            "name: slow-consumers
brokers: [{broker}]
topology: {{ partitions: 2, sqs: {{ visibility_timeout: 5s }} }}
load: {{ rate: 100/s, keys: {{ count: 10 }}, duration: 4s }}
consumers: {{ count: 1, ack: after-process, processing_time: 40ms }}
run: {{ drain_timeout: 1s, drain_missing: 1s }}
"
        );
        let ran = run_ok(&yaml, broker);
        let m = &ran.metrics;
        assert_eq!(
            m.delivery.final_read.outcome,
            FinalReadStatus::Complete,
            "{broker}: {:?}",
            m.delivery.final_read
        );
        assert!(m.delivery.unread > 0, "{broker}: {m:?}");
        assert_eq!(m.delivery.lost, 0, "{broker}");
        assert_eq!(
            m.delivery.unread,
            m.counts.acked - m.delivery.delivered,
            "{broker}: every unprocessed value was found"
        );
        assert_eq!(
            m.timing.timeline.iter().map(|w| w.unread).sum::<u64>(),
            m.delivery.unread,
            "{broker}: the unread time series adds up"
        );
    });
}
