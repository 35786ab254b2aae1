//! Process lifecycle: SIGTERM and SIGINT shut the camera down gracefully (exit status 0) even
//! while a client is playing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{play_interleaved, Camera, CameraOpts, RtspConn};

fn signal_exits_zero(signal: &str) {
    let mut cam = Camera::start(CameraOpts::default());
    let url = cam.bare_url("main");
    let mut conn = RtspConn::connect(cam.rtsp);
    play_interleaved(&mut conn, &url);
    conn.read_interleaved().expect("RTP before the signal");

    let status = Command::new("kill")
        .args([&format!("-{signal}"), &cam.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
    let exit = cam.wait_exit(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "after SIG{signal} the camera should exit 0 within 10 s, got {exit:?}; stderr:\n{}",
        cam.stderr_text()
    );
}

#[test]
fn sigterm_exits_zero_while_streaming() {
    signal_exits_zero("TERM");
}

#[test]
fn sigint_exits_zero_while_streaming() {
    signal_exits_zero("INT");
}
