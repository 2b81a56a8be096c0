//! What the fault proxy costs with no toxic active, side by side with a direct connection in the
//! same run, on loopback: bulk throughput (one way, into a sink) and small-message round-trip
//! latency (through an echo server). Direct and proxied rounds alternate so drift hits both.
//!
//! cargo run --release --example proxy_overhead -- [rounds] [MiB per throughput round] [round trips per latency round]

use std::time::{Duration, Instant};

use anyhow::Result;
use brokerbench::chaos::proxy::{Group, Proxy};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn server(echo: bool) -> Result<String> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                if echo {
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                } else {
                    let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
                }
            });
        }
    });
    Ok(addr)
}

/// MiB/s sending `mib` MiB one way.
async fn throughput(addr: &str, mib: usize) -> Result<f64> {
    let mut c = TcpStream::connect(addr).await?;
    let block = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    for _ in 0..mib * 16 {
        c.write_all(&block).await?;
    }
    c.shutdown().await?;
    // Wait for the far side to close: everything has gone through.
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await?;
    Ok(mib as f64 / start.elapsed().as_secs_f64())
}

/// Round trips of 64 bytes, recorded in nanoseconds.
async fn latency(addr: &str, n: usize, hist: &mut Histogram<u64>) -> Result<()> {
    let mut c = TcpStream::connect(addr).await?;
    c.set_nodelay(true)?;
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..n {
        let t = Instant::now();
        c.write_all(&msg).await?;
        c.read_exact(&mut back).await?;
        hist.record(t.elapsed().as_nanos() as u64)?;
    }
    Ok(())
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rounds = args.first().copied().unwrap_or(5);
    let mib = args.get(1).copied().unwrap_or(1024);
    let trips = args.get(2).copied().unwrap_or(20_000);

    let sink = server(false).await?;
    let echo = server(true).await?;
    let sink_proxy = Proxy::start(&sink, None, None, 1)?;
    let echo_proxy = Proxy::start(&echo, None, None, 2)?;
    let via_sink = sink_proxy.address(Group::Producers).to_string();
    let via_echo = echo_proxy.address(Group::Producers).to_string();

    let (mut direct_tp, mut proxied_tp) = (Vec::new(), Vec::new());
    let mut direct = Histogram::<u64>::new(3)?;
    let mut proxied = Histogram::<u64>::new(3)?;
    // Warm up both paths.
    latency(&echo, 1000, &mut Histogram::new(3)?).await?;
    latency(&via_echo, 1000, &mut Histogram::new(3)?).await?;
    for _ in 0..rounds {
        direct_tp.push(throughput(&sink, mib).await?);
        proxied_tp.push(throughput(&via_sink, mib).await?);
        latency(&echo, trips, &mut direct).await?;
        latency(&via_echo, trips, &mut proxied).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (d, p) = (median(&mut direct_tp), median(&mut proxied_tp));
    println!("throughput, {rounds} rounds of {mib} MiB (median): direct {d:.0} MiB/s, proxied {p:.0} MiB/s, ratio {:.3}", p / d);
    println!(
        "round trip of 64 B, {} each: direct p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs; proxied p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs; added p99 {:.1} µs",
        direct.len(),
        us(&direct, 0.5),
        us(&direct, 0.99),
        us(&direct, 0.999),
        us(&proxied, 0.5),
        us(&proxied, 0.99),
        us(&proxied, 0.999),
        us(&proxied, 0.99) - us(&direct, 0.99)
    );
    Ok(())
}
