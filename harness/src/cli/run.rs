//! `brokerbench run` and `brokerbench report`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::sweep::Stepper;
use super::Exit;
use crate::check::{self, expect, inconclusive};
use crate::driver::Plan;
use crate::load::runner::{run_broker, StopSignal};
use crate::report::suite::SuiteRun;
use crate::report::sweep::{Curve, Step};
use crate::report::{summary, BrokerResult, RunResult};
use crate::target::PreRun;
use crate::target::TargetProfile;
use crate::workload::steps::rate_label;
use crate::workload::{At, BrokerKind, Workload};

pub async fn run(
    args: Vec<PathBuf>,
    target: PathBuf,
    out: PathBuf,
    only: Vec<BrokerKind>,
    repeat: Option<u32>,
    quiet: bool,
) -> i32 {
    // Validate everything before touching any broker.
    let (job, profile) = match validated(&args, &target, repeat) {
        Ok(both) => both,
        Err(exit) => return exit.code(),
    };
    warn_of_leftovers(profile.clone());
    let (stop, signalled) = stop_on_signal();

    let brokers_of = |w: &Workload| -> Vec<BrokerKind> {
        w.brokers
            .iter()
            .filter(|b| only.is_empty() || only.contains(b))
            .filter(|b| job.brokers.is_empty() || job.brokers.contains(b))
            .cloned()
            .collect()
    };
    let runs: Vec<(&PathBuf, &Workload, Vec<BrokerKind>)> = (0..job.repeat)
        .flat_map(|_| job.workloads.iter())
        .map(|(f, w)| (f, w, brokers_of(w)))
        .collect();
    let progress = Progress::new(&runs, !quiet);
    let suite = job.suite.as_ref().map(|name| SuiteRun {
        suite: name.clone(),
        description: job.description.clone(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        runs: Vec::new(),
        errors: Vec::new(),
        curves: Vec::new(),
    });
    let dir = suite_dir(&job, suite.as_ref(), out, progress.total);

    let mut done = Done {
        left_faulted: BTreeMap::new(),
        exit: Exit::Pass,
        results: Vec::new(),
        suite,
        dir: &dir,
        profile: &profile,
        stop: stop.clone(),
        progress,
    };
    // Repeats go round the whole list, so the machine's drift spreads over every workload.
    for (file, w, brokers) in runs {
        match w.load.rate.steps() {
            None => {
                let outcome = done.run_workload(file, w, None, &brokers).await;
                done.absorb(&w.name, outcome, None);
            }
            Some(steps) => done.run_steps(file, w, steps, &brokers).await,
        }
        if stop.requested() {
            break;
        }
    }
    if done.suite.is_some() {
        crate::say!("suite: {}", dir.join("index.html").display());
    }
    if stop.requested() {
        done.exit = Exit::Interrupted(signalled.load(Ordering::SeqCst));
    }
    done.exit.code()
}

/// Where the job's runs go: `out`, or a suite's own directory in it (announced).
fn suite_dir(
    job: &super::suite::Job,
    suite: Option<&SuiteRun>,
    out: PathBuf,
    runs: usize,
) -> PathBuf {
    let Some(s) = suite else { return out };
    let dir = out.join(new_run_id(&s.suite));
    crate::note!(
        "suite {}: {} workloads × {} repeats, {runs} broker runs in all; output in {}",
        s.suite,
        job.workloads.len(),
        job.repeat,
        dir.display()
    );
    dir
}

/// The job the arguments name and the target profile, each checked, and the workloads checked
/// against the profile; nothing has touched a broker yet.
fn validated(
    args: &[PathBuf],
    target: &Path,
    repeat: Option<u32>,
) -> Result<(super::suite::Job, TargetProfile), Exit> {
    let job = super::suite::expand(args, repeat).map_err(|e| {
        crate::note!("{e}");
        Exit::Invalid
    })?;
    let profile = TargetProfile::load(target, &[crate::driver::check_target]).map_err(|e| {
        crate::note!("error: {e:#}");
        Exit::Invalid
    })?;
    let problems: Vec<String> = job
        .workloads
        .iter()
        .flat_map(|(f, w)| pre_run_problems(f, w, &profile))
        .collect();
    if !problems.is_empty() {
        crate::note!("{}", problems.join("\n"));
        return Err(Exit::Invalid);
    }
    Ok((job, profile))
}

/// Leftovers of earlier runs (a coordinator killed with SIGKILL leaves its queues behind): one
/// line, while the first run starts.
fn warn_of_leftovers(profile: TargetProfile) {
    tokio::spawn(async move {
        let n = super::leftovers::count(&profile).await;
        if n > 0 {
            crate::note!(
                "warning: {n} topics, queues or groups left by earlier runs on target `{}`'s brokers (`brokerbench leftovers` lists them, `--delete` removes them)",
                profile.name
            );
        }
    });
}

/// The job's stop signal, raised by SIGINT or SIGTERM, and the exit code that says which
/// (0 until one came).
fn stop_on_signal() -> (StopSignal, Arc<AtomicI32>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let signalled = Arc::new(AtomicI32::new(0));
    let seen = signalled.clone();
    tokio::spawn(async move {
        let Some(code) = interrupt().await else {
            return;
        };
        crate::note!("\ninterrupted: stopping producers, draining briefly, keeping the history");
        seen.store(code, Ordering::SeqCst);
        let _ = stop_tx.send(true);
    });
    (StopSignal(stop_rx), signalled)
}

/// Wait for SIGINT (Ctrl-C) or SIGTERM; the exit code that reports it (130 or 143). None when
/// neither can be waited for.
async fn interrupt() -> Option<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => t.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.ok().map(|()| 130),
        _ = sigterm => Some(143),
    }
}

