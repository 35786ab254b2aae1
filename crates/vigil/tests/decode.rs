//! FFmpeg decodes 10 s of the main stream without a single decode error, and the frame counter
//! burned into the test pattern, read back from the decoded pixels, steps by exactly one from
//! frame to frame: no frame lost, repeated or reordered between the encoder and the peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{run_peer, Camera, CameraOpts};
use vigil_camera::testsrc::read_code;

const FPS: u32 = 15;
const SIZE: (u32, u32) = (640, 360);
const SECONDS: u32 = 10;

#[test]
fn ffmpeg_decodes_every_frame_in_order() {
    let cam = Camera::start(CameraOpts {
        size: SIZE,
        sub_size: None,
        fps: FPS,
        ..CameraOpts::default()
    });
    let out = run_peer(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            &cam.url("main"),
            "-t",
            &SECONDS.to_string(),
            // One output frame per decoded frame: no duplicates or drops to keep a constant rate.
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ]),
        Duration::from_secs(28),
    );
    assert!(
        out.success(),
        "ffmpeg: status {:?} after {:?}, stderr:\n{}",
        out.status,
        out.elapsed,
        out.stderr
    );
    assert!(
        out.stderr.trim().is_empty(),
        "ffmpeg reported errors while decoding:\n{}",
        out.stderr
    );

    let (w, h) = SIZE;
    let frame_len = (w * h) as usize;
    assert_eq!(
        out.stdout.len() % frame_len,
        0,
        "rawvideo output is not a whole number of {w}x{h} gray frames"
    );
    let frames = out.stdout.len() / frame_len;
    let want = (FPS * SECONDS) as usize;
    assert!(
        frames.abs_diff(want) <= 1,
        "decoded {frames} frames in {SECONDS} s at {FPS} fps, want {want} ± 1"
    );

    let mut prev: Option<(usize, u32, i64)> = None;
    let mut errors = Vec::new();
    for (i, y) in out.stdout.chunks_exact(frame_len).enumerate() {
        let Some(code) = read_code(y, w as usize, w, h) else {
            errors.push(format!("frame {i}: burned-in code unreadable"));
            continue;
        };
        if let Some((pi, pc, pt)) = prev {
            if i == pi + 1 && code.counter != pc.wrapping_add(1) {
                errors.push(format!(
                    "frame {i}: counter {} after {pc} (lost or repeated frames)",
                    code.counter
                ));
            }
            if code.capture_us <= pt {
                errors.push(format!(
                    "frame {i}: capture time {} not after {pt}",
                    code.capture_us
                ));
            }
        }
        prev = Some((i, code.counter, code.capture_us));
    }
    assert!(
        errors.is_empty(),
        "{} problems in {frames} frames:\n{}",
        errors.len(),
        errors
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
