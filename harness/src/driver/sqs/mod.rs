//! SQS driver (aws-sdk-sqs, endpoint configurable for LocalStack): standard and FIFO queues
//! (MessageGroupId = key, deduplication id = message id), visibility timeout, long polling, batch
//! receive, delete after processing.

pub(super) mod options;
mod target;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use aws_sdk_sqs::config::timeout::TimeoutConfig;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use base64::Engine as _;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use tokio::sync::oneshot;

use super::{
    AckHandle, Consumer, Driver, PendingAcks, Plan, Publisher, Received, Resource, SendError,
    SendOutcome, SendToken,
};
use crate::history::Position;
use crate::message::MsgId;
use crate::workload::AckMode;
use crate::workload::{at, At, Workload};
use options::Options;
use target::SqsTarget;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// SQS in the broker registry.
pub const BROKER: super::Broker = super::Broker {
    name: "sqs",
    connect,
    section: super::read_section::<SqsTarget>,
    options: super::read_problem::<Options>,
    options_schema: <Options as schemars::JsonSchema>::json_schema,
    wire: None,
    ready_slack: |_| Duration::ZERO,
    validate,
    needs_controls: |_| Vec::new(),
};

fn connect(plan: Arc<Plan>) -> Result<Box<dyn Driver>> {
    Ok(Box::new(SqsDriver::new(plan)?))
}

/// SQS caps a message body at 256 KiB and the envelope goes base64-encoded (4/3 larger).
const MAX_MESSAGE_SIZE: u64 = 256 * 1024 * 3 / 4;

/// SQS's own limits on the workload's options.
fn validate(w: &Workload) -> Vec<(At, String)> {
    let mut bad = Vec::new();
    // Options that do not read are reported by the registry's own check.
    let sqs = super::options::<Options>(w, BROKER.name).unwrap_or_default();
    if !(1..=10).contains(&sqs.batch) {
        bad.push(at(
            &["topology", "sqs", "batch"],
            "sqs batch must be between 1 and 10 (the SQS limit)",
        ));
    }
    if !(1..=10).contains(&sqs.receivers_per_consumer) {
        bad.push(at(
            &["topology", "sqs", "receivers_per_consumer"],
            "sqs receivers_per_consumer must be between 1 and 10",
        ));
    }
    if !(1..=10).contains(&sqs.publish_batch) {
        bad.push(at(
            &["topology", "sqs", "publish_batch"],
            "sqs publish_batch must be between 1 and 10 (the SQS limit)",
        ));
    }
    if sqs.linger.0 > Duration::from_secs(1) {
        bad.push(at(
            &["topology", "sqs", "linger"],
            "sqs linger must be at most 1s: every send waits up to that long",
        ));
    }
    if sqs.wait_time.0.as_secs() > 20 {
        bad.push(at(
            &["topology", "sqs", "wait_time"],
            "sqs wait_time must be at most 20s (the SQS limit)",
        ));
    }
    if sqs.visibility_timeout.0.as_secs() > 12 * 3600 {
        bad.push(at(
            &["topology", "sqs", "visibility_timeout"],
            "sqs visibility_timeout must be at most 12h",
        ));
    }
    if w.load.message_size.0 > MAX_MESSAGE_SIZE {
        bad.push(at(
            &["load", "message_size"],
            format!(
                "message_size must be at most {MAX_MESSAGE_SIZE}B for sqs (256 KiB after base64)"
            ),
        ));
    }
    bad
}

pub struct SqsDriver {
    plan: Arc<Plan>,
    options: Options,
    target: SqsTarget,
    client: Client,
    name: String,
    address: String,
}

