//! The run pass: every event through every checker once, in time order, and the sections they
//! return put together as one broker's `Metrics`.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{cost, decoupling, delivery, metrics, order, rebalance, shards, timing};
use super::{Checker, Facts};
use crate::history::{self, Event, Stop};

/// Everything measured about one broker's run: each checker's section, flattened, so that
/// result.json lists every figure at one level. Fields added since version 1 default when an
/// older result.json is read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default)]
pub struct Metrics {
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(flatten)]
    pub delivery: delivery::DeliverySection,
    #[serde(flatten)]
    pub timing: timing::TimingSection,
    #[serde(flatten)]
    pub cost: cost::CostSection,
    #[serde(flatten)]
    pub shards: shards::ShardSection,
    #[serde(flatten)]
    pub rebalance: rebalance::RebalanceSection,
    /// Derived from the timing checker's seconds in `combine`.
    #[serde(flatten)]
    pub decoupling: decoupling::DecouplingSection,
    /// What the reader skipped at the end of a damaged history.
    pub history_warning: Option<String>,
    /// The history is damaged, not merely cut short at its tail: records the run wrote were
    /// skipped, so what was checked is not the whole run (the run is inconclusive).
    pub history_damaged: bool,
}

impl Metrics {
    /// One broker's metrics from each checker's section. The one place where sections meet:
    /// sends with no outcome count as indeterminate, the per-second timeline takes the
    /// broker's cost and the delivery checker's counts, and the decoupling section is read off
    /// the finished timeline.
    pub fn combine(
        mut counts: Counts,
        mut delivery: delivery::DeliverySection,
        mut timing: timing::TimingSection,
        mut cost: cost::CostSection,
        shards: shards::ShardSection,
        rebalance: rebalance::RebalanceSection,
    ) -> Metrics {
        // Sends that timed out, and sends that never got an outcome at all.
        counts.indeterminate += std::mem::take(&mut delivery.no_outcome);
        let start = timing.load_start_ns;
        let timeline = &mut timing.timeline;
        for s in std::mem::take(&mut cost.samples) {
            // The sample at the end of second n covers second n (counted from the load start).
            let second = s.t.saturating_sub(start + 1) / 1_000_000_000;
            if let Some(w) = timeline.get_mut(second as usize) {
                w.broker_cpu_cores = Some(s.cores);
                w.broker_rss_bytes = Some(s.rss_bytes);
            }
        }
        let order = std::mem::take(&mut delivery.order_violations_per_second);
        for (w, n) in timeline.iter_mut().zip(order) {
            w.order_violations = n;
        }
        let unread = std::mem::take(&mut delivery.unread_per_second);
        for (w, n) in timeline.iter_mut().zip(unread) {
            w.unread = n;
        }
        let decoupling = decoupling::of(&timing);
        Metrics {
            counts,
            delivery,
            timing,
            cost,
            shards,
            rebalance,
            decoupling,
            history_warning: None,
            history_damaged: false,
        }
    }

    /// The value an `expect:` entry compares against (base units: counts, fractions, seconds);
    /// None for an unknown key or a metric this run did not measure.
    pub fn metric(&self, key: &str) -> Option<f64> {
        metrics::find(key).and_then(|m| (m.get)(self))
    }
}

/// Counts that need no per-message state (the checker is its own section).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Counts {
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    /// Sends whose outcome is unknown: no acknowledgement in time, or their producer crashed
    /// mid-send. They may or may not have been stored (see `recovered`).
    pub indeterminate: u64,
    /// The run was interrupted (Ctrl-C, SIGTERM): what it did not get to was not measured.
    pub interrupted: bool,
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
    rebalance: rebalance::RebalanceChecker,
}

impl Checkers {
    #[inline]
    fn observe(&mut self, ev: &Event) {
        // The delivery checker tells first deliveries from redeliveries, and which broke their
        // key's order, for the timing and rebalance checkers.
        let mut facts = Facts::default();
        self.counts.observe(ev, &mut facts);
        self.delivery.observe(ev, &mut facts);
        self.timing.observe(ev, &mut facts);
        self.cost.observe(ev, &mut facts);
        self.shards.observe(ev, &mut facts);
        self.rebalance.observe(ev, &mut facts);
    }

    fn finish(self) -> Metrics {
        Metrics::combine(
            self.counts.finish(),
            self.delivery.finish(),
            self.timing.finish(),
            self.cost.finish(),
            self.shards.finish(),
            self.rebalance.finish(),
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
