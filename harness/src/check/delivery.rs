//! Loss, duplicates and per-key order, in Jepsen's vocabulary.
//!
//! *Lost* needs the final read (see `load::final_read`): a value acknowledged by the broker that
//! no consumer processed is lost only if the final read, complete, did not find it either. If the
//! final read found it, it is *unread* (the consumers failed, not the broker); if the final read
//! did not finish or did not run, it is *unverified*.
//!
//! State is dense: sequence numbers are gapless per (producer, key), so each message has a byte of
//! flags plus a 32-bit position fingerprint (`slots`): 5 bytes per tracked message, one pass, no
//! sorting.

use serde::{Deserialize, Serialize};

use super::slots::{KeySlots, Slots};
use super::{Anomaly, Checker, Facts, PerKey};
use crate::history::{Event, Position};
use crate::message::MsgId;

const INVOKED: u8 = 1;
const OK: u8 = 2;
const FAILED: u8 = 4;
const INDETERMINATE: u8 = 8;
const DELIVERED: u8 = 16;
const PROCESSED: u8 = 32;
/// Found by the final read.
const STORED: u8 = 64;
/// In the idempotent consumers' own store (their processed-ids table).
const IN_STORE: u8 = 128;

#[derive(Default)]
struct KeyState {
    slots: KeySlots,
    /// Highest seq delivered so far and the consumer that delivered it.
    max_seq: Option<u64>,
    last_consumer: u32,
    /// Highest seq the final read found so far: the order of the key as stored.
    stored_max_seq: Option<u64>,
}

#[derive(Default)]
pub struct DeliveryChecker {
    keys: PerKey<KeyState>,
    slots: Slots,
    redeliveries: u64,
    stored_dupes: u64,
    order_first: u64,
    order_redelivered: u64,
    /// First deliveries to the application that the broker flagged as redelivered.
    order_flagged: u64,
    broker_redeliveries: u64,
    /// Values the final read found twice: one value stored at two positions.
    stored_twice: u64,
    stored_order: u64,
    /// Values found by the final read that no consumer had processed, by the second they were
    /// meant to be sent.
    unread_per_second: PerSecond,
    final_read: Option<super::FinalRead>,
    skips: u64,
    effective_dupes: u64,
    dedupe_skips: u64,
    foreign: u64,
    examples: Vec<Anomaly>,
    start: Option<u64>,
    /// Order violations among first deliveries, by the second they happened.
    violations_per_second: PerSecond,
    /// The workload had no consumers: nothing is unread.
    producers_only: bool,
    /// Values a consumer skipped as already processed (`DedupeSkip`): each must have a row in
    /// the store. Few (redeliveries of processed values), so kept as a set.
    dedupe_skipped: rustc_hash::FxHashSet<MsgId>,
    /// Whether the consumers' store was read completely (None: not read, no dedupe).
    store_read: Option<bool>,
    /// The store's rows (t, consumer, id), taken in at the end: they are recorded once the
    /// consumers are gone, but deliveries reach the checkers through the time-order window, so
    /// a delivery's record may come after a row recorded later.
    store_rows: Vec<(u64, u32, MsgId)>,
    /// Values only the store says were processed: their consumer committed and died before
    /// its `Processed` record.
    processed_per_store: u64,
    /// Rows of the store for values never delivered.
    store_rows_undelivered: u64,
}

/// Counts per second since the load started, for the report's timeline.
#[derive(Default)]
struct PerSecond(Vec<u64>);

impl PerSecond {
    /// Count one at `t` (ns since the Unix epoch), if the load has started.
    fn add(&mut self, start: Option<u64>, t: u64) {
        let Some(start) = start else { return };
        let sec = (t.saturating_sub(start) / 1_000_000_000) as usize;
        if self.0.len() <= sec {
            self.0.resize(sec + 1, 0);
        }
        self.0[sec] += 1;
    }
}