/// What the job has done so far: its exit code, its runs, and its suite page, rewritten after
/// every run so that an interrupted suite still has one.
struct Done<'a> {
    profile: &'a TargetProfile,
    stop: StopSignal,
    progress: Progress,
    exit: Exit,
    /// Brokers an earlier run of the job left faulted (a fault's undo failed), with what was
    /// left: the next run against one first checks that it answers.
    left_faulted: BTreeMap<BrokerKind, String>,
    results: Vec<RunResult>,
    suite: Option<SuiteRun>,
    dir: &'a Path,
}

impl Done<'_> {
    /// A stepped rate: one run per step, and a curve of them all on the suite's page.
    async fn run_steps(
        &mut self,
        file: &Path,
        w: &Workload,
        steps: &crate::workload::steps::Steps,
        brokers: &[BrokerKind],
    ) {
        let mut stepper = Stepper::new(w, steps, brokers);
        let curve_at = self.suite.as_ref().map_or(0, |s| s.curves.len());
        'steps: loop {
            let round = stepper.round();
            if round.is_empty() {
                break;
            }
            for (rate, on) in round {
                let (step_w, step) = stepper.step(rate);
                let outcome = self.run_workload(file, &step_w, Some(step), &on).await;
                if let Ok(result) = &outcome {
                    stepper.record(result);
                }
                self.absorb(&step_w.name, outcome, Some((curve_at, stepper.curve())));
                if self.stop.requested() {
                    break 'steps;
                }
            }
        }
        let curve = stepper.curve();
        crate::say_part!("{}", summary::render_curve(&curve));
        self.exit = self.exit.max(Exit::of(curve.status()));
    }

    /// Take one run's outcome; `curve` is the stepped workload's curve so far, at its index.
    fn absorb(&mut self, name: &str, outcome: Result<RunResult>, curve: Option<(usize, Curve)>) {
        match outcome {
            Ok(result) => {
                crate::say_part!("{}", summary::render(&result));
                // A broker that could not be reached measured nothing: inconclusive.
                self.exit = self.exit.max(Exit::of(result.status()));
                self.results.push(result);
            }
            Err(e) => {
                // The harness could not run it (or write its results): nothing was judged.
                crate::note!("error: {e:#}");
                self.exit = self.exit.max(Exit::Inconclusive);
                if let Some(s) = &mut self.suite {
                    s.errors.push(format!("{name}: {e:#}"));
                }
            }
        }
        if let Some(s) = &mut self.suite {
            if let Some((at, curve)) = curve {
                match s.curves.get_mut(at) {
                    Some(c) => *c = curve,
                    None => s.curves.push(curve),
                }
            }
            s.runs = self.results.iter().map(|r| r.run_id.clone()).collect();
            if let Err(e) = crate::report::suite::write(self.dir, s, &self.results) {
                crate::note!("error: writing the suite's page: {e:#}");
                self.exit = self.exit.max(Exit::Inconclusive);
            }
        }
    }
}

/// Which run of the job is going, and roughly how long the rest will take, for the progress
/// bar's label.
struct Progress {
    show: bool,
    done: usize,
    total: usize,
    /// Per broker run, in order: the seconds it is expected to take, before any has run.
    expected: Vec<f64>,
    started: std::time::Instant,
}

