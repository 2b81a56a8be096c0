//! Kafka protocol driver (rdkafka): keyed produce with acks=all, consumer groups with explicit
//! commits after or before processing, or auto-commit.

pub(super) mod options;
mod proxy;
mod target;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use futures::FutureExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::{
    AckHandle, Consumer, Driver, Plan, Publisher, Received, Resource, SendError, SendOutcome,
    SendToken,
};
use crate::history::Position;
use crate::message::{write_key_name, MsgId, ENVELOPE_LEN};
use crate::workload::AckMode;
use options::{Options, Role};
use target::KafkaTarget;

/// Kafka in the broker registry.
pub const BROKER: super::Broker = super::Broker {
    name: "kafka",
    connect,
    section: super::read_section::<KafkaTarget>,
    options: super::read_problem::<Options>,
    options_schema: <Options as schemars::JsonSchema>::json_schema,
    wire: Some(wire),
    // A consumer is ready once the group gave it partitions, which can take a session timeout.
    // (Options that do not read never get this far: the registry's check refuses them.)
    ready_slack: |w| {
        let o: Options = super::options(w, BROKER.name).unwrap_or_default();
        o.session_timeout.0
    },
    validate,
    needs_controls: |_| Vec::new(),
};

/// Every client property the workload passes through: not one the harness owns, and one
/// librdkafka takes (its own words when it does not).
fn validate(w: &crate::workload::Workload) -> Vec<(crate::workload::At, String)> {
    // Options that do not read are reported by the registry's own check.
    let o: Options = super::options(w, BROKER.name).unwrap_or_default();
    let mut bad = Vec::new();
    for (role, name, props) in [
        (Role::Producer, "producer", &o.producer),
        (Role::Consumer, "consumer", &o.consumer),
    ] {
        for (key, value) in props {
            let at = |msg: String| {
                let path = ["topology", "kafka", name, key.as_str()].map(String::from);
                crate::workload::at_keys(path.to_vec(), msg)
            };
            if let Some(why) = options::owned(role, key) {
                bad.push(at(format!(
                    "kafka {name} property {key} is the harness's own: {why}"
                )));
                continue;
            }
            let mut c = ClientConfig::new();
            c.set(key, value.to_string());
            if let Err(e) = c.create_native_config() {
                bad.push(at(format!(
                    "kafka {name} property {key}: {}",
                    librdkafka_says(&e)
                )));
            }
        }
    }
    bad
}

/// librdkafka's own description of a configuration error, without rdkafka's wrapping.
fn librdkafka_says(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, description, _, _) => description.clone(),
        other => other.to_string(),
    }
}

fn connect(plan: Arc<Plan>) -> Result<Box<dyn Driver>> {
    Ok(Box::new(KafkaDriver::new(plan)?))
}

/// Kafka clients connect to the nodes the metadata names: the proxy rewrites those names.
fn wire() -> Arc<dyn crate::chaos::proxy::Wire> {
    Arc::new(proxy::KafkaWire)
}

pub struct KafkaDriver {
    plan: Arc<Plan>,
    options: Options,
    target: KafkaTarget,
    bootstrap: String,
    topic: String,
}

impl KafkaDriver {
    pub fn new(plan: Arc<Plan>) -> Result<Self> {
        let options = super::options(&plan.workload, BROKER.name)?;
        let target: KafkaTarget = super::settings(&plan.target, BROKER.name)?;
        let bootstrap = target.bootstrap.clone();
        let topic = format!("{}-events", plan.resource_prefix);
        Ok(KafkaDriver {
            plan,
            options,
            target,
            bootstrap,
            topic,
        })
    }

