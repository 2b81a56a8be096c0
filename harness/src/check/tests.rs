//! Synthetic histories with known anomalies; every count is asserted exactly.

use super::*;
use crate::history::{Event, FaultPhase, FinalReadOutcome, Phase, Position};
use crate::message::MsgId;

const MS: u64 = 1_000_000;

/// Builds a history one operation at a time, 1 ms apart.
struct H {
    ev: Vec<Event>,
    t: u64,
}

fn id(p: u32, k: u32, s: u64) -> MsgId {
    MsgId {
        producer: p,
        key: k,
        seq: s,
    }
}

impl H {
    fn new() -> H {
        H {
            ev: vec![Event::Phase {
                t: 0,
                phase: Phase::LoadStart {
                    warmup_ns: 0,
                    duration_ns: 10_000 * MS,
                },
            }],
            t: 0,
        }
    }
    fn tick(&mut self) -> u64 {
        self.t += MS;
        self.t
    }
    fn invoke(&mut self, i: MsgId) {
        let t = self.tick();
        self.ev.push(Event::SendInvoke {
            t,
            id: i,
            intended: t,
        });
    }
    fn ok(&mut self, i: MsgId) {
        self.invoke(i);
        let t = self.tick();
        self.ev.push(Event::SendOk {
            t,
            id: i,
            intended: t - MS,
            pos: Position::Unknown,
        });
    }
    fn fail(&mut self, i: MsgId) {
        self.invoke(i);
        let t = self.tick();
        self.ev.push(Event::SendFail {
            t,
            id: i,
            error: "nack".into(),
        });
    }
    fn info(&mut self, i: MsgId) {
        self.invoke(i);
        let t = self.tick();
        self.ev.push(Event::SendInfo {
            t,
            id: i,
            error: "timeout".into(),
        });
    }
    fn receive(&mut self, c: u32, i: MsgId, pos: Position) {
        let t = self.tick();
        self.ev.push(Event::Deliver {
            t,
            consumer: c,
            id: i,
            intended: 0,
            pos,
            redelivered: false,
            receive_count: 1,
        });
    }
    fn deliver_at(&mut self, c: u32, i: MsgId, pos: Position) {
        self.receive(c, i, pos);
        let t = self.tick();
        self.ev.push(Event::Processed {
            t,
            consumer: c,
            id: i,
        });
    }
    fn deliver(&mut self, c: u32, i: MsgId) {
        self.deliver_at(c, i, Position::Unknown);
    }
    /// The final read found this value still stored.
    fn stored(&mut self, i: MsgId, pos: Position) {
        let t = self.tick();
        self.ev.push(Event::FinalRead {
            t,
            id: i,
            intended: i.seq * MS,
            pos,
            redelivered: false,
            receive_count: 1,
        });
    }
    fn final_read_done(&mut self, outcome: FinalReadOutcome) {
        let t = self.tick();
        self.ev.push(Event::FinalReadDone {
            t,
            outcome,
            read: 0,
            detail: String::new(),
        });
    }
    /// A delivery the broker flagged as redelivered (RabbitMQ's flag, an SQS receive count).
    fn deliver_flagged(&mut self, c: u32, i: MsgId) {
        let t = self.tick();
        self.ev.push(Event::Deliver {
            t,
            consumer: c,
            id: i,
            intended: 0,
            pos: Position::Unknown,
            redelivered: true,
            receive_count: 2,
        });
        let t = self.tick();
        self.ev.push(Event::Processed {
            t,
            consumer: c,
            id: i,
        });
    }
    fn check(self) -> Metrics {
        check_events(self.ev)
    }
}

fn kafka(partition: i32, offset: i64) -> Position {
    Position::Offset {
        shard: partition,
        offset,
    }
}

#[test]
fn clean_history_has_no_anomalies() {
    let mut h = H::new();
    for s in 0..50 {
        h.ok(id(0, (s % 5) as u32, s / 5));
    }
    for s in 0..50 {
        h.deliver(0, id(0, (s % 5) as u32, s / 5));
    }
    let m = h.check();
    assert_eq!(
        (m.counts.sent, m.counts.acked, m.delivery.delivered),
        (50, 50, 50)
    );
    assert_eq!(
        (
            m.delivery.lost,
            m.delivery.unexpected,
            m.delivery.recovered,
            m.delivery.redeliveries,
            m.delivery.duplicates_stored
        ),
        (0, 0, 0, 0, 0)
    );
    assert_eq!(
        (
            m.delivery.per_key_order_violations,
            m.delivery.skips,
            m.delivery.effective_duplicates
        ),
        (0, 0, 0)
    );
    assert_eq!(m.timing.availability, 1.0);
    assert!(m.delivery.examples.is_empty());
}

#[test]
fn loss_counts_acknowledged_values_never_processed() {
    let mut h = H::new();
    for s in 0..10 {
        h.ok(id(0, 0, s));
    }
    for s in 0..6 {
        h.deliver(0, id(0, 0, s));
    }
    // seq 6 reached a consumer that acked before processing and died: received, never processed.
    h.receive(0, id(0, 0, 6), Position::Unknown);
    // The final read finds none of them: gone from the broker.
    h.final_read_done(FinalReadOutcome::Complete);
    let m = h.check();
    assert_eq!(
        (m.delivery.lost, m.delivery.unread, m.delivery.unverified),
        (4, 0, 0)
    );
    assert_eq!(m.delivery.received_not_processed, 1);
    assert_eq!(m.delivery.delivered, 6);
    assert_eq!(
        m.delivery
            .examples
            .iter()
            .filter(|e| e.kind == "lost")
            .count(),
        4
    );
    assert!(m.delivery.final_read.verified());
}

