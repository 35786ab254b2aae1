//! File replay: Annex B files made by our own encoder and MP4 files made by ffmpeg loop
//! forever with monotonic pts, in real time, and bad files are clear errors.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use vigil_camera::testsrc::{read_code, TestPattern};
use vigil_camera::{CameraError, EncoderConfig, FileSource, H264Decoder, H264Encoder};

/// Writes `frames` test-pattern frames as an Annex B stream; returns the file's bytes.
fn write_annexb(path: &Path, frames: u32, keyint: u32) -> Vec<u8> {
    let mut enc = H264Encoder::new(EncoderConfig {
        width: 320,
        height: 240,
        fps: 30.0,
        bitrate_bps: 500_000,
        keyint,
    })
    .unwrap();
    let mut tp = TestPattern::new(320, 240).unwrap();
    let mut out = Vec::new();
    for n in 0..frames {
        let au = enc
            .encode(tp.render(n, i64::from(n)), i64::from(n) * 3000, 0)
            .unwrap()
            .unwrap();
        for nal in au.nal_units() {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    std::fs::write(path, &out).unwrap();
    out
}

#[test]
fn annexb_file_loops_with_monotonic_pts_and_the_right_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.h264");
    write_annexb(&path, 45, 30);
    let mut src = FileSource::open(&path, 30.0).unwrap();
    assert_eq!(src.frames_per_loop(), 45);
    assert_eq!(src.loop_duration(), 45 * 3000);
    let params = src.params().unwrap();
    assert_eq!((params.width, params.height), (320, 240));
    let mut dec = H264Decoder::new().unwrap();
    let mut last_pts = -1;
    for i in 0..100u32 {
        let au = src.next_au(7);
        assert_eq!(au.pts, i64::from(i) * 3000, "pts continues across loops");
        assert!(au.pts > last_pts);
        last_pts = au.pts;
        let n = i % 45;
        assert_eq!(au.key, n % 30 == 0, "access unit {i}");
        assert!(std::sync::Arc::ptr_eq(&au.params, &params));
        // The replayed pictures are the encoded ones, in order, loop after loop.
        let pic = dec.decode(&au).unwrap().unwrap();
        let code = read_code(&pic.y, 320, 320, 240).unwrap();
        assert_eq!(code.counter, n);
    }
}

#[test]
fn play_paces_in_real_time_and_stamps_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.264");
    write_annexb(&path, 6, 3);
    let mut src = FileSource::open(&path, 30.0).unwrap();
    let stop = AtomicBool::new(false);
    let mut got = Vec::new();
    let start = Instant::now();
    src.play(&stop, |au| {
        got.push(au);
        got.len() < 16
    });
    let elapsed = start.elapsed().as_secs_f64();
    // 16 access units at 30 fps: the last is due 15/30 s after the first.
    assert!((0.45..0.8).contains(&elapsed), "took {elapsed} s");
    for pair in got.windows(2) {
        assert_eq!(pair[1].pts - pair[0].pts, 3000);
        assert!(pair[1].capture_us > pair[0].capture_us);
    }
    let span_us = got[15].capture_us - got[0].capture_us;
    assert!((450_000..650_000).contains(&span_us), "{span_us}");
    assert!(
        got[6].key && got[12].key,
        "each loop starts on its key frame"
    );
}

#[test]
fn truncated_and_corrupt_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.h264");
    let bytes = write_annexb(&path, 10, 30);
    // Cut inside the first picture: SPS and PPS survive, the IDR is cut short. The
    // file still parses (the decoder copes with a short slice) or is an error, never a panic.
    for cut in [0, 5, 20, bytes.len() / 3] {
        let p = dir.path().join(format!("cut{cut}.h264"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        if let Err(e) = FileSource::open(&p, 30.0) {
            assert!(matches!(e, CameraError::InvalidFile { .. }), "{e}");
        }
    }
    let p = dir.path().join("cut0.h264");
    assert!(FileSource::open(&p, 30.0).is_err());
}

fn ffmpeg_mp4(path: &Path, extra: &[&str]) -> bool {
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=30")
        .args(["-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .args(extra)
        .arg(path)
        .status();
    match status {
        Ok(s) if s.success() => true,
        _ => {
            eprintln!("ffmpeg with libx264 not available: skipping MP4 test");
            false
        }
    }
}

#[test]
fn mp4_from_ffmpeg_replays_with_monotonic_pts_across_loops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    if !ffmpeg_mp4(&path, &["-profile:v", "baseline", "-g", "30"]) {
        return;
    }
    let mut src = FileSource::open(&path, 30.0).unwrap();
    assert_eq!(src.frames_per_loop(), 60);
    assert_eq!(src.loop_duration(), 60 * 3000);
    let p = src.params().unwrap();
    assert_eq!((p.width, p.height), (320, 240));
    let mut dec = H264Decoder::new().unwrap();
    let mut last = -1;
    let mut keys = 0;
    for i in 0..150 {
        let au = src.next_au(0);
        assert!(au.pts > last, "pts went from {last} to {} at {i}", au.pts);
        assert_eq!(au.pts, i * 3000);
        last = au.pts;
        keys += usize::from(au.key);
        let pic = dec.decode(&au).unwrap();
        assert!(
            pic.is_some_and(|f| (f.width, f.height) == (320, 240)),
            "access unit {i}"
        );
    }
    assert_eq!(keys, 5, "key frames at 0 and 30 of each pass");
    // A file cut in half has lost its index (moov is at the end): an error, not a panic.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        FileSource::open(&cut, 30.0),
        Err(CameraError::InvalidFile { .. })
    ));
    // Damage inside the index: still no panic.
    for at in (0..bytes.len()).step_by(bytes.len() / 40 + 1) {
        let mut bad = bytes.clone();
        for b in bad.iter_mut().skip(at).take(8) {
            *b ^= 0xA5;
        }
        let _ = FileSource::from_mp4(&cut, &bad);
    }
}

#[test]
fn mp4_with_b_frames_keeps_pts_monotonic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bframes.mp4");
    if !ffmpeg_mp4(&path, &["-bf", "2"]) {
        return;
    }
    let mut src = FileSource::open(&path, 30.0).unwrap();
    let mut last = -1;
    for _ in 0..200 {
        let au = src.next_au(0);
        assert!(au.pts > last);
        last = au.pts;
    }
}
