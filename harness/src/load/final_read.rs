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
    let mut reader = match open_reader(plan, deadline).await {
        Ok(r) => r,
        Err(why) => return (FinalReadOutcome::Failed, 0, why),
    };
    let tag = run_tag(&plan.run_id);
    let mut tally = Tally::default();
    let mut empty_polls = 0u32;
    let mut last_message = Instant::now();
    let mut left = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            // The coordinator closed our stdin: the run was interrupted (or its own, later
            // deadline passed).
            let why = format!("stopped early by the run after {} values", tally.read);
            return (FinalReadOutcome::TimedOut, tally.read, why);
        }
        if Instant::now() >= deadline {
            let why = tally.timed_out(plan.workload.run.final_read_timeout, left);
            return (FinalReadOutcome::TimedOut, tally.read, why);
        }
        let batch = match tokio::time::timeout_at(deadline, reader.poll(POLL_WAIT)).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                tally.error(e);
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
                Ok(Ok(None)) | Err(_) => {}
                Ok(Err(e)) => tally.error(e),
            }
            continue;
        }
        empty_polls = 0;
        last_message = Instant::now();
        let handles = match record(batch, tag, events, &mut tally) {
            Ok(h) => h,
            Err(why) => return (FinalReadOutcome::Failed, tally.read, why),
        };
        let acked = match tokio::time::timeout_at(deadline, reader.ack_all(handles)).await {
            Ok(acked) => acked,
            Err(_) => continue, // the deadline check at the top of the loop reports it
        };
        for e in acked.into_iter().filter_map(|done| done.err()) {
            tally.error(e);
        }
    }
    reader.close().await;
    let detail = tally.detail(&plan.broker.to_string(), &plan.address());
    (FinalReadOutcome::Complete, tally.read, detail)
}

/// The driver's final reader, within the deadline; else why not, naming the broker.
async fn open_reader(
    plan: &Arc<Plan>,
    deadline: Instant,
) -> Result<Box<dyn driver::Consumer>, String> {
    let (broker, address) = (&plan.broker, plan.address());
    let timeout = plan.workload.run.final_read_timeout;
    let driver = driver::driver(plan.clone()).map_err(|e| format!("{e:#}"))?;
    match tokio::time::timeout_at(deadline, driver.final_reader()).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!(
            "{broker} at {address}: could not start the final read: {e:#}"
        )),
        Err(_) => Err(format!(
            "{broker} at {address}: no answer within final_read_timeout ({timeout})"
        )),
    }
}

/// What the final read has found so far, and what went wrong on the way.
#[derive(Default)]
struct Tally {
    /// Values of this run.
    read: u64,
    /// Messages that are no value of this run.
    foreign: u64,
    /// Operations that failed and were retried, and the last one's error.
    errors: u64,
    last_error: String,
}

impl Tally {
    fn error(&mut self, e: anyhow::Error) {
        self.errors += 1;
        self.last_error = format!("{e:#}");
    }

    fn timed_out(&self, timeout: crate::workload::units::Dur, left: Option<u64>) -> String {
        let left = left.map_or(String::new(), |n| format!("; the broker still counted {n}"));
        let err = if self.last_error.is_empty() {
            String::new()
        } else {
            format!("; last error: {}", self.last_error)
        };
        let read = self.read;
        format!("stopped by final_read_timeout ({timeout}) after {read} values{left}{err}")
    }

    fn detail(&self, broker: &str, address: &str) -> String {
        let mut detail = format!(
            "read {} of the run's values from {broker} at {address}",
            self.read
        );
        if self.foreign > 0 {
            let foreign = self.foreign;
            detail.push_str(&format!(", and {foreign} messages of no value of this run"));
        }
        if self.errors > 0 {
            detail.push_str(&format!(
                "; {} operations failed and were retried (last: {})",
                self.errors, self.last_error
            ));
        }
        detail
    }
}

/// Put a batch's values of this run on record, flushed to the coordinator; the handles to
/// acknowledge. Removing what was read (RabbitMQ, SQS) is what lets `remaining` reach 0, and
/// only once it is on record, or a crash then would lose values from the history.
fn record(
    batch: Vec<driver::Received>,
    tag: u64,
    events: &mut Events<impl Write>,
    tally: &mut Tally,
) -> Result<Vec<driver::AckHandle>, String> {
    let mut handles = Vec::with_capacity(batch.len());
    for r in batch {
        match Envelope::decode(&r.body) {
            Ok(env) if env.run_tag == tag => {
                tally.read += 1;
                let ev = Event::FinalRead {
                    t: now_ns(),
                    id: env.id,
                    intended: env.intended_ns,
                    pos: r.pos,
                    redelivered: r.redelivered,
                    receive_count: r.receive_count,
                };
                events
                    .emit(&ev)
                    .map_err(|e| format!("writing to the coordinator: {e}"))?;
            }
            _ => tally.foreign += 1,
        }
        handles.push(r.handle);
    }
    events
        .flush()
        .map_err(|e| format!("writing to the coordinator: {e}"))?;
    Ok(handles)
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
    use super::process_fleet::{Home, Role, WorkerProc};
    let spec = super::worker::write_plan(dir, Role::FinalRead, plan)?;
    recorder.record(Event::Phase {
        t: now_ns(),
        phase: crate::history::Phase::FinalReadStart,
    });
    let home = Home {
        spec,
        dir: dir.to_owned(),
        recorder: recorder.clone(),
        counters: counters.clone(),
    };
    let mut proc = WorkerProc::spawn(Role::FinalRead, 0, 0, &home)?;
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
