//! What the broker cost: its processes' CPU, memory and storage writes, from the `BrokerUsage`
//! samples, against the messages it acknowledged in the same time.

use serde::{Deserialize, Serialize};

use super::{Checker, Facts};
use crate::history::{Event, Phase};

const NS_PER_S: u64 = 1_000_000_000;

/// The broker's own resource use during the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct BrokerCost {
    /// Samples taken (about one a second, while the broker was up).
    pub samples: u64,
    /// CPU cores the broker's processes kept busy on average, after warmup and until the load
    /// ended.
    pub cpu_cores_mean: f64,
    /// The most resident memory they held at any sample.
    pub rss_peak_bytes: u64,
    /// CPU time per message acknowledged in that same time, in microseconds.
    pub cpu_us_per_message: Option<f64>,
    /// Bytes written to storage per second, in that same time.
    pub written_bytes_per_s: f64,
}

/// One sample, as the per-second timeline takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t: u64,
    pub cores: f64,
    pub rss_bytes: u64,
}

#[derive(Default)]
pub struct CostChecker {
    start: Option<u64>,
    warmup_end: Option<u64>,
    load_end: Option<u64>,
    samples: Vec<(u64, u64, u64, u64, u64)>,
    acked: Vec<u64>,
}

/// What the cost checker found: the summary (None without samples) and every sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct CostSection {
    /// What the broker's own processes cost (None when the target names no pid file).
    pub broker_cost: Option<BrokerCost>,
    /// Each second's sample, put into the timeline when the sections are combined.
    #[serde(skip)]
    pub samples: Vec<Sample>,
}

impl Checker for CostChecker {
    type Section = CostSection;

    fn observe(&mut self, ev: &Event, _: &mut Facts) {
        match ev {
            Event::Phase {
                t,
                phase: Phase::LoadStart { warmup_ns, .. },
            } => {
                self.start = Some(*t);
                self.warmup_end = Some(t + warmup_ns);
            }
            Event::Phase {
                t,
                phase: Phase::LoadEnd,
            } => self.load_end = Some(*t),
            Event::SendOk { t, .. } => self.acked.push(*t),
            Event::BrokerUsage {
                t,
                interval_ns,
                cpu_ns,
                rss_bytes,
                written_bytes,
                ..
            } => self
                .samples
                .push((*t, *interval_ns, *cpu_ns, *rss_bytes, *written_bytes)),
            _ => {}
        }
    }

    fn finish(self) -> CostSection {
        let samples: Vec<Sample> = self
            .samples
            .iter()
            .filter(|s| s.1 > 0)
            .map(|&(t, interval, cpu, rss, _)| Sample {
                t,
                cores: cpu as f64 / interval as f64,
                rss_bytes: rss,
            })
            .collect();
        if self.samples.is_empty() {
            return CostSection {
                broker_cost: None,
                samples,
            };
        }
        // The measured time: after warmup, until the load ended (or the last sample).
        let from = self.warmup_end.or(self.start).unwrap_or(0);
        let to = self.load_end.unwrap_or(u64::MAX);
        let within: Vec<_> = self
            .samples
            .iter()
            .filter(|s| s.0 > from && s.0 <= to)
            .collect();
        let busy: u64 = within.iter().map(|s| s.2).sum();
        let span: u64 = within.iter().map(|s| s.1).sum();
        let written: u64 = within.iter().map(|s| s.4).sum();
        // Messages acknowledged in the time those samples cover.
        let covered_from = within.first().map_or(from, |s| s.0.saturating_sub(s.1));
        let covered_to = within.last().map_or(from, |s| s.0);
        let acked = self
            .acked
            .iter()
            .filter(|&&t| t > covered_from && t <= covered_to)
            .count() as u64;
        let secs = span as f64 / NS_PER_S as f64;
        let cost = BrokerCost {
            samples: self.samples.len() as u64,
            cpu_cores_mean: if span > 0 {
                busy as f64 / span as f64
            } else {
                0.0
            },
            rss_peak_bytes: self.samples.iter().map(|s| s.3).max().unwrap_or(0),
            cpu_us_per_message: (acked > 0).then(|| busy as f64 / 1e3 / acked as f64),
            written_bytes_per_s: if secs > 0.0 {
                written as f64 / secs
            } else {
                0.0
            },
        };
        CostSection {
            broker_cost: Some(cost),
            samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NS_PER_S;

    fn usage(t: u64, cpu_ns: u64, rss: u64) -> Event {
        Event::BrokerUsage {
            t,
            interval_ns: S,
            processes: 1,
            cpu_ns,
            rss_bytes: rss,
            written_bytes: 1000,
        }
    }

    #[test]
    fn cost_is_measured_after_warmup_against_what_was_acknowledged_then() {
        let mut c = CostChecker::default();
        let mut f = Facts::default();
        let start = 100 * S;
        let mut events = vec![Event::Phase {
            t: start,
            phase: Phase::LoadStart {
                warmup_ns: 2 * S,
                duration_ns: 6 * S,
            },
        }];
        for s in 1..=8 {
            // Warmup is busy (a core and a half); afterwards half a core.
            let cpu = if s <= 2 { 3 * S / 2 } else { S / 2 };
            events.push(usage(start + s * S, cpu, 1000 + s));
        }
        // 100 acknowledgements a second throughout.
        for i in 0..800 {
            events.push(Event::SendOk {
                t: start + i * S / 100 + 1,
                id: crate::message::MsgId {
                    producer: 0,
                    key: 0,
                    seq: i,
                },
                intended: 0,
                pos: crate::history::Position::Unknown,
            });
        }
        events.push(Event::Phase {
            t: start + 8 * S,
            phase: Phase::LoadEnd,
        });
        for e in &events {
            c.observe(e, &mut f);
        }
        let section = c.finish();
        assert_eq!(section.samples.len(), 8);
        let cost = section.broker_cost.unwrap();
        assert_eq!(cost.samples, 8);
        assert!((cost.cpu_cores_mean - 0.5).abs() < 1e-9, "{cost:?}");
        assert_eq!(cost.rss_peak_bytes, 1008);
        // Half a core over 100 messages a second: 5 ms of CPU per message.
        let per = cost.cpu_us_per_message.unwrap();
        assert!((per - 5000.0).abs() < 1.0, "{cost:?}");
        assert!((cost.written_bytes_per_s - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn without_samples_there_is_no_cost() {
        let c = CostChecker::default();
        assert!(c.finish().broker_cost.is_none());
    }
}