/// Values a wedged consumer never processed, still in the broker: unread, not lost.
#[test]
fn values_the_final_read_finds_are_unread_not_lost() {
    let mut h = H::new();
    for s in 0..10 {
        h.ok(id(0, 0, s));
    }
    for s in 0..6 {
        h.deliver_at(0, id(0, 0, s), kafka(0, s as i64));
    }
    // Kafka: the final read reads the whole log, processed values included.
    for s in 0..9 {
        h.stored(id(0, 0, s), kafka(0, s as i64));
    }
    h.final_read_done(FinalReadOutcome::Complete);
    let m = h.check();
    // seq 6..8 still stored and never processed; seq 9 is gone.
    assert_eq!(
        (m.delivery.lost, m.delivery.unread, m.delivery.unverified),
        (1, 3, 0)
    );
    assert_eq!(
        m.delivery
            .examples
            .iter()
            .filter(|e| e.kind == "unread")
            .count(),
        3
    );
    // The timeline places the unread by when they were meant to be sent (all in second 0).
    assert_eq!(m.timing.timeline[0].unread, 3);
    // Reading the log is not a redelivery, and the stored log is in order.
    assert_eq!(
        (m.delivery.redeliveries, m.delivery.broker_redeliveries),
        (0, 0)
    );
    assert_eq!(
        (
            m.delivery.duplicates_stored,
            m.delivery.final_read_order_violations
        ),
        (0, 0)
    );
}

/// Producers only (`consumers.count: 0`): what the final read finds was stored as meant; what it
/// does not find is still lost.
#[test]
fn with_no_consumers_stored_values_are_not_unread() {
    let mut h = H::new();
    h.ev.push(Event::Phase {
        t: 0,
        phase: Phase::ProducersOnly,
    });
    for s in 0..10 {
        h.ok(id(0, 0, s));
    }
    for s in 0..9 {
        h.stored(id(0, 0, s), kafka(0, s as i64));
    }
    h.final_read_done(FinalReadOutcome::Complete);
    let m = h.check();
    assert_eq!(
        (m.delivery.lost, m.delivery.unread, m.delivery.delivered),
        (1, 0, 0)
    );
    assert!(m.delivery.examples.iter().all(|e| e.kind != "unread"));
    assert_eq!(m.timing.timeline[0].unread, 0);
    // No latency was measured end to end, and none is made up.
    assert_eq!(m.metric("p99_end_to_end"), None);
}

#[test]
fn without_a_complete_final_read_missing_values_are_unverified() {
    for done in [
        None,
        Some(FinalReadOutcome::TimedOut),
        Some(FinalReadOutcome::Failed),
    ] {
        let mut h = H::new();
        for s in 0..5 {
            h.ok(id(0, 0, s));
        }
        h.deliver(0, id(0, 0, 0));
        h.stored(id(0, 0, 1), Position::Unknown);
        if let Some(d) = done {
            h.final_read_done(d);
        }
        let m = h.check();
        assert_eq!(
            (m.delivery.lost, m.delivery.unread, m.delivery.unverified),
            (0, 1, 3),
            "{done:?}"
        );
        assert!(!m.delivery.final_read.verified());
        let expected = match done {
            None => FinalReadStatus::NotRun,
            Some(d) => FinalReadStatus::from(d),
        };
        assert_eq!(m.delivery.final_read.outcome, expected);
        // `lost: 0` cannot pass while three values are unaccounted for, and says why.
        let yaml =
            "name: t\nbrokers: [kafka]\nload: { rate: 1/s, duration: 1s }\nexpect: { lost: 0 }\n";
        let w = crate::workload::parse(std::path::Path::new("t.yaml"), yaml, &[]).unwrap();
        // Lost 0 held, but three values are unaccounted for: not judged, and it says why.
        let v = &expect::verdicts(&w.expect, &m, &[])[0];
        assert_eq!(v.outcome, expect::Outcome::NotJudged);
        assert!(
            v.note.as_deref().unwrap_or("").contains("not verified"),
            "{v:?}"
        );
    }
}

#[test]
fn the_final_read_audits_the_stored_log_for_duplicates_and_order() {
    let mut h = H::new();
    for s in 0..4 {
        h.ok(id(0, 0, s));
    }
    // As stored: seq 0, 2, 1, 3, and seq 3 a second time (a producer retry).
    for (off, s) in [(0, 0), (1, 2), (2, 1), (3, 3), (4, 3)] {
        h.stored(id(0, 0, s), kafka(0, off));
    }
    h.final_read_done(FinalReadOutcome::Complete);
    let m = h.check();
    assert_eq!(m.delivery.duplicates_stored, 1);
    assert_eq!(m.delivery.final_read_order_violations, 1);
    assert_eq!((m.delivery.lost, m.delivery.unread), (0, 4));
}

#[test]
fn flagged_redeliveries_are_counted_and_their_reorders_kept_apart() {
    let mut h = H::new();
    for s in 0..4 {
        h.ok(id(0, 0, s));
    }
    h.deliver(0, id(0, 0, 0));
    // Consumer 0 took seq 1 and died unprocessed (unrecorded); seq 2 and 3 went to consumer 1;
    // the broker then returned seq 1 flagged as redelivered: first seen by the application,
    // behind later values.
    h.deliver(1, id(0, 0, 2));
    h.deliver(1, id(0, 0, 3));
    h.deliver_flagged(1, id(0, 0, 1));
    // A fresh value out of order, not flagged: a real reordering.
    h.ok(id(0, 0, 4));
    h.ok(id(0, 0, 5));
    h.deliver(1, id(0, 0, 5));
    h.deliver(1, id(0, 0, 4));
    // Seq 3 read again from the same Kafka offset counts as a broker redelivery, unflagged.
    let m = {
        h.deliver_at(1, id(0, 0, 3), Position::Unknown);
        h.check()
    };
    assert_eq!(m.delivery.per_key_order_violations, 1);
    assert_eq!(m.delivery.per_key_order_violations_flagged, 1);
    assert_eq!(m.delivery.per_key_order_violations_redelivered, 1);
    assert_eq!(m.delivery.broker_redeliveries, 1);
    assert_eq!(m.delivery.redeliveries, 1);
}

