//! Stepped rates against the real RabbitMQ: a sweep runs one step per rate and draws the curve,
//! and a search for the highest sustainable rate stays within its step budget and lands within
//! one sweep step of the sweep's knee.

mod common;

use std::path::Path;

use brokerbench::report::suite::SuiteRun;
use brokerbench::report::sweep::Curve;
use brokerbench::report::RunResult;
use common::*;

/// One consumer that spends 3 ms on each message keeps up with about 220 msg/s here: the knee
/// lies between the sweep's 200/s and 300/s steps, well away from both.
const KNEE: &str = "brokers: [rabbitmq]
topology: { partitions: 2 }
consumers: { count: 1, processing_time: 3ms }
";

fn the_curve(out: &Path) -> (SuiteRun, Curve) {
    let suite_dir = only_run_dir(out);
    let text = std::fs::read_to_string(suite_dir.join("suite.json")).expect("suite.json");
    let suite: SuiteRun = serde_json::from_str(&text).unwrap();
    assert_eq!(suite.curves.len(), 1, "{text}");
    let curve = suite.curves[0].clone();
    (suite, curve)
}

#[test]
fn a_sweep_and_a_search_find_the_same_knee() {
    // Alone on the machine: the knee is the consumer's capacity, which other tests' load moves.
    let _brokers = owning_brokers();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let sweep = workload(
        d,
        "sweep",
        &format!(
            "name: knee-sweep
{KNEE}load: {{ rate: {{ sweep: [100/s, 200/s, 300/s, 400/s] }}, duration: 5s, warmup: 1s }}
expect: {{ lost: 0, max_sustainable_rate: \"> 1000\" }}
"
        ),
    );
    let o = run_into(&d.join("sweep"), &[sweep.to_str().unwrap()]);
    // Every step keeps its messages; only the curve's own expectation fails.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let (suite, curve) = the_curve(&d.join("sweep"));
    let rabbit = &curve.brokers[0];
    let offered: Vec<Option<f64>> = rabbit.points.iter().map(|p| p.offered).collect();
    assert_eq!(
        offered,
        [100.0, 200.0, 300.0, 400.0].map(Some),
        "one point per step, in order"
    );
    let suite_dir = only_run_dir(&d.join("sweep"));
    for (p, run_id) in rabbit.points.iter().zip(&suite.runs) {
        assert_eq!(&p.run_id, run_id);
        let r = RunResult::read(&suite_dir.join(run_id).join("result.json")).unwrap();
        assert_eq!(r.step.as_ref().map(|s| s.offered), Some(p.offered));
        assert!(
            r.passed(),
            "step {run_id} lost messages: {:?}",
            r.brokers[0].verdicts
        );
        // The producer keeps up at every step: it is the consumer that falls behind.
        let offered = p.offered.unwrap();
        assert!(
            (p.achieved - offered).abs() < 0.05 * offered,
            "{offered}/s achieved {}",
            p.achieved
        );
    }
    assert!(rabbit.points[0].sustained.held, "{:?}", rabbit.points[0]);
    let last = &rabbit.points[3].sustained;
    assert!(
        !last.held && last.why_not[0].contains("backlog grew"),
        "{last:?}"
    );
    let knee = rabbit.max_sustainable_rate.expect("a sustained step");
    let verdict = rabbit.verdict.as_ref().unwrap();
    assert!(!verdict.passed() && verdict.measured == Some(knee));
    let junit = std::fs::read_to_string(suite_dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("name=\"max_sustainable_rate\"><failure"),
        "{junit}"
    );
    let page = std::fs::read_to_string(suite_dir.join("index.html")).unwrap();
    assert!(page.contains("Latency against throughput: knee-sweep"));
    assert_eq!(
        page.matches("against throughput\n</text>").count(),
        6,
        "six curve plots"
    );

    let search = workload(
        d,
        "search",
        &format!(
            "name: knee-search
{KNEE}load: {{ rate: {{ find_max: {{ p99_end_to_end: \"< 2s\" }}, to: 400/s, steps: 4 }}, duration: 5s, warmup: 1s }}
expect: {{ lost: 0, max_sustainable_rate: \">= 50\" }}
"
        ),
    );
    let o = run_into(&d.join("search"), &[search.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (_, curve) = the_curve(&d.join("search"));
    let rabbit = &curve.brokers[0];
    assert!(
        rabbit.points.len() <= 4,
        "within its budget: {:?}",
        rabbit.points
    );
    assert_eq!(
        rabbit.points[0].offered,
        Some(400.0),
        "the top is tried first"
    );
    let found = rabbit.max_sustainable_rate.expect("a sustained rate");
    assert!(
        (found - knee).abs() <= 100.0,
        "the search found {found}/s, the sweep's knee is {knee}/s: more than one step apart"
    );
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("highest: ") && printed.contains("PASS max_sustainable_rate"),
        "{printed}"
    );

    // compare overlays the two curves, a line per run set and broker.
    let cmp = d.join("cmp");
    let o = brokerbench(&[
        "compare",
        only_run_dir(&d.join("sweep")).to_str().unwrap(),
        only_run_dir(&d.join("search")).to_str().unwrap(),
        "-o",
        cmp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(cmp.join("index.html")).unwrap();
    for w in ["knee-sweep", "knee-search"] {
        assert!(
            page.contains(&format!("Latency against throughput: {w}")),
            "{w}"
        );
    }
}
