//! The consumer worker: a separate OS process (`brokerbench worker`) so that crash faults can
//! SIGKILL it for real. It streams history events to the coordinator over stdout and stops when
//! its stdin closes (which also happens if the coordinator dies).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};

use super::dedupe::{Outcome, ProcessedIds};
use crate::message::{run_tag, Envelope, MsgId};
use futures::FutureExt;

use super::worker::{read_plan, Events};
use crate::driver::{self, AckHandle, Driver, Received};
use crate::history::{now_ns, ClientRole, Event, WorkerEvent};
use crate::workload::{AckMode, Dedupe, Workload};

const POLL_WAIT: Duration = Duration::from_millis(250);

/// Bound on one acknowledgement: a client stuck on a dead connection must not stop the worker
/// (the failure is recorded; the heartbeat or the stall watchdog replace the client).
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client being replaced gets to close cleanly.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// This consumer's record, streamed to the coordinator as history frames on stdout.
struct Record<W: Write> {
    events: Events<W>,
    consumer: u32,
}

impl<W: Write> Record<W> {
    fn emit(&mut self, ev: Event) -> Result<()> {
        self.events.emit(&ev)
    }

    /// A failure, on record for the availability figures.
    fn error(&mut self, error: String) -> Result<()> {
        let consumer = self.consumer;
        self.emit(Event::ConsumerError {
            t: now_ns(),
            consumer,
            error,
        })
    }

    /// Which node `consumer` went to, where the driver can say.
    fn connected(&mut self, consumer: &dyn driver::Consumer) -> Result<()> {
        match consumer.endpoint() {
            Some(endpoint) => self.emit(Event::Connected {
                t: now_ns(),
                role: ClientRole::Consumer,
                index: self.consumer,
                endpoint,
            }),
            None => Ok(()),
        }
    }

    /// Before any step that could make the record untrue if the process died during it.
    fn flush(&mut self) -> Result<()> {
        self.events.flush()?;
        Ok(())
    }
}

/// When this consumer acknowledges one delivery, from the workload's `ack` and what the driver
/// handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acknowledge {
    /// Before processing it (at-most-once).
    Before,
    /// After processing it (at-least-once).
    After,
    /// By the client's own timed commit, once it is marked processed (`ack: auto`, Kafka).
    Mark,
    /// Never: the broker counted it acknowledged when it was sent.
    Never,
}

impl Acknowledge {
    fn of(mode: AckMode, handle: &AckHandle) -> Acknowledge {
        match (mode, handle) {
            (_, AckHandle::None) => Acknowledge::Never,
            (AckMode::BeforeProcess, _) => Acknowledge::Before,
            (AckMode::AfterProcess, _) => Acknowledge::After,
            (AckMode::Auto, _) => Acknowledge::Mark,
        }
    }
}

/// Processed deliveries the broker has not yet been told about.
#[derive(Default)]
struct Owed {
    /// `ack: after-process`: sent once there are as many as the broker takes in one request, and
    /// at the end of each received batch.
    acks: Vec<(AckHandle, MsgId)>,
    /// `ack: auto`: marked for the client's timed commit once their records are flushed to the
    /// coordinator.
    marks: Vec<AckHandle>,
}

