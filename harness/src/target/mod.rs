//! Where the brokers are and how to control them, kept apart from workloads so one workload runs
//! against local processes, docker containers or a managed service unchanged.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::workload::{At, BrokerKind, Raw};

/// A target profile: its name, and one section per broker under the broker's name, which that
/// broker's driver reads as its own type (`driver::check_target` checks them all).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TargetProfile {
    pub name: String,
    #[serde(flatten)]
    pub brokers: BTreeMap<BrokerKind, Raw>,
    /// Directory control commands run in (the profile file's directory); not part of the file.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// How the harness acts on the broker and watches it: shell commands that broker faults run
/// (each must return once the action is done), and where its process id is.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub kill: Option<String>,
    pub pause: Option<String>,
    pub resume: Option<String>,
    pub start: Option<String>,
    /// Exit 0 when the broker answers: asked before a run when an earlier run of the job left
    /// it faulted (a fault's undo failed), so the next run does not use it blindly.
    pub ready: Option<String>,
    /// For a broker whose client protocol cannot list what runs created (AMQP): print one
    /// `queue NAME` or `exchange NAME` line each, for `brokerbench leftovers`.
    pub list: Option<String>,
    /// Print the faults in force, one `name: what` line each (empty after the colon when
    /// none), for `brokerbench leftovers`; its `heal` undoes them.
    pub faults: Option<String>,
    /// A file holding the broker's process id, relative to the profile's directory. When set,
    /// the broker's processes are sampled each second for what they cost (CPU, memory,
    /// storage writes).
    pub pid_file: Option<String>,
    /// For a broker in a container: a command that streams `docker stats --format '{{json .}}'`
    /// lines for it, sampled the same way (used when there is no `pid_file`).
    pub stats: Option<String>,
    /// A cluster's nodes, by the names its node commands take (`{node}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Node faults (`node-kill`, `node-pause`, `node-restart`): one node at a time, `{node}`.
    pub node_kill: Option<String>,
    pub node_pause: Option<String>,
    pub node_resume: Option<String>,
    pub node_start: Option<String>,
    pub node_restart: Option<String>,
    /// node-partition: drop every packet between nodes `{a}` and `{b}`, both ways...
    pub cut: Option<String>,
    /// node-loss: drop `{percent}` of the packets between `{a}` and `{b}` (nodes, or `clients`)
    /// at random, both ways, in bursts when `{correlation}` (a percentage) is above 0...
    pub loss: Option<String>,
    /// node-delay: hold the packets between `{a}` and `{b}` for `{ms}` ± `{jitter_ms}`
    /// milliseconds, both ways, but pass `{reorder}` percent of them at once...
    pub delay: Option<String>,
    /// node-duplicate: send `{percent}` of the packets between `{a}` and `{b}` twice...
    pub duplicate: Option<String>,
    /// node-corrupt: flip one bit in `{percent}` of the packets between `{a}` and `{b}`...
    pub corrupt: Option<String>,
    /// ...and undo every cut, loss, delay, duplication and corruption.
    pub heal: Option<String>,
    /// Print the name of the node that leads the first of the run's queues or partitions, whose
    /// names start with `{prefix}`, now.
    pub leader: Option<String>,
    /// Set how the cluster's nodes react to a partition to `{mode}`, for a workload that
    /// chooses (RabbitMQ: pause_minority, autoheal or ignore).
    pub partition_handling: Option<String>,
    /// Print the cluster as the broker sees it now, one `name: state` line each (each node's
    /// view of its peers, the leader of the run's queues `{prefix}`, ...). While the load and the
    /// drain run it is asked every few seconds, and recorded whenever its answer changes: the
    /// report's "cluster over time".
    pub view: Option<String>,
}

impl Control {
    /// The control command of this name (its key in the profile), if the profile gives it.
    /// `pid_file`, `stats` and `nodes` are not commands.
    pub fn command(&self, name: &str) -> Option<&str> {
        match name {
            "kill" => self.kill.as_deref(),
            "pause" => self.pause.as_deref(),
            "resume" => self.resume.as_deref(),
            "start" => self.start.as_deref(),
            "ready" => self.ready.as_deref(),
            "list" => self.list.as_deref(),
            "faults" => self.faults.as_deref(),
            "node_kill" => self.node_kill.as_deref(),
            "node_pause" => self.node_pause.as_deref(),
            "node_resume" => self.node_resume.as_deref(),
            "node_start" => self.node_start.as_deref(),
            "node_restart" => self.node_restart.as_deref(),
            "cut" => self.cut.as_deref(),
            "loss" => self.loss.as_deref(),
            "delay" => self.delay.as_deref(),
            "duplicate" => self.duplicate.as_deref(),
            "corrupt" => self.corrupt.as_deref(),
            "heal" => self.heal.as_deref(),
            "leader" => self.leader.as_deref(),
            "partition_handling" => self.partition_handling.as_deref(),
            "view" => self.view.as_deref(),
            _ => None,
        }
    }
}