#[test]
fn an_offset_read_again_is_a_broker_redelivery() {
    let mut h = H::new();
    h.ok(id(0, 0, 0));
    h.deliver_at(0, id(0, 0, 0), kafka(0, 7));
    h.deliver_at(1, id(0, 0, 0), kafka(0, 7));
    let m = h.check();
    assert_eq!(
        (m.delivery.redeliveries, m.delivery.broker_redeliveries),
        (1, 1)
    );
}

#[test]
fn failed_sends_are_not_lost_and_indeterminate_seen_are_recovered() {
    let mut h = H::new();
    h.ok(id(0, 0, 0));
    h.fail(id(0, 0, 1));
    h.info(id(0, 0, 2));
    h.info(id(0, 0, 3));
    h.deliver(0, id(0, 0, 0));
    h.deliver(0, id(0, 0, 2));
    let m = h.check();
    assert_eq!(
        (m.counts.acked, m.counts.failed, m.counts.indeterminate),
        (1, 1, 2)
    );
    assert_eq!((m.delivery.lost, m.delivery.recovered), (0, 1));
    // The gap at seq 1 is a failed send, not a skip.
    assert_eq!(m.delivery.skips, 0);
    assert_eq!(m.timing.availability, 0.25);
}

#[test]
fn sends_cut_off_by_a_producer_crash_are_indeterminate() {
    let mut h = H::new();
    h.ok(id(0, 0, 0));
    // Invoked, then the producer was killed: no outcome on record.
    h.invoke(id(0, 0, 1));
    h.invoke(id(0, 0, 2));
    h.deliver(0, id(0, 0, 0));
    h.deliver(0, id(0, 0, 1));
    let m = h.check();
    assert_eq!(
        (m.counts.sent, m.counts.acked, m.counts.indeterminate),
        (3, 1, 2)
    );
    assert_eq!(
        (m.delivery.lost, m.delivery.recovered, m.delivery.unexpected),
        (0, 1, 0)
    );
}

#[test]
fn redeliveries_and_stored_duplicates_are_told_apart() {
    let mut h = H::new();
    for s in 0..4 {
        h.ok(id(0, 0, s));
        h.deliver_at(0, id(0, 0, s), kafka(0, s as i64));
    }
    // Redelivered from the same offset (consumer restarted before committing).
    h.deliver_at(1, id(0, 0, 2), kafka(0, 2));
    h.deliver_at(1, id(0, 0, 3), kafka(0, 3));
    // The producer's retry stored seq 3 a second time, at offset 4.
    h.deliver_at(1, id(0, 0, 3), kafka(0, 4));
    let m = h.check();
    assert_eq!(m.delivery.redeliveries, 3);
    assert_eq!(m.delivery.duplicates_stored, 1);
    assert_eq!(m.delivery.duplicate_rate, 3.0 / 4.0);
    assert_eq!(m.delivery.effective_duplicates, 3);
    // Replaying seq 2 after seq 3 is a reorder among redeliveries, not among first deliveries.
    assert_eq!(
        (
            m.delivery.per_key_order_violations,
            m.delivery.per_key_order_violations_redelivered
        ),
        (0, 1)
    );
}

#[test]
fn reorders_and_skips_are_counted_per_key() {
    let mut h = H::new();
    for s in 0..4 {
        h.ok(id(0, 7, s));
        h.ok(id(1, 7, s));
    }
    // Producer 0's key 7 arrives 0, 2, 1, 3: one skip (0→2) and one reorder (1 after 2).
    for s in [0, 2, 1, 3] {
        h.deliver(0, id(0, 7, s));
    }
    // Producer 1's key 7 (a different sequence) is in order.
    for s in 0..4 {
        h.deliver(1, id(1, 7, s));
    }
    let m = h.check();
    assert_eq!(m.delivery.per_key_order_violations, 1);
    assert_eq!(m.delivery.skips, 1);
    assert_eq!(m.delivery.lost, 0);
    let ex: Vec<&Anomaly> = m
        .delivery
        .examples
        .iter()
        .filter(|e| e.kind == "order-violation")
        .collect();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].id.as_deref(), Some("0-7-1"));
}

#[test]
fn a_jump_after_a_consumer_change_is_not_a_skip() {
    let mut h = H::new();
    for s in 0..3 {
        h.ok(id(0, 0, s));
    }
    h.deliver(0, id(0, 0, 0));
    h.deliver(1, id(0, 0, 2));
    h.deliver(0, id(0, 0, 1));
    let m = h.check();
    assert_eq!(m.delivery.skips, 0);
    assert_eq!(m.delivery.per_key_order_violations, 1);
}

#[test]
fn unexpected_counts_unsent_values_and_foreign_messages() {
    let mut h = H::new();
    h.ok(id(0, 0, 0));
    h.deliver(0, id(0, 0, 0));
    h.deliver(0, id(3, 0, 0));
    let t = h.tick();
    h.ev.push(Event::Foreign {
        t,
        consumer: 0,
        pos: Position::Unknown,
        detail: "no envelope".into(),
    });
    let m = h.check();
    assert_eq!(m.delivery.unexpected, 2);
}

#[test]
fn a_corrupt_sequence_number_is_unexpected_and_allocates_nothing() {
    let mut h = H::new();
    h.ok(id(0, 0, 0));
    h.deliver(0, id(0, 0, 0));
    // Would need petabytes of per-message state if the checker allocated up to it.
    h.deliver(0, id(0, 0, u64::MAX / 3));
    let m = h.check();
    // Its delivery and its processing each count once.
    assert_eq!(
        (m.delivery.unexpected, m.delivery.delivered, m.delivery.lost),
        (2, 1, 0)
    );
    assert!(m
        .delivery
        .examples
        .iter()
        .any(|e| e.kind == "unexpected" && e.detail.contains("implausible")));
}

