//! The local three-node RabbitMQ cluster (`bin/brokers up --cluster rabbitmq`): its nodes in
//! network namespaces, and the kernel-level faults between them, checked on the network with
//! TCP probes and on RabbitMQ with its own `cluster_status`. Needs root (namespaces, nftables):
//! on a machine that cannot create them, these tests fail and say why; they never skip.
//! The tests share one cluster (see `Cluster`), which stays up after them.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

fn brokers(args: &[&str]) -> Output {
    std::process::Command::new(repo().join("bin/brokers"))
        .args(args)
        // Packet faults run this build's `brokerbench packet-faults` in the node's namespace.
        .env("BROKERBENCH", env!("CARGO_BIN_EXE_brokerbench"))
        .current_dir(repo())
        .output()
        .expect("running bin/brokers")
}

fn ok(args: &[&str]) -> String {
    let o = brokers(args);
    assert!(
        o.status.success(),
        "bin/brokers {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The cluster the tests here share, one test at a time (its own lock; the single-node brokers'
/// tests run beside these). The first test in this process starts it fresh. Each later one
/// finds it reset: faults healed, partition handling back to pause_minority, RabbitMQ running
/// on every node (a node left stopped, paused, or hung in its boot is restarted), and every node
/// seeing all three with no partition remembered. A cluster that does not come back so is
/// started afresh. It stays up after the last test; bin/test takes it down
/// (`bin/brokers down --cluster`).
struct Cluster {
    _held: Held,
}

static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Cluster {
    fn take() -> Cluster {
        let held = lock("cluster", true);
        let first = !STARTED.swap(true, std::sync::atomic::Ordering::SeqCst);
        if first {
            Cluster::fresh();
        } else if let Err(why) = Cluster::reset() {
            eprintln!(
                "the cluster did not come back after the last test ({why}): starting it afresh"
            );
            Cluster::fresh();
        }
        Cluster { _held: held }
    }

    /// Down, then up and formed: n1 sees all three nodes running.
    fn fresh() {
        let _ = brokers(&["down", "--cluster", "rabbitmq"]);
        let o = brokers(&["up", "--cluster", "rabbitmq"]);
        assert!(
            o.status.success(),
            "the cluster did not start (it needs root for network namespaces and nftables): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        eventually(SEEN_WITHIN, "the cluster forms", || {
            sees("n1", &["n1", "n2", "n3"])
        });
    }

    /// Heal, restore pause_minority, and wait for a whole cluster. A node still not whole after
    /// 20 s (paused and not resuming, hung in its boot, or remembering a healed partition, as
    /// RabbitMQ 3.10 does for minutes after autoheal) is restarted.
    fn reset() -> Result<(), String> {
        let heal = brokers(&["heal"]);
        if !heal.status.success() {
            return Err(format!("heal failed: {}", stderr(&heal)));
        }
        let mode = brokers(&["partition-handling", "pause_minority"]);
        if !mode.status.success() {
            return Err(format!("partition-handling failed: {}", stderr(&mode)));
        }
        if within(Duration::from_secs(20), whole).is_ok() {
            return Ok(());
        }
        for n in NODES {
            if let Err(why) = node_whole(n) {
                eprintln!("restarting {n} after the last test: {why}");
                let _ = brokers(&["node", "restart", n]);
            }
        }
        within(Duration::from_secs(60), whole)
    }
}

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// Every node sees all three running and remembers no partition.
fn whole() -> Result<(), String> {
    NODES.into_iter().try_for_each(node_whole)
}

fn node_whole(n: &str) -> Result<(), String> {
    let status = cluster_status(n).ok_or_else(|| format!("{n} does not answer"))?;
    let running = running_in(&status);
    if running.as_deref() != Some(&names(&NODES)[..]) {
        return Err(format!("{n} sees {running:?} running"));
    }
    match status["partitions"].as_object() {
        Some(p) if p.is_empty() => Ok(()),
        _ => Err(format!("{n} reports partitions {}", status["partitions"])),
    }
}

/// No cut, loss or delay rule is in force on any node (`bin/brokers faults`).
fn no_faults_left(when: &str) {
    assert_eq!(
        ok(&["faults"]).trim(),
        "n1: \nn2: \nn3:",
        "faults left {when}"
    );
}

/// Whether member `a` can open a TCP connection to member `b` (`bin/brokers probe`).
fn reaches(a: &str, b: &str, port: &str) -> bool {
    brokers(&["probe", a, b, port]).status.success()
}

/// The nodes `node` counts as running, from its own `cluster_status`; None when RabbitMQ on
/// it does not answer (stopped, or paused as a minority).
fn running_seen_by(node: &str) -> Option<Vec<String>> {
    running_in(&cluster_status(node)?)
}

/// `node`'s own `cluster_status`, as JSON; None when RabbitMQ on it does not answer.
fn cluster_status(node: &str) -> Option<serde_json::Value> {
    let o = brokers(&["ctl", node, "cluster_status", "--formatter", "json"]);
    if !o.status.success() {
        return None;
    }
    serde_json::from_slice(&o.stdout).ok()
}

/// The running nodes a `cluster_status` lists, sorted.
fn running_in(status: &serde_json::Value) -> Option<Vec<String>> {
    let mut nodes: Vec<String> = status["running_nodes"]
        .as_array()?
        .iter()
        .filter_map(|n| n.as_str().map(String::from))
        .collect();
    nodes.sort();
    Some(nodes)
}

/// Whether RabbitMQ itself runs on `node` (its Erlang VM may run without it); None when the
/// VM does not answer.
fn rabbit_runs(node: &str) -> Option<bool> {
    let o = brokers(&["ctl", node, "eval", "rabbit:is_running()."]);
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim() == "true")
}

