//! Network faults through the fault proxy against the real local brokers. Each run asserts the
//! effect its fault must have on the broker's clients, then that the run recovers and loses
//! nothing once the fault heals. (Each toxic's byte-level behaviour is tested in the library
//! against an echo server; these show the proxy really stands between clients and brokers.)

mod common;

use brokerbench::history::{Event, FaultPhase};
use common::*;

const SEC: u64 = 1_000_000_000;

/// (start, stop) of the fault with this kind, from the history.
fn window(events: &[Event], kind: &str) -> (u64, u64) {
    let at = |phase: FaultPhase| {
        events
            .iter()
            .find_map(|e| match e {
                Event::Fault {
                    t,
                    kind: k,
                    phase: p,
                    ..
                } if k == kind && *p == phase => Some(*t),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{kind} {phase:?} is in the history"))
    };
    (at(FaultPhase::Start), at(FaultPhase::Stop))
}

fn deliveries_between(events: &[Event], from: u64, to: u64) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Deliver { t, .. } if *t > from && *t < to))
        .count()
}

fn acks_between(events: &[Event], from: u64, to: u64) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::SendOk { t, .. } if *t > from && *t < to))
        .count()
}

fn acks_after(events: &[Event], from: u64) -> usize {
    acks_between(events, from, u64::MAX)
}

#[test]
fn kafka_every_broker_connection_goes_through_the_proxy() {
    // Produce requests only slow down if the client's connection to the partition leader (an
    // address it learned from Metadata) goes through the proxy; consumers only stop receiving
    // during the partition if their fetch and coordinator connections do.
    let yaml = "name: kafka-proxy
brokers: [kafka]
topology: { partitions: 3 }
load: { rate: 100/s, keys: { count: 12 }, duration: 10s, warmup: 0s }
consumers: { count: 2 }
faults:
  - { kind: latency, between: [producers, broker], direction: downstream, latency: 250ms, at: 0s, duration: 10s }
  - { kind: partition, between: [consumers, broker], at: 4s, duration: 3s }
run: { drain_quiet: 2s }
expect: { lost: 0, p50_publish: \"> 250ms\" }
";
    let ran = run_ok(yaml, "kafka");
    let (m, events) = (&ran.metrics, &ran.events);
    assert!(
        m.timing.faults.iter().all(|f| !f.failed),
        "{:?}",
        m.timing.faults
    );
    let (start, stop) = window(events, "partition");
    assert_eq!(
        deliveries_between(events, start + SEC / 2, stop),
        0,
        "nothing reaches partitioned consumers"
    );
    assert!(
        m.delivery.delivered >= m.counts.acked,
        "all delivered after it healed: {m:?}"
    );
}

#[test]
fn rabbitmq_down_fails_sends_until_it_heals() {
    let yaml = "name: rabbit-down
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { sharding: none } }
load: { rate: 50/s, keys: { count: 4 }, duration: 10s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: down, between: [producers, broker], at: 3s, duration: 2s }
run: { drain_quiet: 2s, send_timeout: 3s }
";
    let ran = run_ok(yaml, "rabbitmq");
    let (m, events) = (&ran.metrics, &ran.events);
    assert!(
        m.counts.failed + m.counts.indeterminate > 0,
        "sends fail while the proxy is down: {m:?}"
    );
    let (start, stop) = window(events, "down");
    let acked_during = acks_between(events, start + SEC / 2, stop);
    assert_eq!(acked_during, 0, "no send succeeds while down");
    assert!(
        acks_after(events, stop + SEC) > 0,
        "sends succeed again after it heals"
    );
    assert_eq!(m.delivery.lost, 0, "{m:?}");
}

#[test]
fn rabbitmq_reset_consumers_reconnect_and_unacked_messages_come_back() {
    // Slow consumers with a deep prefetch always hold unacknowledged messages.
    let yaml = "name: rabbit-reset
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { sharding: none, prefetch: 50 } }
load: { rate: 100/s, keys: { count: 4 }, duration: 8s, warmup: 0s }
consumers: { count: 1, ack: after-process, processing_time: 15ms }
faults:
  - { kind: reset-peer, between: [consumers, broker], at: 3s, duration: 1s }
run: { drain_quiet: 2s }
";
    let ran = run_ok(yaml, "rabbitmq");
    let (m, events) = (&ran.metrics, &ran.events);
    let (_, stop) = window(events, "reset-peer");
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Deliver {
                redelivered: true,
                ..
            }
        )),
        "unacked messages come back flagged as redelivered: {m:?}"
    );
    assert!(
        deliveries_between(events, stop, u64::MAX) > 0,
        "the consumer reconnected"
    );
    assert_eq!(m.delivery.lost, 0, "{m:?}");
    assert!(m.delivery.redeliveries > 0, "{m:?}");
}

