//! Outputs of a run: result.json (versioned; `result.rs`), the terminal summary, JUnit XML and
//! the HTML pages, with the numbers printed alike everywhere (`format.rs`).

pub mod compare;
pub mod format;
pub mod html;
pub mod judge;
pub mod junit;
pub mod plots;
mod result;
pub mod suite;
pub mod summary;
pub mod sweep;
pub mod trend;

pub use result::*;