    fn base_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("socket.connection.setup.timeout.ms", "5000")
            // Back off at most a second between reconnects (librdkafka's default grows to 10 s):
            // after a network fault heals the client is back within a second, as an application
            // tuned for availability would be.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "1000")
            .set("log_level", "3");
        c
    }

    /// The workload's producer: acks from every in-sync replica, the harness's defaults, then
    /// the workload's own properties over them.
    fn producer_config(&self) -> ClientConfig {
        let timeout_ms = self.plan.workload.run.send_timeout.0.as_millis();
        let mut c = self.base_config();
        c.set("acks", "all")
            .set("enable.idempotence", self.options.idempotence.to_string())
            .set("message.timeout.ms", timeout_ms.to_string())
            .set("linger.ms", "1")
            .set("queue.buffering.max.messages", "1000000");
        for (k, v) in &self.options.producer {
            c.set(k, v.to_string());
        }
        c
    }

    /// The workload's consumers, the same way.
    fn consumer_config(&self) -> ClientConfig {
        let auto = self.plan.workload.consumers.ack == AckMode::Auto;
        let session = self.options.session_timeout.0.as_millis().max(1000);
        let mut c = self.base_config();
        // A fresh group per run: a group reused after crashes may never reassign (docs/architecture.md, design notes).
        c.set("group.id", format!("{}-group", self.plan.resource_prefix))
            .set("enable.auto.commit", auto.to_string())
            .set("auto.commit.interval.ms", "1000")
            // Auto-commit only what was processed (stored in `ack`), as a poll loop's auto-commit
            // does; librdkafka's default would also commit fetched-but-unprocessed messages.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 3).to_string())
            // With the default 300 s the first JoinGroup can block for minutes (docs/architecture.md, design notes).
            .set(
                "max.poll.interval.ms",
                (session * 2).max(10_000).to_string(),
            );
        for (k, v) in &self.options.consumer {
            c.set(k, v.to_string());
        }
        // rdkafka applies its own log level after creating the client, over the property: a
        // workload's `log_level` (with `debug`, to see what a consumer did) must reach both.
        if let Some(level) = self.options.consumer.get("log_level") {
            c.set_log_level(log_level(&level.to_string()));
        }
        c
    }

    fn timeout(&self) -> Duration {
        self.plan.workload.run.connect_timeout.0
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.base_config()
            .create()
            .context("creating Kafka admin client")
    }

    /// librdkafka retries unreachable brokers forever; ask for metadata with a deadline so an
    /// unreachable broker is a clear error instead of a hang.
    async fn check_reachable(&self) -> Result<()> {
        let admin = self.admin()?;
        let timeout = self.timeout();
        let bootstrap = self.bootstrap.clone();
        tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
            .await?
            .map(|_| ())
            .map_err(|e| {
                anyhow!("kafka: cannot reach broker at {bootstrap} within {timeout:?}: {e}")
            })
    }
}

fn send_error(e: KafkaError) -> SendError {
    match e.rdkafka_error_code() {
        // Timed out or lost the connection with the send in flight: it may have been stored.
        Some(
            RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::NotEnoughReplicasAfterAppend,
        ) => SendError::Indeterminate(e.to_string()),
        _ => SendError::Failed(e.to_string()),
    }
}

#[async_trait]
impl Driver for KafkaDriver {
    async fn setup(&self) -> Result<()> {
        self.check_reachable().await?;
        let t = &self.plan.workload.topology;
        let topic = NewTopic::new(
            &self.topic,
            t.partitions as i32,
            TopicReplication::Fixed(self.options.replication_factor as i32),
        );
        let opts = AdminOptions::new()
            .request_timeout(Some(self.timeout()))
            .operation_timeout(Some(self.timeout()));
        let results = self
            .admin()?
            .create_topics([&topic], &opts)
            .await
            .with_context(|| {
                format!("kafka: creating topic {} at {}", self.topic, self.bootstrap)
            })?;
        for r in results {
            r.map_err(|(name, code)| {
                anyhow!("kafka: creating topic {name} at {}: {code}", self.bootstrap)
            })?;
        }
        Ok(())
    }

    async fn publisher(&self, _producer: u32) -> Result<Box<dyn Publisher>> {
        let (reports, acks) = mpsc::unbounded_channel();
        let producer: ThreadedProducer<AckSender> = self
            .producer_config()
            .create_with_context(AckSender(reports))
            .with_context(|| format!("kafka: creating producer for {}", self.bootstrap))?;
        Ok(Box::new(KafkaPublisher {
            producer: Arc::new(producer),
            acks,
            topic: self.topic.clone(),
            key: String::new(),
        }))
    }

