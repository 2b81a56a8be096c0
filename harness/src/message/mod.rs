//! The vocabulary every stage shares, below all of them: which value a message carries (`MsgId`,
//! the envelope in its body) and where a broker put it (`Position`). It imports nothing of the
//! crate.

pub mod envelope;
mod position;

pub use envelope::{key_name, run_tag, write_key_name, Envelope, MsgId, ENVELOPE_LEN};
pub use position::Position;

/// What a derived seed is for, so that streams of choices drawn from one run seed never share
/// a seed.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// One producer's keys.
    Keys = 1,
    /// When `random` fault windows happen.
    FaultTimes = 2,
    /// Which workers one fault window picks.
    FaultVictims = 3,
    /// One proxy group's jitter and slicing.
    Proxy = 4,
}

/// The seed of one stream of choices (`index`: which producer, which fault window), derived
/// from the run's seed: the same run seed gives the same choices, and no two streams alike.
pub fn sub_seed(seed: u64, stream: Stream, index: u64) -> u64 {
    let which = ((stream as u64) << 48) ^ index;
    seed ^ which.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
