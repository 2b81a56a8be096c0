//! `brokerbench leftovers`: what runs left behind on the brokers of a target profile (topics,
//! queues, exchanges, consumer groups no live run owns, typically those of a coordinator killed
//! with SIGKILL) and the faults such a coordinator left in force (a broker left stopped by
//! `broker-pause`, a cluster's cuts and packet faults); with `--delete`, removed and healed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::live::{self, Owner};
use crate::driver::{Plan, Resource, RESOURCE_PREFIX};
use crate::target::{Control, TargetProfile};
use crate::workload::BrokerKind;

/// How long one broker may take to list (or delete) what runs left.
const BROKER_TIMEOUT: Duration = Duration::from_secs(60);

/// What to list, and whether to remove it.
pub struct Ask {
    pub delete: bool,
    /// Only resources whose run started at least this long ago (the start time is in their
    /// names): for brokers other machines' runs use too, which no local registry knows.
    pub older_than: Option<Duration>,
    /// Resources of runs with `run.keep: true` too.
    pub include_kept: bool,
}

/// One thing left behind on one broker.
struct Leftover {
    resource: Resource,
    why: &'static str,
    age: Option<Duration>,
}

/// List (and with `--delete` remove) every broker's leftovers; 0 when every broker could be
/// listed and cleaned, 1 otherwise.
pub async fn leftovers(profile: &TargetProfile, ask: &Ask) -> i32 {
    let in_use = live::brokers_in_use(&profile.name);
    let mut code = super::EXIT_PASS;
    for kind in brokers_of(profile) {
        // Faults first: a broker left stopped cannot list its queues until it is resumed. A
        // live run on the broker may hold its own faults in force on purpose: then they are
        // left alone.
        let control = crate::driver::control(profile, &kind);
        let busy = in_use.iter().any(|b| b == kind.as_str());
        if busy {
            crate::say!("{kind}: a live run uses it: its faults in force, if any, are that run's");
        } else if !faults_left(profile, &kind, &control, ask.delete).await {
            code = super::EXIT_FAILED;
        }
        let found = async {
            let janitor = Janitor::of(profile, &kind)?;
            let left = tokio::time::timeout(BROKER_TIMEOUT, janitor.left(ask))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {BROKER_TIMEOUT:?}")))?;
            Ok::<_, anyhow::Error>((janitor, left))
        };
        match found.await {
            Ok((janitor, left)) => {
                if !janitor.clean(&kind, left, ask.delete).await {
                    code = super::EXIT_FAILED;
                }
            }
            Err(e) => {
                crate::note!("{kind}: could not list what runs left: {e:#}");
                code = super::EXIT_FAILED;
            }
        }
    }
    code
}

/// The brokers the profile has a section for, in the registry's order.
fn brokers_of(profile: &TargetProfile) -> Vec<BrokerKind> {
    crate::driver::names()
        .into_iter()
        .map(BrokerKind::new)
        .filter(|k| crate::driver::section(profile, k).is_ok())
        .collect()
}

/// One broker's client for listing and deleting what runs created, with its address.
struct Janitor {
    driver: Box<dyn crate::driver::Driver>,
    address: String,
}

impl Janitor {
    fn of(profile: &TargetProfile, kind: &BrokerKind) -> Result<Janitor> {
        let plan = Arc::new(Plan::janitor(kind.clone(), profile)?);
        let address = plan.address();
        Ok(Janitor {
            driver: crate::driver::driver(plan)?,
            address,
        })
    }

    /// What runs left on the broker that `ask` is about.
    async fn left(&self, ask: &Ask) -> Result<Vec<Leftover>> {
        let found = self
            .driver
            .list_created(RESOURCE_PREFIX)
            .await
            .with_context(|| format!("at {}", self.address))?;
        // Who owns what, asked after the listing: a run registers before it creates anything,
        // so a run that started meanwhile is known by now, and its resources are never taken.
        let owners = live::owners();
        let now = SystemTime::now();
        Ok(found
            .into_iter()
            .filter_map(|resource| {
                let why = match live::owner_of(&resource.name, &owners) {
                    Owner::Live => return None,
                    Owner::Kept if !ask.include_kept => return None,
                    Owner::Kept => "kept by its run (run.keep)",
                    Owner::Nobody => "no live run owns it",
                };
                let age = live::created(&resource.name).and_then(|t| now.duration_since(t).ok());
                if let Some(min) = ask.older_than {
                    // A name without a start time has no age: not old enough to be sure of.
                    if age.is_none_or(|a| a < min) {
                        return None;
                    }
                }
                Some(Leftover { resource, why, age })
            })
            .collect())
    }