#[test]
fn rebalance_redeliveries_are_redeliveries_not_loss() {
    let mut h = H::new();
    for s in 0..10 {
        h.ok(id(0, 0, s));
    }
    // Consumer 0 processes 0..=5 but committed only up to 2, then crashes.
    for s in 0..=5 {
        h.deliver_at(0, id(0, 0, s), kafka(0, s as i64));
    }
    // Consumer 1 takes over from the committed offset 3.
    for s in 3..10 {
        h.deliver_at(1, id(0, 0, s), kafka(0, s as i64));
    }
    let m = h.check();
    assert_eq!(m.delivery.lost, 0);
    assert_eq!(m.delivery.redeliveries, 3);
    assert_eq!(m.delivery.duplicates_stored, 0);
    assert_eq!(m.delivery.per_key_order_violations, 0);
    assert_eq!(m.delivery.per_key_order_violations_redelivered, 2); // 3 and 4 replayed after 5
    assert_eq!(m.delivery.skips, 0);
}

#[test]
fn dedupe_skips_hide_redeliveries_from_processing() {
    let mut h = H::new();
    h.ok(id(0, 0, 0));
    h.deliver(0, id(0, 0, 0));
    h.receive(1, id(0, 0, 0), Position::Unknown);
    let t = h.tick();
    h.ev.push(Event::DedupeSkip {
        t,
        consumer: 1,
        id: id(0, 0, 0),
    });
    let m = h.check();
    assert_eq!(
        (
            m.delivery.redeliveries,
            m.delivery.effective_duplicates,
            m.delivery.dedupe_skips
        ),
        (1, 0, 1)
    );
}

#[test]
fn events_out_of_arrival_order_are_checked_in_time_order() {
    // Two workers' events reach the history in the wrong order; time order shows no reorder.
    let mut h = H::new();
    h.ok(id(0, 0, 0));
    h.ok(id(0, 0, 1));
    let (a, b) = (h.tick(), h.tick());
    h.ev.push(Event::Deliver {
        t: b,
        consumer: 1,
        id: id(0, 0, 1),
        intended: 0,
        pos: Position::Unknown,
        redelivered: false,
        receive_count: 1,
    });
    h.ev.push(Event::Deliver {
        t: a,
        consumer: 0,
        id: id(0, 0, 0),
        intended: 0,
        pos: Position::Unknown,
        redelivered: false,
        receive_count: 1,
    });
    let m = h.check();
    assert_eq!(m.delivery.per_key_order_violations, 0);
}

#[test]
fn latency_is_measured_from_the_intended_time_after_warmup() {
    let mut ev = vec![Event::Phase {
        t: 0,
        phase: Phase::LoadStart {
            warmup_ns: 1_000 * MS,
            duration_ns: 3_000 * MS,
        },
    }];
    // During warmup: slow, excluded.
    ev.push(Event::SendOk {
        t: 900 * MS,
        id: id(0, 0, 0),
        intended: 100 * MS,
        pos: Position::Unknown,
    });
    // Intended during warmup, acknowledged in second 1: on the timeline, not in the figures.
    ev.push(Event::SendOk {
        t: 1_100 * MS,
        id: id(0, 1, 0),
        intended: 950 * MS,
        pos: Position::Unknown,
    });
    // After warmup: sent late (coordinated omission would hide this), acked 30 ms after intended.
    for s in 1..=100u64 {
        let intended = 1_000 * MS + s * 10 * MS;
        ev.push(Event::SendOk {
            t: intended + 30 * MS,
            id: id(0, 0, s),
            intended,
            pos: Position::Unknown,
        });
        ev.push(Event::Deliver {
            t: intended + 50 * MS,
            consumer: 0,
            id: id(0, 0, s),
            intended,
            pos: Position::Unknown,
            redelivered: false,
            receive_count: 1,
        });
    }
    let m = check_events(ev);
    assert_eq!(m.timing.publish_latency.count, 100);
    assert!(
        (m.timing.publish_latency.p99 - 0.030).abs() < 0.0001,
        "{:?}",
        m.timing.publish_latency
    );
    assert!(
        (m.timing.end_to_end_latency.p50 - 0.050).abs() < 0.0001,
        "{:?}",
        m.timing.end_to_end_latency
    );
    assert!(!m.timing.publish_histogram.is_empty());
    let near = |ms: Option<f64>, want: f64| ms.is_some_and(|v| (v - want).abs() < want * 0.002);
    let tl = &m.timing.timeline;
    assert!(near(tl[0].publish_p50_ms, 800.0), "{:?}", tl[0]);
    assert!(near(tl[1].publish_p50_ms, 30.0), "{:?}", tl[1]);
    assert!(near(tl[1].publish_p99_ms, 150.0), "{:?}", tl[1]);
    assert!(near(tl[1].e2e_p50_ms, 50.0), "{:?}", tl[1]);
    assert_eq!(tl[0].e2e_p50_ms, None);
}

#[test]
fn recovery_time_runs_from_fault_end_to_first_success_on_both_sides() {
    let mut ev = vec![Event::Phase {
        t: 0,
        phase: Phase::LoadStart {
            warmup_ns: 0,
            duration_ns: 10_000 * MS,
        },
    }];
    ev.push(Event::Fault {
        t: 1_000 * MS,
        index: 0,
        kind: "partition".into(),
        phase: FaultPhase::Start,
        detail: String::new(),
    });
    ev.push(Event::Fault {
        t: 2_000 * MS,
        index: 0,
        kind: "partition".into(),
        phase: FaultPhase::Stop,
        detail: String::new(),
    });
    ev.push(Event::SendOk {
        t: 2_300 * MS,
        id: id(0, 0, 0),
        intended: 2_100 * MS,
        pos: Position::Unknown,
    });
    // What the broker said afterwards joins the fault's detail and moves nothing.
    ev.push(Event::Fault {
        t: 2_500 * MS,
        index: 0,
        kind: "partition".into(),
        phase: FaultPhase::After,
        detail: "after it, leader n2".into(),
    });
    ev.push(Event::Processed {
        t: 2_700 * MS,
        consumer: 0,
        id: id(0, 0, 0),
    });
    let m = check_events(ev);
    assert_eq!(m.timing.faults.len(), 1);
    assert_eq!(
        (m.timing.faults[0].start_s, m.timing.faults[0].end_s),
        (1.0, Some(2.0))
    );
    assert!(
        m.timing.faults[0].detail.ends_with("; after it, leader n2"),
        "{:?}",
        m.timing.faults[0]
    );
    let r = m.timing.recovery_time.unwrap();
    assert!((r - 0.7).abs() < 1e-9, "{r}");
}

