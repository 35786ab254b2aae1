//! The pipeline on real encoded pictures: the scripted scene, encoded with OpenH264, through
//! a hub, decoded and analysed.

use std::time::Duration;

use vigil_camera::testsrc::{SceneScript, TestPattern};
use vigil_camera::{EncoderConfig, H264Encoder};

use super::*;
use crate::events::EventFilter;
use crate::{ZoneKind, ZoneSpec};
use vigil_motion::{MotionEvent, Scope};

/// A wall-clock time that is a multiple of the scene's 30 s period.
pub(crate) const BASE: i64 = 1_800_000_000_000_000;
pub(crate) const FPS: f64 = 10.0;

fn rect(name: &str, kind: ZoneKind, (x0, y0, x1, y1): (f32, f32, f32, f32)) -> ZoneSpec {
    ZoneSpec {
        name: name.into(),
        kind,
        points: vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
        sensitivity: None,
        min_area_pct: None,
    }
}

/// The settings a user of the scene camera writes: the overlay and the swinging square masked.
pub(crate) fn scene_settings(w: u32, h: u32) -> MotionSettings {
    let script = SceneScript::default();
    MotionSettings {
        zones: vec![
            rect("overlay", ZoneKind::Mask, script.overlay_mask(w, h)),
            rect("flag", ZoneKind::Mask, script.masked_area()),
        ],
        ..MotionSettings::default()
    }
}