impl SqsDriver {
    pub fn new(plan: Arc<Plan>) -> Result<Self> {
        let options: Options = super::options(&plan.workload, BROKER.name)?;
        let t: SqsTarget = super::settings(&plan.target, BROKER.name)?;
        let (ak, sk) = match (&t.access_key_id, &t.secret_access_key) {
            (Some(a), Some(s)) => (a.clone(), s.clone()),
            _ => (
                std::env::var("AWS_ACCESS_KEY_ID")
                    .context("sqs: target has no access_key_id and AWS_ACCESS_KEY_ID is unset")?,
                std::env::var("AWS_SECRET_ACCESS_KEY").context(
                    "sqs: target has no secret_access_key and AWS_SECRET_ACCESS_KEY is unset",
                )?,
            ),
        };
        let run = &plan.workload.run;
        let wait = options.wait_time.0;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(run.connect_timeout.0)
            // Long polls legitimately take `wait_time`; leave room above it.
            .operation_attempt_timeout(run.send_timeout.0.max(wait + Duration::from_secs(5)))
            .build();
        let mut conf = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(t.region.clone()))
            .credentials_provider(Credentials::new(ak, sk, None, None, "brokerbench-target"))
            .timeout_config(timeouts);
        if let Some(ep) = &t.endpoint {
            conf = conf.endpoint_url(ep);
        }
        let fifo = options.fifo;
        let name = format!(
            "{}{}",
            plan.resource_prefix,
            if fifo { ".fifo" } else { "" }
        );
        let address = plan.address();
        Ok(SqsDriver {
            client: Client::from_conf(conf.build()),
            plan,
            options,
            target: t,
            name,
            address,
        })
    }

    async fn queue_url(&self) -> Result<String> {
        self.url_of(&self.name).await
    }

    async fn delete_queue(&self, name: &str) -> Result<()> {
        let url = self.url_of(name).await?;
        self.client
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .map_err(|e| sdk_err(&self.address, "deleting queue", e))?;
        Ok(())
    }

    /// The URL of queue `name`, which SQS's other calls take.
    async fn url_of(&self, name: &str) -> Result<String> {
        let out = self
            .client
            .get_queue_url()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| sdk_err(&self.address, "looking up queue", e))?;
        out.queue_url
            .with_context(|| format!("sqs: GetQueueUrl returned no URL for {name}"))
    }
}

fn sdk_err<E: std::error::Error + Send + Sync + 'static>(
    addr: &str,
    what: &str,
    e: SdkError<E>,
) -> anyhow::Error {
    let detail = match &e {
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => "unreachable".to_string(),
        SdkError::TimeoutError(_) => "timed out".to_string(),
        _ => format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)),
    };
    anyhow!("sqs: {what} at {addr}: {detail}")
}

fn send_error<E: std::error::Error + Send + Sync + 'static>(e: SdkError<E>) -> SendError {
    let text = format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e));
    match &e {
        // Never left the client: definitely not stored.
        SdkError::ConstructionFailure(_) => SendError::Failed(text),
        SdkError::DispatchFailure(d) if d.is_io() && text.contains("onnect") => {
            SendError::Failed(text)
        }
        SdkError::ServiceError(_) => SendError::Failed(text),
        _ => SendError::Indeterminate(text),
    }
}

