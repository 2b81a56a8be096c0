//! Every fault kind, described once. Validation, the control commands a run needs, the toxic a
//! network fault puts on the proxy and the builder that applies a window all read this table, so
//! a new fault kind is its name in `workload::FaultKind` plus one entry here.

use anyhow::{bail, Context, Result};

use super::proxy::toxic::{self, Toxic};
use super::schedule::{self, parse_target, Window};
use super::{network, node, process, BrokerCommand, Fault, Scope};
use crate::message::{sub_seed, Stream};
use crate::target::{Control, Controls};
use crate::workload::{
    At, Direction, Fault as FaultSpec, FaultKind, NamedShape, Shape, Workers, Workload,
};

/// What a fault acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The harness's own worker processes (SIGKILL, SIGSTOP).
    Process,
    /// The broker, through the target profile's control commands.
    Broker,
    /// The connections between clients and the broker, through the fault proxy.
    Network,
    /// A cluster's nodes and the links between them, through the target's node commands.
    Node,
}

/// How a network fault's parameters become the toxic the proxy applies; the error is the user's.
pub type ToxicOf = fn(&FaultSpec) -> Result<Toxic, String>;

/// How a node fault acts on the nodes it picks.
#[derive(Clone, Copy)]
pub enum NodeAction {
    /// Cut the cluster into the groups of its `shape` (start command), and heal (undo).
    Partition,
    /// Run the start command on each chosen node, and the undo (if the window ends) on the
    /// same nodes; `ends_itself`: the start command leaves the node as it was (a restart).
    Each { ends_itself: bool },
    /// Act on the packets of each chosen node's links (every node's, unless the workload names
    /// a target: a property of the network); `effect` says how, for the history ("2% corrupted
    /// to", then the other end).
    OnLinks {
        effect: fn(&FaultSpec) -> Result<String>,
    },
}

/// One fault kind: what it accepts and how it is applied. An entry starts from its family's
/// base (`process`, `network`, `broker`, `node`) and states only what differs.
pub struct Kind {
    pub kind: FaultKind,
    /// As users write it in a workload.
    pub name: &'static str,
    pub family: Family,
    /// The optional parameters it takes, beyond those every fault takes (`at`, `random`,
    /// `every`, `count`, `duration`).
    pub takes: &'static [&'static str],
    /// Parameters it cannot do without.
    pub needs: &'static [&'static str],
    /// It must be given a `duration` (it is undone when its window ends).
    pub needs_duration: bool,
    /// Its own checks of its parameters' values, beyond `takes` and `needs`.
    pub check: fn(&FaultSpec) -> Result<(), String>,
    /// The target profile's control commands that apply it, in order.
    pub start: &'static [&'static str],
    /// Those that undo it, when its window ends (`duration` or `restart_after`).
    pub undo: &'static [&'static str],
    /// The placeholders its start command fills from its parameters, `(placeholder,
    /// parameter)`: a profile whose command lacks one would drop that parameter silently, so a
    /// fault that sets it is refused before the run.
    pub fills: &'static [(&'static str, &'static str)],
    /// Process faults: which worker processes a window acts on.
    pub workers: Option<fn(&Window) -> Workers>,
    /// Network faults: the toxic the proxy applies (value checks give the user's error).
    pub toxic: Option<ToxicOf>,
    /// Node faults: how it acts on the nodes.
    pub node: Option<NodeAction>,
    /// The fault that applies one window of this kind.
    pub build: fn(&Window, &Scope) -> Result<Box<dyn Fault>>,
}

/// What every entry starts from: nothing taken, needed or run.
const fn base(kind: FaultKind, name: &'static str, family: Family, build: Build) -> Kind {
    Kind {
        kind,
        name,
        family,
        takes: &[],
        needs: &[],
        needs_duration: false,
        check: |_| Ok(()),
        start: &[],
        undo: &[],
        fills: &[],
        workers: None,
        toxic: None,
        node: None,
        build,
    }
}

type Build = fn(&Window, &Scope) -> Result<Box<dyn Fault>>;

/// A fault on the harness's own worker processes, `workers` of them.
const fn process(kind: FaultKind, name: &'static str, workers: fn(&Window) -> Workers) -> Kind {
    Kind {
        takes: &["target", "restart_after"],
        workers: Some(workers),
        ..base(kind, name, Family::Process, crash)
    }
}

