//! JUnit XML: one test suite per broker, one test case per expectation, for CI systems.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::RunResult;
use crate::check::expect::Verdict;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

pub fn render(r: &RunResult) -> String {
    render_all(&r.workload, std::slice::from_ref(r), &[])
}

/// One document for many runs (a suite): one test suite per run and broker.
/// `judged` adds verdicts that belong to no single run, each as a test suite of one case under
/// its name (`<workload>.<broker>`): a stepped workload's `max_sustainable_rate`.
pub fn render_all(name: &str, runs: &[RunResult], judged: &[(String, Verdict)]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let brokers = || runs.iter().flat_map(|r| r.brokers.iter());
    let tests: usize = brokers().map(|b| b.verdicts.len().max(1)).sum::<usize>() + judged.len();
    let failures: usize = brokers()
        .map(|b| {
            if b.error.is_some() {
                1
            } else {
                b.verdicts.iter().filter(|v| !v.passed).count()
            }
        })
        .sum::<usize>()
        + judged.iter().filter(|(_, v)| !v.passed).count();
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">",
        escape(name)
    );
    for r in runs {
        suites(&mut x, r, runs.len() > 1);
    }
    for (name, v) in judged {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{} [curve]\" tests=\"1\" failures=\"{}\">",
            escape(name),
            u8::from(!v.passed)
        );
        let case = format!(
            "<testcase classname=\"{}\" name=\"{}\"",
            escape(name),
            escape(&v.metric)
        );
        if v.passed {
            let _ = writeln!(x, "    {case}/>");
        } else {
            let measured = v.measured.map_or("n/a".to_string(), |m| format!("{m}"));
            let msg = format!("{} = {measured}, expected {}", v.metric, v.bound);
            let _ = writeln!(
                x,
                "    {case}><failure message=\"{}\"/></testcase>",
                escape(&msg)
            );
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    x.push_str("</testsuites>\n");
    x
}

fn suites(x: &mut String, r: &RunResult, many: bool) {
    for b in &r.brokers {
        let name = format!("{}.{}", r.workload, b.broker);
        let cases = b.verdicts.len().max(1);
        let fails = if b.error.is_some() {
            1
        } else {
            b.verdicts.iter().filter(|v| !v.passed).count()
        };
        // Repeats of one workload get the run id, so each suite name is unique.
        let suite = if many {
            format!("{name} [{}]", r.run_id)
        } else {
            name.clone()
        };
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{cases}\" failures=\"{fails}\">",
            escape(&suite)
        );
        if let Some(err) = &b.error {
            let _ = writeln!(
                x,
                "    <testcase classname=\"{}\" name=\"run\"><failure message=\"{}\"/></testcase>",
                escape(&name),
                escape(err)
            );
        } else if b.verdicts.is_empty() {
            let _ = writeln!(
                x,
                "    <testcase classname=\"{}\" name=\"run\"/>",
                escape(&name)
            );
        }
        for v in &b.verdicts {
            let measured = v.measured.map_or("n/a".to_string(), |m| format!("{m}"));
            if v.passed {
                let _ = writeln!(
                    x,
                    "    <testcase classname=\"{}\" name=\"{}\"/>",
                    escape(&name),
                    escape(&v.metric)
                );
            } else {
                let msg = format!("{} = {measured}, expected {}", v.metric, v.bound);
                let _ = writeln!(x, "    <testcase classname=\"{}\" name=\"{}\"><failure message=\"{}\"/></testcase>", escape(&name), escape(&v.metric), escape(&msg));
            }
        }
        let _ = writeln!(x, "  </testsuite>");
    }
}

pub fn write(r: &RunResult, path: &Path) -> Result<()> {
    std::fs::write(path, render(r)).with_context(|| format!("writing {}", path.display()))
}
