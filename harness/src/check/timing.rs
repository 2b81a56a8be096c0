//! Latency histograms, per-second timelines, availability and recovery after faults.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{Checker, Facts, LatencySummary};
use crate::history::{ClientRole, Event, FaultPhase, Phase, WorkerEvent};

const NS_PER_S: u64 = 1_000_000_000;

/// One second of the run, counted from the start of the load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Window {
    pub second: u64,
    pub sent: u64,
    pub acked: u64,
    pub failed: u64,
    pub delivered: u64,
    pub redelivered: u64,
    pub order_violations: u64,
    pub consumer_errors: u64,
    /// Clients of the harness replaced in this second.
    #[serde(default)]
    pub reconnects: u64,
    /// Values meant to be sent in this second that the final read found and no consumer
    /// processed.
    #[serde(default)]
    pub unread: u64,
    /// Acknowledged so far minus processed so far: messages the consumers have not seen yet.
    pub unseen: i64,
    pub publish_p50_ms: Option<f64>,
    pub publish_p99_ms: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// CPU cores the broker's processes kept busy in this second (when the target names its
    /// pid file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_cpu_cores: Option<f64>,
    /// Their resident memory at the end of this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct FaultWindow {
    pub index: u32,
    pub kind: String,
    /// When its start began (the history's `Invoke`; in older histories, when it was in force).
    pub start_s: f64,
    /// When it was in force: after `start_s` by however long applying it took (a node restart
    /// takes seconds). None in older histories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_s: Option<f64>,
    pub end_s: Option<f64>,
    pub failed: bool,
    pub detail: String,
    /// Seconds from the fault's end until sends and deliveries both succeeded again.
    pub recovery_s: Option<f64>,
    /// Seconds from the fault's end until a send intended after it was acknowledged.
    #[serde(default)]
    pub producers_recovered_s: Option<f64>,
    /// Seconds from the fault's end until a consumer processed a message again.
    #[serde(default)]
    pub consumers_recovered_s: Option<f64>,
    /// The longest a producer went without an acknowledged send, over a stretch that overlaps
    /// the fault: what its clients lived through, failover included (a cluster's clients moving
    /// to another node). None if no producer was acknowledged around it.
    #[serde(default)]
    pub send_outage_s: Option<f64>,
    /// The cluster nodes it acted on, each with what it did there (node faults only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeEffect>,
}

impl FaultWindow {
    /// It was in force, and undoing it failed: what it did may still be in force.
    pub fn undo_failed(&self) -> bool {
        self.failed && self.applied_s.is_some()
    }
}

/// What a fault did to one cluster node: `cut from n2 n3`, `30% loss to clients`, `kill`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct NodeEffect {
    pub node: String,
    pub effect: String,
}

/// What the timing checker measured: latencies, throughput, availability, the faults and their
/// recoveries, and the per-second timeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct TimingSection {
    pub publish_latency: LatencySummary,
    pub end_to_end_latency: LatencySummary,
    /// HdrHistogram V2 serialization (base64), microseconds.
    pub publish_histogram: String,
    pub end_to_end_histogram: String,
    /// Acknowledged sends per second after warmup.
    pub throughput: f64,
    pub availability: f64,
    pub consumer_availability: f64,
    /// Clients of the harness replaced by fresh ones (dead connection or stall watchdog).
    pub reconnects: u64,
    /// The slowest recovery among the faults that recovered. The `recovery_time` metric (see
    /// `metrics`) also counts a fault that never recovered, as forever.
    pub recovery_time: Option<f64>,
    pub faults: Vec<FaultWindow>,
    pub timeline: Vec<Window>,
    /// When the load started (ns since the Unix epoch); every `*_s` figure counts from here.
    pub load_start_ns: u64,
    pub duration_s: f64,
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

/// How a backlog run's consumers caught up (`load.backlog`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CatchUp {
    /// When the consumers started, in seconds since the load started.
    pub started_s: f64,
    /// Acknowledged and not yet processed when they started.
    pub backlog: u64,
    /// Seconds from their start until the backlog was down to 1% of that (the end of the first
    /// second that ended there), their joining included; None if it never was.
    pub time_s: Option<f64>,
    /// Messages processed per second from their first delivery until then: the backlog and the
    /// load that kept coming, at the pace the consumers could take them.
    pub rate: Option<f64>,
}

