//! The vocabulary every stage shares, below all of them: which value a message carries (`MsgId`,
//! the envelope in its body) and where a broker put it (`Position`). It imports nothing of the
//! crate.

pub mod envelope;
mod position;

pub use envelope::{key_name, run_tag, write_key_name, Envelope, MsgId, ENVELOPE_LEN};
pub use position::Position;
