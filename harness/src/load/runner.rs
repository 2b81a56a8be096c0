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
use super::process_fleet::{self, Fleet, Role};
use super::producer_group;
use super::Counters;
use crate::chaos::proxy::{Group, Proxy};
use crate::chaos::{self, schedule::Window};
use crate::driver::{self, Plan};
use crate::history::{self, now_ns, Event, FinalReadOutcome, Phase, Recorder};
use crate::workload::{InFlight, RunOptions};

/// What a finished (or interrupted) run of one broker left behind.
#[derive(Debug, Clone)]
pub struct BrokerRun {
    pub history: PathBuf,
    pub product: String,
    pub client_settings: std::collections::BTreeMap<String, String>,
    pub interrupted: bool,
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
    progress: Option<String>,
) -> Result<BrokerRun> {
    anyhow::ensure!(
        plan.workload.load.rate.single().is_some(),
        "a stepped rate is run as its steps, one workload per rate (Workload::at)"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let driver: Arc<dyn driver::Driver> = Arc::from(driver::driver(plan.clone())?);
    // Nothing is created on the broker before this succeeds; an unreachable broker fails here.
    driver.setup().await?;
    let product = driver.product().await;
    let mut client_settings: Vec<(String, String)> = driver.client_settings();
    // The producers' window is a client setting too, and at `rate: max` the driver picks it.
    let window = plan.workload.load.window(driver.max_rate_window());
    client_settings.push((
        "max_in_flight".into(),
        match window {
            InFlight::Auto => format!("auto, from {}", driver.auto_window_start()),
            InFlight::Fixed(n) => n.to_string(),
        },
    ));
    let client_settings = client_settings.into_iter().collect();

    let history_path = dir.join("history.bin");
    let (recorder, writer) = history::create(&history_path)?;
    recorder.record(Event::Header {
        run_id: plan.run_id.clone(),
        broker: plan.broker.to_string(),
        t: now_ns(),
    });

    let result = match Clients::new(&plan, &driver, &faults, seed) {
        Ok(clients) => {
            let run = Run {
                plan: &plan,
                dir,
                seed,
                recorder: &recorder,
                stop: stop.clone(),
                counters: Arc::new(Counters::default()),
                bar: progress_bar(progress, plan.workload.load.duration.0),
                interrupted: false,
                backlog: plan.workload.load.backlog_messages(),
            };
            drive(run, clients, faults).await
        }
        Err(e) => Err(e),
    };
    if !plan.workload.run.keep {
        if let Err(e) = driver.teardown().await {
            crate::note!(
                "warning: {}: could not delete the run's resources: {e:#}",
                plan.broker
            );
        }
    }
    drop(recorder);
    writer.finish()?;
    result?;
    Ok(BrokerRun {
        history: history_path,
        product,
        client_settings,
        interrupted: stop.requested(),
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
        let upstream = driver::section(&plan.target, &plan.broker)?.upstream()?;
        let wire = plan.broker()?.wire.map(|make| make());
        let proxy = Proxy::start(&upstream, wire, plan.workload.run.proxy_port, seed)?;
        let via = |g: Group| -> Result<Arc<Plan>> {
            if !proxied(g) {
                return Ok(plan.clone());
            }
            let mut p = (**plan).clone();
            p.target = driver::through_proxy(&plan.target, &plan.broker, proxy.address(g))?;
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

/// Beyond each consumer's own ready timeout: starting the worker processes themselves, up to 64
/// of them on a small machine that also runs the broker.
const PROCESS_START: Duration = Duration::from_secs(10);

/// What every phase of one run needs.
struct Run<'a> {
    plan: &'a Arc<Plan>,
    dir: &'a Path,
    seed: u64,
    recorder: &'a Recorder,
    stop: StopSignal,
    counters: Arc<Counters>,
    bar: ProgressBar,
    /// Ctrl-C came: the phases left wind down quickly and the final read is skipped.
    interrupted: bool,
    /// Acknowledged messages to wait for before the consumers start (`load.backlog`); None
    /// once they have started, or when the workload builds no backlog.
    backlog: Option<u64>,
}

/// The run once its clients are set up, as its phases: consumers, producers and faults start;
/// the load runs; the drain waits for what is still due; the faults settle; the consumers stop;
/// the final read looks at what the broker still stores.
async fn drive(mut run: Run<'_>, clients: Clients, faults: Vec<Window>) -> Result<()> {
    let (plan, recorder) = (run.plan, run.recorder);
    let consumers = run.start_consumers(&clients).await?;
    let signals_producers = faults.iter().any(chaos::faults::acts_on_producers);
    let counters = run.counters.clone();
    let setup = producer_group::Setup {
        plan: &clients.producer_plan,
        driver: &clients.producers,
        dir: run.dir,
        seed: run.seed,
        recorder,
        counters: &counters,
    };
    let prepared = producer_group::prepare(&setup, signals_producers).await?;
    let load = run.start_load(prepared, &setup)?;
    let usage = run.start_usage();
    let view = run.start_view();
    let activity = Arc::new(chaos::Activity::default());
    let fault_task = run.start_faults(faults, &clients, &consumers, &load, &activity);
    let mut watchdog = Watchdog::new(plan.workload.run.stall_timeout.0, load.start_ns);
    run.run_load(&load, &mut watchdog, &activity, &consumers)
        .await?;
    let start_ns = run.end_load(load).await?;
    // A backlog the load did not fill is still consumed, in the drain.
    run.start_backlogged_consumers(&consumers, &mut watchdog, true)?;
    run.drain(start_ns, &mut watchdog, &activity, &consumers)
        .await;
    run.settle_faults(fault_task).await;
    // What the final read costs the broker is the harness's doing, not the workload's.
    if let Some(u) = usage {
        u.stop().await;
    }
    if let Some(v) = view {
        v.stop().await;
    }
    run.stop_consumers(consumers).await?;
    run.read_store();
    run.final_read().await?;
    run.bar.finish_and_clear();
    Ok(())
}

/// The load as it runs: its producers and when it started.
struct Load {
    producers: producer_group::Producers,
    start_ns: u64,
    started: Instant,
}

type Consumers = Arc<std::sync::Mutex<Fleet>>;

impl Run<'_> {
    fn record_interrupt(&mut self, now: u64) -> bool {
        if self.stop.requested() && !self.interrupted {
            self.interrupted = true;
            self.recorder.record(Event::Phase {
                t: now,
                phase: Phase::Interrupted,
            });
            return true;
        }
        false
    }

    /// The consumer processes, each ready to receive before the load starts.
    async fn start_consumers(&self, clients: &Clients) -> Result<Consumers> {
        let (plan, w) = (self.plan, &self.plan.workload);
        let spec = super::worker::write_plan(self.dir, Role::Consumer, &clients.consumers)?;
        let fleet = Arc::new(std::sync::Mutex::new(Fleet::new(
            Role::Consumer,
            spec,
            self.dir.to_owned(),
            self.recorder.clone(),
            self.counters.clone(),
        )));
        // Building a backlog, the consumers start once it is built.
        let now = if self.backlog.is_some() {
            0
        } else {
            w.consumers.count
        };
        {
            let mut f = process_fleet::lock(&fleet)?;
            for _ in 0..now {
                f.spawn()?;
            }
        }
        let ready_deadline = Instant::now() + plan.ready_timeout() + PROCESS_START;
        let stop = self.stop.clone();
        process_fleet::wait_ready(
            &fleet,
            &self.counters.ready_workers,
            now as u64,
            ready_deadline,
            || stop.requested(),
        )
        .await
        .with_context(|| plan.broker.to_string())?;
        Ok(fleet)
    }

    /// t=0: the producers start on their schedule.
    fn start_load(
        &self,
        prepared: producer_group::Prepared,
        setup: &producer_group::Setup<'_>,
    ) -> Result<Load> {
        let w = &self.plan.workload;
        let start_ns = now_ns();
        let started = Instant::now();
        let phase = Phase::LoadStart {
            warmup_ns: w.load.warmup.as_nanos(),
            duration_ns: w.load.duration.as_nanos(),
        };
        self.recorder.record(Event::Phase { t: start_ns, phase });
        if w.consumers.count == 0 {
            self.recorder.record(Event::Phase {
                t: start_ns,
                phase: Phase::ProducersOnly,
            });
        }
        let producers = prepared.start(setup, start_ns)?;
        Ok(Load {
            producers,
            start_ns,
            started,
        })
    }

    /// What the broker costs, sampled beside the load when the target says where its pid is
    /// (or, for a container, how to stream its `docker stats`).
    fn start_usage(&self) -> Option<super::Beside> {
        use super::broker_usage::{sample, sample_stats};
        let plan = self.plan;
        let control = driver::control(&plan.target, &plan.broker);
        let recorder = self.recorder.clone();
        if let Some(pid_file) = control.pid_file {
            return Some(sample(plan.target.dir.join(pid_file), recorder));
        }
        let stats = control.stats?;
        Some(sample_stats(stats, plan.target.dir.clone(), recorder))
    }

    /// The cluster as the broker describes it, asked beside the load when the target has a
    /// `view` command.
    fn start_view(&self) -> Option<super::Beside> {
        let plan = self.plan;
        let view = driver::control(&plan.target, &plan.broker).view?;
        Some(super::cluster_view::watch(
            view.replace("{prefix}", &plan.resource_prefix),
            plan.target.dir.clone(),
            self.recorder.clone(),
        ))
    }

    /// The fault schedule, beside the load, timed from its start.
    fn start_faults(
        &self,
        faults: Vec<Window>,
        clients: &Clients,
        consumers: &Consumers,
        load: &Load,
        activity: &Arc<chaos::Activity>,
    ) -> tokio::task::JoinHandle<()> {
        let plan = self.plan;
        let scope = chaos::Scope {
            fleet: consumers.clone(),
            producers: load
                .producers
                .fleet()
                .map(|f| f as Arc<dyn chaos::process::Processes>),
            control: driver::control(&plan.target, &plan.broker),
            control_dir: plan.target.dir.clone(),
            seed: self.seed,
            prefix: plan.resource_prefix.clone(),
            proxy: clients.proxy.clone(),
            activity: activity.clone(),
        };
        tokio::spawn(chaos::run(
            faults,
            scope,
            self.recorder.clone(),
            load.started,
        ))
    }

    /// Until the schedule ends (plus the in-flight tail) or Ctrl-C.
    async fn run_load(
        &mut self,
        load: &Load,
        watchdog: &mut Watchdog,
        activity: &chaos::Activity,
        consumers: &Consumers,
    ) -> Result<()> {
        let length = self.plan.workload.load.duration.as_nanos();
        while !load.producers.finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = now_ns();
            let elapsed = now.saturating_sub(load.start_ns).min(length);
            update_bar(&self.bar, &self.counters, elapsed, "load");
            self.start_backlogged_consumers(consumers, watchdog, false)?;
            watchdog.check(&self.counters, activity, consumers);
            if self.record_interrupt(now) {
                load.producers.stop().await;
            }
        }
        Ok(())
    }

    /// Start the consumers of a backlog run once the backlog is built (or, with `now`,
    /// whatever it holds). They are not waited for: catching up includes their joining.
    fn start_backlogged_consumers(
        &mut self,
        consumers: &Consumers,
        watchdog: &mut Watchdog,
        now: bool,
    ) -> Result<()> {
        let Some(wanted) = self.backlog else {
            return Ok(());
        };
        let acked = self.counters.acked.load(Ordering::Relaxed);
        if acked < wanted && !now {
            return Ok(());
        }
        self.backlog = None;
        let backlog = acked.saturating_sub(self.counters.delivered.load(Ordering::Relaxed));
        let t = now_ns();
        self.recorder.record(Event::Phase {
            t,
            phase: Phase::ConsumersStart { backlog },
        });
        // The consumers were stopped on purpose: no quiet so far is theirs to answer for.
        watchdog.since = t;
        let mut f = process_fleet::lock(consumers)?;
        for _ in 0..self.plan.workload.consumers.count {
            f.spawn()?;
        }
        Ok(())
    }

    /// The producers have finished their schedule (or were stopped): wait for their last
    /// outcomes. Returns when the load started.
    async fn end_load(&self, load: Load) -> Result<u64> {
        load.producers.join().await?;
        self.recorder.record(Event::Phase {
            t: now_ns(),
            phase: Phase::LoadEnd,
        });
        Ok(load.start_ns)
    }

    /// Until `drain_patience` passes without news, always bounded by `drain_timeout`.
    async fn drain(
        &mut self,
        start_ns: u64,
        watchdog: &mut Watchdog,
        activity: &chaos::Activity,
        consumers: &Consumers,
    ) {
        let run = &self.plan.workload.run;
        let length = self.plan.workload.load.duration.as_nanos();
        let drain_start = Instant::now();
        // Nothing to drain without consumers: the final read checks what was stored.
        if self.plan.workload.consumers.count == 0 {
            return;
        }
        loop {
            let now = now_ns();
            let last = self.counters.last_delivery_ns.load(Ordering::Relaxed);
            let silent = Duration::from_nanos(now.saturating_sub(last.max(start_ns)));
            let all_in = self.counters.delivered.load(Ordering::Relaxed)
                >= self.counters.acked.load(Ordering::Relaxed);
            if silent >= drain_patience(run, self.interrupted, all_in) {
                break;
            }
            if drain_start.elapsed() >= run.drain_timeout.0 {
                crate::note!(
                    "warning: {}: drain stopped after drain_timeout ({})",
                    self.plan.broker,
                    run.drain_timeout
                );
                break;
            }
            self.record_interrupt(now);
            update_bar(&self.bar, &self.counters, length, "drain");
            watchdog.check(&self.counters, activity, consumers);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Faults whose undo lies beyond the drain still get undone (a paused worker resumed, a
    /// killed broker restarted), unless the run was interrupted.
    async fn settle_faults(&self, fault_task: tokio::task::JoinHandle<()>) {
        let timeout = self.plan.workload.run.drain_timeout.0;
        if self.interrupted {
            fault_task.abort();
        } else if tokio::time::timeout(timeout, fault_task).await.is_err() {
            crate::note!(
                "warning: {}: fault schedule still running after drain_timeout; abandoning it",
                self.plan.broker
            );
        }
    }

    async fn stop_consumers(&self, consumers: Consumers) -> Result<()> {
        tokio::task::spawn_blocking(move || {
            if let Ok(mut f) = consumers.lock() {
                f.stop_all(Duration::from_secs(10));
            }
        })
        .await?;
        self.recorder.record(Event::Phase {
            t: now_ns(),
            phase: Phase::DrainEnd,
        });
        Ok(())
    }

    /// The consumers are gone: when they deduplicate, what their own store holds is on record
    /// too (`StoreHolds`), as evidence of processing that a consumer killed between its commit
    /// and its `Processed` record leaves nowhere else.
    fn read_store(&self) {
        if self.plan.workload.consumers.dedupe != crate::workload::Dedupe::ProcessedIds {
            return;
        }
        let path = self.dir.join(super::dedupe::STORE_FILE);
        let (complete, rows, detail) = match super::dedupe::rows(&path) {
            Ok((rows, foreign)) => {
                let n = rows.len() as u64;
                for (id, consumer) in rows {
                    self.recorder.record(Event::StoreHolds {
                        t: now_ns(),
                        consumer,
                        id,
                    });
                }
                let detail = match foreign {
                    0 => String::new(),
                    f => format!("{f} rows hold ids this harness never writes"),
                };
                (true, n, detail)
            }
            Err(e) => (false, 0, format!("{e:#}")),
        };
        self.recorder.record(Event::StoreRead {
            t: now_ns(),
            complete,
            rows,
            detail,
        });
    }

    /// Every fault is undone and the consumers are gone: read what the broker still holds, with
    /// fresh clients and straight to the broker (`plan`, not the proxied plans).
    async fn final_read(&self) -> Result<()> {
        if self.interrupted {
            self.recorder.record(Event::FinalReadDone {
                t: now_ns(),
                outcome: FinalReadOutcome::Failed,
                read: 0,
                detail: "not run: the run was interrupted".into(),
            });
            return Ok(());
        }
        self.bar
            .set_message("final read: reading what the broker still stores");
        let stop = self.stop.clone();
        final_read::verify(
            self.plan,
            self.dir,
            self.recorder,
            &self.counters,
            move || stop.requested(),
        )
        .await
    }
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

/// A bar labelled `label` (None: hidden).
fn progress_bar(label: Option<String>, duration: Duration) -> ProgressBar {
    let Some(label) = label else {
        return ProgressBar::hidden();
    };
    let bar = ProgressBar::new(duration.as_millis() as u64);
    let style = ProgressStyle::with_template("{prefix:>9} [{bar:30}] {elapsed:>4} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(label);
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
