use super::*;
use crate::history::Position;
use crate::target::TargetProfile;
use crate::workload::{self, BrokerKind};
use futures::FutureExt;
use std::path::Path;
use std::time::Duration;

#[test]
fn typed_options_read_as_flat_settings() {
    let s = settings_of(&serde_json::json!({ "queue_type": "quorum", "linger": { "ms": 5 } }));
    assert_eq!(
        s,
        vec![
            ("linger.ms".to_string(), "5".to_string()),
            ("queue_type".to_string(), "quorum".to_string())
        ]
    );
}

#[test]
fn every_broker_has_one_name() {
    let mut names = names();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), BROKERS.len());
    assert!(broker(&BrokerKind::new("no-such-broker")).is_err());
}

fn profile(name: &str) -> TargetProfile {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets");
    TargetProfile::load(&root.join(name), &[check_target]).unwrap()
}

#[test]
fn shipped_profiles_describe_every_broker_alike() {
    let (local, docker) = (profile("local.yaml"), profile("docker.yaml"));
    for b in BROKERS {
        let kind = BrokerKind::new(b.name);
        let (l, d) = (
            section(&local, &kind).unwrap(),
            section(&docker, &kind).unwrap(),
        );
        // Same ports on both, so a workload's results compare across profiles.
        assert_eq!(l.address(), d.address(), "{kind}");
        for (p, s) in [(&local, &l), (&docker, &d)] {
            let c = s.control();
            assert!(
                c.kill.is_some()
                    && c.pause.is_some()
                    && c.resume.is_some()
                    && c.start.is_some()
                    && c.ready.is_some(),
                "{} {kind}",
                p.name
            );
        }
        // The local brokers' cost is sampled through the pid files bin/brokers writes.
        let pid_file = l.control().pid_file.clone().unwrap_or_default();
        assert_eq!(pid_file, format!("../.brokers/{kind}/pid"), "{kind}");
        // The containers' through `docker stats` of the service that runs the broker.
        let stats = d.control().stats.clone().unwrap_or_default();
        assert!(
            stats.starts_with("docker stats --format '{{json .}}' $(docker compose")
                && stats.ends_with(")"),
            "{kind}: {stats}"
        );
        let service = stats
            .trim_end_matches(')')
            .rsplit(' ')
            .next()
            .unwrap_or_default();
        assert!(
            d.control()
                .kill
                .as_deref()
                .is_some_and(|k| k.ends_with(service)),
            "{kind}: stats and kill name the same service"
        );
    }
}

/// Every node-fault kind runs against both cluster profiles: the local one (network
/// namespaces, run by the cluster tests) and the docker one (which cannot run here), so a
/// workload written for one runs on the other.
#[test]
fn both_cluster_profiles_offer_every_node_fault_with_its_commands() {
    use crate::chaos::faults::{Family, KINDS};
    let (local, docker) = (
        profile("local-cluster.yaml"),
        profile("docker-cluster.yaml"),
    );
    let node_kinds: Vec<_> = KINDS.iter().filter(|k| k.family == Family::Node).collect();
    assert!(node_kinds.len() >= 7, "the node faults left the table");
    let sections = [
        (&local, "rabbitmq"),
        (&docker, "rabbitmq"),
        (&docker, "kafka"),
    ];
    for (p, b) in sections {
        let c = section(p, &BrokerKind::new(b)).unwrap().control().clone();
        assert_eq!(c.nodes, ["n1", "n2", "n3"], "{} {b}", p.name);
        for k in &node_kinds {
            // `leader` for the faults aimed at it.
            for name in k.start.iter().chain(k.undo).chain(&["leader"]) {
                assert!(
                    c.command(name).is_some(),
                    "{} {b}: {} needs `{name}`",
                    p.name,
                    k.name
                );
            }
            // And the start command takes every parameter the fault fills in.
            let start = c.command(k.start[0]).unwrap_or_default();
            for (placeholder, _) in k.fills {
                assert!(
                    start.contains(placeholder),
                    "{} {b}: {} passes {placeholder} to `{start}`",
                    p.name,
                    k.name
                );
            }
        }
        // Per-node commands name the node; per-link ones both ends.
        for name in [
            "node_kill",
            "node_pause",
            "node_resume",
            "node_start",
            "node_restart",
        ] {
            assert!(c.command(name).is_some_and(|t| t.contains("{node}")));
        }
        for name in ["cut", "loss", "delay", "duplicate", "corrupt"] {
            let t = c.command(name).unwrap_or_default();
            assert!(
                t.contains("{a}") && t.contains("{b}"),
                "{} {b}: {t}",
                p.name
            );
        }
    }
    // The workload's partition handling, on both RabbitMQ clusters.
    for p in [&local, &docker] {
        let c = control(p, &BrokerKind::new("rabbitmq"));
        assert!(c.partition_handling.is_some_and(|t| t.contains("{mode}")));
    }
}

