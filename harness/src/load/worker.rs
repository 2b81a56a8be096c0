//! The consumer worker: a separate OS process (`brokerbench worker`) so that crash faults can
//! SIGKILL it for real. It streams history events to the coordinator over stdout and stops when
//! its stdin closes (which also happens if the coordinator dies).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::dedupe::{Outcome, ProcessedIds};
use crate::message::{run_tag, Envelope};
use futures::FutureExt;

use crate::driver::{self, AckHandle, Driver, Plan};
use crate::history::codec::write_frame;
use crate::history::{now_ns, ClientRole, Event, WorkerEvent};
use crate::workload::{AckMode, Dedupe};

const POLL_WAIT: Duration = Duration::from_millis(250);

pub async fn run(spec: &Path, index: u32) -> Result<()> {
    // The coordinator's stall watchdog asks for a fresh client with SIGUSR1. Listen before
    // anything else: the signal's default action would end the process.
    let mut kicks = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .context("listening for the stall watchdog's signal")?;
    let text = std::fs::read_to_string(spec)
        .with_context(|| format!("reading worker plan {}", spec.display()))?;
    let plan: Plan = serde_json::from_str(&text).context("parsing worker plan")?;
    let plan = Arc::new(plan);
    let tag = run_tag(&plan.run_id);
    let w = &plan.workload;
    let driver = driver::driver(plan.clone())?;
    let mut consumer = driver.consumer(index).await?;
    consumer
        .ready(w.run.connect_timeout.0 + w.topology.kafka.session_timeout.0)
        .await?;
    let mut store = match w.consumers.dedupe {
        Dedupe::ProcessedIds => {
            let dir = spec.parent().unwrap_or(Path::new("."));
            Some(ProcessedIds::open(&dir.join("processed-ids.sqlite"))?)
        }
        Dedupe::None => None,
    };

    let stop = super::stop_when_stdin_closes();

    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut scratch = Vec::with_capacity(256);
    let mut emit = |out: &mut BufWriter<_>, ev: Event| write_frame(out, &ev, &mut scratch);
    emit(
        &mut out,
        Event::Worker {
            t: now_ns(),
            consumer: index,
            event: WorkerEvent::Ready {
                pid: std::process::id(),
            },
        },
    )?;
    out.flush()?;

    let ready_timeout = w.run.connect_timeout.0 + w.topology.kafka.session_timeout.0;
    let auto_ack = w.consumers.ack == AckMode::Auto;
    // Auto mode: deliveries processed in this batch, marked for the client's timed commit once
    // the batch's records are flushed to the coordinator.
    let mut processed = Vec::new();
    let mut replace: Option<String> = None;
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
            if let Err(e) = reconnect(&*driver, &mut consumer, index, ready_timeout).await {
                emit(
                    &mut out,
                    Event::ConsumerError {
                        t: now_ns(),
                        consumer: index,
                        error: format!("reconnecting ({reason}): {e:#}"),
                    },
                )?;
                out.flush()?;
                // Try again on the next round; the old client may yet recover meanwhile.
                replace = Some(reason);
                tokio::time::sleep(POLL_WAIT).await;
                continue;
            }
            emit(
                &mut out,
                Event::Reconnect {
                    t: now_ns(),
                    role: ClientRole::Consumer,
                    index,
                    reason,
                },
            )?;
            out.flush()?;
        }
        let batch = match consumer.poll(POLL_WAIT).await {
            Ok(b) => b,
            Err(e) => {
                // Each failure is on record for the availability figures.
                let error = format!("{e:#}");
                emit(
                    &mut out,
                    Event::ConsumerError {
                        t: now_ns(),
                        consumer: index,
                        error,
                    },
                )?;
                out.flush()?;
                tokio::time::sleep(POLL_WAIT).await;
                continue;
            }
        };
        for r in batch {
            let t = now_ns();
            let env = match Envelope::decode(&r.body) {
                Ok(env) if env.run_tag == tag => env,
                Ok(_) => {
                    emit(
                        &mut out,
                        Event::Foreign {
                            t,
                            consumer: index,
                            pos: r.pos,
                            detail: "message from another run".into(),
                        },
                    )?;
                    // Not ours to judge; removing it is best effort and never stops the worker.
                    let _ = tokio::time::timeout(ACK_TIMEOUT, consumer.ack(r.handle)).await;
                    continue;
                }
                Err(e) => {
                    emit(
                        &mut out,
                        Event::Foreign {
                            t,
                            consumer: index,
                            pos: r.pos,
                            detail: e.to_string(),
                        },
                    )?;
                    // Not ours to judge; removing it is best effort and never stops the worker.
                    let _ = tokio::time::timeout(ACK_TIMEOUT, consumer.ack(r.handle)).await;
                    continue;
                }
            };
            let id = env.id;
            emit(
                &mut out,
                Event::Deliver {
                    t,
                    consumer: index,
                    id,
                    intended: env.intended_ns,
                    pos: r.pos,
                    redelivered: r.redelivered,
                    receive_count: r.receive_count,
                },
            )?;
            let process = w.consumers.processing_time.0;
            let ack_first = w.consumers.ack == AckMode::BeforeProcess;
            let explicit_ack = !auto_ack && !matches!(r.handle, AckHandle::None);
            if ack_first && explicit_ack {
                ack(
                    &mut *consumer,
                    r.handle.clone(),
                    index,
                    id,
                    &mut out,
                    &mut emit,
                )
                .await?;
            }
            if !process.is_zero() {
                // Flush first: if we are killed while "processing", the delivery is on record.
                // What was processed before is then on record too: the next auto-commit may
                // have it, as a poll loop's would, rather than at the end of a long batch.
                flush_and_mark(&mut *consumer, &mut processed, index, &mut out, &mut emit).await?;
                tokio::time::sleep(process).await;
            }
            let applied = match store.as_mut() {
                // SQLite is synchronous; a short block of this worker thread is what a real
                // consumer's database call costs too.
                Some(db) => matches!(
                    tokio::task::block_in_place(|| db.process(id, index))?,
                    Outcome::Applied
                ),
                None => true,
            };
            let t = now_ns();
            emit(
                &mut out,
                if applied {
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
                },
            )?;
            if !ack_first && explicit_ack {
                ack(&mut *consumer, r.handle, index, id, &mut out, &mut emit).await?;
            } else if auto_ack && !matches!(r.handle, AckHandle::None) {
                processed.push(r.handle);
            }
        }
        flush_and_mark(&mut *consumer, &mut processed, index, &mut out, &mut emit).await?;
    }
    consumer.close().await;
    out.flush()?;
    Ok(())
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

