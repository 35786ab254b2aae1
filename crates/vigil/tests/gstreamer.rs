//! GStreamer's rtspsrc (an RTSP client independent of FFmpeg's) authenticates, depayloads and
//! decodes 60 frames of the main stream, over TCP and over UDP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{run_peer, Camera, CameraOpts, PASSWORD, USER};

fn gst_play(url: &str, protocols: &str) -> common::PeerOutput {
    run_peer(
        Command::new("gst-launch-1.0").args([
            "-q",
            "rtspsrc",
            &format!("location={url}"),
            &format!("user-id={USER}"),
            &format!("user-pw={PASSWORD}"),
            &format!("protocols={protocols}"),
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "fakesink",
            "num-buffers=60",
        ]),
        Duration::from_secs(25),
    )
}

#[test]
fn gstreamer_plays_main_over_tcp_and_udp() {
    let cam = Camera::start(CameraOpts {
        fps: 15,
        ..CameraOpts::default()
    });
    let handles: Vec<_> = ["tcp", "udp"]
        .into_iter()
        .map(|proto| {
            let url = cam.bare_url("main");
            thread::spawn(move || (proto, gst_play(&url, proto)))
        })
        .collect();
    let mut bad = Vec::new();
    for h in handles {
        let (proto, out) = h.join().unwrap();
        if !out.success() {
            bad.push(format!(
                "protocols={proto}: status {:?} after {:?}\nstdout: {}\nstderr: {}",
                out.status,
                out.elapsed,
                String::from_utf8_lossy(&out.stdout),
                out.stderr
            ));
        }
    }
    assert!(bad.is_empty(), "gst-launch failed:\n{}", bad.join("\n"));
}

#[test]
fn gstreamer_with_wrong_password_fails() {
    let cam = Camera::start(CameraOpts::default());
    let out = run_peer(
        Command::new("gst-launch-1.0").args([
            "-q",
            "rtspsrc",
            &format!("location={}", cam.bare_url("main")),
            &format!("user-id={USER}"),
            "user-pw=not-the-password",
            "protocols=tcp",
            "!",
            "rtph264depay",
            "!",
            "fakesink",
            "num-buffers=10",
        ]),
        Duration::from_secs(20),
    );
    assert!(
        out.status.is_some_and(|s| !s.success()),
        "gst-launch with a wrong password should fail promptly: {:?} after {:?}",
        out.status,
        out.elapsed
    );
}
