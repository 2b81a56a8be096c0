//! Faults on a cluster's nodes, through the target profile's node commands: partitions between
//! nodes (`cut {a} {b}` for every link across the split, `heal` to undo) and node kills, pauses
//! and restarts. Which nodes is decided here, from the profile's node list, the run's seed and,
//! for `leader`, what the broker says when the fault starts; how is the profile's business
//! (nftables in network namespaces locally, `docker network disconnect` in containers).

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{run_command, Fault};
use crate::target::Control;
use crate::workload::{Links, NamedShape, Shape};

/// Which nodes a node-kill, node-pause or node-restart acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeTarget {
    One,
    Leader,
    /// The largest group short of a majority (one of three).
    Minority,
    /// The smallest majority (two of three).
    Majority,
    All,
    /// One node by the name the target profile's `nodes` give it.
    Node(String),
}

pub fn parse_node_target(s: &str) -> Result<NodeTarget, String> {
    match s.trim() {
        "one" => Ok(NodeTarget::One),
        "leader" => Ok(NodeTarget::Leader),
        "minority" => Ok(NodeTarget::Minority),
        "majority" => Ok(NodeTarget::Majority),
        "all" => Ok(NodeTarget::All),
        name if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Ok(NodeTarget::Node(name.to_string()))
        }
        other => Err(format!(
            "invalid node target {other:?}; expected one, leader, minority, majority, all or a node's name"
        )),
    }
}

/// Whether choosing these nodes needs the broker's current leader.
pub fn needs_leader(target: Option<&NodeTarget>, shape: Option<&Shape>) -> bool {
    target == Some(&NodeTarget::Leader) || shape == Some(&Shape::Named(NamedShape::IsolateLeader))
}

/// The nodes `target` names, `leader` first when it is one of them.
pub fn pick(
    target: NodeTarget,
    nodes: &[String],
    leader: Option<&str>,
    rng: &mut SmallRng,
) -> Result<Vec<String>, String> {
    if nodes.is_empty() {
        return Err("the target profile lists no `nodes`".into());
    }
    let mut shuffled = nodes.to_vec();
    shuffled.shuffle(rng);
    let n = nodes.len();
    let k = match target {
        NodeTarget::Node(name) => {
            if !nodes.contains(&name) {
                return Err(format!("{name:?} is not one of the nodes {nodes:?}"));
            }
            return Ok(vec![name]);
        }
        NodeTarget::One => 1,
        NodeTarget::Leader => {
            let l = leader.ok_or("the leader is not known")?;
            return Ok(vec![l.to_string()]);
        }
        NodeTarget::Minority => (n - 1) / 2,
        NodeTarget::Majority => n / 2 + 1,
        NodeTarget::All => n,
    };
    if k == 0 {
        return Err(format!("{n} nodes have no minority to act on"));
    }
    shuffled.truncate(k);
    Ok(shuffled)
}

/// The links a partition cuts, as pairs of nodes, and how it was chosen.
pub fn cuts(
    shape: &Shape,
    nodes: &[String],
    leader: Option<&str>,
    rng: &mut SmallRng,
) -> Result<(Vec<(String, String)>, String), String> {
    let n = nodes.len();
    if n < 2 {
        return Err(format!(
            "a partition needs two nodes or more; the target profile lists {n}"
        ));
    }
    let mut order = nodes.to_vec();
    order.shuffle(rng);
    let show = |g: &[String]| g.join(" ");
    Ok(match shape {
        Shape::Named(NamedShape::IsolateOne) => {
            let (one, rest) = order.split_at(1);
            (across(one, rest), format!("isolated {}", one[0]))
        }
        Shape::Named(NamedShape::IsolateLeader) => isolate_leader(nodes, leader)?,
        Shape::Named(NamedShape::Halves) => {
            let (a, b) = order.split_at(n / 2);
            (
                across(a, b),
                format!("halves [{}] | [{}]", show(a), show(b)),
            )
        }
        Shape::Named(NamedShape::Bridge) => {
            if n < 3 {
                return Err("a bridge needs three nodes or more".into());
            }
            let bridge = order[0].clone();
            let (a, b) = order[1..].split_at((n - 1) / 2);
            (
                across(a, b),
                format!("[{}] | [{}], both reaching {bridge}", show(a), show(b)),
            )
        }
        Shape::Named(NamedShape::MajoritiesRing) => majorities_ring(&order)?,
        Shape::Groups(groups) => between_groups(groups, nodes)?,
    })
}

