//! A broker's part of a file: its options under `topology.<name>` in a workload, its section of
//! a target profile; read as its folder's types, with problems reported where they are written.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;

use super::{broker, names};
use crate::target::{Controls, Section, TargetProfile};
use crate::workload::{self, BrokerKind, Raw, Workload};

/// Why a broker's part of a file does not read: the keys to the bad value inside it, and what
/// is wrong there.
pub type Problem = (Vec<String>, String);

/// A broker's part of a file (topology options, a target section) as its folder's type `T`,
/// with `T`'s defaults for what is left out.
pub fn read<T: DeserializeOwned>(raw: &Raw) -> Result<T, Problem> {
    let empty = Raw::Object(Default::default());
    let raw = if raw.is_null() { &empty } else { raw };
    serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .collect();
        (path, e.into_inner().to_string())
    })
}

/// The problem, if any, in reading `raw` as `T`: a registry entry's `options` check.
pub fn read_problem<T: DeserializeOwned>(raw: &Raw) -> Option<Problem> {
    read::<T>(raw).err()
}

/// A target section of type `T`, boxed for the registry's `section`.
pub fn read_section<T: Section + DeserializeOwned + 'static>(
    raw: &Raw,
) -> Result<Box<dyn Section>, Problem> {
    Ok(Box::new(read::<T>(raw)?))
}

/// `w`'s options for the broker `name` as its type: what its driver works with.
pub fn options<T: DeserializeOwned + Default>(w: &Workload, name: &str) -> Result<T> {
    match w.topology.brokers.get(&BrokerKind::new(name)) {
        None => Ok(T::default()),
        Some(raw) => read(raw)
            .map_err(|(path, msg)| anyhow::anyhow!("topology.{name}: {}{msg}", dotted(&path))),
    }
}

/// `target`'s section for the broker `name` as its type.
pub fn settings<T: DeserializeOwned>(target: &TargetProfile, name: &str) -> Result<T> {
    let kind = BrokerKind::new(name);
    read(raw_section(target, &kind)?).map_err(|p| section_problem(target, &kind, p))
}

/// What `target` holds under `kind`'s name, or an error that names the profile and the broker.
fn raw_section<'a>(target: &'a TargetProfile, kind: &BrokerKind) -> Result<&'a Raw> {
    target
        .brokers
        .get(kind)
        .with_context(|| format!("target profile `{}` has no `{kind}` section", target.name))
}

fn section_problem(
    target: &TargetProfile,
    kind: &BrokerKind,
    (path, msg): Problem,
) -> anyhow::Error {
    anyhow::anyhow!(
        "target profile `{}`: {kind}: {}{msg}",
        target.name,
        dotted(&path)
    )
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!("{k}: ")).collect()
}

/// `kind`'s section of `target`, or an error that names the profile and the broker.
pub fn section(target: &TargetProfile, kind: &BrokerKind) -> Result<Box<dyn Section>> {
    let b = broker(kind)?;
    (b.section)(raw_section(target, kind)?).map_err(|p| section_problem(target, kind, p))
}

/// Where `kind` listens according to `target`, for messages (passwords hidden).
pub fn address(target: &TargetProfile, kind: &BrokerKind) -> String {
    section(target, kind)
        .map(|s| s.address())
        .unwrap_or_else(|_| "(not configured)".into())
}

/// The control commands `target` gives `kind`'s broker faults (none when it has no section).
pub fn control(target: &TargetProfile, kind: &BrokerKind) -> crate::target::Control {
    section(target, kind)
        .map(|s| s.control().clone())
        .unwrap_or_default()
}

/// The same profile with `kind`'s clients sent to `proxy` instead of the broker.
pub fn through_proxy(
    target: &TargetProfile,
    kind: &BrokerKind,
    proxy: std::net::SocketAddr,
) -> Result<TargetProfile> {
    let routed = section(target, kind)?.routed_through(proxy)?;
    let mut t = target.clone();
    t.brokers.insert(kind.clone(), routed);
    Ok(t)
}

/// The workload rule the run and `validate` add: every broker it names is registered, every
/// broker's topology options read, and each listed broker's own checks pass.
pub fn validate(w: &Workload) -> Vec<(workload::At, String)> {
    let known = names().join(", ");
    let mut bad = Vec::new();
    for kind in &w.brokers {
        if broker(kind).is_err() {
            bad.push(workload::at(
                &["brokers"],
                format!("no broker is named `{kind}` (brokers: {known})"),
            ));
        }
    }
    for (kind, raw) in &w.topology.brokers {
        let Ok(b) = broker(kind) else {
            bad.push(workload::at_keys(
                vec!["topology".into(), kind.to_string()],
                format!("`{kind}` is neither `partitions` nor a broker (brokers: {known})"),
            ));
            continue;
        };
        if let Some((path, msg)) = (b.options)(raw) {
            let at = ["topology".to_string(), kind.to_string()]
                .into_iter()
                .chain(path.iter().cloned())
                .collect();
            bad.push(workload::at_keys(
                at,
                format!("topology.{kind}: {}{msg}", dotted(&path)),
            ));
        }
    }
    for b in w.brokers.iter().filter_map(|k| broker(k).ok()) {
        bad.extend((b.validate)(w));
    }
    bad
}

/// The target-profile rule the run adds: every section names a registered broker and reads as
/// its type.
pub fn check_target(t: &TargetProfile) -> Vec<(workload::At, String)> {
    let mut bad = Vec::new();
    for (kind, raw) in &t.brokers {
        let problem = match broker(kind) {
            Err(e) => Some((Vec::new(), e.to_string())),
            Ok(b) => (b.section)(raw).err(),
        };
        if let Some((path, msg)) = problem {
            let at = std::iter::once(kind.to_string()).chain(path.iter().cloned());
            bad.push(workload::at_keys(
                at.collect(),
                format!("{kind}: {}{msg}", dotted(&path)),
            ));
        }
    }
    bad
}

/// The control commands `target` gives each of `brokers`, for the pre-run checks (none for a
/// broker it has no section for: the run reports that itself).
pub fn controls(target: &TargetProfile, brokers: &[BrokerKind]) -> Controls {
    Controls {
        profile: target.name.clone(),
        of: brokers
            .iter()
            .map(|b| (b.clone(), control(target, b)))
            .collect(),
    }
}

/// The pre-run check the brokers contribute: an option that acts through a control command
/// (RabbitMQ's `partition_handling`) needs the target to have it, reported at the option.
pub fn option_controls_present(w: &Workload, controls: &Controls) -> Vec<(workload::At, String)> {
    let mut bad = Vec::new();
    for (kind, control) in &controls.of {
        let Ok(b) = broker(kind) else {
            continue; // unknown names are refused when the workload is read
        };
        for (path, name) in (b.needs_controls)(w) {
            if control.command(name).is_none() {
                let msg = format!(
                    "{} needs the `{name}` control command, but target profile `{}` has none for {kind} (add {kind}.control.{name}, as targets/local-cluster.yaml does)",
                    path.join("."),
                    controls.profile
                );
                bad.push((workload::At::Path(path), msg));
            }
        }
    }
    bad
}
