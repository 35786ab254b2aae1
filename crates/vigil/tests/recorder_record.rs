//! `vigil serve` records real cameras over 127.0.0.1 and `vigil export` hands back time ranges
//! that ffprobe and ffmpeg accept: GStreamer's RTSP server with x264 (a third-party camera)
//! and Vigil's own camera, whose burned-in frame counter proves that no frame is lost or
//! repeated across fragment and file boundaries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::recorder::{
    burned_codes, export, ffprobe, files, files_on_disk, fragments, gst_camera, now_us, run_export,
    vigil_camera, vigil_serve, write_config, CameraEntry,
};
use common::{PASSWORD, USER};

#[test]
fn records_gstreamer_x264_camera_and_exports_a_range_inside() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_cam, addr) = gst_camera("640x360@30");
    // Issue 17 (9): a data directory that already exists open to everyone (0755, as `mkdir`
    // under the usual umask makes it) still gets private recordings and stores.
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::set_permissions(
        dir.path().join("data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        "",
        "",
        &[CameraEntry {
            name: "gst".into(),
            url: format!("rtsp://{addr}/main"),
            login: None,
        }],
    );
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording gst/main", 0, Duration::from_secs(30));
    let rec_start = now_us();
    thread::sleep(Duration::from_secs(16));

    // 10 s from 4 s in, exported while the recorder keeps recording.
    let (start, end) = (rec_start + 4_000_000, rec_start + 14_000_000);
    let out = dir.path().join("range.mp4");
    let e = export(&config, "gst", start, end, &out);
    let frame_us = 1_000_000 / 30;
    // It starts at the key frame at or before the start (x264 key-int-max = 2 s here) and
    // ends at the last frame starting before the end.
    assert!(
        e.start_us <= start && start - e.start_us <= 2_000_000 + frame_us,
        "{e:?}"
    );
    assert!((e.end_us - end).abs() <= frame_us, "{e:?}");
    let p = ffprobe(&out);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        ("h264", 640, 360),
        "{p:?}"
    );
    let want = (e.end_us - e.start_us) as f64 / 1e6;
    assert!(
        (p.duration - want).abs() <= 1.0 / 30.0,
        "duration {} vs {want}: {p:?} {e:?}",
        p.duration
    );
    assert!(p.frames.abs_diff(e.frames) == 0, "{p:?} {e:?}");
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out), "");

    // From that key frame exactly, the duration is the requested one, within one frame.
    let out2 = dir.path().join("exact.mp4");
    let e2 = export(&config, "gst", e.start_us, end, &out2);
    assert_eq!(e2.start_us, e.start_us, "{e2:?}");
    let p2 = ffprobe(&out2);
    let want = (end - e.start_us) as f64 / 1e6;
    assert!(
        (p2.duration - want).abs() <= 1.0 / 30.0,
        "duration {} vs requested {want}",
        p2.duration
    );
    assert!(
        (p2.frames as f64 - want * 30.0).abs() <= 1.0,
        "{} frames for {want} s at 30 fps",
        p2.frames
    );
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out2), "");

    // Issue 10: a start exactly on a fragment without a key frame (1 s fragments, 2 s
    // GOP) begins at the key frame before it, as a 5 s range and as one shorter than a
    // fragment (which used to say "nothing recorded").
    let (key_us, keyless_us) = keyless_fragment_and_key_before(&dir.path().join("data"), start);
    for (len, name) in [(5_000_000, "keyless.mp4"), (900_000, "short.mp4")] {
        let out3 = dir.path().join(name);
        let e3 = export(&config, "gst", keyless_us, keyless_us + len, &out3);
        assert!(
            (e3.start_us - key_us).abs() <= 1,
            "export from {keyless_us} (+{len} µs) began at {}, want the key frame at {key_us}",
            e3.start_us
        );
        assert_eq!(ffprobe(&out3).frames, e3.frames);
    }

    // Clear errors for what cannot be exported.
    let o = run_export(&config, "nosuch", start, end, &dir.path().join("x.mp4"));
    assert!(!o.success());
    assert!(
        o.stderr.contains("unknown camera \"nosuch\""),
        "{}",
        o.stderr
    );
    let o = run_export(
        &config,
        "gst",
        start - 3_600_000_000,
        start - 3_500_000_000,
        &dir.path().join("x.mp4"),
    );
    assert!(!o.success());
    assert!(o.stderr.contains("nothing recorded"), "{}", o.stderr);
    assert!(!dir.path().join("x.mp4").exists());

    serve.stop_gracefully(Duration::from_secs(15));
    // A clean stop closes every file at its last fragment, and files and index agree.
    let data = dir.path().join("data");
    let indexed = files(&data);
    assert!(indexed.iter().all(|f| f.state == "closed"), "{indexed:?}");
    let on_disk = files_on_disk(&data);
    assert_eq!(on_disk.len(), indexed.len());
    for (f, (path, len)) in indexed.iter().zip(&on_disk) {
        assert_eq!((&f.path, f.bytes as u64), (path, *len));
    }
    let open_to_others = entries_open_to_others(&data);
    assert!(open_to_others.is_empty(), "{open_to_others:?}");
    assert!(
        serve.stderr_text().contains("narrowed to 0700"),
        "{}",
        serve.stderr_tail(40)
    );
    assert!(
        !serve.stderr_text().contains("ERROR"),
        "{}",
        serve.stderr_tail(40)
    );
    eprintln!("gstreamer record/export test took {:?}", t0.elapsed());
}

