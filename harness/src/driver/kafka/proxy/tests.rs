//! Rewriting checked on responses captured from the local Kafka-protocol broker
//! (examples/capture_kafka_responses.rs), which advertises itself as 127.0.0.1:9092.

use super::*;
use kafka_protocol::messages::DescribeClusterResponse;

const METADATA: [(i16, &[u8]); 3] = [
    (
        1,
        include_bytes!("../../../../tests/fixtures/kafka/metadata-v1.bin"),
    ),
    (
        9,
        include_bytes!("../../../../tests/fixtures/kafka/metadata-v9.bin"),
    ),
    (
        12,
        include_bytes!("../../../../tests/fixtures/kafka/metadata-v12.bin"),
    ),
];
const COORDINATOR: [(i16, &[u8]); 3] = [
    (
        1,
        include_bytes!("../../../../tests/fixtures/kafka/findcoordinator-v1.bin"),
    ),
    (
        3,
        include_bytes!("../../../../tests/fixtures/kafka/findcoordinator-v3.bin"),
    ),
    (
        4,
        include_bytes!("../../../../tests/fixtures/kafka/findcoordinator-v4.bin"),
    ),
];
const CLUSTER: &[u8] = include_bytes!("../../../../tests/fixtures/kafka/describecluster-v0.bin");

/// Sends every broker to 127.0.0.2 at port + 10000, and counts the calls.
#[derive(Default)]
struct Shift(Mutex<Vec<(String, i32)>>);

impl Router for Shift {
    fn route(&self, host: &str, port: i32) -> Result<(String, i32)> {
        self.0.lock().unwrap().push((host.to_string(), port));
        Ok(("127.0.0.2".into(), port + 10000))
    }
}

fn body<T: Decodable>(key: ApiKey, version: i16, frame: &[u8]) -> (i32, T) {
    let mut b = Bytes::copy_from_slice(frame);
    let h = ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    let r = T::decode(&mut b, version).unwrap();
    assert!(!b.has_remaining(), "{key:?} v{version}: trailing bytes");
    (h.correlation_id, r)
}

fn rewritten(key: ApiKey, version: i16, frame: &[u8]) -> (Bytes, Vec<(String, i32)>) {
    let shift = Shift::default();
    let out = rewrite(key as i16, version, Bytes::copy_from_slice(frame), &shift).unwrap();
    let seen = shift.0.into_inner().unwrap();
    (out, seen)
}

#[test]
fn metadata_brokers_point_at_the_proxy_and_nothing_else_changes() {
    for (v, frame) in METADATA {
        let (out, seen) = rewritten(ApiKey::Metadata, v, frame);
        let (c0, mut before): (i32, MetadataResponse) = body(ApiKey::Metadata, v, frame);
        let (c1, after): (i32, MetadataResponse) = body(ApiKey::Metadata, v, &out);
        assert_eq!(c0, c1, "v{v}: correlation id kept");
        assert!(!before.brokers.is_empty(), "v{v}: fixture names a broker");
        assert!(!before.topics.is_empty(), "v{v}: fixture has topics");
        assert_eq!(seen, vec![("127.0.0.1".to_string(), 9092)], "v{v}");
        for b in &mut before.brokers {
            b.host = StrBytes::from_static_str("127.0.0.2");
            b.port += 10000;
        }
        assert_eq!(before, after, "v{v}: only the broker addresses differ");
    }
}

#[test]
fn coordinators_point_at_the_proxy() {
    for (v, frame) in COORDINATOR {
        let (out, seen) = rewritten(ApiKey::FindCoordinator, v, frame);
        let (_, before): (i32, FindCoordinatorResponse) = body(ApiKey::FindCoordinator, v, frame);
        let (_, after): (i32, FindCoordinatorResponse) = body(ApiKey::FindCoordinator, v, &out);
        assert_eq!(seen, vec![("127.0.0.1".to_string(), 9092)], "v{v}");
        if v < 4 {
            assert_eq!((after.host.as_str(), after.port), ("127.0.0.2", 19092));
            assert_eq!(before.error_code, after.error_code);
        } else {
            assert_eq!(after.coordinators.len(), before.coordinators.len());
            assert_eq!(after.coordinators[0].host.as_str(), "127.0.0.2");
            assert_eq!(after.coordinators[0].port, 19092);
            assert_eq!(after.coordinators[0].key, before.coordinators[0].key);
        }
    }
}

