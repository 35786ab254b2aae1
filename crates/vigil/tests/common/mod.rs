//! Shared helpers of the end-to-end tests: spawn the real `vigil` binary on port 0 with its own
//! data directory, run real peers (ffmpeg, ffprobe, GStreamer, curl) under a hard timeout, and
//! `vigil-testkit`'s hand-written RTSP/1.0 client for the requests no well-behaved peer would
//! send.
//!
//! Each test file includes this module with `mod common;` and uses a part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The user every camera started by [`Camera::start`] has (unless `with_user` is false).
pub const USER: &str = "tester";
/// That user's password. Only URL-safe characters, so it can sit in `rtsp://user:pass@host`.
pub const PASSWORD: &str = "e2e-Pa55word-7f3k";

/// How long the camera may take from spawn to its `listening ...` lines (certificate generation,
/// encoder start-up; generous because tests run in parallel on 2 cores).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the binary under test, built by cargo for integration tests.
pub fn vigil_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

/// Options of one `vigil camera` run. Small sizes by default to keep CPU low.
#[derive(Clone, Debug)]
pub struct CameraOpts {
    /// `--size`.
    pub size: (u32, u32),
    /// `--sub-size`, `None` for `off`.
    pub sub_size: Option<(u32, u32)>,
    /// `--fps`.
    pub fps: u32,
    /// `--bitrate`, if given.
    pub bitrate: Option<String>,
    /// `--keyint`, if given.
    pub keyint: Option<u32>,
    /// Whether RTSPS listens (`--rtsps 127.0.0.1:0`) or is `off`.
    pub rtsps: bool,
    /// Whether the HTTPS snapshot server listens or is `off`.
    pub https: bool,
    /// Whether ONVIF listens (`--onvif 127.0.0.1:0`) or is `off`.
    pub onvif: bool,
    /// Whether a user is created before the camera starts.
    pub with_user: bool,
    /// `RUST_LOG` of the camera, if set.
    pub rust_log: Option<String>,
}

impl Default for CameraOpts {
    fn default() -> Self {
        CameraOpts {
            size: (320, 240),
            sub_size: Some((160, 120)),
            fps: 15,
            bitrate: None,
            keyint: None,
            rtsps: false,
            https: false,
            onvif: false,
            with_user: true,
            rust_log: None,
        }
    }
}

/// A running `vigil camera`, killed (and reaped) on drop.
pub struct Camera {
    child: Child,
    /// The data directory (`--data`), removed on drop.
    pub data: tempfile::TempDir,
    /// Bound RTSP address (from `listening rtsp ...`).
    pub rtsp: SocketAddr,
    /// Bound RTSPS address, if enabled.
    pub rtsps: Option<SocketAddr>,
    /// Bound HTTPS address, if enabled.
    pub https: Option<SocketAddr>,
    /// Bound ONVIF (HTTP) address, if enabled.
    pub onvif: Option<SocketAddr>,
    /// Bound WS-Discovery (UDP) address, if ONVIF is enabled.
    pub discovery: Option<SocketAddr>,
    /// The `tls-fingerprint sha256 ...` value, if printed.
    pub fingerprint: Option<String>,
    /// Options it was started with.
    pub opts: CameraOpts,
    stderr: Arc<Mutex<String>>,
    stdout_lines: Arc<Mutex<Vec<String>>>,
}

