//! Starting the servers under test, and guards that always stop them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::BenchError;

/// A running server process, stopped (SIGTERM, then SIGKILL after 3 s) when dropped.
pub struct ServerGuard {
    child: Child,
    /// Short name for messages ("vigil", "gst").
    pub name: &'static str,
    /// The RTSP address it printed, `127.0.0.1:PORT`.
    pub rtsp_addr: String,
}

impl ServerGuard {
    /// The server's process id, for `/proc` sampling.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `rtsp://ADDR/main`.
    pub fn main_url(&self) -> String {
        format!("rtsp://{}/main", self.rtsp_addr)
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        // SIGTERM first so Vigil's graceful shutdown runs; `kill(1)` because the workspace denies
        // the unsafe libc call.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` with stdout piped and stderr to `log`, and waits (up to 60 s) for the line
/// `listening rtsp ADDR` that both servers print once their socket is bound.
pub fn spawn_server(
    name: &'static str,
    mut cmd: Command,
    log: &Path,
) -> Result<ServerGuard, BenchError> {
    let log_file = std::fs::File::create(log)
        .map_err(BenchError::io(format!("creating {}", log.display())))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    let mut child = cmd
        .spawn()
        .map_err(BenchError::io(format!("starting {name}")))?;
    let stdout = child.stdout.take();
    let mut guard = ServerGuard {
        child,
        name,
        rtsp_addr: String::new(),
    };
    let stdout = stdout.ok_or_else(|| BenchError::Server(format!("{name}: no stdout")))?;
    let (tx, rx) = mpsc::channel();
    // The reader keeps draining stdout for the process's life so the pipe never fills.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line.strip_prefix("listening rtsp ") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => {
            guard.rtsp_addr = addr;
            Ok(guard)
        }
        Err(_) => Err(BenchError::Server(format!(
            "{name} did not print `listening rtsp ADDR` within 60 s; see {}",
            log.display()
        ))),
    }
}

/// Where the `vigil` binary is: `--vigil` if given, else next to the running bench binary
/// (`target/release/`).
pub fn vigil_binary(explicit: Option<PathBuf>) -> Result<PathBuf, BenchError> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(BenchError::io("locating the bench binary"))?;
    let candidate = exe.with_file_name("vigil");
    if candidate.exists() {
        Ok(candidate)
    } else {
        Err(BenchError::Server(format!(
            "{} not found: run `cargo build --release -p vigil` or pass --vigil PATH",
            candidate.display()
        )))
    }
}

/// Default path of `scripts/gst-rtsp-server.py` in this checkout.
pub fn default_gst_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gst-rtsp-server.py")
}

/// Runs `vigil user add USER --password-stdin --data DIR`.
pub fn vigil_add_user(
    vigil: &Path,
    data: &Path,
    user: &str,
    password: &str,
) -> Result<(), BenchError> {
    let mut child = Command::new(vigil)
        .args(["user", "add", user, "--password-stdin", "--data"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(BenchError::io("running vigil user add"))?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{password}").map_err(BenchError::io("writing the password"))?;
    }
    let status = child
        .wait()
        .map_err(BenchError::io("waiting for vigil user add"))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Server(format!(
            "vigil user add failed: {status}"
        )))
    }
}

/// A password for the run, different each time (the data directory is temporary anyway).
pub fn run_password() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("bench-{:x}-{:x}", nanos, std::process::id())
}

/// Starts the GStreamer peer (`script`, default [`default_gst_script`], run by `python`)
/// serving `file` in a loop on one shared mount at `rtsp://127.0.0.1:PORT/main`, plus any
/// `extra` arguments (e.g. `--user`/`--password`); stderr goes to `log`.
pub fn spawn_gst_file(
    python: &Path,
    script: Option<&Path>,
    file: &Path,
    extra: &[&str],
    log: &Path,
) -> Result<ServerGuard, BenchError> {
    let script = script.map_or_else(default_gst_script, Path::to_path_buf);
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .args(["--port", "0", "--file"])
        .arg(file)
        .args(extra);
    spawn_server("gst", cmd, log)
}

/// Makes the H.264 test file the record, fan-out and soak benches serve: 20 s of
/// `testsrc2` 1280x720 30 fps, ~4 Mbit/s (x264 veryfast, 2 s GOP, no B-frames), written to
/// `dir/NAME` with ffmpeg.
pub fn make_test_file(dir: &Path, name: &str) -> Result<PathBuf, BenchError> {
    let path = dir.join(name);
    eprintln!("making {} with ffmpeg ...", path.display());
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=1280x720:rate=30", "-t", "20"])
        .args([
            "-c:v", "libx264", "-b:v", "4M", "-maxrate", "4M", "-bufsize", "2M",
        ])
        .args([
            "-g", "60", "-bf", "0", "-pix_fmt", "yuv420p", "-preset", "veryfast",
        ])
        .arg(&path)
        .status()
        .map_err(BenchError::io(
            "running ffmpeg (is it installed?)".to_string(),
        ))?;
    if !status.success() {
        return Err(BenchError::Server(format!("ffmpeg failed: {status}")));
    }
    Ok(path)
}
