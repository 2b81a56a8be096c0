//! RabbitMQ driver (lapin): durable queues (classic or quorum), persistent messages, publisher
//! confirms, per-key sharding over N queues with the consistent-hash exchange, single active
//! consumer, prefetch, and manual / before-process / auto acknowledgement.

pub(super) mod options;
mod target;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use futures::stream::{SelectAll, StreamExt};
use futures::FutureExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

use super::{
    AckHandle, Consumer, Driver, PendingAcks, Plan, Publisher, Received, Resource, SendError,
    SendOutcome, SendToken,
};
use crate::history::Position;
use crate::message::MsgId;
use crate::target::redact_url;
use crate::workload::{at, AckMode, At, InFlight, Workload};
use options::{Options, QueueType, Sharding};
use target::RabbitTarget;

/// RabbitMQ in the broker registry.
pub const BROKER: super::Broker = super::Broker {
    name: "rabbitmq",
    connect,
    section: super::read_section::<RabbitTarget>,
    options: super::read_problem::<Options>,
    options_schema: <Options as schemars::JsonSchema>::json_schema,
    wire: None,
    ready_slack: |_| Duration::ZERO,
    validate,
    needs_controls,
};

/// A workload that chooses the partition handling needs a target that can set it.
fn needs_controls(w: &Workload) -> Vec<super::NeededControl> {
    let rabbit = super::options::<Options>(w, BROKER.name).unwrap_or_default();
    match rabbit.partition_handling {
        Some(_) => vec![(
            ["topology", "rabbitmq", "partition_handling"]
                .map(String::from)
                .to_vec(),
            "partition_handling",
        )],
        None => Vec::new(),
    }
}

/// The most channels a consumer may spread its queues over: more than a consumer has queues
/// would leave channels idle, and RabbitMQ's own default cap per connection is 2047.
const MAX_CHANNELS_PER_CONSUMER: u16 = 64;

fn validate(w: &Workload) -> Vec<(At, String)> {
    // Options that do not read are reported by the registry's own check.
    let rabbit = super::options::<Options>(w, BROKER.name).unwrap_or_default();
    let mut bad = Vec::new();
    if !(1..=MAX_CHANNELS_PER_CONSUMER).contains(&rabbit.channels_per_consumer) {
        bad.push(at(
            &["topology", "rabbitmq", "channels_per_consumer"],
            format!(
                "rabbitmq channels_per_consumer must be between 1 and {MAX_CHANNELS_PER_CONSUMER}"
            ),
        ));
    }
    bad
}

fn connect(plan: Arc<Plan>) -> Result<Box<dyn Driver>> {
    Ok(Box::new(RabbitDriver::new(plan)?))
}

pub struct RabbitDriver {
    plan: Arc<Plan>,
    options: Options,
    target: RabbitTarget,
    /// The nodes' URLs: `url`, or a cluster's `urls`.
    urls: Vec<String>,
    /// Which node the next connection tries first.
    next: std::sync::atomic::AtomicUsize,
}

impl RabbitDriver {
    pub fn new(plan: Arc<Plan>) -> Result<Self> {
        let options = super::options(&plan.workload, BROKER.name)?;
        let target: RabbitTarget = super::settings(&plan.target, BROKER.name)?;
        let urls = if target.urls.is_empty() {
            vec![target.url.clone()]
        } else {
            target.urls.clone()
        };
        Ok(RabbitDriver {
            plan,
            options,
            target,
            urls,
            next: Default::default(),
        })
    }

    fn queue_count(&self) -> u32 {
        match self.options.sharding {
            Sharding::ConsistentHash => self.plan.workload.topology.partitions,
            Sharding::None => 1,
        }
    }

    fn sharded(&self) -> bool {
        self.queue_count() > 1
    }

    fn exchange(&self) -> String {
        format!("{}-x", self.plan.resource_prefix)
    }

    fn queue(&self, i: u32) -> String {
        format!("{}-q{i}", self.plan.resource_prefix)
    }

    /// A node's URL with the workload's heartbeat, unless the target sets one: a connection
    /// that hears nothing for two intervals is then declared dead (and replaced) instead of
    /// waiting forever on a silent peer.
    fn with_heartbeat(&self, url: &str) -> String {
        let secs = self.plan.workload.run.heartbeat.0.as_secs().max(1);
        match url::Url::parse(url) {
            Ok(mut u) if !u.query_pairs().any(|(k, _)| k == "heartbeat") => {
                u.query_pairs_mut()
                    .append_pair("heartbeat", &secs.to_string());
                u.to_string()
            }
            _ => url.to_string(),
        }
    }

