//! Packet faults decided packet by packet, in the kernel's path, without `sch_netem`: the local
//! cluster's `delay`, `corrupt` and correlated `loss` commands send a link's packets to a
//! netfilter queue (iptables `NFQUEUE`) inside a node's network namespace, and this loop,
//! started there as `brokerbench packet-faults`, decides each packet's fate:
//!
//! - **loss**: dropped, with the chance `loss`; with `correlation` the drops come in bursts
//!   (a two-state Gilbert chain, below) while the long-run share stays `loss`;
//! - **corrupt**: one bit of its TCP or UDP segment flipped after its checksum is made whole,
//!   so the receiving kernel finds the checksum wrong and drops it (and counts it), as it
//!   would a packet a real link damaged; TCP then retransmits;
//! - **delay**: held for `delay` ± up to `jitter` before it is let go; with jitter packets may
//!   overtake each other, as netem's do; with `reorder`, that share passes at once, ahead of
//!   those held (netem's `reorder`).
//!
//! Several faults on one link stack, as netem's options do: each loop marks the packets it lets
//! go with its own bit and hands them back to the same netfilter hook (`NF_REPEAT`), where the
//! next fault's rule, which skips packets with their bit set, takes them.
//!
//! TCP on both ends sees what it would behind netem: retransmits, longer round trips, segments
//! out of order. Packets wait in the kernel (only their metadata is copied out, unless they may
//! be corrupted), and the queue fails open: if this process dies, packets pass untouched
//! rather than being dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use etherparse::{IpNumber, Ipv4Slice, TcpSlice, UdpSlice};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What the loop does to the packets of its queue. Shares are 0 to 1.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spec {
    pub delay: Duration,
    pub jitter: Duration,
    pub reorder: f64,
    pub loss: f64,
    pub correlation: f64,
    pub corrupt: f64,
}

/// What becomes of one packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fate {
    Drop,
    /// Let go after this long, with one bit flipped first if `corrupt`.
    Pass {
        after: Duration,
        corrupt: bool,
    },
}

/// Draws each packet's fate in turn; the loss chain remembers whether the last packet was lost.
pub struct Fates {
    spec: Spec,
    rng: SmallRng,
    lost_last: bool,
}

impl Fates {
    pub fn new(spec: Spec, seed: u64) -> Fates {
        Fates {
            spec,
            rng: SmallRng::seed_from_u64(seed),
            lost_last: false,
        }
    }

    pub fn draw(&mut self) -> Fate {
        if self.lost() {
            return Fate::Drop;
        }
        let corrupt = self.spec.corrupt > 0.0 && self.rng.random_bool(self.spec.corrupt.min(1.0));
        let s = self.spec;
        Fate::Pass {
            after: hold_for(s.delay, s.jitter, s.reorder, &mut self.rng),
            corrupt,
        }
    }

    /// Loss as a two-state chain (the simple Gilbert model): after a kept packet the next is
    /// lost with p·(1−ρ), after a lost one with p + ρ·(1−p). Its long-run loss is p and the
    /// correlation of two packets in a row is ρ, so bursts average 1 / ((1−p)·(1−ρ)) packets.
    /// (netem's own `loss P CORR` mixes each draw with the last one instead, which lowers the
    /// loss actually seen below P; its `loss gemodel` is this chain.)
    fn lost(&mut self) -> bool {
        let (p, rho) = (self.spec.loss, self.spec.correlation);
        if p <= 0.0 {
            return false;
        }
        let chance = if self.lost_last {
            p + rho * (1.0 - p)
        } else {
            p * (1.0 - rho)
        };
        self.lost_last = self.rng.random_bool(chance.clamp(0.0, 1.0));
        self.lost_last
    }
}

