//! The workload as written in YAML. Every struct rejects unknown fields so that a typo is an error
//! at its line and column rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::steps::LoadRate;
use super::units::{Bound, Dur, Percent, Size};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Short name; used in run ids and report titles.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Brokers to run against, one run each; the report compares them.
    pub brokers: Vec<BrokerKind>,
    #[serde(default)]
    pub topology: Topology,
    pub load: Load,
    #[serde(default)]
    pub consumers: Consumers,
    /// Fault schedule; the README lists the kinds, docs/architecture.md how they are built.
    #[serde(default)]
    #[schemars(with = "Vec<Fault>")]
    pub faults: Vec<Spanned<Fault>>,
    /// Expectations that decide pass/fail: metric name → bound, e.g. `lost: 0`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Bound>")]
    pub expect: BTreeMap<String, Spanned<Bound>>,
    #[serde(default)]
    pub run: RunOptions,
}

/// A broker as workloads, target profiles, reports and the command line name it (`kafka`).
/// Which names exist is the driver registry's business: its rule refuses any other.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(transparent)]
pub struct BrokerKind(String);

impl Workload {
    /// A short digest of what this workload measures: its topology, load, consumers, faults and
    /// run settings, defaults filled in. Not its name, description, broker list or expectations,
    /// which change what is reported about a run but not what it measures. Results keep it, so
    /// that a comparison can tell when a workload was edited under the same name.
    pub fn digest(&self) -> String {
        use sha2::Digest as _;
        let mut measured = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = measured.as_object_mut() {
            for k in ["name", "description", "brokers", "expect"] {
                fields.remove(k);
            }
        }
        // serde_json's maps are sorted, so the text, and the digest, do not depend on key order.
        let hash = sha2::Sha256::digest(measured.to_string().as_bytes());
        hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

impl BrokerKind {
    pub fn new(name: impl Into<String>) -> BrokerKind {
        BrokerKind(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One broker's part of a file as written under its name (its topology options, its target
/// section), for its driver to read as its own type and to check.
pub type Raw = serde_json::Value;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default)]
pub struct Topology {
    /// Shards of the run's key space: Kafka partitions, RabbitMQ queues behind a consistent-hash
    /// exchange; a broker that orders per key by itself ignores it.
    pub partitions: u32,
    /// Each broker's own options under its name, e.g. `kafka: { idempotence: false }`. Every
    /// other key here must name a broker (the driver registry checks it).
    #[serde(flatten)]
    pub brokers: BTreeMap<BrokerKind, Raw>,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            partitions: 1,
            brokers: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Load {
    #[serde(default = "one")]
    pub producers: u32,
    /// Open-loop offered rate across all producers, or `max`; or steps of rates (a sweep, or a
    /// search for the highest sustainable one), each run on its own (see `steps`).
    pub rate: LoadRate,
    #[serde(default)]
    pub keys: Keys,
    #[serde(default = "default_message_size")]
    pub message_size: Size,
    pub duration: Dur,
    /// Leading time excluded from throughput and latency figures (still checked for loss).
    #[serde(default)]
    pub warmup: Dur,
    /// Most unacknowledged sends per producer, or `auto`. Unset, `rate: max` takes what the
    /// driver says suits its broker (`Driver::max_rate_window`: `auto` unless measured
    /// otherwise), a fixed rate 1000, where it only bounds memory: see `load::window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<InFlight>,
    /// A consumer backlog first: the producers run on their schedule while the consumers are
    /// stopped; once this much is acknowledged the consumers start and catch up, and the run
    /// measures how fast (`catch_up_rate`, `catch_up_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<Backlog>,
}

/// How big a backlog to build: `{ messages: 50000 }` or `{ size: 25MiB }` (in messages of
/// `message_size`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backlog {
    Messages(u64),
    Size(Size),
}

impl Load {
    /// The window the producers use: the workload's; else 1000 at a fixed rate, where it only
    /// bounds memory; else, at `rate: max`, where the window is what limits the rate, `at_max`:
    /// what the driver says suits its broker.
    pub fn window(&self, at_max: InFlight) -> InFlight {
        self.max_in_flight
            .or_else(|| InFlight::default_for(&self.rate))
            .unwrap_or(at_max)
    }

    /// Messages to have acknowledged before the consumers start; None without a backlog.
    pub fn backlog_messages(&self) -> Option<u64> {
        self.backlog.map(|b| match b {
            Backlog::Messages(n) => n,
            Backlog::Size(size) => size.0.div_ceil(self.message_size.0.max(1)),
        })
    }
}

fn one() -> u32 {
    1
}
fn default_message_size() -> Size {
    Size(256)
}
/// The window of a fixed rate, where it bounds memory when the broker slows down.
pub const DEFAULT_IN_FLIGHT: u32 = 1000;

/// `max_in_flight`: a number of sends, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlight {
    Fixed(u32),
    Auto,
}

impl InFlight {
    /// What a workload that does not say gets at a fixed rate; None at `rate: max`, where the
    /// driver chooses (`Load::window`).
    pub fn default_for(rate: &super::steps::LoadRate) -> Option<InFlight> {
        match rate.single()? {
            super::units::Rate::Max => None,
            super::units::Rate::PerSecond(_) => Some(InFlight::Fixed(DEFAULT_IN_FLIGHT)),
        }
    }
}

impl<'de> Deserialize<'de> for InFlight {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = InFlight;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of sends, or auto")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<InFlight, E> {
                u32::try_from(n)
                    .map(InFlight::Fixed)
                    .map_err(|_| E::custom("max_in_flight is at most 4294967295"))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<InFlight, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom("max_in_flight must be positive"))
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<InFlight, E> {
                match s.trim() {
                    "auto" => Ok(InFlight::Auto),
                    other => other.parse().map(InFlight::Fixed).map_err(|_| {
                        E::custom(format!(
                            "invalid max_in_flight {s:?}; expected a number of sends, or auto"
                        ))
                    }),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for InFlight {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            InFlight::Fixed(n) => s.serialize_u32(*n),
            InFlight::Auto => s.serialize_str("auto"),
        }
    }
}

impl JsonSchema for InFlight {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "InFlight".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Sends in flight per producer, or `auto`: grow while it raises throughput.",
            "oneOf": [{ "type": "integer", "minimum": 1 }, { "const": "auto" }]
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Keys {
    pub count: u32,
    /// `uniform` or `zipf(S)` with exponent S > 0.
    pub distribution: KeyDistribution,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            count: 100,
            distribution: KeyDistribution::Uniform,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDistribution {
    Uniform,
    Zipf(f64),
}

impl std::str::FromStr for KeyDistribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t == "uniform" {
            return Ok(KeyDistribution::Uniform);
        }
        let exp = t
            .strip_prefix("zipf(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|e| e.is_finite() && *e > 0.0);
        exp.map(KeyDistribution::Zipf)
            .ok_or_else(|| format!("invalid key distribution {s:?}; expected `uniform` or `zipf(S)` with S > 0, e.g. zipf(1.1)"))
    }
}

impl fmt::Display for KeyDistribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDistribution::Uniform => f.write_str("uniform"),
            KeyDistribution::Zipf(s) => write!(f, "zipf({s})"),
        }
    }
}