    async fn consumer(&self, _consumer: u32) -> Result<Box<dyn Consumer>> {
        let auto = self.plan.workload.consumers.ack == AckMode::Auto;
        let consumer: StreamConsumer<GroupMember> = self
            .consumer_config()
            .create_with_context(GroupMember::default())
            .with_context(|| format!("kafka: creating consumer for {}", self.bootstrap))?;
        consumer
            .subscribe(&[&self.topic])
            .with_context(|| format!("kafka: subscribing to {}", self.topic))?;
        Ok(Box::new(KafkaConsumer {
            consumer,
            topic: self.topic.clone(),
            auto,
            stash: VecDeque::new(),
        }))
    }

    async fn final_reader(&self) -> Result<Box<dyn Consumer>> {
        self.check_reachable().await?;
        let consumer: StreamConsumer<GroupMember> = self
            .base_config()
            // A group of its own, so nothing the workload's consumers committed applies; the
            // partitions are assigned explicitly, so no rebalance can stall it.
            .set(
                "group.id",
                format!("{}-final-read", self.plan.resource_prefix),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(GroupMember::default())
            .with_context(|| format!("kafka: creating the final reader for {}", self.bootstrap))?;
        let timeout = self.timeout();
        let bootstrap = &self.bootstrap;
        // Blocking librdkafka calls: this process does nothing else meanwhile.
        let metadata =
            tokio::task::block_in_place(|| consumer.fetch_metadata(Some(&self.topic), timeout))
                .map_err(|e| anyhow!("kafka: final read: no metadata from {bootstrap}: {e}"))?;
        let topic = metadata.topics().iter().find(|t| t.name() == self.topic);
        if let Some(err) = topic.and_then(|t| t.error()) {
            // A topic the broker no longer knows (a memory-only broker restarted) holds nothing:
            // the read is complete and empty. Any other error leaves the read undone.
            let code = RDKafkaErrorCode::from(err);
            anyhow::ensure!(
                code == RDKafkaErrorCode::UnknownTopicOrPartition,
                "kafka: final read: topic {} at {bootstrap}: {code}",
                self.topic
            );
        }
        let partitions: Vec<i32> = topic
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        let mut tpl = TopicPartitionList::new();
        let mut ends = Vec::new();
        for &p in &partitions {
            // The load is over: what the log holds now is all there will be.
            let (low, high) =
                tokio::task::block_in_place(|| consumer.fetch_watermarks(&self.topic, p, timeout))
                    .map_err(|e| {
                        anyhow!(
                            "kafka: final read: no offsets of partition {p} from {bootstrap}: {e}"
                        )
                    })?;
            tpl.add_partition_offset(&self.topic, p, Offset::Beginning)
                .context("kafka: building the final read's assignment")?;
            ends.push(PartitionEnd {
                partition: p,
                next: low,
                high,
            });
        }
        consumer
            .assign(&tpl)
            .context("kafka: assigning partitions to the final reader")?;
        Ok(Box::new(KafkaFinalReader {
            inner: KafkaConsumer {
                consumer,
                topic: self.topic.clone(),
                auto: false,
                stash: VecDeque::new(),
            },
            ends,
        }))
    }

    async fn teardown(&self) -> Result<()> {
        let opts = AdminOptions::new().request_timeout(Some(self.timeout()));
        let results = self
            .admin()?
            .delete_topics(&[&self.topic], &opts)
            .await
            .context("kafka: deleting topic")?;
        for r in results {
            r.map_err(|(name, code)| anyhow!("kafka: deleting topic {name}: {code}"))?;
        }
        Ok(())
    }

    async fn product(&self) -> String {
        self.target.product.clone()
    }

    async fn list_created(&self, prefix: &str) -> Result<Vec<Resource>> {
        let admin = self.admin()?;
        let (timeout, bootstrap, prefix) =
            (self.timeout(), self.bootstrap.clone(), prefix.to_string());
        tokio::task::spawn_blocking(move || -> Result<Vec<Resource>> {
            let unreachable = |e: KafkaError| {
                anyhow!("kafka: cannot list at {bootstrap} within {timeout:?}: {e}")
            };
            let meta = admin
                .inner()
                .fetch_metadata(None, timeout)
                .map_err(unreachable)?;
            let mut out: Vec<Resource> = meta
                .topics()
                .iter()
                .filter(|t| t.name().starts_with(&prefix))
                .map(|t| Resource {
                    kind: "topic",
                    name: t.name().to_string(),
                })
                .collect();
            let groups = admin
                .inner()
                .fetch_group_list(None, timeout)
                .map_err(unreachable)?;
            out.extend(
                groups
                    .groups()
                    .iter()
                    .filter(|g| g.name().starts_with(&prefix))
                    .map(|g| Resource {
                        kind: "group",
                        name: g.name().to_string(),
                    }),
            );
            Ok(out)
        })
        .await?
    }

    async fn delete_created(&self, r: &Resource) -> Result<()> {
        let opts = AdminOptions::new().request_timeout(Some(self.timeout()));
        let admin = self.admin()?;
        let results = match r.kind {
            "topic" => admin.delete_topics(&[&r.name], &opts).await,
            _ => admin.delete_groups(&[&r.name], &opts).await,
        }
        .with_context(|| format!("kafka: deleting {} {}", r.kind, r.name))?;
        for res in results {
            res.map_err(|(name, code)| anyhow!("kafka: deleting {} {name}: {code}", r.kind))?;
        }
        Ok(())
    }

    fn client_settings(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (role, config) in [
            ("producer", self.producer_config()),
            ("consumer", self.consumer_config()),
        ] {
            for (k, v) in config.config_map() {
                // Where the clients connect is the target's business, and shown with it.
                if k != "bootstrap.servers" {
                    out.push((format!("{role}.{k}"), v.to_string()));
                }
            }
        }
        // Not a librdkafka property but the harness's own loop, and it decides what a
        // consumer costs the broker (one commit per message stalled the group at 10,000 msg/s).
        let commits = match self.plan.workload.consumers.ack {
            AckMode::AfterProcess => "one per polled batch, after processing it",
            AckMode::BeforeProcess => "one per polled batch, before processing it",
            AckMode::Auto => "librdkafka's timed auto-commit of the processed offsets",
        };
        out.push(("consumer commits (harness)".into(), commits.into()));
        out
    }
}

/// Hands each delivery report, with the token the send carried, to the publisher's `acks`.
/// The reports arrive on the client's polling thread; a channel costs far less there than a
/// future per send. Unbounded, yet holding at most one report per send in flight.
struct AckSender(mpsc::UnboundedSender<SendOutcome>);

impl ClientContext for AckSender {}

impl ProducerContext for AckSender {
    type DeliveryOpaque = SendToken;

