//! The cluster over time, as the broker itself describes it: the target's `view` command, asked
//! every few seconds while the load and the drain run, recorded in the history as `ClusterView`
//! whenever its answer changes (membership as each node sees it, the queues' leader, ...).
//!
//! The command is the target's: the harness only splits its lines into `name: state` pairs, so
//! it never needs to know what a node or a leader is on a given broker.

use std::path::PathBuf;
use std::time::Duration;

use super::Beside;
use crate::history::{now_ns, Event, Recorder};

/// Often enough to place a leader change within a few seconds of a fault; rarely enough that
/// the queries cost the 2-core machine nothing measurable.
const EVERY: Duration = Duration::from_secs(2);
/// A view that takes longer is recorded as no answer; the next one is asked on time.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A view's lines as (name, state): `name: state` per line, blank lines skipped, a line without
/// a colon kept whole under `view`.
pub fn parse(out: &str) -> Vec<(String, String)> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some((name, state)) => (name.trim().to_string(), state.trim().to_string()),
            None => ("view".to_string(), l.to_string()),
        })
        .collect()
}

/// Ask `command` (run with `sh -c` in `dir`) every few seconds, beside the load until stopped.
pub fn watch(command: String, dir: PathBuf, recorder: Recorder) -> Beside {
    Beside::spawn(move |mut stopped| async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<Vec<(String, String)>> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => return,
            }
            let asked = tokio::select! {
                r = tokio::time::timeout(TIMEOUT, crate::chaos::run_command(&command, &dir)) => r,
                _ = stopped.changed() => return,
            };
            // A cluster that cannot answer is part of the picture, not a reason to stop.
            let lines = match asked {
                Ok(Ok((out, _))) => parse(&out),
                Ok(Err(e)) => vec![("view".to_string(), format!("no answer: {e:#}"))],
                Err(_) => vec![("view".to_string(), format!("no answer within {TIMEOUT:?}"))],
            };
            if last.as_ref() != Some(&lines) {
                recorder.record(Event::ClusterView {
                    t: now_ns(),
                    lines: lines.clone(),
                });
                last = Some(lines);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_reads_as_name_and_state_pairs() {
        let out = "n1: n1 n2 n3\n\n  n3 : paused (pause_minority)\nleader: n2\nsomething odd\n";
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            parse(out),
            pairs(&[
                ("n1", "n1 n2 n3"),
                ("n3", "paused (pause_minority)"),
                ("leader", "n2"),
                ("view", "something odd"),
            ])
        );
        assert!(parse("").is_empty());
    }
}