/// A node restart invoked at 1 s is in force at 8 s (its command took 7 s) and over then: its
/// window runs from the invoke, and says when it was in force. One invoked that then failed
/// was never in force, so no outage is its.
#[test]
fn a_fault_window_opens_at_its_invoke_and_a_failed_one_has_no_outage() {
    let fault = |t: u64, index: u32, phase| Event::Fault {
        t: t * MS,
        index,
        kind: "node-restart".into(),
        phase,
        detail: String::new(),
    };
    let ev = vec![
        Event::Phase {
            t: 0,
            phase: Phase::LoadStart {
                warmup_ns: 0,
                duration_ns: 20_000 * MS,
            },
        },
        Event::SendOk {
            t: 500 * MS,
            id: id(0, 0, 0),
            intended: 400 * MS,
            pos: Position::Unknown,
        },
        fault(1_000, 0, FaultPhase::Invoke),
        fault(8_000, 0, FaultPhase::Start),
        fault(8_000, 0, FaultPhase::Stop),
        fault(9_000, 1, FaultPhase::Invoke),
        fault(9_100, 1, FaultPhase::Failed),
        Event::SendOk {
            t: 12_000 * MS,
            id: id(0, 0, 1),
            intended: 11_900 * MS,
            pos: Position::Unknown,
        },
    ];
    let m = check_events(ev);
    let f = &m.timing.faults[0];
    assert_eq!(
        (f.start_s, f.applied_s, f.end_s),
        (1.0, Some(8.0), Some(8.0))
    );
    assert!((f.send_outage_s.unwrap() - 11.5).abs() < 1e-9, "{f:?}");
    assert!(
        m.timing.faults[1].failed && m.timing.faults[1].send_outage_s.is_none(),
        "{:?}",
        m.timing.faults[1]
    );
}

/// Faults that start at the same moment run side by side, and their records arrive in any
/// order: each window keeps its own kind, whichever index was recorded first.
#[test]
fn faults_recorded_out_of_index_order_keep_their_own_kinds() {
    let fault = |t: u64, index: u32, kind: &str, phase| Event::Fault {
        t: t * MS,
        index,
        kind: kind.into(),
        phase,
        detail: String::new(),
    };
    let ev = vec![
        Event::Phase {
            t: 0,
            phase: Phase::LoadStart {
                warmup_ns: 0,
                duration_ns: 20_000 * MS,
            },
        },
        fault(1_000, 2, "node-loss", FaultPhase::Invoke),
        fault(1_001, 0, "node-corrupt", FaultPhase::Invoke),
        fault(1_002, 1, "node-duplicate", FaultPhase::Invoke),
        fault(1_300, 1, "node-duplicate", FaultPhase::Start),
        fault(1_400, 2, "node-loss", FaultPhase::Start),
        fault(1_500, 0, "node-corrupt", FaultPhase::Start),
        fault(5_000, 2, "node-loss", FaultPhase::Stop),
        fault(5_000, 0, "node-corrupt", FaultPhase::Stop),
        fault(5_000, 1, "node-duplicate", FaultPhase::Stop),
    ];
    let m = check_events(ev);
    let kinds: Vec<&str> = m.timing.faults.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["node-corrupt", "node-duplicate", "node-loss"]);
    let applied: Vec<Option<f64>> = m.timing.faults.iter().map(|f| f.applied_s).collect();
    assert_eq!(applied, [Some(1.5), Some(1.3), Some(1.4)]);
}

/// A fault from 1 s to 3 s; producer 0 acknowledged every 100 ms throughout, producer 1 not
/// from 0.9 s until 4.4 s (it failed over), then again. The fault's outage is producer 1's
/// 3.5 s; a stretch that ends before the fault starts is not its outage.
#[test]
fn send_outage_is_the_longest_a_producer_went_unacknowledged_across_a_fault() {
    let fault = |t: u64, phase| Event::Fault {
        t: t * MS,
        index: 0,
        kind: "node-partition".into(),
        phase,
        detail: String::new(),
    };
    let ok = |p: u32, seq: u64, t: u64| Event::SendOk {
        t: t * MS,
        id: id(p, 0, seq),
        intended: t * MS - MS,
        pos: Position::Unknown,
    };
    let history = |producer_1_back: Option<u64>| {
        let mut ev = vec![
            Event::Phase {
                t: 0,
                phase: Phase::LoadStart {
                    warmup_ns: 0,
                    duration_ns: 6_000 * MS,
                },
            },
            fault(1_000, FaultPhase::Start),
            fault(3_000, FaultPhase::Stop),
        ];
        for (seq, t) in (100..=6_000).step_by(100).enumerate() {
            ev.push(ok(0, seq as u64, t));
            if t <= 900 || producer_1_back.is_some_and(|back| t >= back) {
                ev.push(ok(1, seq as u64, t));
            }
        }
        ev.push(Event::Phase {
            t: 6_000 * MS,
            phase: Phase::LoadEnd,
        });
        check_events(ev)
    };
    let secs = |m: &Metrics| m.timing.faults[0].send_outage_s.unwrap();
    let m = history(Some(4_400));
    assert!((secs(&m) - 3.5).abs() < 1e-9, "{:?}", m.timing.faults[0]);
    // Never acknowledged again: out from its last acknowledgement until the load ended.
    let m = history(None);
    assert!((secs(&m) - 5.1).abs() < 1e-9, "{:?}", m.timing.faults[0]);
    // Nothing stalls: the outage is one producer's gap between sends.
    let m = history(Some(1_000));
    assert!((secs(&m) - 0.1).abs() < 1e-6, "{:?}", m.timing.faults[0]);
}

