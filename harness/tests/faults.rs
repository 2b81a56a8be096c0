//! Faults against the real local brokers, asserting the effect each fault must have, and the
//! checkers' verdicts on what the brokers then did (loss vs. redelivery by ack mode).

mod common;

use brokerbench::history::{Event, FaultPhase, WorkerEvent};
use common::*;

/// Consumers slower than the offered load, so a crash always lands mid-processing.
fn crash_workload(broker: &str, ack: &str, topology: &str, extra_consumers: &str) -> String {
    format!(
        "name: crash-{broker}-{ack}
brokers: [{broker}]
topology:
  partitions: 2
{topology}
load:
  producers: 1
  rate: 150/s
  keys: {{ count: 8 }}
  duration: 9s
consumers:
  count: 2
  ack: {ack}
  processing_time: 20ms
{extra_consumers}
faults:
  - {{ at: 3s, kind: consumer-crash, target: one, restart_after: 1s }}
  - {{ at: 5s, kind: consumer-crash, target: all, restart_after: 1s }}
run: {{ drain_quiet: 2s, drain_missing: 12s, drain_timeout: 90s }}
"
    )
}

fn kills(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Worker { event: WorkerEvent::Killed { signal }, .. } if signal == "SIGKILL")).count()
}

#[test]
fn rabbitmq_ack_before_process_loses_messages_when_a_consumer_crashes() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let w = workload(
        dir.path(),
        "w",
        &crash_workload("rabbitmq", "before-process", "", ""),
    );
    let (out, r) = run(dir.path(), &w, &[]);
    assert!(out.status.code() == Some(0), "{}", stderr(&out));
    let m = r.brokers[0].metrics.as_ref().unwrap();
    let ev = history_of(dir.path(), &r, "rabbitmq");
    assert_eq!(kills(&ev), 3, "one, then both consumers were SIGKILLed");
    assert!(
        m.delivery.lost > 0,
        "acked-then-crashed messages must be lost, got {m:?}"
    );
    assert_eq!(
        m.delivery.lost, m.delivery.received_not_processed,
        "every loss is a message received, acked, never processed"
    );
    assert!(
        m.timing
            .faults
            .iter()
            .all(|f| !f.failed && f.end_s.is_some()),
        "{:?}",
        m.timing.faults
    );
}

#[test]
fn rabbitmq_ack_after_process_redelivers_with_the_flag_and_loses_nothing() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let w = workload(
        dir.path(),
        "w",
        &crash_workload("rabbitmq", "after-process", "", ""),
    );
    let (out, r) = run(dir.path(), &w, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = r.brokers[0].metrics.as_ref().unwrap();
    assert_eq!(m.delivery.lost, 0);
    assert!(
        m.delivery.redeliveries > 0,
        "unacked messages of the killed consumers come back"
    );
    let ev = history_of(dir.path(), &r, "rabbitmq");
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::Deliver {
                redelivered: true,
                ..
            }
        )),
        "RabbitMQ marks them redelivered"
    );
    // A fault's window is on record: start at the kill, stop at the replacement.
    let starts = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Fault {
                    phase: FaultPhase::Start,
                    ..
                }
            )
        })
        .count();
    let stops = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Fault {
                    phase: FaultPhase::Stop,
                    ..
                }
            )
        })
        .count();
    assert_eq!((starts, stops), (2, 2));
}

