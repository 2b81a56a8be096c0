//! The broker SPI, and one folder per broker behind it. A `Driver` creates and removes the run's
//! topics or queues and hands out clients; a `Publisher` sends; a `Consumer` receives and acks.
//! Each broker's folder also describes itself once, as a `Broker` (its target section, its proxy
//! protocol, its timeouts, its workload checks), and `BROKERS` lists them: nothing outside
//! `driver/` needs to know which brokers exist.

mod kafka;
mod rabbitmq;
mod sqs;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::{Future, FutureExt};
use serde::{Deserialize, Serialize};

use crate::chaos::proxy::Wire;
use crate::history::Position;
use crate::message::MsgId;
use crate::target::{Section, TargetProfile};
use crate::workload::{self, BrokerKind, InFlight, Raw, Workload};
use serde::de::DeserializeOwned;

/// Everything a driver needs to know, in the coordinator and in each worker process alike.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub run_id: String,
    pub broker: BrokerKind,
    pub workload: Workload,
    pub target: TargetProfile,
    /// Prefix of every topic, queue and exchange this run creates: unique to the run.
    pub resource_prefix: String,
}

impl Plan {
    pub fn new(
        run_id: &str,
        broker: BrokerKind,
        workload: &Workload,
        target: &TargetProfile,
    ) -> Plan {
        Plan {
            run_id: run_id.to_string(),
            broker,
            workload: workload.clone(),
            target: target.clone(),
            resource_prefix: resource_prefix(run_id),
        }
    }
}

/// What every run's resources are named with first (see `resource_prefix`).
pub const RESOURCE_PREFIX: &str = "bb-";

/// What run `run_id`'s topics, queues, exchanges and groups are named with first: unique to
/// the run. Names must be valid everywhere: SQS allows [A-Za-z0-9_-] up to 80 chars.
pub fn resource_prefix(run_id: &str) -> String {
    format!("{RESOURCE_PREFIX}{}", workload::slug(run_id, 57))
}

/// Something a run created on a broker: its kind as the broker calls it (`topic`, `group`,
/// `queue`, `exchange`) and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resource {
    pub kind: &'static str,
    pub name: String,
}

impl Plan {
    /// A plan for no run, to list and delete what runs created on `broker` (its clients need
    /// a plan; this one's workload only sets defaults, and its resource prefix is none).
    pub fn janitor(broker: BrokerKind, target: &TargetProfile) -> Result<Plan> {
        let yaml = format!(
            "name: leftovers\nbrokers: [{broker}]\nload: {{ rate: 1/s, duration: 1s }}\nconsumers: {{ count: 0 }}\n"
        );
        let w = workload::parse(std::path::Path::new("leftovers"), &yaml, &[])
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Plan {
            run_id: String::new(),
            broker,
            workload: w,
            target: target.clone(),
            resource_prefix: RESOURCE_PREFIX.into(),
        })
    }
}

/// Why a send did not succeed. `Indeterminate` means it may still have been stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("send failed: {0}")]
    Failed(String),
    #[error("send outcome unknown: {0}")]
    Indeterminate(String),
}

/// Names one send to its publisher; the send's outcome comes back with it.
pub type SendToken = usize;

/// The broker's acknowledgement (or refusal) of the send with this token.
pub type SendOutcome = (SendToken, Result<Position, SendError>);

#[async_trait]
pub trait Publisher: Send {
    /// Hand one message to the client, in order; its outcome comes back from `acks` with
    /// `token`. Callers keep many sends in flight (open loop). Clients copy `body`. Every
    /// send's outcome comes back in bounded time, from `run.send_timeout` (indeterminate if the
    /// broker has not answered): the client's own deadline where it has one (Kafka's
    /// message.timeout.ms, SQS's attempt timeout), else a timer per send (RabbitMQ).
    async fn submit(&mut self, token: SendToken, id: MsgId, body: &[u8]) -> Result<(), SendError>;
    /// Wait for outcomes of submitted sends and append them to `out`: at least one, and every
    /// other one already known. Outcomes come in batches, so this costs one wake-up per batch
    /// rather than one future per send. Cancel-safe (it is raced against timers); never
    /// resolves while nothing is in flight.
    async fn acks(&mut self, out: &mut Vec<SendOutcome>);
    /// True when the client cannot recover by itself; the producer then asks for a new one.
    fn is_broken(&self) -> bool {
        false
    }
    /// The broker address this client is connected to (see `Consumer::endpoint`).
    fn endpoint(&self) -> Option<String> {
        None
    }
    /// Wait for in-flight sends and close cleanly.
    async fn close(&mut self) {}
}