/// Which node each client used comes through as the history says, its time since the load
/// started (before it: negative), whatever order the pipes delivered it in.
#[test]
fn client_connections_are_kept_in_time_order_relative_to_the_load() {
    let connected = |t: u64, index: u32, endpoint: &str| Event::Connected {
        t: t * MS,
        role: crate::history::ClientRole::Consumer,
        index,
        endpoint: endpoint.into(),
    };
    let m = check_events(vec![
        connected(500, 0, "10.77.0.11:5672"),
        Event::Phase {
            t: 1_000 * MS,
            phase: Phase::LoadStart {
                warmup_ns: 0,
                duration_ns: 10_000 * MS,
            },
        },
        connected(23_700, 0, "10.77.0.13:5672"),
    ]);
    let seen: Vec<(&str, f64)> = m
        .timing
        .connections
        .iter()
        .map(|c| (c.endpoint.as_str(), c.at_s))
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "10.77.0.11:5672");
    assert!(
        (seen[0].1 + 0.5).abs() < 1e-9 && (seen[1].1 - 22.7).abs() < 1e-9,
        "{seen:?}"
    );
}

mod reference {
    //! A deliberately naive model of the definitions (quadratic, obviously right) compared with
    //! the streaming checker on random histories.
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    #[derive(Debug, Clone)]
    enum Op {
        Send {
            key: u32,
            outcome: u8,
        },
        Deliver {
            key: u32,
            nth: u8,
            consumer: u32,
            processed: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3u32, 0..3u8).prop_map(|(key, outcome)| Op::Send { key, outcome }),
            (0..3u32, 0..6u8, 0..2u32, proptest::bool::weighted(0.9)).prop_map(
                |(key, nth, consumer, processed)| Op::Deliver {
                    key,
                    nth,
                    consumer,
                    processed
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn streaming_checker_agrees_with_the_naive_model(
            ops in proptest::collection::vec(op(), 1..120),
            finals in proptest::collection::vec((0..3u32, 0..6u8), 0..12),
        ) {
            let mut h = H::new();
            let mut next_seq: HashMap<u32, u64> = HashMap::new();
            let mut outcome: HashMap<(u32, u64), u8> = HashMap::new();
            let mut deliveries: Vec<(u32, u64, bool)> = Vec::new();
            for o in &ops {
                match *o {
                    Op::Send { key, outcome: out } => {
                        let seq = *next_seq.entry(key).or_default();
                        next_seq.insert(key, seq + 1);
                        match out {
                            0 => h.ok(id(0, key, seq)),
                            1 => h.fail(id(0, key, seq)),
                            _ => h.info(id(0, key, seq)),
                        }
                        outcome.insert((key, seq), out);
                    }
                    Op::Deliver { key, nth, consumer, processed } => {
                        // Deliver one of the values sent so far (or one never sent: unexpected).
                        let seq = nth as u64;
                        if processed {
                            h.deliver(consumer, id(0, key, seq));
                        } else {
                            h.receive(consumer, id(0, key, seq), Position::Unknown);
                        }
                        deliveries.push((key, seq, processed));
                    }
                }
            }
            // The final read finds some values (sent or not), then ends complete.
            let stored: HashSet<(u32, u64)> = finals.iter().map(|&(k, s)| (k, s as u64)).collect();
            for &(k, s) in &stored {
                h.stored(id(0, k, s), Position::Unknown);
            }
            h.final_read_done(FinalReadOutcome::Complete);
            let m = h.check();

            let processed: HashSet<(u32, u64)> = deliveries.iter().filter(|d| d.2).map(|d| (d.0, d.1)).collect();
            let lost = outcome.iter().filter(|(v, o)| **o == 0 && !processed.contains(v) && !stored.contains(v)).count() as u64;
            let unread = outcome.keys().filter(|v| stored.contains(v) && !processed.contains(v)).count() as u64;
            let recovered = outcome.iter().filter(|(v, o)| **o == 2 && (processed.contains(v) || stored.contains(v))).count() as u64;
            let seen: HashSet<(u32, u64)> = deliveries.iter().map(|d| (d.0, d.1)).chain(stored.iter().copied()).collect();
            let unexpected = seen.iter().filter(|v| !outcome.contains_key(v)).count() as u64;
            let distinct = deliveries.iter().map(|d| (d.0, d.1)).collect::<HashSet<_>>().len() as u64;
            let redeliveries = deliveries.len() as u64 - distinct;
            // First deliveries whose seq is below a seq of the same key delivered earlier.
            let mut violations = 0;
            for (i, d) in deliveries.iter().enumerate() {
                let earlier = &deliveries[..i];
                let first = !earlier.iter().any(|e| (e.0, e.1) == (d.0, d.1));
                if first && earlier.iter().any(|e| e.0 == d.0 && e.1 > d.1) {
                    violations += 1;
                }
            }
            prop_assert_eq!(m.delivery.lost, lost);
            prop_assert_eq!(m.delivery.unread, unread);
            prop_assert_eq!(m.delivery.unverified, 0);
            prop_assert_eq!(m.delivery.recovered, recovered);
            prop_assert_eq!(m.delivery.unexpected, unexpected);
            prop_assert_eq!(m.delivery.redeliveries, redeliveries);
            prop_assert_eq!(m.delivery.delivered, processed.len() as u64);
            prop_assert_eq!(m.delivery.per_key_order_violations, violations);
        }
    }
}

impl H {
    fn skip(&mut self, c: u32, i: MsgId) {
        let t = self.tick();
        self.ev.push(Event::DedupeSkip {
            t,
            consumer: c,
            id: i,
        });
    }
    fn ack(&mut self, c: u32, i: MsgId) {
        let t = self.tick();
        self.ev.push(Event::Ack {
            t,
            consumer: c,
            id: i,
        });
    }
    fn store_holds(&mut self, c: u32, i: MsgId) {
        let t = self.tick();
        self.ev.push(Event::StoreHolds {
            t,
            consumer: c,
            id: i,
        });
    }
    fn store_read(&mut self, complete: bool, rows: u64) {
        let t = self.tick();
        self.ev.push(Event::StoreRead {
            t,
            complete,
            rows,
            detail: String::new(),
        });
    }
}

/// The issue's history of value 0-6-70: consumer 0 committed it to the store and was killed
/// before its `Processed` record left; consumer 1 got it again and skipped it. The store's row
/// is the evidence that it was processed, once: not lost.
#[test]
fn a_row_in_the_consumers_store_counts_as_processed_by_its_consumer() {
    let v = id(0, 6, 70);
    let build = |with_store: bool| {
        let mut h = H::new();
        h.ok(v);
        h.receive(0, v, Position::Unknown);
        h.receive(1, v, Position::Unknown);
        h.skip(1, v);
        h.ack(1, v);
        if with_store {
            h.store_holds(0, v);
            h.store_read(true, 1);
        }
        h.final_read_done(FinalReadOutcome::Complete);
        h.check()
    };
    // Without the store's evidence, the history alone calls it lost.
    let before = build(false);
    assert_eq!((before.delivery.lost, before.delivery.delivered), (1, 0));
    let m = build(true);
    assert_eq!(
        (
            m.delivery.lost,
            m.delivery.delivered,
            m.delivery.effective_duplicates,
            m.delivery.processed_per_store
        ),
        (0, 1, 0, 1)
    );
    assert_eq!(
        (m.delivery.store_anomalies, m.delivery.store_read),
        (0, Some(true))
    );
    assert!(m
        .delivery
        .examples
        .iter()
        .any(|e| e.kind == "processed-per-store"));
}

/// Where the store and the history disagree, each kind is counted once, with an example.
#[test]
fn the_store_and_the_history_disagreeing_are_anomalies() {
    let mut h = H::new();
    let (skipped, undelivered, unbacked, fine) =
        (id(0, 0, 0), id(0, 0, 1), id(0, 0, 2), id(0, 0, 3));
    for v in [skipped, undelivered, unbacked, fine] {
        h.ok(v);
    }
    // Skipped as already processed, yet no consumer processed it and no row holds it.
    h.receive(0, skipped, Position::Unknown);
    h.skip(0, skipped);
    // Processed as the history says, but the store has no row for it.
    h.deliver(0, unbacked);
    h.deliver(1, fine);
    h.store_holds(1, fine);
    // A row for a value no consumer was ever given.
    h.store_holds(0, undelivered);
    h.store_read(true, 2);
    h.final_read_done(FinalReadOutcome::Complete);
    let m = h.check();
    assert_eq!(m.delivery.store_anomalies, 3, "{:?}", m.delivery.examples);
    for kind in [
        "dedupe-skip-without-row",
        "processed-not-in-store",
        "store-row-undelivered",
    ] {
        assert!(m.delivery.examples.iter().any(|e| e.kind == kind), "{kind}");
    }
    // The skipped value was never processed and the final read did not find it: lost.
    assert_eq!(m.delivery.lost, 1);
    // Without a store read, nothing is said about the store.
    let mut h = H::new();
    h.ok(skipped);
    h.receive(0, skipped, Position::Unknown);
    h.skip(0, skipped);
    let m = h.check();
    assert_eq!(
        (m.delivery.store_anomalies, m.delivery.store_read),
        (0, None)
    );
}

mod trust {
    use super::*;
    use crate::check::inconclusive::{reasons, Plan, PlannedFault};
    use crate::check::FinalReadStatus;

