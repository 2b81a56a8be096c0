//! One module per broker behind three small traits: a `Driver` creates and removes the run's
//! topics or queues and hands out clients; a `Publisher` sends; a `Consumer` receives and acks.

mod kafka;
mod rabbitmq;
mod sqs;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::history::Position;
use crate::load::envelope::MsgId;
use crate::target::TargetProfile;
use crate::workload::{BrokerKind, Workload};

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
        let clean: String = run_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let prefix: String = format!("bb-{clean}").chars().take(60).collect();
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

/// Resolves when the broker acknowledged (or refused) one send.
pub type AckFuture = BoxFuture<'static, Result<Position, SendError>>;

#[async_trait]
pub trait Publisher: Send {
    /// Hand one message to the client, in order. The returned future resolves with the broker's
    /// acknowledgement; callers keep many in flight (open loop). Clients copy `body`.
    async fn submit(&mut self, id: MsgId, body: &[u8]) -> Result<AckFuture, SendError>;
    /// True when the client cannot recover by itself; the producer then asks for a new one.
    fn is_broken(&self) -> bool {
        false
    }
    /// Wait for in-flight sends and close cleanly.
    async fn close(&mut self) {}
}

/// What a consumer needs to acknowledge one delivery later. In `ack: auto` mode a handle that is
/// not `None` marks the delivery as processed for the client's own timed commit (Kafka).
#[derive(Debug, Clone)]
pub enum AckHandle {
    Kafka {
        partition: i32,
        offset: i64,
    },
    Rabbit {
        queue: u32,
        tag: u64,
    },
    Sqs {
        receipt: String,
    },
    /// Nothing to acknowledge (the broker counts the delivery as acknowledged once sent).
    None,
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
    /// Leave cleanly (commit, close); not called when a crash fault kills the process.
    async fn close(&mut self) {}
}

#[async_trait]
pub trait Driver: Send + Sync {
    /// Create the run's topics/queues. Fails with the broker's name and address when unreachable.
    async fn setup(&self) -> Result<()>;
    async fn publisher(&self, producer: u32) -> Result<Box<dyn Publisher>>;
    async fn consumer(&self, consumer: u32) -> Result<Box<dyn Consumer>>;
    /// Delete what `setup` created (only that).
    async fn teardown(&self) -> Result<()>;
    /// The broker as it describes itself, for reports.
    async fn product(&self) -> String;
}

pub fn driver(plan: Arc<Plan>) -> Result<Box<dyn Driver>> {
    plan.target.require(plan.broker)?;
    Ok(match plan.broker {
        BrokerKind::Kafka => Box::new(kafka::KafkaDriver::new(plan)?),
        BrokerKind::Rabbitmq => Box::new(rabbitmq::RabbitDriver::new(plan)?),
        BrokerKind::Sqs => Box::new(sqs::SqsDriver::new(plan)?),
    })
}