impl<'de> Deserialize<'de> for KeyDistribution {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for KeyDistribution {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for KeyDistribution {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KeyDistribution".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": r"^(uniform|zipf\(\s*[0-9.]+\s*\))$" })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AckMode {
    /// Process, then acknowledge/commit: at-least-once; a crash causes redelivery. Kafka
    /// commits once per polled batch, SQS deletes up to 10 in one request, RabbitMQ acks each.
    AfterProcess,
    /// Acknowledge/commit, then process: at-most-once; a crash loses the message. Where the
    /// broker takes acknowledgements in batches (a Kafka commit, SQS's DeleteMessageBatch), the
    /// polled batch is acknowledged before any of it is processed.
    BeforeProcess,
    /// The client acknowledges by itself: Kafka auto-commits processed offsets on a timer
    /// (at-least-once, replaying up to a second after a crash); RabbitMQ no-ack and SQS
    /// delete-on-receipt acknowledge on receipt (at-most-once).
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Dedupe {
    None,
    /// The idempotent-consumer pattern: skip ids already recorded as processed.
    ProcessedIds,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Consumers {
    pub count: u32,
    pub ack: AckMode,
    /// Simulated work per message.
    pub processing_time: Dur,
    pub dedupe: Dedupe,
}

impl Default for Consumers {
    fn default() -> Self {
        Consumers {
            count: 1,
            ack: AckMode::AfterProcess,
            processing_time: Dur::default(),
            dedupe: Dedupe::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    ConsumerCrash,
    ConsumerScale,
    ProducerCrash,
    Pause,
    Partition,
    Latency,
    Bandwidth,
    Slicer,
    LimitData,
    SlowClose,
    ResetPeer,
    Blackhole,
    Down,
    BrokerKill,
    BrokerPause,
    BrokerRestart,
    NodePartition,
    NodeKill,
    NodePause,
    NodeRestart,
    NodeLoss,
    NodeDelay,
    NodeDuplicate,
    NodeCorrupt,
}

/// How `node-partition` splits a cluster's nodes, in Jepsen's nemesis vocabulary: a named shape
/// or explicit groups such as `[[n1], [n2, n3]]` (each node in one group; every link between two
/// groups is cut).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Shape {
    Named(NamedShape),
    Groups(Vec<Vec<String>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NamedShape {
    /// One node, drawn from the run's seed, cut off from the others.
    IsolateOne,
    /// The leader of the run's first queue when the fault starts, cut off from the others.
    IsolateLeader,
    /// Two halves, the smaller first (one node against two, for three).
    Halves,
    /// Two halves that both still reach one bridge node.
    Bridge,
    /// Each node keeps a majority, but no two keep the same one (five nodes or more).
    MajoritiesRing,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    /// First start, measured from the start of the load (with `random`: the earliest start).
    pub at: Dur,
    /// Instead of fixed times: this many windows at random times between `at` and the end of the
    /// load, drawn from the run's seed (same seed, same schedule).
    #[serde(default)]
    pub random: Option<u32>,
    /// Repeat with this period (needs `count`).
    #[serde(default)]
    pub every: Option<Dur>,
    #[serde(default)]
    pub count: Option<u32>,
    /// How long the fault lasts (pause, partition, toxics).
    #[serde(default)]
    pub duration: Option<Dur>,
    /// For crashes: start a fresh replacement after this delay.
    #[serde(default)]
    pub restart_after: Option<Dur>,
    /// Which workers: `one`, `all`, a number, or a percentage such as `50%`.
    #[serde(default)]
    pub target: Option<String>,
    /// For pause: pause `consumers` (the default) or `producers`.
    #[serde(default)]
    pub workers: Option<Workers>,
    /// For network faults: the two sides, e.g. [consumers, broker]. The client side is
    /// `producers`, `consumers` or `clients` (both); default: clients.
    #[serde(default)]
    pub between: Option<Vec<String>>,
    /// For toxics that act on one direction: `upstream` (client to broker), `downstream`
    /// (broker to client) or `both` (the default).
    #[serde(default)]
    pub direction: Option<Direction>,
    /// latency: delay added to every chunk of data. node-delay: how long each packet is held.
    #[serde(default)]
    pub latency: Option<Dur>,
    /// latency, node-delay: the delay varies uniformly by up to this much either way.
    #[serde(default)]
    pub jitter: Option<Dur>,
    /// bandwidth: bytes per second, e.g. 100KiB.
    #[serde(default)]
    pub rate: Option<Size>,
    /// slicer: data is cut into slices of about this size...
    #[serde(default)]
    pub slice_size: Option<Size>,
    /// slicer: ...sent this far apart.
    #[serde(default)]
    pub slice_delay: Option<Dur>,
    /// limit_data: each connection is closed once this many bytes have passed.
    #[serde(default)]
    pub bytes: Option<Size>,
    /// slow_close: closing a connection is delayed by this much.
    #[serde(default)]
    pub delay: Option<Dur>,
    /// partition, blackhole: reset the connections that were open when the fault began once it
    /// has lasted this long, as an operating system gives up on a connection whose
    /// retransmissions go unanswered (Linux: about 15 minutes by default). New connections made
    /// during the fault still hang. Default: never; the connections resume when it heals.
    #[serde(default)]
    pub reset_after: Option<Dur>,
    /// node-partition: how the cluster's nodes are split (default: isolate-one).
    #[serde(default)]
    pub shape: Option<Shape>,
    /// node-loss: the share of packets dropped at random, e.g. 5%.
    #[serde(default)]
    pub loss: Option<Percent>,
    /// node-loss: how much each packet's fate follows the last one's, so that drops come in
    /// bursts (the long-run share stays `loss`), e.g. 50%. Default: independent drops.
    #[serde(default)]
    pub correlation: Option<Percent>,
    /// node-duplicate: the share of packets sent twice, e.g. 5%.
    #[serde(default)]
    pub duplicate: Option<Percent>,
    /// node-corrupt: the share of packets with one bit flipped (the receiver's checksum
    /// catches it and drops the packet), e.g. 1%.
    #[serde(default)]
    pub corrupt: Option<Percent>,
    /// Packet faults (node-loss, node-delay, node-duplicate, node-corrupt): which links of the
    /// chosen nodes it acts on: to the harness's clients (the default), to the other nodes, or
    /// both.
    #[serde(default)]
    pub links: Option<Links>,
    /// node-delay: this share of the packets is passed on at once, overtaking the delayed ones
    /// (netem's `reorder`), e.g. 25%.
    #[serde(default)]
    pub reorder: Option<Percent>,
    /// consumer-scale: how many consumers run from then on (0 to 64); with `duration`, the
    /// count goes back to what it was when the window ends.
    #[serde(default)]
    pub to: Option<u32>,
}

/// The links of a node a packet fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Links {
    /// Between the harness's clients and the node.
    #[default]
    Clients,
    /// Between the node and the other nodes of the cluster.
    Peers,
    All,
}

impl Fault {
    /// Each optional parameter by the name users write, and whether this fault sets it. The
    /// fault table (`chaos::faults`) says which kinds take which.
    pub fn parameters(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("shape", self.shape.is_some()),
            ("loss", self.loss.is_some()),
            ("correlation", self.correlation.is_some()),
            ("duplicate", self.duplicate.is_some()),
            ("corrupt", self.corrupt.is_some()),
            ("reorder", self.reorder.is_some()),
            ("links", self.links.is_some()),
            ("target", self.target.is_some()),
            ("workers", self.workers.is_some()),
            ("restart_after", self.restart_after.is_some()),
            ("between", self.between.is_some()),
            ("direction", self.direction.is_some()),
            ("reset_after", self.reset_after.is_some()),
            ("latency", self.latency.is_some()),
            ("jitter", self.jitter.is_some()),
            ("rate", self.rate.is_some()),
            ("slice_size", self.slice_size.is_some()),
            ("slice_delay", self.slice_delay.is_some()),
            ("bytes", self.bytes.is_some()),
            ("delay", self.delay.is_some()),
            ("to", self.to.is_some()),
        ]
    }

    pub fn is_set(&self, parameter: &str) -> bool {
        self.parameters()
            .iter()
            .any(|(name, set)| *name == parameter && *set)
    }
}

/// Which of the harness's worker processes a process fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Workers {
    #[default]
    Consumers,
    Producers,
}

/// Which way a network toxic acts, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Upstream,
    Downstream,
    #[default]
    Both,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RunOptions {
    /// Keep the topics/queues the run created (default: delete them).
    pub keep: bool,
    /// After the load, stop draining once nothing new arrived for this long.
    pub drain_quiet: Dur,
    /// While acknowledged messages are still missing, stop draining after this long without news
    /// (at least `stall_timeout` + 1 s, so the stall watchdog can replace a wedged consumer
    /// first).
    pub drain_missing: Dur,
    /// Upper bound on the drain, however busy the consumers still are.
    pub drain_timeout: Dur,
    /// Bound on connecting to a broker and creating the run's topics or queues.
    pub connect_timeout: Dur,
    /// A send that has not been acknowledged after this long is recorded as indeterminate.
    pub send_timeout: Dur,
    /// Seed for key choice and random fault schedules; random if absent.
    pub seed: Option<u64>,
    /// First port of the fault proxy's listeners on 127.0.0.1 (one per client group, plus one
    /// per Kafka broker node); default: any free port. Only used when there are network faults.
    pub proxy_port: Option<u16>,
    /// Route clients through the fault proxy even without network faults (e.g. to measure what
    /// the proxy itself costs).
    pub proxy: bool,
    /// Stall watchdog: when messages are waiting, no fault is active and no consumer has
    /// processed anything for this long, every consumer replaces its client with a fresh one;
    /// a producer does the same when its sends get no outcome for this long.
    pub stall_timeout: Dur,
    /// AMQP heartbeat interval: a RabbitMQ connection that hears nothing for two intervals is
    /// declared dead and replaced.
    pub heartbeat: Dur,
    /// Bound on the final read (fresh clients reading what the broker still stores after the
    /// run). What it did not get to in time is reported as not verified, never as lost. Give it
    /// longer than SQS's visibility timeout, so messages a killed consumer held come back.
    pub final_read_timeout: Dur,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            keep: false,
            drain_quiet: Dur::secs(3),
            drain_missing: Dur::secs(20),
            drain_timeout: Dur::secs(60),
            connect_timeout: Dur::secs(10),
            send_timeout: Dur::secs(30),
            seed: None,
            proxy_port: None,
            proxy: false,
            stall_timeout: Dur::secs(20),
            heartbeat: Dur::secs(5),
            final_read_timeout: Dur::secs(60),
        }
    }
}