/// A broker's typed options as `(setting, value)` pairs, for `Driver::client_settings`: nested
/// fields joined with dots, text without quotes.
pub fn settings_of(options: &impl Serialize) -> Vec<(String, String)> {
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    flatten(
        "",
        &serde_json::to_value(options).unwrap_or_default(),
        &mut out,
    );
    out
}

/// The outcomes of sends for clients that give one future per send (RabbitMQ confirms, SQS
/// requests): a `Publisher` keeps them here and its `acks` is `next`.
#[derive(Default)]
pub struct PendingAcks(FuturesUnordered<BoxFuture<'static, SendOutcome>>);

impl PendingAcks {
    pub fn push(
        &mut self,
        token: SendToken,
        ack: impl Future<Output = Result<Position, SendError>> + Send + 'static,
    ) {
        self.0.push(ack.map(move |r| (token, r)).boxed());
    }

    pub async fn next(&mut self, out: &mut Vec<SendOutcome>) {
        match self.0.next().await {
            Some(outcome) => out.push(outcome),
            None => std::future::pending().await,
        }
        // Nothing is taken before the await above completes, so dropping this loses nothing.
        while let Some(Some(outcome)) = self.0.next().now_or_never() {
            out.push(outcome);
        }
    }
}

/// What a consumer needs to acknowledge one delivery later, in terms no broker owns; only the
/// driver that made a handle reads it. In `ack: auto` mode a handle that is not `None` marks the
/// delivery as processed for the client's own timed commit.
#[derive(Debug, Clone)]
pub enum AckHandle {
    /// Nothing to acknowledge (the broker counts the delivery as acknowledged once sent).
    None,
    /// A position in one shard of a log; acknowledging it covers the shard up to it (Kafka).
    Offset { shard: i32, offset: i64 },
    /// A delivery tag on one queue's channel (RabbitMQ).
    Tag { queue: u32, tag: u64 },
    /// A handle the broker issued for this one receipt (an SQS receipt handle).
    Receipt(String),
}

#[derive(Debug)]
pub struct Received {
    /// The message body, or at least its first `ENVELOPE_LEN` bytes (all that is read of it).
    pub body: Vec<u8>,
    pub pos: Position,
    pub redelivered: bool,
    pub receive_count: u32,
    pub handle: AckHandle,
}

#[async_trait]
pub trait Consumer: Send {
    /// Wait until the consumer really receives (e.g. Kafka partitions assigned), so the load does
    /// not start while the group is still forming. Deliveries seen meanwhile are kept for `poll`.
    async fn ready(&mut self, _timeout: Duration) -> Result<()> {
        Ok(())
    }
    /// Deliveries available now, waiting at most `wait` for the first one.
    async fn poll(&mut self, wait: Duration) -> Result<Vec<Received>>;
    async fn ack(&mut self, handle: AckHandle) -> Result<()>;
    /// How many acknowledgements the broker takes in one request (SQS's DeleteMessageBatch: 10).
    /// The worker then acknowledges a received batch at once after processing it, as an
    /// application on that broker would; 1 means one by one, each right after its processing.
    fn acks_per_request(&self) -> usize {
        1
    }
    /// Acknowledge several deliveries, in as few requests as the broker allows: one result per
    /// handle, in their order.
    async fn ack_all(&mut self, handles: Vec<AckHandle>) -> Vec<Result<()>> {
        let mut done = Vec::with_capacity(handles.len());
        for h in handles {
            done.push(self.ack(h).await);
        }
        done
    }
    /// `ack: auto`: mark a batch of processed deliveries for the client's own timed commit.
    async fn mark_processed(&mut self, handles: Vec<AckHandle>) -> Result<()> {
        for h in handles {
            self.ack(h).await?;
        }
        Ok(())
    }
    /// True when the client cannot recover by itself (e.g. its AMQP connection died); the worker
    /// then replaces it with a fresh consumer, as an application's reconnect logic would.
    fn is_broken(&self) -> bool {
        false
    }
    /// The broker address this client is connected to, where one client talks to one node of
    /// several (RabbitMQ's `urls`); None where the client library spreads itself over the
    /// cluster (Kafka) or there is one endpoint.
    fn endpoint(&self) -> Option<String> {
        None
    }
    /// Final read only: how many of the run's messages the broker still holds that this reader
    /// has not handed out yet (0 = it has read everything). None when the broker cannot tell.
    async fn remaining(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Leave cleanly (commit, close); not called when a crash fault kills the process.
    async fn close(&mut self) {}
}

#[async_trait]
pub trait Driver: Send + Sync {
    /// Create the run's topics/queues. Fails with the broker's name and address when unreachable.
    async fn setup(&self) -> Result<()>;
    async fn publisher(&self, producer: u32) -> Result<Box<dyn Publisher>>;
    async fn consumer(&self, consumer: u32) -> Result<Box<dyn Consumer>>;
    /// A fresh client that reads everything the run's topics or queues still store, for the
    /// final read: Kafka from offset 0 of every partition in a new group; RabbitMQ and SQS by
    /// emptying the queues. Its `remaining` says when it is done. Fails naming the broker and
    /// its address when the broker cannot be reached.
    async fn final_reader(&self) -> Result<Box<dyn Consumer>>;
    /// Delete what `setup` created (only that).
    async fn teardown(&self) -> Result<()>;
    /// The broker as it describes itself, for reports.
    async fn product(&self) -> String;
    /// Every topic, queue, exchange or consumer group on the broker whose name starts with
    /// `prefix` (`RESOURCE_PREFIX` for everything runs of the harness create), for
    /// `brokerbench leftovers`. The plan's run is none in particular (`Plan::janitor`).
    async fn list_created(&self, prefix: &str) -> Result<Vec<Resource>>;
    /// Delete one of them.
    async fn delete_created(&self, r: &Resource) -> Result<()>;
    /// The client settings this run's clients use, as `(setting, value)`, harness defaults and
    /// the workload's own together, for the report.
    fn client_settings(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Sends in flight a `max_in_flight: auto` window starts probing from, per producer. Its
    /// doublings find a clear plateau, but not a broker that gains a few percent at each
    /// doubling over a long way: one second's noise hides that, so such a driver starts near
    /// where it is known to level off.
    fn auto_window_start(&self) -> usize {
        DEFAULT_AUTO_WINDOW_START
    }
    /// The window at `rate: max` when the workload sets none: `auto`, unless the broker is known
    /// to defeat the probe and a measured number serves better.
    fn max_rate_window(&self) -> InFlight {
        InFlight::Auto
    }
}

/// Where `max_in_flight: auto` starts unless a driver knows better.
pub const DEFAULT_AUTO_WINDOW_START: usize = 1000;

/// Everything the rest of the crate asks of one broker. Each broker's folder defines its own.
pub struct Broker {
    /// How workloads, target profiles and the command line name it.
    pub name: &'static str,
    /// The driver for one run (the plan's target has this broker's section).
    pub connect: fn(Arc<Plan>) -> Result<Box<dyn Driver>>,
    /// Its section of a target profile, read from what the profile holds under its name.
    pub section: fn(&Raw) -> Result<Box<dyn Section>, Problem>,
    /// Its options under `topology.<name>`: whether they read (`read_problem::<T>`), and their
    /// schema for editors.
    pub options: fn(&Raw) -> Option<Problem>,
    pub options_schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// How the fault proxy must follow its wire protocol (None: plain bytes).
    pub wire: Option<fn() -> Arc<dyn Wire>>,
    /// What its consumers may need beyond `run.connect_timeout` to become ready.
    pub ready_slack: fn(&Workload) -> Duration,
    /// Its own checks of a workload that lists it (option values, size limits).
    pub validate: workload::Rule,
    /// The target's control commands its options call on (by `Control::command` name), each with
    /// the workload key that asks for it: checked before anything runs.
    pub needs_controls: fn(&Workload) -> Vec<NeededControl>,
}

/// A control command an option calls on: the option's keys in the workload, and the command's
/// name (as `Control::command` knows it).
pub type NeededControl = (Vec<String>, &'static str);

/// Every broker brokerbench drives, one line each.
pub const BROKERS: &[&Broker] = &[&kafka::BROKER, &rabbitmq::BROKER, &sqs::BROKER];

/// Why a broker's part of a file does not read: the keys to the bad value inside it, and what
/// is wrong there.
pub type Problem = (Vec<String>, String);

/// The registry's entry named `kind`, or an error listing the names there are.
pub fn broker(kind: &BrokerKind) -> Result<&'static Broker> {
    BROKERS
        .iter()
        .copied()
        .find(|b| b.name == kind.as_str())
        .with_context(|| {
            format!(
                "no broker is named `{kind}` (brokers: {})",
                names().join(", ")
            )
        })
}

/// The registry's names, in its order.
pub fn names() -> Vec<&'static str> {
    BROKERS.iter().map(|b| b.name).collect()
}

/// A broker's part of a file (topology options, a target section) as its folder's type `T`,
/// with `T`'s defaults for what is left out.
pub fn read<T: DeserializeOwned>(raw: &Raw) -> Result<T, Problem> {
    let empty = Raw::Object(Default::default());
    let raw = if raw.is_null() { &empty } else { raw };
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .collect();
        (path, e.into_inner().to_string())
    })
}