/// Every pair of a node of `a` and a node of `b`.
fn across(a: &[String], b: &[String]) -> Vec<(String, String)> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| (x.clone(), y.clone())))
        .collect()
}

/// The leader cut off from every other node.
fn isolate_leader(
    nodes: &[String],
    leader: Option<&str>,
) -> Result<(Vec<(String, String)>, String), String> {
    let l = leader.ok_or("the leader is not known")?;
    if !nodes.iter().any(|x| x == l) {
        return Err(format!(
            "the leader {l:?} is not one of the nodes {nodes:?}"
        ));
    }
    let one = vec![l.to_string()];
    let rest: Vec<String> = nodes.iter().filter(|x| *x != l).cloned().collect();
    Ok((across(&one, &rest), format!("isolated the leader {l}")))
}

/// Each node keeps its nearest neighbours on a ring (in `order`), enough for a majority, and
/// loses the rest: every node sees a majority, no two the same one.
fn majorities_ring(order: &[String]) -> Result<(Vec<(String, String)>, String), String> {
    let n = order.len();
    if n < 5 {
        return Err(format!(
            "majorities-ring needs five nodes or more: with {n}, no two nodes can keep different majorities"
        ));
    }
    let keep = (n / 2).div_ceil(2);
    let mut pairs = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let d = (j - i).min(n - (j - i));
            if d > keep {
                pairs.push((order[i].clone(), order[j].clone()));
            }
        }
    }
    Ok((pairs, format!("majorities ring {}", order.join(" "))))
}

/// Explicit groups: every link between two groups is cut. Each node in one group at most.
fn between_groups(
    groups: &[Vec<String>],
    nodes: &[String],
) -> Result<(Vec<(String, String)>, String), String> {
    let mut seen: Vec<&String> = groups.iter().flatten().collect();
    if let Some(x) = seen.iter().find(|x| !nodes.contains(x)) {
        return Err(format!(
            "group member {x:?} is not one of the nodes {nodes:?}"
        ));
    }
    seen.sort();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err("a node is in two groups".into());
    }
    if groups.iter().filter(|g| !g.is_empty()).count() < 2 {
        return Err("a partition needs two groups or more".into());
    }
    let mut pairs = Vec::new();
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            pairs.extend(across(a, b));
        }
    }
    let text: Vec<String> = groups
        .iter()
        .map(|g| format!("[{}]", g.join(" ")))
        .collect();
    Ok((pairs, format!("groups {}", text.join(" | "))))
}

/// The links a packet fault on `hit` acts on: each to the clients (`clients`, as the profile's
/// commands name the harness's side), each to every other node, or both; every link once.
pub fn links(hit: &[String], nodes: &[String], links: Links) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for node in hit {
        if links != Links::Peers {
            pairs.push(("clients".to_string(), node.clone()));
        }
        if links != Links::Clients {
            for other in nodes.iter().filter(|o| *o != node) {
                let seen = pairs
                    .iter()
                    .any(|(a, b)| (a == other && b == node) || (a == node && b == other));
                if !seen {
                    pairs.push((node.clone(), other.clone()));
                }
            }
        }
    }
    pairs
}

/// What acting on `pairs` does to each node, in the profile's order: `{what} {the other ends}`
/// for every node at one end of a pair or more (`cut from n2 n3`). `clients` is an end, not a
/// node.
pub fn per_node(nodes: &[String], pairs: &[(String, String)], what: &str) -> Vec<(String, String)> {
    nodes
        .iter()
        .filter_map(|node| {
            let others: Vec<&str> = pairs
                .iter()
                .filter_map(|(a, b)| {
                    (a == node)
                        .then_some(b.as_str())
                        .or((b == node).then_some(a.as_str()))
                })
                .collect();
            (!others.is_empty()).then(|| (node.clone(), format!("{what} {}", others.join(" "))))
        })
        .collect()
}

