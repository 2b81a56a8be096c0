//! The final read, as Jepsen's queue and Kafka tests do it: after the load and the drain, with
//! every fault undone and the workload's consumers gone, a fresh client in a process of its own
//! connects straight to the broker (never through the fault proxy) and reads whatever the run's
//! topics or queues still hold. Only a value that even this read cannot find is *lost*; one it
//! finds that the workload's consumers never processed is *unread*: a failure of the consumers,
//! not of the broker.
//!
//! The process (`brokerbench worker --final-read`) streams `FinalRead` events and one
//! `FinalReadDone` over stdout, like the consumer workers. It stops at its deadline
//! (`run.final_read_timeout`) or when the coordinator closes its stdin, and says so.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use super::worker::Events;
use crate::driver::{self, Plan};
use crate::history::{now_ns, Event, FinalReadOutcome};
use crate::message::{run_tag, Envelope};

const POLL_WAIT: Duration = Duration::from_millis(250);
/// Empty polls in a row, with the broker counting nothing left, before the read is complete:
/// a message already on its way to this client is not yet counted anywhere.
const EMPTY_POLLS_TO_FINISH: u32 = 3;
/// For a broker that cannot count what it holds: this long without a message ends the read.
const QUIET_WITHOUT_COUNT: Duration = Duration::from_secs(5);

pub async fn run(spec: &Path) -> Result<()> {
    let plan = super::worker::read_plan(spec)?;
    let deadline = Instant::now() + plan.workload.run.final_read_timeout.0;

    let stop = super::stop_when_stdin_closes();

    let mut events = Events::new(std::io::stdout().lock());
    let (outcome, read, detail) = read_all(&plan, deadline, &stop, &mut events).await;
    let done = Event::FinalReadDone {
        t: now_ns(),
        outcome,
        read,
        detail,
    };
    events.emit(&done)?;
    events.flush()
}

/// Read until the broker holds nothing more for the run, the deadline, or a stop; returns how
/// it ended, how many of the run's values it found, and what to say about it.
async fn read_all(
    plan: &Arc<Plan>,
    deadline: Instant,
    stop: &AtomicBool,
    events: &mut Events<impl Write>,
) -> (FinalReadOutcome, u64, String) {
    let address = plan.address();
    let broker = &plan.broker;
    let timeout = plan.workload.run.final_read_timeout;
    let driver = match driver::driver(plan.clone()) {
        Ok(d) => d,
        Err(e) => return (FinalReadOutcome::Failed, 0, format!("{e:#}")),
    };
    let mut reader = match tokio::time::timeout_at(deadline, driver.final_reader()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let why = format!("{broker} at {address}: could not start the final read: {e:#}");
            return (FinalReadOutcome::Failed, 0, why);
        }
        Err(_) => {
            let why =
                format!("{broker} at {address}: no answer within final_read_timeout ({timeout})");
            return (FinalReadOutcome::Failed, 0, why);
        }
    };
    let tag = run_tag(&plan.run_id);
    let (mut read, mut foreign, mut errors) = (0u64, 0u64, 0u64);
    let mut last_error = String::new();
    let mut empty_polls = 0u32;
    let mut last_message = Instant::now();
    let timed_out = |read: u64, left: Option<u64>, last_error: &str| {
        let left = left.map_or(String::new(), |n| format!("; the broker still counted {n}"));
        let err = if last_error.is_empty() {
            String::new()
        } else {
            format!("; last error: {last_error}")
        };
        format!("stopped by final_read_timeout ({timeout}) after {read} values{left}{err}")
    };
    let mut left = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            // The coordinator closed our stdin: the run was interrupted (or its own, later
            // deadline passed).
            let why = format!("stopped early by the run after {read} values");
            return (FinalReadOutcome::TimedOut, read, why);
        }
        if Instant::now() >= deadline {
            return (
                FinalReadOutcome::TimedOut,
                read,
                timed_out(read, left, &last_error),
            );
        }
        let batch = match tokio::time::timeout_at(deadline, reader.poll(POLL_WAIT)).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                errors += 1;
                last_error = format!("{e:#}");
                tokio::time::sleep(POLL_WAIT).await;
                continue;
            }
            Ok(Ok(b)) => b,
        };
        if batch.is_empty() {
            empty_polls += 1;
            if empty_polls < EMPTY_POLLS_TO_FINISH {
                continue;
            }
            match tokio::time::timeout_at(deadline, reader.remaining()).await {
                Ok(Ok(Some(0))) => break,
                Ok(Ok(Some(n))) => left = Some(n),
                Ok(Ok(None)) if last_message.elapsed() >= QUIET_WITHOUT_COUNT => break,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    errors += 1;
                    last_error = format!("{e:#}");
                }
                Err(_) => {}
            }
            continue;
        }
        empty_polls = 0;
        last_message = Instant::now();
        let mut handles = Vec::with_capacity(batch.len());
        for r in batch {
            match Envelope::decode(&r.body) {
                Ok(env) if env.run_tag == tag => {
                    read += 1;
                    let ev = Event::FinalRead {
                        t: now_ns(),
                        id: env.id,
                        intended: env.intended_ns,
                        pos: r.pos,
                        redelivered: r.redelivered,
                        receive_count: r.receive_count,
                    };
                    if let Err(e) = events.emit(&ev) {
                        let why = format!("writing to the coordinator: {e}");
                        return (FinalReadOutcome::Failed, read, why);
                    }
                }
                _ => foreign += 1,
            }
            handles.push(r.handle);
        }
        // Removing what was read (RabbitMQ, SQS) is what lets `remaining` reach 0; only once it
        // is on record, or a crash here would lose values from the history.
        if let Err(e) = events.flush() {
            let why = format!("writing to the coordinator: {e}");
            return (FinalReadOutcome::Failed, read, why);
        }
        let acked = match tokio::time::timeout_at(deadline, reader.ack_all(handles)).await {
            Ok(acked) => acked,
            Err(_) => continue, // the deadline check at the top of the loop reports it
        };
        for done in acked {
            if let Err(e) = done {
                errors += 1;
                last_error = format!("{e:#}");
            }
        }
    }
    reader.close().await;
    let mut detail = format!("read {read} of the run's values from {broker} at {address}");
    if foreign > 0 {
        detail.push_str(&format!(", and {foreign} messages of no value of this run"));
    }
    if errors > 0 {
        detail.push_str(&format!(
            "; {errors} operations failed and were retried (last: {last_error})"
        ));
    }
    (FinalReadOutcome::Complete, read, detail)
}

