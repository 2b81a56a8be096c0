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
use crate::workload::{self, BrokerKind, Workload};

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
        // Names must be valid everywhere: SQS allows [A-Za-z0-9_-] up to 80 chars.
        let prefix = format!("bb-{}", workload::slug(run_id, 57));
        Plan {
            run_id: run_id.to_string(),
            broker,
            workload: workload.clone(),
            target: target.clone(),
            resource_prefix: prefix,
        }
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
    /// `token`. Callers keep many sends in flight (open loop). Clients copy `body`.
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
    /// Wait for in-flight sends and close cleanly.
    async fn close(&mut self) {}
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
}

/// Everything the rest of the crate asks of one broker. Each broker's folder defines its own.
pub struct Broker {
    pub kind: BrokerKind,
    /// The driver for one run (the plan's target has this broker's section).
    pub connect: fn(Arc<Plan>) -> Result<Box<dyn Driver>>,
    /// Its section of a target profile.
    pub section: fn(&TargetProfile) -> Option<&dyn Section>,
    pub section_mut: fn(&mut TargetProfile) -> Option<&mut dyn Section>,
    /// How the fault proxy must follow its wire protocol (None: plain bytes).
    pub wire: Option<fn() -> Arc<dyn Wire>>,
    /// What its consumers may need beyond `run.connect_timeout` to become ready.
    pub ready_slack: fn(&Workload) -> Duration,
    /// Its own checks of a workload that lists it (topology options, size limits).
    pub validate: workload::Rule,
}

/// Every broker brokerbench drives, one line each.
pub const BROKERS: &[&Broker] = &[&kafka::BROKER, &rabbitmq::BROKER, &sqs::BROKER];

/// The registry's entry for `kind`.
pub fn broker(kind: BrokerKind) -> &'static Broker {
    BROKERS
        .iter()
        .copied()
        .find(|b| b.kind == kind)
        .expect("every BrokerKind has an entry in BROKERS (a unit test checks)")
}

/// `kind`'s section of `target`, or an error that names the profile and the broker.
pub fn section(target: &TargetProfile, kind: BrokerKind) -> Result<&dyn Section> {
    (broker(kind).section)(target)
        .with_context(|| format!("target profile `{}` has no `{kind}` section", target.name))
}

/// Where `kind` listens according to `target`, for messages (passwords hidden).
pub fn address(target: &TargetProfile, kind: BrokerKind) -> String {
    (broker(kind).section)(target)
        .map(|s| s.address())
        .unwrap_or_else(|| "(not configured)".into())
}

/// The control commands `target` gives `kind`'s broker faults (none when it has no section).
pub fn control(target: &TargetProfile, kind: BrokerKind) -> crate::target::Control {
    (broker(kind).section)(target)
        .map(|s| s.control().clone())
        .unwrap_or_default()
}

/// The same profile with `kind`'s clients sent to `proxy` instead of the broker.
pub fn through_proxy(
    target: &TargetProfile,
    kind: BrokerKind,
    proxy: std::net::SocketAddr,
) -> Result<TargetProfile> {
    let mut t = target.clone();
    (broker(kind).section_mut)(&mut t)
        .with_context(|| format!("the target profile has no {kind} entry"))?
        .route_through(proxy)?;
    Ok(t)
}

/// The workload rule the run and `validate` add: each listed broker's own checks.
pub fn validate(w: &Workload) -> Vec<(workload::At, String)> {
    w.brokers
        .iter()
        .flat_map(|&kind| (broker(kind).validate)(w))
        .collect()
}

impl Plan {
    pub fn broker(&self) -> &'static Broker {
        broker(self.broker)
    }

    /// Where the run's broker listens, for messages.
    pub fn address(&self) -> String {
        address(&self.target, self.broker)
    }

    /// How long a consumer may take to become ready.
    pub fn ready_timeout(&self) -> Duration {
        self.workload.run.connect_timeout.0 + (self.broker().ready_slack)(&self.workload)
    }
}

/// The driver for the plan's broker; fails naming the broker when the target lacks it.
pub fn driver(plan: Arc<Plan>) -> Result<Box<dyn Driver>> {
    section(&plan.target, plan.broker)?;
    (plan.broker().connect)(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn every_broker_kind_has_one_registry_entry() {
        for kind in <BrokerKind as clap::ValueEnum>::value_variants() {
            let n = BROKERS.iter().filter(|b| b.kind == *kind).count();
            assert_eq!(n, 1, "{kind}");
        }
    }

    #[test]
    fn shipped_profiles_describe_every_broker_alike() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
        let local = TargetProfile::load(&root.join("local.yaml")).unwrap();
        let docker = TargetProfile::load(&root.join("docker.yaml")).unwrap();
        for b in BROKERS {
            let (l, d) = (
                section(&local, b.kind).unwrap(),
                section(&docker, b.kind).unwrap(),
            );
            // Same ports on both, so a workload's results compare across profiles.
            assert_eq!(l.address(), d.address(), "{}", b.kind);
            for (p, s) in [(&local, l), (&docker, d)] {
                let c = s.control();
                assert!(
                    c.kill.is_some()
                        && c.pause.is_some()
                        && c.resume.is_some()
                        && c.start.is_some(),
                    "{} {}",
                    p.name,
                    b.kind
                );
            }
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
