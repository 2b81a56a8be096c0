//! The broker SPI, and one folder per broker behind it. A `Driver` creates and removes the run's
//! topics or queues and hands out clients; a `Publisher` sends; a `Consumer` receives and acks
//! (`spi.rs`). Each broker's folder also describes itself once, as a `Broker` (its target
//! section, its proxy protocol, its timeouts, its workload checks; `registry.rs`), and the one
//! line below registers it: nothing outside `driver/` needs to know which brokers exist.
//! `sections.rs` reads a broker's part of a workload or target profile, `schema.rs` describes
//! the workload format with every broker's options, and `plan.rs` is what a run tells a driver.

mod plan;
mod registry;
mod schema;
mod sections;
mod spi;

pub use plan::*;
pub use registry::*;
pub use schema::*;
pub use sections::*;
pub use spi::*;

/// Declares each broker's folder as a module and lists its `BROKER` in `BROKERS`.
macro_rules! registry {
    ($($name:ident),* $(,)?) => {
        $(mod $name;)*
        /// Every broker brokerbench drives, in the registry's order.
        pub const BROKERS: &[&Broker] = &[$(&$name::BROKER),*];
    };
}

// The registry: a broker is its folder plus its name here (and bin/brokers.d/<name>.sh).
registry!(kafka, rabbitmq, sqs);

#[cfg(test)]
mod tests;