/// A fault on the connections between a client group and the broker: the proxy applies its
/// toxic, and heals it when the window ends.
const fn network(kind: FaultKind, name: &'static str, toxic: ToxicOf) -> Kind {
    Kind {
        takes: &["between"],
        needs_duration: true,
        toxic: Some(toxic),
        ..base(kind, name, Family::Network, proxied)
    }
}

/// A fault on the broker: the target's control commands `start`, undone by `undo`.
const fn broker(
    kind: FaultKind,
    name: &'static str,
    start: &'static [&'static str],
    undo: &'static [&'static str],
) -> Kind {
    Kind {
        start,
        undo,
        ..base(kind, name, Family::Broker, broker_fault)
    }
}

/// A fault on a cluster's nodes: the target's node command `start`, undone by `undo`.
const fn node(
    kind: FaultKind,
    name: &'static str,
    start: &'static [&'static str],
    undo: &'static [&'static str],
    action: NodeAction,
) -> Kind {
    Kind {
        takes: &["target"],
        start,
        undo,
        node: Some(action),
        ..base(kind, name, Family::Node, node_fault)
    }
}

/// A fault on the packets of nodes' links, healed when its window ends.
const fn packets(
    kind: FaultKind,
    name: &'static str,
    start: &'static [&'static str],
    effect: fn(&FaultSpec) -> Result<String>,
) -> Kind {
    Kind {
        needs_duration: true,
        ..node(kind, name, start, &["heal"], NodeAction::OnLinks { effect })
    }
}