pub async fn run(spec: &Path, index: u32) -> Result<()> {
    // The coordinator's stall watchdog asks for a fresh client with SIGUSR1. Listen before
    // anything else: the signal's default action would end the process.
    let mut kicks = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .context("listening for the stall watchdog's signal")?;
    let plan = read_plan(spec)?;
    let tag = run_tag(&plan.run_id);
    let w = &plan.workload;
    let driver = driver::driver(plan.clone())?;
    let stop = super::stop_when_stdin_closes();
    let mut consumer = driver.consumer(index).await?;
    if !joined(&mut *consumer, index, plan.ready_timeout(), &stop).await {
        return Ok(());
    }
    let mut store = match w.consumers.dedupe {
        Dedupe::ProcessedIds => {
            let dir = spec.parent().unwrap_or(Path::new("."));
            Some(ProcessedIds::open(&dir.join(super::dedupe::STORE_FILE))?)
        }
        Dedupe::None => None,
    };

    let mut rec = Record {
        events: Events::new(std::io::stdout().lock()),
        consumer: index,
    };
    rec.emit(Event::Worker {
        t: now_ns(),
        consumer: index,
        event: WorkerEvent::Ready {
            pid: std::process::id(),
        },
    })?;
    rec.connected(&*consumer)?;
    rec.flush()?;

    let mut owed = Owed::default();
    let mut replace: Option<String> = None;
    // `ack: before-process` on a broker that takes acknowledgements in batches (a Kafka commit,
    // SQS's DeleteMessageBatch): the polled batch at once, before any of it is processed, as
    // at-most-once consumers there do (poll, commit, process). One by one, at 10,000 msg/s a
    // Kafka consumer's commits crowded out its heartbeats until its session expired.
    let batch_before = w.consumers.ack == AckMode::BeforeProcess && consumer.acks_per_request() > 1;
    while !stop.load(Ordering::Relaxed) {
        if kicks.recv().now_or_never().is_some() {
            replace = Some(format!(
                "stall watchdog: no consumer processed anything for {} while messages waited",
                w.run.stall_timeout
            ));
        }
        if replace.is_none() && consumer.is_broken() {
            replace = Some("the client lost its connection".into());
        }
        if let Some(reason) = replace.take() {
            if let Err(e) = reconnect(&*driver, &mut consumer, index, plan.ready_timeout()).await {
                rec.error(format!("reconnecting ({reason}): {e:#}"))?;
                rec.flush()?;
                // Try again on the next round; the old client may yet recover meanwhile.
                replace = Some(reason);
                tokio::time::sleep(POLL_WAIT).await;
                continue;
            }
            rec.emit(Event::Reconnect {
                t: now_ns(),
                role: ClientRole::Consumer,
                index,
                reason,
            })?;
            rec.connected(&*consumer)?;
            rec.flush()?;
        }
        let batch = match consumer.poll(POLL_WAIT).await {
            Ok(b) => b,
            Err(e) => {
                rec.error(format!("{e:#}"))?;
                rec.flush()?;
                tokio::time::sleep(POLL_WAIT).await;
                continue;
            }
        };
        if batch_before {
            // All of them on record as delivered first: nothing may be acknowledged (and so
            // handed on to another consumer) before its delivery is in the history.
            let mut got = Vec::with_capacity(batch.len());
            for r in batch {
                if let Some(d) = receive(r, w, tag, &mut *consumer, &mut rec).await? {
                    got.push(d);
                }
            }
            let mut before: Vec<_> = got
                .iter()
                .filter(|d| d.when == Acknowledge::Before)
                .map(|d| (d.handle.clone(), d.id))
                .collect();
            ack(&mut *consumer, &mut before, &mut rec).await?;
            for d in got {
                process(d, w, &mut *consumer, &mut store, &mut owed, &mut rec).await?;
            }
        } else {
            // One at a time, each on record as delivered when its turn comes (end-to-end latency
            // then includes the wait behind the batch's earlier messages, as it always has).
            for r in batch {
                let Some(d) = receive(r, w, tag, &mut *consumer, &mut rec).await? else {
                    continue;
                };
                if d.when == Acknowledge::Before {
                    // Each one before its own processing starts, so never part of a batch.
                    ack(
                        &mut *consumer,
                        &mut vec![(d.handle.clone(), d.id)],
                        &mut rec,
                    )
                    .await?;
                }
                process(d, w, &mut *consumer, &mut store, &mut owed, &mut rec).await?;
            }
        }
        ack(&mut *consumer, &mut owed.acks, &mut rec).await?;
        flush_and_mark(&mut *consumer, &mut owed.marks, &mut rec).await?;
    }
    consumer.close().await;
    rec.flush()
}