/// Kafka auto-commit commits offsets once a second, so a crash replays up to a second of messages
/// the consumer had already processed: duplicates of effect, unless the consumer dedupes.
fn auto_commit_crash(dedupe: &str) -> (u64, u64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let yaml = crash_workload(
        "kafka",
        "auto",
        "  kafka: { session_timeout: 3s }",
        &format!("  dedupe: {dedupe}"),
    );
    let w = workload(dir.path(), "w", &yaml);
    let (out, r) = run(dir.path(), &w, &[]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let m = r.brokers[0].metrics.as_ref().unwrap();
    // Commits do happen: a crash replays about a second of processing (~100 messages here), not
    // everything since the start. (When processed offsets were never stored for the auto-commit,
    // the crashes replayed everything processed before them: ~830 of ~1350 deliveries.)
    assert!(
        m.delivery.redeliveries * 4 < m.delivery.delivered,
        "{} redeliveries of {} delivered: is auto-commit committing?",
        m.delivery.redeliveries,
        m.delivery.delivered
    );
    (
        m.delivery.redeliveries,
        m.delivery.effective_duplicates,
        m.delivery.dedupe_skips,
        m.delivery.delivered,
    )
}

#[test]
fn without_dedupe_replayed_messages_are_processed_twice() {
    let _brokers = sharing_brokers();
    let (redeliveries, effective, skips, _) = auto_commit_crash("none");
    assert!(
        redeliveries > 0,
        "auto-commit replays processed messages after a crash"
    );
    // The message being processed at the kill comes back too, but it was never processed.
    assert!(
        effective > 0 && effective <= redeliveries,
        "{effective} of {redeliveries} redeliveries processed again"
    );
    assert_eq!(skips, 0);
}

#[test]
fn idempotent_consumer_turns_redeliveries_into_skips() {
    let _brokers = sharing_brokers();
    let (redeliveries, effective, skips, delivered) = auto_commit_crash("processed-ids");
    assert!(redeliveries > 0, "the broker still redelivers");
    assert!(skips > 0, "redeliveries of processed messages are skipped");
    assert_eq!(
        effective, 0,
        "nothing is processed twice behind the processed-ids table"
    );
    assert!(delivered > 500);
}

#[test]
fn kafka_consumer_crash_before_commit_duplicates_but_does_not_lose() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let w = workload(
        dir.path(),
        "w",
        &crash_workload(
            "kafka",
            "after-process",
            "  kafka: { session_timeout: 3s }",
            "",
        ),
    );
    let (out, r) = run(dir.path(), &w, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = r.brokers[0].metrics.as_ref().unwrap();
    assert_eq!(m.delivery.lost, 0);
    assert!(
        m.delivery.redeliveries > 0,
        "uncommitted messages are delivered again after the rebalance: {m:?}"
    );
    assert_eq!(
        m.delivery.duplicates_stored, 0,
        "redeliveries come from the same offsets"
    );
    // The dead member keeps its partitions until the session timeout: a latency spike, not loss.
    assert!(
        m.timing.end_to_end_latency.max > 2.0,
        "{:?}",
        m.timing.end_to_end_latency
    );
}

#[test]
fn sqs_consumer_crash_redelivers_after_the_visibility_timeout() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let w = workload(
        dir.path(),
        "w",
        &crash_workload(
            "sqs",
            "after-process",
            "  sqs: { fifo: false, visibility_timeout: 2s, wait_time: 1s }",
            "",
        ),
    );
    let (out, r) = run(dir.path(), &w, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = r.brokers[0].metrics.as_ref().unwrap();
    assert_eq!(m.delivery.lost, 0);
    let ev = history_of(dir.path(), &r, "sqs");
    let again: Vec<u32> = ev
        .iter()
        .filter_map(|e| {
            if let Event::Deliver { receive_count, .. } = e {
                (*receive_count > 1).then_some(*receive_count)
            } else {
                None
            }
        })
        .collect();
    assert!(
        !again.is_empty(),
        "messages received by the killed consumers come back with a higher receive count"
    );
    // A redelivery is a delivery of an id already on record. A message the killed consumer had
    // received but not yet recorded comes back with a higher receive count and is not one.
    let ids: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Deliver { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(m.delivery.redeliveries as usize, ids.len() - distinct.len());
}

#[test]
fn paused_consumer_stalls_its_queue_for_the_pause() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: pause
brokers: [rabbitmq]
topology: { partitions: 2, rabbitmq: { single_active_consumer: true } }
load: { rate: 100/s, keys: { count: 8 }, duration: 8s }
consumers: { count: 1, ack: after-process }
faults:
  - { at: 2s, kind: pause, target: all, duration: 3s }
run: { drain_quiet: 1s }
";
    let w = workload(dir.path(), "w", yaml);
    let (out, r) = run(dir.path(), &w, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let m = r.brokers[0].metrics.as_ref().unwrap();
    assert_eq!(m.delivery.lost, 0);
    assert!(
        m.timing.end_to_end_latency.max >= 2.5,
        "messages waited out the SIGSTOP: {:?}",
        m.timing.end_to_end_latency
    );
    assert!(
        m.timing.consumer_availability < 1.0,
        "seconds with a backlog and no progress are counted"
    );
    assert_eq!(m.timing.faults.len(), 1);
    let f = &m.timing.faults[0];
    assert!((f.end_s.unwrap() - f.start_s - 3.0).abs() < 0.5, "{f:?}");
}

#[test]
fn rabbitmq_broker_kill_and_restart_fails_sends_then_recovers() {
    let _brokers = owning_brokers();
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: broker-kill
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { queue_type: classic, sharding: none } }
load: { rate: 50/s, keys: { count: 4 }, duration: 25s }
consumers: { count: 1, ack: after-process }
faults:
  - { at: 4s, kind: broker-kill, restart_after: 1s }
run: { drain_quiet: 2s, send_timeout: 5s }
";
    let w = workload(dir.path(), "w", yaml);
    let (out, r) = run(dir.path(), &w, &[]);
    // Expectations are absent; the run itself must succeed and be recorded.
    assert!(out.status.success(), "{}", stderr(&out));
    let m = r.brokers[0].metrics.as_ref().unwrap();
    let f = &m.timing.faults[0];
    assert!(!f.failed, "{f:?}");
    assert!(
        f.detail.contains("answered again"),
        "the broker's return is on record: {f:?}"
    );
    assert!(
        m.counts.failed + m.counts.indeterminate > 0,
        "sends during the outage must fail: {m:?}"
    );
    assert!(m.timing.availability < 1.0);
    // After the restart, sends succeed again and are delivered.
    let last = m
        .timing
        .timeline
        .iter()
        .rev()
        .find(|w| w.acked > 0)
        .map(|w| w.second)
        .unwrap_or(0);
    assert!(
        last as f64 > f.end_s.unwrap() + 2.0,
        "sends succeeded after the broker came back (last ok second {last})"
    );
    assert!(m.timing.recovery_time.is_some());

    // What the broker costs is sampled about once a second throughout, and followed to the new
    // process the restart started (the old one is dead: any sample after it is the new one's).
    let cost = m
        .cost
        .broker_cost
        .as_ref()
        .expect("the local target names the broker's pid file");
    assert!(
        cost.cpu_cores_mean > 0.0 && cost.rss_peak_bytes > 10 << 20,
        "{cost:?}"
    );
    let usage: Vec<u64> = history_of(dir.path(), &r, "rabbitmq")
        .iter()
        .filter_map(|e| match e {
            Event::BrokerUsage { t, .. } => Some(*t),
            _ => None,
        })
        .collect();
    let mut gaps: Vec<u64> = usage.windows(2).map(|p| p[1] - p[0]).collect();
    gaps.sort();
    let median_gap = gaps[gaps.len() / 2] as f64 / 1e9;
    assert!(
        (0.9..1.2).contains(&median_gap),
        "one sample a second: median gap {median_gap} s"
    );
    // RabbitMQ takes 6 to 20 s to answer after `start`: what is left after it varies, and
    // every second of it must be sampled.
    let restarted = m.timing.load_start_ns + (f.end_s.unwrap() * 1e9) as u64;
    let after = usage.iter().filter(|&&t| t > restarted).count();
    let span_s = usage.last().map_or(0, |&t| t.saturating_sub(restarted)) as f64 / 1e9;
    assert!(
        after >= 3 && after as f64 >= 0.8 * span_s,
        "{after} samples in the {span_s:.1} s after the restart, of {}",
        usage.len()
    );
    assert!(
        m.timing
            .timeline
            .iter()
            .any(|w| w.broker_cpu_cores.is_some()),
        "the timeline carries them"
    );
}

#[test]
fn missing_control_command_is_refused_before_running() {
    let _brokers = sharing_brokers();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.yaml");
    std::fs::write(
        &target,
        "name: bare\nrabbitmq: { url: amqp://guest:guest@127.0.0.1:5672/%2f, product: x }\n",
    )
    .unwrap();
    let w = workload(dir.path(), "w", "name: w\nbrokers: [rabbitmq]\nload: { rate: 10/s, duration: 5s }\nfaults:\n  - { at: 1s, kind: broker-pause, duration: 1s }\n");
    let out = brokerbench(&[
        "run",
        "--target",
        target.to_str().unwrap(),
        "--out",
        dir.path().join("r").to_str().unwrap(),
        w.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("needs the `pause` control command") && err.contains("rabbitmq.control.pause"),
        "{err}"
    );
    assert!(!dir.path().join("r").exists());
}

#[test]
fn producer_crash_kills_sends_in_flight_and_a_replacement_takes_over() {
    let _brokers = sharing_brokers();
    // Confirms held back 400 ms by the proxy keep ~20 sends in flight per producer, so the
    // SIGKILL always cuts some off after they reached the broker.
    let yaml = "name: producer-crash
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { sharding: none } }
load: { producers: 2, rate: 100/s, keys: { count: 4 }, duration: 8s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: latency, between: [producers, broker], direction: downstream, latency: 400ms, at: 1s, duration: 4s }
  - { kind: producer-crash, at: 3s, target: one, restart_after: 1s }
run: { drain_quiet: 2s }
";
    let ran = run_ok(yaml, "rabbitmq");
    let (m, events) = (&ran.metrics, &ran.events);
    let killed = events.iter().any(|e| {
        matches!(e, Event::ProducerWorker { event: WorkerEvent::Killed { signal }, .. } if signal == "SIGKILL")
    });
    assert!(killed, "a producer process was SIGKILLed");
    let replacement_acked = events
        .iter()
        .any(|e| matches!(e, Event::SendOk { id, .. } if id.producer == 2));
    assert!(replacement_acked, "the replacement (producer 2) sends");
    assert!(
        m.counts.indeterminate > 0,
        "sends in flight at the kill have no outcome: {m:?}"
    );
    assert!(
        m.delivery.recovered > 0,
        "some of them reached the broker anyway: {m:?}"
    );
    assert_eq!(
        m.delivery.unexpected, 0,
        "every delivered message's send is on record: {m:?}"
    );
    assert_eq!(m.delivery.lost, 0, "{m:?}");
}

#[test]
fn paused_producer_catches_up_and_its_latency_shows_the_pause() {
    let _brokers = sharing_brokers();
    let yaml = "name: producer-pause
brokers: [rabbitmq]
topology: { partitions: 1, rabbitmq: { sharding: none } }
load: { producers: 1, rate: 100/s, keys: { count: 4 }, duration: 6s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: pause, workers: producers, target: all, at: 2s, duration: 2s }
run: { drain_quiet: 2s }
";
    let ran = run_ok(yaml, "rabbitmq");
    let (m, events) = (&ran.metrics, &ran.events);
    let f = &m.timing.faults[0];
    assert!(f.detail.contains("SIGSTOP producer 0"), "{f:?}");
    let stopped_at = |e: &Event| {
        matches!(
            e,
            Event::Fault {
                phase: FaultPhase::Start,
                ..
            }
        )
    };
    let resumed_at = |e: &Event| {
        matches!(
            e,
            Event::Fault {
                phase: FaultPhase::Stop,
                ..
            }
        )
    };
    let start = events.iter().find(|e| stopped_at(e)).unwrap().time();
    let stop = events.iter().find(|e| resumed_at(e)).unwrap().time();
    let sent_while_stopped = events
        .iter()
        // (SIGCONT goes out just before the stop is recorded: leave a margin at both ends.)
        .filter(|e| matches!(e, Event::SendInvoke { t, .. } if *t > start + 100_000_000 && *t + 100_000_000 < stop))
        .count();
    assert_eq!(sent_while_stopped, 0, "a stopped producer sends nothing");
    // Open loop: the sends it missed are made on resume and measured from their intended times.
    assert_eq!(m.counts.sent, 600, "{m:?}");
    assert!(m.timing.publish_latency.max >= 1.5, "{m:?}");
    assert_eq!(m.delivery.lost, 0, "{m:?}");
}

#[test]
fn kafka_broker_pause_holds_every_send_until_it_resumes() {
    let _brokers = owning_brokers();
    let yaml = "name: broker-pause
brokers: [kafka]
topology: { partitions: 3 }
load: { rate: 100/s, keys: { count: 6 }, duration: 7s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: broker-pause, at: 2s, duration: 2s }
run: { drain_quiet: 2s }
";
    let ran = run_ok(yaml, "kafka");
    let (m, events) = (&ran.metrics, &ran.events);
    let f = &m.timing.faults[0];
    assert!(!f.failed, "{f:?}");
    let start = events
        .iter()
        .find(|e| {
            matches!(
                e,
                Event::Fault {
                    phase: FaultPhase::Start,
                    ..
                }
            )
        })
        .unwrap()
        .time();
    let stop = events
        .iter()
        .find(|e| {
            matches!(
                e,
                Event::Fault {
                    phase: FaultPhase::Stop,
                    ..
                }
            )
        })
        .unwrap()
        .time();
    let second = 1_000_000_000;
    let answered_while_stopped = events.iter().any(|e| {
        matches!(e, Event::SendOk { t, .. } | Event::Deliver { t, .. }
            if *t > start + second / 2 && *t + second / 2 < stop)
    });
    assert!(!answered_while_stopped, "a stopped broker answers nothing");
    // Sends wait rather than fail: the broker is slow, not gone.
    assert_eq!(m.counts.failed + m.counts.indeterminate, 0, "{m:?}");
    assert!(m.timing.publish_latency.max >= 1.5, "{m:?}");
    assert_eq!(m.delivery.lost, 0, "{m:?}");
}

/// A RabbitMQ broker that stops answering without closing the connection (SIGSTOP here, the
/// minority side of a partition in a cluster) gets no say over how long a send waits: AMQP has
/// no deadline for a confirm, so the harness gives each one `run.send_timeout` and records
/// what is unanswered by then as indeterminate, while the broker is still stopped.
#[test]
fn rabbitmq_confirms_unanswered_within_send_timeout_are_indeterminate_on_time() {
    let _brokers = owning_brokers();
    let yaml = "name: confirm-timeout
brokers: [rabbitmq]
load: { rate: 50/s, keys: { count: 4 }, duration: 10s, warmup: 0s }
consumers: { count: 1 }
faults:
  - { kind: broker-pause, at: 2s, duration: 6s }
run: { send_timeout: 2s, drain_quiet: 2s }
";
    let ran = run_ok(yaml, "rabbitmq");
    let (m, events) = (&ran.metrics, &ran.events);
    let invoked: std::collections::HashMap<_, u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::SendInvoke { t, id, .. } => Some((*id, *t)),
            _ => None,
        })
        .collect();
    let timed_out: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::SendInfo { t, id, error } if error.contains("no confirm within") => {
                Some((invoked[id], *t))
            }
            _ => None,
        })
        .collect();
    // About 4 s of sends (the pause less the timeout) time out while the broker is stopped.
    assert!(
        timed_out.len() >= 100,
        "{} timed out; {m:?}",
        timed_out.len()
    );
    let second = 1_000_000_000;
    for (sent, resolved) in &timed_out {
        let waited = resolved - sent;
        assert!(
            (2 * second..3 * second).contains(&waited),
            "a send given up {:.2} s after it was made, with send_timeout 2s",
            waited as f64 / 1e9
        );
    }
    // Given up on, not lost: what the broker stored after it resumed is found.
    assert_eq!(m.delivery.lost, 0, "{m:?}");
}