pub const KINDS: &[Kind] = &[
    process(FaultKind::ConsumerCrash, "consumer-crash", |_| {
        Workers::Consumers
    }),
    process(FaultKind::ProducerCrash, "producer-crash", |_| {
        Workers::Producers
    }),
    Kind {
        takes: &["to"],
        needs: &["to"],
        check: scale_target,
        build: |w, s| {
            let to = w.spec.to.context("consumer-scale needs `to`")?;
            Ok(Box::new(process::Scale::new(
                fleet(w, s)?,
                to,
                w.stop.is_some(),
            )))
        },
        ..process(FaultKind::ConsumerScale, "consumer-scale", |_| {
            Workers::Consumers
        })
    },
    Kind {
        takes: &["target", "workers"],
        needs_duration: true,
        build: |w, s| {
            let fleet = fleet(w, s)?;
            Ok(Box::new(process::Pause::new(fleet, w.targets, seed(w, s))))
        },
        ..process(FaultKind::Pause, "pause", |w| {
            w.spec.workers.unwrap_or_default()
        })
    },
    Kind {
        takes: &["between", "reset_after"],
        ..network(FaultKind::Partition, "partition", |_| Ok(Toxic::Partition))
    },
    Kind {
        takes: &["between", "direction", "latency", "jitter"],
        needs: &["latency"],
        ..network(FaultKind::Latency, "latency", |f| {
            Ok(Toxic::Latency {
                latency: f.latency.unwrap_or_default().0,
                jitter: f.jitter.unwrap_or_default().0,
                direction: direction(f),
            })
        })
    },
    Kind {
        takes: &["between", "direction", "rate"],
        needs: &["rate"],
        ..network(FaultKind::Bandwidth, "bandwidth", |f| {
            let rate = f.rate.unwrap_or_default().0;
            if rate == 0 {
                return Err("bandwidth needs `rate` (bytes per second) above 0".into());
            }
            let direction = direction(f);
            Ok(Toxic::Bandwidth { rate, direction })
        })
    },
    Kind {
        takes: &["between", "direction", "slice_size", "slice_delay"],
        needs: &["slice_size"],
        ..network(FaultKind::Slicer, "slicer", |f| {
            let size = f.slice_size.unwrap_or_default().0;
            if size == 0 {
                return Err("slicer needs `slice_size` above 0".into());
            }
            Ok(Toxic::Slicer {
                size,
                delay: f.slice_delay.unwrap_or_default().0,
                direction: direction(f),
            })
        })
    },
    Kind {
        takes: &["between", "direction", "bytes"],
        needs: &["bytes"],
        ..network(FaultKind::LimitData, "limit-data", |f| {
            let bytes = f.bytes.unwrap_or_default().0;
            Ok(Toxic::LimitData {
                bytes,
                direction: direction(f),
            })
        })
    },
    Kind {
        takes: &["between", "delay"],
        needs: &["delay"],
        ..network(FaultKind::SlowClose, "slow-close", |f| {
            Ok(Toxic::SlowClose(f.delay.unwrap_or_default().0))
        })
    },
    network(FaultKind::ResetPeer, "reset-peer", |_| Ok(Toxic::ResetPeer)),
    Kind {
        takes: &["between", "direction", "reset_after"],
        ..network(FaultKind::Blackhole, "blackhole", |f| {
            Ok(Toxic::Blackhole(direction(f)))
        })
    },
    network(FaultKind::Down, "down", |_| Ok(Toxic::Down)),
    Kind {
        takes: &["restart_after"],
        ..broker(FaultKind::BrokerKill, "broker-kill", &["kill"], &["start"])
    },
    Kind {
        needs_duration: true,
        ..broker(
            FaultKind::BrokerPause,
            "broker-pause",
            &["pause"],
            &["resume"],
        )
    },
    broker(
        FaultKind::BrokerRestart,
        "broker-restart",
        &["kill", "start"],
        &["start"],
    ),
    Kind {
        takes: &["shape"],
        needs_duration: true,
        ..node(
            FaultKind::NodePartition,
            "node-partition",
            &["cut"],
            &["heal"],
            NodeAction::Partition,
        )
    },
    Kind {
        takes: &["target", "restart_after"],
        ..node(
            FaultKind::NodeKill,
            "node-kill",
            &["node_kill"],
            &["node_start"],
            EACH,
        )
    },
    Kind {
        needs_duration: true,
        ..node(
            FaultKind::NodePause,
            "node-pause",
            &["node_pause"],
            &["node_resume"],
            EACH,
        )
    },
    node(
        FaultKind::NodeRestart,
        "node-restart",
        &["node_restart"],
        &[],
        NodeAction::Each { ends_itself: true },
    ),
    Kind {
        takes: &["target", "loss", "correlation", "links"],
        needs: &["loss"],
        fills: &[("{percent}", "loss"), ("{correlation}", "correlation")],
        ..packets(FaultKind::NodeLoss, "node-loss", &["loss"], |n| {
            let bursts = n
                .correlation
                .map_or(String::new(), |c| format!(" (correlation {c})"));
            Ok(format!("{} loss{bursts} to", share(n.loss)?))
        })
    },
    Kind {
        takes: &["target", "latency", "jitter", "reorder", "links"],
        needs: &["latency"],
        check: whole_ms_delay,
        fills: &[
            ("{ms}", "latency"),
            ("{jitter_ms}", "jitter"),
            ("{reorder}", "reorder"),
        ],
        ..packets(FaultKind::NodeDelay, "node-delay", &["delay"], |n| {
            let latency = n
                .latency
                .map(|d| d.0)
                .context("node-delay needs `latency`")?;
            let reordered = n
                .reorder
                .map_or(String::new(), |p| format!(" ({p} reordered)"));
            let jitter = n.jitter.map(|d| d.0).unwrap_or_default();
            let (ms, jitter) = (latency.as_millis(), jitter.as_millis());
            Ok(format!("{ms}±{jitter} ms delay{reordered} to"))
        })
    },
    Kind {
        takes: &["target", "duplicate", "links"],
        needs: &["duplicate"],
        fills: &[("{percent}", "duplicate")],
        ..packets(
            FaultKind::NodeDuplicate,
            "node-duplicate",
            &["duplicate"],
            |n| Ok(format!("{} duplicated to", share(n.duplicate)?)),
        )
    },
    Kind {
        takes: &["target", "corrupt", "links"],
        needs: &["corrupt"],
        fills: &[("{percent}", "corrupt")],
        ..packets(FaultKind::NodeCorrupt, "node-corrupt", &["corrupt"], |n| {
            Ok(format!("{} corrupted to", share(n.corrupt)?))
        })
    },
];

/// Node faults that run their command on each chosen node and undo it there.
const EACH: NodeAction = NodeAction::Each { ends_itself: false };

/// A packet fault's share of packets, which its `needs` made sure of.
fn share(p: Option<crate::workload::units::Percent>) -> Result<crate::workload::units::Percent> {
    p.context("a packet fault needs its share of packets")
}

