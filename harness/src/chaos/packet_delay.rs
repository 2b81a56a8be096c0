//! Packet delay in the kernel's path without `sch_netem`: the local cluster's `delay` command
//! sends a link's packets to a netfilter queue (iptables `NFQUEUE`) inside a node's network
//! namespace, and this loop, started there as `brokerbench delay-packets`, holds each one for
//! its delay before accepting it. TCP on both ends sees the longer round trip, retransmits and
//! all, as it would behind netem. With jitter each packet draws its own delay, so packets can
//! overtake each other, as netem's do; with `reorder`, that share of the packets is passed on
//! at once, ahead of those held (netem's `reorder`).
//!
//! Packets are held in the kernel (only their metadata is copied out), and the queue fails
//! open: if this process dies, packets pass undelayed rather than being dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How long one packet is held: `delay` ± up to `jitter`, uniformly, never below zero; not at
/// all for the share `reorder` (0..=1) of packets, which overtake the held ones.
pub fn draw(delay: Duration, jitter: Duration, reorder: f64, rng: &mut impl Rng) -> Duration {
    if reorder > 0.0 && rng.random_bool(reorder.min(1.0)) {
        return Duration::ZERO;
    }
    if jitter.is_zero() {
        return delay;
    }
    let j = jitter.as_secs_f64();
    let d = delay.as_secs_f64() + rng.random_range(-j..=j);
    Duration::from_secs_f64(d.max(0.0))
}

/// A held packet, ordered by when it is due (then by arrival, so equal delays keep order).
struct Held {
    due: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: nix::libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// The longest a packet waits beyond its delay: the loop looks for new packets this often
/// when none is due sooner.
const POLL: Duration = Duration::from_millis(1);

/// Hold every packet of netfilter queue `queue` for its delay, until SIGTERM or SIGINT; then
/// let everything still held go at once.
pub fn run(queue: u16, delay: Duration, jitter: Duration, reorder: f64, seed: u64) -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_term),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(s, &action) }.context("installing the signal handler")?;
    }
    let mut q = nfq::Queue::open().context("opening a netfilter queue socket (needs root)")?;
    q.bind(queue)
        .with_context(|| format!("binding netfilter queue {queue}"))?;
    q.set_fail_open(queue, true)?;
    q.set_copy_range(queue, 0)?;
    q.set_queue_max_len(queue, 1 << 16)?;
    q.set_nonblocking(true);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    while !STOP.load(Ordering::Relaxed) {
        loop {
            match q.recv() {
                Ok(msg) => {
                    seq += 1;
                    let due = Instant::now() + draw(delay, jitter, reorder, &mut rng);
                    held.push(Reverse(Held { due, seq, msg }));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(e).context("reading the netfilter queue"),
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.0.due <= now) {
            let Some(Reverse(h)) = held.pop() else { break };
            accept(&mut q, h.msg)?;
        }
        let next = held
            .peek()
            .map_or(POLL, |h| h.0.due.saturating_duration_since(now));
        std::thread::sleep(next.min(POLL));
    }
    while let Some(Reverse(h)) = held.pop() {
        accept(&mut q, h.msg)?;
    }
    Ok(())
}

fn accept(q: &mut nfq::Queue, mut msg: nfq::Message) -> Result<()> {
    msg.set_verdict(nfq::Verdict::Accept);
    q.verdict(msg).context("passing a held packet on")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_spread_evenly_within_the_jitter_and_never_go_negative() {
        let mut rng = SmallRng::seed_from_u64(1);
        let (d, j) = (Duration::from_millis(100), Duration::from_millis(20));
        let draws: Vec<f64> = (0..10_000)
            .map(|_| draw(d, j, 0.0, &mut rng).as_secs_f64() * 1e3)
            .collect();
        assert!(draws.iter().all(|ms| (80.0..=120.0).contains(ms)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 100.0).abs() < 1.0, "{mean}");
        assert!(draws.iter().any(|ms| *ms < 85.0) && draws.iter().any(|ms| *ms > 115.0));
        assert_eq!(draw(d, Duration::ZERO, 0.0, &mut rng), d);
        let small = draw(
            Duration::from_millis(1),
            Duration::from_millis(50),
            0.0,
            &mut rng,
        );
        assert!(small <= Duration::from_millis(51));
    }

    #[test]
    fn a_reordered_share_passes_at_once_and_the_rest_wait() {
        let mut rng = SmallRng::seed_from_u64(2);
        let d = Duration::from_millis(20);
        let at_once = (0..10_000)
            .map(|_| draw(d, Duration::ZERO, 0.25, &mut rng))
            .inspect(|x| assert!(*x == Duration::ZERO || *x == d))
            .filter(|x| x.is_zero())
            .count();
        assert!((2_300..2_700).contains(&at_once), "{at_once}");
        assert!((0..100).all(|_| draw(d, Duration::ZERO, 1.0, &mut rng).is_zero()));
    }
}
