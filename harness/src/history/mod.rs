//! The run's source of truth: an append-only file of framed events (see `codec`), written by one
//! thread that flushes at least every 200 ms, so a crash of the harness loses at most that much.

pub mod codec;
pub mod event;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use codec::{FrameReader, Stop};
pub use event::{now_ns, Event, FaultPhase, Phase, Position, WorkerEvent};

const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Cheap, cloneable handle for appending events from any task or thread.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
}

impl Recorder {
    pub fn record(&self, event: Event) {
        // If the writer is gone the run is ending; nothing useful can be done with the event.
        let _ = self.tx.send(event);
    }
}

/// Owns the writer thread; `finish` flushes, syncs and reports how many events were written.
pub struct HistoryWriter {
    path: PathBuf,
    handle: JoinHandle<Result<u64>>,
}

pub fn create(path: &Path) -> Result<(Recorder, HistoryWriter)> {
    let file =
        File::create(path).with_context(|| format!("creating history {}", path.display()))?;
    let (tx, rx) = mpsc::channel::<Event>();
    let shown = path.display().to_string();
    let handle = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || write_loop(file, rx).with_context(|| format!("writing history {shown}")))
        .context("starting the history writer thread")?;
    Ok((
        Recorder { tx },
        HistoryWriter {
            path: path.to_owned(),
            handle,
        },
    ))
}

fn write_loop(file: File, rx: mpsc::Receiver<Event>) -> Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 16, file);
    let mut scratch = Vec::with_capacity(256);
    let mut written = 0u64;
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(ev) => {
                codec::write_frame(&mut out, &ev, &mut scratch)?;
                written += 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= FLUSH_EVERY {
            out.flush()?;
            last_flush = Instant::now();
        }
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(written)
}

impl HistoryWriter {
    /// Wait for every recorder to be dropped, then flush and sync. Returns the event count.
    pub fn finish(self) -> Result<u64> {
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("history writer for {} panicked", self.path.display()))?
    }
}

/// Read a history file up to its last complete record.
pub fn read(path: &Path) -> Result<FrameReader<BufReader<File>>> {
    let f = File::open(path).with_context(|| format!("opening history {}", path.display()))?;
    Ok(FrameReader::new(BufReader::with_capacity(1 << 16, f)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::envelope::MsgId;

    fn send(seq: u64) -> Event {
        Event::SendInvoke {
            t: 1_000 + seq,
            id: MsgId {
                producer: 0,
                key: 1,
                seq,
            },
            intended: 999,
        }
    }

    #[test]
    fn writes_and_reads_back_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.bin");
        let (rec, writer) = create(&path).unwrap();
        for s in 0..1000 {
            rec.record(send(s));
        }
        rec.record(Event::SendOk {
            t: 5,
            id: MsgId {
                producer: 0,
                key: 1,
                seq: 0,
            },
            intended: 4,
            pos: Position::Sqs {
                message_id: "m-1".into(),
            },
        });
        drop(rec);
        assert_eq!(writer.finish().unwrap(), 1001);
        let mut r = read(&path).unwrap();
        let events: Vec<Event> = r.by_ref().map(|e| e.unwrap()).collect();
        assert_eq!(events.len(), 1001);
        assert_eq!(events[999], send(999));
        assert_eq!(r.stop(), Some(&Stop::End));
    }

    #[test]
    fn truncated_history_reads_up_to_last_complete_record() {
        let mut bytes = Vec::new();
        for s in 0..10 {
            codec::encode_frame(&send(s), &mut bytes);
        }
        let full = bytes.len();
        bytes.truncate(full - 3);
        let mut r = FrameReader::new(&bytes[..]);
        assert_eq!(r.by_ref().count(), 9);
        let last_frame = full - r.offset() as usize;
        assert_eq!(
            r.stop(),
            Some(&Stop::Truncated {
                skipped_bytes: (last_frame - 3) as u64
            })
        );
    }

    #[test]
    fn corrupt_record_stops_reading_with_a_reason() {
        let mut bytes = Vec::new();
        for s in 0..3 {
            codec::encode_frame(&send(s), &mut bytes);
        }
        let second = bytes.len() / 3 + 10;
        bytes[second] ^= 0xff;
        let mut r = FrameReader::new(&bytes[..]);
        assert_eq!(r.by_ref().count(), 1);
        match r.stop() {
            Some(Stop::Corrupt {
                reason,
                skipped_bytes,
            }) => {
                assert_eq!(reason, "checksum mismatch");
                assert_eq!(*skipped_bytes, (bytes.len() - r.offset() as usize) as u64);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }
}