fn names(nodes: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = nodes
        .iter()
        .map(|n| format!("rabbit@10.77.0.1{}", &n[1..]))
        .collect();
    v.sort();
    v
}

/// Poll `check` every second until it holds, or say what was last seen after `limit`.
fn within(limit: Duration, mut check: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(seen) if Instant::now() >= deadline => return Err(seen),
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// Poll `what` every second until it holds; fail after `limit`, saying what was last seen.
fn eventually(limit: Duration, what: &str, check: impl FnMut() -> Result<(), String>) {
    if let Err(seen) = within(limit, check) {
        // `status` exits non-zero when a node is down or paused: print it either way.
        let status = brokers(&["status", "--cluster", "rabbitmq"]);
        panic!(
            "{what}: not within {limit:?}; last seen: {seen}\n{}{}\n{}",
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr),
            partition_log()
        )
    }
}

/// What the nodes' own logs say about partitions and autoheal, for a failed wait.
fn partition_log() -> String {
    let mut out = String::new();
    for n in ["n1", "n2", "n3"] {
        let log = repo().join(format!(".brokers/cluster/{n}/{n}.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text
            .lines()
            .filter(|l| l.contains("utoheal") || l.contains("partition") || l.contains("node down"))
        {
            out.push_str(&format!("{n}: {line}\n"));
        }
    }
    out
}

fn sees(node: &str, want: &[&str]) -> Result<(), String> {
    let seen = running_seen_by(node);
    if seen.as_deref() == Some(&names(want)[..]) {
        Ok(())
    } else {
        Err(format!("{node} sees {seen:?}"))
    }
}

/// Run workload `w` against the local cluster: the process's output, the run's metrics
/// from result.json, and its history as JSON lines.
fn run_on_cluster(
    dir: &std::path::Path,
    w: &std::path::Path,
) -> (Output, serde_json::Value, String) {
    let out = dir.join("reports");
    let target = repo().join("targets/local-cluster.yaml");
    let o = run_against(&target, &out, &[w.to_str().unwrap()]);
    let run = only_run_dir(&out);
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("result.json")).unwrap()).unwrap();
    let history = brokerbench(&["history", run.to_str().unwrap()]);
    (
        o,
        result["brokers"][0]["metrics"].clone(),
        String::from_utf8_lossy(&history.stdout).into_owned(),
    )
}

/// A shipped workload that should pass on the cluster, run: it passes its expectations, loses
/// nothing confirmed and keeps every key in order. Its metrics and its history, as above.
fn run_passing(dir: &std::path::Path, w: &std::path::Path) -> (serde_json::Value, String) {
    let (o, m, text) = run_on_cluster(dir, w);
    assert_eq!(o.status.code(), Some(0), "{}\n{m}", stderr(&o));
    assert_eq!(m["lost"], 0, "{m}");
    assert_eq!(m["per_key_order_violations"], 0, "{m}");
    (m, text)
}

/// The history's record of the fault of `kind` in `phase` ("Start", "Stop", "After"), as
/// `brokerbench history` prints it.
fn fault_record<'a>(history: &'a str, kind: &str, phase: &str) -> &'a str {
    let phase = format!("\"phase\":\"{phase}\"");
    history
        .lines()
        .find(|l| l.contains(&format!("\"kind\":\"{kind}\"")) && l.contains(&phase))
        .unwrap_or_else(|| panic!("no {kind} record with {phase} in:\n{history}"))
}

/// Partition detection takes net_ticktime (10 s for the local cluster, seen here in 10–20 s)
/// plus RabbitMQ's reaction; each poll gives up after bin/brokers' 10 s control timeout.
const SEEN_WITHIN: Duration = Duration::from_secs(90);

#[test]
fn the_cluster_forms_and_kernel_cuts_partition_it_until_healed() {
    let _cluster = Cluster::take();
    for n in ["n1", "n2", "n3"] {
        eventually(SEEN_WITHIN, "every node sees all three", || {
            sees(n, &["n1", "n2", "n3"])
        });
    }
    assert!(reaches("clients", "n1", "5672") && reaches("n1", "n2", "25672"));

    // pause_minority first, on the cluster as it formed: a node cut off from the other two
    // stops RabbitMQ until it is healed. (After an autoheal round RabbitMQ 3.10 kept reporting
    // the healed partition for minutes, and a pause_minority cut made then left n1 paused
    // after a "partial partition": CI, 2026-12-07. The cluster Cluster::take gives remembers
    // no partition.)
    ok(&["cut", "n3", "n1"]);
    ok(&["cut", "n3", "n2"]);
    // On the network: across the cut nothing connects; the rest of the network is untouched.
    assert!(!reaches("n3", "n1", "25672"), "n3 still reaches n1");
    assert!(!reaches("n2", "n3", "25672"), "n2 still reaches n3");
    assert!(reaches("n1", "n2", "25672"), "the cut reached n1 - n2");
    assert!(reaches("clients", "n3", "5672"), "the clients were cut too");
    assert!(ok(&["faults"]).contains("n3: cut n1,cut n2"));
    eventually(
        SEEN_WITHIN,
        "n3 pauses as a minority",
        || match rabbit_runs("n3") {
            Some(false) => Ok(()),
            other => Err(format!("RabbitMQ running on n3: {other:?}")),
        },
    );
    // `status` names the paused node and exits non-zero. Asked repeatedly: the nodes are still
    // settling right after the pause and may be slow to answer.
    eventually(SEEN_WITHIN, "status reports n3 paused", || {
        let status = brokers(&["status", "--cluster", "rabbitmq"]);
        let text = String::from_utf8_lossy(&status.stdout);
        if !status.status.success() && text.contains("n3 rabbit@10.77.0.13: paused") {
            Ok(())
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&status.stderr)))
        }
    });
    eventually(SEEN_WITHIN, "the majority goes on", || {
        sees("n1", &["n1", "n2"])
    });
    ok(&["heal"]);
    assert!(reaches("n3", "n1", "25672") && reaches("n2", "n3", "25672"));
    for n in ["n1", "n2", "n3"] {
        eventually(SEEN_WITHIN * 2, "n3 rejoins", || {
            sees(n, &["n1", "n2", "n3"])
        });
    }

    // autoheal: both sides of a partition keep running, so both views can be asked. n3 is
    // the one cut off: autoheal's coordinator is the first node by name (n1), and with the
    // coordinator among the losers RabbitMQ once left n1 paused for over 3 minutes after the
    // heal (a fresh-clone CI run). That is RabbitMQ's to answer for, not this test's.
    ok(&["partition-handling", "autoheal"]);
    ok(&["cut", "n3", "n1"]);
    ok(&["cut", "n3", "n2"]);
    // On RabbitMQ: each side sees only itself running.
    eventually(SEEN_WITHIN, "n3 alone", || sees("n3", &["n3"]));
    eventually(SEEN_WITHIN, "n1 and n2 without n3", || {
        sees("n1", &["n1", "n2"])
    });
    ok(&["heal"]);
    for n in ["n1", "n2", "n3"] {
        eventually(SEEN_WITHIN * 2, "autoheal reunites the cluster", || {
            sees(n, &["n1", "n2", "n3"])
        });
    }
    ok(&["partition-handling", "pause_minority"]);

    // A cut between the clients and a node leaves the nodes together.
    ok(&["cut", "n2", "clients"]);
    assert!(!reaches("clients", "n2", "5672") && reaches("clients", "n1", "5672"));
    assert!(reaches("n2", "n1", "25672"));
    ok(&["heal"]);
    assert!(reaches("clients", "n2", "5672"));
}

