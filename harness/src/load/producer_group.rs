//! Where a run's producers live: tasks in the coordinator (cheapest, the default), or worker
//! processes when the fault schedule crashes producers, so that SIGKILL takes the client with it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::process_fleet::{self, lock, Fleet, Role};
use super::producer::ProducerTask;
use super::Counters;
use crate::driver::{Driver, Plan, Publisher};
use crate::history::{now_ns, Recorder};
use crate::message::run_tag;

/// Connected producers, waiting for the load to start.
pub enum Prepared {
    Tasks(Vec<Box<dyn Publisher>>),
    Processes(Arc<Mutex<Fleet>>),
}

pub enum Producers {
    Tasks {
        handles: Vec<JoinHandle<()>>,
        stop: watch::Sender<bool>,
    },
    Processes {
        fleet: Arc<Mutex<Fleet>>,
        /// Past this time (ns) with no producer process left, the load phase is over.
        load_end: u64,
        /// Past this time (ns) the load phase is over whatever the processes do; they have
        /// had their send timeout to finish.
        give_up: u64,
    },
}

/// What producers need besides the workload.
pub struct Setup<'a> {
    pub plan: &'a Arc<Plan>,
    pub driver: &'a Arc<dyn Driver>,
    pub dir: &'a Path,
    pub seed: u64,
    pub recorder: &'a Recorder,
    pub counters: &'a Arc<Counters>,
}

/// Connect every producer; as processes when `as_processes`.
pub async fn prepare(s: &Setup<'_>, as_processes: bool) -> Result<Prepared> {
    let w = &s.plan.workload;
    if !as_processes {
        let mut publishers = Vec::new();
        for p in 0..w.load.producers {
            publishers.push(s.driver.publisher(p).await?);
        }
        return Ok(Prepared::Tasks(publishers));
    }
    let role = Role::Producer { seed: s.seed };
    let spec = super::worker::write_plan(s.dir, role, s.plan)?;
    let fleet = Arc::new(Mutex::new(Fleet::new(
        role,
        spec,
        s.dir.to_owned(),
        s.recorder.clone(),
        s.counters.clone(),
    )));
    {
        let mut f = lock(&fleet)?;
        for _ in 0..w.load.producers {
            f.spawn()?;
        }
    }
    let deadline = Instant::now() + w.run.connect_timeout.0 + Duration::from_secs(5);
    let ready = &s.counters.ready_producers;
    process_fleet::wait_ready(&fleet, ready, w.load.producers as u64, deadline, || false)
        .await
        .with_context(|| s.plan.broker.to_string())?;
    Ok(Prepared::Processes(fleet))
}

impl Prepared {
    /// Start sending; the load started at `start_ns`.
    pub fn start(self, s: &Setup<'_>, start_ns: u64) -> Result<Producers> {
        let w = &s.plan.workload;
        match self {
            Prepared::Tasks(publishers) => {
                let (stop, stop_rx) = watch::channel(false);
                let handles = publishers
                    .into_iter()
                    .enumerate()
                    .map(|(i, publisher)| {
                        let task = ProducerTask {
                            index: i as u32,
                            slot: i as u32,
                            run_tag: run_tag(&s.plan.run_id),
                            seed: s.seed,
                            start_ns,
                            resume_ns: start_ns,
                            recorder: s.recorder.clone(),
                            counters: s.counters.clone(),
                            stop: stop_rx.clone(),
                            driver: s.driver.clone(),
                        };
                        let workload = w.clone();
                        tokio::spawn(async move { task.run(&workload, publisher).await })
                    })
                    .collect();
                Ok(Producers::Tasks { handles, stop })
            }
            Prepared::Processes(fleet) => {
                lock(&fleet)?.start(start_ns)?;
                let load_end = start_ns + w.load.duration.as_nanos();
                Ok(Producers::Processes {
                    fleet,
                    load_end,
                    give_up: load_end
                        + (w.run.send_timeout.0 + Duration::from_secs(10)).as_nanos() as u64,
                })
            }
        }
    }
}

impl Producers {
    /// The producer processes, for producer-crash faults.
    pub fn fleet(&self) -> Option<Arc<Mutex<Fleet>>> {
        match self {
            Producers::Tasks { .. } => None,
            Producers::Processes { fleet, .. } => Some(fleet.clone()),
        }
    }

    /// True once the schedule has run out and every producer has finished its in-flight sends.
    pub fn finished(&self) -> bool {
        match self {
            Producers::Tasks { handles, .. } => handles.iter().all(|h| h.is_finished()),
            // A crashed producer may yet be replaced: only past the end of the schedule does an
            // empty fleet mean the producers are done.
            Producers::Processes {
                fleet,
                load_end,
                give_up,
            } => {
                let now = now_ns();
                now >= *give_up
                    || (now >= *load_end
                        && fleet.lock().map(|mut f| f.running() == 0).unwrap_or(true))
            }
        }
    }

    /// Ctrl-C: stop sending, finish in-flight sends.
    pub async fn stop(&self) {
        match self {
            Producers::Tasks { stop, .. } => {
                let _ = stop.send(true);
            }
            Producers::Processes { fleet, .. } => {
                let fleet = fleet.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut f) = fleet.lock() {
                        f.close_inputs();
                    }
                })
                .await;
            }
        }
    }

    pub async fn join(self) -> Result<()> {
        match self {
            Producers::Tasks { handles, .. } => {
                for h in handles {
                    h.await.context("a producer task panicked")?;
                }
            }
            Producers::Processes { fleet, .. } => {
                tokio::task::spawn_blocking(move || {
                    if let Ok(mut f) = fleet.lock() {
                        f.stop_all(Duration::from_secs(5));
                    }
                })
                .await?;
            }
        }
        Ok(())
    }
}
