//! How many sends a producer keeps unacknowledged. A fixed number, or `auto`: start at the
//! driver's `auto_window_start` (1000 unless it knows better) and, after a first second of
//! start-up, double each second for as long as the doublings still raise the acknowledged rate by
//! 2% or more. After two doublings in a row that did not (one second's rate is noisy: one miss is
//! not a plateau), or the first that brings failures or a second without any acknowledgement, it
//! settles on the best window seen: the smallest that reached the highest rate. So `rate: max`
//! measures the broker rather than the harness's window, without drowning a broker that answers
//! a bigger window with timeouts (LocalStack's SQS does, beyond about 3,000 in flight here).

use crate::workload::InFlight;

pub const AUTO_CAP: usize = 128_000;
/// How long each window size is measured before the next step.
const PROBE_NS: u64 = 1_000_000_000;
/// The gain a doubling must bring to be kept. Small, because some brokers gain a little at each
/// doubling over a long way: RabbitMQ's publisher confirms went 13.9k msg/s at 1,000 in flight
/// to 15.5–16.5k at 10,000 here, 3–5% a doubling, and a 5% bar stopped it at 1,000. Noise is
/// what the two misses in a row are for.
const GAIN: f64 = 1.02;

#[derive(Debug)]
pub struct SendWindow {
    size: usize,
    probe: Option<Probe>,
}

#[derive(Debug)]
struct Probe {
    /// When this size's measurement began, and the totals then.
    since_ns: u64,
    acked: u64,
    failed: u64,
    /// Whether the window was full (a send waited for room) since then: a window that never
    /// fills is not what limits the rate.
    full: bool,
    /// The highest acknowledged rate so far, and the window that reached it.
    best: f64,
    best_size: usize,
    /// Doublings in a row that did not beat it.
    misses: u32,
    /// The first second is the client's start-up (connections, metadata): not measured.
    warm: bool,
    /// The last acknowledgement seen, and the longest wait between two since `since_ns`. A
    /// broker that cannot keep up with a window may stop answering for a while and then confirm
    /// a burst (RabbitMQ did, at 128,000 in flight): averaged over the second, such a burst can
    /// even look like a gain.
    last_ns: u64,
    longest_gap_ns: u64,
}

/// A wait this long for any acknowledgement, while probing, means the broker pushes back.
const STALL_NS: u64 = PROBE_NS;

