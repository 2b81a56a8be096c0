//! `brokerbench run` and `brokerbench report`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::{EXIT_FAILED, EXIT_INVALID, EXIT_PASS};
use crate::check::{self, expect};
use crate::driver::Plan;
use crate::load::runner::{run_broker, StopSignal};
use crate::report::{summary, BrokerResult, RunResult};
use crate::target::TargetProfile;
use crate::workload::{BrokerKind, Workload};

pub async fn run(
    files: Vec<PathBuf>,
    target: PathBuf,
    out: PathBuf,
    only: Vec<BrokerKind>,
    quiet: bool,
) -> i32 {
    // Validate everything before touching any broker.
    let mut workloads = Vec::new();
    for f in &files {
        match super::load_workload(f) {
            Ok(w) => workloads.push((f.clone(), w)),
            Err(e) => {
                eprintln!("{e}");
                return EXIT_INVALID;
            }
        }
    }
    let profile = match TargetProfile::load(&target) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return EXIT_INVALID;
        }
    };

    for (f, w) in &workloads {
        if let Err(msg) = controls_present(w, &profile) {
            eprintln!("{}: {msg}", f.display());
            return EXIT_INVALID;
        }
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: stopping producers, draining briefly, keeping the history");
            let _ = stop_tx.send(true);
        }
    });
    let stop = StopSignal(stop_rx);

    let mut code = EXIT_PASS;
    for (file, w) in workloads {
        let brokers: Vec<BrokerKind> = w
            .brokers
            .iter()
            .copied()
            .filter(|b| only.is_empty() || only.contains(b))
            .collect();
        match run_workload(&file, &w, &profile, &out, &brokers, stop.clone(), !quiet).await {
            Ok(result) => {
                print!("{}", summary::render(&result));
                let errored = result
                    .brokers
                    .iter()
                    .any(|b| b.error.is_some() && b.metrics.is_none());
                let c = if errored {
                    EXIT_INVALID
                } else if result.passed() {
                    EXIT_PASS
                } else {
                    EXIT_FAILED
                };
                code = code.max(c);
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                code = EXIT_INVALID;
            }
        }
        if stop.requested() {
            break;
        }
    }
    code
}

/// Broker faults call the target's control commands; a missing one is an input error, found
/// before anything runs.
fn controls_present(w: &Workload, profile: &TargetProfile) -> Result<(), String> {
    for f in &w.faults {
        let needed = crate::chaos::faults::required_commands(&f.value);
        for &broker in &w.brokers {
            let control = crate::driver::control(profile, broker);
            for &name in &needed {
                if crate::chaos::command(&control, name).is_none() {
                    return Err(format!(
                        "{}:{}: fault {} needs the `{name}` control command, but target profile `{}` has none for {broker} (add {broker}.control.{name})",
                        f.referenced.line(),
                        f.referenced.column(),
                        crate::chaos::faults::name(f.value.kind),
                        profile.name
                    ));
                }
            }
        }
    }
    Ok(())
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

async fn run_workload(
    file: &Path,
    w: &Workload,
    profile: &TargetProfile,
    out: &Path,
    brokers: &[BrokerKind],
    stop: StopSignal,
    progress: bool,
) -> Result<RunResult> {
    let run_id = new_run_id(&w.name);
    let dir = out.join(&run_id);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating run directory {}", dir.display()))?;
    std::fs::copy(file, dir.join("workload.yaml"))
        .context("copying the workload into the run directory")?;
    std::fs::write(dir.join("target.json"), serde_json::to_vec_pretty(profile)?)?;
    let seed = w.run.seed.unwrap_or_else(rand::random);
    eprintln!(
        "run {run_id}: {} against {} (seed {seed}); output in {}",
        w.name,
        brokers
            .iter()
            .map(|b| b.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    );

    let mut result = RunResult::new(&run_id, w, seed, &profile.name);
    for &broker in brokers {
        if stop.requested() {
            break;
        }
        let plan = Arc::new(Plan::new(&run_id, broker, w, profile));
        let bdir = dir.join(broker.as_str());
        let windows = crate::chaos::faults::windows(
            &w.faults.iter().map(|f| f.value.clone()).collect::<Vec<_>>(),
            w.load.duration.0,
            seed,
        );
        let broker_result =
            match run_broker(plan, &bdir, seed, windows, stop.clone(), progress).await {
                Ok(run) => {
                    result.interrupted |= run.interrupted;
                    checked(broker, run.product, &run.history, w)
                }
                Err(e) => {
                    let history = bdir.join("history.bin");
                    // A run that broke off mid-way still has a history worth checking.
                    let mut r = if history.exists() {
                        checked(broker, String::new(), &history, w)
                    } else {
                        BrokerResult {
                            broker,
                            product: String::new(),
                            error: None,
                            metrics: None,
                            verdicts: Vec::new(),
                        }
                    };
                    r.error = Some(format!("{e:#}"));
                    r
                }
            };
        result.brokers.push(broker_result);
        result.write(&dir)?;
    }
    result.write(&dir)?;
    Ok(result)
}

fn checked(broker: BrokerKind, product: String, history: &Path, w: &Workload) -> BrokerResult {
    match check::check_history(history) {
        Ok(m) => BrokerResult {
            broker,
            product,
            error: None,
            verdicts: expect::verdicts(&w.expect, &m),
            metrics: Some(m),
        },
        Err(e) => BrokerResult {
            broker,
            product,
            error: Some(format!("checking {}: {e:#}", history.display())),
            metrics: None,
            verdicts: Vec::new(),
        },
    }
}

/// Rebuild result.json and junit.xml from a run directory alone (workload + histories).
pub fn report(dir: &Path) -> i32 {
    super::exit_code(rebuild(dir).map(|result| {
        print!("{}", summary::render(&result));
        result.passed()
    }))
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
    }
    for &broker in &w.brokers {
        let history = dir.join(broker.as_str()).join("history.bin");
        if !history.exists() {
            continue;
        }
        let product = previous
            .as_ref()
            .and_then(|p| {
                p.brokers
                    .iter()
                    .find(|b| b.broker == broker)
                    .map(|b| b.product.clone())
            })
            .unwrap_or_default();
        result.brokers.push(checked(broker, product, &history, &w));
    }
    anyhow::ensure!(
        !result.brokers.is_empty(),
        "{} holds no broker history (expected <broker>/history.bin)",
        dir.display()
    );
    result.write(dir)?;
    Ok(result)
}
