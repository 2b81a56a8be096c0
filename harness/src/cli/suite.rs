//! What `brokerbench run` is given, made into a list of runs: workload files, directories of
//! them, and suite files that list workloads, brokers and repeats.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::workload::{BrokerKind, Workload};

/// A suite file: several workloads run as one job, with one matrix page, one junit.xml and one
/// exit code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    /// Short name; used in the suite run's directory name and its page's title.
    suite: String,
    #[serde(default)]
    description: String,
    /// Workload files or directories, relative to the suite file.
    workloads: Vec<PathBuf>,
    /// Only these brokers (default: every broker each workload names).
    #[serde(default)]
    brokers: Vec<BrokerKind>,
    /// Runs of each workload; every repetition is kept.
    #[serde(default = "one")]
    repeat: u32,
}

fn one() -> u32 {
    1
}

/// Everything one `run` invocation will do, validated before any broker is touched.
#[derive(Debug)]
pub struct Job {
    /// The suite's name; None for a single workload file run once (its run directory is then
    /// written straight into the output directory, as before suites existed).
    pub suite: Option<String>,
    pub description: String,
    pub workloads: Vec<(PathBuf, Workload)>,
    /// Brokers the suite file limits the run to (empty: no limit).
    pub brokers: Vec<BrokerKind>,
    pub repeat: u32,
}

impl Job {
    /// A job before its arguments are read: one run of nothing, no suite, no broker limit.
    fn nothing_yet() -> Job {
        Job {
            suite: None,
            description: String::new(),
            workloads: Vec::new(),
            brokers: Vec::new(),
            repeat: 1,
        }
    }
}

/// Expand `run`'s arguments. Every problem is an input error, with its file and position.
pub fn expand(args: &[PathBuf], repeat: Option<u32>) -> Result<Job, String> {
    let mut job = Job::nothing_yet();
    let mut problems = Vec::new();
    for arg in args {
        for f in files_of(arg, &mut job, &mut problems) {
            match super::load_workload(&f) {
                Ok(w) => job.workloads.push((f, w)),
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    if let Some(n) = repeat {
        job.repeat = n;
    }
    problems.extend(job_problems(&job));
    if job.workloads.is_empty() && problems.is_empty() {
        problems.push("no workload to run".into());
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    // A stepped rate makes a run per step and a curve of them: a suite too.
    let many = args.len() > 1 || args.iter().any(|a| a.is_dir());
    let stepped = job
        .workloads
        .iter()
        .any(|(_, w)| w.load.rate.steps().is_some());
    if job.suite.is_none() && (many || job.repeat > 1 || stepped) {
        job.suite = Some(match args {
            [one] if one.is_dir() => one
                .file_name()
                .map_or("suite".into(), |n| n.to_string_lossy().into_owned()),
            [_] => job.workloads[0].1.name.clone(),
            _ => "suite".into(),
        });
    }
    Ok(job)
}

/// The workload files `args` name, as `run` reads them (a directory's, a suite file's, or the
/// file itself), with what is wrong with a directory or suite file on the way.
pub fn workload_paths(args: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut job = Job::nothing_yet();
    let mut problems = Vec::new();
    let files = args
        .iter()
        .flat_map(|a| files_of(a, &mut job, &mut problems))
        .collect();
    (files, problems)
}

/// The workload files argument `arg` names: a directory's, a suite's (whose name, brokers and
/// repeats go into `job`), or the file itself; problems go to `problems`.
fn files_of(arg: &Path, job: &mut Job, problems: &mut Vec<String>) -> Vec<PathBuf> {
    if arg.is_dir() {
        return workload_files(arg).unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        });
    }
    let suite = match read_suite(arg) {
        Ok(Some(suite)) => suite,
        Ok(None) => return vec![arg.to_path_buf()],
        Err(e) => {
            // A suite file that does not read is not tried as a workload as well.
            problems.push(e);
            return Vec::new();
        }
    };
    let base = arg.parent().unwrap_or(Path::new("."));
    job.suite.get_or_insert(suite.suite.clone());
    job.description = suite.description.clone();
    job.brokers.extend(suite.brokers.iter().cloned());
    if suite.repeat == 0 {
        problems.push(format!("{}: repeat must be at least 1", arg.display()));
    }
    job.repeat = job.repeat.max(suite.repeat);
    let mut files = Vec::new();
    for w in &suite.workloads {
        let p = base.join(w);
        if p.is_dir() {
            match workload_files(&p) {
                Ok(f) => files.extend(f),
                Err(e) => problems.push(e),
            }
        } else if p.is_file() {
            files.push(p);
        } else {
            problems.push(format!(
                "{}: suite lists {}, which does not exist",
                arg.display(),
                p.display()
            ));
        }
    }
    files
}

/// What is wrong with the job as a whole: its repeats, two workloads of one name.
fn job_problems(job: &Job) -> Vec<String> {
    let mut problems = Vec::new();
    if job.repeat == 0 || job.repeat > 1000 {
        problems.push(format!(
            "repeat must be between 1 and 1000, not {}",
            job.repeat
        ));
    }
    let mut names: BTreeMap<&str, &Path> = BTreeMap::new();
    for (f, w) in &job.workloads {
        if let Some(first) = names.insert(&w.name, f) {
            // Runs, baselines and trends are matched by workload name.
            problems.push(format!(
                "{}: workload name `{}` is also the name of {}; names must differ within a run",
                f.display(),
                w.name,
                first.display()
            ));
        }
    }
    problems
}

/// The workload files of a directory, in name order (a suite file among them is not one).
fn workload_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter(|p| !matches!(read_suite(p), Ok(Some(_))))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{}: no workload files (*.yaml) in it",
            dir.display()
        ));
    }
    Ok(files)
}

