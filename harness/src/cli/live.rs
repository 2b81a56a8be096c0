//! Which runs are alive on this machine, so `leftovers` never touches a live run's resources.
//! A resource's name alone cannot say it: run directories can be anywhere, so each run
//! registers its resource prefix in the cache directory with its coordinator's pid while it
//! runs. A run with `run.keep: true` leaves its entry behind (pid 0), so what it kept on
//! purpose is not taken for a leftover.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::workload::BrokerKind;

/// `$BROKERBENCH_CACHE` (or `~/.cache/brokerbench`), where `bin/brokers` keeps its downloads.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("BROKERBENCH_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".cache/brokerbench"),
    }
}

fn registry() -> PathBuf {
    cache_dir().join("runs")
}

/// A run's entry while it runs; dropped at its end (kept, with no pid, for `run.keep`).
pub struct Registered {
    path: PathBuf,
    keep: bool,
}

/// Register the run whose resources start with `prefix`, by this process, on `brokers` of the
/// target profile named `profile`. The profile tells brokers of one name apart: a run on the
/// local cluster's RabbitMQ does not make the single local node busy.
pub fn register(
    prefix: &str,
    keep: bool,
    profile: &str,
    brokers: &[BrokerKind],
) -> Result<Registered> {
    let dir = registry();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(prefix);
    let on: Vec<&str> = brokers.iter().map(|b| b.as_str()).collect();
    let entry = format!(
        "{} {} {} {profile}\n",
        std::process::id(),
        u8::from(keep),
        on.join(",")
    );
    std::fs::write(&path, entry)
        .with_context(|| format!("registering the run in {}", path.display()))?;
    Ok(Registered { path, keep })
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = if self.keep {
            std::fs::write(&self.path, "0 1 -\n")
        } else {
            std::fs::remove_file(&self.path)
        };
    }
}

/// What the registry says of one run's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Its coordinator is running.
    Live,
    /// It ended with `run.keep: true`: kept on purpose.
    Kept,
    /// No live run owns it: its coordinator died, or another machine made it.
    Nobody,
}

/// The brokers of target profile `profile` that live runs use now: their faults in force are
/// theirs, not leftovers. An entry that names no profile counts for every profile.
pub fn brokers_in_use(profile: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(registry()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|text| in_use_by(&text, profile, alive))
        .flatten()
        .collect()
}

/// The brokers one registry entry says a live run uses under `profile`.
fn in_use_by(entry: &str, profile: &str, alive: impl Fn(i32) -> bool) -> Option<Vec<String>> {
    let mut fields = entry.trim_end().splitn(4, ' ');
    let pid: i32 = fields.next()?.parse().ok()?;
    let brokers = fields.nth(1)?;
    let same_profile = fields.next().is_none_or(|p| p == profile);
    (pid > 0 && same_profile && alive(pid)).then(|| brokers.split(',').map(String::from).collect())
}

/// Every registered prefix with its owner; entries of coordinators that died are dropped.
pub fn owners() -> Vec<(String, Owner)> {
    let Ok(entries) = std::fs::read_dir(registry()) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let prefix = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).ok()?;
            let mut fields = text.split_whitespace();
            let pid: i32 = fields.next()?.parse().ok()?;
            let keep = fields.next() == Some("1");
            let owner = if pid > 0 && alive(pid) {
                Owner::Live
            } else if keep {
                Owner::Kept
            } else {
                // The coordinator died without removing its entry.
                let _ = std::fs::remove_file(e.path());
                return None;
            };
            Some((prefix, owner))
        })
        .collect()
}

/// Whether `pid` is a running brokerbench (not a pid reused by something else).
fn alive(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("brokerbench"))
        .unwrap_or(false)
}

/// Who owns resource `name`, by the longest registered prefix it starts with.
pub fn owner_of(name: &str, owners: &[(String, Owner)]) -> Owner {
    owners
        .iter()
        .filter(|(p, _)| name.starts_with(p.as_str()))
        .max_by_key(|(p, _)| p.len())
        .map_or(Owner::Nobody, |(_, o)| *o)
}

/// When a run created `name`, from the start time every run's resource names carry
/// (`bb-YYYYMMDD-HHMMSS-…`, UTC); None for a name without one.
pub fn created(name: &str) -> Option<std::time::SystemTime> {
    let stamp = name
        .strip_prefix(crate::driver::RESOURCE_PREFIX)?
        .get(..15)?;
    let (date, time) = stamp.split_once('-')?;
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        date.get(..4)?,
        date.get(4..6)?,
        date.get(6..8)?,
        time.get(..2)?,
        time.get(2..4)?,
        time.get(4..6)?
    );
    humantime::parse_rfc3339(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_is_owned_by_the_longest_prefix_it_starts_with() {
        let owners = vec![
            ("bb-20261207-150057-a-1234".to_string(), Owner::Live),
            ("bb-20261207-150057-a-1234-x".to_string(), Owner::Kept),
        ];
        assert_eq!(
            owner_of("bb-20261207-150057-a-1234-q0", &owners),
            Owner::Live
        );
        assert_eq!(
            owner_of("bb-20261207-150057-a-1234-x", &owners),
            Owner::Kept
        );
        assert_eq!(
            owner_of("bb-20261207-150057-b-9999-q0", &owners),
            Owner::Nobody
        );
    }

    #[test]
    fn a_broker_is_busy_only_under_the_profile_its_live_run_uses() {
        let entry = "42 0 rabbitmq,kafka local-cluster\n";
        let live = |_| true;
        assert_eq!(
            in_use_by(entry, "local-cluster", live),
            Some(vec!["rabbitmq".to_string(), "kafka".to_string()])
        );
        assert_eq!(in_use_by(entry, "local", live), None);
        assert_eq!(in_use_by(entry, "local-cluster", |_| false), None);
        // An entry written before profiles were recorded is busy under every profile.
        assert_eq!(
            in_use_by("42 0 sqs\n", "local", live),
            Some(vec!["sqs".to_string()])
        );
        // A profile name may hold spaces.
        assert!(in_use_by("42 0 sqs my lab\n", "my lab", live).is_some());
        assert_eq!(in_use_by("0 1 -\n", "local", live), None);
    }

    #[test]
    fn a_resource_name_says_when_its_run_started() {
        let t = created("bb-20261207-150057-kill-check-24c3-q0").unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(t).to_string(),
            "2026-12-07T15:00:57Z"
        );
        assert!(created("bb-kill-check").is_none());
        assert!(created("orders").is_none());
    }
}
