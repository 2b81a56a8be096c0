//! Each toxic against a loopback echo server: the effect it must have, and that it heals.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::workload::Direction;

/// An echo server; returns its address.
async fn echo() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn proxied() -> (Proxy, TcpStream) {
    let proxy = Proxy::start(&echo().await, None, None, 7).unwrap();
    let conn = TcpStream::connect(proxy.address(Group::Consumers))
        .await
        .unwrap();
    (proxy, conn)
}

async fn roundtrip(c: &mut TcpStream, msg: &[u8]) -> Duration {
    let t = Instant::now();
    c.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
    t.elapsed()
}

/// What a read gives within `wait`: Some(n) bytes (0 = closed), Some(usize::MAX) on an error,
/// None when nothing arrived.
async fn read_within(c: &mut TcpStream, wait: Duration) -> Option<usize> {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(wait, c.read(&mut buf)).await {
        Ok(Ok(n)) => Some(n),
        Ok(Err(_)) => Some(usize::MAX),
        Err(_) => None,
    }
}

fn consumers(p: &Proxy) -> &Arc<GroupProxy> {
    p.group(Group::Consumers)
}

#[tokio::test]
async fn without_toxics_bytes_pass_unchanged() {
    let (_p, mut c) = proxied().await;
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut r, mut w) = c.split();
    let send = async {
        w.write_all(&data).await.unwrap();
    };
    let mut back = vec![0u8; data.len()];
    let recv = r.read_exact(&mut back);
    let (_, got) = tokio::join!(send, recv);
    got.unwrap();
    assert_eq!(back, data);
}

#[tokio::test]
async fn latency_delays_one_direction_and_heals() {
    let (p, mut c) = proxied().await;
    let id = consumers(&p).add(Toxic::Latency {
        latency: Duration::from_millis(300),
        jitter: Duration::ZERO,
        direction: Direction::Downstream,
    });
    assert!(roundtrip(&mut c, b"ping").await >= Duration::from_millis(300));
    consumers(&p).remove(id);
    assert!(roundtrip(&mut c, b"ping").await < Duration::from_millis(300));
}

#[tokio::test]
async fn the_other_group_is_not_affected() {
    let (p, mut c) = proxied().await;
    p.group(Group::Producers).add(Toxic::Partition);
    assert!(roundtrip(&mut c, b"ping").await < Duration::from_secs(1));
}

#[tokio::test]
async fn partition_holds_bytes_until_it_heals() {
    let (p, mut c) = proxied().await;
    roundtrip(&mut c, b"before").await;
    let id = consumers(&p).add(Toxic::Partition);
    c.write_all(b"during").await.unwrap();
    assert_eq!(read_within(&mut c, Duration::from_millis(300)).await, None);
    // New connections hang too.
    let mut fresh = TcpStream::connect(p.address(Group::Consumers))
        .await
        .unwrap();
    fresh.write_all(b"new").await.unwrap();
    assert_eq!(
        read_within(&mut fresh, Duration::from_millis(300)).await,
        None
    );
    consumers(&p).remove(id);
    let mut back = [0u8; 6];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"during", "held bytes arrive intact");
    let mut back = [0u8; 3];
    fresh.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"new");
}

#[tokio::test]
async fn down_closes_open_connections_and_refuses_new_ones_until_healed() {
    let (p, mut c) = proxied().await;
    roundtrip(&mut c, b"before").await;
    let id = consumers(&p).add(Toxic::Down);
    let r = read_within(&mut c, Duration::from_secs(2)).await;
    assert!(matches!(r, Some(0) | Some(usize::MAX)), "closed: {r:?}");
    let mut fresh = TcpStream::connect(p.address(Group::Consumers))
        .await
        .unwrap();
    let _ = fresh.write_all(b"x").await;
    let r = read_within(&mut fresh, Duration::from_secs(2)).await;
    assert!(matches!(r, Some(0) | Some(usize::MAX)), "refused: {r:?}");
    consumers(&p).remove(id);
    let mut again = TcpStream::connect(p.address(Group::Consumers))
        .await
        .unwrap();
    roundtrip(&mut again, b"after").await;
}