#[test]
fn vigil_camera_counter_is_gapless_across_fragments_and_files() {
    const FPS: u32 = 15;
    const SIZE: (u32, u32) = (320, 240);
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cam_data = tempfile::tempdir().unwrap();
    let (_cam, addr) = vigil_camera(
        cam_data.path(),
        "127.0.0.1:0",
        SIZE,
        FPS,
        &["--bitrate", "300k"],
    );
    let config = write_config(
        dir.path(),
        "file_duration = \"5s\"",
        "",
        &[CameraEntry {
            name: "own".into(),
            url: format!("rtsp://{addr}/main"),
            login: Some((USER.into(), PASSWORD.into())),
        }],
    );
    let mut serve = vigil_serve(&config);
    serve.wait_line("recording own/main", 0, Duration::from_secs(30));
    thread::sleep(Duration::from_secs(20));
    serve.stop_gracefully(Duration::from_secs(15));

    let data = dir.path().join("data");
    let fs = files(&data);
    // 2 s GOPs, 5 s files: a new file at the first key frame after 5 s, so files of 6 s.
    assert!(fs.len() >= 3, "expected several files: {fs:?}");
    let frags = fragments(&data);
    assert!(
        frags.len() >= 18,
        "fragments of at most 1 s: {}",
        frags.len()
    );
    assert!(
        frags.iter().all(|f| f.6 <= 90_000),
        "a fragment longer than 1 s"
    );
    // Each file continues where the previous one ended (rotation leaves no seam).
    for w in fs.windows(2) {
        assert_eq!(w[1].start_wall_us, w[0].end_wall_us, "{w:?}");
    }

    let (start, end) = (fs[0].start_wall_us, fs.last().unwrap().end_wall_us);
    let out = dir.path().join("all.mp4");
    let e = export(&config, "own", start, end, &out);
    assert_eq!(e.start_us, start);
    let p = ffprobe(&out);
    assert_eq!(
        (p.codec.as_str(), p.width, p.height),
        ("h264", SIZE.0, SIZE.1)
    );
    assert_eq!(p.frames, e.frames);
    let want = (end - start) as f64 / 1e6;
    assert!(
        (p.duration - want).abs() <= 1.0 / f64::from(FPS),
        "duration {} vs {want}",
        p.duration
    );
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out), "");

    let codes = burned_codes(&out, SIZE);
    assert_eq!(codes.len() as u64, e.frames);
    let mut problems = Vec::new();
    for (i, w) in codes.windows(2).enumerate() {
        match (w[0], w[1]) {
            (Some(a), Some(b)) => {
                if b.counter != a.counter.wrapping_add(1) {
                    problems.push(format!(
                        "frame {}: counter {} after {}",
                        i + 1,
                        b.counter,
                        a.counter
                    ));
                }
                if b.capture_us <= a.capture_us {
                    problems.push(format!("frame {}: capture time not increasing", i + 1));
                }
            }
            _ => problems.push(format!("frame {i} or {}: code unreadable", i + 1)),
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems in {} frames:\n{}",
        problems.len(),
        codes.len(),
        problems[..problems.len().min(30)].join("\n")
    );
    // About 20 s at 15 fps, all of it.
    assert!(codes.len() >= 18 * FPS as usize, "{} frames", codes.len());
    eprintln!(
        "vigil camera counter test: {} frames in {} files, took {:?}",
        codes.len(),
        fs.len(),
        t0.elapsed()
    );
}