/// How long one packet is held: `delay` ± up to `jitter`, uniformly, never below zero; not at
/// all for the share `reorder` (0..=1) of packets, which overtake the held ones.
pub fn hold_for(delay: Duration, jitter: Duration, reorder: f64, rng: &mut impl Rng) -> Duration {
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

/// Damage an IPv4 TCP or UDP packet as a link would: first make its transport checksum whole
/// (a packet the local stack sent may carry only a partial one, left for the NIC to finish),
/// then flip one bit of the segment, header or data. Any single flipped bit breaks the
/// checksum, so the receiver drops the packet. Returns false, leaving the packet as it was, for
/// anything else (the loop passes those untouched).
pub fn corrupt(packet: &mut [u8], rng: &mut impl Rng) -> bool {
    let Some(Segment {
        bytes,
        checksum,
        udp,
    }) = whole_checksum(packet)
    else {
        return false;
    };
    loop {
        let bit = rng.random_range(0..bytes.len() * 8);
        let at = bytes.start + bit / 8;
        packet[at] ^= 1 << (bit % 8);
        // A zero UDP checksum means "none": the receiver would take the damaged datagram.
        if udp && packet[checksum..checksum + 2] == [0, 0] {
            packet[at] ^= 1 << (bit % 8);
            continue;
        }
        return true;
    }
}

/// Where a packet's TCP or UDP segment lies, and its checksum field.
struct Segment {
    bytes: std::ops::Range<usize>,
    checksum: usize,
    udp: bool,
}

/// Write the correct checksum into an IPv4 TCP or UDP packet, and say where its segment is;
/// None for a packet that is neither (or is truncated, or a fragment).
fn whole_checksum(packet: &mut [u8]) -> Option<Segment> {
    let ip = Ipv4Slice::from_slice(packet).ok()?;
    let payload = ip.payload();
    if payload.fragmented {
        return None;
    }
    let (src, dst) = (ip.header().source(), ip.header().destination());
    let start = ip.header().slice().len();
    let bytes = start..start + payload.payload.len();
    let (sum, checksum, udp) = match payload.ip_number {
        IpNumber::TCP => {
            let tcp = TcpSlice::from_slice(payload.payload).ok()?;
            (tcp.calc_checksum_ipv4(src, dst).ok()?, start + 16, false)
        }
        IpNumber::UDP => {
            let udp = UdpSlice::from_slice(payload.payload).ok()?;
            let sum = udp
                .to_header()
                .calc_checksum_ipv4_raw(src, dst, udp.payload())
                .ok()?;
            (sum, start + 6, true)
        }
        _ => return None,
    };
    packet
        .get_mut(checksum..checksum + 2)?
        .copy_from_slice(&sum.to_be_bytes());
    Some(Segment {
        bytes,
        checksum,
        udp,
    })
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

/// Stop when the coordinator whose control command started this loop is gone (its pid comes
/// in `BROKERBENCH_OWNER`, which every control command gets): a coordinator killed with
/// SIGKILL never heals, and no fault may outlive its run. Its rules stay until a heal
/// (`brokerbench leftovers --delete`), and the queue fails open meanwhile.
fn watch_owner() {
    let Some(pid) = std::env::var("BROKERBENCH_OWNER")
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    // Gone, or a zombie its parent has not reaped yet.
    let gone = move || matches!(super::process::state(pid), None | Some('Z'));
    std::thread::spawn(move || {
        while !STOP.load(Ordering::Relaxed) {
            if gone() {
                crate::note!("packet-faults: the coordinator (pid {pid}) is gone; stopping");
                STOP.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}

/// The longest a packet waits beyond its delay: the loop looks for new packets this often
/// when none is due sooner.
const POLL: Duration = Duration::from_millis(1);

/// Decide the fate of every packet of netfilter queue `queue` until SIGTERM or SIGINT; then
/// let everything still held go at once. Packets let go carry `mark` in their netfilter mark.
pub fn run(queue: u16, mark: u32, spec: Spec, seed: u64) -> Result<()> {
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
    watch_owner();
    let mut q = nfq::Queue::open().context("opening a netfilter queue socket (needs root)")?;
    q.bind(queue)
        .with_context(|| format!("binding netfilter queue {queue}"))?;
    q.set_fail_open(queue, true)?;
    // Only a packet that may be corrupted needs its bytes in user space.
    q.set_copy_range(queue, if spec.corrupt > 0.0 { u16::MAX } else { 0 })?;
    q.set_queue_max_len(queue, 1 << 16)?;
    q.set_nonblocking(true);
    let mut fates = Fates::new(spec, seed);
    let mut bits = SmallRng::seed_from_u64(seed.wrapping_add(1));
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    while !STOP.load(Ordering::Relaxed) {
        loop {
            match q.recv() {
                Ok(mut msg) => match fates.draw() {
                    Fate::Drop => {
                        msg.set_verdict(nfq::Verdict::Drop);
                        q.verdict(msg).context("dropping a queued packet")?;
                    }
                    Fate::Pass { after, corrupt: c } => {
                        if c {
                            corrupt(msg.get_payload_mut(), &mut bits);
                        }
                        if after.is_zero() {
                            let_go(&mut q, msg, mark)?;
                        } else {
                            seq += 1;
                            let due = Instant::now() + after;
                            held.push(Reverse(Held { due, seq, msg }));
                        }
                    }
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(e).context("reading the netfilter queue"),
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.0.due <= now) {
            let Some(Reverse(h)) = held.pop() else { break };
            let_go(&mut q, h.msg, mark)?;
        }
        let next = held
            .peek()
            .map_or(POLL, |h| h.0.due.saturating_duration_since(now));
        std::thread::sleep(next.min(POLL));
    }
    while let Some(Reverse(h)) = held.pop() {
        let_go(&mut q, h.msg, mark)?;
    }
    Ok(())
}

/// Hand a packet back to its hook, marked as done here, for the link's other faults.
fn let_go(q: &mut nfq::Queue, mut msg: nfq::Message, mark: u32) -> Result<()> {
    msg.set_nfmark(msg.get_nfmark() | mark);
    msg.set_verdict(nfq::Verdict::Repeat);
    q.verdict(msg).context("passing a queued packet on")
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    #[test]
    fn delays_spread_evenly_within_the_jitter_and_never_go_negative() {
        let mut rng = SmallRng::seed_from_u64(1);
        let (d, j) = (Duration::from_millis(100), Duration::from_millis(20));
        let draws: Vec<f64> = (0..10_000)
            .map(|_| hold_for(d, j, 0.0, &mut rng).as_secs_f64() * 1e3)
            .collect();
        assert!(draws.iter().all(|ms| (80.0..=120.0).contains(ms)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 100.0).abs() < 1.0, "{mean}");
        assert!(draws.iter().any(|ms| *ms < 85.0) && draws.iter().any(|ms| *ms > 115.0));
        assert_eq!(hold_for(d, Duration::ZERO, 0.0, &mut rng), d);
        let small = hold_for(
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
            .map(|_| hold_for(d, Duration::ZERO, 0.25, &mut rng))
            .inspect(|x| assert!(*x == Duration::ZERO || *x == d))
            .filter(|x| x.is_zero())
            .count();
        assert!((2_300..2_700).contains(&at_once), "{at_once}");
        assert!((0..100).all(|_| hold_for(d, Duration::ZERO, 1.0, &mut rng).is_zero()));
    }

    /// The share lost, and the mean length of a run of lost packets, over many packets.
    fn losses(loss: f64, correlation: f64) -> (f64, f64) {
        let spec = Spec {
            loss,
            correlation,
            ..Spec::default()
        };
        let mut fates = Fates::new(spec, 7);
        let lost: Vec<bool> = (0..200_000).map(|_| fates.draw() == Fate::Drop).collect();
        let share = lost.iter().filter(|l| **l).count() as f64 / lost.len() as f64;
        let bursts = lost.windows(2).filter(|w| w[1] && !w[0]).count().max(1);
        (
            share,
            lost.iter().filter(|l| **l).count() as f64 / bursts as f64,
        )
    }

    #[test]
    fn correlated_loss_comes_in_bursts_and_keeps_its_share() {
        let (share, burst) = losses(0.1, 0.0);
        assert!((share - 0.1).abs() < 0.005, "{share}");
        // Independent drops: bursts of 1 / (1 - p) packets.
        assert!((burst - 1.0 / 0.9).abs() < 0.05, "{burst}");
        let (share, burst) = losses(0.1, 0.75);
        assert!((share - 0.1).abs() < 0.01, "{share}");
        let expected = 1.0 / (0.9 * 0.25);
        assert!((burst - expected).abs() < 0.3, "{burst} against {expected}");
        assert_eq!(losses(0.0, 0.9).0, 0.0);
        assert_eq!(losses(1.0, 0.0).0, 1.0);
    }

    #[test]
    fn corruption_picks_its_share_and_passes_the_rest_untouched() {
        let spec = Spec {
            corrupt: 0.2,
            delay: Duration::from_millis(5),
            ..Spec::default()
        };
        let mut fates = Fates::new(spec, 3);
        let fates: Vec<Fate> = (0..10_000).map(|_| fates.draw()).collect();
        let damaged = fates
            .iter()
            .filter(|f| matches!(f, Fate::Pass { corrupt: true, .. }))
            .count();
        assert!((1_800..2_200).contains(&damaged), "{damaged}");
        assert!(fates.iter().all(|f| matches!(
            f,
            Fate::Pass { after, .. } if *after == Duration::from_millis(5)
        )));
    }

    fn udp_packet() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 77, 0, 1], [10, 77, 0, 11], 64)
            .udp(40000, 9999)
            .write(&mut out, b"datagram 17")
            .unwrap();
        out
    }

    fn tcp_packet() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 77, 0, 12], [10, 77, 0, 11], 64)
            .tcp(25672, 40000, 1234, 64_000)
            .ack(99)
            .write(&mut out, &[0xab; 300])
            .unwrap();
        out
    }

    /// Whether the packet's transport checksum is right, as the receiving kernel checks it.
    fn checksum_holds(packet: &[u8]) -> bool {
        let mut copy = packet.to_vec();
        whole_checksum(&mut copy).is_some() && copy == packet
    }

    #[test]
    fn a_partial_checksum_is_made_whole_before_the_bit_is_flipped() {
        for good in [udp_packet(), tcp_packet()] {
            assert!(checksum_holds(&good));
            // As the sending stack leaves it for offload: a partial sum in the field.
            let mut partial = good.clone();
            let at = whole_checksum(&mut partial.clone()).unwrap().checksum;
            partial[at] ^= 0x5a;
            assert!(!checksum_holds(&partial));
            let mut rng = SmallRng::seed_from_u64(9);
            for _ in 0..200 {
                let mut damaged = partial.clone();
                assert!(corrupt(&mut damaged, &mut rng));
                let flipped: u32 = damaged
                    .iter()
                    .zip(&good)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                assert_eq!(flipped, 1, "exactly one bit differs from the whole packet");
                assert_eq!(damaged[..20], good[..20], "the IP header is left alone");
                assert!(!checksum_holds(&damaged), "the receiver would not notice");
            }
        }
    }

    #[test]
    fn packets_that_are_neither_tcp_nor_udp_pass_unchanged() {
        let mut icmp = Vec::new();
        PacketBuilder::ipv4([10, 77, 0, 1], [10, 77, 0, 11], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut icmp, b"ping")
            .unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        for mut p in [icmp, vec![0x45, 0, 0], Vec::new()] {
            let before = p.clone();
            assert!(!corrupt(&mut p, &mut rng));
            assert_eq!(p, before);
        }
    }
}