/// A client of the harness connecting to one node of several (`Event::Connected`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClientConnection {
    pub role: ClientRole,
    pub index: u32,
    pub endpoint: String,
    /// Seconds since the load started (negative: connected before it).
    pub at_s: f64,
}

/// The cluster as the target's `view` command described it (`Event::ClusterView`), from
/// `at_s` until the next view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClusterView {
    /// Seconds since the load started.
    pub at_s: f64,
    /// (name, state), in the order the command printed them.
    pub lines: Vec<(String, String)>,
}

/// At most this many connections (and cluster views) are kept: a client reconnecting in a loop
/// must not grow the result without bound.
const CONNECTIONS_KEPT: usize = 1000;

/// A backlog counts as caught up once it is this share of what it was when consumers started.
const CAUGHT_UP: f64 = 0.01;

#[derive(Default)]
pub struct TimingChecker {
    start: Option<u64>,
    warmup_end: Option<u64>,
    load_end: Option<u64>,
    publish: Latency,
    e2e: Latency,
    windows: Vec<Window>,
    /// The window the last event fell in, as [from, to) in ns: events come nearly in time order,
    /// so this saves a 64-bit division for almost every one of them.
    hit: (u64, u64, usize),
    /// The second whose latencies are being recorded: windows complete in time order, so each is
    /// summarised (p50, p99) when the next one begins and memory stays constant however long the
    /// run.
    current: usize,
    faults: Vec<FaultWindow>,
    /// Faults that have ended: (index, end in ns, first acknowledged send intended after it,
    /// first processing after it).
    ended: Vec<(usize, u64, Option<u64>, Option<u64>)>,
    reconnects: u64,
    acked_in_measure: u64,
    last_ack_ns: u64,
    pending: Vec<(Event, Facts)>,
    /// When a backlog run's consumers started, and the backlog they started with.
    consumers_start: Option<(u64, u64)>,
    /// The largest window an `auto` producer settled on.
    in_flight_window: Option<u32>,
    connections: Vec<ClientConnection>,
    cluster: Vec<ClusterView>,
    /// Per producer, when a send of its was last acknowledged (ns; the load's start before
    /// the first): the gaps between them are its outages.
    last_ok: Vec<u64>,
    /// Each fault's start and end (ns), to tell which outages overlap it.
    fault_ns: Vec<(u64, Option<u64>)>,
    /// The consumers running, and when they were all taken away on purpose.
    group: ConsumerGroup,
}

/// Which consumers run, from their records, and the stretches (ns) in which none ran because
/// the last of them was asked to leave (a scale to 0): the downstream taken away on purpose,
/// which is no failure of the broker's to deliver.
#[derive(Default)]
struct ConsumerGroup {
    running: std::collections::BTreeSet<u32>,
    away_since: Option<u64>,
    away: Vec<(u64, u64)>,
}

impl ConsumerGroup {
    fn observe(&mut self, t: u64, consumer: u32, event: &WorkerEvent) {
        match event {
            WorkerEvent::Started { .. } => {
                self.running.insert(consumer);
                if let Some(since) = self.away_since.take() {
                    self.away.push((since, t));
                }
            }
            WorkerEvent::Stopping => {
                self.running.remove(&consumer);
                if self.running.is_empty() {
                    self.away_since = Some(t);
                }
            }
            WorkerEvent::Killed { .. } | WorkerEvent::Exited { .. } => {
                self.running.remove(&consumer);
            }
            WorkerEvent::Ready { .. } => {}
        }
    }

    /// Whether second `second` of the load (starting at `start` ns) lies wholly inside a
    /// stretch without consumers taken away on purpose (one still open runs to the end).
    fn away_for(&self, start: u64, second: u64) -> bool {
        let (from, to) = (start + second * NS, start + (second + 1) * NS);
        let open = self.away_since.map(|since| (since, u64::MAX));
        self.away
            .iter()
            .copied()
            .chain(open)
            .any(|(a, b)| a <= from && to <= b)
    }
}

const NS: u64 = 1_000_000_000;

/// Keep the earliest time seen: events from different pipes may arrive slightly out of order.
fn earliest(slot: &mut Option<u64>, t: u64) {
    *slot = Some(slot.map_or(t, |s| s.min(t)));
}