#[test]
fn describe_cluster_brokers_point_at_the_proxy() {
    let (out, _) = rewritten(ApiKey::DescribeCluster, 0, CLUSTER);
    let (_, after): (i32, DescribeClusterResponse) = body(ApiKey::DescribeCluster, 0, &out);
    assert!(!after.brokers.is_empty());
    assert!(after
        .brokers
        .iter()
        .all(|b| b.host.as_str() == "127.0.0.2" && b.port == 19092));
}

fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(&(p.len() as u32).to_be_bytes());
        v.extend_from_slice(p);
    }
    v
}

/// A request frame body: api key, version, correlation id, then some payload.
fn request(key: i16, version: i16, correlation: i32, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&key.to_be_bytes());
    v.extend_from_slice(&version.to_be_bytes());
    v.extend_from_slice(&correlation.to_be_bytes());
    v.extend(std::iter::repeat_n(0xab, payload));
    v
}

/// Feed a conversation through tap and rewriter in pieces of `step` bytes; returns what the
/// client receives.
fn converse(requests: &[u8], responses: &[u8], step: usize) -> Vec<u8> {
    let inflight = Inflight::default();
    let mut tap = RequestTap::new(inflight.clone());
    let mut rw = ResponseRewriter::new(inflight, Arc::new(Shift::default()));
    for c in requests.chunks(step) {
        tap.observe(c).unwrap();
    }
    let mut down = Vec::new();
    for c in responses.chunks(step) {
        down.extend_from_slice(&rw.feed(Bytes::copy_from_slice(c)).unwrap());
    }
    down
}

#[test]
fn streams_rewrite_only_address_frames_whatever_the_chunking() {
    // Produce (0), Metadata v12, Fetch (1): only the Metadata answer changes.
    let (_, meta) = METADATA[2];
    let mut meta_answer = meta.to_vec();
    meta_answer[..4].copy_from_slice(&8i32.to_be_bytes());
    let produce_answer = [&7i32.to_be_bytes()[..], &[1, 2, 3, 4, 5][..]].concat();
    let fetch_answer = [&9i32.to_be_bytes()[..], &[0u8; 300][..]].concat();
    let requests = framed(&[
        &request(0, 9, 7, 100),
        &request(3, 12, 8, 10),
        &request(1, 12, 9, 50),
    ]);
    let responses = framed(&[&produce_answer, &meta_answer, &fetch_answer]);
    let whole = converse(&requests, &responses, usize::MAX);
    let (rewritten_meta, _) = rewritten(ApiKey::Metadata, 12, &meta_answer);
    let expected = framed(&[&produce_answer, &rewritten_meta, &fetch_answer]);
    assert_eq!(whole, expected);
    for step in [1, 2, 3, 5, 7, 8, 13, 64, 199] {
        let down = converse(&requests, &responses, step);
        assert_eq!(down, expected, "responses in steps of {step}");
    }
}

#[test]
fn answers_to_unknown_requests_pass_unchanged() {
    let (_, meta) = METADATA[2];
    // No request was seen for this correlation id: it is not ours to decode.
    let responses = framed(&[meta]);
    let down = converse(&[], &responses, 10);
    assert_eq!(down, responses);
}

#[test]
fn a_negative_frame_length_is_an_error_not_a_panic() {
    let mut tap = RequestTap::default();
    let bad = [0xff, 0xff, 0xff, 0xff, 0, 3, 0, 12, 0, 0, 0, 1];
    assert!(tap.observe(&bad).is_err());
}