/// docker-compose.yml's cluster profile as targets/docker-cluster.yaml and bin/docker-cluster
/// use it: a service per node, each node's published port in the profile, and every pair of
/// nodes on a network of its own, where each finds the other at the address bin/docker-cluster
/// connects it back with (10.79.<ij>.<1k Kafka, 2k RabbitMQ>).
#[test]
fn the_compose_cluster_profile_matches_its_target_and_its_fault_script() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let compose: serde_json::Value = serde_saphyr::from_str(&src).unwrap();
    let services = &compose["services"];
    let docker = profile("docker-cluster.yaml");
    let addresses = address(&docker, &BrokerKind::new("kafka"))
        + ", "
        + &address(&docker, &BrokerKind::new("rabbitmq"));
    for (broker, octet) in [("kafka", 1), ("rabbitmq", 2)] {
        for i in 1..=3u32 {
            let name = format!("{broker}-n{i}");
            let s = &services[&name];
            assert_eq!(s["profiles"], serde_json::json!(["cluster"]), "{name}");
            assert_eq!(s["hostname"], name.as_str());
            // Published on loopback at the port the profile connects to.
            let port = s["ports"][0].as_str().unwrap_or_default();
            let published = port.split(':').nth(1).unwrap_or_default();
            assert!(
                port.starts_with("127.0.0.1:")
                    && addresses.contains(&format!("127.0.0.1:{published}")),
                "{name}: {port} is not in {addresses}"
            );
            let nets = &s["networks"];
            assert_eq!(
                nets["bb-clients"]["ipv4_address"],
                format!("10.79.0.{octet}{i}").as_str(),
                "{name}"
            );
            for j in (1..=3u32).filter(|j| *j != i) {
                let (lo, hi) = (i.min(j), i.max(j));
                let net = format!("bb-n{lo}-n{hi}");
                assert_eq!(
                    nets[&net]["ipv4_address"],
                    format!("10.79.{lo}{hi}.{octet}{i}").as_str(),
                    "{name} on {net}"
                );
                // Named as bin/docker-cluster disconnects and connects it.
                assert_eq!(
                    compose["networks"][&net]["name"],
                    format!("brokerbench-n{lo}-n{hi}").as_str()
                );
                // The peer's name leads to the peer over their pair's network only.
                let peer = format!("{broker}-n{j}:10.79.{lo}{hi}.{octet}{j}");
                assert!(
                    s["extra_hosts"]
                        .as_array()
                        .is_some_and(|h| h.iter().any(|x| x == peer.as_str())),
                    "{name} lacks {peer}"
                );
            }
        }
    }
    // Replicated as production would: three copies, two in sync before a write is acknowledged.
    let env = &services["kafka-n2"]["environment"];
    assert_eq!(env["KAFKA_NODE_ID"], 2);
    assert_eq!(env["KAFKA_MIN_INSYNC_REPLICAS"], 2);
    assert_eq!(env["KAFKA_DEFAULT_REPLICATION_FACTOR"], 3);
    // The single-node services stay outside the profile: `docker compose up` is unchanged.
    for single in ["kafka", "rabbitmq", "localstack"] {
        assert!(services[single]["profiles"].is_null(), "{single}");
    }
    // The script's addressing scheme is the one checked above.
    let script = std::fs::read_to_string(root.join("bin/docker-cluster")).unwrap();
    assert!(script.contains(r#"echo "brokerbench-n$a-n$b 10.79.$a$b""#));
    assert_eq!(
        compose["networks"]["bb-clients"]["name"],
        "brokerbench-clients"
    );
    assert!(script.contains("peer=10.79.0.1 ") && src.contains("gateway: 10.79.0.1 "));
    assert!(script.contains(r#"kafka) echo "1${2#n}" ;; rabbitmq) echo "2${2#n}""#));
}

#[test]
fn a_section_routed_through_the_proxy_reads_back_with_the_proxy_address() {
    let local = profile("local.yaml");
    let proxy: std::net::SocketAddr = "127.0.0.1:40001".parse().unwrap();
    for b in BROKERS {
        let kind = BrokerKind::new(b.name);
        let routed = through_proxy(&local, &kind, proxy).unwrap();
        let upstream = section(&routed, &kind).unwrap().upstream().unwrap();
        assert_eq!(upstream, "127.0.0.1:40001", "{kind}");
        // The profile's other sections are untouched.
        assert_eq!(routed.brokers.len(), local.brokers.len());
    }
}

fn problems(yaml: &str) -> Vec<String> {
    match workload::parse(Path::new("w.yaml"), yaml, &[validate]) {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

const BASE: &str = "name: t\nbrokers: [kafka, sqs]\nload: { rate: 1/s, duration: 2s }\n";

#[test]
fn every_broker_reads_its_own_options_with_its_defaults() {
    let yaml = format!("{BASE}topology:\n  partitions: 2\n  kafka: {{ idempotence: false }}\n");
    let w = workload::parse(Path::new("w.yaml"), &yaml, &[validate]).unwrap();
    let k: kafka::options::Options = options(&w, "kafka").unwrap();
    assert!(!k.idempotence);
    assert_eq!(k.session_timeout, workload::units::Dur::secs(6));
    // A broker with no section gets its defaults.
    let s: sqs::options::Options = options(&w, "sqs").unwrap();
    assert_eq!(s.batch, 10);
}

#[test]
fn a_bad_broker_option_is_reported_at_its_own_line_naming_the_key() {
    let yaml = format!(
        "{BASE}topology:\n  kafka:\n    replication_factor: 1\n    session_timeout: soon\n"
    );
    let p = problems(&yaml);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("w.yaml:7:5: topology.kafka: session_timeout: "),
        "{p:?}"
    );
    // A misspelt option is named, with the ones there are.
    let p = problems(&format!("{BASE}topology:\n  rabbitmq: {{ prefech: 10 }}\n"));
    assert!(
        p[0].starts_with("w.yaml:5:15: topology.rabbitmq: prefech: "),
        "{p:?}"
    );
    assert!(p[0].contains("prefetch"), "{p:?}");
}

#[test]
fn unknown_broker_names_are_refused_where_they_are_written() {
    let p = problems(&format!(
        "{}topology:\n  partitons: 4\n",
        BASE.replace("[kafka, sqs]", "[kafka, kafak]")
    ));
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("w.yaml:2:1: no broker is named `kafak`"),
        "{p:?}"
    );
    assert!(p[0].contains("kafka, rabbitmq, sqs"), "{p:?}");
    assert!(
        p[1].starts_with("w.yaml:5:3: `partitons` is neither"),
        "{p:?}"
    );
}

#[test]
fn a_bad_target_section_is_reported_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.yaml");
    std::fs::write(
        &f,
        "name: t\nkafka:\n  bootstrap: 127.0.0.1:9092\nrabbitmq:\n  url: amqp://h\n  product: r\n  contrl: {}\nmqseries: {}\n",
    )
    .unwrap();
    let e = TargetProfile::load(&f, &[check_target])
        .unwrap_err()
        .to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    let has = |s: &str| lines.iter().any(|l| l.contains(s));
    assert!(has("t.yaml:2:1: kafka: missing field `product`"), "{e}");
    assert!(
        has("t.yaml:7:3: rabbitmq: contrl: unknown field `contrl`"),
        "{e}"
    );
    assert!(
        has("t.yaml:8:1: mqseries: no broker is named `mqseries`"),
        "{e}"
    );
}

#[test]
fn the_workload_schema_describes_every_brokers_options() {
    let s = workload_schema();
    let topology = &s["$defs"]["Topology"];
    assert_eq!(topology["additionalProperties"], false, "{topology}");
    assert_eq!(s["$defs"]["BrokerKind"]["enum"], serde_json::json!(names()));
    for b in BROKERS {
        let o = &topology["properties"][b.name];
        assert!(!o.is_null(), "no {} options in {topology}", b.name);
    }
    // The options' own definitions are there too, so every reference resolves.
    let text = s.to_string();
    for r in text.split("\"$ref\":\"#/$defs/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(!s["$defs"][name].is_null(), "dangling $ref {name}");
    }
}

fn ok() -> Result<Position, SendError> {
    Ok(Position::Unknown)
}

#[tokio::test]
async fn pending_acks_hand_back_each_outcome_once_with_its_token() {
    let mut acks = PendingAcks::default();
    let (late_tx, late_rx) = tokio::sync::oneshot::channel::<()>();
    acks.push(7, async { ok() });
    acks.push(3, async move {
        let _ = late_rx.await;
        Err(SendError::Failed("refused".into()))
    });
    acks.push(9, async { ok() });

    // Everything already known comes in one batch.
    let mut out = Vec::new();
    acks.next(&mut out).await;
    let mut tokens: Vec<_> = out.iter().map(|(t, _)| *t).collect();
    tokens.sort();
    assert_eq!(tokens, [7, 9]);

    // Raced against a timer and dropped while waiting: nothing is lost.
    out.clear();
    let raced = tokio::time::timeout(Duration::from_millis(20), acks.next(&mut out)).await;
    assert!(raced.is_err());
    assert!(out.is_empty());
    late_tx.send(()).unwrap();
    acks.next(&mut out).await;
    assert!(matches!(out.as_slice(), [(3, Err(SendError::Failed(_)))]));

    // Nothing in flight: never resolves (the caller's other branches decide).
    out.clear();
    assert!(acks.next(&mut out).now_or_never().is_none());
}
