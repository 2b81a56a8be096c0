//! Running a stepped rate: which rate runs next on which brokers, and what the steps add up to.
//! A sweep runs every rate on every broker, one rate at a time (so the machine's drift spreads
//! over the brokers). A search bisects, each broker on its own, between nothing and a ceiling,
//! within its step budget; the brokers take turns, one step each per round.

use std::collections::BTreeMap;

use crate::check::sustain::{shown, sustained, Sustained};
use crate::report::sweep::{fmt_rate, BrokerCurve, Curve, Point, Step};
use crate::report::RunResult;
use crate::workload::steps::{rate_label, MAX_SUSTAINABLE_RATE};
use crate::workload::units::Rate;
use crate::workload::{BrokerKind, Steps, Workload};

/// A search stops early once its bracket is this narrow, relative to its top.
const RESOLUTION: f64 = 0.01;

pub struct Stepper<'a> {
    w: &'a Workload,
    steps: &'a Steps,
    brokers: Vec<BrokerKind>,
    /// Sweep: the index of the next rate.
    next: usize,
    searches: BTreeMap<BrokerKind, Search>,
    points: BTreeMap<BrokerKind, Vec<Point>>,
}

/// One broker's bisection: `lo` was sustained (0: nothing yet), `hi` was not (or is the
/// ceiling), `left` runs remain.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    lo: f64,
    hi: Option<f64>,
    /// The top of the range, to be tried first, when the workload gives one.
    top: Option<f64>,
    left: u32,
    done: bool,
}

impl Search {
    pub fn new(to: Option<f64>, steps: u32) -> Search {
        Search {
            lo: 0.0,
            hi: None,
            top: to,
            left: steps,
            done: false,
        }
    }

    /// The rate to run next, or None when the search is over.
    pub fn next(&self) -> Option<Rate> {
        if self.done {
            return None;
        }
        if let Some(top) = self.top {
            return Some(Rate::PerSecond(top));
        }
        match self.hi {
            // No ceiling yet: measure it.
            None => Some(Rate::Max),
            Some(hi) => Some(Rate::PerSecond(((self.lo + hi) / 2.0).round().max(1.0))),
        }
    }

    /// What the run at `rate` showed: whether it was sustained, and what it achieved.
    pub fn record(&mut self, rate: Rate, held: bool, achieved: f64) {
        match rate {
            Rate::Max => {
                // The ceiling is what the broker acknowledged flat out; nothing above it can be
                // sustained. A broker that acknowledged nothing ends the search.
                self.hi = Some(achieved.round());
                self.done = achieved < 1.0;
                return;
            }
            Rate::PerSecond(r) => {
                self.top = None;
                if held {
                    self.lo = r;
                } else {
                    self.hi = Some(r);
                }
                // The top of the range held: nothing above it is asked about.
                if held && self.hi.is_none() {
                    self.done = true;
                }
            }
        }
        self.left = self.left.saturating_sub(1);
        let narrow = self
            .hi
            .is_some_and(|hi| hi - self.lo <= (RESOLUTION * hi).max(1.0));
        self.done |= self.left == 0 || narrow;
    }

    /// The highest rate sustained, once the search is over.
    pub fn found(&self) -> Option<f64> {
        (self.lo > 0.0).then_some(self.lo)
    }
}

