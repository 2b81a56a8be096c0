//! The run's source of truth: an append-only file of framed events (see `codec`). Recorders
//! frame events into a shared buffer; one writer thread swaps it out and writes it at least every
//! 200 ms, so a crash of the harness loses at most that much.

pub mod codec;
pub mod event;
pub mod export;

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

pub use codec::{FrameReader, Stop};
pub use event::{
    now_ns, ClientRole, Event, FaultPhase, FinalReadOutcome, Phase, Position, WorkerEvent,
};

const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Wake the writer early when this much is waiting, which bounds the buffer's memory.
const HIGH_WATER: usize = 4 << 20;

/// Cheap, cloneable handle for appending events from any task or thread.
#[derive(Clone)]
pub struct Recorder {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    /// Into the buffer the writer thread drains (the coordinator's history file).
    Shared(SharedHandle),
    /// Written and flushed at once (a producer process: what it has not yet written when it is
    /// killed must not include a send that reached the broker).
    Direct(Arc<Mutex<Direct>>),
}

struct Direct {
    out: Box<dyn Write + Send>,
    scratch: Vec<u8>,
}

/// Events framed and waiting for the writer. A lock held for one encode per event costs far
/// less than a channel send that may wake the writer each time: at a hundred thousand events a
/// second on two cores those wake-ups took CPU from the broker under test.
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Live `Recorder`s; the writer finishes once this reaches 0 and the buffer is empty.
    handles: AtomicUsize,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    events: u64,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave a frame half-written in a way that matters
        // more than losing the run's history: keep going.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, events: u64, add: impl FnOnce(&mut Vec<u8>)) {
        let mut p = self.lock();
        let before = p.bytes.len();
        add(&mut p.bytes);
        p.events += events;
        if before < HIGH_WATER && p.bytes.len() >= HIGH_WATER {
            self.wake.notify_one();
        }
    }
}

/// Counts live recorders so the writer knows when the last one is gone.
struct SharedHandle(Arc<Shared>);

impl Clone for SharedHandle {
    fn clone(&self) -> Self {
        self.0.handles.fetch_add(1, Ordering::Relaxed);
        SharedHandle(self.0.clone())
    }
}

impl Drop for SharedHandle {
    fn drop(&mut self) {
        if self.0.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.lock().closed = true;
            self.0.wake.notify_one();
        }
    }
}

impl Recorder {
    pub fn record(&self, event: Event) {
        match &self.sink {
            Sink::Shared(s) => s.0.append(1, |buf| codec::encode_frame(&event, buf)),
            Sink::Direct(d) => {
                if let Ok(mut d) = d.lock() {
                    let Direct { out, scratch } = &mut *d;
                    let _ = codec::write_frame(out, &event, scratch).and_then(|_| out.flush());
                }
            }
        }
    }

    /// Append `count` complete frames (as `FrameReader::frame` returns them, back to back), so
    /// a worker's events are not decoded and encoded again on their way into the history.
    pub fn record_frames(&self, frames: &[u8], count: u64) {
        match &self.sink {
            Sink::Shared(s) => s.0.append(count, |buf| buf.extend_from_slice(frames)),
            Sink::Direct(d) => {
                if let Ok(mut d) = d.lock() {
                    let _ = d.out.write_all(frames).and_then(|_| d.out.flush());
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

/// Write the recorders' events to `out` from a writer thread; `finish` runs once all is written.
fn stream<W: Write + Send + 'static>(
    out: W,
    finish: impl FnOnce(&mut W) -> Result<()> + Send + 'static,
    name: String,
) -> Result<(Recorder, HistoryWriter)> {
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        handles: AtomicUsize::new(1),
    });
    let recorder = Recorder {
        sink: Sink::Shared(SharedHandle(shared.clone())),
    };
    let shown = name.clone();
    let handle = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || {
            let mut out = out;
            let written = write_loop(&mut out, &shared)
                .and_then(|n| {
                    finish(&mut out)?;
                    Ok(n)
                })
                .with_context(|| format!("writing history {shown}"))?;
            Ok(written)
        })
        .context("starting the history writer thread")?;
    Ok((
        recorder,
        HistoryWriter {
            path: PathBuf::from(name),
            handle,
        },
    ))
}

/// Every `FLUSH_EVERY` (or sooner when the buffer is large, or when the last recorder is gone),
/// swap the buffer for an empty one and write it out.
fn write_loop<W: Write>(out: &mut W, shared: &Shared) -> Result<u64> {
    let mut spare = Vec::new();
    let mut written = 0u64;
    loop {
        let closed = {
            let p = shared.lock();
            let (mut p, _) = shared
                .wake
                .wait_timeout_while(p, FLUSH_EVERY, |p| !p.closed && p.bytes.len() < HIGH_WATER)
                .unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut p.bytes, &mut spare);
            written += std::mem::take(&mut p.events);
            p.closed
        };
        out.write_all(&spare)?;
        out.flush()?;
        spare.clear();
        if closed {
            // Every recorder is gone, so nothing can have been appended since the swap.
            return Ok(written);
        }
    }
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
    use crate::message::MsgId;

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
            pos: Position::Id { id: "m-1".into() },
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