/// A few examples of each anomaly are kept so a reader can see what happened.
const EXAMPLES_PER_KIND: usize = 5;

/// A 32-bit fingerprint of a storage position (0 = none). It only has to tell apart the positions
/// of one message, so a collision is a one-in-four-billion missed stored duplicate.
fn pos_hash(pos: &Position) -> u32 {
    use std::hash::BuildHasher;
    let h = match pos {
        Position::Offset { shard, offset } => {
            (*shard as u64).rotate_left(48) ^ (*offset as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        }
        Position::Id { id } => rustc_hash::FxBuildHasher.hash_one(id),
        // Not storage positions: they tell no two stored copies apart.
        Position::Transient { .. } | Position::Unknown => return 0,
    };
    ((h >> 32) as u32 ^ h as u32) | 1
}

impl DeliveryChecker {
    fn example(&mut self, kind: &'static str, t: u64, id: Option<MsgId>, detail: String) {
        if self.examples.iter().filter(|e| e.kind == kind).count() < EXAMPLES_PER_KIND {
            self.examples.push(Anomaly {
                kind: kind.into(),
                t,
                id: id.map(|i| i.dedupe_id()),
                key: id.map(|i| i.key),
                detail,
            });
        }
    }

    fn mark(&mut self, id: MsgId, bit: u8) {
        let k = self.keys.get(id.producer, id.key);
        let slot = self.slots.slot(&mut k.slots, id.seq);
        *self.slots.flags(slot) |= bit;
    }

    /// Returns whether this is the message's first delivery.
    fn deliver(&mut self, t: u64, consumer: u32, id: MsgId, pos: &Position, flagged: bool) -> bool {
        let ph = pos_hash(pos);
        if flagged {
            self.broker_redeliveries += 1;
        }
        let k = self.keys.get(id.producer, id.key);
        let slot = self.slots.slot(&mut k.slots, id.seq);
        if slot.is_implausible() {
            // Counted by `slots`; it must not disturb the key's order state.
            return false;
        }
        let flags = self.slots.flags(slot);
        let first = *flags & DELIVERED == 0;
        *flags |= DELIVERED;
        let mut found: Vec<(&'static str, String)> = Vec::new();
        if first {
            *self.slots.pos(slot) = ph;
            match k.max_seq {
                Some(max) if id.seq < max && flagged => {
                    // The broker said so: a message returned after its consumer failed, seen by
                    // the application for the first time. Not a reordering of fresh messages.
                    self.order_flagged += 1;
                    found.push((
                        "order-violation-flagged",
                        format!(
                            "seq {} delivered after seq {max}, flagged by the broker as redelivered \
                             (consumer {consumer}, {pos})",
                            id.seq
                        ),
                    ));
                }
                Some(max) if id.seq < max => {
                    self.order_first += 1;
                    self.violations_per_second.add(self.start, t);
                    found.push((
                        "order-violation",
                        format!(
                            "seq {} delivered after seq {max} (consumer {consumer}, {pos})",
                            id.seq
                        ),
                    ));
                }
                Some(max) if id.seq > max + 1 && consumer == k.last_consumer => {
                    // A gap is only a skip if the missing values were really sent.
                    let slots = &self.slots;
                    let gap_end = id.seq.min(slots.end(&k.slots));
                    let gap_sent = (max + 1..gap_end).any(|s| {
                        slots
                            .find(&k.slots, s)
                            .is_some_and(|sl| slots.flags_of(sl) & (OK | INDETERMINATE) != 0)
                    });
                    if gap_sent {
                        self.skips += 1;
                        found.push((
                            "skip",
                            format!(
                                "consumer {consumer} went from seq {max} to {} ({pos})",
                                id.seq
                            ),
                        ));
                    }
                }
                _ => {}
            }
            if k.max_seq.is_none_or(|m| id.seq > m) {
                k.max_seq = Some(id.seq);
            }
            k.last_consumer = consumer;
        } else {
            self.redeliveries += 1;
            if k.max_seq.is_some_and(|m| id.seq < m) {
                self.order_redelivered += 1;
            }
            let first_pos = *self.slots.pos(slot);
            // The same stored position read again (a Kafka offset re-read after a rebalance):
            // a redelivery by the broker even where it carries no flag.
            if !flagged && ph != 0 && ph == first_pos {
                self.broker_redeliveries += 1;
            }
            let stored_elsewhere = ph != 0 && first_pos != 0 && first_pos != ph;
            if stored_elsewhere {
                self.stored_dupes += 1;
                found.push((
                    "duplicate-stored",
                    format!("delivered again from another position {pos}"),
                ));
            } else {
                found.push((
                    "redelivery",
                    format!("consumer {consumer} received it again ({pos})"),
                ));
            }
        }
        for (kind, detail) in found {
            self.example(kind, t, Some(id), detail);
        }
        first
    }

    /// `consumer` finished processing `id`: a second time is an effective duplicate.
    #[inline]
    fn processed(&mut self, t: u64, consumer: u32, id: MsgId) {
        let k = self.keys.get(id.producer, id.key);
        let slot = self.slots.slot(&mut k.slots, id.seq);
        let flags = self.slots.flags(slot);
        let again = *flags & PROCESSED != 0;
        *flags |= PROCESSED;
        if again {
            self.effective_dupes += 1;
            let d = format!("processed twice (second time by consumer {consumer})");
            self.example("effective-duplicate", t, Some(id), d);
        }
    }

    /// The consumers' store holds a row for `id`, committed by `consumer` with its effect: it
    /// was processed, whether or not its `Processed` record made it to the history.
    fn in_store(&mut self, t: u64, consumer: u32, id: MsgId) {
        let k = self.keys.get(id.producer, id.key);
        let slot = self.slots.slot(&mut k.slots, id.seq);
        if slot.is_implausible() {
            return;
        }
        let flags = self.slots.flags(slot);
        let before = *flags;
        *flags |= IN_STORE | PROCESSED;
        if before & DELIVERED == 0 {
            self.store_rows_undelivered += 1;
            let d = format!(
                "the consumers' store holds it (consumer {consumer}), but it was never delivered"
            );
            self.example("store-row-undelivered", t, Some(id), d);
        } else if before & PROCESSED == 0 {
            self.processed_per_store += 1;
            let d = format!(
                "consumer {consumer} committed it to its store, but its processing never reached \
                 the history (killed between the two)"
            );
            self.example("processed-per-store", t, Some(id), d);
        }
    }

    /// A value the final read found still stored.
    fn stored(&mut self, t: u64, id: MsgId, intended: u64, pos: &Position) {
        let k = self.keys.get(id.producer, id.key);
        let slot = self.slots.slot(&mut k.slots, id.seq);
        if slot.is_implausible() {
            return;
        }
        let flags = self.slots.flags(slot);
        let again = *flags & STORED != 0;
        let processed = *flags & PROCESSED != 0;
        *flags |= STORED;
        let mut found = Vec::new();
        if again {
            self.stored_twice += 1;
            found.push((
                "duplicate-stored",
                format!("the final read found it twice ({pos})"),
            ));
        } else {
            if let Some(max) = k.stored_max_seq.filter(|&m| id.seq < m) {
                self.stored_order += 1;
                found.push((
                    "stored-order-violation",
                    format!("stored after seq {max} of its key ({pos})"),
                ));
            }
            if k.stored_max_seq.is_none_or(|m| id.seq > m) {
                k.stored_max_seq = Some(id.seq);
            }
            if !processed && !self.producers_only {
                self.unread_per_second.add(self.start, intended);
                found.push((
                    "unread",
                    format!("still stored ({pos}); no consumer processed it"),
                ));
            }
        }
        for (kind, detail) in found {
            self.example(kind, t, Some(id), detail);
        }
    }
}

impl Checker for DeliveryChecker {
    fn observe(&mut self, ev: &Event, facts: &mut Facts) {
        match ev {
            Event::Phase {
                t,
                phase: crate::history::Phase::LoadStart { .. },
            } => self.start = Some(*t),
            Event::Phase {
                phase: crate::history::Phase::ProducersOnly,
                ..
            } => self.producers_only = true,
            Event::SendInvoke { id, .. } => self.mark(*id, INVOKED),
            Event::SendOk { id, .. } => self.mark(*id, OK),
            Event::SendFail { id, .. } => self.mark(*id, FAILED),
            Event::SendInfo { id, .. } => self.mark(*id, INDETERMINATE),
            Event::Deliver {
                t,
                consumer,
                id,
                pos,
                redelivered,
                receive_count,
                ..
            } => {
                let flagged = *redelivered || *receive_count > 1;
                let violations = self.order_first;
                facts.first_delivery = self.deliver(*t, *consumer, *id, pos, flagged);
                facts.order_violation = self.order_first != violations;
            }
            Event::FinalRead {
                t,
                id,
                intended,
                pos,
                ..
            } => self.stored(*t, *id, *intended, pos),
            Event::FinalReadDone {
                outcome,
                read,
                detail,
                ..
            } => {
                self.final_read = Some(super::FinalRead {
                    outcome: super::FinalReadStatus::from(*outcome),
                    read: *read,
                    detail: detail.clone(),
                })
            }
            Event::Processed { t, id, consumer } => self.processed(*t, *consumer, *id),
            Event::DedupeSkip { id, .. } => {
                self.dedupe_skips += 1;
                self.dedupe_skipped.insert(*id);
            }
            Event::StoreHolds { t, consumer, id } => self.store_rows.push((*t, *consumer, *id)),
            Event::StoreRead { complete, .. } => self.store_read = Some(*complete),
            Event::Foreign {
                t,
                consumer,
                detail,
                pos,
            } => {
                self.foreign += 1;
                let d = format!("consumer {consumer}: {detail} ({pos})");
                self.example("unexpected", *t, None, d);
            }
            _ => {}
        }
    }

    type Section = DeliverySection;

    fn finish(mut self) -> DeliverySection {
        for (t, consumer, id) in std::mem::take(&mut self.store_rows) {
            self.in_store(t, consumer, id);
        }
        let final_read = self
            .final_read
            .take()
            .unwrap_or_else(super::FinalRead::not_run);
        let store_read = self.store_read == Some(true);
        let c = self.fates(final_read.verified(), store_read);
        let unbacked = self.unbacked_skips(store_read);
        self.note_implausible();
        self.section(c, unbacked, final_read)
    }
}

impl DeliveryChecker {
    /// Every value's fate from its flags, counted; examples of the lost ones and of processed
    /// ones missing from the consumers' store.
    fn fates(&mut self, verified: bool, store_read: bool) -> Outcomes {
        let mut c = Outcomes::default();
        let mut lost_examples = Vec::new();
        let mut store_examples = Vec::new();
        for ((producer, key), st) in self.keys.iter() {
            for (seq, f) in self.slots.iter(&st.slots) {
                let fate = c.count(f, verified, store_read, self.producers_only);
                let id = MsgId { producer, key, seq };
                if fate.not_in_store && store_examples.len() < EXAMPLES_PER_KIND {
                    store_examples.push(id);
                }
                if fate.lost && lost_examples.len() < EXAMPLES_PER_KIND {
                    lost_examples.push(lost_example(id, f));
                }
            }
        }
        self.examples.extend(lost_examples);
        for id in store_examples {
            let d = "processed, but the consumers' store has no row for it".to_string();
            self.example("processed-not-in-store", 0, Some(id), d);
        }
        c
    }

    /// Skips the store does not back: a skip says "already processed", so the store must hold
    /// the value it skipped (judged only when the store was read completely).
    fn unbacked_skips(&mut self, store_read: bool) -> u64 {
        let mut skipped: Vec<MsgId> = if store_read {
            self.dedupe_skipped.iter().copied().collect()
        } else {
            Vec::new()
        };
        skipped.sort();
        let mut unbacked = 0;
        for id in skipped {
            let k = self.keys.get(id.producer, id.key);
            let backed = self
                .slots
                .find(&k.slots, id.seq)
                .is_some_and(|sl| self.slots.flags_of(sl) & IN_STORE != 0);
            if !backed {
                unbacked += 1;
                let d = "skipped as already processed, but the store has no row for it".into();
                self.example("dedupe-skip-without-row", 0, Some(id), d);
            }
        }
        unbacked
    }

    /// Records whose sequence number no producer of this run could have reached.
    fn note_implausible(&mut self) {
        if let Some(seq) = self.slots.first_implausible {
            let detail = format!(
                "{} record(s) with an implausible sequence number, e.g. {seq} (corrupt?)",
                self.slots.implausible
            );
            self.example("unexpected", 0, None, detail);
        }
    }

    /// The section, from the per-value counts and the checker's running counts.
    fn section(self, c: Outcomes, unbacked: u64, final_read: super::FinalRead) -> DeliverySection {
        DeliverySection {
            delivered: c.distinct,
            lost: c.lost,
            unread: c.unread,
            unverified: c.unverified,
            unexpected: c.unexpected + self.foreign + self.slots.implausible,
            recovered: c.recovered,
            no_outcome: c.no_outcome,
            received_not_processed: c.received_only,
            redeliveries: self.redeliveries,
            broker_redeliveries: self.broker_redeliveries,
            duplicate_rate: if c.distinct > 0 {
                self.redeliveries as f64 / c.distinct as f64
            } else {
                0.0
            },
            // The consumers see a stored duplicate when it is redelivered from its other
            // position; the final read sees every copy still stored. The larger count, never
            // their sum: both may have seen the same copy.
            duplicates_stored: self.stored_dupes.max(self.stored_twice),
            final_read_order_violations: self.stored_order,
            per_key_order_violations: self.order_first,
            per_key_order_violations_redelivered: self.order_redelivered,
            per_key_order_violations_flagged: self.order_flagged,
            skips: self.skips,
            effective_duplicates: self.effective_dupes,
            dedupe_skips: self.dedupe_skips,
            processed_per_store: self.processed_per_store,
            store_anomalies: c.not_in_store + unbacked + self.store_rows_undelivered,
            store_read: self.store_read,
            final_read,
            examples: self.examples,
            order_violations_per_second: self.violations_per_second.0,
            unread_per_second: self.unread_per_second.0,
        }
    }
}

/// What the delivery checker found: each value's fate, redeliveries, order, and examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct DeliverySection {
    /// Distinct values processed by a consumer.
    pub delivered: u64,
    /// Acknowledged, never processed, and not found by a complete final read: gone.
    pub lost: u64,
    /// Found by the final read but never processed by the workload's consumers: the consumers
    /// failed to read them (a liveness failure), the broker did not lose them.
    pub unread: u64,
    /// Acknowledged and never processed, but the final read did not finish (or did not run), so
    /// whether the broker still holds them is not known: neither lost nor unread.
    pub unverified: u64,
    pub unexpected: u64,
    pub recovered: u64,
    /// Sends with no outcome at all (their producer crashed mid-send): counted into
    /// `indeterminate` when the sections are combined.
    #[serde(skip)]
    pub no_outcome: u64,
    /// Received by a consumer that never finished processing them (e.g. crashed after acking).
    pub received_not_processed: u64,
    pub redeliveries: u64,
    /// Deliveries the broker itself marked as redelivered (RabbitMQ's redelivered flag, an SQS
    /// receive count above 1, a Kafka offset read again): counted apart from `redeliveries`, the
    /// values the application saw more than once.
    pub broker_redeliveries: u64,
    pub duplicate_rate: f64,
    pub duplicates_stored: u64,
    /// Per-key order of what the final read found, as the broker stores it (the whole log for
    /// Kafka; what was left in the queues for RabbitMQ and SQS).
    pub final_read_order_violations: u64,
    pub per_key_order_violations: u64,
    pub per_key_order_violations_redelivered: u64,
    /// First deliveries to the application, out of order, that the broker flagged as
    /// redelivered (a message returned after its consumer failed).
    pub per_key_order_violations_flagged: u64,
    pub skips: u64,
    pub effective_duplicates: u64,
    pub dedupe_skips: u64,
    /// Values whose processing only the idempotent consumers' own store records: a consumer
    /// committed them and was killed before its `Processed` record reached the history.
    pub processed_per_store: u64,
    /// Where the store and the history disagree: a skip as "already processed" with no row, a
    /// row for a value never delivered, a value processed with no row.
    pub store_anomalies: u64,
    /// Whether the consumers' store was read completely at the end (None: the workload does
    /// not dedupe, or the history predates the read).
    pub store_read: Option<bool>,
    /// How the final read went; `lost` is verified only when it is complete.
    pub final_read: super::FinalRead,
    pub examples: Vec<Anomaly>,
    /// Per second since the load started, for the timeline (put there when combined).
    #[serde(skip)]
    pub order_violations_per_second: Vec<u64>,
    #[serde(skip)]
    pub unread_per_second: Vec<u64>,
}

/// What the per-message pass counts.
#[derive(Default)]
struct Outcomes {
    distinct: u64,
    lost: u64,
    unread: u64,
    unverified: u64,
    unexpected: u64,
    recovered: u64,
    received_only: u64,
    no_outcome: u64,
    not_in_store: u64,
}

/// What the counts of one value call for beyond themselves: an example.
struct Fate {
    lost: bool,
    not_in_store: bool,
}

impl Outcomes {
    /// Count one value by its flags `f`. `verified`: the final read completed, so a value
    /// found nowhere is lost rather than unverified.
    fn count(&mut self, f: u8, verified: bool, store_read: bool, producers_only: bool) -> Fate {
        let processed = f & PROCESSED != 0;
        let stored = f & STORED != 0;
        // With the store read, every processed value has its row.
        let not_in_store = store_read && processed && f & IN_STORE == 0;
        self.not_in_store += u64::from(not_in_store);
        self.distinct += u64::from(processed);
        self.received_only += u64::from(f & DELIVERED != 0 && !processed);
        self.unexpected += u64::from(f & (DELIVERED | PROCESSED | STORED) != 0 && f & INVOKED == 0);
        // Invoked with no outcome at all (its producer crashed mid-send): as indeterminate as
        // a send that timed out.
        let unresolved = f & INVOKED != 0 && f & (OK | FAILED | INDETERMINATE) == 0;
        self.no_outcome += u64::from(unresolved);
        // An indeterminate send that was stored after all.
        self.recovered +=
            u64::from((f & INDETERMINATE != 0 || unresolved) && (processed || stored));
        self.unread += u64::from(f & INVOKED != 0 && stored && !processed && !producers_only);
        // Acknowledged, never processed, and not found where it should still be.
        let gone = f & OK != 0 && !processed && !stored;
        self.unverified += u64::from(gone && !verified);
        self.lost += u64::from(gone && verified);
        Fate {
            lost: gone && verified,
            not_in_store,
        }
    }
}

/// The example a lost value gives, saying how far it got.
fn lost_example(id: MsgId, f: u8) -> Anomaly {
    let why = if f & DELIVERED != 0 {
        "acknowledged by the broker and received, but never processed, and gone from the broker \
         (acknowledged before processing?)"
    } else {
        "acknowledged by the broker, never delivered, and not found by the final read"
    };
    Anomaly {
        kind: "lost".into(),
        t: 0,
        id: Some(id.dedupe_id()),
        key: Some(id.key),
        detail: why.into(),
    }
}