/// Consumers scaled out from 2 to 4 under load and back to 2 when the window ends, on every
/// registered broker: nothing is lost; the new consumers join with fresh indices and leave
/// gracefully (they exit by themselves: no SIGKILL); the history records both steps. Where the
/// broker has shards to hand out, it says who took what: Kafka rebalances its partitions over
/// the four, RabbitMQ's single active consumers keep the newcomers standing by.
#[test]
fn consumers_scaled_out_and_back_in_under_load_lose_nothing_and_leave_gracefully() {
    let _brokers = sharing_brokers();
    for_every_broker(|broker| {
        let yaml = format!(
            "name: it-scale-{broker}
brokers: [{broker}]
topology: {{ partitions: 6 }}
load: {{ rate: 100/s, keys: {{ count: 60 }}, duration: 16s }}
consumers: {{ count: 2, ack: after-process }}
faults:
  - {{ at: 4s, kind: consumer-scale, to: 4, duration: 6s }}
run: {{ drain_quiet: 2s }}
expect: {{ lost: 0 }}
"
        );
        let ran = run_ok(&yaml, broker);
        let m = &ran.metrics;
        assert_eq!((m.delivery.lost, m.delivery.unverified), (0, 0), "{broker}");
        let f = &m.timing.faults[0];
        assert!(!f.failed, "{broker}: {f:?}");
        assert!(
            f.detail.contains("2 to 4: started consumer 2, consumer 3"),
            "{broker}: {f:?}"
        );
        let said: Vec<String> = ran
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Fault {
                    phase: FaultPhase::Stop,
                    detail,
                    ..
                } => Some(detail.clone()),
                _ => None,
            })
            .collect();
        assert!(
            said.iter()
                .any(|d| d.contains("stopped consumer 2 (pid") && d.contains("consumer 3 (pid")),
            "{broker}: {said:?}"
        );
        assert_eq!(kills(&ran.events), 0, "{broker}: a consumer was SIGKILLed");
        let ready: std::collections::BTreeSet<u32> = ran
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Worker {
                    consumer,
                    event: WorkerEvent::Ready { .. },
                    ..
                } => Some(*consumer),
                _ => None,
            })
            .collect();
        assert_eq!(ready, [0, 1, 2, 3].into(), "{broker}");
        let took = |c: u32| m.shards.shard_load.iter().any(|l| l.consumer == c);
        match broker {
            "kafka" => assert!(took(2) && took(3), "{broker}: {:?}", m.shards),
            "rabbitmq" => assert_eq!(m.shards.idle_consumers, [2, 3], "{broker}"),
            _ => {}
        }
        scaling_was_measured_as_rebalances(broker, m);
    });
}

