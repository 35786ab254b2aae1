//! Frames per second of `MotionDetector::process` on 640x360 luma planes (a sub stream) on one
//! core: a textured scene with noise and a walking object, 50 pre-rendered frames (10 s at 5 fps)
//! replayed in a loop, with two zones and a mask.

// criterion_group! generates an undocumented public fn.
#![allow(missing_docs)]
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vigil_motion::scene::{Scene, SceneObject};
use vigil_motion::{MotionConfig, MotionDetector, Polygon, Zone};

fn frames() -> (Vec<Vec<u8>>, usize) {
    let mut s = Scene::new(640, 360);
    s.objects.push(SceneObject {
        enter_us: 2_000_000,
        leave_us: 8_000_000,
        pos: (0.1, 0.45),
        size: (0.08, 0.3),
        velocity: (0.08, 0.0),
        luma: 15,
    });
    let frames = (0..50)
        .map(|i| {
            let mut buf = Vec::new();
            s.render(i * 200_000, &mut buf);
            buf
        })
        .collect();
    (frames, s.stride)
}

fn bench_detect(c: &mut Criterion) {
    let (frames, stride) = frames();
    let mut cfg = MotionConfig::new(640, 360);
    cfg.zones = vec![
        Zone::new("left", Polygon::rect(0.0, 0.0, 0.5, 1.0)),
        Zone::new("path", Polygon::new([(0.1, 0.9), (0.5, 0.4), (0.9, 0.9)])),
    ];
    cfg.masks = vec![Polygon::rect(0.8, 0.0, 1.0, 0.2)];
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(1));
    group.bench_function("process_640x360", |b| {
        let mut d = MotionDetector::new(cfg.clone()).expect("valid config");
        let mut i = 0usize;
        let mut ts = 0i64;
        b.iter(|| {
            let r = d.process(black_box(&frames[i % frames.len()]), stride, ts);
            i += 1;
            ts += 200_000;
            black_box(r)
        });
    });
    group.finish();
}

criterion_group!(benches, bench_detect);
criterion_main!(benches);
