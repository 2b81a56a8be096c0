//! brokerbench: benchmark and chaos-testing harness for message brokers.
//!
//! Data flows one way: workload → plan → run (driver + load + chaos) → history → check → report.

pub mod chaos;
pub mod check;
pub mod cli;
pub mod driver;
pub mod history;
pub mod load;
pub mod report;
pub mod target;
pub mod workload;