#[async_trait]
impl Driver for SqsDriver {
    async fn setup(&self) -> Result<()> {
        let t = &self.options;
        let mut req = self
            .client
            .create_queue()
            .queue_name(&self.name)
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                t.visibility_timeout.0.as_secs().to_string(),
            );
        if t.fifo {
            req = req.attributes(QueueAttributeName::FifoQueue, "true");
        }
        let deadline = self.plan.workload.run.connect_timeout.0;
        tokio::time::timeout(deadline, req.send())
            .await
            .map_err(|_| anyhow!("sqs: no answer from {} within {deadline:?}", self.address))?
            .map_err(|e| sdk_err(&self.address, &format!("creating queue {}", self.name), e))?;
        Ok(())
    }

    async fn publisher(&self, _producer: u32) -> Result<Box<dyn Publisher>> {
        Ok(Box::new(SqsPublisher {
            client: self.client.clone(),
            url: self.queue_url().await?,
            fifo: self.options.fifo,
            batch: Batch::default(),
            batch_size: self.options.publish_batch as usize,
            linger: self.options.linger.0,
            previous: HashMap::new(),
            requests: PendingAcks::default(),
        }))
    }

    async fn consumer(&self, _consumer: u32) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(
            SqsConsumer::new(
                self,
                self.options.receivers_per_consumer,
                self.plan.workload.consumers.ack == AckMode::Auto,
            )
            .await?,
        ))
    }

    async fn final_reader(&self) -> Result<Box<dyn Consumer>> {
        // Deleting what it reads, like any consumer; done once the queue holds nothing, not even
        // messages a killed consumer left invisible (they return after the visibility timeout).
        Ok(Box::new(SqsConsumer::new(self, 1, false).await?))
    }

    async fn teardown(&self) -> Result<()> {
        self.delete_queue(&self.name).await
    }

    async fn product(&self) -> String {
        self.target.product.clone()
    }

    async fn list_created(&self, prefix: &str) -> Result<Vec<Resource>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_queues()
            .queue_name_prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_err(&self.address, "listing queues", e))?;
            for url in page.queue_urls() {
                // The name is the URL's last segment.
                let name = url.rsplit('/').next().unwrap_or(url).to_string();
                out.push(Resource {
                    kind: "queue",
                    name,
                });
            }
        }
        Ok(out)
    }

    async fn delete_created(&self, r: &Resource) -> Result<()> {
        self.delete_queue(&r.name).await
    }

    fn client_settings(&self) -> Vec<(String, String)> {
        super::settings_of(&self.options)
    }
}

struct SqsPublisher {
    client: Client,
    url: String,
    fifo: bool,
    /// Sends waiting to go out together in one SendMessageBatch.
    batch: Batch,
    batch_size: usize,
    linger: Duration,
    /// FIFO: per key, a signal that the last request holding that key has finished.
    previous: HashMap<u32, Done>,
    requests: PendingAcks,
}

/// Resolves when a request has finished, however it went; shared by every later request that
/// holds one of its keys.
type Done = futures::future::Shared<oneshot::Receiver<()>>;

/// The largest SendMessageBatch request SQS takes, all bodies together.
const MAX_BATCH_BYTES: usize = 256 * 1024;

#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    bytes: usize,
    /// When the first entry was added: the batch goes out `linger` after it at the latest.
    since: Option<tokio::time::Instant>,
}

struct Entry {
    token: SendToken,
    id: MsgId,
    body: String,
}

impl SqsPublisher {
    /// Send the waiting batch as one request (or, with one entry, as a SendMessage). In a FIFO
    /// queue a group is ordered by arrival: the request starts only once every earlier request
    /// holding one of its keys has finished; requests with other keys still go concurrently.
    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if batch.entries.is_empty() {
            return;
        }
        let (done_tx, done_rx) = oneshot::channel();
        let done = done_rx.shared();
        let mut before = Vec::new();
        if self.fifo {
            // Each key once: a batch may hold several sends of one key, and must not wait on itself.
            let keys: std::collections::BTreeSet<u32> =
                batch.entries.iter().map(|e| e.id.key).collect();
            for key in keys {
                if let Some(p) = self.previous.insert(key, done.clone()) {
                    before.push(p);
                }
            }
        }
        let tokens: Vec<SendToken> = batch.entries.iter().map(|e| e.token).collect();
        let request = send_batch(self.client.clone(), self.url.clone(), self.fifo, batch);
        let outcomes = async move {
            for p in before {
                let _ = p.await;
            }
            let outcomes = request.await;
            let _ = done_tx.send(());
            outcomes
        }
        .shared();
        // One future per send, all waiting on the same request.
        for (i, token) in tokens.into_iter().enumerate() {
            let outcomes = outcomes.clone();
            self.requests.push(token, async move {
                match outcomes.await.get(i) {
                    Some(outcome) => outcome.clone(),
                    None => Err(SendError::Indeterminate(
                        "sqs: no outcome for this send".into(),
                    )),
                }
            });
        }
    }
}

