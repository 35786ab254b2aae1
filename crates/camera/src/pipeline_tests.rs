//! Tests of the running camera (real threads, real time, small pictures).

use super::*;
use crate::testsrc::read_code;

fn small(fps: f64) -> CameraConfig {
    let main = StreamConfig {
        width: 320,
        height: 240,
        fps,
        bitrate_bps: 400_000,
        keyint: 10,
    };
    CameraConfig {
        source: SourceSpec::TestPattern,
        main,
        sub: Some(StreamConfig {
            width: 160,
            height: 120,
            bitrate_bps: 100_000,
            ..main
        }),
    }
}

fn wait_for(hub: &Hub, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.published() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn defaults_match_the_documented_streams() {
    let cfg = CameraConfig::default();
    assert_eq!(cfg.source, SourceSpec::TestPattern);
    assert_eq!(
        (cfg.main.width, cfg.main.height, cfg.main.fps),
        (1280, 720, 30.0)
    );
    assert_eq!((cfg.main.bitrate_bps, cfg.main.keyint), (2_000_000, 60));
    let sub = cfg.sub.unwrap();
    assert_eq!(
        (sub.width, sub.height, sub.fps, sub.bitrate_bps),
        (640, 360, 30.0, 512_000)
    );
}

#[test]
fn test_pattern_camera_publishes_both_streams_at_the_frame_rate() {
    let main_hub = Hub::new("main", 64);
    let sub_hub = Hub::new("sub", 64);
    let start = Instant::now();
    let mut cam = Camera::start(small(20.0), main_hub.clone(), Some(sub_hub.clone())).unwrap();
    // Collect decoded counters from a subscriber-free view: the GOP cache holds the
    // current GOP, so sample it a few times.
    wait_for(&main_hub, 25);
    let elapsed = start.elapsed().as_secs_f64();
    wait_for(&sub_hub, 20);
    cam.stop();
    assert_eq!(cam.status(), CameraStatus::Stopped);
    // 25 frames at 20 fps take about 1.2 s: paced, not as fast as possible.
    assert!((1.0..3.0).contains(&elapsed), "{elapsed} s");
    let stats = cam.stats();
    assert!(
        stats.main_encoded >= 25 && stats.main_frames == stats.main_encoded,
        "{stats:?}"
    );
    assert!(stats.sub_encoded >= 20, "{stats:?}");
    assert!(stats.main_encode_time > Duration::ZERO);

    let main_params = main_hub.params().unwrap();
    assert_eq!((main_params.width, main_params.height), (320, 240));
    let sub_params = sub_hub.params().unwrap();
    assert_eq!((sub_params.width, sub_params.height), (160, 120));

    // The current GOP decodes to pictures whose counters go up by one, with pts and
    // capture times matching the frame rate.
    let gop = main_hub.gop();
    assert!(gop[0].key);
    let mut dec = H264Decoder::new().unwrap();
    let mut prev: Option<(u32, i64, i64)> = None;
    for au in &gop {
        let pic = dec.decode(au).unwrap().unwrap();
        let code = read_code(&pic.y, 320, 320, 240).unwrap();
        assert_eq!(code.capture_us, au.capture_us);
        if let Some((c, pts, _)) = prev {
            assert_eq!(code.counter, c + 1);
            assert_eq!(au.pts - pts, 4500, "20 fps in 90 kHz");
        }
        prev = Some((code.counter, au.pts, au.capture_us));
    }
    // The sub stream carries the same pictures: its code reads at half size.
    let sub_gop = sub_hub.gop();
    let mut dec = H264Decoder::new().unwrap();
    for au in &sub_gop {
        let pic = dec.decode(au).unwrap().unwrap();
        assert_eq!(
            read_code(&pic.y, 160, 160, 120).map(|c| c.capture_us),
            Some(au.capture_us)
        );
    }
    // Snapshots work from either hub.
    let jpeg = crate::snapshot_jpeg(&sub_gop, 70).unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
}

#[test]
fn file_camera_passes_main_through_and_reencodes_the_sub_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.h264");
    let mut enc = H264Encoder::new(small(30.0).main.encoder()).unwrap();
    let mut tp = TestPattern::new(320, 240).unwrap();
    let mut bytes = Vec::new();
    let mut originals = Vec::new();
    for n in 0..20 {
        let au = enc.encode(tp.render(n, 0), 0, 0).unwrap().unwrap();
        vigil_media::h264::avcc_to_annexb(&au.data, &mut bytes);
        originals.push(au.data);
    }
    std::fs::write(&path, &bytes).unwrap();
    let cfg = CameraConfig {
        source: SourceSpec::File(path),
        ..small(30.0)
    };
    let main_hub = Hub::new("main", 64);
    let sub_hub = Hub::new("sub", 64);
    let mut cam = Camera::start(cfg, main_hub.clone(), Some(sub_hub.clone())).unwrap();
    wait_for(&main_hub, 15);
    wait_for(&sub_hub, 10);
    let gop = main_hub.gop();
    cam.stop();
    assert_eq!(cam.status(), CameraStatus::Stopped);
    // Main access units are the file's, byte for byte (no re-encoding).
    for au in &gop {
        assert!(originals.contains(&au.data));
    }
    assert_eq!(cam.stats().main_encoded, 0);
    let sub = sub_hub.params().unwrap();
    assert_eq!((sub.width, sub.height), (160, 120));
    assert!(cam.stats().sub_encoded >= 10);
}

#[test]
fn start_fails_cleanly_on_bad_sources_and_configs() {
    let hub = Hub::new("m", 8);
    let missing = CameraConfig {
        source: SourceSpec::File("/nonexistent/clip.mp4".into()),
        ..small(30.0)
    };
    assert!(matches!(
        Camera::start(missing, hub.clone(), Some(Hub::new("s", 8))),
        Err(CameraError::Io { .. })
    ));
    let mut bad = small(30.0);
    bad.main.width = 100;
    assert!(Camera::start(bad, hub.clone(), None).is_err());
    assert!(matches!(
        Camera::start(small(30.0), hub.clone(), None),
        Err(CameraError::InvalidConfig(_))
    ));
    #[cfg(not(feature = "v4l2"))]
    {
        let dev = CameraConfig {
            source: SourceSpec::V4l2("/dev/video0".into()),
            ..small(30.0)
        };
        assert!(matches!(
            Camera::start(dev, hub, None),
            Err(CameraError::Device(_))
        ));
    }
}

#[test]
fn a_failing_sub_thread_is_reported_in_status() {
    let main_hub = Hub::new("main", 8);
    let sub_hub = Hub::new("sub", 8);
    let cam = Camera::start(small(30.0), main_hub, Some(sub_hub)).unwrap();
    let err = CameraError::Encoder("boom".into());
    cam.shared.fail("sub", &err);
    assert_eq!(
        cam.status(),
        CameraStatus::Failed("sub: H.264 encoder: boom".into())
    );
    drop(cam); // joins the threads, which saw the stop flag
}
