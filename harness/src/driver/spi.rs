//! What a broker's folder implements: the driver, its publishers and its consumers.

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::{Future, FutureExt};
use serde::Serialize;

use super::Resource;
use crate::history::Position;
use crate::message::MsgId;
use crate::workload::InFlight;

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