/// The scale-out and the scale-in of the test above, as the rebalance checker saw them.
fn scaling_was_measured_as_rebalances(broker: &str, m: &brokerbench::check::Metrics) {
    let r = &m.rebalance;
    // Out (2 → 4), then in (4 → 2): as one rebalance each, or the leaves as one each when
    // the first was over before the second began (SQS: no shard moves).
    let mut changes: Vec<&str> = r
        .rebalances
        .iter()
        .flat_map(|x| x.changes.iter().map(String::as_str))
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            "consumer 2 joined",
            "consumer 2 left",
            "consumer 3 joined",
            "consumer 3 left"
        ],
        "{broker}: {r:?}"
    );
    assert!(r.rebalances.iter().all(|x| x.over), "{broker}: {r:?}");
    assert!(r.rebalances[0]
        .changes
        .iter()
        .all(|c| c.ends_with("joined")));
    let pause = r.max_rebalance_pause.expect("measured");
    match broker {
        // An eager rebalance stops every member until the group has settled: seconds, and
        // bounded by the session timeout's few multiples.
        "kafka" => {
            assert!((0.5..20.0).contains(&pause), "{broker}: {r:?}");
            // Graceful leaves and after-process commits: nothing is read twice.
            assert_eq!(r.rebalance_redeliveries, 0, "{broker}: {r:?}");
        }
        // The newcomers only stand by, and the leavers were the standbys: nothing stops.
        "rabbitmq" => assert!(pause < 2.0, "{broker}: {r:?}"),
        _ => {}
    }
    // Who consumed which shard when: the newcomers' spans lie inside their 6 s of membership.
    if broker == "kafka" {
        for span in m.shards.shard_spans.iter().filter(|s| s.consumer >= 2) {
            assert!(span.from >= 4.0 && span.to <= 12.0, "{broker}: {span:?}");
        }
    }
}

