//! Checkers turn a history into metrics and examples. Each is a small streaming unit behind the
//! `Checker` trait (`core.rs`, with what checkers share); `check_history` (`run.rs`) feeds every
//! event to each of them once, in a fixed order, and puts their sections together as `Metrics`.

pub mod cost;
pub mod decoupling;
mod delivery;
pub mod expect;
pub mod inconclusive;
pub mod metrics;
mod order;
pub mod rebalance;
pub mod shards;
mod slots;
pub mod sustain;
pub mod synthetic;
mod timing;

mod core;
mod run;

pub use self::core::*;
pub use delivery::DeliverySection;
pub use run::*;
pub use timing::{
    CatchUp, ClientConnection, ClusterView, FaultWindow, NodeEffect, TimingSection, Window,
};

#[cfg(test)]
mod tests;