    fn delivery(&self, report: &DeliveryResult<'_>, token: SendToken) {
        let outcome = match report {
            Ok(m) => Ok(Position::Offset {
                shard: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => Err(send_error(e.clone())),
        };
        // Closed only when the publisher is gone, and with it anyone waiting for this.
        let _ = self.0.send((token, outcome));
    }
}

struct KafkaPublisher {
    producer: Arc<ThreadedProducer<AckSender>>,
    acks: mpsc::UnboundedReceiver<SendOutcome>,
    topic: String,
    key: String,
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn submit(&mut self, token: SendToken, id: MsgId, body: &[u8]) -> Result<(), SendError> {
        // The client copies the key: format it into one reused buffer.
        self.key.clear();
        write_key_name(id.key, &mut self.key);
        let mut record = BaseRecord::with_opaque_to(&self.topic, token)
            .key(self.key.as_bytes())
            .payload(body);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                // The client's local queue is full: back off briefly, as a real application would.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(SendError::Failed(e.to_string())),
            }
        }
    }

    async fn acks(&mut self, out: &mut Vec<SendOutcome>) {
        // `recv_many` is cancel-safe; 0 means the channel closed, which the producer prevents.
        if self.acks.recv_many(out, 4096).await == 0 {
            std::future::pending::<()>().await;
        }
    }

    /// A fatal error (e.g. the idempotent producer's sequence broken) leaves the client unable
    /// to send again: the producer must make a new one.
    fn is_broken(&self) -> bool {
        self.producer.client().fatal_error().is_some()
    }

    async fn close(&mut self) {
        let p = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(10))).await;
    }
}