/// One request for `batch`: each entry's outcome, in its order. With one entry, a plain
/// SendMessage (what `publish_batch: 1` asks for).
async fn send_batch(
    client: Client,
    url: String,
    fifo: bool,
    batch: Batch,
) -> Vec<Result<Position, SendError>> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry as BatchEntry;
    if let [one] = batch.entries.as_slice() {
        let mut req = client.send_message().queue_url(url).message_body(&one.body);
        if fifo {
            req = req
                .message_group_id(one.id.key_string())
                .message_deduplication_id(one.id.dedupe_id());
        }
        let out = req.send().await.map_err(send_error);
        return vec![out.map(|o| Position::Id {
            id: o.message_id.unwrap_or_default(),
        })];
    }
    let entries: Result<Vec<BatchEntry>, _> = batch
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut b = BatchEntry::builder()
                .id(i.to_string())
                .message_body(&e.body);
            if fifo {
                b = b
                    .message_group_id(e.id.key_string())
                    .message_deduplication_id(e.id.dedupe_id());
            }
            b.build()
        })
        .collect();
    let n = batch.entries.len();
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) => return vec![Err(SendError::Failed(e.to_string())); n],
    };
    let out = match client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => return vec![Err(send_error(e)); n],
    };
    (0..n)
        .map(|i| {
            let id = i.to_string();
            if let Some(ok) = out.successful().iter().find(|s| s.id() == id) {
                return Ok(Position::Id {
                    id: ok.message_id().to_string(),
                });
            }
            match out.failed().iter().find(|f| f.id() == id) {
                // SQS refused this entry: not stored.
                Some(f) => Err(SendError::Failed(format!(
                    "sqs: {} {}",
                    f.code(),
                    f.message().unwrap_or_default()
                ))),
                // Never counted either way on silence.
                None => Err(SendError::Indeterminate(format!(
                    "sqs: the answer does not mention entry {id}"
                ))),
            }
        })
        .collect()
}

#[async_trait]
impl Publisher for SqsPublisher {
    async fn submit(&mut self, token: SendToken, id: MsgId, body: &[u8]) -> Result<(), SendError> {
        let body = B64.encode(body);
        if self.batch.bytes + body.len() > MAX_BATCH_BYTES {
            self.flush();
        }
        self.batch.bytes += body.len();
        self.batch.entries.push(Entry { token, id, body });
        self.batch
            .since
            .get_or_insert_with(tokio::time::Instant::now);
        if self.batch.entries.len() >= self.batch_size {
            self.flush();
        }
        Ok(())
    }

    async fn acks(&mut self, out: &mut Vec<SendOutcome>) {
        // The waiting batch goes out once it has lingered long enough; until then, outcomes of
        // requests already sent. Cancel-safe: a flush happens whole, between awaits.
        while let Some(since) = self.batch.since {
            tokio::select! {
                _ = self.requests.next(out) => return,
                _ = tokio::time::sleep_until(since + self.linger) => self.flush(),
            }
        }
        self.requests.next(out).await
    }

    async fn close(&mut self) {
        self.flush();
    }
}

type Receiving = futures::future::BoxFuture<'static, Result<Vec<aws_sdk_sqs::types::Message>>>;

struct SqsConsumer {
    client: Client,
    url: String,
    batch: i32,
    auto: bool,
    /// How many ReceiveMessage calls to keep in flight.
    receivers: usize,
    /// The calls in flight. They live here, not in `poll`, so a poll that is cancelled (it is
    /// raced against deadlines) drops no answer: what it would have returned comes with the next.
    receiving: FuturesUnordered<Receiving>,
}