#[test]
fn a_crashed_kafka_member_is_a_rebalance_whose_new_owner_reads_again_what_was_not_committed() {
    let _brokers = sharing_brokers();
    // After-process commits, one per polled batch, by consumers kept busy (50 msg/s each at
    // 18 ms per message): a batch is always under way, and a crash leaves its processed part
    // uncommitted. (With `ack: auto` on tansu, a crash repeated nothing in a trial run.)
    let yaml = "name: it-crash-rebalance
brokers: [kafka]
topology: { partitions: 4, kafka: { session_timeout: 3s } }
load: { rate: 100/s, keys: { count: 40 }, duration: 14s }
consumers: { count: 2, ack: after-process, processing_time: 18ms }
faults:
  - { at: 4s, kind: consumer-crash, target: all, restart_after: 1s }
run: { drain_quiet: 2s }
expect: { lost: 0 }
";
    let ran = run_ok(yaml, "kafka");
    let r = &ran.metrics.rebalance;
    assert_eq!(r.rebalances.len(), 1, "{r:?}");
    let one = &r.rebalances[0];
    let mut changes: Vec<&str> = one.changes.iter().map(String::as_str).collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            "consumer 0 crashed",
            "consumer 1 crashed",
            "consumer 2 joined",
            "consumer 3 joined"
        ],
        "{r:?}"
    );
    assert!(one.over, "{r:?}");
    // Nobody consumed from the crash until the replacements had their partitions.
    assert!(one.pause >= 1.0, "{r:?}");
    assert!(r.rebalance_redeliveries > 0, "{r:?}");
    assert_eq!(
        r.rebalance_redeliveries, ran.metrics.delivery.redeliveries,
        "{r:?}"
    );
}