    /// Damage to any byte of a mid-file frame's header, the unprotected length included, is
    /// corruption, never mistaken for a history cut short at its tail.
    #[test]
    fn a_damaged_length_in_the_middle_is_corruption_not_a_cut() {
        let mut bytes = Vec::new();
        for s in 0..2000 {
            codec::encode_frame(&send(s), &mut bytes);
        }
        let mut frame_at = 0;
        for _ in 0..1000 {
            let len = u32::from_le_bytes(bytes[frame_at..frame_at + 4].try_into().unwrap());
            frame_at += 8 + len as usize;
        }
        // The frames are a few bytes long; flips in the length's upper bytes claim kilobytes
        // to gigabytes, past the end of the input or past the largest plausible frame.
        for byte in 0..8 {
            for flip in [0x01u8, 0x5a, 0xa5, 0xff] {
                let mut damaged = bytes.clone();
                damaged[frame_at + byte] ^= flip;
                let mut r = FrameReader::new(&damaged[..]);
                assert_eq!(r.by_ref().count(), 1000);
                assert!(
                    matches!(r.stop(), Some(Stop::Corrupt { .. })),
                    "byte {byte} ^ {flip:#x}: {:?}",
                    r.stop()
                );
            }
        }
    }

    #[test]
    fn frames_passed_on_raw_read_back_as_the_same_events() {
        // A worker's pipe: frames read and checked, then appended without re-encoding.
        let mut pipe = Vec::new();
        for s in 0..50 {
            codec::encode_frame(&send(s), &mut pipe);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.bin");
        let (rec, writer) = create(&path).unwrap();
        // Passed on in uneven batches, as a worker's output arrives.
        let mut frames = FrameReader::new(&pipe[..]);
        let (mut batch, mut count) = (Vec::new(), 0);
        while let Some(Ok(_)) = frames.next() {
            batch.extend_from_slice(frames.frame());
            count += 1;
            if count == 7 {
                rec.record_frames(&batch, count);
                (batch, count) = (Vec::new(), 0);
            }
        }
        rec.record_frames(&batch, count);
        rec.record(send(50));
        drop(rec);
        assert_eq!(writer.finish().unwrap(), 51);
        let events: Vec<Event> = read(&path).unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(events, (0..=50).map(send).collect::<Vec<_>>());
    }

    #[test]
    fn the_writer_finishes_once_every_clone_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.bin");
        let (rec, writer) = create(&path).unwrap();
        let threads: Vec<_> = (0..4u64)
            .map(|k| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for s in 0..10_000 {
                        rec.record(send(k * 10_000 + s));
                    }
                })
            })
            .collect();
        drop(rec);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(writer.finish().unwrap(), 40_000);
        let mut seqs: Vec<u64> = read(&path)
            .unwrap()
            .map(|e| match e.unwrap() {
                Event::SendInvoke { id, .. } => id.seq,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..40_000).collect::<Vec<_>>());
    }
}
