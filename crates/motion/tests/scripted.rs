//! Scripted scenes at 640x360, 5 fps, through the whole detector: objects entering and leaving
//! at known times, global brightness steps, masked motion, zone attribution.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vigil_motion::scene::{BrightnessStep, Scene, SceneObject};
use vigil_motion::{FrameError, MotionConfig, MotionDetector, MotionEvent, Polygon, Scope, Zone};

const W: usize = 640;
const H: usize = 360;
const FRAME_US: i64 = 200_000; // 5 fps
const S: i64 = 1_000_000;

/// Runs `scene` for `seconds` and returns every event with the frame time it was reported at.
fn run(scene: &Scene, config: MotionConfig, seconds: i64) -> Vec<(i64, MotionEvent)> {
    let mut d = MotionDetector::new(config).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut ts = 0;
    while ts < seconds * S {
        scene.render(ts, &mut buf);
        let r = d.process(&buf, scene.stride, ts).unwrap();
        out.extend(r.events.into_iter().map(|e| (ts, e)));
        ts += FRAME_US;
    }
    out.extend(d.finish(ts).into_iter().map(|e| (ts, e)));
    out
}

fn scene() -> Scene {
    let mut s = Scene::new(W, H);
    s.stride = 672; // padded rows, as decoders produce
    s
}

fn walker(enter: i64, leave: i64, x: f32, vx: f32) -> SceneObject {
    SceneObject {
        enter_us: enter,
        leave_us: leave,
        pos: (x, 0.45),
        size: (0.08, 0.3),
        velocity: (vx, 0.0),
        luma: 15,
    }
}

fn camera_events(events: &[(i64, MotionEvent)]) -> Vec<&(i64, MotionEvent)> {
    events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                MotionEvent::Start {
                    scope: Scope::Camera,
                    ..
                } | MotionEvent::End {
                    scope: Scope::Camera,
                    ..
                }
            )
        })
        .collect()
}

fn zone_events<'a>(events: &'a [(i64, MotionEvent)], zone: &str) -> Vec<&'a (i64, MotionEvent)> {
    events
        .iter()
        .filter(|(_, e)| match e {
            MotionEvent::Start {
                scope: Scope::Zone(z),
                ..
            }
            | MotionEvent::End {
                scope: Scope::Zone(z),
                ..
            } => &**z == zone,
            _ => false,
        })
        .collect()
}

/// Asserts one start/end pair dated within 1 s of `enter`/`leave` and reported within 1 s of
/// the hysteresis delays; returns the end event.
fn assert_pair(
    pair: &[&(i64, MotionEvent)],
    enter: i64,
    leave: i64,
    cfg: &MotionConfig,
) -> MotionEvent {
    assert_eq!(pair.len(), 2, "{pair:#?}");
    let (start_at, start) = pair[0];
    let (end_at, end) = pair[1];
    let MotionEvent::Start { id, ts_us, .. } = start else {
        panic!("{start:?}")
    };
    assert!(
        (ts_us - enter).abs() <= S,
        "start dated {ts_us}, script {enter}"
    );
    let min_duration = cfg.min_duration.as_micros() as i64;
    assert!(
        *start_at - enter <= min_duration + S,
        "start reported at {start_at}"
    );
    let MotionEvent::End {
        id: end_id,
        start_us,
        ts_us: end_ts,
        ..
    } = end
    else {
        panic!("{end:?}")
    };
    assert_eq!((id, ts_us), (end_id, start_us));
    assert!(
        (end_ts - leave).abs() <= S,
        "end dated {end_ts}, script {leave}"
    );
    let cooldown = cfg.cooldown.as_micros() as i64;
    assert!(*end_at - leave <= cooldown + S, "end reported at {end_at}");
    end.clone()
}

#[test]
fn an_object_entering_and_leaving_starts_and_ends_one_event_on_time() {
    let mut s = scene();
    s.objects.push(walker(2 * S, 8 * S, 0.1, 0.08));
    let cfg = MotionConfig::new(W as u32, H as u32);
    let events = run(&s, cfg.clone(), 12);
    assert_eq!(events.len(), 2, "{events:#?}");
    let end = assert_pair(&camera_events(&events), 2 * S, 8 * S, &cfg);
    let MotionEvent::End {
        peak_score,
        bbox,
        zones,
        ..
    } = end
    else {
        unreachable!()
    };
    assert!(peak_score > 0.01 && peak_score < 0.1, "{peak_score}");
    // The walker sweeps x 0.1 → 0.66 (plus its width), y 0.45..0.75.
    assert!(
        (bbox.x - 0.1).abs() < 0.03 && (bbox.x + bbox.width - 0.66).abs() < 0.05,
        "{bbox:?}"
    );
    assert!(
        (bbox.y - 0.45).abs() < 0.03 && (bbox.y + bbox.height - 0.75).abs() < 0.03,
        "{bbox:?}"
    );
    assert!(zones.is_empty());
}

