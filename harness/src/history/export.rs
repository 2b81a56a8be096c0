//! The history as JSON lines, for anyone who wants to check a run with their own tools (jq,
//! pandas, an independent checker). One event per line, in the order the history holds them
//! (a broker's history starts with its `Header`), each as `{"Kind": {fields}}` exactly as
//! `Event` serializes; `docs/history.schema.json` describes every kind. Times are ns since the
//! Unix epoch on the machine's one clock.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::{read, Event, Stop};

/// Version of the JSON-lines format; it changes when an event kind changes shape or meaning
/// (a new kind is an addition, not a change).
pub const JSONL_VERSION: u32 = 2;

/// Write every event of the history at `path` to `out`; returns how many, and a warning when
/// the history ends in a damaged record (everything before it is written).
pub fn write_jsonl(path: &Path, out: &mut impl Write) -> Result<(u64, Option<String>)> {
    let mut reader = read(path)?;
    let mut n = 0u64;
    for ev in reader.by_ref() {
        let ev = ev.with_context(|| format!("reading {}", path.display()))?;
        serde_json::to_writer(&mut *out, &ev).context("writing JSON")?;
        out.write_all(b"\n").context("writing JSON")?;
        n += 1;
    }
    let warning = match reader.stop() {
        Some(Stop::Truncated { skipped_bytes }) => Some(format!(
            "{}: ends mid-record; {skipped_bytes} bytes after event {n} skipped",
            path.display()
        )),
        Some(Stop::Corrupt {
            reason,
            skipped_bytes,
        }) => Some(format!(
            "{}: damaged ({reason}); {skipped_bytes} bytes after event {n} skipped",
            path.display()
        )),
        _ => None,
    };
    Ok((n, warning))
}

/// Read one line written by `write_jsonl` back into the event it came from.
pub fn parse_line(line: &str) -> Result<Event> {
    serde_json::from_str(line).context("parsing a history line")
}

/// The JSON Schema of one line (kept in docs/history.schema.json).
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Event)).unwrap_or_default();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "title".into(),
            format!("brokerbench history event, JSON lines format version {JSONL_VERSION}").into(),
        );
        obj.insert(
            "description".into(),
            "One line of `brokerbench history RUN_DIR --format jsonl`: one event of a run, as \
             {\"Kind\": {fields}}. Times are ns since the Unix epoch. A broker's history starts \
             with its Header."
                .into(),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ClientRole, FaultPhase, FinalReadOutcome, Phase, Position, WorkerEvent};
    use crate::message::MsgId;

    /// One event of every kind: each must come back from its JSON line unchanged.
    fn every_kind() -> Vec<Event> {
        let id = MsgId {
            producer: 1,
            key: 2,
            seq: 3,
        };
        vec![
            Event::Header {
                run_id: "r".into(),
                broker: "kafka".into(),
                t: 1,
            },
            Event::Phase {
                t: 2,
                phase: Phase::LoadStart {
                    warmup_ns: 5,
                    duration_ns: 9,
                },
            },
            Event::Phase {
                t: 2,
                phase: Phase::FinalReadStart,
            },
            Event::SendInvoke {
                t: 3,
                id,
                intended: 2,
            },
            Event::SendOk {
                t: 4,
                id,
                intended: 2,
                pos: Position::Offset {
                    shard: 1,
                    offset: 7,
                },
            },
            Event::SendFail {
                t: 4,
                id,
                error: "no".into(),
            },
            Event::SendInfo {
                t: 4,
                id,
                error: "timeout".into(),
            },
            Event::Deliver {
                t: 5,
                consumer: 0,
                id,
                intended: 2,
                pos: Position::Transient { queue: 1, tag: 9 },
                redelivered: true,
                receive_count: 2,
            },
            Event::Foreign {
                t: 5,
                consumer: 0,
                pos: Position::Unknown,
                detail: "x".into(),
            },
            Event::Processed {
                t: 6,
                consumer: 0,
                id,
            },
            Event::DedupeSkip {
                t: 6,
                consumer: 0,
                id,
            },
            Event::Ack {
                t: 7,
                consumer: 0,
                id,
            },
            Event::ConsumerError {
                t: 7,
                consumer: 0,
                error: "e".into(),
            },
            Event::Worker {
                t: 8,
                consumer: 1,
                event: WorkerEvent::Ready { pid: 4 },
            },
            Event::Fault {
                t: 9,
                index: 0,
                kind: "blackhole".into(),
                phase: FaultPhase::Start,
                detail: "d".into(),
            },
            Event::ProducerWorker {
                t: 9,
                producer: 0,
                event: WorkerEvent::Killed {
                    signal: "SIGKILL".into(),
                },
            },
            Event::Reconnect {
                t: 10,
                role: ClientRole::Consumer,
                index: 2,
                reason: "stall".into(),
            },
            Event::FinalRead {
                t: 11,
                id,
                intended: 2,
                pos: Position::Id { id: "m".into() },
                redelivered: false,
                receive_count: 1,
            },
            Event::FinalReadDone {
                t: 12,
                outcome: FinalReadOutcome::TimedOut,
                read: 1,
                detail: "d".into(),
            },
            Event::BrokerUsage {
                t: 13,
                interval_ns: 1_000_000_000,
                processes: 2,
                cpu_ns: 250_000_000,
                rss_bytes: 1 << 27,
                written_bytes: 4096,
            },
            Event::SendWindow {
                t: 14,
                producer: 0,
                size: 8000,
            },
            Event::Connected {
                t: 15,
                role: ClientRole::Consumer,
                index: 1,
                endpoint: "10.77.0.12:5672".into(),
            },
            Event::ClusterView {
                t: 16,
                lines: vec![
                    ("n1".into(), "n1 n2 n3".into()),
                    ("leader".into(), "n2".into()),
                ],
            },
            Event::FaultNodes {
                t: 17,
                index: 0,
                nodes: vec![
                    ("n1".into(), "cut from n2 n3".into()),
                    ("n2".into(), "cut from n1".into()),
                ],
            },
            Event::StoreHolds {
                t: 18,
                consumer: 1,
                id: MsgId {
                    producer: 0,
                    key: 6,
                    seq: 70,
                },
            },
            Event::StoreRead {
                t: 19,
                complete: true,
                rows: 1,
                detail: String::new(),
            },
        ]
    }

    #[test]
    fn every_event_kind_round_trips_through_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.bin");
        let (recorder, writer) = crate::history::create(&path).unwrap();
        for ev in every_kind() {
            recorder.record(ev);
        }
        drop(recorder);
        writer.finish().unwrap();
        let mut out = Vec::new();
        let (n, warning) = write_jsonl(&path, &mut out).unwrap();
        assert_eq!(n as usize, every_kind().len());
        assert!(warning.is_none());
        let back: Vec<Event> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| parse_line(l).unwrap())
            .collect();
        assert_eq!(back, every_kind());
    }

    #[test]
    fn the_schema_names_every_event_kind() {
        let schema = json_schema().to_string();
        for kind in [
            "SendOk",
            "Deliver",
            "Reconnect",
            "FinalRead",
            "FinalReadDone",
            "BrokerUsage",
            "SendWindow",
            "Connected",
            "ClusterView",
            "FaultNodes",
            "StoreHolds",
            "StoreRead",
        ] {
            assert!(schema.contains(&format!("\"{kind}\"")), "{kind} missing");
        }
    }
}