    /// A connection to the next node in turn, or to the ones after it when it does not answer
    /// (each within `run.connect_timeout`), and the address it went to when there is a choice
    /// (credentials left out). The error names every node tried.
    async fn connect(&self, role: &str) -> Result<(Connection, Option<String>)> {
        let timeout = self.plan.workload.run.connect_timeout.0;
        let first = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut failures = Vec::new();
        for i in 0..self.urls.len() {
            let url = &self.urls[(first + i) % self.urls.len()];
            let shown = redact_url(url);
            let props = ConnectionProperties::default()
                .with_connection_name(format!("brokerbench {role}").into());
            match tokio::time::timeout(
                timeout,
                Connection::connect(&self.with_heartbeat(url), props),
            )
            .await
            {
                Ok(Ok(c)) => return Ok((c, (self.urls.len() > 1).then(|| endpoint_of(url)))),
                Ok(Err(e)) => failures.push(format!("cannot connect to {shown}: {e}")),
                Err(_) => failures.push(format!("no answer from {shown} within {timeout:?}")),
            }
        }
        Err(anyhow!("rabbitmq: {}", failures.join("; ")))
    }
}

#[async_trait]
impl Driver for RabbitDriver {
    async fn setup(&self) -> Result<()> {
        if let Some(mode) = self.options.partition_handling {
            // Checked before the run (needs_controls), so a missing command is a profile edited since.
            let cmd = self
                .target
                .control
                .partition_handling
                .as_deref()
                .context("rabbitmq: the target profile has no partition_handling command")?
                .replace("{mode}", mode.as_str());
            crate::chaos::run_command(&cmd, &self.plan.target.dir)
                .await
                .with_context(|| {
                    format!("rabbitmq: setting partition handling {}", mode.as_str())
                })?;
        }
        let (conn, _) = self.connect("setup").await?;
        let ch = conn
            .create_channel()
            .await
            .context("rabbitmq: opening channel")?;
        let t = &self.options;
        let mut args = FieldTable::default();
        let qtype = match t.queue_type {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        };
        args.insert("x-queue-type".into(), AMQPValue::LongString(qtype.into()));
        if t.single_active_consumer {
            args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        }
        if self.sharded() {
            let opts = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            ch.exchange_declare(self.exchange().into(), ExchangeKind::Custom("x-consistent-hash".into()), opts, FieldTable::default())
                .await
                .context("rabbitmq: declaring the consistent-hash exchange (is rabbitmq_consistent_hash_exchange enabled?)")?;
        }
        for i in 0..self.queue_count() {
            ch.queue_declare(
                self.queue(i).into(),
                QueueDeclareOptions::durable(),
                args.clone(),
            )
            .await
            .with_context(|| format!("rabbitmq: declaring queue {}", self.queue(i)))?;
            if self.sharded() {
                // The binding key of a consistent-hash exchange is the queue's weight.
                ch.queue_bind(
                    self.queue(i).into(),
                    self.exchange().into(),
                    "1".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .context("rabbitmq: binding queue")?;
            }
        }
        let _ = conn.close(200, "setup done".into()).await;
        Ok(())
    }

    async fn publisher(&self, producer: u32) -> Result<Box<dyn Publisher>> {
        let (conn, endpoint) = self.connect(&format!("producer {producer}")).await?;
        let channel = conn
            .create_channel()
            .await
            .context("rabbitmq: opening channel")?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("rabbitmq: enabling publisher confirms")?;
        let (exchange, single_queue) = if self.sharded() {
            (self.exchange(), None)
        } else {
            (String::new(), Some(self.queue(0)))
        };
        Ok(Box::new(RabbitPublisher {
            _conn: conn,
            endpoint,
            channel,
            exchange,
            single_queue,
            confirms: PendingAcks::default(),
            send_timeout: self.plan.workload.run.send_timeout.0,
        }))
    }

    async fn consumer(&self, consumer: u32) -> Result<Box<dyn Consumer>> {
        let w = &self.plan.workload;
        let no_ack = w.consumers.ack == AckMode::Auto;
        let name = format!("consumer {consumer}");
        let tag = format!("{}-c{consumer}", self.plan.resource_prefix);
        let mut c = self
            .open_consumer(
                &name,
                &tag,
                self.options.prefetch,
                self.options.channels_per_consumer,
                no_ack,
            )
            .await?;
        let queues: Vec<u32> = (0..self.queue_count()).collect();
        let (own, others) = if self.options.single_active_consumer {
            spread(consumer, w.consumers.count, &queues)
        } else {
            (queues, Vec::new())
        };
        for q in own {
            c.subscribe(q).await?;
        }
        // Standing by on the others' shards, so that one takes over when their consumer dies,
        // once the others have had the time to become active on their own.
        c.standby = others;
        c.standby_at = tokio::time::Instant::now() + STANDBY_AFTER;
        Ok(Box::new(c))
    }

    async fn final_reader(&self) -> Result<Box<dyn Consumer>> {
        let tag = format!("{}-final-read", self.plan.resource_prefix);
        let mut consumer = self
            .open_consumer("final read", &tag, 1000, 1, false)
            .await?;
        for q in 0..self.queue_count() {
            consumer.subscribe(q).await?;
        }
        // Counting on a channel of its own: a failed passive declare closes its channel.
        let counter = consumer
            ._conn
            .create_channel()
            .await
            .context("rabbitmq: opening a channel to count the queues")?;
        let queues = (0..self.queue_count()).map(|i| self.queue(i)).collect();
        Ok(Box::new(RabbitFinalReader {
            consumer,
            counter,
            queues,
        }))
    }

    async fn teardown(&self) -> Result<()> {
        let (conn, _) = self.connect("teardown").await?;
        let ch = conn.create_channel().await?;
        for i in 0..self.queue_count() {
            ch.queue_delete(self.queue(i).into(), QueueDeleteOptions::default())
                .await
                .with_context(|| format!("rabbitmq: deleting {}", self.queue(i)))?;
        }
        if self.sharded() {
            ch.exchange_delete(self.exchange().into(), ExchangeDeleteOptions::default())
                .await
                .context("rabbitmq: deleting exchange")?;
        }
        let _ = conn.close(200, "teardown done".into()).await;
        Ok(())
    }

    async fn product(&self) -> String {
        self.target.product.clone()
    }

    /// AMQP cannot list queues: the target's `list` command does (`queue NAME` and `exchange
    /// NAME` lines; locally `bin/brokers list rabbitmq`, through rabbitmqctl).
    async fn list_created(&self, prefix: &str) -> Result<Vec<Resource>> {
        let cmd = self.target.control.list.as_deref().with_context(|| {
            format!(
                "rabbitmq: target profile `{}` has no `list` command (AMQP cannot list queues)",
                self.plan.target.name
            )
        })?;
        // rabbitmqctl explains a failure at length: its first line says what failed.
        let (out, _) = crate::chaos::run_command(cmd, &self.plan.target.dir)
            .await
            .map_err(|e| anyhow!("{}", format!("{e:#}").lines().next().unwrap_or_default()))
            .context("rabbitmq: listing queues and exchanges")?;
        Ok(out
            .lines()
            .filter_map(|l| l.trim().split_once(char::is_whitespace))
            .filter_map(|(kind, name)| {
                let kind = match kind {
                    "queue" => "queue",
                    "exchange" => "exchange",
                    _ => return None,
                };
                let name = name.trim();
                name.starts_with(prefix).then(|| Resource {
                    kind,
                    name: name.to_string(),
                })
            })
            .collect())
    }

    async fn delete_created(&self, r: &Resource) -> Result<()> {
        let (conn, _) = self.connect("leftovers").await?;
        let ch = conn.create_channel().await?;
        let done = match r.kind {
            "queue" => ch
                .queue_delete(r.name.as_str().into(), QueueDeleteOptions::default())
                .await
                .map(|_| ()),
            _ => {
                ch.exchange_delete(r.name.as_str().into(), ExchangeDeleteOptions::default())
                    .await
            }
        };
        let _ = conn.close(200, "leftovers deleted".into()).await;
        done.with_context(|| format!("rabbitmq: deleting {} {}", r.kind, r.name))
    }

    fn client_settings(&self) -> Vec<(String, String)> {
        let mut s = super::settings_of(&self.options);
        // Publisher confirms are always on: an acknowledged send is one the broker confirmed.
        s.push(("publisher_confirms".into(), "true".into()));
        let heartbeat = self.plan.workload.run.heartbeat.0.as_secs().max(1);
        s.push(("heartbeat".into(), format!("{heartbeat}s")));
        s
    }

    /// Publisher confirms gain 3-5% per doubling of the window from 1,000 to about 10,000 here
    /// (docs/benchmarks.md): below one second's noise, so probing from 1,000 stopped there.
    fn auto_window_start(&self) -> usize {
        8000
    }

    /// 10,000 confirms in flight: the best of 1,000 to 100,000 here, and 20,000 or more did no
    /// better (docs/benchmarks.md). `auto` reached about 0.9x of it: the gain per doubling is
    /// below one second's noise, and far past what the broker keeps up with (128,000 in flight)
    /// confirms stopped for seconds and then came in bursts.
    fn max_rate_window(&self) -> InFlight {
        InFlight::Fixed(10_000)
    }
}

/// How long a consumer waits before it subscribes to the other consumers' shards as standby.
/// With single active consumer, the first subscriber to a queue is its active consumer: if every
/// consumer subscribed to every queue at once, in the same order, the first would be active on
/// all of them and the rest would idle. Consumers start together, so this is ample.
const STANDBY_AFTER: Duration = Duration::from_secs(2);

/// The shards consumer `index` of `count` is meant to be active on (every `count`-th, from its
/// index, as a partitioned-channel deployment assigns them), and the rest, which it stands by on.
fn spread(index: u32, count: u32, queues: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let count = count.max(1);
    queues.iter().partition(|&&q| q % count == index % count)
}

/// The host and port of an AMQP URL (`amqp://user:pass@10.77.0.12:5672/%2f` → `10.77.0.12:5672`),
/// what a reader needs to tell the nodes apart; the whole URL, credentials hidden, if it has
/// another shape.
fn endpoint_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    match rest.split('/').next() {
        Some(host) if !host.is_empty() => host.to_string(),
        _ => redact_url(url),
    }
}

