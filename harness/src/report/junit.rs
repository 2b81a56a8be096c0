//! JUnit XML: one test suite per broker, one test case per expectation, for CI systems.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::{BrokerResult, RunResult, Status};
use crate::check::expect::{Outcome, Verdict};

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

/// One test case: what happened to it, as JUnit knows it.
enum Case {
    Pass,
    /// An expectation that did not hold.
    Failure(String),
    /// An expectation that held in a run that cannot vouch for it (not judged), or an
    /// inconclusive run without expectations: never a pass.
    Skipped(String),
    /// The run could not happen or broke off.
    Error(String),
}

impl Case {
    fn of(v: &Verdict) -> Case {
        let measured = v.measured.map_or("n/a".to_string(), |m| format!("{m}"));
        let said = format!("{} = {measured}, expected {}", v.metric, v.bound);
        match v.outcome {
            Outcome::Pass => Case::Pass,
            Outcome::Fail => Case::Failure(said),
            Outcome::NotJudged => Case::Skipped(format!(
                "{said}: {}",
                v.note.as_deref().unwrap_or("not judged")
            )),
        }
    }

    fn write(&self, x: &mut String, class: &str, name: &str) {
        let case = format!(
            "<testcase classname=\"{}\" name=\"{}\"",
            escape(class),
            escape(name)
        );
        let _ = match self {
            Case::Pass => writeln!(x, "    {case}/>"),
            Case::Failure(m) => writeln!(
                x,
                "    {case}><failure message=\"{}\"/></testcase>",
                escape(m)
            ),
            Case::Skipped(m) => writeln!(
                x,
                "    {case}><skipped message=\"{}\"/></testcase>",
                escape(m)
            ),
            Case::Error(m) => writeln!(
                x,
                "    {case}><error message=\"{}\"/></testcase>",
                escape(m)
            ),
        };
    }
}

/// A test case under its name.
type Named = (String, Case);

/// One test suite: its cases, with JUnit's counts of each kind.
fn suite(x: &mut String, name: &str, class: &str, cases: &[(String, Case)]) {
    let count = |f: fn(&Case) -> bool| cases.iter().filter(|(_, c)| f(c)).count();
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        escape(name),
        cases.len(),
        count(|c| matches!(c, Case::Failure(_))),
        count(|c| matches!(c, Case::Error(_))),
        count(|c| matches!(c, Case::Skipped(_))),
    );
    for (n, c) in cases {
        c.write(x, class, n);
    }
    let _ = writeln!(x, "  </testsuite>");
}

/// A broker's cases: one per expectation, and a `run` case when the run errored, or when it
/// is inconclusive with no expectation to say so.
fn broker_cases(b: &BrokerResult) -> Vec<(String, Case)> {
    let mut cases: Vec<(String, Case)> = Vec::new();
    if let Some(err) = &b.error {
        cases.push(("run".into(), Case::Error(err.clone())));
    } else if b.verdicts.is_empty() {
        let case = match b.status() {
            Status::Inconclusive => {
                Case::Skipped(format!("inconclusive: {}", b.why_inconclusive()))
            }
            _ => Case::Pass,
        };
        cases.push(("run".into(), case));
    }
    cases.extend(b.verdicts.iter().map(|v| (v.metric.clone(), Case::of(v))));
    cases
}

/// One document for many runs (a suite): one test suite per run and broker.
/// `judged` adds verdicts that belong to no single run, each as a test suite of one case under
/// its name (`<workload>.<broker>`): a stepped workload's `max_sustainable_rate`.
pub fn render_all(name: &str, runs: &[RunResult], judged: &[(String, Verdict)]) -> String {
    // (suite name, class name, cases)
    let mut suites: Vec<(String, String, Vec<Named>)> = Vec::new();
    for r in runs {
        for b in &r.brokers {
            let class = format!("{}.{}", r.workload, b.broker);
            // Repeats of one workload get the run id, so each suite name is unique.
            let name = if runs.len() > 1 {
                format!("{class} [{}]", r.run_id)
            } else {
                class.clone()
            };
            suites.push((name, class, broker_cases(b)));
        }
    }
    for (name, v) in judged {
        suites.push((
            format!("{name} [curve]"),
            name.clone(),
            vec![(v.metric.clone(), Case::of(v))],
        ));
    }
    let all = || suites.iter().flat_map(|(_, _, cases)| cases.iter());
    let count = |f: fn(&Case) -> bool| all().filter(|(_, c)| f(c)).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">",
        escape(name),
        all().count(),
        count(|c| matches!(c, Case::Failure(_))),
        count(|c| matches!(c, Case::Error(_))),
        count(|c| matches!(c, Case::Skipped(_))),
    );
    for (name, class, cases) in &suites {
        suite(&mut x, name, class, cases);
    }
    x.push_str("</testsuites>\n");
    x
}

pub fn write(r: &RunResult, path: &Path) -> Result<()> {
    std::fs::write(path, render(r)).with_context(|| format!("writing {}", path.display()))
}
