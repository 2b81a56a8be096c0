//! The run pass: every event through every checker once, in time order, and the sections they
//! return put together as one broker's `Metrics`.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{cost, delivery, metrics, order, shards, timing};
use super::{Anomaly, CatchUp, Checker, ClientConnection, ClusterView, Facts, FaultWindow};
use super::{FinalRead, LatencySummary, Window};
use crate::history::{self, Event, Stop};

/// Everything measured about one broker's run. Fields added since version 1 default when an
/// older result.json is read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct Metrics {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    /// Sends whose outcome is unknown: no acknowledgement in time, or their producer crashed
    /// mid-send. They may or may not have been stored (see `recovered`).
    pub indeterminate: u64,
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
    /// How the final read went; `lost` is verified only when it is complete.
    pub final_read: FinalRead,
    pub unexpected: u64,
    pub recovered: u64,
    /// Received by a consumer that never finished processing them (e.g. crashed after acking).
    pub received_not_processed: u64,
    pub redeliveries: u64,
    /// Deliveries the broker itself marked as redelivered (RabbitMQ's redelivered flag, an SQS
    /// receive count above 1, a Kafka offset read again): counted apart from `redeliveries`, the
    /// values the application saw more than once.
    pub broker_redeliveries: u64,
    pub duplicate_rate: f64,
    pub duplicates_stored: u64,
    pub per_key_order_violations: u64,
    pub per_key_order_violations_redelivered: u64,
    /// First deliveries to the application, out of order, that the broker flagged as
    /// redelivered (a message returned after its consumer failed).
    pub per_key_order_violations_flagged: u64,
    /// Per-key order of what the final read found, as the broker stores it (the whole log for
    /// Kafka; what was left in the queues for RabbitMQ and SQS).
    pub final_read_order_violations: u64,
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
    /// Acknowledged sends per second after warmup.
    pub throughput: f64,
    /// When the load started (ns since the Unix epoch); every `*_s` figure counts from here.
    pub load_start_ns: u64,
    pub duration_s: f64,
    pub publish_latency: LatencySummary,
    pub end_to_end_latency: LatencySummary,
    /// HdrHistogram V2 serialization (base64), microseconds.
    pub publish_histogram: String,
    pub end_to_end_histogram: String,
    pub availability: f64,
    pub consumer_availability: f64,
    /// The slowest recovery among the faults that recovered. The `recovery_time` metric (see
    /// `metrics`) also counts a fault that never recovered, as forever.
    pub recovery_time: Option<f64>,
    /// Clients of the harness replaced by fresh ones (dead connection or stall watchdog).
    pub reconnects: u64,
    pub faults: Vec<FaultWindow>,
    pub timeline: Vec<Window>,
    pub examples: Vec<Anomaly>,
    /// What the reader skipped at the end of a damaged history.
    pub history_warning: Option<String>,
    /// The history is damaged, not merely cut short at its tail: records the run wrote were
    /// skipped, so what was checked is not the whole run (the run is inconclusive).
    pub history_damaged: bool,
    /// The run was interrupted (Ctrl-C, SIGTERM): what it did not get to was not measured.
    pub interrupted: bool,
    /// What the broker's own processes cost (None when the target names no pid file).
    #[serde(default)]
    pub broker_cost: Option<cost::BrokerCost>,
    /// Deliveries per shard (Kafka partition, RabbitMQ queue) and consumer: how the broker
    /// spread the work. Empty for a broker with one queue (SQS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shard_load: Vec<shards::ShardLoad>,
    /// How the consumers caught up on the backlog the workload built (`load.backlog`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
    /// The window (sends in flight per producer) `max_in_flight: auto` settled on; the largest
    /// if producers differ. None for a fixed window, or one still growing when the load ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_window: Option<u32>,
    /// Which node each client of the harness connected to, and when, where clients choose among
    /// several (RabbitMQ's `urls`); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<ClientConnection>,
    /// The cluster over time, as the target's `view` command described it each time its answer
    /// changed; empty without one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<ClusterView>,
}