/// The problem, if any, in reading `raw` as `T`: a registry entry's `options` check.
pub fn read_problem<T: DeserializeOwned>(raw: &Raw) -> Option<Problem> {
    read::<T>(raw).err()
}

/// A target section of type `T`, boxed for the registry's `section`.
pub fn read_section<T: Section + DeserializeOwned + 'static>(
    raw: &Raw,
) -> Result<Box<dyn Section>, Problem> {
    Ok(Box::new(read::<T>(raw)?))
}

/// `w`'s options for the broker `name` as its type: what its driver works with.
pub fn options<T: DeserializeOwned + Default>(w: &Workload, name: &str) -> Result<T> {
    match w.topology.brokers.get(&BrokerKind::new(name)) {
        None => Ok(T::default()),
        Some(raw) => read(raw)
            .map_err(|(path, msg)| anyhow::anyhow!("topology.{name}: {}{msg}", dotted(&path))),
    }
}

/// `target`'s section for the broker `name` as its type.
pub fn settings<T: DeserializeOwned>(target: &TargetProfile, name: &str) -> Result<T> {
    let kind = BrokerKind::new(name);
    read(raw_section(target, &kind)?).map_err(|p| section_problem(target, &kind, p))
}

/// What `target` holds under `kind`'s name, or an error that names the profile and the broker.
fn raw_section<'a>(target: &'a TargetProfile, kind: &BrokerKind) -> Result<&'a Raw> {
    target
        .brokers
        .get(kind)
        .with_context(|| format!("target profile `{}` has no `{kind}` section", target.name))
}