/// Adds `name` with `password` to the data dir through the CLI (`--password-stdin`).
pub fn add_user(data: &Path, name: &str, password: &str) {
    let mut child = Command::new(vigil_bin())
        .args(["user", "add", name, "--password-stdin", "--data"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil user add");
    {
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{password}").unwrap();
    }
    let out = wait_output(child, Duration::from_secs(60));
    assert!(
        out.status.is_some_and(|s| s.success()),
        "vigil user add failed: {out:?}"
    );
}

impl Camera {
    /// Starts `vigil camera --source testsrc` on 127.0.0.1 port 0 and waits for its `listening`
    /// lines. Panics (with the camera's stderr) if it does not come up.
    pub fn start(opts: CameraOpts) -> Camera {
        let data = tempfile::tempdir().expect("tempdir");
        if opts.with_user {
            add_user(data.path(), USER, PASSWORD);
        }
        let mut cmd = Command::new(vigil_bin());
        cmd.args(["camera", "--source", "testsrc", "--data"])
            .arg(data.path())
            .args(["--rtsp", "127.0.0.1:0"])
            .args(["--rtsps", if opts.rtsps { "127.0.0.1:0" } else { "off" }])
            .args(["--http", if opts.https { "127.0.0.1:0" } else { "off" }])
            .args(["--onvif", if opts.onvif { "127.0.0.1:0" } else { "off" }])
            .args([
                "--discovery",
                if opts.onvif { "127.0.0.1:0" } else { "off" },
            ])
            .args(["--size", &format!("{}x{}", opts.size.0, opts.size.1)])
            .args(["--fps", &opts.fps.to_string()]);
        match opts.sub_size {
            Some((w, h)) => cmd.args(["--sub-size", &format!("{w}x{h}")]),
            None => cmd.args(["--sub-size", "off"]),
        };
        if let Some(b) = &opts.bitrate {
            cmd.args(["--bitrate", b]);
        }
        if let Some(k) = opts.keyint {
            cmd.args(["--keyint", &k.to_string()]);
        }
        cmd.env(
            "RUST_LOG",
            opts.rust_log.clone().unwrap_or_else(|| "info".to_owned()),
        );
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn vigil camera");

        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = Arc::clone(&stderr);
            let pipe = child.stderr.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut s = stderr.lock().unwrap();
                    // Bounded: a chatty trace log must not eat the test's memory.
                    if s.len() < 4 << 20 {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        {
            let stdout_lines = Arc::clone(&stdout_lines);
            let pipe = child.stdout.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    stdout_lines.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }

        let mut cam = Camera {
            child,
            data,
            rtsp: "0.0.0.0:0".parse().unwrap(),
            rtsps: None,
            https: None,
            onvif: None,
            discovery: None,
            fingerprint: None,
            opts: opts.clone(),
            stderr,
            stdout_lines,
        };
        let mut rtsp = None;
        let deadline = Instant::now() + START_TIMEOUT;
        let need_fingerprint = opts.rtsps || opts.https;
        loop {
            let done = rtsp.is_some()
                && (cam.rtsps.is_some() || !opts.rtsps)
                && (cam.https.is_some() || !opts.https)
                && ((cam.onvif.is_some() && cam.discovery.is_some()) || !opts.onvif)
                && (cam.fingerprint.is_some() || !need_fingerprint);
            if done {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let mut words = line.split_whitespace();
                    match (words.next(), words.next(), words.next()) {
                        (Some("listening"), Some(kind), Some(addr)) => {
                            let addr: SocketAddr = addr
                                .parse()
                                .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
                            assert_ne!(addr.port(), 0, "port 0 printed: {line:?}");
                            match kind {
                                "rtsp" => rtsp = Some(addr),
                                "rtsps" => cam.rtsps = Some(addr),
                                "https" => cam.https = Some(addr),
                                "onvif" => cam.onvif = Some(addr),
                                "ws-discovery" => cam.discovery = Some(addr),
                                _ => panic!("unknown listener in {line:?}"),
                            }
                        }
                        (Some("tls-fingerprint"), Some("sha256"), Some(fp)) => {
                            cam.fingerprint = Some(fp.to_owned());
                        }
                        _ => {}
                    }
                }
                Err(_) => {
                    let status = cam.child.try_wait().ok().flatten();
                    panic!(
                        "camera did not print its listening lines within {START_TIMEOUT:?} \
                         (exit status {status:?}); stdout: {:?}\nstderr:\n{}",
                        cam.stdout_lines.lock().unwrap(),
                        cam.stderr_text()
                    );
                }
            }
        }
        cam.rtsp = rtsp.unwrap();
        if !opts.rtsps {
            assert!(cam.rtsps.is_none(), "--rtsps off but an rtsps listener");
        }
        if !opts.https {
            assert!(cam.https.is_none(), "--http off but an https listener");
        }
        if !opts.onvif {
            assert!(cam.onvif.is_none(), "--onvif off but an onvif listener");
        }
        cam
    }

    /// `rtsp://USER:PASSWORD@127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{USER}:{PASSWORD}@{}/{path}", self.rtsp)
    }

    /// `rtsp://127.0.0.1:PORT/path`, without credentials.
    pub fn bare_url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", self.rtsp)
    }

    /// `rtsps://USER:PASSWORD@127.0.0.1:PORT/path`.
    pub fn rtsps_url(&self, path: &str) -> String {
        let addr = self.rtsps.expect("camera started without rtsps");
        format!("rtsps://{USER}:{PASSWORD}@{addr}/{path}")
    }

    /// Everything the camera wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for `needle` to appear on the camera's stderr.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr_text().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the camera process has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id (for sending signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let text = self.stderr_text();
            let tail: String = {
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(60);
                lines[from..].join("\n")
            };
            eprintln!(
                "---- camera stderr (last 60 lines) ----\n{tail}\n---- end camera stderr ----"
            );
        }
    }
}

/// What a peer process did.
#[derive(Debug)]
pub struct PeerOutput {
    /// Exit status, `None` if it was killed at the timeout.
    pub status: Option<ExitStatus>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Wall time it ran.
    pub elapsed: Duration,
}

impl PeerOutput {
    /// True if it exited on its own with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs a peer (ffmpeg, gst-launch …) with stdin closed and a hard timeout, after which it is
/// killed. Panics if the program cannot be spawned: a missing tool is a failure, never a skip.
pub fn run_peer(cmd: &mut Command, timeout: Duration) -> PeerOutput {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e} (scripts/test.sh installs it)"));
    wait_output(child, timeout)
}

fn wait_output(mut child: Child, timeout: Duration) -> PeerOutput {
    let start = Instant::now();
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = start + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
    PeerOutput {
        status,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

#[allow(unused_imports)] // Each test binary uses a different part.
pub use vigil_testkit::rtsp::blocking::RtspConn;
#[allow(unused_imports)] // Each test binary uses a different part.
pub use vigil_testkit::rtsp::{find, parse_head};

/// [`vigil_testkit::rtsp::blocking::play_interleaved`] as [`USER`]: DESCRIBE, SETUP, PLAY over
/// TCP interleaved; returns the session id.
pub fn play_interleaved(conn: &mut RtspConn, url: &str) -> String {
    vigil_testkit::rtsp::blocking::play_interleaved(conn, url, USER, PASSWORD)
}

/// Parses `ffprobe -of json -show_streams` output into its `streams` array.
pub fn ffprobe_streams(stdout: &[u8]) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("ffprobe JSON: {e}: {}", String::from_utf8_lossy(stdout)));
    v.get("streams")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default()
}

/// A scratch file path inside `dir`.
pub fn scratch(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
/// Mosquitto and a collecting MQTT subscriber (shared with `vigil-alerts`' tests).
#[allow(unused_imports)]
// Only tests/alerts.rs uses it; every test binary compiles this module.
pub use vigil_testkit::mqtt as alerts;
pub mod browser;
pub mod recorder;