#[tokio::test]
async fn reset_peer_resets() {
    let (p, mut c) = proxied().await;
    roundtrip(&mut c, b"before").await;
    consumers(&p).add(Toxic::ResetPeer);
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
        .await
        .expect("reset arrives");
    let e = r.expect_err("a reset, not a clean close");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn blackhole_holds_bytes_and_delivers_them_in_order_when_it_heals() {
    let (p, mut c) = proxied().await;
    let id = consumers(&p).add(Toxic::Blackhole(Direction::Upstream));
    c.write_all(b"held-").await.unwrap();
    assert_eq!(read_within(&mut c, Duration::from_millis(300)).await, None);
    c.write_all(b"then").await.unwrap();
    consumers(&p).remove(id);
    // Nothing was cut out of the stream: everything sent during the hole arrives, in order.
    let mut back = vec![0u8; 9];
    tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut back))
        .await
        .expect("held bytes arrive after the heal")
        .unwrap();
    assert_eq!(&back, b"held-then");
    roundtrip(&mut c, b"after").await;
}

#[tokio::test]
async fn downstream_blackhole_lets_the_other_direction_through() {
    let (p, mut c) = proxied().await;
    let id = consumers(&p).add(Toxic::Blackhole(Direction::Downstream));
    c.write_all(b"ping").await.unwrap();
    assert_eq!(read_within(&mut c, Duration::from_millis(300)).await, None);
    consumers(&p).remove(id);
    let mut back = [0u8; 4];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
}

#[tokio::test]
async fn reset_open_resets_old_connections_and_new_ones_follow_the_toxics() {
    let (p, mut old) = proxied().await;
    roundtrip(&mut old, b"x").await;
    let id = consumers(&p).add(Toxic::Blackhole(Direction::Both));
    consumers(&p).reset_open();
    let r = tokio::time::timeout(Duration::from_secs(2), old.read(&mut [0u8; 4]))
        .await
        .expect("the old connection ends at once");
    assert_eq!(
        r.expect_err("with a reset").kind(),
        std::io::ErrorKind::ConnectionReset
    );
    // A connection made after the reset is held by the black hole, then works once it heals.
    let mut new = TcpStream::connect(p.address(Group::Consumers))
        .await
        .unwrap();
    new.write_all(b"new").await.unwrap();
    assert_eq!(
        read_within(&mut new, Duration::from_millis(300)).await,
        None
    );
    consumers(&p).remove(id);
    let mut back = [0u8; 3];
    new.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"new");
}

#[tokio::test]
async fn limit_data_closes_after_the_limit() {
    let (p, mut c) = proxied().await;
    consumers(&p).add(Toxic::LimitData {
        bytes: 10,
        direction: Direction::Downstream,
    });
    c.write_all(&[1u8; 100]).await.unwrap();
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "the connection is closed");
    assert_eq!(got.len(), 10);
}

#[tokio::test]
async fn bandwidth_limits_the_rate() {
    let (p, mut c) = proxied().await;
    consumers(&p).add(Toxic::Bandwidth {
        rate: 100_000,
        direction: Direction::Downstream,
    });
    // 30 kB at 100 kB/s takes at least 0.3 s (minus the first chunk's head start).
    let took = roundtrip(&mut c, &[7u8; 30_000]).await;
    assert!(took >= Duration::from_millis(250), "{took:?}");
}

#[tokio::test]
async fn slicer_cuts_data_into_delayed_slices() {
    let (p, mut c) = proxied().await;
    consumers(&p).add(Toxic::Slicer {
        size: 100,
        delay: Duration::from_millis(20),
        direction: Direction::Upstream,
    });
    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    // About ten slices, 20 ms apart.
    let took = roundtrip(&mut c, &data).await;
    assert!(took >= Duration::from_millis(100), "{took:?}");
}

#[tokio::test]
async fn slow_close_delays_the_close() {
    // A server that answers and hangs up at once.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"bye").await;
        }
    });
    let p = Proxy::start(&addr, None, None, 1).unwrap();
    p.group(Group::Producers)
        .add(Toxic::SlowClose(Duration::from_millis(400)));
    let t = Instant::now();
    let mut c = TcpStream::connect(p.address(Group::Producers))
        .await
        .unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Proxy::start(&echo().await, None, Some(port), 1)
        .err()
        .expect("the port is taken");
    let msg = format!("{err:#}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.contains("fault proxy"), "{msg}");
}

#[tokio::test]
async fn an_unreachable_broker_resets_the_client() {
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap().to_string();
    drop(gone);
    let p = Proxy::start(&addr, None, None, 1).unwrap();
    let mut c = TcpStream::connect(p.address(Group::Producers))
        .await
        .unwrap();
    let r = read_within(&mut c, Duration::from_secs(5)).await;
    assert!(matches!(r, Some(0) | Some(usize::MAX)), "{r:?}");
}