/// Where the final reader stands in one partition, and where the log ended when it began.
struct PartitionEnd {
    partition: i32,
    next: i64,
    high: i64,
}

/// Reads every partition from the beginning up to the end the log had when the read began.
struct KafkaFinalReader {
    inner: KafkaConsumer,
    ends: Vec<PartitionEnd>,
}

#[async_trait]
impl Consumer for KafkaFinalReader {
    async fn poll(&mut self, wait: Duration) -> Result<Vec<Received>> {
        let got = self.inner.poll(wait).await?;
        for r in &got {
            if let Position::Offset {
                shard: partition,
                offset,
            } = r.pos
            {
                if let Some(e) = self.ends.iter_mut().find(|e| e.partition == partition) {
                    e.next = e.next.max(offset + 1);
                }
            }
        }
        Ok(got)
    }

    async fn ack(&mut self, _: AckHandle) -> Result<()> {
        Ok(())
    }

    async fn remaining(&mut self) -> Result<Option<u64>> {
        Ok(Some(
            self.ends
                .iter()
                .map(|e| (e.high - e.next).max(0) as u64)
                .sum(),
        ))
    }
}

/// librdkafka's own log lines (errors by default, more with a workload's `debug` property), on
/// stderr: a consumer worker's stderr is its log file in the run directory, where they explain
/// what the client did when a delivery was late. (rdkafka's default context hands them to the
/// `log` crate, which this program does not install, so they were lost.)
struct LogToStderr;

/// librdkafka's syslog-style level number, as its `log_level` property takes it.
fn log_level(n: &str) -> RDKafkaLogLevel {
    use RDKafkaLogLevel::*;
    match n.trim() {
        "0" => Emerg,
        "1" => Alert,
        "2" => Critical,
        "3" => Error,
        "4" => Warning,
        "5" => Notice,
        "6" => Info,
        _ => Debug,
    }
}

impl ClientContext for LogToStderr {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::note!(
            "{} librdkafka {level:?} {fac}: {log_message}",
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
        );
    }
}

impl ConsumerContext for LogToStderr {}

/// A workload consumer's context: librdkafka's log on stderr, as `LogToStderr`, and what the
/// group assigned it. A member is ready once it has an assignment, even an empty one: with more
/// members than partitions the extra ones are standbys that own nothing until a rebalance gives
/// them something, as in any consumer group scaled past its partition count.
#[derive(Default)]
struct GroupMember {
    assigned: std::sync::atomic::AtomicBool,
}

impl ClientContext for GroupMember {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        LogToStderr.log(level, fac, log_message)
    }
}

impl ConsumerContext for GroupMember {
    fn post_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        use rdkafka::consumer::Rebalance;
        let (what, partitions) = match rebalance {
            Rebalance::Assign(tpl) => {
                self.assigned
                    .store(true, std::sync::atomic::Ordering::Release);
                ("assigned", tpl.elements())
            }
            Rebalance::Revoke(tpl) => ("revoked", tpl.elements()),
            Rebalance::Error(e) => {
                crate::note!("kafka: rebalance failed: {e}");
                return;
            }
        };
        let ids: Vec<i32> = partitions.iter().map(|p| p.partition()).collect();
        // Eager assignments are whole: an empty one makes a standby. Cooperative ones
        // (cooperative-sticky) are increments: an empty one only means nothing was added.
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        let standby = match (what, ids.is_empty(), cooperative) {
            ("assigned", true, false) => " (a standby: the group has more members than partitions)",
            ("assigned", _, true) => " (incrementally: cooperative rebalancing)",
            ("revoked", _, true) => " (incrementally: cooperative rebalancing)",
            _ => "",
        };
        crate::note!(
            "{} kafka: rebalance {what} partitions {ids:?}{standby}",
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
        );
    }
}

struct KafkaConsumer {
    consumer: StreamConsumer<GroupMember>,
    topic: String,
    auto: bool,
    /// Messages received while waiting for the assignment, handed out by the next poll.
    stash: VecDeque<Received>,
}

