//! Records real Metadata, FindCoordinator and DescribeCluster responses from a Kafka-protocol
//! broker, for the fault proxy's rewriting tests (harness/tests/fixtures/kafka/).
//!
//! cargo run --example capture_kafka_responses -- 127.0.0.1:9092 harness/tests/fixtures/kafka
//!
//! Each file is one response frame without its length prefix, named `<api>-v<version>.bin`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest, RequestHeader,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let broker = args.get(1).map_or("127.0.0.1:9092", String::as_str);
    let out = Path::new(
        args.get(2)
            .map_or("harness/tests/fixtures/kafka", String::as_str),
    );
    std::fs::create_dir_all(out)?;
    let mut conn = TcpStream::connect(broker).with_context(|| format!("connecting to {broker}"))?;
    let mut correlation = 0;
    let mut exchange = |key: ApiKey, version: i16, body: &dyn Fn(&mut BytesMut) -> Result<()>| {
        correlation += 1;
        let mut frame = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("brokerbench-capture")));
        header.encode(&mut frame, key.request_header_version(version))?;
        body(&mut frame)?;
        conn.write_all(&(frame.len() as u32).to_be_bytes())?;
        conn.write_all(&frame)?;
        let mut len = [0u8; 4];
        conn.read_exact(&mut len)?;
        let mut response = vec![0u8; u32::from_be_bytes(len) as usize];
        conn.read_exact(&mut response)?;
        let name = format!("{key:?}-v{version}.bin").to_lowercase();
        std::fs::write(out.join(&name), &response)?;
        println!("{name}: {} bytes", response.len());
        anyhow::Ok(())
    };
    for v in [1, 9, 12] {
        exchange(ApiKey::Metadata, v, &|b| {
            MetadataRequest::default().with_topics(None).encode(b, v)
        })?;
    }
    for v in [1, 3, 4] {
        exchange(ApiKey::FindCoordinator, v, &|b| {
            let r = FindCoordinatorRequest::default();
            let r = if v >= 4 {
                r.with_coordinator_keys(vec![StrBytes::from_static_str("brokerbench-capture")])
            } else {
                r.with_key(StrBytes::from_static_str("brokerbench-capture"))
            };
            r.encode(b, v)
        })?;
    }
    if let Err(e) = exchange(ApiKey::DescribeCluster, 0, &|b| {
        DescribeClusterRequest::default().encode(b, 0)
    }) {
        bail!("DescribeCluster: {e:#} (does the broker support it?)");
    }
    Ok(())
}
