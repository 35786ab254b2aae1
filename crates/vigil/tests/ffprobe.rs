//! ffprobe (FFmpeg's RTSP client) sees what the camera was told to produce: H.264 at the
//! configured size and frame rate, on the main and sub streams, over TCP, UDP and TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{ffprobe_streams, run_peer, Camera, CameraOpts};

const FPS: u32 = 15;
const MAIN: (u32, u32) = (640, 360);
const SUB: (u32, u32) = (320, 240);

/// Runs ffprobe on `url` and returns a description of every mismatch (empty if all is well).
fn probe(url: &str, transport: &str, want: (u32, u32)) -> Vec<String> {
    let out = run_peer(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-show_streams",
            "-of",
            "json",
            url,
        ]),
        Duration::from_secs(25),
    );
    let what = format!("ffprobe -rtsp_transport {transport} {url}");
    if !out.success() {
        return vec![format!(
            "{what}: status {:?} after {:?}, stderr: {}",
            out.status, out.elapsed, out.stderr
        )];
    }
    let mut bad = Vec::new();
    if !out.stderr.trim().is_empty() {
        bad.push(format!("{what}: errors on stderr: {}", out.stderr));
    }
    let streams = ffprobe_streams(&out.stdout);
    let video: Vec<_> = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .collect();
    if video.len() != 1 {
        bad.push(format!(
            "{what}: {} video streams: {streams:?}",
            video.len()
        ));
        return bad;
    }
    let v = video[0];
    if v["codec_name"] != "h264" {
        bad.push(format!("{what}: codec_name {}", v["codec_name"]));
    }
    if v["width"] != want.0 || v["height"] != want.1 {
        bad.push(format!(
            "{what}: size {}x{}, want {}x{}",
            v["width"], v["height"], want.0, want.1
        ));
    }
    let want_rate = format!("{FPS}/1");
    if v["r_frame_rate"] != want_rate.as_str() {
        bad.push(format!(
            "{what}: r_frame_rate {}, want {want_rate}",
            v["r_frame_rate"]
        ));
    }
    bad
}

#[test]
fn ffprobe_sees_configured_streams_over_tcp_udp_and_rtsps() {
    let cam = Camera::start(CameraOpts {
        size: MAIN,
        sub_size: Some(SUB),
        fps: FPS,
        rtsps: true,
        ..CameraOpts::default()
    });
    let cases = [
        (cam.url("main"), "tcp", MAIN),
        (cam.url("main"), "udp", MAIN),
        (cam.url("sub"), "tcp", SUB),
        (cam.url("sub"), "udp", SUB),
        (cam.rtsps_url("main"), "tcp", MAIN),
        (cam.rtsps_url("sub"), "tcp", SUB),
    ];
    // The probes run at once: each waits on the stream, not on the CPU.
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(url, transport, want)| thread::spawn(move || probe(&url, transport, want)))
        .collect();
    let bad: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(bad.is_empty(), "ffprobe mismatches:\n{}", bad.join("\n"));
}

#[test]
fn ffprobe_without_credentials_is_refused() {
    let cam = Camera::start(CameraOpts::default());
    let out = run_peer(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_streams",
            "-of",
            "json",
            &cam.bare_url("main"),
        ]),
        Duration::from_secs(20),
    );
    assert!(!out.success(), "ffprobe without credentials succeeded");
    assert!(
        out.stderr.contains("401"),
        "ffprobe should report 401 Unauthorized, stderr: {}",
        out.stderr
    );
}