/// node-delay's values: the profiles' commands take whole milliseconds, and a packet cannot
/// leave early.
fn whole_ms_delay(f: &FaultSpec) -> Result<(), String> {
    let latency = f.latency.map(|d| d.0).unwrap_or_default();
    let jitter = f.jitter.map(|d| d.0).unwrap_or_default();
    let whole_ms = |d: std::time::Duration| d.subsec_nanos().is_multiple_of(1_000_000);
    if latency < std::time::Duration::from_millis(1) || !whole_ms(latency) {
        return Err(format!(
            "node-delay needs a `latency` of whole milliseconds, at least 1ms (not {})",
            humantime::format_duration(latency)
        ));
    }
    if jitter > latency || !whole_ms(jitter) {
        return Err(format!(
            "node-delay's `jitter` is whole milliseconds, at most the latency ({})",
            humantime::format_duration(latency)
        ));
    }
    Ok(())
}

/// Whether a kind acts on the packets of nodes' links.
fn on_packets(e: &Kind) -> bool {
    matches!(e.node, Some(NodeAction::OnLinks { .. }))
}

/// The table's entry for a kind. Every `FaultKind` has one (a unit test checks).
pub fn kind(k: FaultKind) -> &'static Kind {
    KINDS
        .iter()
        .find(|e| e.kind == k)
        .expect("every FaultKind has an entry in KINDS (a unit test checks)")
}

/// The name users write for a kind (`consumer-crash`).
pub fn name(k: FaultKind) -> &'static str {
    kind(k).name
}

/// The control commands a fault needs, for the check before the run: those that apply it, and
/// those that undo it if its window ends.
pub fn required_commands(f: &FaultSpec) -> Vec<&'static str> {
    let e = kind(f.kind);
    let ends = f.duration.is_some() || f.restart_after.is_some();
    let mut v = e.start.to_vec();
    for c in e.undo.iter().filter(|_| ends) {
        if !v.contains(c) {
            v.push(c);
        }
    }
    let target = f
        .target
        .as_deref()
        .and_then(|t| node::parse_node_target(t).ok());
    if e.family == Family::Node && node::needs_leader(target.as_ref(), f.shape.as_ref()) {
        v.insert(0, "leader");
    }
    v
}

/// The placeholders a fault needs in its start command, for the parameters it sets.
pub fn unfilled(f: &FaultSpec, command: &str) -> Vec<&'static str> {
    kind(f.kind)
        .fills
        .iter()
        .filter(|(ph, param)| f.is_set(param) && !command.contains(ph))
        .map(|(ph, _)| *ph)
        .collect()
}

/// The toxic a network fault puts on the proxy (None for the other families).
pub fn toxic(f: &FaultSpec) -> Result<Option<Toxic>, String> {
    kind(f.kind).toxic.map(|t| t(f)).transpose()
}

/// The workload's faults as concrete windows, each network fault with its toxic and groups.
pub fn windows(faults: &[FaultSpec], load_duration: std::time::Duration, seed: u64) -> Vec<Window> {
    // Validated before the run; a bad spec here yields no toxic and its window fails loudly.
    schedule::expand(faults, load_duration, seed, |f| {
        match toxic(f).ok().flatten() {
            Some(t) => (Some(t), toxic::groups(f).unwrap_or_default()),
            None => (None, Vec::new()),
        }
    })
}

fn direction(f: &FaultSpec) -> Direction {
    f.direction.unwrap_or_default()
}

/// Each window's own seed, so two crashes in one run pick their victims independently.
fn seed(w: &Window, s: &Scope) -> u64 {
    sub_seed(s.seed, Stream::FaultVictims, w.index as u64)
}

/// Whether a window needs the producers running as processes it can signal.
pub fn acts_on_producers(w: &Window) -> bool {
    kind(w.kind())
        .workers
        .is_some_and(|of| of(w) == Workers::Producers)
}

/// The worker processes a process fault's window acts on.
fn fleet(w: &Window, s: &Scope) -> Result<std::sync::Arc<dyn process::Processes>> {
    match kind(w.kind()).workers.map(|of| of(w)) {
        Some(Workers::Producers) => s.producers(),
        _ => Ok(s.fleet.clone()),
    }
}