impl SendWindow {
    /// `auto_start`: where an `auto` window begins (`Driver::auto_window_start`).
    pub fn new(spec: InFlight, auto_start: usize) -> SendWindow {
        let auto_start = auto_start.clamp(1, AUTO_CAP);
        match spec {
            InFlight::Fixed(n) => SendWindow {
                size: n.max(1) as usize,
                probe: None,
            },
            InFlight::Auto => SendWindow {
                size: auto_start,
                probe: Some(Probe {
                    since_ns: 0,
                    acked: 0,
                    failed: 0,
                    full: false,
                    best: 0.0,
                    best_size: auto_start,
                    misses: 0,
                    warm: false,
                    last_ns: 0,
                    longest_gap_ns: 0,
                }),
            },
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// A send is waiting for room.
    pub fn full(&mut self) {
        if let Some(p) = &mut self.probe {
            p.full = true;
        }
    }

    /// Still choosing its size.
    pub fn probing(&self) -> bool {
        self.probe.is_some()
    }

    /// Look at the producer's totals so far (acknowledged; failed or without an outcome) at
    /// `now_ns`; Some(size) when the window settled on its size now.
    pub fn observe(&mut self, now_ns: u64, acked: u64, failed: u64) -> Option<usize> {
        let p = self.probe.as_mut()?;
        if p.since_ns == 0 {
            (p.since_ns, p.acked, p.failed, p.last_ns) = (now_ns, acked, failed, now_ns);
            return None;
        }
        p.longest_gap_ns = p.longest_gap_ns.max(now_ns.saturating_sub(p.last_ns));
        p.last_ns = now_ns;
        let elapsed = now_ns.saturating_sub(p.since_ns);
        if elapsed < PROBE_NS {
            return None;
        }
        let rate = acked.saturating_sub(p.acked) as f64 / (elapsed as f64 / 1e9);
        let failing = failed > p.failed;
        let stalled = p.longest_gap_ns >= STALL_NS;
        let full = p.full;
        (p.since_ns, p.acked, p.failed, p.full) = (now_ns, acked, failed, false);
        p.longest_gap_ns = 0;
        if !p.warm {
            p.warm = true;
            return None;
        }
        let settle = if failing || (stalled && full) {
            // The best size before the failures or the stall (the start, if it had them already).
            Some(p.best_size.min(self.size))
        } else if !full {
            // Not window-bound this second (a fixed rate, or a stall): nothing to learn.
            None
        } else {
            if rate >= p.best * GAIN {
                (p.best, p.best_size, p.misses) = (rate, self.size, 0);
            } else {
                p.misses += 1;
            }
            if p.misses >= 2 || self.size >= AUTO_CAP {
                Some(p.best_size)
            } else {
                self.size = (self.size * 2).min(AUTO_CAP);
                None
            }
        };
        if let Some(size) = settle {
            self.size = size;
            self.probe = None;
        }
        settle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed a window a tenth of a second at a time from a broker whose acknowledged rate is
    /// `rate(size)`, failing above `fails_above`; the sizes it tried and where it settled.
    fn probe(rate: impl Fn(usize) -> f64, fails_above: usize) -> (Vec<usize>, usize) {
        probe_from(1000, rate, fails_above)
    }

    fn probe_from(
        start: usize,
        rate: impl Fn(usize) -> f64,
        fails_above: usize,
    ) -> (Vec<usize>, usize) {
        probe_with(start, |size, _| rate(size) as u64 / 10, fails_above)
    }

    /// `acks(size, tick)`: what the broker acknowledges in the tenth of a second `tick`.
    fn probe_with(
        start: usize,
        acks: impl Fn(usize, u64) -> u64,
        fails_above: usize,
    ) -> (Vec<usize>, usize) {
        let mut w = SendWindow::new(InFlight::Auto, start);
        let (mut acked, mut failed, mut t) = (0u64, 0u64, 1u64);
        let mut tried = vec![w.size()];
        w.observe(t, 0, 0);
        for tick in 0..300 {
            t += PROBE_NS / 10;
            let n = acks(w.size(), tick);
            if n == 0 {
                continue; // nothing acknowledged: the producer has nothing to look at
            }
            acked += n;
            if w.size() > fails_above {
                failed += 1;
            }
            w.full();
            let before = w.size();
            if let Some(settled) = w.observe(t, acked, failed) {
                return (tried, settled);
            }
            if w.size() != before {
                tried.push(w.size());
            }
        }
        panic!("never settled: {tried:?}");
    }

    #[test]
    fn auto_doubles_until_doubling_no_longer_pays() {
        // Throughput grows with the window up to 8,000 in flight, then stays.
        let (tried, settled) = probe(|n| 40.0 * n.min(8000) as f64, usize::MAX);
        assert_eq!(tried, [1000, 2000, 4000, 8000, 16000, 32000]);
        assert_eq!(
            settled, 8000,
            "16,000 and 32,000 did no better: the smaller window is kept"
        );
    }

    #[test]
    fn auto_follows_a_broker_that_gains_a_little_at_every_doubling() {
        // 3% more for each doubling up to 16,000 in flight, as RabbitMQ's confirms do.
        let rate = |n: usize| 13_900.0 * 1.03f64.powf((n.min(16_000) as f64 / 1000.0).log2());
        let (tried, settled) = probe(rate, usize::MAX);
        assert_eq!(tried, [1000, 2000, 4000, 8000, 16000, 32000, 64000]);
        assert_eq!(settled, 16_000);
    }

    #[test]
    fn auto_starts_where_the_driver_says_and_keeps_the_start_when_it_fails_at_once() {
        // A driver that starts at 8,000: the doublings go on from there.
        let (tried, settled) = probe_from(8000, |n| 10.0 * n.min(32_000) as f64, usize::MAX);
        assert_eq!(tried, [8000, 16000, 32000, 64000, 128000]);
        assert_eq!(settled, 32_000);
        // Failures already at the start: it keeps the start, the smallest it has tried.
        let (_, settled) = probe_from(8000, |n| n as f64, 4000);
        assert_eq!(settled, 8000);
    }

    #[test]
    fn auto_backs_off_from_a_window_that_brings_failures() {
        let (tried, settled) = probe(|n| 10.0 * n as f64, 3000);
        assert_eq!(tried, [1000, 2000, 4000]);
        assert_eq!(settled, 2000);
    }

    #[test]
    fn auto_settles_before_a_window_that_makes_the_broker_stall() {
        // Above 8,000 in flight the broker stops answering for 1.5 s and then confirms in a
        // burst, more than it did per second before: averaged, that would look like a gain.
        let (tried, settled) = probe_with(
            1000,
            |n, tick| match n {
                n if n > 8000 => u64::from(tick % 20 == 19) * 500_000,
                n => n as u64,
            },
            usize::MAX,
        );
        assert_eq!(tried, [1000, 2000, 4000, 8000, 16000]);
        assert_eq!(settled, 8000, "the window before the stalls");
    }

    #[test]
    fn auto_is_not_fooled_by_one_slow_second() {
        // 4,000 had a bad second; 8,000 still paid, so the growth goes on.
        let (tried, settled) = probe(
            |n| match n {
                4000 => 20_000.0,
                n => 10.0 * n.min(16_000) as f64,
            },
            usize::MAX,
        );
        assert_eq!(tried, [1000, 2000, 4000, 8000, 16000, 32000, 64000]);
        assert_eq!(settled, 16_000);
    }

    #[test]
    fn auto_stops_at_its_cap_and_fixed_windows_never_move() {
        let (_, settled) = probe(|n| n as f64, usize::MAX);
        assert_eq!(settled, AUTO_CAP);
        let mut w = SendWindow::new(InFlight::Fixed(500), 1000);
        w.full();
        assert_eq!(w.observe(1, 0, 0), None);
        assert_eq!(w.observe(5 * PROBE_NS, 1_000_000, 0), None);
        assert_eq!(w.size(), 500);
    }

    #[test]
    fn a_window_that_never_fills_learns_nothing() {
        let mut w = SendWindow::new(InFlight::Auto, 1000);
        w.observe(1, 0, 0);
        assert_eq!(w.observe(1 + PROBE_NS, 1000, 0), None);
        assert_eq!(w.observe(1 + 2 * PROBE_NS, 2000, 0), None);
        assert_eq!((w.size(), w.probing()), (1000, true));
    }
}
