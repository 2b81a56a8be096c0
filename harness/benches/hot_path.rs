//! Per-message costs on the harness's hot path: building the envelope, decoding it on the
//! consumer side, and appending history records.

use std::io::{BufWriter, Write};

use brokerbench::history::codec::{write_frame, FrameReader};
use brokerbench::history::{Event, Position};
use brokerbench::message::{Envelope, MsgId};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn envelope(c: &mut Criterion) {
    let e = Envelope {
        run_tag: 42,
        id: MsgId {
            producer: 1,
            key: 77,
            seq: 123_456,
        },
        intended_ns: 1_800_000_000_000_000_000,
        sent_ns: 1_800_000_000_000_050_000,
    };
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_512B", |b| {
        b.iter(|| std::hint::black_box(e.encode(512)))
    });
    let body = e.encode(512);
    g.bench_function("decode", |b| {
        b.iter(|| std::hint::black_box(Envelope::decode(std::hint::black_box(&body))))
    });
    g.finish();
}

fn history(c: &mut Criterion) {
    let deliver = Event::Deliver {
        t: 1_800_000_000_000_000_000,
        consumer: 2,
        id: MsgId {
            producer: 1,
            key: 77,
            seq: 123_456,
        },
        intended: 1_800_000_000_000_000_000,
        pos: Position::Offset {
            shard: 3,
            offset: 9_876_543,
        },
        redelivered: false,
        receive_count: 1,
    };
    let mut g = c.benchmark_group("history");
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_deliver", |b| {
        let mut out = BufWriter::with_capacity(1 << 16, std::io::sink());
        let mut scratch = Vec::with_capacity(256);
        b.iter(|| write_frame(&mut out, std::hint::black_box(&deliver), &mut scratch).unwrap());
        out.flush().unwrap();
    });
    // Through the recorder: framed into the shared buffer that the writer thread writes out.
    g.bench_function("recorder_to_file", |b| {
        let dir = tempfile::tempdir().unwrap();
        let (rec, writer) = brokerbench::history::create(&dir.path().join("h.bin")).unwrap();
        b.iter(|| rec.record(std::hint::black_box(deliver.clone())));
        drop(rec);
        writer.finish().unwrap();
    });
    let mut bytes = Vec::new();
    let mut scratch = Vec::new();
    for _ in 0..10_000 {
        write_frame(&mut bytes, &deliver, &mut scratch).unwrap();
    }
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("read_10k", |b| {
        b.iter_batched(
            || &bytes[..],
            |r| FrameReader::new(r).count(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, envelope, history);
criterion_main!(benches);
