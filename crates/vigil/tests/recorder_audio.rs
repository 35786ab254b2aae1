//! `vigil serve` records a camera's audio beside its video: GStreamer's RTSP server sends
//! H.264 plus AAC (RFC 3640) or G.711 µ-law, and `vigil export` hands back an MP4 whose two
//! tracks ffprobe recognises, ffmpeg decodes without errors, and whose audio lasts as long
//! as the video.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::recorder::{export, now_us, vigil_serve, write_config, CameraEntry, Proc};
use common::run_peer;

/// GStreamer's RTSP server with x264 video and `audio` (`aac` or `pcmu`).
fn gst_camera_with_audio(audio: &str) -> (Proc, SocketAddr) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gst-rtsp-server.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script)
        .args(["--port", "0", "--testsrc", "320x240@30", "--bitrate", "500"])
        .args(["--audio", audio]);
    let mut p = Proc::spawn("gst-rtsp-server", &mut cmd);
    let (line, _) = p.wait_line("listening rtsp ", 0, Duration::from_secs(30));
    let addr = line
        .trim_start_matches("listening rtsp ")
        .trim()
        .parse()
        .unwrap();
    (p, addr)
}

/// (codec_type, codec_name, duration in s) of each stream of `path`.
fn streams(path: &Path) -> Vec<(String, String, f64)> {
    let o = run_peer(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .arg("stream=codec_type,codec_name,duration")
            .args(["-of", "csv=p=0"])
            .arg(path),
        Duration::from_secs(60),
    );
    assert!(o.success(), "ffprobe: {}", o.stderr);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[1].to_owned(),
                f[0].to_owned(),
                f[2].parse().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn records_and_exports_audio(audio: &str, codec_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (_cam, addr) = gst_camera_with_audio(audio);
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
    thread::sleep(Duration::from_secs(13));
    serve.stop_gracefully(Duration::from_secs(10));

    let out = dir.path().join("audio.mp4");
    let e = export(
        &config,
        "gst",
        rec_start + 1_000_000,
        rec_start + 11_000_000,
        &out,
    );
    let s = streams(&out);
    eprintln!("{audio}: exported {e:?}, streams {s:?}");
    assert_eq!(s.len(), 2, "{s:?}\n{}", serve.stderr_tail(30));
    assert_eq!(
        (s[0].0.as_str(), s[0].1.as_str()),
        ("video", "h264"),
        "{s:?}"
    );
    assert_eq!(
        (s[1].0.as_str(), s[1].1.as_str()),
        ("audio", codec_name),
        "{s:?}"
    );
    let video_s = (e.end_us - e.start_us) as f64 / 1e6;
    assert!((s[0].2 - video_s).abs() <= 1.0 / 30.0, "{s:?} vs {video_s}");
    assert!(
        (s[1].2 - s[0].2).abs() <= 0.1,
        "audio {} s vs video {} s",
        s[1].2,
        s[0].2
    );
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out), "");
}

#[test]
fn gstreamer_h264_with_aac_is_recorded_and_exported_with_both_tracks() {
    records_and_exports_audio("aac", "aac");
}

#[test]
fn gstreamer_h264_with_g711_is_recorded_and_exported_with_both_tracks() {
    records_and_exports_audio("pcmu", "pcm_mulaw");
}