/// consumer-scale's `to`: at most the consumer limit. 0 takes every consumer away (the
/// downstream is down): the timing checker does not count those seconds against the broker's
/// consumer availability, and the run page's decoupling section shows what the producers saw.
fn scale_target(f: &FaultSpec) -> Result<(), String> {
    let most = crate::workload::MAX_CONSUMERS;
    match f.to {
        Some(to) if to > most => Err(format!("`to` is at most {most} consumers")),
        _ => Ok(()),
    }
}

fn crash(w: &Window, s: &Scope) -> Result<Box<dyn Fault>> {
    Ok(Box::new(process::Crash::new(
        fleet(w, s)?,
        w.targets,
        seed(w, s),
    )))
}

fn broker_fault(w: &Window, s: &Scope) -> Result<Box<dyn Fault>> {
    let e = kind(w.kind());
    Ok(Box::new(BrokerCommand::new(
        e.start,
        e.undo,
        &s.control,
        s.control_dir.clone(),
    )))
}

/// Node faults run the table's commands as their entry's `node` action says.
fn node_fault(w: &Window, s: &Scope) -> Result<Box<dyn Fault>> {
    let e = kind(w.kind());
    let undo = w.stop.and(e.undo.first().copied());
    let action = match e.node.context("a node fault's entry says how it acts")? {
        NodeAction::Partition => node::Action::Partition {
            cut: e.start[0],
            heal: undo.context("a partition needs its duration and its undo command")?,
        },
        NodeAction::OnLinks { effect } => node::Action::OnLinks {
            start: e.start[0],
            heal: undo
                .with_context(|| format!("{} needs its duration and its undo command", e.name))?,
            with: fill(e, &w.spec)?,
            what: effect(&w.spec)?,
            links: w.spec.links.unwrap_or_default(),
        },
        NodeAction::Each { ends_itself } => node::Action::Each {
            start: e.start[0],
            undo,
            ends_itself,
        },
    };
    let target = match &w.spec.target {
        Some(t) => node::parse_node_target(t).map_err(anyhow::Error::msg)?,
        // Packet faults are properties of the network: every node's, unless the workload says.
        None if on_packets(e) => node::NodeTarget::All,
        None => node::NodeTarget::One,
    };
    let shape = w
        .spec
        .shape
        .clone()
        .unwrap_or(Shape::Named(NamedShape::IsolateOne));
    let commands = node::Commands {
        control: s.control.clone(),
        dir: s.control_dir.clone(),
        prefix: s.prefix.clone(),
    };
    Ok(Box::new(node::NodeFault::new(
        action,
        shape,
        target,
        commands,
        seed(w, s),
    )))
}

/// What a packet fault's start command is given: for each of its kind's `fills`, the
/// placeholder and the parameter's value as the profiles' commands take it (whole percent,
/// whole milliseconds; an optional share that is not set is 0).
fn fill(e: &Kind, n: &FaultSpec) -> Result<Vec<(&'static str, String)>> {
    let whole = |p: Option<crate::workload::units::Percent>| p.map(|p| p.0.to_string());
    let or_zero =
        |p: Option<crate::workload::units::Percent>| Some(p.map_or(0, |p| p.0).to_string());
    e.fills
        .iter()
        .map(|&(placeholder, param)| {
            let value = match param {
                "loss" => whole(n.loss),
                "duplicate" => whole(n.duplicate),
                "corrupt" => whole(n.corrupt),
                "correlation" => or_zero(n.correlation),
                "reorder" => or_zero(n.reorder),
                "latency" => n.latency.map(|d| d.0.as_millis().to_string()),
                "jitter" => Some(n.jitter.map_or(0, |d| d.0.as_millis()).to_string()),
                _ => None,
            };
            value
                .map(|v| (placeholder, v))
                .with_context(|| format!("{} needs `{param}`", e.name))
        })
        .collect()
}

fn proxied(w: &Window, s: &Scope) -> Result<Box<dyn Fault>> {
    let toxic = w.toxic.clone().with_context(|| {
        format!(
            "{} has no toxic (its spec did not validate)",
            name(w.kind())
        )
    })?;
    let Some(proxy) = &s.proxy else {
        bail!("no fault proxy runs for this broker");
    };
    Ok(Box::new(network::NetworkFault::new(
        proxy.clone(),
        w.groups.clone(),
        toxic,
        w.spec.reset_after.map(|d| d.0),
    )))
}

