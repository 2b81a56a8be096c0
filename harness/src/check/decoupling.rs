//! What asynchronous messaging bought, from the timing checker's seconds: for each stretch in
//! which the consumers processed nothing while a backlog waited (consumers taken away, crashed,
//! paused or cut off), what the producers saw meanwhile, the backlog it built and how long the
//! consumers took to drain it; and what a synchronous caller of the same consumers would have
//! seen, the article's availability arithmetic done on the measured seconds.

use serde::{Deserialize, Serialize};

use super::timing::{TimingSection, Window};

/// A stretch shorter than this is ordinary jitter between deliveries, not an outage.
const MIN_OUTAGE_S: usize = 2;

/// The backlog counts as drained once it is back to what it was before the outage, or to 1%
/// of its peak if that is more.
const DRAINED: f64 = 0.01;

/// Seconds of the load in which the consumers processed nothing while a backlog waited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConsumerOutage {
    /// Seconds since the load started: the outage's first second and the end of its last.
    pub from: f64,
    pub to: f64,
    /// The share of the producers' send attempts in it that succeeded (None: none made).
    pub producer_availability: Option<f64>,
    /// Sends the broker acknowledged meanwhile: accepted while nobody could process them.
    pub accepted: u64,
    /// Acknowledged and not yet processed, at its end.
    pub backlog: i64,
    /// Seconds from its end until the backlog was back to where it was before it (or to 1%
    /// of its peak); None if that did not happen before the run ended.
    pub drained_after: Option<f64>,
}

/// Decoupling, per broker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct DecouplingSection {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumer_outages: Vec<ConsumerOutage>,
    /// Requests a synchronous caller of the consumers would have had fail: every send attempted
    /// while they were out.
    pub sync_failed_requests: u64,
    /// Over the load's seconds, the mean of (producers' availability × whether the consumers
    /// processed): a synchronous chain of the two. Compare it with `availability`, what the
    /// producers saw with the broker between them. None when nothing was sent.
    pub sync_chain_availability: Option<f64>,
}

/// A second in which the consumers were out: a backlog waited and nothing was processed.
fn consumers_out(w: &Window) -> bool {
    w.unseen > 0 && w.delivered == 0
}

/// The share of the second's completed send attempts that succeeded.
fn producers_up(w: &Window) -> Option<f64> {
    let attempts = w.acked + w.failed;
    (attempts > 0).then(|| w.acked as f64 / attempts as f64)
}

/// The decoupling section from the timing checker's seconds (load and drain).
pub fn of(timing: &TimingSection) -> DecouplingSection {
    let windows = &timing.timeline;
    let load_seconds = (timing.duration_s.ceil() as usize).min(windows.len());
    let load = &windows[..load_seconds];
    let outages = stretches(load);
    let sync_failed_requests = outages
        .iter()
        .flat_map(|&(a, b)| &load[a..b])
        .map(|w| w.acked + w.failed)
        .sum();
    let chain: Vec<f64> = load
        .iter()
        .filter_map(|w| producers_up(w).map(|p| if consumers_out(w) { 0.0 } else { p }))
        .collect();
    DecouplingSection {
        consumer_outages: outages
            .into_iter()
            .map(|(a, b)| outage(windows, a, b))
            .collect(),
        sync_failed_requests,
        sync_chain_availability: (!chain.is_empty())
            .then(|| chain.iter().sum::<f64>() / chain.len() as f64),
    }
}

/// The [first, end) indices of each run of at least `MIN_OUTAGE_S` seconds with the consumers
/// out.
fn stretches(load: &[Window]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = None;
    for (i, w) in load.iter().enumerate() {
        match (consumers_out(w), from) {
            (true, None) => from = Some(i),
            (false, Some(a)) => {
                out.push((a, i));
                from = None;
            }
            _ => {}
        }
    }
    out.extend(from.map(|a| (a, load.len())));
    out.retain(|(a, b)| b - a >= MIN_OUTAGE_S);
    out
}

fn outage(windows: &[Window], a: usize, b: usize) -> ConsumerOutage {
    let during = &windows[a..b];
    let (acked, failed) = during
        .iter()
        .fold((0, 0), |(o, f), w| (o + w.acked, f + w.failed));
    let backlog = during.last().map_or(0, |w| w.unseen);
    let before = a.checked_sub(1).map_or(0, |i| windows[i].unseen.max(0));
    let drained_at = (before as f64).max(backlog as f64 * DRAINED);
    let drained_after = windows[b..]
        .iter()
        .position(|w| (w.unseen as f64) <= drained_at)
        .map(|k| (k + 1) as f64);
    ConsumerOutage {
        from: a as f64,
        to: b as f64,
        producer_availability: (acked + failed > 0).then(|| acked as f64 / (acked + failed) as f64),
        accepted: acked,
        backlog,
        drained_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(i: u64, acked: u64, failed: u64, delivered: u64, unseen: i64) -> Window {
        Window {
            second: i,
            acked,
            failed,
            delivered,
            unseen,
            ..Default::default()
        }
    }

    #[test]
    fn an_outage_is_what_the_producers_saw_the_backlog_it_built_and_its_drain() {
        let timeline = vec![
            second(0, 10, 0, 10, 0),
            // One second without deliveries is jitter, not an outage.
            second(1, 10, 0, 0, 10),
            second(2, 10, 0, 20, 0),
            // Three seconds out, one failed send among them.
            second(3, 10, 0, 0, 10),
            second(4, 9, 1, 0, 19),
            second(5, 10, 0, 0, 29),
            // Draining: back to 0 at the end of second 7.
            second(6, 10, 0, 25, 14),
            second(7, 10, 0, 24, 0),
        ];
        let timing = TimingSection {
            timeline,
            duration_s: 8.0,
            ..Default::default()
        };
        let d = of(&timing);
        assert_eq!(
            d.consumer_outages,
            [ConsumerOutage {
                from: 3.0,
                to: 6.0,
                producer_availability: Some(29.0 / 30.0),
                accepted: 29,
                backlog: 29,
                drained_after: Some(2.0),
            }]
        );
        assert_eq!(d.sync_failed_requests, 30);
        // Eight seconds: the chain was up in four, and down in the four the consumers were out
        // (the jitter second too: a synchronous call then had no one to answer it).
        let chain = d.sync_chain_availability.expect("measured");
        assert!((chain - 4.0 / 8.0).abs() < 1e-9, "{chain}");
    }
}