fn section_problem(
    target: &TargetProfile,
    kind: &BrokerKind,
    (path, msg): Problem,
) -> anyhow::Error {
    anyhow::anyhow!(
        "target profile `{}`: {kind}: {}{msg}",
        target.name,
        dotted(&path)
    )
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!("{k}: ")).collect()
}

/// `kind`'s section of `target`, or an error that names the profile and the broker.
pub fn section(target: &TargetProfile, kind: &BrokerKind) -> Result<Box<dyn Section>> {
    let b = broker(kind)?;
    (b.section)(raw_section(target, kind)?).map_err(|p| section_problem(target, kind, p))
}

/// Where `kind` listens according to `target`, for messages (passwords hidden).
pub fn address(target: &TargetProfile, kind: &BrokerKind) -> String {
    section(target, kind)
        .map(|s| s.address())
        .unwrap_or_else(|_| "(not configured)".into())
}

/// The control commands `target` gives `kind`'s broker faults (none when it has no section).
pub fn control(target: &TargetProfile, kind: &BrokerKind) -> crate::target::Control {
    section(target, kind)
        .map(|s| s.control().clone())
        .unwrap_or_default()
}

/// The same profile with `kind`'s clients sent to `proxy` instead of the broker.
pub fn through_proxy(
    target: &TargetProfile,
    kind: &BrokerKind,
    proxy: std::net::SocketAddr,
) -> Result<TargetProfile> {
    let routed = section(target, kind)?.routed_through(proxy)?;
    let mut t = target.clone();
    t.brokers.insert(kind.clone(), routed);
    Ok(t)
}

/// The workload rule the run and `validate` add: every broker it names is registered, every
/// broker's topology options read, and each listed broker's own checks pass.
pub fn validate(w: &Workload) -> Vec<(workload::At, String)> {
    let known = names().join(", ");
    let mut bad = Vec::new();
    for kind in &w.brokers {
        if broker(kind).is_err() {
            bad.push(workload::at(
                &["brokers"],
                format!("no broker is named `{kind}` (brokers: {known})"),
            ));
        }
    }
    for (kind, raw) in &w.topology.brokers {
        let Ok(b) = broker(kind) else {
            bad.push(workload::at_keys(
                vec!["topology".into(), kind.to_string()],
                format!("`{kind}` is neither `partitions` nor a broker (brokers: {known})"),
            ));
            continue;
        };
        if let Some((path, msg)) = (b.options)(raw) {
            let at = ["topology".to_string(), kind.to_string()]
                .into_iter()
                .chain(path.iter().cloned())
                .collect();
            bad.push(workload::at_keys(
                at,
                format!("topology.{kind}: {}{msg}", dotted(&path)),
            ));
        }
    }
    for b in w.brokers.iter().filter_map(|k| broker(k).ok()) {
        bad.extend((b.validate)(w));
    }
    bad
}

