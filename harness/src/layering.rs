//! The layering written in this crate's root docs, enforced: no module names a module listed
//! below it. Test code is held to the same rule, so a test cannot hide an upward dependency.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first, as the numbered list in lib.rs gives them.
fn layers() -> Vec<String> {
    include_str!("lib.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .filter_map(|l| {
            let (n, rest) = l.split_once(". `")?;
            n.parse::<u32>().ok()?;
            rest.split_once('`').map(|(name, _)| name.to_string())
        })
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source file names through `crate::`, outside comments.
fn uses(src: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in src.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (i, _) in code.match_indices("crate::") {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `brokerbench_crate::`
            }
            if code[i + 7..].starts_with('{') {
                // `use crate::{a, b}`: one path per module keeps this scan simple and exact.
                found.insert("{grouped}".to_string());
                continue;
            }
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Macros exported at the crate root (lib.rs), usable from every layer.
const ROOT_MACROS: [&str; 3] = ["say", "say_part", "note"];

#[test]
fn every_module_uses_only_the_layers_above_it() {
    let order = layers();
    assert!(
        order.len() >= 10,
        "the layer list in lib.rs was not found: {order:?}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .unwrap_or_default();
        let Some(own) = rank(&top) else {
            assert!(
                ["lib", "main", "layering"].contains(&top.as_str()),
                "{} is in no layer: add its module to the list in lib.rs",
                rel.display()
            );
            continue;
        };
        let src = std::fs::read_to_string(file).unwrap();
        // The console macros (`say!`, `note!`) live at the crate root, below every layer.
        for used in uses(&src)
            .into_iter()
            .filter(|u| !ROOT_MACROS.contains(&u.as_str()))
        {
            match rank(&used) {
                Some(r) if r > own => wrong.push(format!("{} uses crate::{used}", rel.display())),
                Some(_) => {}
                None => wrong.push(format!("{} uses unknown crate::{used}", rel.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering in lib.rs:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_paths_and_skips_comments() {
    let src = "use crate::load::x;\nuse crate::{a, b};\n// crate::cli in a comment\nlet a = crate::check::f(); // crate::report\n";
    let got: Vec<String> = uses(src).into_iter().collect();
    assert_eq!(got, ["check", "load", "{grouped}"]);
}