/// What a node fault does at its start, and at its end: the names of the profile's commands.
#[derive(Debug, Clone)]
pub enum Action {
    /// Run `cut` for every link across the split, and `heal` at the end.
    Partition {
        cut: &'static str,
        heal: &'static str,
    },
    /// Run `start` for every link of the chosen nodes, with `with`'s placeholders filled in
    /// (`{percent}` for a loss, `{ms}` and `{jitter_ms}` for a delay), and `heal` at the end;
    /// `what` says what it does to a link's far end (`5% loss to`).
    OnLinks {
        start: &'static str,
        heal: &'static str,
        with: Vec<(&'static str, String)>,
        what: String,
        links: Links,
    },
    /// Run this node command on each chosen node, and that one at the end (if any).
    /// `ends_itself`: the command undoes its own effect before it returns (a restart).
    Each {
        start: &'static str,
        undo: Option<&'static str>,
        ends_itself: bool,
    },
}

pub struct NodeFault {
    pub action: Action,
    pub shape: Shape,
    pub target: NodeTarget,
    pub control: Control,
    pub dir: std::path::PathBuf,
    /// The run's resource prefix: the `leader` command finds the run's queues by it.
    pub prefix: String,
    pub seed: u64,
    /// The nodes the start acted on, for the undo.
    hit: Vec<String>,
    /// What the start did to each node it touched, for the history.
    effects: Vec<(String, String)>,
}

/// The target's node commands, the directory they run in, and the run's resource prefix (by
/// which the leader of the run's queues is asked for).
pub struct Commands {
    pub control: Control,
    pub dir: std::path::PathBuf,
    pub prefix: String,
}

impl NodeFault {
    pub fn new(
        action: Action,
        shape: Shape,
        target: NodeTarget,
        commands: Commands,
        seed: u64,
    ) -> NodeFault {
        let Commands {
            control,
            dir,
            prefix,
        } = commands;
        NodeFault {
            action,
            shape,
            target,
            control,
            dir,
            prefix,
            seed,
            hit: Vec::new(),
            effects: Vec::new(),
        }
    }

    fn template(&self, name: &str) -> Result<&str> {
        self.control
            .command(name)
            .with_context(|| format!("the target profile has no `{name}` control command"))
    }

    /// Ask the broker which node leads the run's queues now.
    async fn leader(&self) -> Result<(String, String)> {
        let cmd = self.template("leader")?.replace("{prefix}", &self.prefix);
        let (out, took) = run_command(&cmd, &self.dir).await?;
        let leader = out.trim().to_string();
        if !self.control.nodes.contains(&leader) {
            bail!(
                "`{cmd}` answered {leader:?}, which is not one of the nodes {:?}",
                self.control.nodes
            );
        }
        Ok((
            leader.clone(),
            format!("leader {leader} (`{cmd}` took {took:.1}s)"),
        ))
    }

    /// Run command `name` once per link, `{a}` and `{b}` its ends (and each placeholder of
    /// `with` filled in); what was done, as ``n1|n2, n1|n3 (`template`)``.
    async fn on_links(
        &self,
        name: &str,
        pairs: &[(String, String)],
        with: &[(&str, String)],
    ) -> Result<String> {
        let template = self.template(name)?.to_string();
        for (a, b) in pairs {
            let mut cmd = template.replace("{a}", a).replace("{b}", b);
            for (placeholder, value) in with {
                cmd = cmd.replace(placeholder, value);
            }
            run_command(&cmd, &self.dir).await?;
        }
        let links: Vec<String> = pairs.iter().map(|(a, b)| format!("{a}|{b}")).collect();
        Ok(format!("{} (`{template}`)", links.join(", ")))
    }