#[async_trait]
impl Consumer for SqsConsumer {
    async fn poll(&mut self, wait: Duration) -> Result<Vec<Received>> {
        while self.receiving.len() < self.receivers {
            let call = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(self.batch)
                .wait_time_seconds(wait.as_secs().clamp(0, 20) as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send();
            self.receiving.push(
                async move {
                    let out = call.await.map_err(|e| {
                        anyhow!(
                            "sqs: receiving: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(&e)
                        )
                    })?;
                    Ok(out.messages.unwrap_or_default())
                }
                .boxed(),
            );
        }
        let mut messages = match self.receiving.next().await {
            Some(answer) => answer?,
            None => Vec::new(),
        };
        // Other calls that have already answered come along, without waiting for the rest.
        while let Some(Some(answer)) = self.receiving.next().now_or_never() {
            match answer {
                Ok(more) => messages.extend(more),
                // Returned by the next poll: these messages go out first.
                Err(e) => {
                    self.receiving.push(futures::future::ready(Err(e)).boxed());
                    break;
                }
            }
        }
        let mut received = Vec::new();
        for m in messages {
            let receive_count = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let body = m
                .body
                .as_deref()
                .and_then(|b| B64.decode(b).ok())
                .unwrap_or_else(|| m.body.clone().unwrap_or_default().into_bytes());
            let receipt = m.receipt_handle.unwrap_or_default();
            let handle = AckHandle::Receipt(receipt);
            received.push(Received {
                body,
                pos: Position::Id {
                    id: m.message_id.unwrap_or_default(),
                },
                redelivered: receive_count > 1,
                receive_count,
                handle,
            });
        }
        if self.auto {
            // SQS has no auto-ack: delete on receipt, the closest equivalent.
            let handles = received
                .iter_mut()
                .map(|r| std::mem::replace(&mut r.handle, AckHandle::None))
                .collect();
            for done in self.ack_all(handles).await {
                done?;
            }
        }
        Ok(received)
    }

    async fn remaining(&mut self) -> Result<Option<u64>> {
        use QueueAttributeName as A;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "sqs: counting the messages in the queue: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            })?;
        let attrs = out.attributes.unwrap_or_default();
        let count = |a: A| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Some(
            count(A::ApproximateNumberOfMessages)
                + count(A::ApproximateNumberOfMessagesNotVisible)
                + count(A::ApproximateNumberOfMessagesDelayed),
        ))
    }

    async fn ack(&mut self, handle: AckHandle) -> Result<()> {
        if let AckHandle::Receipt(receipt) = handle {
            self.client
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "sqs: deleting message: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    )
                })?;
        }
        Ok(())
    }

    fn acks_per_request(&self) -> usize {
        DELETE_BATCH
    }

    /// DeleteMessageBatch, ten receipts a request: one round trip where deleting one by one takes
    /// ten, which on LocalStack (about 10 ms each) capped two consumers near 200 msg/s.
    async fn ack_all(&mut self, handles: Vec<AckHandle>) -> Vec<Result<()>> {
        let mut done: Vec<Result<()>> = Vec::with_capacity(handles.len());
        let mut receipts = Vec::new();
        for h in handles {
            match h {
                AckHandle::Receipt(r) => {
                    receipts.push((done.len(), r));
                    done.push(Ok(()));
                }
                // Nothing to delete.
                _ => done.push(Ok(())),
            }
        }
        for chunk in receipts.chunks(DELETE_BATCH) {
            for (slot, outcome) in self.delete_batch(chunk).await {
                done[slot] = outcome;
            }
        }
        done
    }
}

/// The most entries SQS takes in one DeleteMessageBatch.
const DELETE_BATCH: usize = 10;

impl SqsConsumer {
    async fn new(driver: &SqsDriver, receivers: u8, auto: bool) -> Result<SqsConsumer> {
        Ok(SqsConsumer {
            client: driver.client.clone(),
            url: driver.queue_url().await?,
            batch: driver.options.batch as i32,
            auto,
            receivers: receivers.max(1) as usize,
            receiving: FuturesUnordered::new(),
        })
    }

