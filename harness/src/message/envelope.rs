//! The envelope every message carries, so a consumer can say exactly which value it received and
//! when it was meant to be sent. Fixed little-endian layout; the rest of the body is filler up to
//! the workload's message size.

use thiserror::Error;

const MAGIC: [u8; 4] = *b"BBv1";
/// Bytes the envelope occupies at the start of every message body.
pub const ENVELOPE_LEN: usize = 4 + 8 + 4 + 4 + 8 + 8 + 8;

/// Identifies one value: (producer, key, per-key sequence number).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct MsgId {
    pub producer: u32,
    pub key: u32,
    pub seq: u64,
}

impl MsgId {
    /// The broker-level key (Kafka record key, RabbitMQ routing key, SQS message group).
    pub fn key_string(&self) -> String {
        key_name(self.key)
    }

    /// A string id unique within the run (SQS deduplication id).
    pub fn dedupe_id(&self) -> String {
        format!("{}-{}-{}", self.producer, self.key, self.seq)
    }

    /// The id `dedupe_id` wrote (`producer-key-seq`), or None for anything else.
    pub fn from_dedupe_id(s: &str) -> Option<MsgId> {
        let mut parts = s.split('-');
        let id = MsgId {
            producer: parts.next()?.parse().ok()?,
            key: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(id)
    }
}

pub fn key_name(key: u32) -> String {
    let mut name = String::new();
    write_key_name(key, &mut name);
    name
}

/// `key_name`, appended to `out` (no allocation on a hot path that reuses `out`).
pub fn write_key_name(key: u32, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "k{key}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// Hash of the run id: deliveries from another run are "unexpected", not confused with ours.
    pub run_tag: u64,
    pub id: MsgId,
    /// When the open-loop schedule meant to send it (ns since the Unix epoch).
    pub intended_ns: u64,
    /// When the producer actually handed it to the client library.
    pub sent_ns: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message is {0} bytes, shorter than the {ENVELOPE_LEN}-byte envelope")]
    TooShort(usize),
    #[error("message does not start with the brokerbench envelope magic")]
    BadMagic,
}

impl Envelope {
    /// Encode into a body of `size` bytes (at least ENVELOPE_LEN), filler after the envelope.
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut buf = Vec::with_capacity(size.max(ENVELOPE_LEN));
        self.encode_body(&mut buf, size);
        buf
    }

    /// `encode`, reusing `buf` (a producer sends from one buffer: clients copy the body).
    pub fn encode_body(&self, buf: &mut Vec<u8>, size: usize) {
        buf.clear();
        self.encode_into(buf);
        buf.resize(size.max(ENVELOPE_LEN), b'.');
    }

    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&self.run_tag.to_le_bytes());
        buf.extend_from_slice(&self.id.producer.to_le_bytes());
        buf.extend_from_slice(&self.id.key.to_le_bytes());
        buf.extend_from_slice(&self.id.seq.to_le_bytes());
        buf.extend_from_slice(&self.intended_ns.to_le_bytes());
        buf.extend_from_slice(&self.sent_ns.to_le_bytes());
    }

    pub fn decode(body: &[u8]) -> Result<Envelope, DecodeError> {
        if body.len() < ENVELOPE_LEN {
            return Err(DecodeError::TooShort(body.len()));
        }
        if body[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let u64_at =
            |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8-byte slice"));
        let u32_at =
            |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().expect("4-byte slice"));
        Ok(Envelope {
            run_tag: u64_at(4),
            id: MsgId {
                producer: u32_at(12),
                key: u32_at(16),
                seq: u64_at(20),
            },
            intended_ns: u64_at(28),
            sent_ns: u64_at(36),
        })
    }
}

/// A stable 64-bit tag for a run id (FNV-1a; stable across processes and builds).
pub fn run_tag(run_id: &str) -> u64 {
    run_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            run_tag: run_tag("20261126-smoke"),
            id: MsgId {
                producer: 3,
                key: 77,
                seq: 123_456_789_012,
            },
            intended_ns: 1_764_190_000_000_000_000,
            sent_ns: 1_764_190_000_000_050_000,
        }
    }

    #[test]
    fn round_trips_and_pads_to_size() {
        let e = sample();
        let body = e.encode(512);
        assert_eq!(body.len(), 512);
        assert_eq!(Envelope::decode(&body), Ok(e));
        // A size below the envelope still yields a decodable message.
        assert_eq!(Envelope::decode(&e.encode(1)), Ok(e));
        // A reused buffer holds exactly the new body.
        let mut buf = vec![b'x'; 1000];
        e.encode_body(&mut buf, 100);
        assert_eq!(buf.len(), 100);
        assert_eq!(buf[ENVELOPE_LEN..], [b'.'; 100 - ENVELOPE_LEN]);
        assert_eq!(Envelope::decode(&buf), Ok(e));
    }

    #[test]
    fn rejects_foreign_and_short_bodies() {
        assert_eq!(Envelope::decode(b"hello"), Err(DecodeError::TooShort(5)));
        let mut body = sample().encode(64);
        body[0] = b'X';
        assert_eq!(Envelope::decode(&body), Err(DecodeError::BadMagic));
    }

    #[test]
    fn run_tags_differ_per_run() {
        assert_ne!(run_tag("a"), run_tag("b"));
        assert_eq!(run_tag("a"), run_tag("a"));
    }
}