#[test]
fn an_object_that_stops_still_ends_when_it_leaves() {
    // Walks for 2 s, stands still for 4 s, vanishes: the slow foreground rate keeps it
    // foreground while it stands, and no ghost remains after it leaves.
    let mut s = scene();
    s.objects.push(walker(2 * S, 4 * S, 0.1, 0.1));
    s.objects.push(SceneObject {
        pos: (0.3, 0.45),
        ..walker(4 * S, 8 * S, 0.3, 0.0)
    });
    let cfg = MotionConfig::new(W as u32, H as u32);
    let events = run(&s, cfg.clone(), 12);
    assert_pair(&camera_events(&events), 2 * S, 8 * S, &cfg);
}

#[test]
fn global_brightness_steps_raise_no_event() {
    let mut s = scene();
    let step = |at, gain, offset| BrightnessStep {
        at_us: at,
        gain,
        offset,
    };
    s.brightness = vec![
        step(2 * S, 1.0, 40.0),  // lights on
        step(4 * S, 1.0, 25.0),  // a cloud
        step(6 * S, 1.5, -10.0), // exposure/contrast change
        step(8 * S, 0.5, 0.0),   // lights off
        step(10 * S, 0.5, 3.0),  // small drift, compensated
    ];
    let mut d = MotionDetector::new(MotionConfig::new(W as u32, H as u32)).unwrap();
    let mut buf = Vec::new();
    let mut relearns = 0;
    for i in 0..(13 * S / FRAME_US) {
        let ts = i * FRAME_US;
        s.render(ts, &mut buf);
        let r = d.process(&buf, s.stride, ts).unwrap();
        assert!(r.events.is_empty(), "at {ts}: {r:?}");
        assert!(!r.motion, "at {ts}: {:?}", r.stats);
        relearns += usize::from(r.stats.relearned);
    }
    // Lights on, contrast change and lights off re-learn; the cloud (-15) and the drift (+3)
    // are under the threshold and compensated.
    assert!((3..=6).contains(&relearns), "{relearns} re-learns");
}

#[test]
fn motion_inside_a_mask_raises_no_event() {
    let mut s = scene();
    // A flag waving in the top-right corner for the whole run.
    for k in 0..20 {
        s.objects.push(SceneObject {
            enter_us: k * 500_000,
            leave_us: (k + 1) * 500_000,
            pos: (0.7 + 0.05 * (k % 3) as f32, 0.05),
            size: (0.1, 0.2),
            velocity: (0.0, 0.0),
            luma: if k % 2 == 0 { 250 } else { 10 },
        });
    }
    let mut cfg = MotionConfig::new(W as u32, H as u32);
    let events = run(&s, cfg.clone(), 10);
    assert!(!events.is_empty(), "without the mask the flag is motion");
    cfg.masks.push(Polygon::rect(0.65, 0.0, 1.0, 0.3));
    assert_eq!(run(&s, cfg, 10), []);
}