/// The coordinator's side: run the final read in a process of its own against `plan` (whose
/// target must be the broker itself, not the fault proxy), record what it finds, and bound it by
/// `run.final_read_timeout` however the process behaves.
pub async fn verify(
    plan: &Plan,
    dir: &Path,
    recorder: &crate::history::Recorder,
    counters: &Arc<super::Counters>,
    interrupted: impl Fn() -> bool + Send + 'static,
) -> Result<()> {
    use super::process_fleet::{Role, WorkerProc};
    let spec = super::worker::write_plan(dir, Role::FinalRead, plan)?;
    recorder.record(Event::Phase {
        t: now_ns(),
        phase: crate::history::Phase::FinalReadStart,
    });
    let mut proc = WorkerProc::spawn(
        Role::FinalRead,
        0,
        0,
        &spec,
        dir,
        recorder.clone(),
        counters.clone(),
    )?;
    // The process keeps its own deadline; this one only catches a process that does not.
    let grace = Duration::from_secs(10);
    let deadline = std::time::Instant::now() + plan.workload.run.final_read_timeout.0 + grace;
    let log = proc.log.display().to_string();
    let recorder_for_stop = recorder.clone();
    let exited = tokio::task::spawn_blocking(move || {
        // Ctrl-C ends it early (stdin closes, and it reports what it read so far).
        let mut exited = false;
        while !exited && !interrupted() && std::time::Instant::now() < deadline {
            exited = proc.wait_exit(std::time::Instant::now() + Duration::from_millis(100));
        }
        proc.stop(Duration::from_secs(5), &recorder_for_stop);
        exited
    })
    .await?;
    if !counters.final_read_done.load(Ordering::Relaxed) {
        let why = if exited {
            format!("the final-read process ended without reporting; see {log}")
        } else {
            format!("the final-read process did not finish in time and was stopped; see {log}")
        };
        recorder.record(Event::FinalReadDone {
            t: now_ns(),
            outcome: FinalReadOutcome::Failed,
            read: 0,
            detail: why,
        });
    }
    Ok(())
}
