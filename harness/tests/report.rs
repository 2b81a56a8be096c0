//! Reports rendered from a recorded run directory (a real RabbitMQ run with a consumer crash,
//! kept in tests/fixtures), checked for content, escaping, size, and in a real headless browser.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn fixture_copy(dir: &Path) -> PathBuf {
    let src = repo().join("harness/tests/fixtures/run-crash");
    let dst = dir.join("20261126-000000-fixture-0000");
    std::fs::create_dir_all(dst.join("rabbitmq")).unwrap();
    for f in ["workload.yaml", "target.json", "rabbitmq/history.bin"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

fn report(run: &Path) -> String {
    let out = brokerbench(&["report", run.to_str().unwrap()]);
    // The fixture was recorded before the final read existed: nothing can verify what the
    // broker still held, so the run is inconclusive (exit 3), and its page says why.
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{said}{}", stderr(&out));
    assert!(
        said.contains("INCONCLUSIVE rabbitmq: the final read did not verify"),
        "{said}"
    );
    std::fs::read_to_string(run.join("index.html")).unwrap()
}

#[test]
fn report_from_a_recorded_run_has_verdicts_plots_faults_and_workload() {
    let dir = tempfile::tempdir().unwrap();
    let run = fixture_copy(dir.path());
    let html = report(&run);
    let verdict = html.find("<h2>Verdict</h2>").unwrap();
    let plots = html.find("<svg").unwrap();
    assert!(verdict < plots, "the verdict table comes before the plots");
    assert!(
        html.matches("<svg").count() >= 6,
        "throughput, latency, quantiles, availability, lag, anomalies"
    );
    assert!(
        html.contains("consumer-crash"),
        "the fault window is labelled on the plots"
    );
    assert!(
        html.contains("lost") && html.contains("NOT JUDGED") && html.contains(">INCONCLUSIVE<")
    );
    assert!(
        html.contains("processing_time"),
        "the exact workload is included"
    );
    assert!(html.contains("RabbitMQ"), "the broker product is named");
    assert!(
        !html.contains("http://") || !html.contains("<script src"),
        "no external resources"
    );
    assert!(html.len() < 2 * 1024 * 1024);
    // result.json carries the serialized histograms and a schema version.
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("result.json")).unwrap()).unwrap();
    assert_eq!(
        result["schema_version"],
        brokerbench::report::SCHEMA_VERSION
    );
    assert!(
        result["brokers"][0]["metrics"]["end_to_end_histogram"]
            .as_str()
            .unwrap()
            .len()
            > 20
    );
}

#[test]
fn strings_from_the_workload_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let run = fixture_copy(dir.path());
    let w = std::fs::read_to_string(run.join("workload.yaml")).unwrap();
    let evil = w.replacen("name: ", "name: \"<script>alert('x')</script>\" # ", 1);
    std::fs::write(run.join("workload.yaml"), evil).unwrap();
    let html = report(&run);
    assert!(
        !html.contains("<script>alert"),
        "a script in the workload name must not run"
    );
    assert!(html.contains("&lt;script&gt;alert("), "it is shown as text");
}

#[test]
fn compare_with_a_baseline_flags_regressions_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let run = fixture_copy(dir.path());
    report(&run);
    // A "tonight" run whose throughput halved and which lost messages.
    let mut tonight: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("result.json")).unwrap()).unwrap();
    let m = &mut tonight["brokers"][0]["metrics"];
    m["throughput"] = serde_json::json!(m["throughput"].as_f64().unwrap() / 2.0);
    for w in m["timeline"].as_array_mut().unwrap() {
        w["acked"] = serde_json::json!(w["acked"].as_u64().unwrap() / 2);
    }
    m["lost"] = serde_json::json!(7);
    let tonight_file = dir.path().join("tonight.json");
    std::fs::write(&tonight_file, serde_json::to_vec(&tonight).unwrap()).unwrap();
    let out_dir = dir.path().join("cmp");
    let out = brokerbench(&[
        "compare",
        tonight_file.to_str().unwrap(),
        "--baseline",
        run.to_str().unwrap(),
        "--threshold",
        "10%",
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("REGRESSION") && stdout.contains("throughput") && stdout.contains("lost"),
        "{stdout}"
    );
    assert!(stdout.contains("regressed"), "{stdout}");
    let html = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(html.contains("REGRESSION") && html.contains("class=\"worse\""));
    assert!(
        html.contains("95% bootstrap interval"),
        "the page says how it decided"
    );
    // Against itself: no regression, exit 0.
    let out = brokerbench(&[
        "compare",
        run.to_str().unwrap(),
        "--baseline",
        run.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Headless Chromium (Debian's `chromium`, installed by bin/test) loads the report from disk.
#[test]
fn report_renders_in_a_real_browser() {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {c}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    let chromium = chromium
        .expect("chromium is not installed; bin/test installs it (apt-get install chromium)");
    let dir = tempfile::tempdir().unwrap();
    let run = fixture_copy(dir.path());
    let html = report(&run);
    // Measure every SVG after layout; the probe lives only in this test's copy of the page.
    let probe = "<script>document.body.setAttribute('data-svg', [...document.querySelectorAll('svg')].map(s => { const r = s.getBoundingClientRect(); return Math.round(r.width) + 'x' + Math.round(r.height); }).join(' '));</script>";
    let probed = run.join("probed.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{probe}</body>"))).unwrap();
    let profile = dir.path().join("profile");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let url = format!("file://{}", probed.display());
    let out = Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=3000", "--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    let sizes: Vec<&str> = dom
        .split("data-svg=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert!(
        sizes.len() >= 6,
        "expected the plots in the rendered DOM, got {sizes:?}\n{log}"
    );
    for s in &sizes {
        let (w, h) = s.split_once('x').unwrap();
        assert!(
            w.parse::<u32>().unwrap() > 100 && h.parse::<u32>().unwrap() > 50,
            "an SVG rendered at {s}"
        );
    }
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("Error") || l.contains("Uncaught")))
        .collect();
    assert!(
        console_errors.is_empty(),
        "console errors: {console_errors:?}"
    );
    // And a screenshot, as a person would look at it.
    let shot = dir.path().join("report.png");
    let out = Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args([
            "--hide-scrollbars",
            "--window-size=1200,1800",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", run.join("index.html").display()),
        ])
        .output()
        .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot of {} bytes",
        png.len()
    );
}
