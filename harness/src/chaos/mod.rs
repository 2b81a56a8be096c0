//! Fault injection. The schedule turns the workload's `faults:` into concrete windows.

pub mod schedule;
