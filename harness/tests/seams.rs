//! The seams hold: a broker is its driver folder (`harness/src/driver/<name>/`), its script
//! (`bin/brokers.d/<name>.sh`) and its name on the registry line, and nothing else in the code
//! names it. Needs no broker running.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::repo;

/// Scripts that name brokers because they are about particular brokers, not about brokers in
/// general: the throughput comparison with a plain client loop per broker
/// (examples/plain_clients.rs), and the fault script of docker-compose.yml's cluster profile
/// (which, like docker-compose.yml and targets/*.yaml, describes each broker's containers).
const ABOUT_PARTICULAR_BROKERS: [&str; 2] = ["bin/bench", "bin/docker-cluster"];

#[test]
fn bin_brokers_knows_exactly_the_registered_brokers_each_from_its_own_script() {
    let out = Command::new(repo().join("bin/brokers"))
        .arg("brokers")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let mut scripts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    scripts.sort();
    let mut registered: Vec<String> = brokerbench::driver::names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    registered.sort();
    assert_eq!(scripts, registered);
    for name in &registered {
        let script = repo().join(format!("bin/brokers.d/{name}.sh"));
        let text = std::fs::read_to_string(&script)
            .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("register {name}"))),
            "{} registers {name}",
            script.display()
        );
        assert!(
            repo()
                .join(format!("harness/src/driver/{name}/mod.rs"))
                .exists(),
            "{name} has a driver folder"
        );
    }
}

#[test]
fn a_broker_is_named_only_in_its_folder_its_script_and_the_registry_line() {
    let names = brokerbench::driver::names();
    let mut found = Vec::new();
    for file in code_files() {
        let rel = file
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in code_lines(&rel, &text) {
            for name in &names {
                let own = rel.starts_with(&format!("harness/src/driver/{name}/"))
                    || rel == format!("bin/brokers.d/{name}.sh");
                if !own && names_word(line, name) {
                    found.push(format!("{rel}:{n}: {}", line.trim()));
                }
            }
        }
    }
    let registry = "harness/src/driver/mod.rs";
    let (on_registry, elsewhere): (Vec<_>, Vec<_>) = found
        .into_iter()
        .partition(|f| f.starts_with(&format!("{registry}:")) && f.contains("registry!("));
    assert!(
        elsewhere.is_empty(),
        "brokers named outside their folder, their script and the registry line:\n{}",
        elsewhere.join("\n")
    );
    let lines: std::collections::BTreeSet<_> = on_registry
        .iter()
        .map(|f| f.split(':').nth(1).unwrap_or_default().to_string())
        .collect();
    assert_eq!(lines.len(), 1, "one registry line: {on_registry:?}");
}

/// Rust under harness/src and the shell scripts under bin/, without the tests.
fn code_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk(&repo().join("harness/src"), &mut files);
    walk(&repo().join("bin"), &mut files);
    files.retain(|f| {
        let rel = f
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let rust = rel.ends_with(".rs");
        let script = rel.starts_with("bin/") && (rel.ends_with(".sh") || !rel.contains('.'));
        (rust || script)
            && !rel.ends_with("/tests.rs")
            && !rel.contains("/tests/")
            && !ABOUT_PARTICULAR_BROKERS.contains(&rel.as_str())
    });
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A file's lines of code, numbered from 1: comments are documentation, and a Rust file's test
/// module (from its `#[cfg(test)]` on) is tests.
fn code_lines<'a>(rel: &str, text: &'a str) -> Vec<(usize, &'a str)> {
    let rust = rel.ends_with(".rs");
    let code = match text.find("#[cfg(test)]\nmod tests {") {
        Some(tests) if rust => &text[..tests],
        _ => text,
    };
    code.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            !(t.starts_with("//") || (!rust && t.starts_with('#')))
        })
        .map(|(i, l)| (i + 1, l))
        .collect()
}

/// Whether `line` holds `name` as a word of its own (`rabbitmq-server` does, `rdkafka` not).
fn names_word(line: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(name).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}
