//! The open-loop send schedule and key choice. Every message has an *intended* send time fixed in
//! advance by the offered rate, so a slow broker shows up as latency measured from that time
//! rather than as a producer that quietly slows down (no coordinated omission).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::workload::units::Rate;
use crate::workload::KeyDistribution;

/// Intended send times of one producer, in ns since the Unix epoch.
#[derive(Debug, Clone)]
pub struct Schedule {
    start_ns: u64,
    end_ns: u64,
    /// None for `rate: max` (send whenever the in-flight window allows).
    interval_ns: Option<f64>,
    offset_ns: f64,
    n: u64,
}

impl Schedule {
    /// Producer `index` of `producers` sharing `rate`; producers are staggered evenly so the
    /// combined stream is evenly spaced too.
    pub fn new(
        rate: Rate,
        producers: u32,
        index: u32,
        start_ns: u64,
        duration_ns: u64,
    ) -> Schedule {
        let (interval_ns, offset_ns) = match rate {
            Rate::Max => (None, 0.0),
            Rate::PerSecond(r) => {
                let per_producer = r / producers as f64;
                (Some(1e9 / per_producer), index as f64 * 1e9 / r)
            }
        };
        Schedule {
            start_ns,
            end_ns: start_ns + duration_ns,
            interval_ns,
            offset_ns,
            n: 0,
        }
    }

    /// The next intended send time, or None once the schedule has run out. For `rate: max`
    /// returns `now_ns` (the intended time is whenever the producer is able to send).
    pub fn next(&mut self, now_ns: u64) -> Option<u64> {
        let t = match self.interval_ns {
            None => now_ns.max(self.start_ns),
            Some(iv) => self.start_ns + (self.offset_ns + self.n as f64 * iv) as u64,
        };
        if t >= self.end_ns {
            return None;
        }
        self.n += 1;
        Some(t)
    }

    /// Skip the intended times before `ns` (a replacement producer does not send what its
    /// crashed predecessor never sent).
    pub fn skip_until(&mut self, ns: u64) {
        if let Some(iv) = self.interval_ns {
            let first = self.start_ns as f64 + self.offset_ns;
            let behind = ns as f64 - first;
            if behind > 0.0 {
                self.n = self.n.max((behind / iv).ceil() as u64);
            }
        }
    }

    /// How many sends the schedule will produce in total (None for `rate: max`).
    pub fn planned(&self) -> Option<u64> {
        let iv = self.interval_ns?;
        let span = (self.end_ns - self.start_ns) as f64 - self.offset_ns;
        Some(if span <= 0.0 {
            0
        } else {
            (span / iv).ceil() as u64
        })
    }
}

/// Chooses keys and numbers them: each (producer, key) has its own gapless sequence from 0.
pub struct KeyChooser {
    rng: SmallRng,
    zipf: Option<Zipf<f64>>,
    count: u32,
    next_seq: Vec<u64>,
}

impl KeyChooser {
    pub fn new(count: u32, dist: KeyDistribution, seed: u64) -> KeyChooser {
        let zipf = match dist {
            KeyDistribution::Uniform => None,
            // Validation guarantees count >= 1 and s > 0, for which Zipf::new cannot fail.
            KeyDistribution::Zipf(s) => Zipf::new(count as f64, s).ok(),
        };
        KeyChooser {
            rng: SmallRng::seed_from_u64(seed),
            zipf,
            count,
            next_seq: vec![0; count as usize],
        }
    }

    /// Next (key, seq).
    pub fn next_id(&mut self) -> (u32, u64) {
        let key = match &self.zipf {
            // Zipf yields 1..=count; rank 1 (the hottest) is key 0.
            Some(z) => (z.sample(&mut self.rng) as u32).clamp(1, self.count) - 1,
            None => self.rng.random_range(0..self.count),
        };
        let seq = self.next_seq[key as usize];
        self.next_seq[key as usize] += 1;
        (key, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_resumes_at_its_start_without_catching_up() {
        let second = 1_000_000_000;
        let mut s = Schedule::new(Rate::PerSecond(10.0), 1, 0, 0, 10 * second);
        s.skip_until(3 * second + 1);
        assert_eq!(s.next(0), Some(3 * second + 100_000_000));
        let mut max = Schedule::new(Rate::Max, 1, 0, 0, 10 * second);
        max.skip_until(5 * second);
        assert_eq!(max.next(6 * second), Some(6 * second));
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn fixed_rate_gives_exact_count_and_even_spacing() {
        let mut s = Schedule::new(Rate::PerSecond(1000.0), 1, 0, 5 * S, 2 * S);
        assert_eq!(s.planned(), Some(2000));
        let times: Vec<u64> = std::iter::from_fn(|| s.next(0)).collect();
        assert_eq!(times.len(), 2000);
        assert_eq!(times[0], 5 * S);
        assert_eq!(times[1] - times[0], 1_000_000);
        assert!(times.windows(2).all(|w| w[1] > w[0]));
        assert!(*times.last().unwrap() < 7 * S);
    }

    #[test]
    fn producers_share_the_rate_and_interleave() {
        let mut all: Vec<u64> = (0..4)
            .flat_map(|i| {
                let mut s = Schedule::new(Rate::PerSecond(400.0), 4, i, 0, S);
                std::iter::from_fn(move || s.next(0)).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(all.len(), 400);
        all.sort();
        // The merged stream is evenly spaced at 1/400 s.
        assert!(
            all.windows(2).all(|w| w[1] - w[0] == 2_500_000),
            "{:?}",
            &all[..8]
        );
    }

    #[test]
    fn schedule_does_not_depend_on_when_it_is_asked() {
        // A producer that falls behind still gets the original intended times (open loop).
        let mut s = Schedule::new(Rate::PerSecond(10.0), 1, 0, 0, S);
        assert_eq!(s.next(0), Some(0));
        assert_eq!(s.next(900_000_000), Some(100_000_000));
    }

    #[test]
    fn max_rate_uses_now_until_the_end() {
        let mut s = Schedule::new(Rate::Max, 2, 1, 10, 100);
        assert_eq!(s.planned(), None);
        assert_eq!(s.next(50), Some(50));
        assert_eq!(s.next(5), Some(10));
        assert_eq!(s.next(110), None);
    }

    #[test]
    fn sequences_are_gapless_per_key_and_seeded() {
        let mut a = KeyChooser::new(10, KeyDistribution::Uniform, 7);
        let mut b = KeyChooser::new(10, KeyDistribution::Uniform, 7);
        let xs: Vec<(u32, u64)> = (0..1000).map(|_| a.next_id()).collect();
        let ys: Vec<(u32, u64)> = (0..1000).map(|_| b.next_id()).collect();
        assert_eq!(xs, ys);
        for k in 0..10 {
            let seqs: Vec<u64> = xs
                .iter()
                .filter(|(key, _)| *key == k)
                .map(|(_, s)| *s)
                .collect();
            assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn zipf_makes_low_keys_hot() {
        let mut c = KeyChooser::new(100, KeyDistribution::Zipf(1.1), 1);
        let mut hist = [0u32; 100];
        for _ in 0..20_000 {
            hist[c.next_id().0 as usize] += 1;
        }
        assert!(hist[0] > hist[1] && hist[1] > hist[10] && hist[10] > hist[99]);
        let mut u = KeyChooser::new(100, KeyDistribution::Uniform, 1);
        let mut flat = [0u32; 100];
        for _ in 0..20_000 {
            flat[u.next_id().0 as usize] += 1;
        }
        assert!(flat.iter().all(|&n| (120..=280).contains(&n)), "{flat:?}");
    }
}
