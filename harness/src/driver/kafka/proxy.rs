//! Kafka through the fault proxy: a Kafka client learns broker addresses from Metadata, FindCoordinator
//! and DescribeCluster responses and then connects to them directly. To keep every connection
//! inside the proxy without touching the broker's advertised listeners, those responses are
//! rewritten to point at the proxy's own listeners. Everything else streams through untouched;
//! only the frames that are rewritten are buffered whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::chaos::proxy::{Filter, Router, Wire};

/// The fault proxy's view of the Kafka protocol: requests are followed so that the responses
/// naming brokers can be found and rewritten.
pub struct KafkaWire;

impl Wire for KafkaWire {
    fn filters(&self, router: Arc<dyn Router>) -> (Box<dyn Filter>, Box<dyn Filter>) {
        let inflight = Inflight::default();
        (
            Box::new(RequestTap::new(inflight.clone())),
            Box::new(ResponseRewriter::new(inflight, router)),
        )
    }
}

impl Filter for RequestTap {
    fn apply(&mut self, chunk: Bytes) -> Result<Bytes> {
        self.observe(&chunk).map(|_| chunk)
    }
}

impl Filter for ResponseRewriter {
    fn apply(&mut self, chunk: Bytes) -> Result<Bytes> {
        self.feed(chunk)
    }
}

/// Requests sent on one connection and not yet answered: correlation id to (api key, version).
/// The request side fills it, the response side reads it.
#[derive(Clone, Default)]
pub struct Inflight(Arc<Mutex<HashMap<i32, (i16, i16)>>>);

impl Inflight {
    fn insert(&self, correlation: i32, key: i16, version: i16) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(correlation, (key, version));
        }
    }
    fn take(&self, correlation: i32) -> Option<(i16, i16)> {
        self.0.lock().ok().and_then(|mut m| m.remove(&correlation))
    }
}

/// Where a stream of length-prefixed frames stands.
#[derive(Default)]
struct Cursor {
    /// Bytes of the current frame's start, collected until the header can be read.
    head: Vec<u8>,
    /// Bytes of the current frame still to pass through unchanged.
    pass: usize,
    /// A frame being collected whole, to rewrite: (api key, version, bytes so far, total).
    whole: Option<(i16, i16, BytesMut, usize)>,
}

impl Cursor {
    /// Pass on (into `out`, when given) what remains of the current frame that `input` holds;
    /// true if it consumed anything.
    fn pass_on(&mut self, input: &mut &[u8], out: Option<&mut BytesMut>) -> bool {
        if self.pass == 0 {
            return false;
        }
        let n = self.pass.min(input.len());
        if let Some(out) = out {
            out.put_slice(&input[..n]);
        }
        *input = &input[n..];
        self.pass -= n;
        true
    }

    /// Collect the next frame's first `size` bytes; true once they are all in `head`.
    fn fill_head(&mut self, input: &mut &[u8], size: usize) -> bool {
        let n = (size - self.head.len()).min(input.len());
        self.head.extend_from_slice(&input[..n]);
        *input = &input[n..];
        self.head.len() == size
    }
}

fn frame_len(head: &[u8]) -> Result<usize> {
    let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if len < 0 {
        bail!("negative Kafka frame length {len}");
    }
    Ok(len as usize)
}

/// Client-to-broker side: notes each request's api key and version, passes every byte on.
#[derive(Default)]
pub struct RequestTap {
    cursor: Cursor,
    inflight: Inflight,
}

/// Length (4), api key (2), api version (2), correlation id (4).
const REQUEST_HEAD: usize = 12;

impl RequestTap {
    pub fn new(inflight: Inflight) -> Self {
        RequestTap {
            cursor: Cursor::default(),
            inflight,
        }
    }

    /// Note the requests that start in `input`; the bytes themselves pass on unchanged.
    pub fn observe(&mut self, mut input: &[u8]) -> Result<()> {
        let c = &mut self.cursor;
        while !input.is_empty() {
            if c.pass_on(&mut input, None) || !c.fill_head(&mut input, REQUEST_HEAD) {
                continue;
            }
            let h = &c.head;
            let len = frame_len(h)?;
            if len < REQUEST_HEAD - 4 {
                bail!("Kafka request frame of {len} bytes is too short for a header");
            }
            let key = i16::from_be_bytes([h[4], h[5]]);
            let version = i16::from_be_bytes([h[6], h[7]]);
            let correlation = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
            self.inflight.insert(correlation, key, version);
            c.pass = len - (REQUEST_HEAD - 4);
            c.head.clear();
        }
        Ok(())
    }
}

/// Broker-to-client side: rewrites broker addresses in the responses that carry them.
pub struct ResponseRewriter {
    cursor: Cursor,
    inflight: Inflight,
    router: Arc<dyn Router>,
}

/// Length (4), correlation id (4).
const RESPONSE_HEAD: usize = 8;

