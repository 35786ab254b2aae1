//! `vigil serve` records a third-party H.265 camera (GStreamer's RTSP server with x265 and
//! RFC 7798 payloading) over 127.0.0.1 without re-encoding, and `vigil export` hands back a
//! time range as an `hvc1` MP4 that ffprobe and ffmpeg accept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::thread;
use std::time::Duration;

use common::recorder::{
    export, ffprobe, gst_camera_codec, now_us, vigil_serve, write_config, CameraEntry,
};

#[test]
fn records_gstreamer_x265_camera_and_exports_hevc() {
    let dir = tempfile::tempdir().unwrap();
    let fps: i64 = 15;
    let (_cam, addr) = gst_camera_codec(&format!("320x240@{fps}"), "h265");
    let config = write_config(
        dir.path(),
        "",
        "",
        &[CameraEntry {
            name: "hevc".into(),
            url: format!("rtsp://{addr}/main"),
            login: None,
        }],
    );
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording hevc/main", 0, Duration::from_secs(30));
    let rec_start = now_us();
    // A recorded second is exportable ~1.5 s after it happened (the fragment being written
    // ~1 s, the index commit ~0.5 s; docs/recording.md); 2 s of margin.
    thread::sleep(Duration::from_secs(13));

    // 10 s from the first second on, while the recorder keeps recording.
    let (start, end) = (rec_start + 1_000_000, rec_start + 11_000_000);
    let out = dir.path().join("hevc.mp4");
    let e = export(&config, "hevc", start, end, &out);
    let frame_us = 1_000_000 / fps;
    // x265 key-int-max = 2 s: the export starts at the key frame at or before the start.
    assert!(
        e.start_us <= start && start - e.start_us <= 2_000_000 + frame_us,
        "{e:?}"
    );
    assert!((e.end_us - end).abs() <= frame_us, "{e:?}");
    let p = ffprobe(&out);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        ("hevc", 320, 240),
        "{p:?}"
    );
    let want = (e.end_us - e.start_us) as f64 / 1e6;
    assert!(
        (p.duration - want).abs() <= 1.0 / fps as f64,
        "duration {} vs {want}: {p:?} {e:?}",
        p.duration
    );
    assert_eq!(p.frames, e.frames, "{p:?} {e:?}");
    assert!(
        (p.frames as f64 - want * fps as f64).abs() <= 2.0,
        "{} frames for {want} s at {fps} fps",
        p.frames
    );
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out), "");

    // The camera's codec made it into the log, not a refusal.
    serve.stop_gracefully(Duration::from_secs(10));
    let log = serve.stderr_text();
    assert!(!log.contains("unsupported video codec"), "{log}");
}
