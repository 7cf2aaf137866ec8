//! Throughput of each pipeline stage over COPY-like CSV, in MB/s: the record
//! counter, the fingerprint (counter + per-record XXH3-128), sha256, zstd 1 and 3
//! (backup's frame encoder, and zstd's streaming encoder for comparison),
//! and all of them together as backup runs them; and the session socket's
//! reading of the message framing (`read_gate`) over the same rows as CopyData.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pgbarge::conn::read_gate::{Gated, ReadGate};
use pgbarge::format::csv::RecordScanner;
use pgbarge::format::digest::{Fingerprinter, Sha256Stage};
use pgbarge::format::zstd_frames::FrameEncoder;
use pgbarge::stream::stages::{BLOCK_SIZE, CsvStages};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// About `size` bytes of CSV shaped like scripts/bench.sh's table: ids,
/// timestamps, quoted text with commas, quotes, a newline and a 32-hex-digit
/// hash (its `md5`), numbers, jsonb with another hash, booleans. The hashes
/// matter: they are what zstd cannot compress.
fn sample_csv(size: usize) -> Vec<u8> {
    let hash = |x: u64| format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&x.to_le_bytes()));
    let mut out = b"id,created_at,message,amount,payload,is_active,ref_id\n".to_vec();
    let mut i: u64 = 0;
    while out.len() < size {
        i += 1;
        let line = format!(
            "{i},2024-01-{:02} {:02}:{:02}:{:02}+00,\"message {i}, with \"\"quotes\"\" and\na second line {}\",{}.{:02},\"{{\"\"k\"\": {i}, \"\"tags\"\": [\"\"a\"\", \"\"b\"\", \"\"{}\"\"]}}\",{},{}\n",
            i / 86_400 % 28 + 1,
            i / 3600 % 24,
            i / 60 % 60,
            i % 60,
            hash(i),
            i % 100_000 / 100,
            i % 100,
            hash(i * 7),
            if i.is_multiple_of(2) { "t" } else { "f" },
            i % 1000
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn blocks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.chunks(BLOCK_SIZE)
}

fn stages(c: &mut Criterion) {
    let data = sample_csv(32 << 20);
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("record_counter", |b| {
        b.iter(|| {
            let mut s = RecordScanner::new();
            for blk in blocks(&data) {
                s.feed(blk);
            }
            s.finish().unwrap()
        })
    });
    g.bench_function("fingerprint", |b| {
        b.iter(|| {
            let mut s = RecordScanner::new();
            let mut f = Fingerprinter::new();
            for blk in blocks(&data) {
                s.feed_with(blk, |p, e| f.piece(p, e));
            }
            f.finish()
        })
    });
    g.bench_function("sha256", |b| {
        b.iter(|| {
            let mut s = Sha256Stage::new();
            for blk in blocks(&data) {
                s.feed(blk);
            }
            s.finish()
        })
    });
    for level in [1, 3] {
        // What backup writes: independent frames (see src/zstdframes.rs) ...
        g.bench_with_input(BenchmarkId::new("zstd_frames", level), &level, |b, &level| {
            b.iter(|| {
                let mut enc = FrameEncoder::new(Vec::new(), level).unwrap();
                for blk in blocks(&data) {
                    enc.write_all(blk).unwrap();
                }
                enc.finish().unwrap().len()
            })
        });
        // ... and, for comparison, zstd's streaming encoder.
        g.bench_with_input(BenchmarkId::new("zstd_stream", level), &level, |b, &level| {
            b.iter(|| {
                let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
                for blk in blocks(&data) {
                    std::io::Write::write_all(&mut enc, blk).unwrap();
                }
                enc.finish().unwrap().len()
            })
        });
    }
    g.bench_function("count_sha256_fingerprint", |b| {
        b.iter(|| {
            let mut s = CsvStages::new(true);
            for blk in blocks(&data) {
                s.feed(blk);
            }
            s.finish().unwrap()
        })
    });
    g.bench_function("read_gate_framing", |b| {
        // Each record as the server sends it: one CopyData message.
        let mut wire = Vec::with_capacity(data.len() + data.len() / 20);
        for line in data.split_inclusive(|&c| c == b'\n') {
            wire.push(b'd');
            wire.extend_from_slice(&(line.len() as u32 + 4).to_be_bytes());
            wire.extend_from_slice(line);
        }
        let waker = futures::task::noop_waker();
        let mut space = vec![0u8; 64 << 10];
        b.iter(|| {
            let gate = Arc::new(ReadGate::default());
            let _rows = gate.count_large_rows();
            let mut gated = Gated::new(&wire[..], gate.clone(), 0);
            let mut total = 0;
            loop {
                let mut buf = ReadBuf::new(&mut space);
                match Pin::new(&mut gated).poll_read(&mut Context::from_waker(&waker), &mut buf) {
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                    Poll::Ready(Ok(())) => total += buf.filled().len(),
                    other => panic!("{other:?}"),
                }
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