/// A delivery of this run's, on record as delivered, waiting for its processing.
struct Delivered {
    id: MsgId,
    handle: AckHandle,
    when: Acknowledge,
}

/// One delivery as the workload's consumer receives it: on record as delivered, or, when it is
/// not this run's, removed (best effort) and left out.
async fn receive<W: Write>(
    r: Received,
    w: &Workload,
    tag: u64,
    consumer: &mut dyn driver::Consumer,
    rec: &mut Record<W>,
) -> Result<Option<Delivered>> {
    let index = rec.consumer;
    let t = now_ns();
    let env = match Envelope::decode(&r.body) {
        Ok(env) if env.run_tag == tag => env,
        other => {
            let detail = match other {
                Ok(_) => "message from another run".into(),
                Err(e) => e.to_string(),
            };
            rec.emit(Event::Foreign {
                t,
                consumer: index,
                pos: r.pos,
                detail,
            })?;
            // Not ours to judge; removing it is best effort and never stops the worker.
            let _ = tokio::time::timeout(ACK_TIMEOUT, consumer.ack(r.handle)).await;
            return Ok(None);
        }
    };
    let id = env.id;
    rec.emit(Event::Deliver {
        t,
        consumer: index,
        id,
        intended: env.intended_ns,
        pos: r.pos,
        redelivered: r.redelivered,
        receive_count: r.receive_count,
    })?;
    Ok(Some(Delivered {
        id,
        when: Acknowledge::of(w.consumers.ack, &r.handle),
        handle: r.handle,
    }))
}

/// One delivery, as the workload's consumer processes it (its acknowledgement before
/// processing already sent): processed (through the idempotent store when the workload
/// dedupes), on record as processed, then acknowledged after processing (or marked for the
/// client's timed commit).
async fn process<W: Write>(
    d: Delivered,
    w: &Workload,
    consumer: &mut dyn driver::Consumer,
    store: &mut Option<ProcessedIds>,
    owed: &mut Owed,
    rec: &mut Record<W>,
) -> Result<()> {
    let Delivered { id, handle, when } = d;
    let index = rec.consumer;
    let process = w.consumers.processing_time.0;
    if !process.is_zero() {
        // Flush first: if we are killed while "processing", the delivery is on record. What was
        // processed before is then on record too: the next auto-commit may have it, as a poll
        // loop's would, rather than at the end of a long batch.
        flush_and_mark(consumer, &mut owed.marks, rec).await?;
        tokio::time::sleep(process).await;
    }
    let applied = match store.as_mut() {
        // SQLite is synchronous; a short block of this worker thread is what a real consumer's
        // database call costs too.
        Some(db) => matches!(
            tokio::task::block_in_place(|| db.process(id, index))?,
            Outcome::Applied
        ),
        None => true,
    };
    let t = now_ns();
    rec.emit(if applied {
        Event::Processed {
            t,
            consumer: index,
            id,
        }
    } else {
        Event::DedupeSkip {
            t,
            consumer: index,
            id,
        }
    })?;
    match when {
        Acknowledge::After => {
            owed.acks.push((handle, id));
            if owed.acks.len() >= consumer.acks_per_request() {
                ack(consumer, &mut owed.acks, rec).await?;
            }
        }
        Acknowledge::Mark => owed.marks.push(handle),
        Acknowledge::Before | Acknowledge::Never => {}
    }
    Ok(())
}

