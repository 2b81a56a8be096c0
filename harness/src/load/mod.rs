//! Load generation: open-loop producers (in the coordinator, or as worker processes when the
//! schedule crashes them), consumers as worker processes, and the run that drives them.
//!
//! - `runner`: one run of one broker, phase by phase.
//! - `producer`: one open-loop producer; `producer_group`: where the run's producers live
//!   (tasks, or processes); `producer_process`: a producer as its own OS process.
//! - `consumer_process`: a consumer as its own OS process.
//! - `process_fleet`: starting, signalling and stopping worker processes.
//! - `final_read`: the read after the run that tells *lost* from *unread*.
//! - `broker_usage`, `cluster_view`: what the broker costs, and how its cluster looks, sampled
//!   beside the load.
//! - `schedule`: the open-loop send schedule; `dedupe`: the idempotent consumer's store.

pub mod broker_usage;
pub mod cluster_view;
pub mod consumer_process;
pub mod dedupe;
pub mod final_read;
pub mod process_fleet;
pub mod producer;
pub mod producer_group;
pub mod producer_process;
pub mod runner;
pub mod schedule;
pub mod window;
pub mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Live counts while the run goes on: the progress bar shows them, and the drain, the stall
/// watchdog and the final read decide on them (when to stop waiting, whether a client is stuck,
/// how much to expect). The history is the record; the checkers judge from it, never from these.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub indeterminate: AtomicU64,
    pub delivered: AtomicU64,
    /// ns timestamp of the latest delivery, for the drain's quiet period.
    pub last_delivery_ns: AtomicU64,
    pub ready_workers: AtomicU64,
    pub ready_producers: AtomicU64,
    /// The final read reported how it ended.
    pub final_read_done: AtomicBool,
}

/// A task that runs beside the load (sampling what the broker costs, asking how its cluster
/// looks) until it is stopped.
pub struct Beside {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Beside {
    /// Spawn `work`, handing it a receiver that changes when the task is asked to stop.
    pub fn spawn<F>(work: impl FnOnce(tokio::sync::watch::Receiver<bool>) -> F) -> Beside
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        Beside {
            stop,
            task: tokio::spawn(work(stopped)),
        }
    }

    /// Ask it to stop, and wait (at most 5 s) until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await;
    }
}

/// For a worker process: a flag that turns true once stdin ends (EOF or an error), which is how
/// the coordinator asks it to finish, and which also happens if the coordinator dies.
pub fn stop_when_stdin_closes() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        flag.store(true, Ordering::Relaxed);
    });
    stop
}