fn hist() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits: plenty for broker latencies.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| unreachable!("static bounds are valid"))
}

/// One kind of latency, for the whole run and per second. Each value is recorded once, into the
/// current second, and a second is folded into the run's total when it ends: half the recording
/// work of keeping the two apart.
struct Latency {
    /// Values measured after warmup, of every completed second.
    total: Histogram<u64>,
    /// The current second: values after warmup, and values of sends intended during warmup
    /// (they belong on the timeline but not in the run's figures).
    second: Histogram<u64>,
    second_warmup: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            total: hist(),
            second: hist(),
            second_warmup: hist(),
        }
    }
}

impl Latency {
    #[inline]
    fn record(&mut self, us: u64, measured: bool) {
        let h = if measured {
            &mut self.second
        } else {
            &mut self.second_warmup
        };
        let _ = h.record(us.max(1));
    }

    /// Ends the current second: returns its (p50, p99) in ms and adds it to the total.
    fn end_second(&mut self) -> (Option<f64>, Option<f64>) {
        let _ = self.total.add(&self.second);
        if !self.second_warmup.is_empty() {
            let _ = self.second_warmup.add(&self.second);
            std::mem::swap(&mut self.second, &mut self.second_warmup);
            self.second_warmup.reset();
        }
        let h = &self.second;
        let ms = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        let summary = (ms(0.5), ms(0.99));
        if !self.second.is_empty() {
            self.second.reset();
        }
        summary
    }
}

impl TimingChecker {
    #[inline]
    fn window(&mut self, t: u64) -> Option<usize> {
        let (from, to, i) = self.hit;
        if from <= t && t < to {
            return Some(i);
        }
        self.window_slow(t)
    }

    fn window_slow(&mut self, t: u64) -> Option<usize> {
        let start = self.start?;
        let s = t.saturating_sub(start) / NS_PER_S;
        let from = start + s * NS_PER_S;
        // Events before the start count in second 0, but only those at or after it are cached.
        self.hit = (from, from + NS_PER_S, s as usize);
        let s = s as usize;
        while self.windows.len() <= s {
            let second = self.windows.len() as u64;
            self.windows.push(Window {
                second,
                ..Default::default()
            });
        }
        Some(s)
    }

    /// Move the latency summary on to window `w` (a late event stays in the newest window).
    fn roll(&mut self, w: usize) {
        if w > self.current {
            self.summarise();
            self.current = w;
        }
    }

    fn summarise(&mut self) {
        let publish = self.publish.end_second();
        let e2e = self.e2e.end_second();
        if let Some(win) = self.windows.get_mut(self.current) {
            (win.publish_p50_ms, win.publish_p99_ms) = publish;
            (win.e2e_p50_ms, win.e2e_p99_ms) = e2e;
        }
    }

    fn measured(&self, intended: u64) -> bool {
        intended >= self.warmup_end.or(self.start).unwrap_or(0)
    }

    fn secs(&self, t: u64) -> f64 {
        t.saturating_sub(self.start.unwrap_or(t)) as f64 / 1e9
    }

    fn producer_seen(&mut self, producer: u32) {
        let p = producer as usize;
        if self.last_ok.len() <= p {
            self.last_ok.resize(p + 1, self.start.unwrap_or(0));
        }
    }

    /// Producer `producer` had a send acknowledged at `t`: the stretch since its last one is
    /// an outage of every fault it overlaps.
    fn acked_at(&mut self, producer: u32, t: u64) {
        self.producer_seen(producer);
        let last = &mut self.last_ok[producer as usize];
        let since = *last;
        if t <= since {
            return;
        }
        *last = t;
        self.outage(since, t);
    }

    fn outage(&mut self, from: u64, to: u64) {
        let gap = (to - from) as f64 / 1e9;
        for (f, (start, end)) in self.faults.iter_mut().zip(&self.fault_ns) {
            if from < end.unwrap_or(u64::MAX) && to > *start {
                f.send_outage_s = Some(f.send_outage_s.map_or(gap, |g| g.max(gap)));
            }
        }
    }

