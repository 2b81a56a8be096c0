//! Command line: run, validate, report, schema, and the hidden worker.
//!
//! Exit codes (`Exit`): 0 every expectation held; 1 an expectation failed, or compare found a
//! regression; 2 invalid input (nothing was run); 3 inconclusive (a planned fault did not
//! happen as planned, a broker could not be reached, nothing was measured); 130 / 143
//! interrupted by SIGINT / SIGTERM.

mod leftovers;
mod live;
mod run;
mod suite;
mod sweep;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

pub const EXIT_PASS: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INVALID: i32 = 2;
pub const EXIT_INCONCLUSIVE: i32 = 3;

/// What a command comes to. Several combine by severity, not by their numbers: bad input beats
/// a failure, a failure beats an inconclusive run (a loss seen is a loss, and an inconclusive
/// night must not hide a regression), and an interruption beats everything (`max`, in the
/// order of the variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Pass,
    Inconclusive,
    Failed,
    Invalid,
    /// By a signal: its exit code (128 + the signal's number).
    Interrupted(i32),
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Pass => EXIT_PASS,
            Exit::Inconclusive => EXIT_INCONCLUSIVE,
            Exit::Failed => EXIT_FAILED,
            Exit::Invalid => EXIT_INVALID,
            Exit::Interrupted(code) => code,
        }
    }

    pub fn of(status: crate::report::Status) -> Exit {
        use crate::report::Status;
        match status {
            Status::Pass => Exit::Pass,
            Status::Inconclusive => Exit::Inconclusive,
            Status::Fail => Exit::Failed,
        }
    }
}

const EXIT_CODES: &str = "Exit codes:
  0        every expectation held
  1        an expectation failed, or compare found a regression
  2        invalid input: nothing was run
  3        inconclusive: a planned fault did not happen as planned, a broker could not be
           reached, nothing was measured, the history is damaged or no final read verified it
  130/143  interrupted by SIGINT/SIGTERM (the history and a partial report are kept)
Several runs' codes combine by severity: interrupted > 2 > 1 > 3 > 0.";