/// The target-profile rule the run adds: every section names a registered broker and reads as
/// its type.
pub fn check_target(t: &TargetProfile) -> Vec<(workload::At, String)> {
    let mut bad = Vec::new();
    for (kind, raw) in &t.brokers {
        let problem = match broker(kind) {
            Err(e) => Some((Vec::new(), e.to_string())),
            Ok(b) => (b.section)(raw).err(),
        };
        if let Some((path, msg)) = problem {
            let at = std::iter::once(kind.to_string()).chain(path.iter().cloned());
            bad.push(workload::at_keys(
                at.collect(),
                format!("{kind}: {}{msg}", dotted(&path)),
            ));
        }
    }
    bad
}

/// Lists the registry's names as the values `BrokerKind` takes in a JSON Schema.
pub fn name_brokers(schema: &mut serde_json::Value) {
    if let Some(kind) = schema.pointer_mut("/$defs/BrokerKind") {
        kind["enum"] = serde_json::json!(names());
    }
}

/// The workload format's JSON Schema, with each broker's topology options under its name.
pub fn workload_schema() -> serde_json::Value {
    let mut generator = schemars::SchemaGenerator::default();
    let mut schema =
        serde_json::to_value(generator.root_schema_for::<Workload>()).unwrap_or_default();
    let options: serde_json::Map<String, serde_json::Value> = BROKERS
        .iter()
        .map(|b| {
            let s = (b.options_schema)(&mut generator);
            (
                b.name.to_string(),
                serde_json::to_value(s).unwrap_or_default(),
            )
        })
        .collect();
    let defs = serde_json::to_value(generator.definitions()).unwrap_or_default();
    if let Some(topology) = schema.pointer_mut("/$defs/Topology") {
        if let Some(properties) = topology["properties"].as_object_mut() {
            properties.extend(options);
        }
        topology["additionalProperties"] = serde_json::Value::Bool(false);
    }
    name_brokers(&mut schema);
    if let (Some(all), Some(more)) = (schema["$defs"].as_object_mut(), defs.as_object()) {
        for (k, v) in more {
            all.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    schema
}

impl Plan {
    /// The registry's entry for the run's broker.
    pub fn broker(&self) -> Result<&'static Broker> {
        broker(&self.broker)
    }

    /// Where the run's broker listens, for messages.
    pub fn address(&self) -> String {
        address(&self.target, &self.broker)
    }

    /// How long a consumer may take to become ready.
    pub fn ready_timeout(&self) -> Duration {
        let slack = self
            .broker()
            .map_or(Duration::ZERO, |b| (b.ready_slack)(&self.workload));
        self.workload.run.connect_timeout.0 + slack
    }
}

/// The driver for the plan's broker; fails naming the broker when the target lacks it.
pub fn driver(plan: Arc<Plan>) -> Result<Box<dyn Driver>> {
    section(&plan.target, &plan.broker)?;
    (plan.broker()?.connect)(plan)
}

/// A plan for `yaml`'s workload against the shipped local profile, for drivers' own tests.
#[cfg(test)]
pub(crate) fn test_plan(broker: &str, yaml: &str) -> Arc<Plan> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
    let target = TargetProfile::load(&root.join("local.yaml"), &[check_target]).unwrap();
    let w = workload::parse(std::path::Path::new("w.yaml"), yaml, &[validate]).unwrap();
    Arc::new(Plan::new("t", BrokerKind::new(broker), &w, &target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn typed_options_read_as_flat_settings() {
        let s = settings_of(&serde_json::json!({ "queue_type": "quorum", "linger": { "ms": 5 } }));
        assert_eq!(
            s,
            vec![
                ("linger.ms".to_string(), "5".to_string()),
                ("queue_type".to_string(), "quorum".to_string())
            ]
        );
    }

    #[test]
    fn every_broker_has_one_name() {
        let mut names = names();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BROKERS.len());
        assert!(broker(&BrokerKind::new("nats")).is_err());
    }

    fn profile(name: &str) -> TargetProfile {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
        TargetProfile::load(&root.join(name), &[check_target]).unwrap()
    }

    #[test]
    fn shipped_profiles_describe_every_broker_alike() {
        let (local, docker) = (profile("local.yaml"), profile("docker.yaml"));
        for b in BROKERS {
            let kind = BrokerKind::new(b.name);
            let (l, d) = (
                section(&local, &kind).unwrap(),
                section(&docker, &kind).unwrap(),
            );
            // Same ports on both, so a workload's results compare across profiles.
            assert_eq!(l.address(), d.address(), "{kind}");
            for (p, s) in [(&local, &l), (&docker, &d)] {
                let c = s.control();
                assert!(
                    c.kill.is_some()
                        && c.pause.is_some()
                        && c.resume.is_some()
                        && c.start.is_some()
                        && c.ready.is_some(),
                    "{} {kind}",
                    p.name
                );
            }
            // The local brokers' cost is sampled through the pid files bin/brokers writes.
            let pid_file = l.control().pid_file.clone().unwrap_or_default();
            assert_eq!(pid_file, format!("../.brokers/{kind}/pid"), "{kind}");
            // The containers' through `docker stats` of the service that runs the broker.
            let stats = d.control().stats.clone().unwrap_or_default();
            assert!(
                stats.starts_with("docker stats --format '{{json .}}' $(docker compose")
                    && stats.ends_with(")"),
                "{kind}: {stats}"
            );
            let service = stats
                .trim_end_matches(')')
                .rsplit(' ')
                .next()
                .unwrap_or_default();
            assert!(
                d.control()
                    .kill
                    .as_deref()
                    .is_some_and(|k| k.ends_with(service)),
                "{kind}: stats and kill name the same service"
            );
        }
    }

    /// Every node-fault kind runs against both cluster profiles: the local one (network
    /// namespaces, run by the cluster tests) and the docker one (which cannot run here), so a
    /// workload written for one runs on the other.
    #[test]
    fn both_cluster_profiles_offer_every_node_fault_with_its_commands() {
        use crate::chaos::faults::{Family, KINDS};
        let (local, docker) = (
            profile("local-cluster.yaml"),
            profile("docker-cluster.yaml"),
        );
        let node_kinds: Vec<_> = KINDS.iter().filter(|k| k.family == Family::Node).collect();
        assert!(node_kinds.len() >= 7, "the node faults left the table");
        let sections = [
            (&local, "rabbitmq"),
            (&docker, "rabbitmq"),
            (&docker, "kafka"),
        ];
        for (p, b) in sections {
            let c = section(p, &BrokerKind::new(b)).unwrap().control().clone();
            assert_eq!(c.nodes, ["n1", "n2", "n3"], "{} {b}", p.name);
            for k in &node_kinds {
                // `leader` for the faults aimed at it.
                for name in k.start.iter().chain(k.undo).chain(&["leader"]) {
                    assert!(
                        c.command(name).is_some(),
                        "{} {b}: {} needs `{name}`",
                        p.name,
                        k.name
                    );
                }
                // And the start command takes every parameter the fault fills in.
                let start = c.command(k.start[0]).unwrap_or_default();
                for (placeholder, _) in k.fills {
                    assert!(
                        start.contains(placeholder),
                        "{} {b}: {} passes {placeholder} to `{start}`",
                        p.name,
                        k.name
                    );
                }
            }
            // Per-node commands name the node; per-link ones both ends.
            for name in [
                "node_kill",
                "node_pause",
                "node_resume",
                "node_start",
                "node_restart",
            ] {
                assert!(c.command(name).is_some_and(|t| t.contains("{node}")));
            }
            for name in ["cut", "loss", "delay", "duplicate", "corrupt"] {
                let t = c.command(name).unwrap_or_default();
                assert!(
                    t.contains("{a}") && t.contains("{b}"),
                    "{} {b}: {t}",
                    p.name
                );
            }
        }
        // The workload's partition handling, on both RabbitMQ clusters.
        for p in [&local, &docker] {
            let c = control(p, &BrokerKind::new("rabbitmq"));
            assert!(c.partition_handling.is_some_and(|t| t.contains("{mode}")));
        }
    }

    /// docker-compose.yml's cluster profile as targets/docker-cluster.yaml and bin/docker-cluster
    /// use it: a service per node, each node's published port in the profile, and every pair of
    /// nodes on a network of its own, where each finds the other at the address bin/docker-cluster
    /// connects it back with (10.79.<ij>.<1k Kafka, 2k RabbitMQ>).
    #[test]
    fn the_compose_cluster_profile_matches_its_target_and_its_fault_script() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let src = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
        let compose: serde_json::Value = serde_saphyr::from_str(&src).unwrap();
        let services = &compose["services"];
        let docker = profile("docker-cluster.yaml");
        let addresses = address(&docker, &BrokerKind::new("kafka"))
            + ", "
            + &address(&docker, &BrokerKind::new("rabbitmq"));
        for (broker, octet) in [("kafka", 1), ("rabbitmq", 2)] {
            for i in 1..=3u32 {
                let name = format!("{broker}-n{i}");
                let s = &services[&name];
                assert_eq!(s["profiles"], serde_json::json!(["cluster"]), "{name}");
                assert_eq!(s["hostname"], name.as_str());
                // Published on loopback at the port the profile connects to.
                let port = s["ports"][0].as_str().unwrap_or_default();
                let published = port.split(':').nth(1).unwrap_or_default();
                assert!(
                    port.starts_with("127.0.0.1:")
                        && addresses.contains(&format!("127.0.0.1:{published}")),
                    "{name}: {port} is not in {addresses}"
                );
                let nets = &s["networks"];
                assert_eq!(
                    nets["bb-clients"]["ipv4_address"],
                    format!("10.79.0.{octet}{i}").as_str(),
                    "{name}"
                );
                for j in (1..=3u32).filter(|j| *j != i) {
                    let (lo, hi) = (i.min(j), i.max(j));
                    let net = format!("bb-n{lo}-n{hi}");
                    assert_eq!(
                        nets[&net]["ipv4_address"],
                        format!("10.79.{lo}{hi}.{octet}{i}").as_str(),
                        "{name} on {net}"
                    );
                    // Named as bin/docker-cluster disconnects and connects it.
                    assert_eq!(
                        compose["networks"][&net]["name"],
                        format!("brokerbench-n{lo}-n{hi}").as_str()
                    );
                    // The peer's name leads to the peer over their pair's network only.
                    let peer = format!("{broker}-n{j}:10.79.{lo}{hi}.{octet}{j}");
                    assert!(
                        s["extra_hosts"]
                            .as_array()
                            .is_some_and(|h| h.iter().any(|x| x == peer.as_str())),
                        "{name} lacks {peer}"
                    );
                }
            }
        }
        // Replicated as production would: three copies, two in sync before a write is acknowledged.
        let env = &services["kafka-n2"]["environment"];
        assert_eq!(env["KAFKA_NODE_ID"], 2);
        assert_eq!(env["KAFKA_MIN_INSYNC_REPLICAS"], 2);
        assert_eq!(env["KAFKA_DEFAULT_REPLICATION_FACTOR"], 3);
        // The single-node services stay outside the profile: `docker compose up` is unchanged.
        for single in ["kafka", "rabbitmq", "localstack"] {
            assert!(services[single]["profiles"].is_null(), "{single}");
        }
        // The script's addressing scheme is the one checked above.
        let script = std::fs::read_to_string(root.join("bin/docker-cluster")).unwrap();
        assert!(script.contains(r#"echo "brokerbench-n$a-n$b 10.79.$a$b""#));
        assert_eq!(
            compose["networks"]["bb-clients"]["name"],
            "brokerbench-clients"
        );
        assert!(script.contains("peer=10.79.0.1 ") && src.contains("gateway: 10.79.0.1 "));
        assert!(script.contains(r#"kafka) echo "1${2#n}" ;; rabbitmq) echo "2${2#n}""#));
    }

    #[test]
    fn a_section_routed_through_the_proxy_reads_back_with_the_proxy_address() {
        let local = profile("local.yaml");
        let proxy: std::net::SocketAddr = "127.0.0.1:40001".parse().unwrap();
        for b in BROKERS {
            let kind = BrokerKind::new(b.name);
            let routed = through_proxy(&local, &kind, proxy).unwrap();
            let upstream = section(&routed, &kind).unwrap().upstream().unwrap();
            assert_eq!(upstream, "127.0.0.1:40001", "{kind}");
            // The profile's other sections are untouched.
            assert_eq!(routed.brokers.len(), local.brokers.len());
        }
    }

    fn problems(yaml: &str) -> Vec<String> {
        match workload::parse(Path::new("w.yaml"), yaml, &[validate]) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_string).collect(),
        }
    }

    const BASE: &str = "name: t\nbrokers: [kafka, sqs]\nload: { rate: 1/s, duration: 2s }\n";

    #[test]
    fn every_broker_reads_its_own_options_with_its_defaults() {
        let yaml = format!("{BASE}topology:\n  partitions: 2\n  kafka: {{ idempotence: false }}\n");
        let w = workload::parse(Path::new("w.yaml"), &yaml, &[validate]).unwrap();
        let k: kafka::options::Options = options(&w, "kafka").unwrap();
        assert!(!k.idempotence);
        assert_eq!(k.session_timeout, workload::units::Dur::secs(6));
        // A broker with no section gets its defaults.
        let s: sqs::options::Options = options(&w, "sqs").unwrap();
        assert_eq!(s.batch, 10);
    }

    #[test]
    fn a_bad_broker_option_is_reported_at_its_own_line_naming_the_key() {
        let yaml = format!(
            "{BASE}topology:\n  kafka:\n    replication_factor: 1\n    session_timeout: soon\n"
        );
        let p = problems(&yaml);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("w.yaml:7:5: topology.kafka: session_timeout: "),
            "{p:?}"
        );
        // A misspelt option is named, with the ones there are.
        let p = problems(&format!("{BASE}topology:\n  rabbitmq: {{ prefech: 10 }}\n"));
        assert!(
            p[0].starts_with("w.yaml:5:15: topology.rabbitmq: prefech: "),
            "{p:?}"
        );
        assert!(p[0].contains("prefetch"), "{p:?}");
    }

    #[test]
    fn unknown_broker_names_are_refused_where_they_are_written() {
        let p = problems(&format!(
            "{}topology:\n  partitons: 4\n",
            BASE.replace("[kafka, sqs]", "[kafka, kafak]")
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("w.yaml:2:1: no broker is named `kafak`"),
            "{p:?}"
        );
        assert!(p[0].contains("kafka, rabbitmq, sqs"), "{p:?}");
        assert!(
            p[1].starts_with("w.yaml:5:3: `partitons` is neither"),
            "{p:?}"
        );
    }

    #[test]
    fn a_bad_target_section_is_reported_at_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.yaml");
        std::fs::write(
            &f,
            "name: t\nkafka:\n  bootstrap: 127.0.0.1:9092\nrabbitmq:\n  url: amqp://h\n  product: r\n  contrl: {}\nnats: {}\n",
        )
        .unwrap();
        let e = TargetProfile::load(&f, &[check_target])
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 3, "{e}");
        let has = |s: &str| lines.iter().any(|l| l.contains(s));
        assert!(has("t.yaml:2:1: kafka: missing field `product`"), "{e}");
        assert!(
            has("t.yaml:7:3: rabbitmq: contrl: unknown field `contrl`"),
            "{e}"
        );
        assert!(has("t.yaml:8:1: nats: no broker is named `nats`"), "{e}");
    }

    #[test]
    fn the_workload_schema_describes_every_brokers_options() {
        let s = workload_schema();
        let topology = &s["$defs"]["Topology"];
        assert_eq!(topology["additionalProperties"], false, "{topology}");
        assert_eq!(s["$defs"]["BrokerKind"]["enum"], serde_json::json!(names()));
        for b in BROKERS {
            let o = &topology["properties"][b.name];
            assert!(!o.is_null(), "no {} options in {topology}", b.name);
        }
        // The options' own definitions are there too, so every reference resolves.
        let text = s.to_string();
        for r in text.split("\"$ref\":\"#/$defs/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(!s["$defs"][name].is_null(), "dangling $ref {name}");
        }
    }

    fn ok() -> Result<Position, SendError> {
        Ok(Position::Unknown)
    }

    #[tokio::test]
    async fn pending_acks_hand_back_each_outcome_once_with_its_token() {
        let mut acks = PendingAcks::default();
        let (late_tx, late_rx) = tokio::sync::oneshot::channel::<()>();
        acks.push(7, async { ok() });
        acks.push(3, async move {
            let _ = late_rx.await;
            Err(SendError::Failed("refused".into()))
        });
        acks.push(9, async { ok() });

        // Everything already known comes in one batch.
        let mut out = Vec::new();
        acks.next(&mut out).await;
        let mut tokens: Vec<_> = out.iter().map(|(t, _)| *t).collect();
        tokens.sort();
        assert_eq!(tokens, [7, 9]);

        // Raced against a timer and dropped while waiting: nothing is lost.
        out.clear();
        let raced = tokio::time::timeout(Duration::from_millis(20), acks.next(&mut out)).await;
        assert!(raced.is_err());
        assert!(out.is_empty());
        late_tx.send(()).unwrap();
        acks.next(&mut out).await;
        assert!(matches!(out.as_slice(), [(3, Err(SendError::Failed(_)))]));

        // Nothing in flight: never resolves (the caller's other branches decide).
        out.clear();
        assert!(acks.next(&mut out).now_or_never().is_none());
    }
}