    fn apply(&mut self, ev: &Event, facts: Facts) {
        match ev {
            Event::SendWindow { size, .. } => {
                self.in_flight_window = self.in_flight_window.max(Some(*size));
            }
            Event::Connected {
                t,
                role,
                index,
                endpoint,
            } if self.connections.len() < CONNECTIONS_KEPT => {
                let start = self.start.unwrap_or(*t);
                self.connections.push(ClientConnection {
                    role: *role,
                    index: *index,
                    endpoint: endpoint.clone(),
                    at_s: (*t as f64 - start as f64) / 1e9,
                });
            }
            Event::ClusterView { t, lines } if self.cluster.len() < CONNECTIONS_KEPT => {
                // Asked only once the load has started: never before it.
                self.cluster.push(ClusterView {
                    at_s: self.secs(*t),
                    lines: lines.clone(),
                });
            }
            Event::FaultNodes { index, nodes, .. } => {
                // Recorded after its fault's start, so the window exists.
                if let Some(f) = self.faults.get_mut(*index as usize) {
                    f.nodes = nodes
                        .iter()
                        .map(|(node, effect)| NodeEffect {
                            node: node.clone(),
                            effect: effect.clone(),
                        })
                        .collect();
                }
            }
            Event::SendInvoke { t, id, .. } => {
                if let Some(w) = self.window(*t) {
                    self.windows[w].sent += 1;
                }
                self.producer_seen(id.producer);
            }
            Event::SendOk {
                t, intended, id, ..
            } => {
                self.acked_at(id.producer, *t);
                let us = t.saturating_sub(*intended) / 1000;
                // Counted when the broker acknowledged: that is the throughput it delivered.
                if let Some(w) = self.window(*t) {
                    self.windows[w].acked += 1;
                    self.roll(w);
                }
                let measured = self.measured(*intended);
                self.publish.record(us, measured);
                if measured {
                    self.acked_in_measure += 1;
                    self.last_ack_ns = self.last_ack_ns.max(*t);
                }
                for (_, stop, sent, _) in self.ended.iter_mut() {
                    if *intended >= *stop {
                        earliest(sent, *t);
                    }
                }
            }
            Event::SendFail { t, .. } | Event::SendInfo { t, .. } => {
                if let Some(w) = self.window(*t) {
                    self.windows[w].failed += 1;
                }
            }
            Event::Deliver { t, intended, .. } => {
                let Some(w) = self.window(*t) else { return };
                // End-to-end latency is that of the first delivery; redeliveries are counted.
                if facts.first_delivery {
                    let us = t.saturating_sub(*intended) / 1000;
                    self.roll(w);
                    let measured = self.measured(*intended);
                    self.e2e.record(us, measured);
                } else {
                    self.windows[w].redelivered += 1;
                }
            }
            Event::Processed { t, .. } => {
                if let Some(w) = self.window(*t) {
                    self.windows[w].delivered += 1;
                }
                for (_, stop, _, processed) in self.ended.iter_mut() {
                    if *t >= *stop {
                        earliest(processed, *t);
                    }
                }
            }
            Event::ConsumerError { t, .. } => {
                if let Some(w) = self.window(*t) {
                    self.windows[w].consumer_errors += 1;
                }
            }
            Event::Reconnect { t, .. } => {
                self.reconnects += 1;
                if let Some(w) = self.window(*t) {
                    self.windows[w].reconnects += 1;
                }
            }
            Event::Fault {
                t,
                index,
                kind,
                phase,
                detail,
            } => {
                let i = *index as usize;
                let start_s = self.secs(*t);
                while self.faults.len() <= i {
                    let index = self.faults.len() as u32;
                    self.faults.push(FaultWindow {
                        index,
                        kind: kind.clone(),
                        start_s,
                        ..FaultWindow::default()
                    });
                    self.fault_ns.push((u64::MAX, None));
                }
                let f = &mut self.faults[i];
                // Faults that start together are recorded in any order: a window opened early,
                // for a later record's index, takes its own kind from its own records.
                f.kind.clone_from(kind);
                match phase {
                    FaultPhase::Invoke => {
                        f.start_s = start_s;
                        self.fault_ns[i].0 = *t;
                    }
                    FaultPhase::Start => {
                        // Without an invoke (an older history), the window opens here.
                        if self.fault_ns[i].0 == u64::MAX {
                            f.start_s = start_s;
                            self.fault_ns[i].0 = *t;
                        }
                        f.applied_s = Some(start_s);
                        f.detail = detail.clone();
                    }
                    FaultPhase::Stop => {
                        f.end_s = Some(start_s);
                        self.fault_ns[i].1 = Some(*t);
                        if !detail.is_empty() {
                            f.detail = format!("{}; then {detail}", f.detail);
                        }
                        self.ended.push((i, *t, None, None));
                    }
                    FaultPhase::After => {
                        f.detail = format!("{}; {detail}", f.detail);
                    }
                    FaultPhase::Failed => {
                        f.failed = true;
                        // Never in force: no send outage is its.
                        if f.applied_s.is_none() {
                            self.fault_ns[i].0 = u64::MAX;
                        }
                        f.detail = if f.detail.is_empty() {
                            detail.clone()
                        } else {
                            format!("{}; failed: {detail}", f.detail)
                        };
                    }
                }
            }
            _ => {}
        }
    }
}