impl ResponseRewriter {
    pub fn new(inflight: Inflight, router: Arc<dyn Router>) -> Self {
        ResponseRewriter {
            cursor: Cursor::default(),
            inflight,
            router,
        }
    }

    /// The bytes to pass on for `chunk`: the chunk itself while it lies inside a frame that
    /// passes unchanged (most of the data), otherwise rebuilt with addresses rewritten.
    pub fn feed(&mut self, chunk: Bytes) -> Result<Bytes> {
        let c = &mut self.cursor;
        if c.whole.is_none() && c.pass >= chunk.len() {
            c.pass -= chunk.len();
            return Ok(chunk);
        }
        let mut out = BytesMut::with_capacity(chunk.len() + 64);
        self.feed_into(&chunk, &mut out)?;
        Ok(out.freeze())
    }

    fn feed_into(&mut self, mut input: &[u8], out: &mut BytesMut) -> Result<()> {
        while !input.is_empty() {
            let c = &mut self.cursor;
            if let Some((key, version, buf, total)) = &mut c.whole {
                let n = (*total - buf.len()).min(input.len());
                buf.put_slice(&input[..n]);
                input = &input[n..];
                if buf.len() == *total {
                    let (key, version) = (*key, *version);
                    let frame = std::mem::take(buf).freeze();
                    c.whole = None;
                    let body = rewrite(key, version, frame, &*self.router)?;
                    out.put_u32(body.len() as u32);
                    out.put_slice(&body);
                }
                continue;
            }
            if c.pass_on(&mut input, Some(out)) || !c.fill_head(&mut input, RESPONSE_HEAD) {
                continue;
            }
            let len = frame_len(&c.head)?;
            if len < RESPONSE_HEAD - 4 {
                bail!("Kafka response frame of {len} bytes is too short for a header");
            }
            let h = &c.head;
            let correlation = i32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            match self.inflight.take(correlation) {
                // A frame with a body: collect it whole (the correlation id is already in).
                Some((key, version)) if carries_addresses(key) && len > RESPONSE_HEAD - 4 => {
                    let mut buf = BytesMut::with_capacity(len);
                    buf.put_slice(&h[4..]);
                    c.whole = Some((key, version, buf, len));
                }
                _ => {
                    out.put_slice(h);
                    c.pass = len - (RESPONSE_HEAD - 4);
                }
            }
            c.head.clear();
        }
        Ok(())
    }
}

fn carries_addresses(key: i16) -> bool {
    key == ApiKey::Metadata as i16
        || key == ApiKey::FindCoordinator as i16
        || key == ApiKey::DescribeCluster as i16
}

/// Rewrite the broker addresses in one response frame (without its length prefix).
pub fn rewrite(key: i16, version: i16, mut frame: Bytes, router: &dyn Router) -> Result<Bytes> {
    let api = ApiKey::try_from(key).map_err(|_| anyhow::anyhow!("unknown api key {key}"))?;
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version)
        .context("decoding a Kafka response header")?;
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version)?;
    let swap = |host: &mut StrBytes, port: &mut i32| -> Result<()> {
        if host.is_empty() || *port < 0 {
            return Ok(()); // e.g. "no coordinator" answers
        }
        let (h, p) = router.route(host.as_str(), *port)?;
        *host = StrBytes::from_string(h);
        *port = p;
        Ok(())
    };
    let what = format!("{api:?} v{version} response");
    // Decode the body as T, let `edit` swap its addresses, encode it after the header.
    fn redo<T: Decodable + Encodable>(
        frame: &mut Bytes,
        version: i16,
        out: &mut BytesMut,
        what: &str,
        edit: impl FnOnce(&mut T) -> Result<()>,
    ) -> Result<()> {
        let mut r = T::decode(frame, version).with_context(|| format!("decoding {what}"))?;
        edit(&mut r)?;
        r.encode(out, version)
    }
    match api {
        ApiKey::Metadata => redo(
            &mut frame,
            version,
            &mut out,
            &what,
            |r: &mut MetadataResponse| {
                r.brokers
                    .iter_mut()
                    .try_for_each(|b| swap(&mut b.host, &mut b.port))
            },
        )?,
        ApiKey::FindCoordinator => redo(
            &mut frame,
            version,
            &mut out,
            &what,
            |r: &mut FindCoordinatorResponse| {
                swap(&mut r.host, &mut r.port)?;
                r.coordinators
                    .iter_mut()
                    .try_for_each(|c| swap(&mut c.host, &mut c.port))
            },
        )?,
        ApiKey::DescribeCluster => redo(
            &mut frame,
            version,
            &mut out,
            &what,
            |r: &mut DescribeClusterResponse| {
                r.brokers
                    .iter_mut()
                    .try_for_each(|b| swap(&mut b.host, &mut b.port))
            },
        )?,
        _ => return Ok(frame),
    }
    if frame.has_remaining() {
        bail!("{what} has {} unexpected trailing bytes", frame.remaining());
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests;