#[test]
fn sqs_partitioned_consumers_receive_nothing_until_it_heals() {
    let yaml = "name: sqs-partition
brokers: [sqs]
topology: { partitions: 1, sqs: { fifo: false, wait_time: 1s } }
load: { rate: 50/s, keys: { count: 4 }, duration: 9s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: partition, between: [consumers, broker], at: 3s, duration: 3s }
run: { drain_quiet: 2s }
";
    let ran = run_ok(yaml, "sqs");
    let (m, events) = (&ran.metrics, &ran.events);
    let (start, stop) = window(events, "partition");
    assert_eq!(deliveries_between(events, start + SEC / 2, stop), 0);
    assert!(deliveries_between(events, stop, u64::MAX) > 0);
    assert_eq!(m.delivery.lost, 0, "{m:?}");
    // Sends were never cut off: producers have their own path to the broker.
    assert_eq!(m.counts.failed + m.counts.indeterminate, 0, "{m:?}");
}

#[test]
fn rabbitmq_slicer_and_bandwidth_slow_the_stream_without_breaking_it() {
    // Sliced frames must reassemble in the broker's parser; 20 kB/s to consumers is less than the
    // ~60 kB/s the load needs, so a backlog builds while it lasts.
    let yaml = "name: rabbit-slow
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { sharding: none } }
load: { rate: 100/s, keys: { count: 4 }, message_size: 512B, duration: 8s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: slicer, between: [producers, broker], slice_size: 7B, slice_delay: 1ms, at: 1s, duration: 5s }
  - { kind: bandwidth, between: [consumers, broker], direction: downstream, rate: 20KB, at: 2s, duration: 3s }
run: { drain_quiet: 2s }
";
    let m = &run_ok(yaml, "rabbitmq").metrics;
    assert_eq!(
        m.counts.failed + m.counts.indeterminate,
        0,
        "sliced sends all succeed: {m:?}"
    );
    assert_eq!(m.delivery.lost, 0, "{m:?}");
    assert!(
        m.timing.end_to_end_latency.max > 1.0,
        "the bandwidth limit built a backlog: {m:?}"
    );
}

#[test]
fn rabbitmq_blackhole_holds_sends_and_they_are_confirmed_once_it_heals() {
    // A black hole drops packets; TCP keeps what it sent and delivers it, in order, once the hole
    // closes. So publishes made during it are confirmed after it, none is lost, and no confirm
    // can be credited to the wrong message (a stream with frames cut out would do that).
    let yaml = "name: rabbit-blackhole
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { sharding: none } }
load: { rate: 50/s, keys: { count: 4 }, duration: 10s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: blackhole, between: [producers, broker], direction: upstream, at: 2s, duration: 2s }
run: { drain_quiet: 2s }
expect: { lost: 0 }
";
    let ran = run_ok(yaml, "rabbitmq");
    let (m, events) = (&ran.metrics, &ran.events);
    let (start, stop) = window(events, "blackhole");
    let acked_during = acks_between(events, start + SEC / 2, stop);
    assert_eq!(
        acked_during, 0,
        "nothing sent into the blackhole is confirmed"
    );
    assert!(acks_after(events, stop) > 0, "sends succeed again");
    assert_eq!(
        (
            m.counts.failed,
            m.counts.indeterminate,
            m.delivery.recovered
        ),
        (0, 0, 0),
        "{m:?}"
    );
    assert_eq!(
        (m.delivery.lost, m.delivery.unread, m.delivery.unexpected),
        (0, 0, 0),
        "{m:?}"
    );
    assert_eq!(
        m.delivery.delivered, m.counts.sent,
        "everything held was delivered"
    );
    let f = &m.timing.faults[0];
    assert!(f.producers_recovered_s.is_some_and(|t| t < 2.0), "{f:?}");
}

#[test]
fn rabbitmq_limit_data_keeps_cutting_connections_until_it_heals() {
    let yaml = "name: rabbit-limit
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { sharding: none } }
load: { rate: 100/s, keys: { count: 4 }, message_size: 512B, duration: 9s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: limit-data, between: [producers, broker], direction: upstream, bytes: 8KB, at: 2s, duration: 3s }
  - { kind: slow-close, between: [producers, broker], delay: 200ms, at: 2s, duration: 3s }
run: { drain_quiet: 2s, send_timeout: 3s }
";
    let ran = run_ok(yaml, "rabbitmq");
    let (m, events) = (&ran.metrics, &ran.events);
    let (_, stop) = window(events, "limit-data");
    assert!(
        m.counts.failed + m.counts.indeterminate > 0,
        "sends fail as connections are cut: {m:?}"
    );
    assert!(acks_after(events, stop + SEC) > 0, "sends succeed again");
    assert_eq!(m.delivery.lost, 0, "{m:?}");
}