/// The workload rule the run and `validate` add: every fault checked against its table entry,
/// each problem at the fault's position.
pub fn validate(w: &Workload) -> Vec<(At, String)> {
    w.faults
        .iter()
        .filter_map(|f| {
            let problem = check(&f.value).err().or_else(|| {
                (w.consumers.count == 0 && only_on_consumers(&f.value)).then(|| {
                    format!(
                        "{} acts on the consumers, and this workload has none (consumers.count: 0)",
                        kind(f.value.kind).name
                    )
                })
            });
            problem.map(|m| (At::Span(f.referenced), m))
        })
        .collect()
}

/// Whether a fault acts on nothing but the consumer workers or their connections.
fn only_on_consumers(f: &FaultSpec) -> bool {
    let probe = std::time::Duration::from_secs(1);
    let Some(w) = windows(std::slice::from_ref(f), probe, 0)
        .into_iter()
        .next()
    else {
        return false;
    };
    match kind(f.kind).workers {
        Some(of) => of(&w) == Workers::Consumers,
        None => !w.groups.is_empty() && w.groups.iter().all(|g| *g == toxic::Group::Consumers),
    }
}

/// The pre-run check the fault table contributes: every fault has the control commands it
/// needs in the target, for every broker it runs against (node faults a cluster's nodes), and
/// each start command takes the parameters the fault sets.
pub fn controls_present(w: &Workload, controls: &Controls) -> Vec<(At, String)> {
    let mut bad = Vec::new();
    for f in &w.faults {
        let e = kind(f.value.kind);
        for (broker, control) in &controls.of {
            let problem = control_problem(e, &f.value, control, &controls.profile, broker.as_str())
                .map(|why| format!("fault {} {why}", e.name));
            bad.extend(problem.map(|m| (At::Span(f.referenced), m)));
        }
    }
    bad
}

/// What `control`, `broker`'s part of target profile `profile`, lacks for fault `f` (of entry
/// `e`).
fn control_problem(
    e: &Kind,
    f: &FaultSpec,
    control: &Control,
    profile: &str,
    broker: &str,
) -> Option<String> {
    if e.family == Family::Node && control.nodes.len() < 2 {
        let nodes = match control.nodes.len() {
            0 => "no nodes".to_string(),
            n => format!("{n} node"),
        };
        return Some(format!("acts on a cluster's nodes, but target profile `{profile}` lists {nodes} for {broker} (add {broker}.control.nodes, e.g. targets/local-cluster.yaml)"));
    }
    for name in required_commands(f) {
        let Some(command) = control.command(name) else {
            return Some(format!("needs the `{name}` control command, but target profile `{profile}` has none for {broker} (add {broker}.control.{name})"));
        };
        let unfilled = unfilled(f, command);
        if e.start.first() == Some(&name) && !unfilled.is_empty() {
            return Some(format!("sets parameters that target profile `{profile}`'s {broker}.control.{name} does not take: it has no {} (`{command}`)", unfilled.join(", ")));
        }
    }
    None
}

/// One fault against its kind's entry; the error says what to write instead.
pub fn check(f: &FaultSpec) -> Result<(), String> {
    let e = kind(f.kind);
    for (param, set) in f.parameters() {
        if set && !e.takes.contains(&param) {
            return Err(misplaced(param, e));
        }
    }
    if let Some(missing) = e.needs.iter().find(|n| !f.is_set(n)) {
        return Err(format!("{} needs `{missing}`", e.name));
    }
    if e.needs_duration && f.duration.is_none() {
        let why = match e.family {
            Family::Network => ": network faults heal when their window ends",
            _ => "",
        };
        return Err(format!("{} needs a `duration`{why}", e.name));
    }
    if let (Some(d), Some(r)) = (f.duration, f.restart_after) {
        if r.0 < d.0 {
            return Err(format!(
                "restart_after ({r}) is shorter than duration ({d})"
            ));
        }
    }
    if let (Some(r), Some(d)) = (f.reset_after, f.duration) {
        if r.0 >= d.0 {
            return Err(format!(
                "reset_after ({r}) must be shorter than duration ({d}), or it never happens"
            ));
        }
    }
    if let Some(t) = &f.target {
        if e.family == Family::Node {
            node::parse_node_target(t)?;
        } else {
            parse_target(t)?;
        }
    }
    if e.family == Family::Network {
        toxic::groups(f)?;
    }
    (e.check)(f)?;
    toxic(f).map(|_| ())
}

