//! The worker protocol, both ends in one place. The coordinator writes a worker's plan file
//! (`write_plan`) and starts `brokerbench worker` with its role as arguments (`Args::of`); the
//! worker reads them back (`Args`, `read_plan`), streams its history events to the coordinator
//! as frames on its stdout (`Events`), and stops when its stdin closes. Producers also wait for
//! a `start` line on stdin (see `process_fleet`).

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::driver::Plan;
use crate::history::codec::write_frame;
use crate::history::Event;

/// What a worker process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Consumer,
    Producer {
        seed: u64,
    },
    /// The final read after the run (see `final_read`).
    FinalRead,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Consumer => "consumer",
            Role::Producer { .. } => "producer",
            Role::FinalRead => "final-read",
        }
    }

    /// The plan file its workers read, in the broker's run directory.
    fn plan_file(self) -> &'static str {
        match self {
            Role::Consumer => "plan.json",
            Role::Producer { .. } => "producer-plan.json",
            Role::FinalRead => "final-read-plan.json",
        }
    }
}

/// Write the plan `role`'s workers read into `dir`; its path, for `Args::of`.
pub fn write_plan(dir: &Path, role: Role, plan: &Plan) -> Result<PathBuf> {
    let spec = dir.join(role.plan_file());
    std::fs::write(&spec, serde_json::to_vec_pretty(plan)?)
        .with_context(|| format!("writing the {} plan {}", role.name(), spec.display()))?;
    Ok(spec)
}

/// A worker's plan, as the coordinator wrote it.
pub fn read_plan(spec: &Path) -> Result<Arc<Plan>> {
    let text = std::fs::read_to_string(spec)
        .with_context(|| format!("reading worker plan {}", spec.display()))?;
    let plan = serde_json::from_str(&text)
        .with_context(|| format!("parsing worker plan {}", spec.display()))?;
    Ok(Arc::new(plan))
}

/// `brokerbench worker`'s arguments: the plan file and the worker's role.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub plan: PathBuf,
    #[arg(long, required_unless_present_any = ["producer", "final_read"])]
    pub consumer: Option<u32>,
    /// The final read after a run (see load::final_read).
    #[arg(long, conflicts_with_all = ["consumer", "producer"])]
    pub final_read: bool,
    #[arg(long, conflicts_with = "consumer", requires_all = ["slot", "seed"])]
    pub producer: Option<u32>,
    /// Producers: the share of the schedule this one sends.
    #[arg(long)]
    pub slot: Option<u32>,
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Args {
    /// The command line (after `brokerbench`) that starts worker `index` of `role`.
    pub fn of(role: Role, index: u32, slot: u32, spec: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["worker".into(), "--plan".into(), spec.into()];
        let more: Vec<String> = match role {
            Role::Consumer => vec!["--consumer".into(), index.to_string()],
            Role::FinalRead => vec!["--final-read".into()],
            Role::Producer { seed } => vec![
                "--producer".into(),
                index.to_string(),
                "--slot".into(),
                slot.to_string(),
                "--seed".into(),
                seed.to_string(),
            ],
        };
        args.extend(more.into_iter().map(OsString::from));
        args
    }

    /// Be the worker these arguments describe, until it is done or its stdin closes; who it
    /// was (for an error message) and how it went.
    pub async fn run(self) -> (String, Result<()>) {
        match (self.consumer, self.producer) {
            _ if self.final_read => (
                "final read".to_string(),
                super::final_read::run(&self.plan).await,
            ),
            (Some(c), _) => (
                format!("consumer {c}"),
                super::consumer_process::run(&self.plan, c).await,
            ),
            (None, Some(p)) => {
                let args = super::producer_process::Args {
                    index: p,
                    slot: self.slot.unwrap_or(p),
                    seed: self.seed.unwrap_or_default(),
                };
                (
                    format!("producer {p}"),
                    super::producer_process::run(&self.plan, args).await,
                )
            }
            (None, None) => ("worker".into(), Err(anyhow::anyhow!("no role given"))),
        }
    }
}

/// A worker's history events, streamed to the coordinator as frames on `W` (its stdout).
pub struct Events<W: Write> {
    out: BufWriter<W>,
    scratch: Vec<u8>,
}

impl<W: Write> Events<W> {
    pub fn new(out: W) -> Events<W> {
        Events {
            out: BufWriter::new(out),
            scratch: Vec::with_capacity(256),
        }
    }

    pub fn emit(&mut self, ev: &Event) -> Result<()> {
        write_frame(&mut self.out, ev, &mut self.scratch)?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