impl RabbitDriver {
    /// A connection and its channels to consume on, subscribed to no queue yet.
    async fn open_consumer(
        &self,
        name: &str,
        tag: &str,
        prefetch: u16,
        channels: u16,
        no_ack: bool,
    ) -> Result<RabbitConsumer> {
        let (conn, endpoint) = self.connect(name).await?;
        let mut opened = Vec::new();
        for _ in 0..channels.max(1) {
            let channel = conn
                .create_channel()
                .await
                .context("rabbitmq: opening channel")?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await
                .context("rabbitmq: setting prefetch")?;
            opened.push(channel);
        }
        Ok(RabbitConsumer {
            _conn: conn,
            endpoint,
            channels: opened,
            streams: SelectAll::new(),
            no_ack,
            tag: tag.to_string(),
            queue_names: (0..self.queue_count()).map(|i| self.queue(i)).collect(),
            standby: Vec::new(),
            standby_at: tokio::time::Instant::now(),
        })
    }
}

struct RabbitPublisher {
    _conn: Connection,
    /// The node's address (host:port), when the target names several.
    endpoint: Option<String>,
    channel: Channel,
    exchange: String,
    single_queue: Option<String>,
    confirms: PendingAcks,
    /// AMQP has no deadline for a confirm: a node that stops answering without closing the
    /// connection (the minority side of a partition, before it notices) would hold the send
    /// until the connection dies. Each confirm waits this long at most (`run.send_timeout`).
    send_timeout: std::time::Duration,
}