/// Every partition shape, applied by the harness's own node fault through the local cluster's
/// profile, measured on the network: across its cut no TCP connection opens, everywhere else
/// one does (the clients reach every node throughout), and after the heal all of them do.
#[test]
fn every_partition_shape_cuts_across_its_groups_and_nowhere_else() {
    use brokerbench::chaos::node::{Action, Commands, NodeFault, NodeTarget};
    use brokerbench::chaos::Fault;
    use brokerbench::workload::{BrokerKind, NamedShape, Shape};
    let _cluster = Cluster::take();
    let profile = brokerbench::target::TargetProfile::load(
        &repo().join("targets/local-cluster.yaml"),
        &[brokerbench::driver::check_target],
    )
    .unwrap();
    let control = brokerbench::driver::control(&profile, &BrokerKind::new("rabbitmq"));
    let pairs = [("n1", "n2"), ("n1", "n3"), ("n2", "n3")];
    // Which pairs are cut off from each other, by probing every pair both ways.
    let cut = || -> Vec<(&str, &str)> {
        for n in ["n1", "n2", "n3"] {
            assert!(reaches("clients", n, "5672"), "the clients lost {n}");
        }
        pairs
            .into_iter()
            .filter(|(a, b)| {
                let (there, back) = (reaches(a, b, "25672"), reaches(b, a, "25672"));
                assert_eq!(there, back, "{a} - {b} cut one way only");
                !there
            })
            .collect()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let shapes = [
        Shape::Named(NamedShape::Halves),
        Shape::Named(NamedShape::Bridge),
        Shape::Named(NamedShape::IsolateOne),
        Shape::Groups(vec![vec!["n1".into(), "n2".into()], vec!["n3".into()]]),
    ];
    for shape in shapes {
        let mut fault = NodeFault::new(
            Action::Partition {
                cut: "cut",
                heal: "heal",
            },
            shape.clone(),
            NodeTarget::One,
            Commands {
                control: control.clone(),
                dir: repo().join("targets"),
                prefix: "bb-none".into(),
            },
            7,
        );
        let said = rt.block_on(fault.start()).unwrap();
        let across = cut();
        // What the fault recorded for each node agrees with the network.
        for (a, b) in &across {
            let effect = fault
                .nodes()
                .into_iter()
                .find(|(n, _)| n == a)
                .map(|(_, e)| e)
                .unwrap_or_default();
            assert!(effect.contains(b), "{shape:?}: {a} recorded {effect:?}");
        }
        let alone = |n: &str| across.iter().filter(|(a, b)| *a == n || *b == n).count() == 2;
        match &shape {
            // Three nodes: one side of one node, the other of two.
            Shape::Named(NamedShape::Halves | NamedShape::IsolateOne) => assert!(
                across.len() == 2 && ["n1", "n2", "n3"].iter().any(|n| alone(n)),
                "{shape:?} ({said}): cut {across:?}"
            ),
            // Two sides that both still reach the node between them: one link cut.
            Shape::Named(NamedShape::Bridge) => {
                assert_eq!(across.len(), 1, "{shape:?} ({said}): cut {across:?}")
            }
            _ => assert_eq!(across, [("n1", "n3"), ("n2", "n3")], "{said}"),
        }
        rt.block_on(fault.stop()).unwrap();
        assert_eq!(
            cut(),
            Vec::<(&str, &str)>::new(),
            "{shape:?}: still cut after the heal"
        );
        no_faults_left("after the heal");
    }
}

#[test]
fn node_control_commands_and_kernel_packet_loss_act_on_one_node() {
    let _cluster = Cluster::take();
    ok(&["node", "kill", "n2"]);
    assert!(
        !reaches("clients", "n2", "5672"),
        "n2 still listens after kill"
    );
    eventually(SEEN_WITHIN, "n1 sees n2 gone", || sees("n1", &["n1", "n3"]));
    ok(&["node", "start", "n2"]);
    eventually(SEEN_WITHIN, "n2 is back in the cluster", || {
        sees("n1", &["n1", "n2", "n3"])
    });

    // 30% of n1's packets dropped each way: a TCP handshake needs a SYN in and a SYN-ACK out,
    // so about half of quick connects fail. Before and after, none do.
    let n1: SocketAddr = "10.77.0.11:5672".parse().unwrap();
    let failing = |tries: u32| {
        (0..tries)
            .filter(|_| TcpStream::connect_timeout(&n1, Duration::from_millis(300)).is_err())
            .count() as f64
            / tries as f64
    };
    assert_eq!(failing(50), 0.0, "connects fail with no loss");
    // Up to a minute of 30% loss on all of n1's traffic can stall its links to its peers past
    // net_ticktime; under pause_minority n1 would then pause and close the very port probed
    // here. RabbitMQ's reaction is not what this measures, so it is switched off meanwhile.
    ok(&["partition-handling", "ignore"]);
    ok(&["loss", "n1", "30"]);
    let share = failing(200);
    ok(&["heal"]);
    assert!(
        (0.3..=0.75).contains(&share),
        "with 30% loss each way, {:.0}% of connects failed (expected about 51%)",
        share * 100.0
    );
    let after = failing(50);
    assert_eq!(
        after,
        0.0,
        "connects still fail after heal ({:.0}%); the cluster now:\n{}",
        after * 100.0,
        String::from_utf8_lossy(&brokers(&["status", "--cluster", "rabbitmq"]).stdout)
    );
    ok(&["partition-handling", "pause_minority"]);
    assert!(
        !brokers(&["loss", "n1", "0"]).status.success(),
        "a loss of 0% is refused"
    );

    // Between two members only (the form node-loss uses): 100% between n1 and n2 stops their
    // link and nothing else.
    ok(&["loss", "n1", "n2", "100"]);
    assert!(!reaches("n1", "n2", "25672"), "n1 still reaches n2");
    assert!(reaches("n1", "n3", "25672") && reaches("clients", "n1", "5672"));
    ok(&["heal"]);
    assert!(
        reaches("n1", "n2", "25672"),
        "n1 - n2 still lossy after heal"
    );
}

/// The median time, in ms, that `from` takes to open a TCP connection to `to` (one round trip),
/// over 15 tries; from the host (`clients`) or from inside a node's namespace.
fn connect_ms(from: &str, to: &str, port: &str) -> f64 {
    let script = format!(
        "import socket, time\nts = []\nfor _ in range(15):\n    t = time.monotonic()\n    socket.create_connection(('{to}', {port}), timeout=5).close()\n    ts.append((time.monotonic() - t) * 1000)\nprint(sorted(ts)[7])"
    );
    let mut cmd = if from == "clients" {
        std::process::Command::new("python3")
    } else {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &format!("brokerbench-{from}"), "python3"]);
        c
    };
    let o = cmd.args(["-c", &script]).output().expect("running python3");
    assert!(o.status.success(), "probe {from} -> {to}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// A delay holds each packet of a link, each way: a connect (one round trip) takes at least
/// twice the delay across it and no longer elsewhere, with the jitter's spread, and none after
/// the heal. This kernel has no sch_netem; the packets wait in a netfilter queue instead.
#[test]
fn a_delay_holds_the_packets_of_one_link_until_healed() {
    let _cluster = Cluster::take();
    let (n1, n2) = ("10.77.0.11", "10.77.0.12");
    assert!(connect_ms("clients", n1, "5672") < 20.0);

    ok(&["delay", "n1", "clients", "100", "0"]);
    assert!(ok(&["faults"]).contains("n1: delay 100ms to clients"));
    let delayed = connect_ms("clients", n1, "5672");
    assert!(
        (199.0..400.0).contains(&delayed),
        "clients -> n1 took {delayed} ms"
    );
    assert!(connect_ms("clients", n2, "5672") < 20.0, "n2 delayed too");
    assert!(
        connect_ms("n2", n1, "25672") < 20.0,
        "n1's peer link delayed too"
    );
    ok(&["heal"]);
    assert!(
        connect_ms("clients", n1, "5672") < 20.0,
        "still delayed after heal"
    );

    // Between two nodes only: once each way, at each sender.
    ok(&["delay", "n1", "n2", "50", "0"]);
    let peers = connect_ms("n2", n1, "25672");
    assert!((99.0..300.0).contains(&peers), "n2 -> n1 took {peers} ms");
    assert!(connect_ms("n3", n1, "25672") < 20.0, "n3 -> n1 delayed too");
    ok(&["heal"]);
    assert!(
        connect_ms("n2", n1, "25672") < 20.0,
        "n1 - n2 still delayed after heal"
    );
    no_faults_left("after heal");

    // Jitter spreads the round trips around twice the delay.
    ok(&["delay", "n1", "clients", "100", "50"]);
    let spread: Vec<f64> = (0..4).map(|_| connect_ms("clients", n1, "5672")).collect();
    ok(&["heal"]);
    assert!(
        spread.iter().all(|ms| (100.0..400.0).contains(ms)),
        "{spread:?}"
    );
    assert!(
        !brokers(&["delay", "n1", "clients", "10", "20"])
            .status
            .success(),
        "a jitter above the delay is refused"
    );

    // Without jitter every packet waits the same, so order is kept; with `reorder`, that share
    // passes at once and overtakes the held ones.
    ok(&["delay", "n1", "clients", "30", "0"]);
    let kept = udp_arrival_order();
    ok(&["heal"]);
    ok(&["delay", "n1", "clients", "30", "0", "25"]);
    let mixed = udp_arrival_order();
    ok(&["heal"]);
    assert_eq!(kept.len(), 200, "datagrams lost: {kept:?}");
    assert_eq!(inversions(&kept), 0, "reordered without reorder: {kept:?}");
    assert_eq!(mixed.len(), 200, "datagrams lost: {mixed:?}");
    assert!(inversions(&mixed) > 10, "not reordered: {mixed:?}");
    // heal stops the loops too, not only their rules.
    let left = std::process::Command::new("pgrep")
        .args(["-af", "packet-faults --queue"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "delay loops left running after heal: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// The order in which 200 numbered UDP datagrams, sent 1 ms apart from the host, reached a
/// listener inside n1's namespace.
fn udp_arrival_order() -> Vec<u32> {
    udp_probe("clients", "n1", 200)
}

/// Send `count` numbered UDP datagrams 1 ms apart from member `from` (a node, or `clients`:
/// the host) to a listener inside node `to`'s namespace; the numbers in the order they
/// arrived, duplicates included, once nothing more came for 2 s.
fn udp_probe(from: &str, to: &str, count: u32) -> Vec<u32> {
    let listener = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 9999))\ns.settimeout(2)\nseen = []\ntry:\n    while True:\n        seen.append(s.recv(64).decode())\nexcept socket.timeout:\n    pass\nprint(','.join(seen))";
    let child = in_namespace(to)
        .args(["python3", "-c", listener])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting the UDP listener");
    std::thread::sleep(Duration::from_millis(500));
    let addr = format!("10.77.0.1{}", &to[1..]);
    let sender = format!(
        "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range({count}):\n    s.sendto(str(i).encode(), ('{addr}', 9999))\n    time.sleep(0.001)"
    );
    let sent = in_namespace(from)
        .args(["python3", "-c", &sender])
        .output()
        .expect("running the UDP sender");
    assert!(sent.status.success(), "UDP sender: {}", stderr(&sent));
    let o = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// A command run on the host (`clients`) or inside a node's network namespace.
fn in_namespace(member: &str) -> std::process::Command {
    if member == "clients" {
        return std::process::Command::new("env");
    }
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", &format!("brokerbench-{member}")]);
    c
}

/// How many UDP datagrams node `n`'s kernel dropped as damaged, and how many of those for a
/// wrong checksum (/proc/net/snmp's InErrors and InCsumErrors).
fn udp_errors(n: &str) -> (u64, u64) {
    let o = in_namespace(n)
        .args(["cat", "/proc/net/snmp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    let field = |name: &str| -> u64 {
        let at = names.split_whitespace().position(|f| f == name).unwrap();
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    };
    (field("InErrors"), field("InCsumErrors"))
}

/// The mean length of the runs of datagrams that never arrived, of `count` sent.
fn mean_gap(arrived: &[u32], count: u32) -> f64 {
    let mut got = vec![false; count as usize];
    for &i in arrived {
        got[i as usize] = true;
    }
    let lost = got.iter().filter(|g| !**g).count();
    let runs = got.windows(2).filter(|w| w[0] && !w[1]).count() + usize::from(!got[0]);
    lost as f64 / runs.max(1) as f64
}

/// Duplication, corruption and bursty loss, each on one link and measured on a UDP probe: a
/// duplicated share arrives twice; a corrupted share arrives damaged and the receiving kernel
/// drops it for its checksum (and counts it); correlated loss drops in runs while independent
/// loss drops one at a time; faults on one link stack; nothing is left after the heal. This
/// kernel has no sch_netem: duplication is nftables' `dup`, the others a netfilter queue.
#[test]
fn duplication_corruption_and_bursty_loss_act_on_their_link_until_healed() {
    let _cluster = Cluster::take();
    const N: u32 = 1000;
    let distinct = |v: &[u32]| v.iter().collect::<std::collections::BTreeSet<_>>().len();

    ok(&["duplicate", "n1", "clients", "30"]);
    assert!(ok(&["faults"]).contains("n1: duplicate 30% to clients"));
    let twice = udp_probe("clients", "n1", N);
    // Between two nodes, from either end.
    ok(&["duplicate", "n2", "n3", "30"]);
    let peers = udp_probe("n3", "n2", N);
    let untouched = udp_probe("n3", "n1", N);
    ok(&["heal"]);
    no_faults_left("after heal");
    let healed = udp_probe("clients", "n1", N);
    for (v, what) in [(&twice, "clients -> n1"), (&peers, "n3 -> n2")] {
        assert_eq!(distinct(v), N as usize, "{what}: datagrams lost");
        let extra = v.len() - N as usize;
        assert!(
            (200..400).contains(&extra),
            "{what}: {extra} duplicates of {N}"
        );
    }
    assert_eq!(untouched.len(), N as usize, "n3 -> n1 duplicated too");
    assert_eq!(healed.len(), N as usize, "still duplicated after heal");

    // Corruption: the share that was damaged is exactly what the receiver dropped as damaged,
    // most for their checksum (the others had their length flipped past the packet's end);
    // nothing else went missing.
    let before = udp_errors("n1");
    ok(&["corrupt", "n1", "clients", "20"]);
    assert!(ok(&["faults"]).contains("n1: corrupt 20% to clients"));
    let damaged = udp_probe("clients", "n1", N);
    ok(&["heal"]);
    let after = udp_errors("n1");
    let (dropped, checksums) = (after.0 - before.0, after.1 - before.1);
    let missing = N as usize - damaged.len();
    assert!((120..280).contains(&missing), "{missing} of {N} corrupted");
    assert_eq!(
        dropped, missing as u64,
        "drops as damaged against missing datagrams"
    );
    assert!(
        checksums * 10 >= dropped * 6,
        "{checksums} of {dropped} for their checksum"
    );
    assert_eq!(distinct(&damaged), damaged.len());

    // Loss: about the share asked either way, but with a correlation the drops come in runs.
    ok(&["loss", "n1", "clients", "30"]);
    let independent = udp_probe("clients", "n1", N);
    ok(&["heal"]);
    ok(&["loss", "n1", "clients", "30", "75"]);
    assert!(ok(&["faults"]).contains("n1: loss 30% (correlation 75%) to clients"));
    let bursty = udp_probe("clients", "n1", N);
    ok(&["heal"]);
    for (v, what) in [(&independent, "independent"), (&bursty, "correlated")] {
        let share = 1.0 - v.len() as f64 / N as f64;
        assert!((0.15..0.45).contains(&share), "{what} loss: {share}");
    }
    let (one_by_one, in_runs) = (mean_gap(&independent, N), mean_gap(&bursty, N));
    assert!(
        one_by_one < 2.0,
        "independent drops in runs of {one_by_one}"
    );
    assert!(in_runs > 3.0, "correlated drops in runs of only {in_runs}");

    // Stacked on one link: a delay and corruption both act (each loop hands what it passes to
    // the next rule), and the delay keeps its order.
    ok(&["delay", "n1", "clients", "30", "0"]);
    ok(&["corrupt", "n1", "clients", "20"]);
    let before = udp_errors("n1").0;
    let started = Instant::now();
    assert!(
        connect_ms("clients", "10.77.0.11", "5672") >= 59.0,
        "the delay was lost"
    );
    let both = udp_probe("clients", "n1", N);
    ok(&["heal"]);
    let dropped = udp_errors("n1").0 - before;
    assert!(
        (120..280).contains(&(N as usize - both.len())) && dropped > 100,
        "{} of {N} arrived, {dropped} checksum drops, in {:?}",
        both.len(),
        started.elapsed()
    );
    assert_eq!(inversions(&both), 0, "reordered");
    no_faults_left("after heal");
    let left = std::process::Command::new("pgrep")
        .args(["-af", "packet-faults --queue"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "packet loops left running after heal: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// How many datagrams arrived after one numbered higher.
fn inversions(order: &[u32]) -> usize {
    let mut highest = 0;
    order
        .iter()
        .filter(|&&x| {
            let late = x < highest;
            highest = highest.max(x);
            late
        })
        .count()
}

/// The shipped workload, as a user runs it against the local cluster: the quorum queue's
/// leader is cut off for 30 s; nothing confirmed is lost, the fault's record names the leader
/// RabbitMQ reported, and afterwards another node leads the queue.
#[test]
fn isolating_the_quorum_queues_leader_loses_nothing_and_moves_the_leader() {
    let _cluster = Cluster::take();
    let dir = tempfile::tempdir().unwrap();
    // Kept after the run, so that who leads it now can be asked.
    let yaml = std::fs::read_to_string(repo().join("workloads/cluster/leader-isolated.yaml"))
        .unwrap()
        .replace(
            "run: { send_timeout: 5s, drain_quiet: 2s }",
            "run: { send_timeout: 5s, drain_quiet: 2s, keep: true }",
        );
    assert!(yaml.contains("keep: true"));
    let w = workload(dir.path(), "leader-isolated", &yaml);
    let (o, m, text) = run_on_cluster(dir.path(), &w);
    assert_eq!(o.status.code(), Some(0), "{}\n{m}", stderr(&o));
    assert_eq!(m["lost"], 0, "{m}");
    // The history says whom the cut isolated, as RabbitMQ named the leader.
    let start = fault_record(&text, "node-partition", "Start");
    let isolated = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| start.contains(&format!("isolated the leader {n}")))
        .unwrap_or_else(|| panic!("{start}"));
    assert!(
        start.contains("leader ") && start.contains("cut "),
        "{start}"
    );
    // Node by node, as result.json and the run page's lanes give it: the leader cut from both
    // others, each of them cut from the leader.
    let effects: Vec<(String, String)> = m["faults"][0]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("the fault names no nodes: {m}"))
        .iter()
        .map(|e| {
            (
                e["node"].as_str().unwrap().into(),
                e["effect"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| {
            let from = if *n == isolated {
                let others: Vec<&str> = ["n1", "n2", "n3"].into_iter().filter(|o| o != n).collect();
                others.join(" ")
            } else {
                isolated.to_string()
            };
            (n.to_string(), format!("cut from {from}"))
        })
        .collect();
    assert_eq!(effects, expected, "{m}");
    let page =
        std::fs::read_to_string(only_run_dir(&dir.path().join("reports")).join("index.html"))
            .unwrap();
    assert!(
        page.contains("faults and the cluster, node by node")
            && page.contains(&format!("#0 node-partition: {}", expected[0].1)),
        "the run page draws no lanes"
    );
    // And whom RabbitMQ named once it was healed (recorded after the stop, which keeps the
    // heal's time): another node, so the record shows the move.
    let said = fault_record(&text, "node-partition", "After");
    let after = said
        .split("after it, leader ")
        .nth(1)
        .unwrap_or_else(|| panic!("no leader named after the heal: {said}"));
    assert!(
        !after.starts_with(isolated),
        "the isolated {isolated} still leads after the heal: {said}"
    );
    // The cluster over time, as the nodes described it during the run: first whole, led by
    // the node the fault isolated; then that node alone on its side (paused by pause_minority,
    // or seeing only itself) while the others see each other and one of them leads; whole again
    // after the heal.
    let views = m["cluster"]
        .as_array()
        .unwrap_or_else(|| panic!("no cluster views: {m}"));
    let line = |v: &serde_json::Value, name: &str| -> String {
        v["lines"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p[0] == name))
            .and_then(|p| p[1].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let whole = |v: &serde_json::Value| ["n1", "n2", "n3"].iter().all(|n| line(v, n) == "n1 n2 n3");
    let shown = || {
        views
            .iter()
            .map(|v| format!("{} {}", v["at_s"], v["lines"]))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        whole(&views[0]) && line(&views[0], "leader") == isolated,
        "first view:\n{}",
        shown()
    );
    let split = views
        .iter()
        .position(|v| {
            let alone = line(v, isolated);
            (alone == "paused" || alone == isolated)
                && ["n1", "n2", "n3"]
                    .iter()
                    .filter(|n| **n != isolated)
                    .all(|n| !line(v, n).contains(isolated))
                && !line(v, "leader").starts_with(isolated)
        })
        .unwrap_or_else(|| panic!("no view shows {isolated} cut off:\n{}", shown()));
    // Whole again after the heal, as a rule within a few seconds. But RabbitMQ 3.10 on Erlang
    // 25 sometimes never finishes booting the node pause_minority paused: its boot waits in
    // global:sync(), and the node monitor's "global hang workaround" (faking nodedown/nodeup,
    // which Erlang 25's global ignores) does not free it: a clean-clone run on 2026-12-05 logged
    // exactly that, and an earlier CI run showed the same `starting` to the end. The views must
    // then say just that: the node `starting` to the end, and so must the view after the run.
    if !views[split..].iter().any(whole) {
        let last = views.last().unwrap();
        let now = ok(&["view", "bb-"]);
        let log = std::fs::read_to_string(
            repo().join(format!(".brokers/cluster/{isolated}/{isolated}.log")),
        )
        .unwrap_or_default();
        let hung = line(last, isolated) == "starting"
            && now.contains(&format!("{isolated}: starting"))
            && log.contains("Global hang workaround");
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        assert!(
            hung,
            "never whole again after the split:\n{}\nafter the run:\n{now}\n{isolated}'s log, last lines first:\n{}",
            shown(),
            tail.join("\n")
        );
        eprintln!(
            "note: {isolated} never finished booting after the heal (RabbitMQ's global hang), and the views said so:\n{}",
            shown()
        );
    }
    // A new leader was elected on the majority, and it stays there after the heal (asked of a
    // node of the majority: the isolated one may still be booting).
    let majority = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| *n != isolated)
        .unwrap();
    let queues = ok(&[
        "ctl",
        majority,
        "list_queues",
        "name",
        "leader",
        "--formatter",
        "json",
    ]);
    let queues: serde_json::Value = serde_json::from_str(&queues).unwrap();
    // This run's queue only: the cluster is shared by the tests, and an earlier run may have
    // left one of its own (seen in CI, 2026-12-08).
    let run_id = only_run_dir(&dir.path().join("reports"))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap();
    let ours = brokerbench::driver::resource_prefix(&run_id);
    let leaders: Vec<&str> = queues
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(&ours)))
        .filter_map(|q| q["leader"].as_str())
        .collect();
    assert_eq!(leaders.len(), 1, "{ours}: {queues}");
    assert_ne!(
        leaders[0],
        format!("rabbit@10.77.0.1{}", &isolated[1..]),
        "the isolated leader still leads: {queues}"
    );
}

/// The shipped classic-queue workload fails, and says why: what was published while the
/// queue's only node was down was confirmed and dropped, and the report counts it as lost.
#[test]
fn a_classic_queue_on_a_killed_node_loses_what_was_confirmed_meanwhile() {
    let _cluster = Cluster::take();
    let dir = tempfile::tempdir().unwrap();
    let w = repo().join("workloads/cluster/classic-queue-node-killed.yaml");
    let (o, m, text) = run_on_cluster(dir.path(), &w);
    assert_eq!(o.status.code(), Some(1), "{}\n{m}", stderr(&o));
    // Lost means confirmed and then found nowhere, the final read complete.
    assert!(m["lost"].as_u64().unwrap() > 100, "{m}");
    assert_eq!(m["unverified"], 0, "{m}");
    let start = fault_record(&text, "node-kill", "Start");
    assert!(start.contains("leader n"), "{start}");
}

/// The shipped minority-partition workload: one node cut off from the other two while the
/// clients reach all three. Under pause_minority it stops serving rather than confirm what it
/// cannot replicate: nothing confirmed is lost, the run passes its expectations, and the history
/// names the node and which node each client used.
#[test]
fn a_node_cut_off_from_the_majority_loses_nothing_and_rejoins() {
    let _cluster = Cluster::take();
    let dir = tempfile::tempdir().unwrap();
    // The workload chooses pause_minority: it is set for the run, whatever the cluster had.
    ok(&["partition-handling", "autoheal"]);
    let w = repo().join("workloads/cluster/minority-partition.yaml");
    let (o, m, text) = run_on_cluster(dir.path(), &w);
    let status = brokers(&["status", "--cluster", "rabbitmq"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("partition handling: pause_minority"),
        "{status}"
    );
    assert_eq!(o.status.code(), Some(0), "{}\n{m}", stderr(&o));
    assert_eq!(m["lost"], 0, "{m}");
    assert_eq!(m["unverified"], 0, "{m}");
    // The failover the clients lived through is measured (and bounded by the expectations).
    let outage = m["faults"][0]["send_outage_s"].as_f64();
    assert!(outage.is_some_and(|s| s < 30.0), "{m}");
    // Which node each client used is on record, from its first connection on, and in the report.
    let connected = text
        .lines()
        .filter(|l| l.contains("{\"Connected\":"))
        .count();
    assert!(
        connected >= 3,
        "2 producers and 1 consumer, {connected} connections:\n{text}"
    );
    assert_eq!(
        m["connections"].as_array().map(Vec::len),
        Some(connected),
        "{m}"
    );
    let report =
        std::fs::read_to_string(only_run_dir(&dir.path().join("reports")).join("index.html"))
            .unwrap();
    assert!(report.contains("Which node each client used") && report.contains("10.77.0.1"));
    let start = fault_record(&text, "node-partition", "Start");
    let isolated = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| start.contains(&format!("isolated {n};")))
        .unwrap_or_else(|| panic!("the start names no isolated node: {start}"));
    for other in ["n1", "n2", "n3"].into_iter().filter(|n| *n != isolated) {
        assert!(
            start.contains(&format!("{isolated}|{other}")),
            "{isolated} not cut from {other}: {start}"
        );
    }
    // Whether the paused node rejoins after the heal is RabbitMQ's recovery, asked of it by the
    // partition test above; here the run's verdict is the point.
}

/// The shipped packet-loss workload: 5% of the packets between the clients and every node
/// dropped for 30 s. TCP retransmits, so the verdicts stay clean and the faults are in force on
/// all three nodes while it runs (the history's record), and gone after.
#[test]
fn packet_loss_on_the_clients_links_costs_latency_not_messages() {
    let _cluster = Cluster::take();
    let dir = tempfile::tempdir().unwrap();
    let w = repo().join("workloads/cluster/packet-loss.yaml");
    let (_, text) = run_passing(dir.path(), &w);
    let start = fault_record(&text, "node-loss", "Start");
    for n in ["n1", "n2", "n3"] {
        assert!(
            start.contains(&format!("{n}|clients")) || start.contains(&format!("clients|{n}")),
            "no loss on {n}'s client link: {start}"
        );
    }
    fault_record(&text, "node-loss", "Stop");
    no_faults_left("after the run");
}

/// The shipped rolling-restart workload: n1, n2 and n3 restarted in turn, 20 s apart, under
/// load. The quorum queue keeps every confirmed message and every key in order; each restart is
/// on record for its node, and the clients, whose node went away, came back on another.
#[test]
fn a_rolling_restart_loses_nothing_and_the_clients_follow_the_nodes() {
    let _cluster = Cluster::take();
    let dir = tempfile::tempdir().unwrap();
    let w = repo().join("workloads/cluster/rolling-restart.yaml");
    let (m, text) = run_passing(dir.path(), &w);
    let restarted: Vec<String> = m["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(!f["failed"].as_bool().unwrap(), "{f}");
            f["nodes"][0]["node"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(restarted, ["n1", "n2", "n3"], "{m}");
    // Every node was the one that went away at some point, so some client moved.
    let endpoints: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.contains("{\"Connected\":"))
        .filter_map(|l| l.split("\"endpoint\":\"").nth(1))
        .filter_map(|e| e.split('"').next())
        .collect();
    assert!(
        endpoints.len() >= 2,
        "the clients never moved: {endpoints:?}"
    );
    no_faults_left("after the run");
}

/// The shipped damaged-packets workload: corruption, duplication and bursty loss at once on
/// every node's links for 30 s. TCP hides them: nothing lost, nothing delivered twice, every key
/// in order; each fault was in force on all three nodes, each under its own kind, and the
/// packet loops are gone after the run.
#[test]
fn damaged_duplicated_and_burst_lost_packets_cost_latency_not_messages() {
    let _cluster = Cluster::take();
    let dir = tempfile::tempdir().unwrap();
    let w = repo().join("workloads/cluster/damaged-packets.yaml");
    let (m, text) = run_passing(dir.path(), &w);
    assert_eq!(m["redeliveries"], 0, "{m}");
    for (kind, what) in [
        ("node-corrupt", "2% corrupted"),
        ("node-duplicate", "5% duplicated"),
        ("node-loss", "3% loss (correlation 50%)"),
    ] {
        let start = fault_record(&text, kind, "Start");
        assert!(
            start.contains(&format!("\"detail\":\"{what} on ")),
            "{kind}: {start}"
        );
        fault_record(&text, kind, "Stop");
    }
    let kinds: Vec<&str> = m["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["node-corrupt", "node-duplicate", "node-loss"],
        "{m}"
    );
    no_faults_left("after the run");
}

/// The shipped slow-replication workload: 50 ± 10 ms on the quorum queue's leader's links to
/// its followers for 30 s. Nothing is lost or reordered, and while the delay lasts each message
/// waits at least a round trip to a follower before it is committed and delivered.
#[test]
fn a_slow_link_between_the_nodes_costs_latency_not_messages() {
    let _cluster = Cluster::take();
    let dir = tempfile::tempdir().unwrap();
    let w = repo().join("workloads/cluster/slow-replication.yaml");
    let (m, text) = run_passing(dir.path(), &w);
    let start = fault_record(&text, "node-delay", "Start");
    let leader = ["n1", "n2", "n3"]
        .into_iter()
        .find(|n| start.contains(&format!("\"detail\":\"leader {n} ")))
        .unwrap_or_else(|| panic!("no leader named: {start}"));
    let effect = m["faults"][0]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|e| e["node"] == leader))
        .and_then(|e| e["effect"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        effect.starts_with("50±10 ms delay to ") && !effect.contains("clients"),
        "{effect}"
    );
    // Seconds wholly inside the delay: the jitter is at most 10 ms each way, so a commit's round
    // trip to a follower takes at least 80 ms.
    let (from, to) = (
        m["faults"][0]["start_s"].as_f64().unwrap(),
        m["faults"][0]["end_s"].as_f64().unwrap(),
    );
    let mut slow: Vec<f64> = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| {
            let s = w["second"].as_f64().unwrap();
            s >= from + 2.0 && s + 1.0 <= to
        })
        .filter_map(|w| w["e2e_p50_ms"].as_f64())
        .collect();
    slow.sort_by(f64::total_cmp);
    assert!(slow.len() > 20, "{slow:?}");
    assert!(
        slow[slow.len() / 2] >= 80.0,
        "end-to-end p50 per second in the delay: {slow:?}"
    );
    no_faults_left("after the run");
}
