//! The run's source of truth: an append-only file of framed events (see `codec`), written by one
//! thread that flushes at least every 200 ms, so a crash of the harness loses at most that much.

pub mod codec;
pub mod event;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

pub use codec::{FrameReader, Stop};
pub use event::{now_ns, Event, FaultPhase, Phase, Position, WorkerEvent};

const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Cheap, cloneable handle for appending events from any task or thread.
#[derive(Clone)]
pub struct Recorder {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    /// To the writer thread, which batches writes (the coordinator's history file).
    Thread(mpsc::Sender<Event>),
    /// Written and flushed at once (a producer process: what it has not yet written when it is
    /// killed must not include a send that reached the broker).
    Direct(Arc<Mutex<Direct>>),
}

struct Direct {
    out: Box<dyn Write + Send>,
    scratch: Vec<u8>,
}

impl Recorder {
    pub fn record(&self, event: Event) {
        match &self.sink {
            // If the writer is gone the run is ending; nothing useful can be done with the event.
            Sink::Thread(tx) => {
                let _ = tx.send(event);
            }
            Sink::Direct(d) => {
                if let Ok(mut d) = d.lock() {
                    let Direct { out, scratch } = &mut *d;
                    let _ = codec::write_frame(out, &event, scratch).and_then(|_| out.flush());
                }
            }
        }
    }

    /// A recorder that writes every event through to `out` before returning.
    pub fn direct(out: impl Write + Send + 'static) -> Recorder {
        Recorder {
            sink: Sink::Direct(Arc::new(Mutex::new(Direct {
                out: Box::new(out),
                scratch: Vec::with_capacity(256),
            }))),
        }
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
    let shown = path.display().to_string();
    stream(
        file,
        move |f: &mut File| {
            f.sync_all()
                .with_context(|| format!("syncing history {shown}"))
        },
        path.display().to_string(),
    )
}

/// Frame events into `out` from a writer thread; `finish` runs once everything is flushed.
fn stream<W: Write + Send + 'static>(
    out: W,
    finish: impl FnOnce(&mut W) -> Result<()> + Send + 'static,
    name: String,
) -> Result<(Recorder, HistoryWriter)> {
    let (tx, rx) = mpsc::channel::<Event>();
    let shown = name.clone();
    let handle = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || {
            let mut out = BufWriter::with_capacity(1 << 16, out);
            let written = write_loop(&mut out, rx)
                .and_then(|n| {
                    let inner = out.get_mut();
                    finish(inner)?;
                    Ok(n)
                })
                .with_context(|| format!("writing history {shown}"))?;
            Ok(written)
        })
        .context("starting the history writer thread")?;
    Ok((
        Recorder {
            sink: Sink::Thread(tx),
        },
        HistoryWriter {
            path: PathBuf::from(name),
            handle,
        },
    ))
}

fn write_loop<W: Write>(out: &mut BufWriter<W>, rx: mpsc::Receiver<Event>) -> Result<u64> {
    let mut scratch = Vec::with_capacity(256);
    let mut written = 0u64;
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(FLUSH_EVERY) {
            Ok(ev) => {
                codec::write_frame(out, &ev, &mut scratch)?;
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