/// What a run takes beyond its load: setup, consumers joining, draining, the final read.
const RUN_OVERHEAD_S: f64 = 15.0;

impl Progress {
    fn new(runs: &[(&PathBuf, &Workload, Vec<BrokerKind>)], show: bool) -> Progress {
        let expected = runs
            .iter()
            .flat_map(|(_, w, b)| {
                let runs = w.load.rate.steps().map_or(1, |s| s.runs() as usize);
                std::iter::repeat_n(
                    w.load.duration.0.as_secs_f64() + RUN_OVERHEAD_S,
                    b.len() * runs,
                )
            })
            .collect::<Vec<_>>();
        Progress {
            show,
            done: 0,
            total: expected.len(),
            expected,
            started: std::time::Instant::now(),
        }
    }

    /// The label of the next broker run, or None when the bar is hidden.
    fn next(&mut self, w: &Workload, broker: &BrokerKind) -> Option<String> {
        self.done += 1;
        if !self.show {
            return None;
        }
        if self.total <= 1 {
            return Some(broker.to_string());
        }
        let left = self.left(self.started.elapsed().as_secs_f64());
        Some(format!(
            "{}/{} {} · {broker} (~{} min left)",
            self.done,
            self.total,
            w.name,
            (left / 60.0).ceil()
        ))
    }

    /// Seconds left from the start of run `done`, `elapsed` seconds into the job: the runs still
    /// to go as expected, scaled by how the runs so far compared with their expectation (drains
    /// and final reads vary with the broker and the faults more than the overhead guesses).
    fn left(&self, elapsed: f64) -> f64 {
        let finished = self.done.saturating_sub(1);
        let remaining: f64 = self.expected.iter().skip(finished).sum();
        let expected_so_far: f64 = self.expected.iter().take(finished).sum();
        if finished == 0 || expected_so_far <= 0.0 {
            return remaining;
        }
        remaining * (elapsed / expected_so_far)
    }
}

/// The checks of a workload against its target's control commands, made before anything runs:
/// the faults' commands, and those the brokers' options call on.
const PRE_RUN: &[PreRun] = &[
    crate::chaos::faults::controls_present,
    crate::driver::option_controls_present,
];

/// Every pre-run problem of workload file `file`, each as `file:line:col: message`.
fn pre_run_problems(file: &Path, w: &Workload, profile: &TargetProfile) -> Vec<String> {
    let controls = crate::driver::controls(profile, &w.brokers);
    let src = std::fs::read_to_string(file).unwrap_or_default();
    PRE_RUN
        .iter()
        .flat_map(|rule| rule(w, &controls))
        .map(|(at, msg)| {
            let (l, c) = match at {
                At::Span(s) => (s.line(), s.column()),
                At::Path(p) => crate::workload::locate(&src, &p),
            };
            format!("{}:{l}:{c}: {msg}", file.display())
        })
        .collect()
}

fn new_run_id(name: &str) -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = stamp
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    let slug = crate::workload::slug(name, 30);
    format!(
        "{}-{}-{}-{:04x}",
        &stamp[..8.min(stamp.len())],
        &stamp[8.min(stamp.len())..],
        slug,
        rand::random::<u16>()
    )
}

