//! A real ffmpeg as the tests' judge of "this file plays without errors".
//!
//! ffmpeg must be installed (`scripts/test.sh` installs it); a missing ffmpeg fails the test
//! rather than skipping it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one decode may take before the test fails (a hang is a failure, not a wait).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Decodes every stream of `path` with ffmpeg; returns what it reported at level `error`
/// (empty for a clean file). Panics if ffmpeg is missing, exits with an error or hangs.
pub fn decode_errors(path: &Path) -> String {
    decode(None, path)
}

/// [`decode_errors`] with the container given (`-f FORMAT`) instead of guessed from the
/// file, for files without an extension.
pub fn decode_errors_as(format: &str, path: &Path) -> String {
    decode(Some(format), path)
}

fn decode(format: Option<&str>, path: &Path) -> String {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"]);
    if let Some(f) = format {
        cmd.args(["-f", f]);
    }
    cmd.arg("-i").arg(path);
    // ffmpeg's null output re-times video to 1/frame rate, a rate it guesses from the first
    // frames; capture-timed frames whose spacing jitters (a loaded test machine) can round
    // to the same tick, and ffmpeg then reports "non monotonically increasing dts to muxer"
    // for a file whose own timestamps strictly increase. Keeping the demuxer's time base
    // (90 kHz for Vigil's files) leaves only real duplicates to report.
    cmd.args(["-enc_time_base:v", "-1", "-f", "null", "-"]);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg must be installed (scripts/test.sh installs it)");
    // stderr is read on a thread so that a chatty ffmpeg cannot fill the pipe and stall.
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut s).expect("reading ffmpeg's stderr");
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for ffmpeg") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ffmpeg took over {TIMEOUT:?} to decode {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = String::from_utf8_lossy(&reader.join().expect("stderr reader")).into_owned();
    assert!(
        status.success(),
        "ffmpeg failed ({status}) on {}: {err}",
        path.display()
    );
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes 3 s of test pattern at 10 fps whose timestamps strictly increase but bunch
    /// up (ffmpeg's default null output reports "non monotonically increasing dts" for
    /// this file): `decode_errors` must find it clean, yet still report a broken file.
    #[test]
    fn jittery_but_increasing_timestamps_are_clean_and_garbage_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let jit = dir.path().join("jit.mp4");
        let o = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc=rate=10:size=320x240")
            .args(["-t", "3", "-vf"])
            .arg(
                "setpts='(N/10 + if(eq(mod(N\\,3)\\,1)\\,0.045\\,0) \
                 + if(eq(mod(N\\,3)\\,2)\\,-0.04\\,0))/TB'",
            )
            .args(["-c:v", "libx264", "-bf", "0", "-fps_mode", "passthrough"])
            .args(["-video_track_timescale", "90000"])
            .arg(&jit)
            .output()
            .expect("ffmpeg must be installed");
        assert!(o.status.success(), "{o:?}");
        assert_eq!(decode_errors(&jit), "");

        let bad = dir.path().join("bad.mp4");
        let mut bytes = std::fs::read(&jit).unwrap();
        // Overwrite the middle of the media data: the decoder must complain.
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 2000] {
            *b = 0x5a;
        }
        std::fs::write(&bad, bytes).unwrap();
        assert_ne!(decode_errors(&bad), "");
    }
}
