//! Where a broker put a message, in words no broker owns: each driver maps its own notion
//! (a Kafka partition offset, a RabbitMQ delivery tag, an SQS message id) onto one of these.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where the broker put a message: enough to tell two stored copies apart when the broker says.
///
/// The history stores these positionally (postcard), so variants keep their order and field
/// types; new kinds go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Position {
    /// The broker gave no position (e.g. a send that was acknowledged without one).
    Unknown,
    /// An offset in one shard of an ordered log (a Kafka partition): a storage position, so
    /// reading the same one twice is a re-read, not a second stored copy.
    Offset { shard: i32, offset: i64 },
    /// A number handed out for one delivery on one queue (a RabbitMQ delivery tag, counted per
    /// channel): not where the message is stored, so it tells no copies apart.
    Transient { queue: u32, tag: u64 },
    /// An id the broker gave the stored message (an SQS message id).
    Id { id: String },
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Unknown => write!(f, "no position"),
            Position::Offset { shard, offset } => write!(f, "shard {shard} offset {offset}"),
            Position::Transient { queue, tag } => write!(f, "queue {queue} delivery tag {tag}"),
            Position::Id { id } => write!(f, "message id {id}"),
        }
    }
}