/// The suite in `path`, if it is a suite file (its top level has `suite:`); None for a workload.
fn read_suite(path: &Path) -> Result<Option<SuiteFile>, String> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let is_suite = serde_saphyr::from_str::<BTreeMap<String, serde_json::Value>>(&src)
        .is_ok_and(|top| top.contains_key("suite"));
    if !is_suite {
        return Ok(None);
    }
    let suite: SuiteFile = serde_saphyr::from_str(&src).map_err(|e| {
        let (l, c, m) = crate::workload::yaml_error(&e);
        format!("{}:{l}:{c}: {m}", path.display())
    })?;
    for b in &suite.brokers {
        if let Err(e) = crate::driver::broker(b) {
            let (l, c) = crate::workload::locate(&src, &["brokers".to_string()]);
            return Err(format!("{}:{l}:{c}: {e}", path.display()));
        }
    }
    Ok(Some(suite))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "load: { rate: 1/s, duration: 1s }\nbrokers: [kafka, rabbitmq]\n";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_directory_is_every_workload_in_it_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "b.yaml", &format!("name: b\n{W}"));
        write(d.path(), "a.yaml", &format!("name: a\n{W}"));
        write(d.path(), "notes.txt", "not a workload");
        let job = expand(&[d.path().to_owned()], None).unwrap();
        let names: Vec<&str> = job.workloads.iter().map(|(_, w)| w.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(job.suite.is_some());
        assert_eq!(job.repeat, 1);
    }

    #[test]
    fn a_suite_file_lists_workloads_brokers_and_repeats() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("w")).unwrap();
        write(&d.path().join("w"), "x.yaml", &format!("name: x\n{W}"));
        let s = write(
            d.path(),
            "suite.yaml",
            "suite: nightly\nworkloads: [w/x.yaml]\nbrokers: [kafka]\nrepeat: 3\n",
        );
        let job = expand(std::slice::from_ref(&s), None).unwrap();
        assert_eq!(job.suite.as_deref(), Some("nightly"));
        assert_eq!(job.brokers, [BrokerKind::new("kafka")]);
        assert_eq!(job.repeat, 3);
        // --repeat overrides the file.
        assert_eq!(expand(&[s], Some(2)).unwrap().repeat, 2);
        // A single workload run once is no suite.
        let one = expand(&[d.path().join("w/x.yaml")], None).unwrap();
        assert!(one.suite.is_none());
    }

    #[test]
    fn bad_suites_say_what_and_where() {
        let d = tempfile::tempdir().unwrap();
        let s = write(
            d.path(),
            "s.yaml",
            "suite: s\nworkloads: [gone.yaml]\nbrokers: [kafak]\n",
        );
        let e = expand(&[s], None).unwrap_err();
        assert!(e.contains("s.yaml:3:1: no broker is named `kafak`"), "{e}");
        let s = write(d.path(), "t.yaml", "suite: t\nworkloads: [gone.yaml]\n");
        let e = expand(&[s], None).unwrap_err();
        assert!(e.contains("gone.yaml, which does not exist"), "{e}");
        let s = write(d.path(), "u.yaml", "suite: u\nworklods: []\n");
        let e = expand(&[s], None).unwrap_err();
        assert!(e.contains("u.yaml:2:1: unknown field `worklods`"), "{e}");
        assert_eq!(e.lines().count(), 1, "reported once, as a suite: {e}");
        let s = write(d.path(), "v.yaml", "suite: v\nworkloads: []\nrepeat: 0\n");
        let e = expand(&[s], None).unwrap_err();
        assert!(e.contains("repeat must be at least 1"), "{e}");
        // Two workloads of one name would be indistinguishable in baselines and trends.
        let a = write(d.path(), "a.yaml", &format!("name: same\n{W}"));
        let b = write(d.path(), "b.yaml", &format!("name: same\n{W}"));
        let e = expand(&[a, b], None).unwrap_err();
        assert!(e.contains("names must differ"), "{e}");
    }
}