impl Checker for TimingChecker {
    fn observe(&mut self, ev: &Event, facts: &mut Facts) {
        match ev {
            Event::Worker { t, consumer, event } => self.group.observe(*t, *consumer, event),
            Event::Phase { t, phase } => {
                match phase {
                    Phase::LoadStart { warmup_ns, .. } => {
                        self.start = Some(*t);
                        self.hit = (0, 0, 0);
                        self.warmup_end = Some(t + warmup_ns);
                        // Worker events that arrived before the load started are replayed now.
                        for (e, f) in std::mem::take(&mut self.pending) {
                            self.apply(&e, f);
                        }
                    }
                    Phase::LoadEnd => self.load_end = Some(*t),
                    Phase::ConsumersStart { backlog } => {
                        self.consumers_start = Some((*t, *backlog))
                    }
                    _ => {}
                }
            }
            _ if self.start.is_none() => {
                if self.pending.len() < 10_000 {
                    self.pending.push((ev.clone(), *facts));
                }
            }
            _ => self.apply(ev, *facts),
        }
    }

    type Section = TimingSection;

    fn finish(mut self) -> TimingSection {
        // The last second is folded into the totals here.
        self.summarise();
        self.count_unseen();
        self.close_faults();
        let start = self.start.unwrap_or(0);
        TimingSection {
            publish_latency: LatencySummary::of(&self.publish.total),
            end_to_end_latency: LatencySummary::of(&self.e2e.total),
            publish_histogram: super::serialize_hist(&self.publish.total),
            end_to_end_histogram: super::serialize_hist(&self.e2e.total),
            throughput: self.throughput(),
            availability: self.availability(),
            consumer_availability: self.consumer_availability(),
            reconnects: self.reconnects,
            recovery_time: self
                .faults
                .iter()
                .filter_map(|f| f.recovery_s)
                .reduce(f64::max),
            catch_up: self
                .consumers_start
                .map(|(t, backlog)| catch_up(&self.windows, t.saturating_sub(start), backlog)),
            in_flight_window: self.in_flight_window,
            connections: self.connections,
            cluster: self.cluster,
            faults: self.faults,
            timeline: self.windows,
            load_start_ns: start,
            duration_s: self
                .load_end
                .map(|e| e.saturating_sub(start) as f64 / 1e9)
                .unwrap_or(0.0),
        }
    }
}

impl TimingChecker {
    /// Acknowledged sends per second, after warmup until the load ended (or the last ack).
    fn throughput(&self) -> f64 {
        let from = self.warmup_end.or(self.start).unwrap_or(0);
        let to = self
            .load_end
            .unwrap_or(self.last_ack_ns)
            .max(self.last_ack_ns);
        if to > from {
            self.acked_in_measure as f64 / ((to - from) as f64 / 1e9)
        } else {
            0.0
        }
    }

    /// Each second's unseen: cumulative acknowledged minus cumulative processed.
    fn count_unseen(&mut self) {
        let mut cum = 0i64;
        for w in self.windows.iter_mut() {
            cum += w.acked as i64 - w.delivered as i64;
            w.unseen = cum;
        }
    }

    /// The share of completed send attempts (by the second they completed) that succeeded.
    fn availability(&self) -> f64 {
        let (ok, attempts): (u64, u64) = self
            .windows
            .iter()
            .fold((0, 0), |(o, a), w| (o + w.acked, a + w.acked + w.failed));
        if attempts > 0 {
            ok as f64 / attempts as f64
        } else {
            1.0
        }
    }