impl KafkaConsumer {
    /// The offsets that acknowledge `handles`: per partition, the one after the highest. A
    /// partition's deliveries are processed in offset order, so its highest covers them all
    /// (and one entry per partition saves looking the topic up per message).
    fn next_offsets(&self, handles: Vec<AckHandle>) -> Result<Option<TopicPartitionList>> {
        let mut highest = std::collections::BTreeMap::new();
        for h in handles {
            if let AckHandle::Offset {
                shard: partition,
                offset,
            } = h
            {
                let e = highest.entry(partition).or_insert(offset);
                *e = (*e).max(offset);
            }
        }
        if highest.is_empty() {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in highest {
            // Committed or stored as given: the next offset to read.
            tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset + 1))
                .context("kafka: building offsets")?;
        }
        Ok(Some(tpl))
    }

    fn received(&self, msg: &rdkafka::message::BorrowedMessage<'_>) -> Received {
        let (partition, offset) = (msg.partition(), msg.offset());
        let payload = msg.payload().unwrap_or_default();
        Received {
            // Only the envelope is read from a body: the filler is not copied.
            body: payload[..payload.len().min(ENVELOPE_LEN)].to_vec(),
            pos: Position::Offset {
                shard: partition,
                offset,
            },
            redelivered: false,
            receive_count: 0,
            // In auto mode too: `ack` then stores the offset for the timed auto-commit.
            handle: AckHandle::Offset {
                shard: partition,
                offset,
            },
        }
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn ready(&mut self, timeout: Duration) -> Result<()> {
        // The group is joined from inside recv(); drive it until the group has assigned this
        // member its partitions, none for a standby. (The final reader assigns its own.)
        let deadline = Instant::now() + timeout;
        let assigned = || {
            self.consumer
                .context()
                .assigned
                .load(std::sync::atomic::Ordering::Acquire)
                || self.consumer.assignment().is_ok_and(|a| a.count() > 0)
        };
        while !assigned() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "kafka: no assignment within {timeout:?} (the consumer group did not form)"
            );
            if let Ok(m) =
                tokio::time::timeout(Duration::from_millis(100), self.consumer.recv()).await
            {
                let r = self.received(&m.context("kafka: receiving")?);
                self.stash.push_back(r);
            }
        }
        Ok(())
    }

    async fn poll(&mut self, wait: Duration) -> Result<Vec<Received>> {
        if !self.stash.is_empty() {
            return Ok(self.stash.drain(..).collect());
        }
        let msg = match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(m) => m.context("kafka: receiving")?,
        };
        let mut out = vec![self.received(&msg)];
        drop(msg);
        // Take what librdkafka has already fetched, without waiting, up to a small batch.
        while out.len() < 256 {
            match self.consumer.recv().now_or_never() {
                Some(Ok(m)) => out.push(self.received(&m)),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, handle: AckHandle) -> Result<()> {
        if let AckHandle::Offset {
            shard: partition,
            offset,
        } = handle
        {
            if self.auto {
                // Auto-commit picks stored offsets up on its timer.
                self.consumer
                    .store_offset(&self.topic, partition, offset)
                    .context("kafka: storing offset")?;
            } else {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset + 1))
                    .context("kafka: building commit")?;
                self.consumer
                    .commit(&tpl, CommitMode::Async)
                    .context("kafka: committing")?;
            }
        }
        Ok(())
    }

    /// A whole polled batch at once, as the documented pattern does (poll, process the batch,
    /// commit): one commit per batch. Committing each message on its own queued tens of thousands
    /// of OffsetCommit requests at 10,000 msg/s, and the group's heartbeats waited behind them
    /// until the session timed out: a rebalance, and 20 s without deliveries, that the harness
    /// had caused.
    fn acks_per_request(&self) -> usize {
        usize::MAX
    }

    async fn ack_all(&mut self, handles: Vec<AckHandle>) -> Vec<Result<()>> {
        let n = handles.len();
        let committed = match self.next_offsets(handles) {
            Ok(None) => Ok(()),
            Ok(Some(tpl)) => self
                .consumer
                .commit(&tpl, CommitMode::Async)
                .context("kafka: committing"),
            Err(e) => Err(e),
        };
        match committed {
            Ok(()) => (0..n).map(|_| Ok(())).collect(),
            Err(e) => (0..n).map(|_| Err(anyhow!("{e:#}"))).collect(),
        }
    }

    async fn mark_processed(&mut self, handles: Vec<AckHandle>) -> Result<()> {
        match self.next_offsets(handles)? {
            Some(tpl) => self
                .consumer
                .store_offsets(&tpl)
                .context("kafka: storing offsets"),
            None => Ok(()),
        }
    }

    async fn close(&mut self) {
        if !self.auto {
            let _ = self.consumer.commit_consumer_state(CommitMode::Sync);
        }
        self.consumer.unsubscribe();
    }
}