    /// Print `left` and, when asked, delete each; false when a deletion failed.
    async fn clean(&self, kind: &BrokerKind, left: Vec<Leftover>, delete: bool) -> bool {
        if left.is_empty() {
            crate::say!("{kind}: nothing left by earlier runs");
            return true;
        }
        let mut ok = true;
        for l in left {
            let age = l.age.map_or("age unknown".to_string(), |a| {
                format!(
                    "{} old",
                    humantime::format_duration(Duration::from_secs(a.as_secs()))
                )
            });
            let line = format!(
                "{kind}: {} {} ({age}; {})",
                l.resource.kind, l.resource.name, l.why
            );
            if !delete {
                crate::say!("{line}");
                continue;
            }
            match self.driver.delete_created(&l.resource).await {
                Ok(()) => crate::say!("{line}: deleted"),
                Err(e) => {
                    crate::say!("{line}: could not delete: {e:#}");
                    ok = false;
                }
            }
        }
        ok
    }
}

/// Faults a dead coordinator left in force on broker `kind`: the broker's process stopped
/// (`broker-pause`), a cluster's cuts and packet faults (the profile's `faults` command).
/// Printed, and undone when asked; false when something could not be checked or undone.
async fn faults_left(
    profile: &TargetProfile,
    kind: &BrokerKind,
    control: &Control,
    delete: bool,
) -> bool {
    let mut ok = true;
    if let Some(pid) = stopped_broker(profile, control) {
        let line = format!(
            "{kind}: the broker's process {pid} is stopped (SIGSTOP), as broker-pause leaves it"
        );
        ok &= undo(profile, control, "resume", line, delete).await;
    }
    let Some(cmd) = control.command("faults") else {
        return ok;
    };
    match crate::chaos::run_command(cmd, &profile.dir).await {
        Ok((out, _)) => {
            let in_force: Vec<&str> = out
                .lines()
                .filter(|l| {
                    l.split_once(':')
                        .is_some_and(|(_, what)| !what.trim().is_empty())
                })
                .collect();
            if !in_force.is_empty() {
                let line = format!("{kind}: faults in force: {}", in_force.join("; "));
                ok &= undo(profile, control, "heal", line, delete).await;
            }
        }
        Err(e) => {
            crate::note!("{kind}: could not list the faults in force: {e:#}");
            ok = false;
        }
    }
    ok
}

/// Print `line`; when asked, run control command `name` to undo what it says.
async fn undo(
    profile: &TargetProfile,
    control: &Control,
    name: &str,
    line: String,
    delete: bool,
) -> bool {
    if !delete {
        crate::say!("{line}");
        return true;
    }
    let Some(cmd) = control.command(name) else {
        crate::say!("{line}: cannot undo it: the target profile has no `{name}` command");
        return false;
    };
    match crate::chaos::run_command(cmd, &profile.dir).await {
        Ok(_) => {
            crate::say!("{line}: undone (`{cmd}`)");
            true
        }
        Err(e) => {
            crate::say!("{line}: `{cmd}` failed: {e:#}");
            false
        }
    }
}

/// The broker's process (by the profile's `pid_file`) when it is stopped.
fn stopped_broker(profile: &TargetProfile, control: &Control) -> Option<i32> {
    let file = profile.dir.join(control.pid_file.as_deref()?);
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    (crate::chaos::process::state(pid) == Some('T')).then_some(pid)
}

/// How many resources earlier runs left on the profile's brokers, for the one-line warning at
/// the start of a run (brokers that cannot be listed quickly are skipped).
pub async fn count(profile: &TargetProfile) -> usize {
    let ask = Ask {
        delete: false,
        older_than: None,
        include_kept: false,
    };
    let mut n = 0;
    for kind in brokers_of(profile) {
        let Ok(janitor) = Janitor::of(profile, &kind) else {
            continue;
        };
        let listed = tokio::time::timeout(Duration::from_secs(15), janitor.left(&ask));
        if let Ok(Ok(left)) = listed.await {
            n += left.len();
        }
    }
    n
}

/// Read `--target` for the command.
pub fn profile(target: &Path) -> Result<TargetProfile> {
    TargetProfile::load(target, &[crate::driver::check_target])
}
