//! Framing shared by the history file and the worker → coordinator pipe:
//! `[u32 LE payload length][u32 LE crc32 of payload][postcard payload]`.
//! A reader stops at the first incomplete or corrupt frame, so a history cut short by a crash is
//! still readable up to its last complete record.

use std::io::{self, Read, Write};

use super::event::Event;

const HEADER: usize = 8;
/// No single record is anywhere near this; a larger length means corruption.
const MAX_FRAME: usize = 1 << 20;

pub fn encode_frame(event: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(HEADER + 64);
    out.extend_from_slice(&[0u8; HEADER]);
    postcard::serialize_with_flavor(event, Append(out)).expect("appending to a Vec cannot fail");
    let payload = &out[start + HEADER..];
    let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Appends postcard's output to a Vec. Postcard's own writers copy each field's few bytes with a
/// `memcpy` call, which made up 40 % of encoding a typical record; plain pushes are cheaper.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if bytes.len() > 16 {
            self.0.extend_from_slice(bytes);
        } else {
            for &b in bytes {
                self.0.push(b);
            }
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

pub fn write_frame(
    w: &mut (impl Write + ?Sized),
    event: &Event,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    scratch.clear();
    encode_frame(event, scratch);
    w.write_all(scratch)
}

/// What made a reader stop before the end of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Clean end of input.
    End,
    /// The input ended inside a frame (the writer was killed mid-write).
    Truncated { skipped_bytes: u64 },
    /// A frame failed its checksum or did not decode.
    Corrupt { skipped_bytes: u64, reason: String },
}

/// Reads frames until the end or the first bad frame.
pub struct FrameReader<R> {
    inner: R,
    /// The current frame, header included.
    buf: Vec<u8>,
    offset: u64,
    stop: Option<Stop>,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: Vec::with_capacity(256),
            offset: 0,
            stop: None,
        }
    }

    /// Why reading stopped (None while frames are still coming).
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// The input, e.g. to see whether a `BufReader` has more buffered.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Bytes of complete frames read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The last frame returned by `next`, exactly as read (header and checksum included), for
    /// passing it on without encoding it again.
    pub fn frame(&self) -> &[u8] {
        &self.buf
    }

    /// Read up to `n` bytes into the buffer after its first `from`; returns how many arrived.
    fn read_up_to(&mut self, from: usize, n: usize) -> io::Result<usize> {
        self.buf.resize(from + n, 0);
        let mut got = 0;
        while got < n {
            match self.inner.read(&mut self.buf[from + got..from + n]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    fn finish(&mut self, stop: Stop) -> Option<io::Result<Event>> {
        self.stop = Some(stop);
        None
    }

    /// Count the rest of the input so the warning can say how much was skipped.
    fn drain_rest(&mut self, already: usize) -> u64 {
        let mut sink = [0u8; 8192];
        let mut n = already as u64;
        while let Ok(k) = self.inner.read(&mut sink) {
            if k == 0 {
                break;
            }
            n += k as u64;
        }
        n
    }
}

/// Whether a frame with a matching checksum starts anywhere in `bytes`. A chance match needs a
/// plausible length and a 32-bit checksum to agree, about one in four billion per position.
fn holds_a_whole_frame(bytes: &[u8]) -> bool {
    (0..bytes.len().saturating_sub(HEADER)).any(|at| {
        let rest = &bytes[at..];
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        len > 0 && len <= rest.len() - HEADER && crc32fast::hash(&rest[HEADER..HEADER + len]) == crc
    })
}

impl<R: Read> Iterator for FrameReader<R> {
    type Item = io::Result<Event>;

    fn next(&mut self) -> Option<io::Result<Event>> {
        if self.stop.is_some() {
            return None;
        }
        let got = match self.read_up_to(0, HEADER) {
            Ok(g) => g,
            Err(e) => return Some(Err(e)),
        };
        if got == 0 {
            return self.finish(Stop::End);
        }
        if got < HEADER {
            let skipped_bytes = self.drain_rest(got);
            return self.finish(Stop::Truncated { skipped_bytes });
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        let crc = u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
        if len > MAX_FRAME {
            let skipped_bytes = self.drain_rest(HEADER);
            return self.finish(Stop::Corrupt {
                skipped_bytes,
                reason: format!("frame length {len} is implausible"),
            });
        }
        let got = match self.read_up_to(HEADER, len) {
            Ok(g) => g,
            Err(e) => return Some(Err(e)),
        };
        if got < len {
            let skipped_bytes = self.drain_rest(HEADER + got);
            // The length is outside the checksum, so a damaged one can claim more than the
            // input holds. A writer cut off mid-frame leaves no whole frame after its last
            // header; a whole frame among the rest means this length was damaged, not cut.
            if holds_a_whole_frame(&self.buf[HEADER..HEADER + got]) {
                return self.finish(Stop::Corrupt {
                    skipped_bytes,
                    reason: format!("frame length {len} runs past whole records that follow"),
                });
            }
            return self.finish(Stop::Truncated { skipped_bytes });
        }
        if crc32fast::hash(&self.buf[HEADER..]) != crc {
            let skipped_bytes = self.drain_rest(HEADER + len);
            return self.finish(Stop::Corrupt {
                skipped_bytes,
                reason: "checksum mismatch".into(),
            });
        }
        match postcard::from_bytes::<Event>(&self.buf[HEADER..]) {
            Ok(ev) => {
                self.offset += (HEADER + len) as u64;
                Some(Ok(ev))
            }
            Err(e) => {
                let skipped_bytes = self.drain_rest(HEADER + len);
                self.finish(Stop::Corrupt {
                    skipped_bytes,
                    reason: format!("undecodable record: {e}"),
                })
            }
        }
    }
}