/// `seconds` of the scene from `BASE`, encoded at 10 fps with a key frame every second.
pub(crate) fn encode_scene(w: u32, h: u32, seconds: u32) -> Vec<AccessUnit> {
    let mut tp = TestPattern::scene(w, h, SceneScript::default()).unwrap();
    let mut enc = H264Encoder::new(EncoderConfig {
        width: w,
        height: h,
        fps: FPS,
        bitrate_bps: 500_000,
        keyint: 10,
    })
    .unwrap();
    let frames = seconds * FPS as u32;
    (0..frames)
        .filter_map(|n| {
            let us = BASE + (f64::from(n) * 1e6 / FPS) as i64;
            enc.encode(tp.render(n, us), i64::from(n) * 9000, us)
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scene_raises_one_event_for_the_walk_and_none_for_lights_or_masked_motion() {
    let (w, h) = (640, 360);
    let aus = tokio::task::spawn_blocking(move || encode_scene(w, h, 31))
        .await
        .unwrap();
    let hub = Hub::new("yard/sub", 64);
    let store = Arc::new(EventStore::open_in_memory().unwrap());
    let (bus, mut bus_rx) = broadcast::channel(16);
    let handle = spawn_motion(
        "yard".into(),
        hub.clone(),
        scene_settings(w, h),
        store.clone(),
        bus,
    )
    .unwrap();
    let mut active = handle.active.clone();
    let mut active_seen = Vec::new();
    for (i, au) in aus.into_iter().enumerate() {
        hub.publish(au);
        // Faster than real time, but never faster than the decoder (no drops in this test).
        while handle.stats().decoded < i as u64 + 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if active.has_changed().unwrap() {
            active_seen.push(*active.borrow_and_update());
        }
    }
    assert_eq!(handle.stats().dropped, 0);
    assert!(handle.stats().analysed >= 150, "{:?}", handle.stats());
    handle.stop().await;
    assert_eq!(active_seen, [true, false]);

    let rows = store.list(&EventFilter::default()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let ev = &rows[0];
    let (enter, leave) = SceneScript::default().object_intervals(BASE, BASE + 31_000_000)[0];
    assert!(
        (ev.start_us - enter).abs() <= 1_000_000,
        "start {}",
        ev.start_us - BASE
    );
    let end = ev.end_us.unwrap();
    assert!((end - leave).abs() <= 1_000_000, "end {}", end - BASE);
    assert!(ev.zones.is_empty());
    assert!(ev.peak_score > 0.01, "{ev:?}");
    let bbox = ev.bbox.unwrap();
    assert!(
        bbox.y > 0.3 && bbox.x < 0.2 && bbox.x + bbox.w > 0.6,
        "{bbox:?}"
    );
    let jpeg = store.thumbnail(ev.id).unwrap().unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);

    match bus_rx.recv().await.unwrap() {
        NvrEvent::MotionStart { event } => {
            assert_eq!((event.id, event.end_us), (ev.id, None));
            assert!(event.has_thumbnail);
        }
        e => panic!("{e:?}"),
    }
    match bus_rx.recv().await.unwrap() {
        NvrEvent::MotionEnd { event } => assert_eq!(&event, ev),
        e => panic!("{e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_decoder_drops_to_key_frames_without_blocking_the_hub() {
    let aus = tokio::task::spawn_blocking(|| encode_scene(320, 180, 3))
        .await
        .unwrap();
    let hub = Hub::new("cam/sub", 1024);
    let store = Arc::new(EventStore::open_in_memory().unwrap());
    let (bus, _) = broadcast::channel(16);
    let handle = spawn_motion(
        "cam".into(),
        hub.clone(),
        MotionSettings::default(),
        store,
        bus,
    )
    .unwrap();
    // Ten times the stream, published at once: the queue overflows.
    let t0 = std::time::Instant::now();
    for round in 0..10i64 {
        for au in &aus {
            let mut au = au.clone();
            au.capture_us += round * 3_000_000;
            hub.publish(au);
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(1), "publishing blocked");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let st = handle.stats();
    handle.stop().await;
    assert!(st.dropped > 0, "{st:?}");
    assert!(st.decoded > 0, "{st:?}");
}

#[test]
fn thumbnails_are_small_jpegs() {
    let mut tp = TestPattern::scene(640, 360, SceneScript::default()).unwrap();
    let jpeg = sink::thumbnail_jpeg(tp.render(0, BASE)).unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    assert!(jpeg.len() < 40_000, "{}", jpeg.len());
}

#[test]
fn h265_streams_are_refused_not_misdecoded() {
    // OpenH264 decodes H.264 only (libavcodec decodes H.265: libav_tests.rs).
    let mut a = Analyzer::with_decoder(MotionSettings::default(), DecoderKind::OpenH264).unwrap();
    let au = AccessUnit {
        params: Arc::new(vigil_media::StreamParams {
            codec: vigil_media::Codec::H265,
            vps: None,
            sps: bytes::Bytes::new(),
            pps: bytes::Bytes::new(),
            width: 64,
            height: 64,
            fps: None,
        }),
        pts: 0,
        capture_us: 0,
        key: true,
        data: bytes::Bytes::new(),
    };
    assert!(a.push(&au).is_err());
}

#[test]
fn garbage_access_units_never_panic_and_resume_at_a_key_frame() {
    let aus = encode_scene(320, 180, 2);
    let mut a = Analyzer::new(MotionSettings::default()).unwrap();
    let params = aus[0].params.clone();
    for (i, junk) in [&[0u8, 0, 0, 3, 0x65, 0xFF, 0x00][..], &[0xFF; 64], &[]]
        .iter()
        .enumerate()
    {
        let au = AccessUnit {
            params: params.clone(),
            pts: i as i64,
            capture_us: i as i64,
            key: true,
            data: bytes::Bytes::copy_from_slice(junk),
        };
        let _ = a.push(&au);
    }
    let mut analysed = 0;
    for au in &aus {
        if a.push(au).unwrap().is_some() {
            analysed += 1;
        }
    }
    assert!(analysed >= 5, "{analysed} {:?}", a.stats());
}

#[test]
fn a_clock_stepping_back_ends_the_open_event_and_detection_goes_on() {
    let aus = encode_scene(320, 180, 12);
    let mut a = Analyzer::new(MotionSettings::default()).unwrap();
    let mut events = Vec::new();
    let split = aus.len() * 2 / 3; // 8 s: the walk (4 s to 11 s) is under way
    for au in &aus[..split] {
        if let Some(r) = a.push(au).unwrap() {
            events.extend(r.result.events);
        }
    }
    let starts = |ev: &[MotionEvent]| {
        ev.iter()
            .filter(|e| {
                matches!(
                    e,
                    MotionEvent::Start {
                        scope: Scope::Camera,
                        ..
                    }
                )
            })
            .count()
    };
    assert_eq!(starts(&events), 1, "{events:?}");
    let before = a.stats().analysed;
    let mut after = Vec::new();
    for au in &aus[split..] {
        let mut au = au.clone();
        au.capture_us -= 3_600_000_000; // an hour back
        if let Some(r) = a.push(&au).unwrap() {
            after.extend(r.result.events);
        }
    }
    // The open event ended at once, dated at the last time before the jump.
    match after.first() {
        Some(MotionEvent::End { ts_us, .. }) => {
            assert_eq!(*ts_us, aus[split - 1].capture_us)
        }
        e => panic!("{e:?}"),
    }
    assert!(a.stats().analysed >= before + 15, "{:?}", a.stats());
}

#[test]
fn non_reference_pictures_are_not_decoded_when_no_analysis_is_due() {
    let mut aus = encode_scene(320, 180, 3);
    // The picture before each key frame is referred to by nothing: mark its slices
    // non-reference (nal_ref_idc 0). Decoding them now would fail (the slice header changes
    // meaning), so a decode error here means one was decoded.
    let mut marked = 0;
    for i in 0..aus.len() - 1 {
        if aus[i + 1].key && !aus[i].key {
            let mut data = aus[i].data.to_vec();
            let mut pos = 0;
            while pos + 4 < data.len() {
                let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
                data[pos + 4] &= !0x60;
                pos += 4 + len;
            }
            aus[i].data = bytes::Bytes::from(data);
            marked += 1;
        }
    }
    assert!(marked >= 2);
    let mut a = Analyzer::new(MotionSettings {
        fps: 1.0, // due once a second: on the key frames of this 1 s GOP stream
        ..MotionSettings::default()
    })
    .unwrap();
    for au in &aus {
        a.push(au).unwrap();
    }
    let st = a.stats();
    assert_eq!((st.not_needed, st.errors), (marked, 0), "{st:?}");
    assert_eq!(st.decoded, aus.len() as u64 - marked);
}
