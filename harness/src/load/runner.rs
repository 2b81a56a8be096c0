//! Runs one workload against one broker: set up, start consumers, run the producers for the
//! load's duration, drain, stop, tear down — recording everything in the history.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use super::final_read;
use super::producers;
use super::workers::{self, Fleet, Role};
use super::Counters;
use crate::chaos::proxy::{Group, Protocol, Proxy};
use crate::chaos::{self, schedule::Window};
use crate::driver::{self, Plan};
use crate::history::{self, now_ns, Event, FinalReadOutcome, Phase, Recorder};
use crate::workload::{BrokerKind, RunOptions};

/// What a finished (or interrupted) run of one broker left behind.
#[derive(Debug, Clone)]
pub struct BrokerRun {
    pub dir: PathBuf,
    pub history: PathBuf,
    pub product: String,
    pub interrupted: bool,
    pub events: u64,
}

/// Why the run should wind down early.
#[derive(Clone)]
pub struct StopSignal(pub watch::Receiver<bool>);

impl StopSignal {
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }
}

pub async fn run_broker(
    plan: Arc<Plan>,
    dir: &Path,
    seed: u64,
    faults: Vec<Window>,
    stop: StopSignal,
    show_progress: bool,
) -> Result<BrokerRun> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let driver: Arc<dyn driver::Driver> = Arc::from(driver::driver(plan.clone())?);
    // Nothing is created on the broker before this succeeds; an unreachable broker fails here.
    driver.setup().await?;
    let product = driver.product().await;

    let history_path = dir.join("history.bin");
    let (recorder, writer) = history::create(&history_path)?;
    recorder.record(Event::Header {
        run_id: plan.run_id.clone(),
        broker: plan.broker.to_string(),
        t: now_ns(),
    });

    let result = match Clients::new(&plan, &driver, &faults, seed) {
        Ok(clients) => {
            drive(
                &plan,
                clients,
                dir,
                seed,
                faults,
                &recorder,
                stop.clone(),
                show_progress,
            )
            .await
        }
        Err(e) => Err(e),
    };
    if !plan.workload.run.keep {
        if let Err(e) = driver.teardown().await {
            eprintln!(
                "warning: {}: could not delete the run's resources: {e:#}",
                plan.broker
            );
        }
    }
    drop(recorder);
    let events = writer.finish()?;
    result?;
    Ok(BrokerRun {
        dir: dir.to_owned(),
        history: history_path,
        product,
        interrupted: stop.requested(),
        events,
    })
}

/// How producers and consumers reach the broker: through the fault proxy (one listener per
/// group) when a network fault names their group, directly otherwise, so the proxy costs nothing
/// on a path no fault touches. Setup and teardown stay direct.
struct Clients {
    producers: Arc<dyn driver::Driver>,
    producer_plan: Arc<Plan>,
    consumers: Arc<Plan>,
    proxy: Option<Arc<Proxy>>,
}