/// "`latency` does not apply to pause; it applies to latency", with a hint where one helps.
fn misplaced(param: &str, e: &Kind) -> String {
    let users: Vec<&str> = KINDS
        .iter()
        .filter(|k| k.takes.contains(&param))
        .map(|k| k.name)
        .collect();
    let all_network = KINDS
        .iter()
        .filter(|k| k.family == Family::Network)
        .all(|k| k.takes.contains(&param));
    let applies = if all_network && users.len() > 1 {
        "network faults".to_string()
    } else {
        users.join(", ")
    };
    let hint = match (param, e.family) {
        ("target", Family::Network) => {
            "; a network fault acts on a client group: use `between`, e.g. [consumers, broker]"
        }
        ("direction", Family::Network) => ": it acts on whole connections",
        ("workers", Family::Process) => " (crashes name their workers in the kind)",
        _ => "",
    };
    format!(
        "`{param}` does not apply to {}; it applies to {applies}{hint}",
        e.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pre-run check finds every fault the target cannot carry out, each at its own line,
    /// for every broker it runs against, before anything runs.
    #[test]
    fn the_pre_run_check_reports_each_fault_the_target_cannot_carry_out_at_its_line() {
        let yaml = "name: w
brokers: [rabbitmq]
load: { rate: 10/s, duration: 9s }
faults:
  - { at: 1s, kind: broker-pause, duration: 1s }
  - { at: 2s, kind: node-kill }
  - { at: 3s, kind: node-loss, loss: 5%, correlation: 20%, duration: 1s }
";
        let w = crate::workload::parse(std::path::Path::new("w.yaml"), yaml, &[]).unwrap();
        let check = |control: &str| -> Vec<(u64, String)> {
            let control: Control = serde_saphyr::from_str(control).unwrap();
            let of = vec![(crate::workload::BrokerKind::new("rabbitmq"), control)];
            let controls = Controls {
                profile: "p".into(),
                of,
            };
            controls_present(&w, &controls)
                .into_iter()
                .map(|(at, m)| match at {
                    At::Span(l) => (l.line(), m),
                    At::Path(_) => panic!("a fault's problem is at the fault"),
                })
                .collect()
        };
        let cluster =
            "{ pause: p, resume: r, nodes: [n1, n2, n3], node_kill: k, node_start: s, heal: h";
        let full = format!("{cluster}, loss: 'loss {{a}} {{b}} {{percent}} {{correlation}}' }}");
        assert_eq!(check(&full), vec![]);
        // A loss command that would drop the correlation silently.
        let no_corr = format!("{cluster}, loss: 'loss {{a}} {{b}} {{percent}}' }}");
        let found = check(&no_corr);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 7);
        assert!(
            found[0]
                .1
                .contains("rabbitmq.control.loss does not take: it has no {correlation}"),
            "{found:?}"
        );
        // One node is no cluster: both node faults say so; the broker fault still passes.
        let found = check("{ pause: p, resume: r, nodes: [n1], node_kill: k }");
        let lines: Vec<u64> = found.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![6, 7], "{found:?}");
        assert!(
            found[0]
                .1
                .contains("target profile `p` lists 1 node for rabbitmq"),
            "{found:?}"
        );
        // No pause command: the broker fault, named, with what to add.
        let found = check(&full.replace("pause: p, ", ""));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, 5);
        assert!(found[0].1.contains("fault broker-pause needs the `pause` control command, but target profile `p` has none for rabbitmq (add rabbitmq.control.pause)"), "{found:?}");
    }

    #[test]
    fn a_broker_fault_needs_its_undo_commands_only_when_it_ends() {
        let f = |src: &str| -> FaultSpec { serde_saphyr::from_str(src).unwrap() };
        let kill = f("{kind: broker-kill, at: 1s}");
        assert_eq!(required_commands(&kill), ["kill"]);
        let kill_restart = f("{kind: broker-kill, at: 1s, restart_after: 2s}");
        assert_eq!(required_commands(&kill_restart), ["kill", "start"]);
        let pause = f("{kind: broker-pause, at: 1s, duration: 2s}");
        assert_eq!(required_commands(&pause), ["pause", "resume"]);
        let restart = f("{kind: broker-restart, at: 1s}");
        assert_eq!(required_commands(&restart), ["kill", "start"]);
        assert!(required_commands(&f("{kind: partition, at: 1s, duration: 2s}")).is_empty());
        let loss = f("{kind: node-loss, loss: 5%, at: 1s, duration: 2s}");
        assert_eq!(required_commands(&loss), ["loss", "heal"]);
        let leaders = f("{kind: node-loss, loss: 5%, target: leader, at: 1s, duration: 2s}");
        assert_eq!(required_commands(&leaders), ["leader", "loss", "heal"]);
    }

    /// The fault table's `fills` is what the start commands are checked against before a run
    /// and what they are given: every placeholder gets its parameter's value.
    #[test]
    fn packet_faults_give_their_command_a_value_for_every_placeholder() {
        let f = |src: &str| -> FaultSpec { serde_saphyr::from_str(src).unwrap() };
        let filled = |src: &str| {
            let spec = f(src);
            let w = &windows(
                std::slice::from_ref(&spec),
                std::time::Duration::from_secs(9),
                1,
            )[0];
            fill(kind(spec.kind), &w.spec).unwrap()
        };
        let has = |v: &[(&str, String)], ph: &str, value: &str| {
            v.iter().any(|(p, x)| *p == ph && x == value)
        };
        let loss = filled("{kind: node-loss, loss: 5%, at: 1s, duration: 2s}");
        assert!(
            has(&loss, "{percent}", "5") && has(&loss, "{correlation}", "0"),
            "{loss:?}"
        );
        let bursty = filled("{kind: node-loss, loss: 5%, correlation: 50%, at: 1s, duration: 2s}");
        assert!(has(&bursty, "{correlation}", "50"), "{bursty:?}");
        let delay = filled("{kind: node-delay, latency: 50ms, jitter: 10ms, at: 1s, duration: 2s}");
        assert!(
            has(&delay, "{ms}", "50")
                && has(&delay, "{jitter_ms}", "10")
                && has(&delay, "{reorder}", "0"),
            "{delay:?}"
        );
        for (src, ph, value) in [
            (
                "{kind: node-duplicate, duplicate: 5%, at: 1s, duration: 2s}",
                "{percent}",
                "5",
            ),
            (
                "{kind: node-corrupt, corrupt: 1%, at: 1s, duration: 2s}",
                "{percent}",
                "1",
            ),
        ] {
            assert!(has(&filled(src), ph, value), "{src}");
        }
        for k in KINDS.iter().filter(|k| on_packets(k)) {
            assert!(!k.fills.is_empty(), "{} fills nothing in", k.name);
        }
    }

    #[test]
    fn every_kind_has_one_entry_named_as_users_write_it() {
        for (i, e) in KINDS.iter().enumerate() {
            let written = serde_json::to_value(e.kind).unwrap();
            assert_eq!(written.as_str(), Some(e.name), "{:?}", e.kind);
            assert!(
                KINDS[i + 1..].iter().all(|o| o.kind != e.kind),
                "{} twice",
                e.name
            );
        }
        let schema = schemars::schema_for!(FaultKind);
        let variants = serde_json::to_value(schema).unwrap()["enum"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        assert_eq!(variants, KINDS.len(), "a FaultKind without a table entry");
    }

    #[test]
    fn only_network_faults_have_a_toxic_and_every_parameter_is_known() {
        let any: FaultSpec = serde_saphyr::from_str("{kind: pause, at: 1s}").unwrap();
        let known: Vec<&str> = any.parameters().iter().map(|(n, _)| *n).collect();
        for e in KINDS {
            assert_eq!(e.toxic.is_some(), e.family == Family::Network, "{}", e.name);
            assert_eq!(
                e.workers.is_some(),
                e.family == Family::Process,
                "{}",
                e.name
            );
            assert_eq!(
                !e.start.is_empty(),
                matches!(e.family, Family::Broker | Family::Node),
                "{}: only broker and node faults run control commands",
                e.name
            );
            for p in e.takes.iter().chain(e.needs) {
                assert!(known.contains(p), "{}: unknown parameter {p}", e.name);
            }
            for p in e.needs {
                assert!(
                    e.takes.contains(p),
                    "{} needs {p} but does not take it",
                    e.name
                );
            }
        }
    }
}