    /// One DeleteMessageBatch request for up to ten `(slot, receipt)` pairs: each slot's outcome,
    /// from the entries SQS lists as failed (or all of them, when the request itself failed).
    async fn delete_batch(&mut self, chunk: &[(usize, String)]) -> Vec<(usize, Result<()>)> {
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry as Entry;
        let entries: Result<Vec<Entry>, _> = chunk
            .iter()
            .map(|(slot, receipt)| {
                Entry::builder()
                    .id(slot.to_string())
                    .receipt_handle(receipt)
                    .build()
            })
            .collect();
        let sent = match entries {
            Ok(entries) => self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| format!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e))),
            Err(e) => Err(e.to_string()),
        };
        match sent {
            Err(e) => chunk
                .iter()
                .map(|(slot, _)| (*slot, Err(anyhow!("sqs: deleting messages: {e}"))))
                .collect(),
            Ok(out) => chunk
                .iter()
                .map(|(slot, _)| {
                    let id = slot.to_string();
                    let deleted = out.successful().iter().any(|d| d.id() == id);
                    let failed = out.failed().iter().find(|f| f.id() == id);
                    let outcome = match (deleted, failed) {
                        (true, _) => Ok(()),
                        (false, Some(f)) => Err(anyhow!(
                            "sqs: deleting message: {} {}",
                            f.code(),
                            f.message().unwrap_or_default()
                        )),
                        // Never counted deleted on silence: it may come back.
                        (false, None) => Err(anyhow!(
                            "sqs: deleting messages: the answer does not mention entry {id}"
                        )),
                    };
                    (*slot, outcome)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(topology: &str) -> SqsDriver {
        let yaml = format!(
            "name: t\nbrokers: [sqs]\ntopology:\n{topology}load: {{ rate: 1/s, duration: 1s }}\n"
        );
        SqsDriver::new(super::super::test_plan("sqs", &yaml)).unwrap()
    }

    #[test]
    fn the_workloads_options_reach_the_driver() {
        let d = driver(
            "  sqs: { fifo: true, batch: 3, publish_batch: 4, linger: 7ms, receivers_per_consumer: 2 }\n",
        );
        assert_eq!(d.options.receivers_per_consumer, 2);
        assert!(d.name.ends_with(".fifo"), "{}", d.name);
        assert_eq!(d.options.batch, 3);
        assert_eq!(d.options.publish_batch, 4);
        assert_eq!(d.options.linger.0, Duration::from_millis(7));
        let d = driver("  partitions: 1\n");
        assert!(!d.name.ends_with(".fifo"), "{}", d.name);
        assert_eq!(d.options.batch, 10);
        assert_eq!(d.options.publish_batch, 10);
        assert_eq!(d.target.region, "us-east-1");
    }

    #[test]
    fn sqs_limits_are_checked_where_they_are_written() {
        for (option, error) in [
            (
                "batch: 11",
                "w.yaml:4:10: sqs batch must be between 1 and 10",
            ),
            (
                "publish_batch: 0",
                "w.yaml:4:10: sqs publish_batch must be between 1 and 10",
            ),
            ("linger: 2s", "w.yaml:4:10: sqs linger must be at most 1s"),
            (
                "receivers_per_consumer: 11",
                "w.yaml:4:10: sqs receivers_per_consumer must be between 1 and 10",
            ),
        ] {
            let yaml = format!("name: t\nbrokers: [sqs]\ntopology:\n  sqs: {{ {option} }}\nload: {{ rate: 1/s, duration: 1s }}\n");
            let e = crate::workload::parse(
                std::path::Path::new("w.yaml"),
                &yaml,
                &[super::super::validate],
            )
            .unwrap_err();
            assert!(e.to_string().starts_with(error), "{e}");
        }
    }
}
