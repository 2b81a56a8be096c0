//! A producer as its own OS process (`brokerbench worker --producer`), used when the fault
//! schedule crashes producers: SIGKILL then takes the client with it, with whatever it had in
//! flight and unflushed, as it would in production. It runs the same `ProducerTask` as an
//! in-process producer and streams its history events over stdout.
//!
//! stdin protocol: the coordinator writes `start <load start ns> <resume ns>` once every producer
//! is connected (a replacement resumes at its own start, see `ProducerTask::resume_ns`); closing
//! stdin asks the producer to stop early (Ctrl-C).

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::sync::{oneshot, watch};

use super::producer::ProducerTask;
use super::Counters;
use crate::driver;
use crate::history::{now_ns, Event, Recorder, WorkerEvent};
use crate::message::run_tag;

pub struct Args {
    pub index: u32,
    /// The share of the schedule this producer sends (a replacement takes over its victim's).
    pub slot: u32,
    pub seed: u64,
}

pub async fn run(spec: &Path, a: Args) -> Result<()> {
    let plan = super::worker::read_plan(spec)?;
    let driver: Arc<dyn driver::Driver> = Arc::from(driver::driver(plan.clone())?);
    let publisher = driver.publisher(a.index).await?;
    // Every event is in the pipe before the next step: a send is on record before it can reach
    // the broker, so a SIGKILL cannot leave a delivered message without its send.
    let recorder = Recorder::direct(std::io::stdout());
    recorder.record(Event::ProducerWorker {
        t: now_ns(),
        producer: a.index,
        event: WorkerEvent::Ready {
            pid: std::process::id(),
        },
    });

    let (start_tx, start_rx) = oneshot::channel::<Result<(u64, u64)>>();
    let (stop_tx, stop) = watch::channel(false);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut line = String::new();
        let start = match stdin.read_line(&mut line) {
            Ok(0) | Err(_) => Err(anyhow::anyhow!(
                "the coordinator went away before the start"
            )),
            Ok(_) => parse_start(&line),
        };
        let _ = start_tx.send(start);
        // Any further read result (EOF or error) means the coordinator wants us gone.
        let _ = std::io::copy(&mut stdin, &mut std::io::sink());
        let _ = stop_tx.send(true);
    });
    let (start_ns, resume_ns) = start_rx.await.context("waiting for the start")??;
    let task = ProducerTask {
        index: a.index,
        slot: a.slot,
        run_tag: run_tag(&plan.run_id),
        seed: a.seed,
        start_ns,
        resume_ns,
        recorder: recorder.clone(),
        counters: Arc::new(Counters::default()),
        stop,
        driver,
    };
    task.run(&plan.workload, publisher).await;
    Ok(())
}

fn parse_start(line: &str) -> Result<(u64, u64)> {
    let bad = || anyhow::anyhow!("expected `start <ns> <ns>` on stdin, got {line:?}");
    let mut words = line.split_whitespace();
    if words.next() != Some("start") {
        bail!(bad());
    }
    let mut num = || -> Result<u64> { words.next().ok_or_else(bad)?.parse().map_err(|_| bad()) };
    Ok((num()?, num()?))
}