impl Clients {
    fn new(
        plan: &Arc<Plan>,
        direct: &Arc<dyn driver::Driver>,
        faults: &[Window],
        seed: u64,
    ) -> Result<Clients> {
        let proxied = |g: Group| {
            plan.workload.run.proxy
                || faults
                    .iter()
                    .any(|w| w.toxic.is_some() && w.groups.contains(&g))
        };
        if !Group::ALL.into_iter().any(proxied) {
            return Ok(Clients {
                producers: direct.clone(),
                producer_plan: plan.clone(),
                consumers: plan.clone(),
                proxy: None,
            });
        }
        let upstream = plan.target.upstream(plan.broker)?;
        let protocol = match plan.broker {
            BrokerKind::Kafka => Protocol::Kafka,
            _ => Protocol::Tcp,
        };
        let proxy = Proxy::start(&upstream, protocol, plan.workload.run.proxy_port, seed)?;
        let via = |g: Group| -> Result<Arc<Plan>> {
            if !proxied(g) {
                return Ok(plan.clone());
            }
            let mut p = (**plan).clone();
            p.target = plan.target.through_proxy(plan.broker, proxy.address(g))?;
            Ok(Arc::new(p))
        };
        let producer_plan = via(Group::Producers)?;
        let producers: Arc<dyn driver::Driver> = if proxied(Group::Producers) {
            Arc::from(driver::driver(producer_plan.clone())?)
        } else {
            direct.clone()
        };
        let consumers = via(Group::Consumers)?;
        Ok(Clients {
            producers,
            producer_plan,
            consumers,
            proxy: Some(Arc::new(proxy)),
        })
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    plan: &Arc<Plan>,
    clients: Clients,
    dir: &Path,
    seed: u64,
    faults: Vec<Window>,
    recorder: &Recorder,
    stop: StopSignal,
    show_progress: bool,
) -> Result<()> {
    let w = &plan.workload;
    let counters = Arc::new(Counters::default());
    let spec = dir.join("plan.json");
    std::fs::write(&spec, serde_json::to_vec_pretty(&*clients.consumers)?)
        .context("writing the worker plan")?;

    let fleet = Arc::new(std::sync::Mutex::new(Fleet::new(
        Role::Consumer,
        spec,
        dir.to_owned(),
        recorder.clone(),
        counters.clone(),
    )));
    {
        let mut f = workers::lock(&fleet)?;
        for _ in 0..w.consumers.count {
            f.spawn()?;
        }
    }
    let ready_deadline = Instant::now()
        + w.run.connect_timeout.0
        + w.topology.kafka.session_timeout.0
        + Duration::from_secs(5);
    workers::wait_ready(
        &fleet,
        &counters.ready_workers,
        w.consumers.count as u64,
        ready_deadline,
        || stop.requested(),
    )
    .await
    .with_context(|| plan.broker.to_string())?;

    let setup = producers::Setup {
        plan: &clients.producer_plan,
        driver: &clients.producers,
        dir,
        seed,
        recorder,
        counters: &counters,
    };
    let signals_producers = faults.iter().any(Window::acts_on_producers);
    let prepared = producers::prepare(&setup, signals_producers).await?;
    let activity = Arc::new(chaos::Activity::default());
    let start_ns = now_ns();
    let load_start = Instant::now();
    let phase = Phase::LoadStart {
        warmup_ns: w.load.warmup.as_nanos(),
        duration_ns: w.load.duration.as_nanos(),
    };
    recorder.record(Event::Phase { t: start_ns, phase });
    let producers = prepared.start(&setup, start_ns)?;

    let scope = chaos::Scope {
        fleet: fleet.clone(),
        producers: producers
            .fleet()
            .map(|f| f as Arc<dyn chaos::process::Processes>),
        control: plan
            .target
            .control(plan.broker)
            .cloned()
            .unwrap_or_default(),
        control_dir: plan.target.dir.clone(),
        seed,
        proxy: clients.proxy.clone(),
        activity: activity.clone(),
    };
    let chaos_task = tokio::spawn(chaos::run(faults, scope, recorder.clone(), load_start));
    let mut watchdog = Watchdog::new(w.run.stall_timeout.0, start_ns);
    let bar = progress_bar(show_progress, plan, w.load.duration.0);
    let load_end = start_ns + w.load.duration.as_nanos();
    let mut interrupted = false;
    // Load phase: until the schedule ends (plus the in-flight tail) or Ctrl-C.
    while !producers.finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = now_ns();
        update_bar(
            &bar,
            &counters,
            now.saturating_sub(start_ns).min(load_end - start_ns),
            "load",
        );
        watchdog.check(&counters, &activity, &fleet);
        if stop.requested() && !interrupted {
            interrupted = true;
            recorder.record(Event::Phase {
                t: now,
                phase: Phase::Interrupted,
            });
            producers.stop().await;
        }
    }
    producers.join().await?;
    recorder.record(Event::Phase {
        t: now_ns(),
        phase: Phase::LoadEnd,
    });