#[test]
fn events_are_attributed_to_the_right_zones() {
    let mut s = scene();
    s.objects.push(walker(S, 5 * S, 0.05, 0.05)); // x 0.05..0.33: left only
    s.objects.push(walker(8 * S, 12 * S, 0.6, 0.05)); // x 0.6..0.88: right only
    let mut cfg = MotionConfig::new(W as u32, H as u32);
    cfg.zones = vec![
        Zone::new("left", Polygon::rect(0.0, 0.0, 0.5, 1.0)),
        Zone::new("right", Polygon::rect(0.5, 0.0, 1.0, 1.0)),
        Zone::new("sky", Polygon::rect(0.0, 0.0, 1.0, 0.3)),
    ];
    let events = run(&s, cfg.clone(), 16);
    let cam = camera_events(&events);
    assert_eq!(cam.len(), 4, "{events:#?}");
    let names = |e: &MotionEvent| match e {
        MotionEvent::Start { zones, .. } | MotionEvent::End { zones, .. } => {
            zones.iter().map(|z| z.to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(names(&cam[0].1), ["left"]);
    assert_eq!(names(&cam[1].1), ["left"]);
    assert_eq!(names(&cam[3].1), ["right"]);
    assert_pair(&cam[..2], S, 5 * S, &cfg);
    assert_pair(&cam[2..], 8 * S, 12 * S, &cfg);
    assert_pair(&zone_events(&events, "left"), S, 5 * S, &cfg);
    assert_pair(&zone_events(&events, "right"), 8 * S, 12 * S, &cfg);
    assert_eq!(
        zone_events(&events, "sky"),
        Vec::<&(i64, MotionEvent)>::new()
    );
    // Brackets nest: camera start before zone start, zone end before camera end.
    assert!(matches!(
        &events[0].1,
        MotionEvent::Start {
            scope: Scope::Camera,
            ..
        }
    ));
    assert!(matches!(
        &events[3].1,
        MotionEvent::End {
            scope: Scope::Camera,
            ..
        }
    ));
}

#[test]
fn per_frame_zone_scores_and_regions() {
    let mut s = scene();
    s.noise = 0;
    let mut cfg = MotionConfig::new(W as u32, H as u32);
    cfg.zones = vec![
        Zone::new("left", Polygon::rect(0.0, 0.0, 0.5, 1.0)),
        Zone::new("right", Polygon::rect(0.5, 0.0, 1.0, 1.0)),
    ];
    let mut d = MotionDetector::new(cfg).unwrap();
    let mut buf = Vec::new();
    s.render(0, &mut buf);
    d.process(&buf, s.stride, 0).unwrap();
    // A 64x90-pixel (16x22.5-cell) dark block at x 0.25..0.35, y 0.5..0.75 appears.
    s.objects.push(SceneObject {
        enter_us: 0,
        leave_us: S,
        pos: (0.25, 0.5),
        size: (0.1, 0.25),
        velocity: (0.0, 0.0),
        luma: 0,
    });
    s.render(FRAME_US, &mut buf);
    let r = d.process(&buf, s.stride, FRAME_US).unwrap();
    assert!(r.motion);
    assert_eq!(r.regions.len(), 1, "{r:?}");
    let region = &r.regions[0];
    assert_eq!(region.zones, [Arc::<str>::from("left")]);
    let b = region.bbox;
    assert!(
        (b.x - 0.25).abs() < 0.01 && (b.width - 0.1).abs() < 0.01,
        "{b:?}"
    );
    assert!(
        (b.y - 0.5).abs() < 0.015 && (b.height - 0.25).abs() < 0.025,
        "{b:?}"
    );
    // The left zone has half the cells: its score is twice the camera's.
    assert!(r.zone_scores[0].motion && !r.zone_scores[1].motion);
    assert!(
        (r.zone_scores[0].score - 2.0 * r.score).abs() < 1e-4,
        "{r:?}"
    );
    assert!((region.area - r.score).abs() < 1e-4);
}

#[test]
fn noisy_static_scene_raises_no_event() {
    let mut s = scene();
    s.noise = 25; // a camera at night with the gain up
    assert_eq!(run(&s, MotionConfig::new(W as u32, H as u32), 10), []);
}

#[test]
fn small_objects_are_filtered_by_min_area() {
    let mut s = scene();
    // 8x8 pixels: at most 3x3 = 9 cells, under the default 15-cell minimum.
    s.objects.push(SceneObject {
        size: (8.0 / 640.0, 8.0 / 360.0),
        ..walker(2 * S, 6 * S, 0.2, 0.05)
    });
    let mut cfg = MotionConfig::new(W as u32, H as u32);
    assert_eq!(run(&s, cfg.clone(), 8), []);
    cfg.min_area = 0.0002;
    assert_eq!(run(&s, cfg, 8).len(), 2);
}

#[test]
fn per_zone_min_duration_overrides_the_camera() {
    let mut s = scene();
    s.objects.push(walker(2 * S, 3 * S, 0.1, 0.05)); // a 1 s blip
    let mut cfg = MotionConfig::new(W as u32, H as u32);
    cfg.zones = vec![Zone {
        min_duration: Some(std::time::Duration::from_secs(3)),
        ..Zone::new("porch", Polygon::rect(0.0, 0.0, 0.5, 1.0))
    }];
    let events = run(&s, cfg, 8);
    assert_eq!(camera_events(&events).len(), 2);
    assert!(zone_events(&events, "porch").is_empty());
}

#[test]
fn a_bad_plane_is_an_error_and_changes_nothing() {
    let mut d = MotionDetector::new(MotionConfig::new(W as u32, H as u32)).unwrap();
    let s = scene();
    let mut buf = Vec::new();
    s.render(0, &mut buf);
    assert!(matches!(
        d.process(&buf[..1000], s.stride, 0),
        Err(FrameError::TooShort { .. })
    ));
    assert!(matches!(
        d.process(&buf, 100, 0),
        Err(FrameError::Stride { .. })
    ));
    assert!(d.process(&buf, s.stride, 0).unwrap().stats.initialised);
    assert!(
        !d.process(&buf, s.stride, FRAME_US)
            .unwrap()
            .stats
            .initialised
    );
}

#[test]
fn hostile_planes_never_panic_and_results_stay_in_range() {
    // Random bytes, random (often wrong) lengths and strides, random time jumps.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut cfg = MotionConfig::new(97, 61);
    cfg.grid_width = 40;
    cfg.min_area = 0.0;
    cfg.zones = vec![Zone::new(
        "z",
        Polygon::new([(0.0, 0.0), (1.0, 0.2), (0.3, 1.0)]),
    )];
    let mut d = MotionDetector::new(cfg).unwrap();
    for _ in 0..2000 {
        let stride = 90 + (next() % 20) as usize;
        let len = if next() % 2 == 0 {
            stride * 61
        } else {
            (next() % (stride as u64 * 62)) as usize
        };
        let plane: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let ts = next() as i64 >> (next() % 64);
        if let Ok(r) = d.process(&plane, stride, ts) {
            assert!((0.0..=1.0).contains(&r.score));
            for z in &r.zone_scores {
                assert!((0.0..=1.0).contains(&z.score));
            }
            for g in &r.regions {
                let b = g.bbox;
                assert!(
                    b.x >= 0.0
                        && b.y >= 0.0
                        && b.x + b.width <= 1.0 + 1e-6
                        && b.y + b.height <= 1.0 + 1e-6
                );
            }
        }
    }
    d.finish(i64::MAX);
}

#[test]
fn small_brightness_changes_during_an_event_are_compensated_not_relearned() {
    // Clouds while someone walks by: shifts under the threshold are subtracted, so the
    // background is not re-learned (which would absorb the walker) and the event is one.
    let mut s = scene();
    s.objects.push(walker(2 * S, 8 * S, 0.1, 0.08));
    let step = |at, offset| BrightnessStep {
        at_us: at,
        gain: 1.0,
        offset,
    };
    s.brightness = vec![step(4 * S, -3.0), step(5 * S, 0.0), step(6 * S, 3.0)];
    let mut cfg = MotionConfig::new(W as u32, H as u32);
    // Most sensitive: threshold 4 levels, so a 3-level shift plus noise would cross it in many
    // cells without compensation.
    cfg.sensitivity = 1.0;
    let mut d = MotionDetector::new(cfg.clone()).unwrap();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    for i in 0..(12 * S / FRAME_US) {
        let ts = i * FRAME_US;
        s.render(ts, &mut buf);
        let r = d.process(&buf, s.stride, ts).unwrap();
        assert!(!r.stats.relearned, "at {ts}: {:?}", r.stats);
        events.extend(r.events.into_iter().map(|e| (ts, e)));
    }
    assert_pair(&camera_events(&events), 2 * S, 8 * S, &cfg);
}

#[test]
fn zones_only_ignores_motion_outside_every_zone_for_the_camera_scope() {
    let mut s = scene();
    // One walker left (outside the zone), later one right (inside).
    s.objects.push(walker(2 * S, 6 * S, 0.05, 0.02));
    s.objects.push(walker(10 * S, 14 * S, 0.7, 0.02));
    let mut cfg = MotionConfig::new(W as u32, H as u32);
    cfg.zones
        .push(Zone::new("right", Polygon::rect(0.6, 0.0, 1.0, 1.0)));
    cfg.zones_only = true;
    let events = run(&s, cfg.clone(), 18);
    let cam = camera_events(&events);
    let end = assert_pair(&cam, 10 * S, 14 * S, &cfg);
    let MotionEvent::End { zones, bbox, .. } = end else {
        unreachable!()
    };
    assert_eq!(zones, vec![Arc::<str>::from("right")]);
    assert!(bbox.x >= 0.6, "{bbox:?}");
    // Without zones_only the left walker is a camera event too.
    cfg.zones_only = false;
    let events = run(&s, cfg, 18);
    assert_eq!(camera_events(&events).len(), 4, "{events:#?}");
}

#[test]
fn a_zone_with_its_own_sensitivity_sees_a_faint_object_the_camera_setting_misses() {
    // Within ~55 levels of the (textured, left-to-right brighter) background under them.
    let faint = |x: f32, enter: i64, luma: u8| SceneObject {
        luma,
        ..walker(enter, enter + 4 * S, x, 0.01)
    };
    let mut s = scene();
    s.objects.push(faint(0.1, 2 * S, 90)); // inside the zone
    s.objects.push(faint(0.7, 10 * S, 125)); // outside
    let mut cfg = MotionConfig::new(W as u32, H as u32);
    cfg.sensitivity = 0.0; // threshold 60: the faint object is invisible
    let mut zone = Zone::new("left", Polygon::rect(0.0, 0.0, 0.5, 1.0));
    zone.sensitivity = Some(1.0);
    cfg.zones.push(zone);
    let events = run(&s, cfg.clone(), 16);
    assert_pair(&zone_events(&events, "left"), 2 * S, 6 * S, &cfg);
    // The camera event is the same walk; the walk outside the zone raised nothing.
    assert_pair(&camera_events(&events), 2 * S, 6 * S, &cfg);
    // Without the zone's override, nothing at all.
    cfg.zones[0].sensitivity = None;
    assert!(run(&s, cfg, 16).is_empty());
}