#[async_trait]
impl Publisher for RabbitPublisher {
    async fn submit(&mut self, token: SendToken, id: MsgId, body: &[u8]) -> Result<(), SendError> {
        // Sharded: the exchange hashes the routing key (our message key) to a queue.
        let routing_key = self.single_queue.clone().unwrap_or_else(|| id.key_string());
        let props = BasicProperties::default().with_delivery_mode(2);
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .map_err(|e| SendError::Failed(format!("publish: {e}")))?;
        let timeout = self.send_timeout;
        self.confirms.push(token, async move {
            match tokio::time::timeout(timeout, confirm).await {
                Ok(Ok(c)) if c.is_ack() => Ok(Position::Unknown),
                Ok(Ok(_)) => Err(SendError::Failed("broker nacked the message".into())),
                // Channel or connection died with the message in flight: it may be stored.
                Ok(Err(e)) => Err(SendError::Indeterminate(format!("confirm: {e}"))),
                Err(_) => Err(SendError::Indeterminate(format!(
                    "no confirm within {timeout:?} (run.send_timeout)"
                ))),
            }
        });
        Ok(())
    }

    async fn acks(&mut self, out: &mut Vec<SendOutcome>) {
        self.confirms.next(out).await
    }

    fn is_broken(&self) -> bool {
        !self._conn.status().connected() || !self.channel.status().connected()
    }