impl<'a> Stepper<'a> {
    pub fn new(w: &'a Workload, steps: &'a Steps, brokers: &[BrokerKind]) -> Stepper<'a> {
        let searches = match steps {
            Steps::FindMax { to, steps, .. } => brokers
                .iter()
                .map(|b| (b.clone(), Search::new(*to, *steps)))
                .collect(),
            Steps::Sweep(_) => BTreeMap::new(),
        };
        Stepper {
            w,
            steps,
            brokers: brokers.to_vec(),
            next: 0,
            searches,
            points: BTreeMap::new(),
        }
    }

    /// The next round of runs, each a rate and the brokers to run it on; empty when done.
    pub fn round(&mut self) -> Vec<(Rate, Vec<BrokerKind>)> {
        match self.steps {
            Steps::Sweep(rates) => {
                let Some(&rate) = rates.get(self.next) else {
                    return Vec::new();
                };
                self.next += 1;
                vec![(rate, self.brokers.clone())]
            }
            Steps::FindMax { .. } => self
                .brokers
                .iter()
                .filter_map(|b| Some((self.searches.get(b)?.next()?, vec![b.clone()])))
                .collect(),
        }
    }

    /// The step workload for `rate`, and what its result should say it is.
    pub fn step(&self, rate: Rate) -> (Workload, Step) {
        let step = Step {
            of: self.w.name.clone(),
            offered: match rate {
                Rate::PerSecond(r) => Some(r),
                Rate::Max => None,
            },
            warmup_s: self.w.load.warmup.0.as_secs_f64(),
        };
        (self.w.at(rate), step)
    }

    /// What one step's run measured, for each broker it ran on.
    pub fn record(&mut self, r: &RunResult) {
        let bounds = match self.steps {
            Steps::FindMax { bounds, .. } => bounds.clone(),
            Steps::Sweep(_) => BTreeMap::new(),
        };
        let offered = r.step.as_ref().and_then(|s| s.offered);
        let rate = offered.map_or(Rate::Max, Rate::PerSecond);
        for b in &r.brokers {
            let held = match &b.metrics {
                Some(m) => sustained(
                    offered,
                    m,
                    self.w.load.warmup.0.as_secs_f64(),
                    self.w.consumers.count > 0,
                    &bounds,
                ),
                None => Sustained {
                    held: false,
                    why_not: vec![format!(
                        "the run measured nothing: {}",
                        b.error.as_deref().unwrap_or("no history")
                    )],
                },
            };
            let p = Point::of(r, b, held);
            // The ceiling a search bisects below is the rate its `max` point shows.
            if let Some(s) = self.searches.get_mut(&b.broker) {
                s.record(rate, p.sustained.held, p.achieved);
            }
            self.points.entry(b.broker.clone()).or_default().push(p);
        }
    }

    /// Every broker's curve so far, with its highest sustained rate and the verdict on it.
    pub fn curve(&self) -> Curve {
        let plan = match self.steps {
            Steps::Sweep(rates) => format!(
                "sweep of {} rates: {}",
                rates.len(),
                rates
                    .iter()
                    .map(|r| rate_label(*r))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Steps::FindMax { bounds, to, steps } => format!(
                "find_max: the highest rate sustained with {}, by bisection in at most {steps} steps below {}",
                bounds
                    .iter()
                    .map(|(k, b)| format!("{k} {} {}", b.op.symbol(), shown(k, b.value)))
                    .collect::<Vec<_>>()
                    .join(" and "),
                to.map_or("the rate a `rate: max` run achieved".into(), |t| format!("{t:.0}/s"))
            ),
        };
        let brokers = self
            .brokers
            .iter()
            .map(|b| {
                let points = self.points.get(b).cloned().unwrap_or_default();
                let max = match self.searches.get(b) {
                    Some(s) => s.found(),
                    None => points
                        .iter()
                        .filter(|p| p.sustained.held)
                        .filter_map(|p| p.offered)
                        .reduce(f64::max),
                };
                // A step that could not vouch for its figures leaves the answer unproven.
                let untrusted: Vec<String> = points
                    .iter()
                    .filter_map(|p| {
                        let why = p.inconclusive.as_ref()?;
                        Some(format!(
                            "the step at {} was inconclusive: {why}",
                            fmt_rate(p.offered)
                        ))
                    })
                    .collect();
                let verdict = self.w.expect.get(MAX_SUSTAINABLE_RATE).map(|bound| {
                    crate::check::expect::Verdict::judge(
                        MAX_SUSTAINABLE_RATE,
                        &bound.value,
                        Some(max.unwrap_or(0.0)),
                        &untrusted,
                        None,
                    )
                });
                BrokerCurve {
                    broker: b.clone(),
                    points,
                    max_sustainable_rate: max,
                    verdict,
                }
            })
            .collect();
        Curve {
            workload: self.w.name.clone(),
            plan,
            brokers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a search against a broker that sustains exactly `capacity` msg/s and achieves
    /// `ceiling` flat out; the rates it tried, and what it found.
    fn search(
        to: Option<f64>,
        steps: u32,
        capacity: f64,
        ceiling: f64,
    ) -> (Vec<Rate>, Option<f64>) {
        let mut s = Search::new(to, steps);
        let mut tried = Vec::new();
        while let Some(rate) = s.next() {
            tried.push(rate);
            assert!(tried.len() <= steps as usize + 1, "over budget: {tried:?}");
            match rate {
                Rate::Max => s.record(rate, false, ceiling),
                Rate::PerSecond(r) => s.record(rate, r <= capacity, r.min(capacity)),
            }
        }
        (tried, s.found())
    }

    #[test]
    fn a_search_measures_the_ceiling_then_bisects_below_it() {
        let (tried, found) = search(None, 6, 30_000.0, 64_000.0);
        assert_eq!(tried[0], Rate::Max);
        assert_eq!(tried[1], Rate::PerSecond(32_000.0));
        assert_eq!(tried.len(), 7, "the max run and six steps: {tried:?}");
        // Within one bisection step (64000 / 2^6) below the capacity.
        let found = found.unwrap();
        assert!(found <= 30_000.0 && found > 30_000.0 - 1000.0, "{found}");
    }

    #[test]
    fn a_search_with_a_top_tries_it_first_and_stops_if_it_holds() {
        let (tried, found) = search(Some(10_000.0), 5, 50_000.0, 0.0);
        assert_eq!(tried, [Rate::PerSecond(10_000.0)]);
        assert_eq!(found, Some(10_000.0));
        let (tried, found) = search(Some(10_000.0), 5, 4_000.0, 0.0);
        assert_eq!(tried.len(), 5);
        assert_eq!(tried[1], Rate::PerSecond(5_000.0));
        assert!(found.is_some_and(|f| f <= 4_000.0 && f > 4_000.0 - 10_000.0 / 16.0));
    }

    #[test]
    fn a_search_where_nothing_holds_finds_nothing() {
        let (tried, found) = search(None, 4, 0.0, 1000.0);
        assert_eq!(tried.len(), 5);
        assert_eq!(found, None);
        // A broker that acknowledged nothing flat out is not searched further.
        let (tried, found) = search(None, 4, 0.0, 0.0);
        assert_eq!(tried, [Rate::Max]);
        assert_eq!(found, None);
    }

    #[test]
    fn a_search_stops_once_the_bracket_is_narrow() {
        let (tried, _) = search(Some(100.0), 30, 57.0, 0.0);
        // 100, 50, 75, 63, 57, 60, 59, 58 (then 57..58 is within 1 msg/s).
        assert!(tried.len() < 12, "{tried:?}");
    }

    /// A step whose run could not vouch for its figures leaves the curve's answer unproven: a
    /// `max_sustainable_rate` bound that held is not judged; it passes only when every step was
    /// conclusive.
    #[test]
    fn an_inconclusive_step_leaves_the_curves_verdict_not_judged() {
        use crate::check::expect::Outcome;
        use crate::report::BrokerResult;
        let yaml = "name: curve\nbrokers: [kafka]\nload: { rate: { sweep: [100/s, 200/s] }, duration: 2s }\nexpect: { max_sustainable_rate: \">= 0\" }\n";
        let w = crate::workload::parse(std::path::Path::new("w.yaml"), yaml, &[]).unwrap();
        let steps = w.load.rate.steps().unwrap();
        let kafka = BrokerKind::new("kafka");
        let outcome = |untrusted_step: Option<usize>| {
            let mut stepper = Stepper::new(&w, steps, std::slice::from_ref(&kafka));
            let mut n = 0;
            loop {
                let round = stepper.round();
                if round.is_empty() {
                    break;
                }
                for (rate, _) in round {
                    let (step_w, step) = stepper.step(rate);
                    let mut r = RunResult::new(&format!("r{n}"), &step_w, 1, "local");
                    r.step = Some(step);
                    let mut b = BrokerResult::errored(&kafka, String::new());
                    b.error = None;
                    b.metrics = Some(Default::default());
                    b.inconclusive = match untrusted_step {
                        Some(i) if i == n => vec!["fault #0 (pause) did not happen".into()],
                        _ => Vec::new(),
                    };
                    r.brokers.push(b);
                    stepper.record(&r);
                    n += 1;
                }
            }
            let curve = stepper.curve();
            let v = curve.brokers[0].verdict.clone().unwrap();
            (v.outcome, v.note.unwrap_or_default())
        };
        assert_eq!(outcome(None).0, Outcome::Pass);
        let (o, note) = outcome(Some(1));
        assert_eq!(o, Outcome::NotJudged);
        assert!(
            note.contains("the step at 200") && note.contains("did not happen"),
            "{note}"
        );
    }
}
