//! Command line: run, validate, report, schema, and the hidden worker.
//!
//! Exit codes: 0 every expectation held; 1 an expectation failed; 2 invalid input or a broker that
//! could not be reached (nothing was measured).

mod run;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const EXIT_PASS: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;

#[derive(Parser)]
#[command(
    name = "brokerbench",
    version,
    about = "Benchmark and chaos-test message brokers against a YAML workload"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run workloads against every broker they name; writes reports/<run-id>/.
    Run {
        #[arg(required = true)]
        workloads: Vec<PathBuf>,
        /// Target profile: where the brokers are and how to control them.
        #[arg(
            long,
            short,
            default_value = "targets/local.yaml",
            env = "BROKERBENCH_TARGET"
        )]
        target: PathBuf,
        /// Directory that receives one folder per run.
        #[arg(long, short, default_value = "reports")]
        out: PathBuf,
        /// Only run against these brokers (default: all the workload names).
        #[arg(long = "broker", short = 'b')]
        brokers: Vec<crate::workload::BrokerKind>,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Check workload files without running anything.
    Validate {
        #[arg(required = true)]
        workloads: Vec<PathBuf>,
    },
    /// Re-check a run directory from its history and rewrite result.json and junit.xml.
    Report { run_dir: PathBuf },
    /// Put runs (or the brokers of one run) side by side; with --baseline, flag regressions (exit 1).
    Compare {
        /// Run directories or result.json files.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// A previous run to compare against, e.g. last night's.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// A metric regresses when it is worse than the baseline by more than this.
        #[arg(long, default_value = "10%", value_parser = parse_percent)]
        threshold: f64,
        /// Output directory for index.html.
        #[arg(long, short, default_value = "reports/compare")]
        out: PathBuf,
    },
    /// Print the workload JSON Schema (for editor completion), or with --result that of result.json.
    Schema {
        #[arg(long)]
        result: bool,
    },
    /// A consumer or producer worker process (started by `run`).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        plan: PathBuf,
        #[arg(long, required_unless_present = "producer")]
        consumer: Option<u32>,
        #[arg(long, conflicts_with = "consumer", requires_all = ["slot", "seed"])]
        producer: Option<u32>,
        #[arg(long)]
        slot: Option<u32>,
        #[arg(long)]
        seed: Option<u64>,
    },
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { workloads } => validate(&workloads),
        Command::Schema { result } => {
            let schema = if result {
                crate::report::json_schema()
            } else {
                crate::workload::json_schema()
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            EXIT_PASS
        }
        Command::Compare {
            runs,
            baseline,
            threshold,
            out,
        } => exit_code(
            crate::report::compare::compare(&runs, baseline.as_deref(), threshold, &out).map(
                |regs| {
                    println!("comparison: {}", out.join("index.html").display());
                    for r in &regs {
                        println!(
                            "REGRESSION {:<24} {:<44} {} -> {} ({})",
                            r.column, r.metric, r.baseline, r.now, r.change
                        );
                    }
                    regs.is_empty()
                },
            ),
        ),
        Command::Run {
            workloads,
            target,
            out,
            brokers,
            quiet,
        } => with_runtime(run::run(workloads, target, out, brokers, quiet)),
        Command::Report { run_dir } => with_runtime(async move { run::report(&run_dir) }),
        Command::Worker {
            plan,
            consumer,
            producer,
            slot,
            seed,
        } => with_runtime_threads(Some(1), async move {
            let (who, result) = match (consumer, producer) {
                (Some(c), _) => (
                    format!("consumer {c}"),
                    crate::load::worker::run(&plan, c).await,
                ),
                (None, Some(p)) => {
                    let args = crate::load::producer_worker::Args {
                        index: p,
                        slot: slot.unwrap_or(p),
                        seed: seed.unwrap_or_default(),
                    };
                    (
                        format!("producer {p}"),
                        crate::load::producer_worker::run(&plan, args).await,
                    )
                }
                (None, None) => ("worker".into(), Err(anyhow::anyhow!("no role given"))),
            };
            match result {
                Ok(()) => EXIT_PASS,
                Err(e) => {
                    eprintln!("{who}: {e:#}");
                    EXIT_INVALID
                }
            }
        }),
    }
}

fn with_runtime(f: impl std::future::Future<Output = i32>) -> i32 {
    with_runtime_threads(None, f)
}

fn with_runtime_threads(threads: Option<usize>, f: impl std::future::Future<Output = i32>) -> i32 {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    match builder.enable_all().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            EXIT_INVALID
        }
    }
}

/// 0 when everything held, 1 when something failed, 2 (with the error printed) when nothing
/// could be judged.
pub fn exit_code(outcome: anyhow::Result<bool>) -> i32 {
    match outcome {
        Ok(true) => EXIT_PASS,
        Ok(false) => EXIT_FAILED,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_INVALID
        }
    }
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v: f64 = t
        .strip_suffix('%')
        .unwrap_or(t)
        .trim()
        .parse()
        .map_err(|_| format!("expected a percentage such as 10%, got {s:?}"))?;
    Ok(v / 100.0)
}

fn validate(files: &[PathBuf]) -> i32 {
    let mut code = EXIT_PASS;
    for f in files {
        match crate::workload::load(f) {
            Ok(w) => println!(
                "{}: ok ({}; brokers: {})",
                f.display(),
                w.name,
                w.brokers
                    .iter()
                    .map(|b| b.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => {
                eprintln!("{e}");
                code = EXIT_INVALID;
            }
        }
    }
    code
}