#[cfg(test)]
mod options_tests {
    use super::*;

    #[test]
    fn the_workloads_options_reach_the_driver() {
        let yaml = "name: t\nbrokers: [kafka]\ntopology:\n  kafka: { idempotence: false, session_timeout: 9s }\nload: { rate: 1/s, duration: 1s }\n";
        let plan = super::super::test_plan("kafka", yaml);
        assert_eq!(
            plan.ready_timeout(),
            plan.workload.run.connect_timeout.0 + Duration::from_secs(9)
        );
        let d = KafkaDriver::new(plan).unwrap();
        assert!(!d.options.idempotence);
        assert_eq!(d.bootstrap, d.target.bootstrap);
    }

    const CLIENTS: &str = "name: t
brokers: [kafka]
topology:
  kafka:
    producer: { linger.ms: 5, compression.type: lz4, batch.size: 131072 }
    consumer: { fetch.min.bytes: 1024 }
load: { rate: 1/s, duration: 1s }
";

    #[test]
    fn client_properties_pass_through_over_the_defaults_and_are_reported() {
        let d = KafkaDriver::new(super::super::test_plan("kafka", CLIENTS)).unwrap();
        let p = d.producer_config();
        assert_eq!(p.get("linger.ms"), Some("5"), "over the harness's 1 ms");
        assert_eq!(p.get("compression.type"), Some("lz4"));
        assert_eq!(p.get("acks"), Some("all"), "defaults stay");
        let c = d.consumer_config();
        assert_eq!(c.get("fetch.min.bytes"), Some("1024"));
        assert_eq!(c.get("linger.ms"), None, "each role gets its own");
        let settings = d.client_settings();
        for expected in [
            ("producer.linger.ms", "5"),
            ("producer.batch.size", "131072"),
            ("consumer.fetch.min.bytes", "1024"),
            ("consumer.enable.auto.offset.store", "false"),
            (
                "consumer commits (harness)",
                "one per polled batch, after processing it",
            ),
        ] {
            assert!(
                settings
                    .iter()
                    .any(|(k, v)| (k.as_str(), v.as_str()) == expected),
                "{expected:?} in {settings:?}"
            );
        }
    }

    fn problems(yaml: &str) -> String {
        crate::workload::parse(
            std::path::Path::new("w.yaml"),
            yaml,
            &[super::super::validate],
        )
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn client_properties_are_checked_where_they_are_written() {
        assert_eq!(problems(CLIENTS), "");
        // One the harness owns: refused, with the reason.
        let owned =
            problems(&CLIENTS.replace("fetch.min.bytes: 1024", "enable.auto.offset.store: true"));
        assert!(
            owned.starts_with(
                "w.yaml:6:17: kafka consumer property enable.auto.offset.store is the harness's own: the harness stores an offset only once"
            ),
            "{owned}"
        );
        // One librdkafka does not know, or a value it does not take: in its own words.
        let unknown = problems(&CLIENTS.replace("linger.ms: 5", "linger.mss: 5"));
        assert!(
            unknown.starts_with("w.yaml:5:17: kafka producer property linger.mss: ")
                && unknown.contains("No such configuration property"),
            "{unknown}"
        );
        let bad = problems(&CLIENTS.replace("lz4", "lz5"));
        assert!(
            bad.contains("kafka producer property compression.type: ") && bad.contains("lz5"),
            "{bad}"
        );
        // An owned property is owned only for the role that needs it.
        assert_eq!(
            problems(&CLIENTS.replace("linger.ms: 5", "group.id: mine")),
            "",
            "a producer has no group"
        );
    }
}