impl Metrics {
    /// One broker's metrics from each checker's section: the one place that combines them.
    pub fn assemble(
        counts: Counts,
        d: delivery::DeliverySection,
        t: timing::TimingSection,
        c: cost::CostSection,
        shard_load: Vec<shards::ShardLoad>,
    ) -> Metrics {
        let mut timeline = t.timeline;
        for s in &c.samples {
            // The sample at the end of second n covers second n (counted from the load start).
            let second = s.t.saturating_sub(t.load_start_ns + 1) / 1_000_000_000;
            if let Some(w) = timeline.get_mut(second as usize) {
                w.broker_cpu_cores = Some(s.cores);
                w.broker_rss_bytes = Some(s.rss_bytes);
            }
        }
        for (w, n) in timeline.iter_mut().zip(&d.order_violations_per_second) {
            w.order_violations = *n;
        }
        for (w, n) in timeline.iter_mut().zip(&d.unread_per_second) {
            w.unread = *n;
        }
        Metrics {
            sent: counts.sent,
            acked: counts.acked,
            failed: counts.failed,
            // Sends that timed out, and sends that never got an outcome at all.
            indeterminate: counts.indeterminate + d.no_outcome,
            delivered: d.delivered,
            lost: d.lost,
            unread: d.unread,
            unverified: d.unverified,
            final_read: d.final_read,
            unexpected: d.unexpected,
            recovered: d.recovered,
            received_not_processed: d.received_not_processed,
            redeliveries: d.redeliveries,
            broker_redeliveries: d.broker_redeliveries,
            duplicate_rate: d.duplicate_rate,
            duplicates_stored: d.duplicates_stored,
            per_key_order_violations: d.per_key_order_violations,
            per_key_order_violations_redelivered: d.per_key_order_violations_redelivered,
            per_key_order_violations_flagged: d.per_key_order_violations_flagged,
            final_read_order_violations: d.final_read_order_violations,
            skips: d.skips,
            effective_duplicates: d.effective_duplicates,
            dedupe_skips: d.dedupe_skips,
            processed_per_store: d.processed_per_store,
            store_anomalies: d.store_anomalies,
            store_read: d.store_read,
            throughput: t.throughput,
            load_start_ns: t.load_start_ns,
            duration_s: t.duration_s,
            publish_latency: t.publish_latency,
            end_to_end_latency: t.end_to_end_latency,
            publish_histogram: t.publish_histogram,
            end_to_end_histogram: t.end_to_end_histogram,
            availability: t.availability,
            consumer_availability: t.consumer_availability,
            recovery_time: t.recovery_time,
            catch_up: t.catch_up,
            in_flight_window: t.in_flight_window,
            connections: t.connections,
            cluster: t.cluster,
            reconnects: t.reconnects,
            faults: t.faults,
            timeline,
            examples: d.examples,
            history_warning: None,
            history_damaged: false,
            interrupted: counts.interrupted,
            broker_cost: c.cost,
            shard_load,
        }
    }

    /// The value an `expect:` entry compares against (base units: counts, fractions, seconds);
    /// None for an unknown key or a metric this run did not measure.
    pub fn metric(&self, key: &str) -> Option<f64> {
        metrics::find(key).and_then(|m| (m.get)(self))
    }
}

/// Counts that need no per-message state (the checker is its own section).
#[derive(Debug, Default)]
pub struct Counts {
    sent: u64,
    acked: u64,
    failed: u64,
    indeterminate: u64,
    interrupted: bool,
}

impl Checker for Counts {
    type Section = Counts;

    fn observe(&mut self, ev: &Event, _: &mut Facts) {
        match ev {
            Event::SendInvoke { .. } => self.sent += 1,
            Event::SendOk { .. } => self.acked += 1,
            Event::SendFail { .. } => self.failed += 1,
            Event::SendInfo { .. } => self.indeterminate += 1,
            Event::Phase {
                phase: history::Phase::Interrupted,
                ..
            } => self.interrupted = true,
            _ => {}
        }
    }
    fn finish(self) -> Counts {
        self
    }
}

/// Every checker, called directly rather than through `dyn`: at millions of events per second the
/// indirect calls and the lost inlining were a measurable share of the time.
#[derive(Default)]
struct Checkers {
    counts: Counts,
    delivery: delivery::DeliveryChecker,
    timing: timing::TimingChecker,
    cost: cost::CostChecker,
    shards: shards::ShardChecker,
}

impl Checkers {
    #[inline]
    fn observe(&mut self, ev: &Event) {
        // The delivery checker tells first deliveries from redeliveries for the timing checker.
        let mut facts = Facts::default();
        self.counts.observe(ev, &mut facts);
        self.delivery.observe(ev, &mut facts);
        self.timing.observe(ev, &mut facts);
        self.cost.observe(ev, &mut facts);
        self.shards.observe(ev, &mut facts);
    }

    fn finish(self) -> Metrics {
        Metrics::assemble(
            self.counts.finish(),
            self.delivery.finish(),
            self.timing.finish(),
            self.cost.finish(),
            self.shards.finish(),
        )
    }
}

/// Check a sequence of events (a history read from disk, or a synthetic one in tests).
pub fn check_events(events: impl IntoIterator<Item = Event>) -> Metrics {
    let mut cs = Checkers::default();
    for ev in order::TimeOrdered::new(events.into_iter(), order::WINDOW_NS) {
        cs.observe(&ev);
    }
    cs.finish()
}

/// Stream a history file through every checker. A damaged tail is skipped with a warning.
pub fn check_history(path: &Path) -> Result<Metrics> {
    let mut reader = history::read(path)?;
    let mut io_error = None;
    let events = reader
        .by_ref()
        .map_while(|r| r.map_err(|e| io_error = Some(e)).ok());
    let mut m = check_events(events);
    if let Some(e) = io_error {
        return Err(anyhow::Error::new(e).context(format!("reading history {}", path.display())));
    }
    m.history_damaged = matches!(reader.stop(), Some(Stop::Corrupt { .. }));
    m.history_warning = match reader.stop() {
        Some(Stop::Truncated { skipped_bytes }) => Some(format!(
            "history ends mid-record: checked up to byte {}, skipped {skipped_bytes} bytes",
            reader.offset()
        )),
        Some(Stop::Corrupt {
            skipped_bytes,
            reason,
        }) => Some(format!(
            "history is damaged ({reason}): checked up to byte {}, skipped {skipped_bytes} bytes",
            reader.offset()
        )),
        _ => None,
    };
    Ok(m)
}