    fn endpoint(&self) -> Option<String> {
        self.endpoint.clone()
    }
}

type DeliveryStream =
    futures::stream::BoxStream<'static, (u32, lapin::Result<lapin::message::Delivery>)>;

struct RabbitConsumer {
    _conn: Connection,
    /// The node's address (host:port), when the target names several.
    endpoint: Option<String>,
    /// Queue i is consumed, and its deliveries acknowledged, on channel i mod len: delivery tags
    /// belong to a channel.
    channels: Vec<Channel>,
    streams: SelectAll<DeliveryStream>,
    no_ack: bool,
    tag: String,
    /// Every queue of the run, by shard.
    queue_names: Vec<String>,
    /// Shards still to subscribe to, as standby, at `standby_at`.
    standby: Vec<u32>,
    standby_at: tokio::time::Instant,
}

impl RabbitConsumer {
    fn channel(&self, queue: u32) -> &Channel {
        &self.channels[queue as usize % self.channels.len()]
    }

    async fn subscribe(&mut self, i: u32) -> Result<()> {
        let queue = &self.queue_names[i as usize];
        let c = self
            .channel(i)
            .basic_consume(
                queue.as_str().into(),
                format!("{}-q{i}", self.tag).into(),
                BasicConsumeOptions {
                    no_ack: self.no_ack,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("rabbitmq: consuming from {queue}"))?;
        self.streams.push(c.map(move |d| (i, d)).boxed());
        Ok(())
    }

    fn received(&self, queue: u32, d: lapin::message::Delivery) -> Received {
        let tag = d.delivery_tag;
        Received {
            pos: Position::Transient { queue, tag },
            redelivered: d.redelivered,
            receive_count: if d.redelivered { 2 } else { 1 },
            handle: if self.no_ack {
                AckHandle::None
            } else {
                AckHandle::Tag { queue, tag }
            },
            body: d.data,
        }
    }
}

#[async_trait]
impl Consumer for RabbitConsumer {
    async fn poll(&mut self, wait: Duration) -> Result<Vec<Received>> {
        if !self.standby.is_empty() && tokio::time::Instant::now() >= self.standby_at {
            for q in std::mem::take(&mut self.standby) {
                self.subscribe(q).await?;
            }
        }
        if self.streams.is_empty() {
            anyhow::ensure!(!self.standby.is_empty(), "rabbitmq: subscribed to no queue");
            // Nothing subscribed yet (every shard is another's): wait as a poll would.
            tokio::time::sleep(
                wait.min(
                    self.standby_at
                        .saturating_duration_since(tokio::time::Instant::now()),
                ),
            )
            .await;
            return Ok(Vec::new());
        }
        let first = match tokio::time::timeout(wait, self.streams.next()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => anyhow::bail!("rabbitmq: all consumers were cancelled"),
            Ok(Some((q, d))) => (q, d.context("rabbitmq: receiving")?),
        };
        let mut out = vec![self.received(first.0, first.1)];
        // Take what is already buffered without waiting, up to a small batch.
        while out.len() < 64 {
            match self.streams.next().now_or_never() {
                Some(Some((q, Ok(d)))) => out.push(self.received(q, d)),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, handle: AckHandle) -> Result<()> {
        if let AckHandle::Tag { queue, tag } = handle {
            self.channel(queue)
                .basic_ack(tag, BasicAckOptions::default())
                .await
                .context("rabbitmq: ack")?;
        }
        Ok(())
    }

    fn is_broken(&self) -> bool {
        !self._conn.status().connected() || self.channels.iter().any(|c| !c.status().connected())
    }

    fn endpoint(&self) -> Option<String> {
        self.endpoint.clone()
    }

    async fn close(&mut self) {
        for channel in &self.channels {
            let _ = channel.close(200, "consumer done".into()).await;
        }
    }
}

/// Empties the run's queues; done when they hold nothing ready and nothing more arrives.
struct RabbitFinalReader {
    consumer: RabbitConsumer,
    counter: Channel,
    queues: Vec<String>,
}

#[async_trait]
impl Consumer for RabbitFinalReader {
    async fn poll(&mut self, wait: Duration) -> Result<Vec<Received>> {
        self.consumer.poll(wait).await
    }

    async fn ack(&mut self, handle: AckHandle) -> Result<()> {
        self.consumer.ack(handle).await
    }

    async fn remaining(&mut self) -> Result<Option<u64>> {
        let mut total = 0u64;
        for q in &self.queues {
            let opts = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let info = self
                .counter
                .queue_declare(q.as_str().into(), opts, FieldTable::default())
                .await
                .with_context(|| format!("rabbitmq: counting the messages in {q}"))?;
            total += info.message_count() as u64;
        }
        Ok(Some(total))
    }

    async fn close(&mut self) {
        self.consumer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(topology: &str) -> RabbitDriver {
        let yaml = format!(
            "name: t\nbrokers: [rabbitmq]\ntopology:\n  partitions: 4\n{topology}load: {{ rate: 1/s, duration: 1s }}\n"
        );
        RabbitDriver::new(super::super::test_plan("rabbitmq", &yaml)).unwrap()
    }

    #[test]
    fn a_clients_endpoint_is_its_nodes_host_and_port_without_credentials() {
        assert_eq!(
            endpoint_of("amqp://guest:guest@10.77.0.12:5672/%2f"),
            "10.77.0.12:5672"
        );
        assert_eq!(endpoint_of("amqp://localhost:5672"), "localhost:5672");
        assert_eq!(
            endpoint_of("amqps://u:p@q@mq.example:5671/vh"),
            "mq.example:5671"
        );
    }

    #[test]
    fn single_active_consumers_are_spread_over_the_shards() {
        let queues: Vec<u32> = (0..6).collect();
        let own = |i, n| spread(i, n, &queues).0;
        assert_eq!(own(0, 3), [0, 3]);
        assert_eq!(own(1, 3), [1, 4]);
        assert_eq!(own(2, 3), [2, 5]);
        assert_eq!(spread(1, 3, &queues).1, [0, 2, 3, 5]);
        // More consumers than shards: the extra ones only stand by.
        assert_eq!(own(7, 8), Vec::<u32>::new());
        assert_eq!(own(0, 1), queues);
    }

    #[test]
    fn the_workloads_options_reach_the_driver() {
        let d = driver(
            "  rabbitmq: { sharding: none, queue_type: quorum, prefetch: 7, channels_per_consumer: 3 }\n",
        );
        assert_eq!(d.queue_count(), 1);
        assert_eq!(d.options.queue_type, QueueType::Quorum);
        assert_eq!(d.options.prefetch, 7);
        assert_eq!(d.options.channels_per_consumer, 3);
        // Left out: the defaults, and one queue per partition.
        let d = driver("");
        assert_eq!(d.queue_count(), 4);
        assert_eq!(d.options.queue_type, QueueType::Classic);
        assert_eq!(d.options.channels_per_consumer, 1);
        assert!(
            d.urls.len() == 1 && d.urls[0].starts_with("amqp://"),
            "{:?}",
            d.urls
        );
    }

    #[test]
    fn channels_per_consumer_is_checked_where_it_is_written() {
        for n in [0, 65] {
            let yaml = format!("name: t\nbrokers: [rabbitmq]\ntopology:\n  rabbitmq: {{ channels_per_consumer: {n} }}\nload: {{ rate: 1/s, duration: 1s }}\n");
            let e = crate::workload::parse(
                std::path::Path::new("w.yaml"),
                &yaml,
                &[super::super::validate],
            )
            .unwrap_err();
            assert!(
                e.to_string().starts_with(
                    "w.yaml:4:15: rabbitmq channels_per_consumer must be between 1 and 64"
                ),
                "{e}"
            );
        }
    }
}