#[derive(Parser)]
#[command(
    name = "brokerbench",
    version,
    about = "Benchmark and chaos-test message brokers against a YAML workload",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--target`, as every command that talks to brokers takes it.
#[derive(clap::Args)]
struct TargetArg {
    /// Target profile: where the brokers are and how to control them.
    #[arg(
        long = "target",
        value_name = "FILE",
        short = 't',
        default_value = "targets/local.yaml",
        env = "BROKERBENCH_TARGET"
    )]
    path: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run workloads against every broker they name; writes reports/<run-id>/. Given a
    /// directory, a suite file or several workloads (or --repeat), runs them all as one suite
    /// into reports/<suite-run-id>/, with one matrix page, one junit.xml and one exit code.
    Run {
        /// Workload files, directories of them, or suite files.
        #[arg(required = true)]
        workloads: Vec<PathBuf>,
        #[command(flatten)]
        target: TargetArg,
        /// Directory that receives one folder per run.
        #[arg(long, short, default_value = "reports")]
        out: PathBuf,
        /// Only run against these brokers (default: all the workload names).
        #[arg(long = "broker", short = 'b', value_parser = broker_name())]
        brokers: Vec<crate::workload::BrokerKind>,
        /// Run every workload this many times, keeping every repetition (overrides a suite
        /// file's `repeat:`).
        #[arg(long)]
        repeat: Option<u32>,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Check workloads without running anything: files, directories of them, or suite files,
    /// as `run` takes them.
    Validate {
        #[arg(required = true)]
        workloads: Vec<PathBuf>,
    },
    /// Re-check a run directory from its history and rewrite result.json and junit.xml
    /// (exit 0 pass, 1 an expectation failed, 3 inconclusive).
    Report { run_dir: PathBuf },
    /// Put runs (or the brokers of one run) side by side; with --baseline, flag regressions (exit 1).
    Compare {
        /// Run directories, result.json files, or directories of runs (a suite run).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// A previous run to compare against, e.g. last night's.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Noise threshold: a metric regresses only when the whole 95% interval of its change
        /// is worse than this. `10%` sets it for every metric, `p99_end_to_end=25%` for one;
        /// repeat the option for several. Default: 30% for latency percentiles and the broker's
        /// CPU and memory, 10% for the rest.
        #[arg(long = "threshold")]
        thresholds: Vec<String>,
        /// Judge nothing of a workload edited since the baseline (its topology, load,
        /// consumers, faults or run settings differ), rather than judging it and saying so.
        /// bin/nightly sets it: the first night after an edit is not a regression.
        #[arg(long)]
        skip_edited: bool,
        /// Output directory for index.html.
        #[arg(long, short, default_value = "reports/compare")]
        out: PathBuf,
    },
    /// Key metrics over many nights, one line per workload × broker, with regressions and
    /// failed expectations marked; writes one self-contained page.
    Trend {
        /// One per night: run directories, result.json files or suite run directories.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output directory for index.html.
        #[arg(long, short, default_value = "reports/trend")]
        out: PathBuf,
    },
    /// List what runs left on the target's brokers (topics, queues, exchanges, consumer groups
    /// no live run on this machine owns, as a coordinator killed with SIGKILL leaves them) and
    /// faults left in force (a broker left stopped, a cluster's cuts); --delete removes and
    /// heals them. Exit 1 when a broker could not be listed or cleaned.
    Leftovers {
        #[command(flatten)]
        target: TargetArg,
        /// Delete them, and undo the faults left in force.
        #[arg(long)]
        delete: bool,
        /// Only what runs started at least this long ago (e.g. 1h): for brokers other
        /// machines' runs use too, whose live runs this machine does not know.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Include what runs with `run.keep: true` kept on purpose.
        #[arg(long)]
        include_kept: bool,
    },
    /// Print the workload JSON Schema (for editor completion), with --result that of
    /// result.json, with --history that of one line of `history --format jsonl`.
    Schema {
        #[arg(long, conflicts_with = "history")]
        result: bool,
        #[arg(long)]
        history: bool,
    },
    /// Write a run's history as JSON lines (one event per line) on stdout, to check it with
    /// your own tools; `schema --history` describes the lines.
    History {
        /// A run directory, one broker's directory in it, or a history.bin file.
        run: PathBuf,
        /// Only this broker's history (default: every broker of the run, each starting with
        /// its Header event).
        #[arg(long, short, value_parser = broker_name())]
        broker: Option<crate::workload::BrokerKind>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: HistoryFormat,
    },
    /// Decide the fate of each packet of a netfilter queue: delay, correlated loss, corruption
    /// (started by the local cluster's `delay`, `loss` and `corrupt` commands inside a node's
    /// network namespace; see chaos::packet_queue).
    #[command(hide = true)]
    PacketFaults {
        #[arg(long)]
        queue: u16,
        /// The bit this loop sets in the netfilter mark of the packets it lets go (its rule
        /// skips packets that carry it).
        #[arg(long)]
        mark: u32,
        #[arg(long, default_value = "0s")]
        delay: crate::workload::units::Dur,
        #[arg(long, default_value = "0s")]
        jitter: crate::workload::units::Dur,
        /// The share of packets (0 to 1) passed on at once, ahead of the held ones.
        #[arg(long, default_value_t = 0.0)]
        reorder: f64,
        /// The share of packets (0 to 1) dropped...
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// ...and how much a packet's fate follows the last one's (0 to 1; bursts).
        #[arg(long, default_value_t = 0.0)]
        correlation: f64,
        /// The share of packets (0 to 1) with one bit flipped.
        #[arg(long, default_value_t = 0.0)]
        corrupt: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// A consumer, producer or final-read worker process (started by `run`).
    #[command(hide = true)]
    Worker(crate::load::worker::Args),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum HistoryFormat {
    Jsonl,
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { workloads } => validate(&workloads),
        Command::History {
            run,
            broker,
            format: HistoryFormat::Jsonl,
        } => print_history(&run, broker),
        Command::Schema { result, history } => print_schema(result, history),
        Command::Compare {
            runs,
            baseline,
            thresholds,
            skip_edited,
            out,
        } => compare(&runs, baseline.as_deref(), &thresholds, skip_edited, &out),
        Command::Leftovers {
            target,
            delete,
            older_than,
            include_kept,
        } => {
            let ask = leftovers::Ask {
                delete,
                older_than,
                include_kept,
            };
            find_leftovers(&target.path, ask)
        }
        Command::Trend { runs, out } => trend(&runs, &out),
        Command::Run {
            workloads,
            target,
            out,
            brokers,
            repeat,
            quiet,
        } => with_runtime(run::run(
            workloads,
            target.path,
            out,
            brokers,
            repeat,
            quiet,
        )),
        Command::Report { run_dir } => with_runtime(async move { run::report(&run_dir) }),
        Command::PacketFaults {
            queue,
            mark,
            delay,
            jitter,
            reorder,
            loss,
            correlation,
            corrupt,
            seed,
        } => {
            let spec = crate::chaos::packet_queue::Spec {
                delay: delay.0,
                jitter: jitter.0,
                reorder,
                loss,
                correlation,
                corrupt,
            };
            packet_faults(queue, mark, spec, seed)
        }
        Command::Worker(args) => worker(args),
    }
}

/// `history`: a run's history as JSON lines on stdout.
fn print_history(run: &Path, broker: Option<crate::workload::BrokerKind>) -> i32 {
    let written = history(run, broker);
    // A reader that stops early (`| head`) is not an error.
    let closed = written.as_ref().err().is_some_and(|e| {
        e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        })
    });
    exit_code(if closed {
        Ok(true)
    } else {
        written.map(|()| true)
    })
}

/// `schema`: the workload format's JSON Schema, or result.json's, or the history's.
fn print_schema(result: bool, history: bool) -> i32 {
    let schema = if result {
        crate::report::json_schema()
    } else if history {
        crate::history::export::json_schema()
    } else {
        crate::driver::workload_schema()
    };
    crate::say!(
        "{}",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    );
    EXIT_PASS
}

/// `compare`: runs side by side, judged against a baseline when there is one.
fn compare(
    runs: &[PathBuf],
    baseline: Option<&Path>,
    thresholds: &[String],
    skip_edited: bool,
    out: &Path,
) -> i32 {
    use crate::report::compare::Edited;
    let edited = if skip_edited {
        Edited::Skip
    } else {
        Edited::Judge
    };
    let mut t = crate::report::compare::Thresholds::default();
    for arg in thresholds {
        if let Err(e) = t.set(arg, parse_percent) {
            crate::note!("error: {e}");
            return EXIT_INVALID;
        }
    }
    exit_code(
        crate::report::compare::compare(runs, baseline, &t, edited, out).map(|judged| {
            crate::say!("comparison: {}", out.join("index.html").display());
            print_judged(&judged, baseline.is_some())
        }),
    )
}

/// `leftovers`: what runs left on the target's brokers, listed or deleted.
fn find_leftovers(target: &Path, ask: leftovers::Ask) -> i32 {
    let profile = match leftovers::profile(target) {
        Ok(p) => p,
        Err(e) => {
            crate::note!("error: {e:#}");
            return EXIT_INVALID;
        }
    };
    with_runtime(async move { leftovers::leftovers(&profile, &ask).await })
}

/// `trend`: nights side by side; a view, not a gate (compare --baseline decides a night's exit).
fn trend(runs: &[PathBuf], out: &Path) -> i32 {
    exit_code(crate::report::trend::trend(runs, out).map(|newest| {
        crate::say!("trend: {}", out.join("index.html").display());
        if newest > 0 {
            crate::say!(
                "the newest night regressed on {newest} metric(s) against the night before"
            );
        }
        true
    }))
}

/// `packet-faults`: the loop that delays, drops or damages a netfilter queue's packets.
fn packet_faults(queue: u16, mark: u32, spec: crate::chaos::packet_queue::Spec, seed: u64) -> i32 {
    match crate::chaos::packet_queue::run(queue, mark, spec, seed) {
        Ok(()) => EXIT_PASS,
        Err(e) => {
            crate::note!("packet-faults: {e:#}");
            EXIT_INVALID
        }
    }
}

/// `worker`: a consumer, producer or final-read process of a run, on one thread.
fn worker(args: crate::load::worker::Args) -> i32 {
    with_runtime_threads(Some(1), async move {
        match args.run().await {
            (_, Ok(())) => EXIT_PASS,
            (who, Err(e)) => {
                crate::note!("{who}: {e:#}");
                EXIT_INVALID
            }
        }
    })
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
            crate::note!("error: starting the async runtime: {e}");
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
            crate::note!("error: {e:#}");
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

/// The history files `run` names: itself, or those of its brokers (in a fixed order).
fn history_files(
    run: &std::path::Path,
    broker: Option<crate::workload::BrokerKind>,
) -> anyhow::Result<Vec<PathBuf>> {
    if run.is_file() {
        return Ok(vec![run.to_owned()]);
    }
    if run.join("history.bin").is_file() {
        return Ok(vec![run.join("history.bin")]);
    }
    // Every broker this build knows, in the registry's order.
    let files: Vec<PathBuf> = crate::driver::names()
        .into_iter()
        .filter(|&b| broker.as_ref().is_none_or(|only| only.as_str() == b))
        .map(|b| run.join(b).join("history.bin"))
        .filter(|p| p.is_file())
        .collect();
    anyhow::ensure!(
        !files.is_empty(),
        "{} holds no {}history (expected {}/history.bin)",
        run.display(),
        broker.as_ref().map_or(String::new(), |b| format!("{b} ")),
        broker
            .as_ref()
            .map_or("<broker>".to_string(), |b| b.to_string())
    );
    Ok(files)
}

/// Print what compare decided against a baseline; true when nothing regressed.
fn print_judged(judged: &[crate::report::compare::Judged], baseline: bool) -> bool {
    use crate::report::judge::Change;
    let count = |c: Change| judged.iter().filter(|j| j.judgement.change == c).count();
    if baseline {
        crate::say!(
            "against the baseline: {} regressed, {} improved, {} no change, {} not judged",
            count(Change::Regressed),
            count(Change::Improved),
            count(Change::NoChange),
            count(Change::NotJudged)
        );
    }
    let mut edited: Vec<(&str, bool)> = judged
        .iter()
        .filter(|j| j.edited)
        .map(|j| (j.subject.as_str(), j.judgement.change == Change::NotJudged))
        .collect();
    edited.dedup();
    for (subject, skipped) in edited {
        let what = if skipped {
            "not judged"
        } else {
            "judged anyway (--skip-edited leaves it unjudged)"
        };
        crate::say!(
            "EDITED {subject}: {}; {what}",
            crate::report::WORKLOAD_CHANGED
        );
    }
    for j in judged
        .iter()
        .filter(|j| j.judgement.change == Change::Regressed)
    {
        crate::say!(
            "REGRESSION {:<36} {:<36} {} -> {} ({})",
            j.subject,
            j.metric,
            j.baseline,
            j.now,
            j.text
        );
    }
    count(Change::Regressed) == 0
}

/// Parses a broker named on the command line: one of the registry's names.
fn broker_name() -> impl clap::builder::TypedValueParser<Value = crate::workload::BrokerKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(crate::driver::names())
        .map(crate::workload::BrokerKind::new)
}

fn history(
    run: &std::path::Path,
    broker: Option<crate::workload::BrokerKind>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for file in history_files(run, broker)? {
        let (_, warning) = crate::history::export::write_jsonl(&file, &mut out)?;
        if let Some(w) = warning {
            crate::note!("warning: {w}");
        }
    }
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// What every workload is checked against beyond its own stage's checks: each listed broker's,
/// the fault table's and the metric registry's, from the stages that own them.
const RULES: &[crate::workload::Rule] = &[
    crate::driver::validate,
    crate::chaos::faults::validate,
    crate::check::metrics::validate,
];

/// Read a workload file and check it completely (syntax, values, faults, expectations).
pub fn load_workload(
    path: &Path,
) -> Result<crate::workload::Workload, crate::workload::WorkloadError> {
    crate::workload::load(path, RULES)
}

/// Check workloads as `run` would read them: files, directories of them, suite files.
fn validate(args: &[PathBuf]) -> i32 {
    let (files, problems) = suite::workload_paths(args);
    let mut code = EXIT_PASS;
    for p in &problems {
        crate::note!("{p}");
        code = EXIT_INVALID;
    }
    for f in &files {
        match load_workload(f) {
            Ok(w) => crate::say!(
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
                crate::note!("{e}");
                code = EXIT_INVALID;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests;