#[allow(clippy::too_many_arguments)]
impl Done<'_> {
    /// One run of workload `w` (read from `file`; `step`: one step of a stepped rate) against
    /// `brokers`, one after another, its result.json rewritten after each.
    async fn run_workload(
        &mut self,
        file: &Path,
        w: &Workload,
        step: Option<Step>,
        brokers: &[BrokerKind],
    ) -> Result<RunResult> {
        let run_id = new_run_id(&w.name);
        // While it runs, `leftovers` knows its resources are a live run's.
        let prefix = crate::driver::resource_prefix(&run_id);
        let _live = super::live::register(&prefix, w.run.keep, &self.profile.name, brokers)
            .map_err(|e| {
                crate::note!(
                    "warning: {e:#}; `brokerbench leftovers` will not know this run is live"
                )
            })
            .ok();
        let dir = self.dir.join(&run_id);
        write_run_dir(&dir, file, w, step.is_some(), self.profile)?;
        let seed = w.run.seed.unwrap_or_else(rand::random);
        let names: Vec<&str> = brokers.iter().map(|b| b.as_str()).collect();
        crate::note!(
            "run {run_id}: {} against {} (seed {seed}); output in {}",
            w.name,
            names.join(", "),
            dir.display()
        );
        let mut result = RunResult::new(&run_id, w, seed, &self.profile.name);
        result.step = step;
        for broker in brokers {
            if self.stop.requested() {
                break;
            }
            let r = self.run_broker(&result, w, broker, &dir).await;
            result.interrupted |= r.1;
            result.brokers.push(r.0);
            result.write(&dir)?;
        }
        result.write(&dir)?;
        Ok(result)
    }

    /// `w`'s run (`so_far`) against one broker, into `dir`: its result, and whether it was
    /// interrupted. A broker an earlier run left faulted is first asked whether it answers.
    async fn run_broker(
        &mut self,
        so_far: &RunResult,
        w: &Workload,
        broker: &BrokerKind,
        dir: &Path,
    ) -> (BrokerResult, bool) {
        let run_id = &so_far.run_id;
        let preflight = match self.left_faulted.remove(broker) {
            Some(left) => match answers(self.profile, broker, &left).await {
                Ok(said) => Some(said),
                Err(e) => {
                    crate::note!("{broker}: {e:#}");
                    self.left_faulted.insert(broker.clone(), left);
                    return (BrokerResult::errored(broker, format!("{e:#}")), false);
                }
            },
            None => None,
        };
        let plan = Arc::new(Plan::new(run_id, broker.clone(), w, self.profile));
        let bdir = dir.join(broker.as_str());
        let specs: Vec<_> = w.faults.iter().map(|f| f.value.clone()).collect();
        let windows = crate::chaos::faults::windows(&specs, w.load.duration.0, so_far.seed);
        let progress = self.progress.next(w, broker);
        let ran = run_broker(
            plan,
            &bdir,
            so_far.seed,
            windows,
            self.stop.clone(),
            progress,
        );
        let (mut r, interrupted) = match ran.await {
            Ok(run) => {
                let mut r = checked(broker, run.product, &run.history, w);
                r.client_settings = run.client_settings;
                (r, run.interrupted)
            }
            Err(e) => {
                let history = bdir.join("history.bin");
                // A run that broke off mid-way still has a history worth checking: a loss it
                // saw is a loss, but nothing it did not get to can pass.
                if history.exists() {
                    let mut r = checked(broker, String::new(), &history, w);
                    broke_off(&mut r, w, format!("{e:#}"));
                    (r, false)
                } else {
                    (BrokerResult::errored(broker, format!("{e:#}")), false)
                }
            }
        };
        if let Some(said) = preflight {
            crate::note!("{broker}: {said}");
            r.preflight = Some(said);
        }
        if let Some(left) = left_faulted_by(&r, run_id) {
            self.left_faulted.insert(broker.clone(), left);
        }
        (r, interrupted)
    }
}

/// A run's directory, with the workload it ran (a step's own, at one rate: what `report`
/// rebuilds it from) and the target profile.
fn write_run_dir(
    dir: &Path,
    file: &Path,
    w: &Workload,
    step: bool,
    profile: &TargetProfile,
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating run directory {}", dir.display()))?;
    if step {
        let text = serde_saphyr::to_string(w).context("writing the step's workload")?;
        let head = format!(
            "# One step of {}, at {}.\n",
            file.display(),
            w.load.rate.single().map(rate_label).unwrap_or_default()
        );
        std::fs::write(dir.join("workload.yaml"), head + &text)
            .context("writing the step's workload into its run directory")?;
    } else {
        std::fs::copy(file, dir.join("workload.yaml"))
            .context("copying the workload into the run directory")?;
    }
    std::fs::write(dir.join("target.json"), serde_json::to_vec_pretty(profile)?)?;
    Ok(())
}

/// What run `run_id` left faulted on its broker: a fault whose undo failed.
fn left_faulted_by(r: &BrokerResult, run_id: &str) -> Option<String> {
    let m = r.metrics.as_ref()?;
    let f = m.timing.faults.iter().find(|f| f.undo_failed())?;
    Some(format!(
        "run {run_id} left it faulted: fault #{} ({}): {}",
        f.index, f.kind, f.detail
    ))
}