#[test]
fn serve_guards_its_secrets_and_its_data_directory() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // A camera that is not there: nothing listens on this port once the socket is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "Sup3r-secret-camera-pw";
    let config = write_config(
        dir.path(),
        "",
        "",
        &[CameraEntry {
            name: "gone".into(),
            url: format!("rtsp://127.0.0.1:{port}/main"),
            login: Some(("admin".into(), secret.into())),
        }],
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut serve = vigil_serve(&config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !serve.stderr_text().contains("backing off") {
        assert!(Instant::now() < deadline, "{}", serve.stderr_tail(30));
        thread::sleep(Duration::from_millis(50));
    }
    let log = serve.stderr_text();
    assert!(
        log.contains("chmod 600"),
        "no warning about a readable config:\n{log}"
    );
    assert!(
        !log.contains(secret),
        "the camera password was logged:\n{log}"
    );

    // One process per data directory: reindex refuses to run under a live recorder.
    let o = common::run_peer(
        std::process::Command::new(common::vigil_bin())
            .args(["reindex", "--config"])
            .arg(&config),
        Duration::from_secs(20),
    );
    assert!(!o.success());
    assert!(o.stderr.contains("in use"), "{}", o.stderr);
    let o = run_export(
        &config,
        "gone",
        now_us() - 10_000_000,
        now_us(),
        &dir.path().join("x.mp4"),
    );
    assert!(!o.success());
    assert!(o.stderr.contains("no recordings"), "{}", o.stderr);

    serve.stop_gracefully(Duration::from_secs(15));
    assert!(!serve.stderr_text().contains(secret));
}

/// The start of the first fragment after `after_us` whose first sample is not a key frame,
/// and the wall time of the last key frame before it in its file, both read from the index
/// (samples: 9 bytes each, duration u32 BE, size u32 BE, flags with bit 0 = key frame).
fn keyless_fragment_and_key_before(data: &std::path::Path, after_us: i64) -> (i64, i64) {
    let frags = fragments(data);
    let mut last_key: Option<(String, i64)> = None;
    for f in &frags {
        let (path, start_wall_us, samples) = (&f.0, f.7, &f.9);
        let mut t_us = start_wall_us as f64;
        for (i, s) in samples.chunks_exact(9).enumerate() {
            let key = s[8] & 1 == 1;
            if i == 0 && !key && start_wall_us > after_us {
                if let Some((p, k)) = &last_key {
                    if p == path {
                        return (*k, start_wall_us);
                    }
                }
            }
            if key {
                last_key = Some((path.clone(), t_us.round() as i64));
            }
            let d = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
            t_us += f64::from(d) / 0.09;
        }
    }
    panic!("no fragment without a key frame after {after_us}: {frags:?}");
}

/// Every file and directory below (and including) `dir` that a user other than its owner
/// could read, write or enter, with its mode.
fn entries_open_to_others(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push((p.clone(), mode));
        }
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}