/// Wait until the broker counts the consumer in (for Kafka: the group gave it its partitions,
/// or none as a standby). A deployed instance that cannot join yet keeps waiting rather than
/// exit, and so does this one, saying so each `timeout`, until it is told to stop (false): the
/// coordinator decides how long a run's start may take, and a consumer started mid-run (a
/// scale-out, a replacement) must not give up on a group that is slow to rebalance. On
/// 2026-12-08 the local Kafka (tansu) took over 16 s to let newcomers in after the members
/// before them had all left.
async fn joined(
    consumer: &mut dyn driver::Consumer,
    index: u32,
    timeout: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> bool {
    loop {
        match consumer.ready(timeout).await {
            Ok(()) => return true,
            Err(_) if stop.load(Ordering::Relaxed) => return false,
            Err(e) => crate::note!("consumer {index}: {e:#}; still waiting"),
        }
        // An error that comes at once (not a timeout) must not become a busy loop.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Replace the client with a fresh one, as an application's reconnect logic would. The old one
/// leaves first, within a short bound (a wedged client may never finish): a Kafka member still
/// holding its partitions, or RabbitMQ's single active consumer, would keep them from the new
/// client. If no new client can be made, the old one stays for the next attempt.
async fn reconnect(
    driver: &dyn Driver,
    consumer: &mut Box<dyn driver::Consumer>,
    index: u32,
    ready_timeout: Duration,
) -> Result<()> {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, consumer.close()).await;
    let mut fresh = driver.consumer(index).await?;
    fresh.ready(ready_timeout).await?;
    *consumer = fresh;
    Ok(())
}

/// Flush the records so far; then (`ack: auto`) hand the client the deliveries processed so far
/// for its timed commit: a kill from here on cannot leave a committed message off the record.
async fn flush_and_mark<W: Write>(
    consumer: &mut dyn driver::Consumer,
    handles: &mut Vec<AckHandle>,
    rec: &mut Record<W>,
) -> Result<()> {
    rec.flush()?;
    if handles.is_empty() {
        return Ok(());
    }
    let count = handles.len();
    let marked = tokio::time::timeout(
        ACK_TIMEOUT,
        consumer.mark_processed(std::mem::take(handles)),
    )
    .await
    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {ACK_TIMEOUT:?}")));
    if let Err(e) = marked {
        rec.error(format!("marking {count} deliveries processed: {e:#}"))?;
    }
    Ok(())
}

/// Acknowledge `pending` (emptying it) in as few requests as the broker allows; each one on
/// record as acknowledged only once the broker said so.
async fn ack<W: Write>(
    consumer: &mut dyn driver::Consumer,
    pending: &mut Vec<(AckHandle, MsgId)>,
    rec: &mut Record<W>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    // The deliveries must be on record before the broker can hand the next message of their keys
    // to another consumer, or the history could show them out of order.
    rec.flush()?;
    let (handles, ids): (Vec<AckHandle>, Vec<MsgId>) = std::mem::take(pending).into_iter().unzip();
    let acked = match tokio::time::timeout(ACK_TIMEOUT, consumer.ack_all(handles)).await {
        Ok(acked) => acked,
        Err(_) => ids
            .iter()
            .map(|_| Err(anyhow::anyhow!("no answer within {ACK_TIMEOUT:?}")))
            .collect(),
    };
    for (id, done) in ids.into_iter().zip(acked) {
        match done {
            Ok(()) => rec.emit(Event::Ack {
                t: now_ns(),
                consumer: rec.consumer,
                id,
            })?,
            Err(e) => rec.error(format!("ack {}: {e:#}", id.dedupe_id()))?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ack_mode_acknowledges_once_at_its_moment() {
        let tag = AckHandle::Tag { queue: 0, tag: 1 };
        assert_eq!(
            Acknowledge::of(AckMode::BeforeProcess, &tag),
            Acknowledge::Before
        );
        assert_eq!(
            Acknowledge::of(AckMode::AfterProcess, &tag),
            Acknowledge::After
        );
        assert_eq!(Acknowledge::of(AckMode::Auto, &tag), Acknowledge::Mark);
        // Nothing to acknowledge, whatever the mode (RabbitMQ no-ack, SQS delete-on-receipt).
        for mode in [AckMode::BeforeProcess, AckMode::AfterProcess, AckMode::Auto] {
            assert_eq!(Acknowledge::of(mode, &AckHandle::None), Acknowledge::Never);
        }
    }
}
