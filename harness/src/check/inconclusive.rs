//! Whether a run can vouch for its verdicts. A verdict is only as good as its faults: a planned
//! fault that did not happen as planned tested nothing, so nothing it was meant to test passed.
//! Nor does a bound pass that held only because nothing was measured (`lost == 0` with nothing
//! sent), or that rests on a damaged history or on no final read. Each such reason makes the
//! run *inconclusive*; `expect::verdicts` then reports every bound that held as not judged.

use super::{FaultWindow, Metrics};
use crate::workload::Workload;

/// What the workload planned, as far as trusting its run needs it.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Each fault window of the expanded schedule, in index order.
    pub faults: Vec<PlannedFault>,
    /// The workload has consumers (`consumers.count > 0`): something must be delivered.
    pub consumers: bool,
}

#[derive(Debug, Clone)]
pub struct PlannedFault {
    pub index: u32,
    /// Its kind, as the history names it.
    pub kind: String,
    /// Its window closes during the run (a pause ends, a crash restarts): its undo must be on
    /// record. A fault with no undo (a crash without restart) or one over once started (a node
    /// restart) has none to check.
    pub undone: bool,
}

impl Plan {
    /// The plan of `w`'s run. Fault times depend on the run's seed, but which windows there
    /// are, and which of them close, do not: any seed gives the same plan.
    pub fn of(w: &Workload) -> Plan {
        let specs: Vec<_> = w.faults.iter().map(|f| f.value.clone()).collect();
        let faults = crate::chaos::faults::windows(&specs, w.load.duration.0, 0)
            .into_iter()
            .map(|win| PlannedFault {
                index: win.index,
                kind: crate::chaos::faults::name(win.kind()).to_string(),
                undone: win.stop.is_some(),
            })
            .collect();
        Plan {
            faults,
            consumers: w.consumers.count > 0,
        }
    }
}

/// Every reason the run measured in `m` cannot vouch for a passing verdict; empty when it can.
pub fn reasons(m: &Metrics, plan: &Plan) -> Vec<String> {
    let mut why: Vec<String> = plan
        .faults
        .iter()
        .filter_map(|p| fault(p, m.timing.faults.iter().find(|f| f.index == p.index)))
        .collect();
    if m.counts.sent == 0 {
        why.push("nothing was measured: no message was sent".into());
    } else if m.counts.acked == 0 {
        why.push(format!(
            "nothing was measured: none of the {} sends was acknowledged",
            m.counts.sent
        ));
    } else if plan.consumers && m.delivery.delivered == 0 {
        why.push(format!(
            "nothing was measured: the workload has consumers, and none of the {} acknowledged \
             messages was delivered to them",
            m.counts.acked
        ));
    }
    if m.counts.interrupted {
        why.push("the run was interrupted".into());
    }
    if m.history_damaged {
        why.push(format!(
            "the history is damaged: {}",
            m.history_warning.as_deref().unwrap_or("bytes were skipped")
        ));
    }
    if m.delivery.store_read == Some(false) {
        why.push(
            "the consumers' processed-ids store could not be read: what they processed is not \
             all on record"
                .into(),
        );
    }
    if !m.delivery.final_read.verified() {
        why.push(format!(
            "the final read did not verify what the broker stored: {}",
            m.delivery.final_read.detail
        ));
    }
    why
}

/// Why planned fault `p` did not happen as planned, from its record (`None`: nothing recorded).
fn fault(p: &PlannedFault, recorded: Option<&FaultWindow>) -> Option<String> {
    let name = format!("fault #{} ({})", p.index, p.kind);
    let Some(f) = recorded else {
        return Some(format!("{name} was never started"));
    };
    if f.failed {
        let what = if f.undo_failed() {
            "was not undone as planned"
        } else {
            "did not happen"
        };
        return Some(format!("{name} {what}: {}", f.detail));
    }
    if f.applied_s.is_none() {
        return Some(format!("{name} was begun but never confirmed in force"));
    }
    if p.undone && f.end_s.is_none() {
        return Some(format!("{name} was never undone"));
    }
    None
}
