//! brokerbench: benchmark and chaos-testing harness for message brokers.
//!
//! Data flows one way: workload → plan → run (driver + load + chaos) → history → check → report.
//! `docs/architecture.md` walks through the pipeline and how to extend it.
//!
//! ## Layers
//!
//! Each module may use only the modules listed above it; the `layering` test reads every
//! `crate::` path in the sources and fails on one that points down this list. The console
//! macros defined here (`say!`, `say_part!`, `note!`) sit below them all.
//!
//! 1. `message`: the vocabulary every stage shares (message ids, the envelope, positions).
//! 2. `workload`: workload files, parsed and checked; later stages add their rules.
//! 3. `target`: where the brokers are and how to control them.
//! 4. `history`: the run's record, written during the run and read by the checkers.
//! 5. `chaos`: the fault table, the schedule, the fault proxy.
//! 6. `driver`: the broker SPI and one folder per broker.
//! 7. `load`: producers, consumers, the final read and the run that drives them.
//! 8. `check`: checkers (pure functions of a history) and the metric registry.
//! 9. `report`: result.json, the HTML report, compare and JUnit.
//! 10. `cli`: the commands, which compose the stages.

/// Print a line to stdout, as `println!` does, except that a closed pipe is no panic: a run
/// piped into `head`, or whose log reader went away, carries on to its final read and report
/// instead of dying mid-run and leaving its faults and resources behind.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!`, with a closed pipe ignored as by [`say!`].
#[macro_export]
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!`, with a closed pipe ignored as by [`say!`].
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod chaos;
pub mod check;
pub mod cli;
pub mod driver;
pub mod history;
pub mod load;
pub mod message;
pub mod report;
pub mod target;
pub mod workload;

#[cfg(test)]
mod layering;