    /// A start that failed part way leaves the links it reached cut, lossy or slow, and a
    /// failed start is never stopped: heal them now, and say so in the error.
    async fn or_heal(&self, done: Result<String>, heal: &str) -> Result<String> {
        let Err(e) = done else { return done };
        let Ok(cmd) = self.template(heal) else {
            return Err(e);
        };
        Err(match run_command(cmd, &self.dir).await {
            Ok(_) => e.context(format!("healed what it had done (`{cmd}`)")),
            Err(h) => e.context(format!("and healing what it had done failed too: {h:#}")),
        })
    }

    async fn each(&self, name: &str, nodes: &[String]) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for node in nodes {
            let cmd = self.template(name)?.replace("{node}", node);
            let (_, took) = run_command(&cmd, &self.dir).await?;
            done.push(format!("`{cmd}` took {took:.1}s"));
        }
        Ok(done)
    }
}

#[async_trait]
impl Fault for NodeFault {
    async fn start(&mut self) -> Result<String> {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let wants_leader = match self.action {
            Action::Partition { .. } => needs_leader(None, Some(&self.shape)),
            Action::OnLinks { .. } | Action::Each { .. } => needs_leader(Some(&self.target), None),
        };
        let mut said = Vec::new();
        let leader = if wants_leader {
            let (l, text) = self.leader().await?;
            said.push(text);
            Some(l)
        } else {
            None
        };
        let nodes = self.control.nodes.clone();
        match self.action.clone() {
            Action::Partition { cut, heal } => {
                let (pairs, how) = cuts(&self.shape, &nodes, leader.as_deref(), &mut rng)
                    .map_err(anyhow::Error::msg)?;
                said.push(how);
                let done = self.on_links(cut, &pairs, &[]).await;
                said.push(format!("cut {}", self.or_heal(done, heal).await?));
                self.effects = per_node(&nodes, &pairs, "cut from");
            }
            Action::OnLinks {
                start,
                heal,
                with,
                what,
                links: which,
            } => {
                self.hit = pick(self.target.clone(), &nodes, leader.as_deref(), &mut rng)
                    .map_err(anyhow::Error::msg)?;
                let pairs = links(&self.hit, &nodes, which);
                let done = self.on_links(start, &pairs, &with).await;
                let done = self.or_heal(done, heal).await?;
                // `5% loss to` names the far end; the record lists the links.
                let done_what = what.strip_suffix(" to").unwrap_or(&what);
                said.push(format!("{done_what} on {done}"));
                self.effects = per_node(&nodes, &pairs, &what);
            }
            Action::Each { start, .. } => {
                self.hit = pick(self.target.clone(), &nodes, leader.as_deref(), &mut rng)
                    .map_err(anyhow::Error::msg)?;
                said.push(format!("nodes {}", self.hit.join(" ")));
                said.extend(self.each(start, &self.hit.clone()).await?);
                // `node_kill` → `kill`: the profile's command names say what was done.
                let verb = start.strip_prefix("node_").unwrap_or(start);
                self.effects = self
                    .hit
                    .iter()
                    .map(|n| (n.clone(), verb.to_string()))
                    .collect();
            }
        }
        Ok(said.join("; "))
    }

    async fn stop(&mut self) -> Result<String> {
        match self.action {
            Action::Partition { heal, .. } | Action::OnLinks { heal, .. } => {
                let cmd = self.template(heal)?.to_string();
                let (_, took) = run_command(&cmd, &self.dir).await?;
                Ok(format!("healed: `{cmd}` took {took:.1}s"))
            }
            Action::Each { undo: Some(u), .. } => {
                Ok(self.each(u, &self.hit.clone()).await?.join("; "))
            }
            Action::Each { undo: None, .. } => Ok(String::new()),
        }
    }

    /// Who leads the run's queues once the fault is over, when the profile can say: with the
    /// start's `leader` (for faults aimed at it), the record shows whether the lead moved.
    async fn after(&mut self) -> Option<String> {
        self.control.leader.as_ref()?;
        Some(match self.leader().await {
            Ok((_, said)) => format!("after it, {said}"),
            Err(e) => format!("after it, no leader known: {e:#}"),
        })
    }

    fn nodes(&self) -> Vec<(String, String)> {
        self.effects.clone()
    }

