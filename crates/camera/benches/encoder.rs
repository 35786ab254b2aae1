//! Encoder throughput on one core: frames per second at the main (1280x720) and sub
//! (640x360) sizes, encoding moving test-pattern frames at the default bit rates.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_camera::testsrc::TestPattern;
use vigil_camera::{EncoderConfig, H264Encoder, I420Frame};

fn bench_size(c: &mut Criterion, width: u32, height: u32, bitrate_bps: u32) {
    let mut tp = TestPattern::new(width, height).expect("test pattern");
    // Pre-render a second of frames so the benchmark measures the encoder alone.
    let frames: Vec<I420Frame> = (0..30)
        .map(|n| {
            tp.render(n, 1_700_000_000_000_000 + i64::from(n) * 33_333)
                .clone()
        })
        .collect();
    let mut enc = H264Encoder::new(EncoderConfig {
        width,
        height,
        fps: 30.0,
        bitrate_bps,
        keyint: 60,
    })
    .expect("encoder");
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut n: i64 = 0;
    group.bench_function(format!("{width}x{height}"), |b| {
        b.iter(|| {
            let frame = &frames[(n % 30) as usize];
            let au = enc.encode(frame, n * 3000, n).expect("encode");
            n += 1;
            au
        })
    });
    group.finish();
}

fn encoder(c: &mut Criterion) {
    bench_size(c, 1280, 720, 2_000_000);
    bench_size(c, 640, 360, 512_000);
}

criterion_group!(benches, encoder);
criterion_main!(benches);