    // Drain: until `drain_patience` passes without news, always bounded by `drain_timeout`.
    let drain_start = Instant::now();
    loop {
        let now = now_ns();
        let silent = Duration::from_nanos(
            now.saturating_sub(
                counters
                    .last_delivery_ns
                    .load(Ordering::Relaxed)
                    .max(start_ns),
            ),
        );
        let all_in =
            counters.delivered.load(Ordering::Relaxed) >= counters.acked.load(Ordering::Relaxed);
        let patience = drain_patience(&w.run, interrupted, all_in);
        if silent >= patience {
            break;
        }
        if drain_start.elapsed() >= w.run.drain_timeout.0 {
            eprintln!(
                "warning: {}: drain stopped after drain_timeout ({})",
                plan.broker, w.run.drain_timeout
            );
            break;
        }
        if stop.requested() && !interrupted {
            interrupted = true;
            recorder.record(Event::Phase {
                t: now,
                phase: Phase::Interrupted,
            });
        }
        update_bar(&bar, &counters, load_end - start_ns, "drain");
        watchdog.check(&counters, &activity, &fleet);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Faults whose undo lies beyond the drain still get undone (a paused worker resumed, a killed
    // broker restarted), unless the run was interrupted.
    if interrupted {
        chaos_task.abort();
    } else if tokio::time::timeout(w.run.drain_timeout.0, chaos_task)
        .await
        .is_err()
    {
        eprintln!(
            "warning: {}: fault schedule still running after drain_timeout; abandoning it",
            plan.broker
        );
    }
    tokio::task::spawn_blocking(move || {
        if let Ok(mut f) = fleet.lock() {
            f.stop_all(Duration::from_secs(10));
        }
    })
    .await?;
    recorder.record(Event::Phase {
        t: now_ns(),
        phase: Phase::DrainEnd,
    });
    // Every fault is undone and the consumers are gone: read what the broker still holds, with
    // fresh clients and straight to the broker (`plan`, not the proxied plans).
    if interrupted {
        recorder.record(Event::FinalReadDone {
            t: now_ns(),
            outcome: FinalReadOutcome::Failed,
            read: 0,
            detail: "not run: the run was interrupted".into(),
        });
    } else {
        bar.set_message("final read: reading what the broker still stores");
        let stop = stop.clone();
        final_read::verify(plan, dir, recorder, &counters, move || stop.requested()).await?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// How long the drain waits without news before it ends: briefly when interrupted;
/// `drain_quiet` once everything acknowledged has been processed (late duplicates still count);
/// `drain_missing` while some are missing (a rebalance can stall delivery for a while), but at
/// least long enough for the stall watchdog to replace a wedged consumer first.
fn drain_patience(run: &RunOptions, interrupted: bool, all_in: bool) -> Duration {
    if interrupted {
        Duration::from_secs(1)
    } else if all_in {
        run.drain_quiet.0
    } else {
        run.drain_missing
            .0
            .max(run.stall_timeout.0 + Duration::from_secs(1))
    }
}

/// The stall watchdog: when acknowledged messages wait, every fault has healed and no consumer
/// has processed anything for `stall_timeout`, every consumer is told (SIGUSR1) to replace its
/// client, as an application's own watchdog would. A harness whose client wedged after a fault
/// must not make the broker look lossy. Each replacement is a `Reconnect` in the history.
struct Watchdog {
    timeout: Duration,
    /// ns: the load's start, then the last time the watchdog acted.
    since: u64,
}

impl Watchdog {
    fn new(timeout: Duration, start_ns: u64) -> Watchdog {
        Watchdog {
            timeout,
            since: start_ns,
        }
    }

    fn check(
        &mut self,
        counters: &Counters,
        activity: &chaos::Activity,
        fleet: &std::sync::Mutex<Fleet>,
    ) {
        let waiting =
            counters.acked.load(Ordering::Relaxed) > counters.delivered.load(Ordering::Relaxed);
        let progress = counters
            .last_delivery_ns
            .load(Ordering::Relaxed)
            .max(activity.last_end_ns());
        if !self.due(now_ns(), activity.any_active(), waiting, progress) {
            return;
        }
        if let Ok(f) = fleet.lock() {
            for index in f.alive() {
                let _ = f.signal(index, nix::sys::signal::Signal::SIGUSR1);
            }
        }
    }

    /// Whether to act now: messages wait, no fault is active, and nothing has happened for
    /// `timeout` since the last processing, the last fault's end or the last time it acted.
    fn due(&mut self, now: u64, fault_active: bool, waiting: bool, last_progress: u64) -> bool {
        let quiet_since = last_progress.max(self.since);
        if fault_active
            || !waiting
            || now.saturating_sub(quiet_since) < self.timeout.as_nanos() as u64
        {
            return false;
        }
        self.since = now;
        true
    }
}

fn progress_bar(show: bool, plan: &Plan, duration: Duration) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(duration.as_millis() as u64);
    let style = ProgressStyle::with_template("{prefix:>9} [{bar:30}] {elapsed:>4} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(plan.broker.to_string());
    bar
}

fn update_bar(bar: &ProgressBar, c: &Counters, elapsed_ns: u64, phase: &str) {
    bar.set_position(elapsed_ns / 1_000_000);
    bar.set_message(format!(
        "{phase}: sent {} acked {} failed {} delivered {}",
        c.sent.load(Ordering::Relaxed),
        c.acked.load(Ordering::Relaxed),
        c.failed.load(Ordering::Relaxed) + c.indeterminate.load(Ordering::Relaxed),
        c.delivered.load(Ordering::Relaxed)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_drain_waits_longer_for_missing_messages_than_for_quiet() {
        use crate::workload::units::Dur;
        let mut run = RunOptions {
            drain_quiet: Dur::secs(3),
            drain_missing: Dur::secs(5),
            stall_timeout: Dur::secs(20),
            ..Default::default()
        };
        assert_eq!(drain_patience(&run, false, true), Duration::from_secs(3));
        // Missing messages: the watchdog (20 s) gets its turn before the drain gives up.
        assert_eq!(drain_patience(&run, false, false), Duration::from_secs(21));
        run.drain_missing = Dur::secs(40);
        assert_eq!(drain_patience(&run, false, false), Duration::from_secs(40));
        assert_eq!(drain_patience(&run, true, false), Duration::from_secs(1));
    }

    #[test]
    fn the_watchdog_acts_only_on_a_quiet_backlog_after_every_fault_healed() {
        let mut w = Watchdog::new(Duration::from_secs(10), 0);
        // Messages wait and nothing was processed for 10 s: act, then not again for 10 s.
        assert!(w.due(10 * S, false, true, 0));
        assert!(!w.due(15 * S, false, true, 0));
        assert!(w.due(20 * S, false, true, 0));
        // Nothing waiting, or a fault still active: never.
        assert!(!w.due(60 * S, false, false, 0));
        assert!(!w.due(60 * S, true, true, 0));
        // Counted from the last processing or fault end, whichever is later.
        assert!(!w.due(65 * S, false, true, 58 * S));
        assert!(w.due(68 * S, false, true, 58 * S));
    }
}