    fn over_once_started(&self) -> bool {
        matches!(
            self.action,
            Action::Each {
                ends_itself: true,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    /// Whether `a` and `b` can still talk after `pairs` are cut.
    fn linked(pairs: &[(String, String)], a: &str, b: &str) -> bool {
        !pairs
            .iter()
            .any(|(x, y)| (x == a && y == b) || (x == b && y == a))
    }

    #[test]
    fn isolating_a_node_cuts_its_links_and_no_others() {
        let ns = nodes(3);
        let (pairs, how) = cuts(
            &Shape::Named(NamedShape::IsolateLeader),
            &ns,
            Some("n2"),
            &mut rng(),
        )
        .unwrap();
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert!(!linked(&pairs, "n2", "n1") && !linked(&pairs, "n2", "n3"));
        assert!(linked(&pairs, "n1", "n3"));
        assert!(how.contains("n2"), "{how}");
        let (pairs, _) =
            cuts(&Shape::Named(NamedShape::IsolateOne), &ns, None, &mut rng()).unwrap();
        assert_eq!(pairs.len(), 2);
        assert!(cuts(
            &Shape::Named(NamedShape::IsolateLeader),
            &ns,
            Some("n9"),
            &mut rng()
        )
        .is_err());
    }

    #[test]
    fn packet_loss_acts_on_the_chosen_nodes_links_once_each() {
        let ns = nodes(3);
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            links(&ns, &ns, Links::Clients),
            [
                pair("clients", "n1"),
                pair("clients", "n2"),
                pair("clients", "n3")
            ]
        );
        assert_eq!(
            links(&["n2".into()], &ns, Links::Peers),
            [pair("n2", "n1"), pair("n2", "n3")]
        );
        // Among all three nodes, each peer link once, and each node's link to the clients.
        let all = links(&ns, &ns, Links::All);
        assert_eq!(all.len(), 3 + 3, "{all:?}");
        assert!(all.contains(&pair("n1", "n2")) && !all.contains(&pair("n2", "n1")));
    }

    #[test]
    fn halves_bridge_and_groups_cut_across_and_only_across() {
        let ns = nodes(5);
        let (pairs, _) = cuts(&Shape::Named(NamedShape::Halves), &ns, None, &mut rng()).unwrap();
        assert_eq!(pairs.len(), 2 * 3, "two against three: {pairs:?}");
        let (pairs, how) = cuts(&Shape::Named(NamedShape::Bridge), &ns, None, &mut rng()).unwrap();
        // The bridge keeps every link; the two halves of the rest lose theirs to each other.
        assert_eq!(pairs.len(), 2 * 2, "{pairs:?}");
        let bridge = how.rsplit(' ').next().unwrap();
        assert!(
            ns.iter().all(|x| x == bridge || linked(&pairs, x, bridge)),
            "{how}"
        );
        let groups = Shape::Groups(vec![vec!["n1".into()], vec!["n2".into(), "n3".into()]]);
        let (pairs, _) = cuts(&groups, &nodes(3), None, &mut rng()).unwrap();
        assert_eq!(
            pairs,
            [("n1".into(), "n2".into()), ("n1".into(), "n3".into())]
        );
        let unknown = Shape::Groups(vec![vec!["n1".into()], vec!["n7".into()]]);
        assert!(cuts(&unknown, &nodes(3), None, &mut rng())
            .unwrap_err()
            .contains("n7"));
        let twice = Shape::Groups(vec![vec!["n1".into()], vec!["n1".into()]]);
        assert!(cuts(&twice, &nodes(3), None, &mut rng()).is_err());
    }

    #[test]
    fn a_majorities_ring_leaves_every_node_a_different_majority() {
        let ns = nodes(5);
        let (pairs, _) = cuts(
            &Shape::Named(NamedShape::MajoritiesRing),
            &ns,
            None,
            &mut rng(),
        )
        .unwrap();
        let sees = |a: &str| -> Vec<&String> {
            ns.iter()
                .filter(|b| *b == a || linked(&pairs, a, b))
                .collect()
        };
        let views: Vec<Vec<&String>> = ns.iter().map(|a| sees(a)).collect();
        assert!(views.iter().all(|v| v.len() == 3), "{views:?}");
        for (i, v) in views.iter().enumerate() {
            assert!(views[i + 1..].iter().all(|w| w != v), "{views:?}");
        }
        let err = cuts(
            &Shape::Named(NamedShape::MajoritiesRing),
            &nodes(3),
            None,
            &mut rng(),
        )
        .unwrap_err();
        assert!(err.contains("five nodes"), "{err}");
    }

    #[test]
    fn node_targets_pick_minorities_majorities_and_the_leader() {
        let ns = nodes(3);
        assert_eq!(
            pick(NodeTarget::Minority, &ns, None, &mut rng())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            pick(NodeTarget::Majority, &ns, None, &mut rng())
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            pick(NodeTarget::All, &ns, None, &mut rng()).unwrap().len(),
            3
        );
        assert_eq!(
            pick(NodeTarget::Leader, &ns, Some("n3"), &mut rng()).unwrap(),
            ["n3"]
        );
        assert!(pick(NodeTarget::Minority, &nodes(2), None, &mut rng()).is_err());
        assert!(parse_node_target("leader").is_ok() && parse_node_target("50%").is_err());
        assert_eq!(
            pick(NodeTarget::Node("n2".into()), &ns, None, &mut rng()).unwrap(),
            ["n2"]
        );
        assert!(pick(NodeTarget::Node("n9".into()), &ns, None, &mut rng()).is_err());
        // The same seed picks the same node.
        let a = pick(NodeTarget::One, &ns, None, &mut rng()).unwrap();
        assert_eq!(a, pick(NodeTarget::One, &ns, None, &mut rng()).unwrap());
    }

    #[test]
    fn each_node_is_told_what_a_fault_did_to_it() {
        let ns = nodes(3);
        let (pairs, _) = cuts(
            &Shape::Named(NamedShape::IsolateLeader),
            &ns,
            Some("n2"),
            &mut rng(),
        )
        .unwrap();
        assert_eq!(
            per_node(&ns, &pairs, "cut from"),
            [
                ("n1".to_string(), "cut from n2".to_string()),
                ("n2".to_string(), "cut from n1 n3".to_string()),
                ("n3".to_string(), "cut from n2".to_string()),
            ]
        );
        // The clients' side is an end of a link, not a node of its own.
        let pairs = links(&["n3".to_string()], &ns, Links::Clients);
        assert_eq!(
            per_node(&ns, &pairs, "5% loss to"),
            [("n3".to_string(), "5% loss to clients".to_string())]
        );
        assert!(per_node(&ns, &[], "cut from").is_empty());
    }

    /// A partition whose second cut fails heals the first before it reports the failure: a
    /// failed start is never stopped, and a cut left behind would outlive its window.
    #[tokio::test]
    async fn a_start_that_fails_part_way_heals_what_it_did() {
        let dir = tempfile::tempdir().unwrap();
        let control = Control {
            nodes: nodes(3),
            cut: Some("test {b} != n3 && echo {a}-{b} >> cuts".into()),
            heal: Some("echo healed > healed".into()),
            ..Control::default()
        };
        let groups = Shape::Groups(vec![vec!["n1".into()], vec!["n2".into(), "n3".into()]]);
        let mut fault = NodeFault::new(
            Action::Partition {
                cut: "cut",
                heal: "heal",
            },
            groups,
            NodeTarget::One,
            Commands {
                control: control.clone(),
                dir: dir.path().to_path_buf(),
                prefix: "bb".into(),
            },
            1,
        );
        let e = fault.start().await.unwrap_err();
        assert!(
            format!("{e:#}").starts_with("healed what it had done"),
            "{e:#}"
        );
        let cuts = std::fs::read_to_string(dir.path().join("cuts")).unwrap();
        assert_eq!(cuts.trim(), "n1-n2");
        assert!(dir.path().join("healed").exists());
        assert!(fault.nodes().is_empty(), "a failed start names no nodes");
    }
}