/// Bound on one acknowledgement: a client stuck on a dead connection must not stop the worker
/// (the failure is recorded; the heartbeat or the stall watchdog replace the client).
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client being replaced gets to close cleanly.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Flush the records so far; then (`ack: auto`) hand the client the deliveries processed so far
/// for its timed commit: a kill from here on cannot leave a committed message off the record.
async fn flush_and_mark<W: Write>(
    consumer: &mut dyn driver::Consumer,
    handles: &mut Vec<AckHandle>,
    index: u32,
    out: &mut W,
    emit: &mut impl FnMut(&mut W, Event) -> std::io::Result<()>,
) -> Result<()> {
    out.flush()?;
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
        let error = format!("marking {count} deliveries processed: {e:#}");
        emit(
            out,
            Event::ConsumerError {
                t: now_ns(),
                consumer: index,
                error,
            },
        )?;
    }
    Ok(())
}

async fn ack<W: Write>(
    consumer: &mut dyn driver::Consumer,
    handle: AckHandle,
    index: u32,
    id: crate::message::MsgId,
    out: &mut W,
    emit: &mut impl FnMut(&mut W, Event) -> std::io::Result<()>,
) -> Result<()> {
    // The delivery must be on record before the broker can hand the next message of this key to
    // another consumer, or the history could show them out of order.
    out.flush()?;
    let acked = tokio::time::timeout(ACK_TIMEOUT, consumer.ack(handle))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {ACK_TIMEOUT:?}")));
    match acked {
        Ok(()) => emit(
            out,
            Event::Ack {
                t: now_ns(),
                consumer: index,
                id,
            },
        )?,
        Err(e) => emit(
            out,
            Event::ConsumerError {
                t: now_ns(),
                consumer: index,
                error: format!("ack {}: {e:#}", id.dedupe_id()),
            },
        )?,
    }
    Ok(())
}
