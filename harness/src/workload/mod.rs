//! Workload files: parse strictly, validate, and report every problem as `file:line:col: message`.

mod model;
pub mod steps;
pub mod units;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;
pub use steps::{LoadRate, Steps};
use units::Rate;

/// Smallest message that still holds the envelope (see `message::envelope`).
/// The most consumers a run may have at once, from the start or scaled out to.
pub const MAX_CONSUMERS: u32 = 64;
pub const MIN_MESSAGE_SIZE: u64 = crate::message::ENVELOPE_LEN as u64;
const MAX_MESSAGE_SIZE: u64 = 1024 * 1024;

/// A problem in a workload file, located at a line and column (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadError {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
    /// The file's other problems, each with its own position: validation reports them all.
    pub more: Vec<WorkloadError>,
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        for m in &self.more {
            write!(f, "\n{m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WorkloadError {}

impl WorkloadError {
    fn new(file: &Path, (line, column): (u64, u64), message: String) -> WorkloadError {
        WorkloadError {
            file: file.to_owned(),
            line,
            column,
            message,
            more: Vec::new(),
        }
    }
}

/// A check that a later stage adds to this one's (the fault table's, the metric registry's):
/// every problem it finds, each at the position of the YAML value it is about. Stages above
/// this one pass their rules in, so this module needs none of them.
pub type Rule = fn(&Workload) -> Vec<(At, String)>;

/// Read, parse and validate a workload file, with this stage's checks and `rules`.
pub fn load(path: &Path, rules: &[Rule]) -> Result<Workload, WorkloadError> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| WorkloadError::new(path, (0, 0), format!("cannot read workload: {e}")))?;
    parse(path, &src, rules)
}

/// Parse and validate workload text; `path` is only used in error messages.
pub fn parse(path: &Path, src: &str, rules: &[Rule]) -> Result<Workload, WorkloadError> {
    let mut workload: Workload = serde_saphyr::from_str(src).map_err(|e| {
        let (line, column, message) = yaml_error(&e);
        WorkloadError::new(path, (line, column), message)
    })?;
    // Written out, so that the digest and the report say which window the run used (at
    // `rate: max` the driver chooses, and the report's client settings say what).
    if workload.load.max_in_flight.is_none() {
        workload.load.max_in_flight = InFlight::default_for(&workload.load.rate);
    }
    let found = rules.iter().flat_map(|rule| rule(&workload));
    let mut problems = validate(&workload)
        .into_iter()
        .chain(found)
        .map(|(at, message)| {
            let position = match at {
                At::Span(l) => (l.line(), l.column()),
                At::Path(p) => locate(src, &p),
            };
            WorkloadError::new(path, position, message)
        });
    match problems.next() {
        None => Ok(workload),
        Some(mut first) => {
            first.more = problems.collect();
            Err(first)
        }
    }
}

/// Where a YAML file failed to parse (line, column, 1-based) and why, for a compiler-style
/// `file:line:col: message`; every YAML file the tool reads reports its errors this way.
pub fn yaml_error(e: &serde_saphyr::Error) -> (u64, u64, String) {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    (line, column, first_line(&e.without_snippet().to_string()))
}

/// A name made safe for resource names and paths: ASCII letters and digits, lowercased, every
/// other character a `-`, at most `max` characters.
pub fn slug(name: &str, max: usize) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