    /// The share of seconds with a backlog in which something was processed. Consumers stopped
    /// on purpose (building a backlog, or all taken away by a scale to 0) are not unavailable.
    fn consumer_availability(&self) -> f64 {
        let start = self.start.unwrap_or(0);
        let consumers_from = self
            .consumers_start
            .map_or(0, |(t, _)| t.saturating_sub(start) / 1_000_000_000);
        let backlog: Vec<&Window> = self
            .windows
            .iter()
            .filter(|w| w.second >= consumers_from)
            .filter(|w| !self.group.away_for(start, w.second))
            .filter(|w| w.unseen > 0 || w.delivered > 0)
            .collect();
        let progressed = backlog.iter().filter(|w| w.delivered > 0).count();
        if backlog.is_empty() {
            1.0
        } else {
            progressed as f64 / backlog.len() as f64
        }
    }

    /// Each ended fault's recovery, and the send outages still open when the load ended.
    fn close_faults(&mut self) {
        let since = |stop: u64, at: Option<u64>| at.map(|t| t.saturating_sub(stop) as f64 / 1e9);
        for (i, stop, sent, processed) in &self.ended {
            if let Some(f) = self.faults.get_mut(*i) {
                f.producers_recovered_s = since(*stop, *sent);
                f.consumers_recovered_s = since(*stop, *processed);
                // Recovered once both sides are.
                f.recovery_s = f
                    .producers_recovered_s
                    .zip(f.consumers_recovered_s)
                    .map(|(p, c)| p.max(c));
            }
        }
        // A producer not acknowledged again before the load ended was out until then.
        if let Some(end) = self.load_end {
            for since in std::mem::take(&mut self.last_ok) {
                if since < end {
                    self.outage(since, end);
                }
            }
        }
    }
}

/// How long the consumers that started `from_ns` into the load, with `backlog` waiting, took to
/// bring it down to 1%, and at what rate they processed once they were processing.
fn catch_up(windows: &[Window], from_ns: u64, backlog: u64) -> CatchUp {
    let started_s = from_ns as f64 / 1e9;
    let first = (from_ns / 1_000_000_000) as usize;
    let target = (backlog as f64 * CAUGHT_UP).max(1.0);
    let done = windows
        .iter()
        .skip(first)
        .position(|w| (w.unseen.max(0) as f64) <= target)
        .map(|i| first + i);
    let (time_s, rate) = match done {
        Some(last) => {
            let end = (windows[last].second + 1) as f64;
            let processed: u64 = windows[first..=last].iter().map(|w| w.delivered).sum();
            // From the second of their first delivery (joining a group can take seconds).
            let busy_from = windows[first..=last]
                .iter()
                .find(|w| w.delivered > 0)
                .map_or(started_s, |w| (w.second as f64).max(started_s));
            let busy = end - busy_from;
            (
                Some(end - started_s),
                (busy > 0.0).then(|| processed as f64 / busy),
            )
        }
        None => (None, None),
    };
    CatchUp {
        started_s,
        backlog,
        time_s,
        rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(s: u64, delivered: u64, unseen: i64) -> Window {
        Window {
            second: s,
            delivered,
            unseen,
            ..Default::default()
        }
    }

    #[test]
    fn catching_up_ends_when_the_backlog_is_down_to_one_percent() {
        // 10,000 waiting at 2.5 s; the consumers take 4,000/s while 1,000/s keep coming, once
        // they have joined, in second 3.
        let windows = vec![
            second(0, 0, 4000),
            second(1, 0, 8000),
            second(2, 0, 10_000),
            second(3, 4000, 7000),
            second(4, 4000, 4000),
            second(5, 4000, 1000),
            second(6, 1050, 50),
            second(7, 1000, 50),
        ];
        let c = catch_up(&windows, 2_500_000_000, 10_000);
        assert_eq!(c.started_s, 2.5);
        // Down to 100 or fewer by the end of second 6: 4.5 s, joining included; processing
        // from second 3 to the end of second 6.
        assert_eq!(c.time_s, Some(4.5));
        assert_eq!(c.rate, Some(13_050.0 / 4.0));
        let never = catch_up(&windows[..6], 2_500_000_000, 10_000);
        assert_eq!((never.time_s, never.rate), (None, None));
    }
}