    fn plan(faults: &[(&str, bool)]) -> Plan {
        Plan {
            faults: faults
                .iter()
                .enumerate()
                .map(|(i, (kind, undone))| PlannedFault {
                    index: i as u32,
                    kind: kind.to_string(),
                    undone: *undone,
                })
                .collect(),
            consumers: true,
        }
    }

    fn fault(h: &mut H, index: u32, kind: &str, phase: FaultPhase, detail: &str) {
        let t = h.tick();
        h.ev.push(Event::Fault {
            t,
            index,
            kind: kind.into(),
            phase,
            detail: detail.into(),
        });
    }

    /// A history that measured something and whose final read completed.
    fn measured() -> H {
        let mut h = H::new();
        h.ok(id(0, 0, 0));
        h.deliver(0, id(0, 0, 0));
        h
    }

    fn finish(mut h: H) -> Metrics {
        h.final_read_done(FinalReadOutcome::Complete);
        h.check()
    }

    #[test]
    fn a_run_that_did_what_it_planned_and_measured_something_is_conclusive() {
        let mut h = measured();
        fault(&mut h, 0, "broker-kill", FaultPhase::Invoke, "");
        fault(&mut h, 0, "broker-kill", FaultPhase::Start, "killed");
        fault(&mut h, 0, "broker-kill", FaultPhase::Stop, "started");
        let m = finish(h);
        assert_eq!(
            reasons(&m, &plan(&[("broker-kill", true)])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_way_a_fault_does_not_happen_as_planned_is_a_reason() {
        let mut h = measured();
        // #0: its command failed; #1: applied, but its undo failed; #2: begun, never in
        // force; #3: never recorded at all; #4: in force and never undone.
        fault(&mut h, 0, "broker-kill", FaultPhase::Invoke, "");
        fault(
            &mut h,
            0,
            "broker-kill",
            FaultPhase::Failed,
            "`false` failed (exit status: 1)",
        );
        fault(&mut h, 1, "broker-pause", FaultPhase::Invoke, "");
        fault(&mut h, 1, "broker-pause", FaultPhase::Start, "paused");
        fault(
            &mut h,
            1,
            "broker-pause",
            FaultPhase::Failed,
            "undoing: resume failed",
        );
        fault(&mut h, 2, "node-kill", FaultPhase::Invoke, "");
        fault(&mut h, 4, "pause", FaultPhase::Invoke, "");
        fault(&mut h, 4, "pause", FaultPhase::Start, "SIGSTOP consumer 0");
        let m = finish(h);
        let p = plan(&[
            ("broker-kill", true),
            ("broker-pause", true),
            ("node-kill", true),
            ("consumer-crash", false),
            ("pause", true),
        ]);
        let why = reasons(&m, &p);
        assert_eq!(why.len(), 5, "{why:#?}");
        assert!(
            why[0].starts_with("fault #0 (broker-kill) did not happen: `false` failed"),
            "{why:#?}"
        );
        assert!(
            why[1].starts_with("fault #1 (broker-pause) was not undone as planned"),
            "{why:#?}"
        );
        assert!(why[1].contains("resume failed"), "{why:#?}");
        assert!(
            why[2].starts_with("fault #2 (node-kill) was begun but never confirmed"),
            "{why:#?}"
        );
        assert!(why[3].starts_with("fault #3 (consumer-crash)"), "{why:#?}");
        assert_eq!(why[4], "fault #4 (pause) was never undone");
        // A crash without a restart has nothing to undo: in force to the end is as planned.
        let mut h = measured();
        fault(&mut h, 0, "consumer-crash", FaultPhase::Invoke, "");
        fault(
            &mut h,
            0,
            "consumer-crash",
            FaultPhase::Start,
            "SIGKILL consumer 0",
        );
        let m = finish(h);
        assert!(reasons(&m, &plan(&[("consumer-crash", false)])).is_empty());
    }

    #[test]
    fn a_run_that_measured_nothing_is_inconclusive() {
        let none = plan(&[]);
        // Nothing sent.
        let m = finish(H::new());
        assert_eq!(
            reasons(&m, &none),
            ["nothing was measured: no message was sent"]
        );
        // Sent, never acknowledged.
        let mut h = H::new();
        h.fail(id(0, 0, 0));
        let why = reasons(&finish(h), &none);
        assert!(
            why[0].contains("none of the 1 sends was acknowledged"),
            "{why:?}"
        );
        // Acknowledged, never delivered, though the workload has consumers.
        let undelivered = || {
            let mut h = H::new();
            h.ok(id(0, 0, 0));
            h.stored(id(0, 0, 0), Position::Unknown);
            finish(h)
        };
        let why = reasons(&undelivered(), &none);
        assert!(
            why[0].contains("none of the 1 acknowledged messages was delivered"),
            "{why:?}"
        );
        // ...which a producers-only workload does not ask for.
        let producers_only = Plan {
            consumers: false,
            ..plan(&[])
        };
        assert!(reasons(&undelivered(), &producers_only).is_empty());
    }

    #[test]
    fn no_final_read_a_damaged_history_an_interruption_or_an_unread_store_are_reasons() {
        let none = plan(&[]);
        let m = measured().check();
        assert_eq!(m.delivery.final_read.outcome, FinalReadStatus::NotRun);
        let why = reasons(&m, &none);
        assert_eq!(why.len(), 1);
        assert!(
            why[0].starts_with("the final read did not verify"),
            "{why:?}"
        );
        let mut m = finish(measured());
        m.history_damaged = true;
        m.history_warning = Some("history is damaged (bad checksum)".into());
        assert!(reasons(&m, &none)[0].contains("bad checksum"));
        let mut h = measured();
        let t = h.tick();
        h.ev.push(Event::Phase {
            t,
            phase: Phase::Interrupted,
        });
        h.store_read(false, 0);
        let why = reasons(&finish(h), &none);
        assert_eq!(why.len(), 2, "{why:?}");
        assert_eq!(why[0], "the run was interrupted");
        assert!(
            why[1].contains("processed-ids store could not be read"),
            "{why:?}"
        );
    }

    /// A bound that failed fails whatever else went wrong; one that held is not judged when
    /// there is any reason to distrust the run; one not measured is never a pass.
    #[test]
    fn verdicts_fail_pass_or_are_not_judged() {
        use crate::check::expect::{Outcome, Verdict};
        let bound: crate::workload::units::Bound = "== 0".parse().unwrap();
        let why = vec!["fault #0 (broker-kill) did not happen: `false` failed".to_string()];
        let v = Verdict::judge("lost", &bound, Some(3.0), &why, None);
        assert_eq!(v.outcome, Outcome::Fail);
        let v = Verdict::judge("lost", &bound, Some(0.0), &why, None);
        assert_eq!(v.outcome, Outcome::NotJudged);
        assert!(v.note.unwrap().contains("broker-kill"));
        assert_eq!(
            Verdict::judge("lost", &bound, Some(0.0), &[], None).outcome,
            Outcome::Pass
        );
        let v = Verdict::judge("lost", &bound, None, &[], None);
        assert_eq!(v.outcome, Outcome::NotJudged);
        assert!(v.note.unwrap().contains("not measured"));
    }

    /// Results written before version 3 said `passed`; they still read, as a pass or a fail.
    #[test]
    fn version_2_verdicts_still_read() {
        use crate::check::expect::{Outcome, Verdict};
        let old = r#"{"metric":"lost","bound":"== 0","measured":0.0,"passed":true}"#;
        let v: Verdict = serde_json::from_str(old).unwrap();
        assert_eq!(v.outcome, Outcome::Pass);
        let old = r#"{"metric":"lost","bound":"== 0","measured":2.0,"passed":false}"#;
        let v: Verdict = serde_json::from_str(old).unwrap();
        assert_eq!(v.outcome, Outcome::Fail);
        let new = serde_json::to_string(&Verdict::judge(
            "lost",
            &"== 0".parse().unwrap(),
            Some(0.0),
            &[],
            None,
        ))
        .unwrap();
        assert!(
            new.contains(r#""outcome":"pass""#) && !new.contains("passed"),
            "{new}"
        );
    }
}