/// serde-saphyr appends its own "at line X column Y" and a snippet; we print the position first,
/// compiler style, so keep only the message.
fn first_line(msg: &str) -> String {
    let line = msg.lines().next().unwrap_or(msg);
    match line.find(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

/// Where a problem is: a value's own position, or the path of keys to it (for values parsed
/// without one, found again in the text).
pub enum At {
    Span(serde_saphyr::Location),
    Path(Vec<String>),
}

/// A problem at the value under `path`, e.g. `at(&["load", "rate"], "...")`.
pub fn at(path: &[&str], msg: impl Into<String>) -> (At, String) {
    at_keys(path.iter().map(|k| k.to_string()).collect(), msg)
}

/// A problem at the value under keys known only at run time (a broker's name, a key inside
/// its options).
pub fn at_keys(path: Vec<String>, msg: impl Into<String>) -> (At, String) {
    (At::Path(path), msg.into())
}

/// Every problem in the workload, in the order of the checks (not only the first).
fn validate(w: &Workload) -> Vec<(At, String)> {
    let mut bad = Vec::new();
    if w.name.trim().is_empty() {
        bad.push(at(&["name"], "name must not be empty"));
    }
    if w.brokers.is_empty() {
        bad.push(at(&["brokers"], "brokers must name at least one broker"));
    }
    let mut seen = w.brokers.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != w.brokers.len() {
        bad.push(at(&["brokers"], "brokers lists the same broker twice"));
    }
    if !(1..=1000).contains(&w.topology.partitions) {
        bad.push(at(
            &["topology", "partitions"],
            "partitions must be between 1 and 1000",
        ));
    }
    validate_load(w, &mut bad);
    if w.consumers.count > MAX_CONSUMERS {
        bad.push(at(
            &["consumers", "count"],
            format!("consumers.count must be between 0 (producers only) and {MAX_CONSUMERS}"),
        ));
    }
    for f in &w.faults {
        if let Err(m) = validate_fault(&f.value, w.load.duration) {
            bad.push((At::Span(f.referenced), m));
        }
    }
    bad
}

/// The problems of `load:`, onto `bad`.
fn validate_load(w: &Workload, bad: &mut Vec<(At, String)>) {
    let load = &w.load;
    if load.producers == 0 || load.producers > 64 {
        bad.push(at(
            &["load", "producers"],
            "producers must be between 1 and 64",
        ));
    }
    if load.keys.count == 0 {
        bad.push(at(
            &["load", "keys", "count"],
            "keys.count must be at least 1",
        ));
    }
    if load.max_in_flight == Some(InFlight::Fixed(0)) {
        bad.push(at(
            &["load", "max_in_flight"],
            "max_in_flight must be at least 1",
        ));
    }
    let rates = match &load.rate {
        LoadRate::One(r) => vec![*r],
        LoadRate::Steps(Steps::Sweep(rates)) => rates.clone(),
        LoadRate::Steps(Steps::FindMax { to, .. }) => to.map(Rate::PerSecond).into_iter().collect(),
    };
    if rates
        .iter()
        .any(|r| matches!(r, Rate::PerSecond(r) if *r > 10_000_000.0))
    {
        bad.push(at(
            &["load", "rate"],
            "rate above 10M/s is not supported; use `max`",
        ));
    }
    validate_load_sizes(load, bad);
    if let Some(n) = load.backlog_messages() {
        if n == 0 {
            bad.push(at(
                &["load", "backlog"],
                "a backlog must hold at least one message",
            ));
        }
        if w.consumers.count == 0 {
            bad.push(at(
                &["load", "backlog"],
                "a backlog is built for consumers to catch up on, and this workload has none (consumers.count: 0)",
            ));
        }
    }
}

/// The problems of the load's duration, warmup and message size, onto `bad`.
fn validate_load_sizes(load: &Load, bad: &mut Vec<(At, String)>) {
    if load.duration.0.is_zero() {
        bad.push(at(&["load", "duration"], "duration must be positive"));
    }
    if load.warmup >= load.duration {
        bad.push(at(
            &["load", "warmup"],
            format!(
                "warmup ({}) must be shorter than duration ({})",
                load.warmup, load.duration
            ),
        ));
    }
    let size = load.message_size.0;
    if size < MIN_MESSAGE_SIZE {
        bad.push(at(
            &["load", "message_size"],
            format!("message_size must be at least {MIN_MESSAGE_SIZE}B (the envelope)"),
        ));
    }
    if size > MAX_MESSAGE_SIZE {
        bad.push(at(
            &["load", "message_size"],
            format!("message_size must be at most {MAX_MESSAGE_SIZE}B"),
        ));
    }
}

/// When a fault happens, against the load; what each kind accepts is the fault table's rule.
fn validate_fault(f: &Fault, duration: units::Dur) -> Result<(), String> {
    if f.at >= duration {
        return Err(format!(
            "the fault starts at {} but the load lasts only {}",
            f.at, duration
        ));
    }
    if f.every.is_some() != f.count.is_some() {
        return Err("`every` and `count` go together: repeat every PERIOD, COUNT times".into());
    }
    if f.random.is_some() && f.every.is_some() {
        return Err("use either `random` or `every`/`count`, not both".into());
    }
    if let (Some(every), Some(count)) = (f.every, f.count) {
        let last = f.at.0 + every.0 * count.saturating_sub(1);
        if last >= duration.0 {
            return Err(format!(
                "the last repetition starts at {} but the load lasts only {duration}",
                units::Dur(last)
            ));
        }
    }
    Ok(())
}

/// Best-effort position of a key path (e.g. load.warmup) in block- or flow-style YAML: each key is
/// searched for after its parent's position. Falls back to the parent, then to 1:1.
pub fn locate(src: &str, path: &[String]) -> (u64, u64) {
    let mut from = 0usize;
    let mut found = None;
    for key in path {
        let needle = format!("{key}:");
        let hit = src[from..]
            .match_indices(&needle)
            .map(|(i, _)| from + i)
            .find(|&i| {
                let before = src[..i].chars().next_back();
                matches!(before, None | Some(' ' | '\n' | '{' | ',' | '\t'))
            });
        match hit {
            Some(i) => {
                from = i + needle.len();
                found = Some(i);
            }
            None => break,
        }
    }
    let Some(pos) = found else { return (1, 1) };
    let line = src[..pos].matches('\n').count() as u64 + 1;
    let column = (pos - src[..pos].rfind('\n').map_or(0, |n| n + 1)) as u64 + 1;
    (line, column)
}

/// The JSON Schema of the workload format, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Workload)).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests;