/// The article's "asynchronous messaging for availability": the consumers taken away for 10 s
/// (a scale to 0) while the producers go on. The broker accepts everything meanwhile, the
/// backlog it holds is about the rate times the outage, and the consumers drain it once back.
#[test]
fn with_the_consumers_away_the_producers_are_unaffected_and_the_backlog_drains() {
    let _brokers = owning_brokers();
    for_every_broker(|broker| {
        let yaml = format!(
            "name: it-outage-{broker}
brokers: [{broker}]
topology: {{ partitions: 2 }}
load: {{ rate: 100/s, keys: {{ count: 20 }}, duration: 22s }}
consumers: {{ count: 2, ack: after-process }}
faults:
  - {{ at: 5s, kind: consumer-scale, to: 0, duration: 10s }}
run: {{ drain_quiet: 2s }}
expect: {{ lost: 0 }}
"
        );
        let ran = run_ok(&yaml, broker);
        let m = &ran.metrics;
        let d = &m.decoupling;
        assert_eq!(d.consumer_outages.len(), 1, "{broker}: {d:?}");
        let o = &d.consumer_outages[0];
        // Out from the scale to 0 until the newcomers had joined and processed again.
        assert!(o.from >= 4.0 && o.from <= 6.0, "{broker}: {o:?}");
        assert!(o.to - o.from >= 9.0, "{broker}: {o:?}");
        assert_eq!(o.producer_availability, Some(1.0), "{broker}: {o:?}");
        assert!((800..=2_000).contains(&o.backlog), "{broker}: {o:?}");
        // Every send in the outage succeeded; a synchronous caller's would all have failed.
        assert_eq!(d.sync_failed_requests, o.accepted, "{broker}: {d:?}");
        let chain = d.sync_chain_availability.expect("measured");
        assert!(
            chain < 0.75 && m.timing.availability == 1.0,
            "{broker}: {d:?}"
        );
        if broker == "kafka" && m.delivery.unread > 0 {
            // The local Kafka (tansu 0.6.0) sometimes never lets the fresh members in after
            // every member before them left: their JoinGroup keeps naming a departed leader
            // (seen 2026-12-08 in most trials under the test suite, rarely alone). Then nothing
            // drained, and the section must say so.
            assert!(o.drained_after.is_none(), "{broker}: {o:?}");
            eprintln!("kafka: the group did not re-form after a scale to 0 (tansu)");
            return;
        }
        assert_eq!(m.delivery.unread, 0, "{broker}");
        assert!(o.drained_after.is_some_and(|s| s < 8.0), "{broker}: {o:?}");
        // Taken away on purpose: the seconds nobody ran do not count against the broker (they
        // would bring it to about 0.5; the newcomers' joining still counts: Kafka's took 3 s).
        assert!(
            m.timing.consumer_availability > 0.65,
            "{broker}: {:?}",
            m.timing.consumer_availability
        );
    });
}
