//! Real peers for the ingest tests, each killed (and reaped) on drop: GStreamer's RTSP
//! server (`scripts/gst-rtsp-server.py`) and Vigil's own camera (`vigil camera`), both
//! on 127.0.0.1, port 0 unless a port is given.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// User and password of the camera started by [`VigilCamera`].
pub const USER: &str = "recorder";
/// URL-safe, so it also works inside `rtsp://user:pass@...`.
pub const PASSWORD: &str = "ingest-Pa55-9xq";

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `vigil` binary: `$VIGIL_BIN`, or next to this test's `deps/` directory (built by
/// `cargo build -p vigil`).
pub fn vigil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("vigil");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p vigil` first (or set VIGIL_BIN)",
        bin.display()
    );
    bin
}

/// A child process killed on drop, whose stdout announces `listening rtsp ADDR`.
pub struct Peer {
    child: Child,
    /// Set once the child is reaped, so its pid (maybe reused) is never signalled again.
    reaped: bool,
    /// The bound RTSP address.
    pub addr: SocketAddr,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Peer {
    fn spawn(mut cmd: Command, what: &str) -> Peer {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let pipe = child.stderr.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut s = stderr.lock().unwrap();
                    if s.len() < 1 << 20 {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening rtsp ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let mut peer = Peer {
            child,
            reaped: false,
            addr: "0.0.0.0:0".parse().unwrap(),
            stderr,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(a) => peer.addr = a.parse().unwrap(),
            Err(_) => panic!(
                "{what} did not announce its port; stderr:\n{}",
                peer.stderr()
            ),
        }
        peer
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `SIGSTOP` (true) or `SIGCONT` (false): a camera that hangs with its TCP
    /// connections open.
    pub fn freeze(&self, stop: bool) {
        let sig = if stop { "-STOP" } else { "-CONT" };
        let st = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Kills and reaps the process.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        if self.reaped {
            return;
        }
        self.reaped = true;
        // A frozen (SIGSTOP) child is woken first, so that it can die and be reaped.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// GStreamer's RTSP server with an x264 test source, at `rtsp://ADDR/main`.
pub fn gst_server(size: (u32, u32), fps: u32) -> Peer {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(workspace_root().join("scripts/gst-rtsp-server.py"))
        .args([
            "--port",
            "0",
            "--testsrc",
            &format!("{}x{}@{fps}", size.0, size.1),
        ])
        .args(["--bitrate", "500"]);
    Peer::spawn(cmd, "gst-rtsp-server.py")
}

/// A data directory with [`USER`] in it, for [`vigil_camera`].
pub fn camera_data_dir() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(vigil_bin())
        .args(["user", "add", USER, "--password-stdin", "--data"])
        .arg(data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "vigil user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// `vigil camera --source testsrc` (main stream only) on `port` (0 = any), serving
/// `rtsp://ADDR/main` with digest authentication.
pub fn vigil_camera(data: &Path, size: (u32, u32), fps: u32, port: u16) -> Peer {
    let mut cmd = Command::new(vigil_bin());
    cmd.args(["camera", "--source", "testsrc", "--data"])
        .arg(data)
        .args(["--rtsp", &format!("127.0.0.1:{port}")])
        .args(["--rtsps", "off", "--http", "off", "--sub-size", "off"])
        // No ONVIF: its default (0.0.0.0:8000, UDP 3702) is a wildcard port that two cameras
        // of parallel tests would both want.
        .args(["--onvif", "off"])
        .args(["--size", &format!("{}x{}", size.0, size.1)])
        .args(["--fps", &fps.to_string(), "--bitrate", "300k"])
        .env("RUST_LOG", "warn");
    Peer::spawn(cmd, "vigil camera")
}