/// A check that a later stage adds to reading a profile (the driver registry's): every problem,
/// at the position of the value it is about.
pub type Rule = fn(&TargetProfile) -> Vec<(At, String)>;

/// The control commands a target gives each broker of one workload, for the pre-run checks.
pub struct Controls {
    /// The target profile's name, for messages.
    pub profile: String,
    pub of: Vec<(BrokerKind, Control)>,
}

/// A check of a workload against its target's control commands, made before anything runs.
/// Each stage contributes its own (the fault table its commands, a broker its options'), and
/// the command line runs them all: each problem at its place in the workload.
pub type PreRun = fn(&crate::workload::Workload, &Controls) -> Vec<(At, String)>;

impl TargetProfile {
    /// Read and check a profile; every problem is reported as `file:line:col: message`.
    pub fn load(path: &Path, rules: &[Rule]) -> Result<TargetProfile> {
        let src = std::fs::read_to_string(path)
            .with_context(|| format!("reading target profile {}", path.display()))?;
        let mut t: TargetProfile = serde_saphyr::from_str(&src).map_err(|e| {
            let (l, c, message) = crate::workload::yaml_error(&e);
            anyhow::anyhow!("{}:{l}:{c}: {message}", path.display())
        })?;
        // A bare file name's parent is "": commands must still run somewhere (here).
        t.dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => Path::new(".").to_owned(),
        };
        let problems: Vec<String> = rules
            .iter()
            .flat_map(|rule| rule(&t))
            .map(|(at, message)| {
                let (l, c) = match at {
                    At::Span(l) => (l.line(), l.column()),
                    At::Path(p) => crate::workload::locate(&src, &p),
                };
                format!("{}:{l}:{c}: {message}", path.display())
            })
            .collect();
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
        Ok(t)
    }
}

/// One broker's section of a target profile, as a run uses it. Each broker's folder in `driver/`
/// declares its section type and implements this for it.
pub trait Section {
    /// The shell commands its broker faults run.
    fn control(&self) -> &Control;
    /// Where the broker listens, for messages (passwords hidden).
    fn address(&self) -> String;
    /// host:port the fault proxy forwards to.
    fn upstream(&self) -> Result<String>;
    /// This section with the broker's clients sent to `proxy` instead, as a profile holds it.
    fn routed_through(&self, proxy: std::net::SocketAddr) -> Result<Raw>;
}

/// `u` with its host and port replaced by `proxy`'s, written as the user wrote it otherwise.
pub fn with_address(u: &str, proxy: std::net::SocketAddr) -> Result<String> {
    let mut url = url::Url::parse(u).with_context(|| format!("parsing {}", redact_url(u)))?;
    url.set_ip_host(proxy.ip())
        .map_err(|_| anyhow::anyhow!("cannot set the host of {}", redact_url(u)))?;
    url.set_port(Some(proxy.port()))
        .map_err(|_| anyhow::anyhow!("cannot set the port of {}", redact_url(u)))?;
    let out = url.to_string();
    // Url adds a root path; keep the address as the user wrote it.
    Ok(if u.ends_with('/') {
        out
    } else {
        out.trim_end_matches('/').to_string()
    })
}

/// host:port of a URL that must use the plain (not TLS) `scheme`, for the fault proxy.
pub fn plain_url_authority(u: &str, scheme: &str, default_port: u16) -> Result<String> {
    let url = url::Url::parse(u).with_context(|| format!("parsing {}", redact_url(u)))?;
    if url.scheme() != scheme {
        anyhow::bail!(
            "network faults need a plain {scheme}:// address, not {}: the proxy does not terminate TLS",
            redact_url(u)
        );
    }
    let host = url
        .host_str()
        .with_context(|| format!("{} has no host", redact_url(u)))?;
    Ok(format!("{host}:{}", url.port().unwrap_or(default_port)))
}

/// Hide the password in an AMQP URL before it goes into a message or a report.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command field added to `Control` without its name in `command` would be read from the
    /// profile and never run: every field but the three that are not commands is reachable.
    #[test]
    fn every_control_command_is_found_by_its_name() {
        let fields = serde_json::to_value(Control::default()).unwrap();
        let fields = fields.as_object().unwrap();
        assert!(fields.len() > 15, "{fields:?}");
        for name in fields.keys() {
            if ["pid_file", "stats", "nodes"].contains(&name.as_str()) {
                continue;
            }
            let c: Control =
                serde_json::from_value(serde_json::json!({ name.clone(): name })).unwrap();
            assert_eq!(c.command(name), Some(name.as_str()), "{name}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact_url("amqp://host:5672"), "amqp://host:5672");
    }
}