/// How long the target's `ready` command may take to say whether a broker answers.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether a broker an earlier run left faulted (`left`) answers again, through the target's
/// `ready` command: what was found, to say in the run that follows, or why it does not.
async fn answers(profile: &TargetProfile, broker: &BrokerKind, left: &str) -> Result<String> {
    let control = crate::driver::control(profile, broker);
    let Some(cmd) = control.command("ready") else {
        return Ok(format!(
            "{left}; target profile `{}` has no `ready` command for {broker}, so this run's own \
             connection is the check",
            profile.name
        ));
    };
    let asked = tokio::time::timeout(READY_TIMEOUT, crate::chaos::run_command(cmd, &profile.dir));
    match asked.await {
        Ok(Ok((_, took))) => Ok(format!(
            "{left}; checked before this run: `{cmd}` says it answers ({took:.1}s)"
        )),
        Ok(Err(e)) => anyhow::bail!("{left}; it does not answer now: {e:#}"),
        Err(_) => anyhow::bail!(
            "{left}; it does not answer now: `{cmd}` gave no answer within {READY_TIMEOUT:?}"
        ),
    }
}

/// Check one broker's history and judge the workload's expectations against it.
fn checked(broker: &BrokerKind, product: String, history: &Path, w: &Workload) -> BrokerResult {
    match check::check_history(history) {
        Ok(m) => {
            let untrusted = inconclusive::reasons(&m, &inconclusive::Plan::of(w));
            BrokerResult {
                broker: broker.clone(),
                product,
                client_settings: Default::default(),
                error: None,
                verdicts: expect::verdicts(&w.expect, &m, &untrusted),
                inconclusive: untrusted,
                metrics: Some(m),
                preflight: None,
            }
        }
        Err(e) => {
            let mut r =
                BrokerResult::errored(broker, format!("checking {}: {e:#}", history.display()));
            r.product = product;
            r
        }
    }
}

/// A run that broke off with `error` vouches for nothing it did not get to: every verdict
/// that held is not judged.
fn broke_off(r: &mut BrokerResult, w: &Workload, error: String) {
    r.inconclusive.push(format!("the run broke off: {error}"));
    if let Some(m) = &r.metrics {
        r.verdicts = expect::verdicts(&w.expect, m, &r.inconclusive);
    }
    r.error = Some(error);
}

/// Rebuild result.json and junit.xml from a run directory alone (workload + histories).
pub fn report(dir: &Path) -> i32 {
    match rebuild(dir) {
        Ok(result) => {
            crate::say_part!("{}", summary::render(&result));
            Exit::of(result.status()).code()
        }
        Err(e) => {
            crate::note!("error: {e:#}");
            Exit::Invalid.code()
        }
    }
}

fn rebuild(dir: &Path) -> Result<RunResult> {
    let w = super::load_workload(&dir.join("workload.yaml")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let previous = RunResult::read(&dir.join("result.json")).ok();
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Keep what only the original run knew (when, seed, target, machine); recompute the rest.
    let mut result = RunResult::new(&run_id, &w, 0, "");
    if let Some(p) = previous.as_ref() {
        result.started_at = p.started_at.clone();
        result.seed = p.seed;
        result.target = p.target.clone();
        result.interrupted = p.interrupted;
        result.environment = p.environment.clone();
        result.step = p.step.clone();
    }
    for broker in &w.brokers {
        let history = dir.join(broker.as_str()).join("history.bin");
        let before = previous
            .as_ref()
            .and_then(|p| p.brokers.iter().find(|b| &b.broker == broker));
        if !history.exists() {
            // A broker the run could not reach has no history: what the run said stands.
            if let Some(b) = before.filter(|b| b.error.is_some()) {
                result.brokers.push(b.clone());
            }
            continue;
        }
        let product = before.map(|b| b.product.clone()).unwrap_or_default();
        let mut r = checked(broker, product, &history, &w);
        r.client_settings = before
            .map(|b| b.client_settings.clone())
            .unwrap_or_default();
        // The run broke off with an error only the run knew: it still holds.
        if let Some(e) = before
            .and_then(|b| b.error.clone())
            .filter(|_| r.error.is_none())
        {
            broke_off(&mut r, &w, e);
        }
        result.brokers.push(r);
    }
    anyhow::ensure!(
        !result.brokers.is_empty(),
        "{} holds no broker history (expected <broker>/history.bin)",
        dir.display()
    );
    result.write(dir)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_learns_from_the_runs_so_far() {
        let mut p = Progress {
            show: true,
            done: 1,
            total: 4,
            expected: vec![60.0; 4],
            started: std::time::Instant::now(),
        };
        // Before any run has finished: the expectation as it stands.
        assert_eq!(p.left(0.0), 240.0);
        // Two runs took 150 s where 120 s were expected: the two left will take 25% longer too.
        p.done = 3;
        assert_eq!(p.left(150.0), 150.0);
        // Faster than expected counts as well.
        assert_eq!(p.left(60.0), 60.0);
    }
}
