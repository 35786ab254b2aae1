//! Packetizing one second of a 4 Mbit/s stream at 30 fps: a 60 KB IDR picture and 29
//! P pictures of 15 KB (~495 KB), into 1400-byte RTP payloads as for UDP.

// criterion_group! generates an undocumented public fn.
#![allow(missing_docs)]
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vigil_media::rtp::H264Packetizer;

fn nal(header: u8, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
    v[0] = header;
    v
}

fn gop() -> Vec<Vec<Vec<u8>>> {
    let mut aus = vec![vec![nal(0x67, 20), nal(0x68, 4), nal(0x65, 60_000)]];
    aus.extend((0..29).map(|_| vec![nal(0x41, 15_000)]));
    aus
}

fn bench_packetize(c: &mut Criterion) {
    let gop = gop();
    let bytes: usize = gop.iter().flatten().map(Vec::len).sum();
    let mut group = c.benchmark_group("packetize");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("gop_4mbps_1400", |b| {
        let mut p = H264Packetizer::new(1, 96, 0, 1400);
        b.iter(|| {
            let mut sent = 0usize;
            for (i, au) in gop.iter().enumerate() {
                p.packetize(
                    i as u32 * 3000,
                    au.iter().map(Vec::as_slice),
                    |h, payload| {
                        sent += h.len() + black_box(payload).len();
                    },
                );
            }
            black_box(sent)
        });
    });
    // The same, copying each packet into a reused buffer as a UDP sender would.
    group.bench_function("gop_4mbps_1400_copy", |b| {
        let mut p = H264Packetizer::new(1, 96, 0, 1400);
        let mut buf = Vec::with_capacity(1500);
        b.iter(|| {
            for (i, au) in gop.iter().enumerate() {
                p.packetize(
                    i as u32 * 3000,
                    au.iter().map(Vec::as_slice),
                    |h, payload| {
                        buf.clear();
                        buf.extend_from_slice(h);
                        buf.extend_from_slice(payload);
                        black_box(&buf);
                    },
                );
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench_packetize);
criterion_main!(benches);
