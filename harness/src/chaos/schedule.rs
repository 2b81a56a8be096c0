//! Fault schedules: which workers a fault hits and when, expanded from the workload's `faults:`
//! into concrete windows before the run starts (so the schedule is known, printed and stored).

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::proxy::toxic::{Group, Toxic};
use crate::message::{sub_seed, Stream};
use crate::workload::{Fault, FaultKind};

/// Which workers a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Targets {
    One,
    All,
    Count(u32),
    Fraction(f64),
}

impl Targets {
    /// How many of `n` workers are hit (at least one when n > 0).
    pub fn how_many(self, n: u32) -> u32 {
        let k = match self {
            Targets::One => 1,
            Targets::All => n,
            Targets::Count(c) => c,
            Targets::Fraction(f) => (f * n as f64).round() as u32,
        };
        k.clamp(n.min(1), n)
    }
}

pub fn parse_target(s: &str) -> Result<Targets, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "invalid target {s:?}; expected `one`, `all`, a number, or a percentage such as 50%"
        )
    };
    match t {
        "one" => Ok(Targets::One),
        "all" => Ok(Targets::All),
        _ => {
            if let Some(p) = t.strip_suffix('%') {
                let f: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&f) || f == 0.0 {
                    return Err(bad());
                }
                Ok(Targets::Fraction(f / 100.0))
            } else {
                let n: u32 = t.parse().map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                Ok(Targets::Count(n))
            }
        }
    }
}

/// One concrete fault occurrence: when, on how many workers, and the workload's fault it comes
/// from (validated against its kind's table entry before the run).
#[derive(Debug, Clone)]
pub struct Window {
    /// Position in the expanded schedule; the history's fault records use it.
    pub index: u32,
    /// Offset from the start of the load.
    pub start: Duration,
    /// When the fault is undone (pause ends, crashed worker restarts); None: never.
    pub stop: Option<Duration>,
    pub targets: Targets,
    /// Network faults: what the proxy does, and to which client groups.
    pub toxic: Option<Toxic>,
    pub groups: Vec<Group>,
    /// The fault as the workload wrote it.
    pub spec: Fault,
}

impl Window {
    pub fn kind(&self) -> FaultKind {
        self.spec.kind
    }
}

/// What a network fault puts on the proxy, and for which client groups (none for the other
/// families); the fault table knows (`faults::windows` passes it in).
pub type Resolve = fn(&Fault) -> (Option<Toxic>, Vec<Group>);

/// Expand fault specs into windows sorted by start. `random` windows come from `seed`.
pub fn expand(
    faults: &[Fault],
    load_duration: Duration,
    seed: u64,
    resolve: Resolve,
) -> Vec<Window> {
    let mut rng = SmallRng::seed_from_u64(sub_seed(seed, Stream::FaultTimes, 0));
    let mut out = Vec::new();
    for f in faults {
        let targets = f
            .target
            .as_deref()
            .and_then(|t| parse_target(t).ok())
            .unwrap_or(Targets::One);
        let undo = f.restart_after.or(f.duration).map(|d| d.0);
        let (toxic, groups) = resolve(f);
        let starts: Vec<Duration> = if let Some(n) = f.random {
            let latest = load_duration
                .saturating_sub(undo.unwrap_or_default())
                .max(f.at.0);
            let mut v: Vec<Duration> = (0..n).map(|_| rng.random_range(f.at.0..=latest)).collect();
            v.sort();
            v
        } else {
            let (every, count) = (
                f.every.map(|e| e.0).unwrap_or_default(),
                f.count.unwrap_or(1),
            );
            (0..count).map(|i| f.at.0 + every * i).collect()
        };
        for start in starts {
            out.push(Window {
                index: 0,
                start,
                stop: undo.map(|u| start + u),
                targets,
                toxic: toxic.clone(),
                groups: groups.clone(),
                spec: f.clone(),
            });
        }
    }
    out.sort_by_key(|w| w.start);
    for (i, w) in out.iter_mut().enumerate() {
        w.index = i as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::units::Dur;

    fn fault(kind: FaultKind, at: u64) -> Fault {
        Fault {
            kind,
            at: Dur::secs(at),
            random: None,
            every: None,
            count: None,
            duration: None,
            restart_after: None,
            target: None,
            workers: None,
            between: None,
            direction: None,
            latency: None,
            jitter: None,
            rate: None,
            slice_size: None,
            slice_delay: None,
            bytes: None,
            delay: None,
            reset_after: None,
            shape: None,
            loss: None,
            correlation: None,
            duplicate: None,
            corrupt: None,
            links: None,
            reorder: None,
            to: None,
        }
    }

    #[test]
    fn targets_parse_and_count() {
        assert_eq!(parse_target("one"), Ok(Targets::One));
        assert_eq!(parse_target("all").map(|t| t.how_many(3)), Ok(3));
        assert_eq!(parse_target("2").map(|t| t.how_many(3)), Ok(2));
        assert_eq!(parse_target("50%").map(|t| t.how_many(4)), Ok(2));
        assert_eq!(parse_target("1%").map(|t| t.how_many(4)), Ok(1));
        assert_eq!(parse_target("5").map(|t| t.how_many(3)), Ok(3));
        assert!(parse_target("0").is_err());
        assert!(parse_target("some").is_err());
        assert!(parse_target("150%").is_err());
    }

    #[test]
    fn fixed_and_repeated_windows_in_start_order() {
        let mut crash = fault(FaultKind::ConsumerCrash, 20);
        crash.restart_after = Some(Dur::secs(5));
        let mut pause = fault(FaultKind::Pause, 5);
        pause.duration = Some(Dur::secs(2));
        pause.every = Some(Dur::secs(10));
        pause.count = Some(3);
        let w = expand(&[crash, pause], Duration::from_secs(60), 1, |_| {
            (None, Vec::new())
        });
        let starts: Vec<u64> = w.iter().map(|w| w.start.as_secs()).collect();
        assert_eq!(starts, vec![5, 15, 20, 25]);
        assert_eq!(w[2].kind(), FaultKind::ConsumerCrash);
        assert_eq!(w[2].stop, Some(Duration::from_secs(25)));
        assert_eq!(w[0].stop, Some(Duration::from_secs(7)));
        assert_eq!(
            w.iter().map(|w| w.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn random_windows_are_reproducible_from_the_seed_and_fit_the_load() {
        let mut f = fault(FaultKind::Pause, 10);
        f.duration = Some(Dur::secs(5));
        f.random = Some(4);
        let a = expand(
            std::slice::from_ref(&f),
            Duration::from_secs(60),
            42,
            |_| (None, Vec::new()),
        );
        let b = expand(
            std::slice::from_ref(&f),
            Duration::from_secs(60),
            42,
            |_| (None, Vec::new()),
        );
        let c = expand(
            std::slice::from_ref(&f),
            Duration::from_secs(60),
            43,
            |_| (None, Vec::new()),
        );
        let starts = |w: &[Window]| w.iter().map(|w| w.start).collect::<Vec<_>>();
        assert_eq!(starts(&a), starts(&b));
        assert_ne!(starts(&a), starts(&c));
        assert_eq!(a.len(), 4);
        assert!(a
            .iter()
            .all(|w| w.start >= Duration::from_secs(10)
                && w.stop.unwrap() <= Duration::from_secs(60)));
    }
}
