//! Helpers of the recorder's end-to-end tests: spawn `vigil camera`, GStreamer's RTSP server
//! and `vigil serve` as real processes (killed on drop), write serve configurations, run
//! `vigil export`, probe and decode exports with ffprobe/ffmpeg, and read the SQLite index.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{add_user, run_peer, vigil_bin, PeerOutput, PASSWORD, USER};

/// Wall clock now, µs since the Unix epoch (the recorder's timeline).
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, µs) of `us` since the epoch, as `vigil export` takes it.
pub fn rfc3339(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Parses an RFC 3339 time into µs since the epoch.
pub fn parse_rfc3339(s: &str) -> i64 {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("bad time {s:?}: {e}"));
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// A child process whose stdout lines and stderr are collected; killed (SIGKILL) and reaped
/// on drop, printing the tail of its stderr if the test is failing.
pub struct Proc {
    /// What it is, for messages.
    pub label: String,
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout/stderr captured.
    pub fn spawn(label: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {label} ({cmd:?}): {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let lines = Arc::clone(&lines);
            let pipe = child.stdout.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push((Instant::now(), line));
                }
            });
        }
        {
            let stderr = Arc::clone(&stderr);
            let pipe = child.stderr.take().unwrap();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut s = stderr.lock().unwrap();
                    if s.len() < 4 << 20 {
                        s.push_str(&line);
                        s.push('\n');
                    }
                }
            });
        }
        Proc {
            label: label.to_owned(),
            child,
            lines,
            stderr,
        }
    }

    /// Stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Waits for the `nth` (0-based) stdout line starting with `prefix`; returns it and when
    /// it was read. Panics with the process's stderr at the timeout or if it exits.
    pub fn wait_line(&mut self, prefix: &str, nth: usize, timeout: Duration) -> (String, Instant) {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let lines = self.lines.lock().unwrap();
                if let Some((t, l)) = lines.iter().filter(|(_, l)| l.starts_with(prefix)).nth(nth) {
                    return (l.clone(), *t);
                }
            }
            let exited = self.child.try_wait().ok().flatten();
            if Instant::now() >= deadline || exited.is_some() {
                panic!(
                    "{}: no stdout line #{nth} starting with {prefix:?} within {timeout:?} \
                     (exit status {exited:?}); stdout: {:?}\nstderr:\n{}",
                    self.label,
                    self.lines(),
                    self.stderr_tail(80)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The last `n` lines of stderr.
    pub fn stderr_tail(&self, n: usize) -> String {
        let text = self.stderr_text();
        let lines: Vec<&str> = text.lines().collect();
        // A panic's message would scroll away under its backtrace: keep it in view.
        let panics: Vec<String> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("panicked at"))
            .map(|(i, _)| lines[i..lines.len().min(i + 2)].join("\n"))
            .collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        if panics.is_empty() {
            tail
        } else {
            format!("{}\n...\n{tail}", panics.join("\n"))
        }
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends `SIG{name}` (`TERM`, `STOP`, `CONT` ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -{name} {} failed", self.child.id());
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then asserts a clean exit (status 0) within `timeout`.
    pub fn stop_gracefully(&mut self, timeout: Duration) {
        self.terminate();
        let st = self.wait_exit(timeout);
        assert!(
            st.is_some_and(|s| s.success()),
            "{}: exit status {st:?} after SIGTERM; stderr:\n{}",
            self.label,
            self.stderr_tail(60)
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "---- {} stderr (last 60 lines) ----\n{}\n---- end {} ----",
                self.label,
                self.stderr_tail(60),
                self.label
            );
        }
    }
}

/// The RTSP address a camera process announced on stdout.
pub fn listening_addr(p: &mut Proc) -> SocketAddr {
    let (line, _) = p.wait_line("listening rtsp ", 0, Duration::from_secs(30));
    line.trim_start_matches("listening rtsp ")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
}

/// A `vigil camera --source testsrc` with the test user in `data`, main stream only, no
/// RTSPS/HTTPS, listening on `rtsp` (`127.0.0.1:0` for any port).
pub fn vigil_camera(
    data: &Path,
    rtsp: &str,
    size: (u32, u32),
    fps: u32,
    extra: &[&str],
) -> (Proc, SocketAddr) {
    vigil_camera_with_env(data, rtsp, size, fps, extra, &[])
}

/// [`vigil_camera`] with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
pub fn vigil_camera_with_env(
    data: &Path,
    rtsp: &str,
    size: (u32, u32),
    fps: u32,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (Proc, SocketAddr) {
    if !data.join("users.json").exists() {
        add_user(data, USER, PASSWORD);
    }
    let mut cmd = Command::new(vigil_bin());
    cmd.args(["camera", "--source", "testsrc", "--data"])
        .arg(data)
        .args([
            "--rtsp",
            rtsp,
            "--rtsps",
            "off",
            "--http",
            "off",
            "--onvif",
            "off",
            "--sub-size",
            "off",
        ])
        .args(["--size", &format!("{}x{}", size.0, size.1)])
        .args(["--fps", &fps.to_string()])
        .args(extra)
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied());
    let mut p = Proc::spawn("vigil camera", &mut cmd);
    let addr = listening_addr(&mut p);
    (p, addr)
}

/// GStreamer's RTSP server (`scripts/gst-rtsp-server.py`) with x264, a stand-in third-party
/// camera, serving `rtsp://ADDR/main` without authentication.
pub fn gst_camera(spec: &str) -> (Proc, SocketAddr) {
    gst_camera_codec(spec, "h264")
}

/// [`gst_camera`] with the encoder `codec`: `h264` (x264enc) or `h265` (x265enc).
pub fn gst_camera_codec(spec: &str, codec: &str) -> (Proc, SocketAddr) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gst-rtsp-server.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script)
        .args(["--port", "0", "--testsrc", spec, "--bitrate", "1000"])
        .args(["--codec", codec]);
    let mut p = Proc::spawn("gst-rtsp-server", &mut cmd);
    let addr = listening_addr(&mut p);
    (p, addr)
}

/// One `[[camera]]` of a test configuration.
pub struct CameraEntry {
    /// Camera name.
    pub name: String,
    /// Main stream URL.
    pub url: String,
    /// Credentials, if any.
    pub login: Option<(String, String)>,
}

/// Writes `text` to `path` with mode 0600 (a configuration that may hold secrets; `vigil
/// serve` refuses one that others can read) and answers the path.
pub fn write_private(path: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path.to_owned()
}

/// Writes a `vigil serve` configuration (mode 0600) at `dir/vigil.toml` with the data
/// directory `dir/data`; `extra_top` is added before the first table (e.g. `file_duration`),
/// `retention` is the body of `[retention]`.
pub fn write_config(
    dir: &Path,
    extra_top: &str,
    retention: &str,
    cameras: &[CameraEntry],
) -> PathBuf {
    // The web app is not under test here: no HTTPS port, no certificate generation.
    let mut s = format!(
        "data_dir = \"data\"\n{extra_top}\n[retention]\n{retention}\n\n[web]\nlisten = \"off\"\n"
    );
    for c in cameras {
        s.push_str(&format!(
            "\n[[camera]]\nname = \"{}\"\nurl = \"{}\"\n",
            c.name, c.url
        ));
        if let Some((u, p)) = &c.login {
            s.push_str(&format!("username = \"{u}\"\npassword = \"{p}\"\n"));
        }
    }
    write_private(&dir.join("vigil.toml"), &s)
}

/// `vigil serve --config CONFIG` (info logs on stderr).
pub fn vigil_serve(config: &Path) -> Proc {
    vigil_serve_with_env(config, &[])
}

/// [`vigil_serve`] with extra environment variables (e.g. systemd's `NOTIFY_SOCKET`).
pub fn vigil_serve_with_env(config: &Path, envs: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(vigil_bin());
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(envs.iter().copied());
    Proc::spawn("vigil serve", &mut cmd)
}

/// What `vigil export` reported.
#[derive(Debug, Clone, Copy)]
pub struct Exported {
    /// Frames written.
    pub frames: u64,
    /// Wall-clock time of the first frame (a key frame), µs.
    pub start_us: i64,
    /// Wall-clock time after the last frame, µs.
    pub end_us: i64,
}

/// Runs `vigil export`; returns the peer output (for error tests).
pub fn run_export(
    config: &Path,
    camera: &str,
    start_us: i64,
    end_us: i64,
    out: &Path,
) -> PeerOutput {
    run_peer(
        Command::new(vigil_bin())
            .args(["export", "--config"])
            .arg(config)
            .args([
                "--camera",
                camera,
                "--start",
                &rfc3339(start_us),
                "--end",
                &rfc3339(end_us),
            ])
            .arg("--output")
            .arg(out),
        Duration::from_secs(30),
    )
}

/// Runs `vigil export`, asserts success and parses its `exported N frames from A to B` line.
pub fn export(config: &Path, camera: &str, start_us: i64, end_us: i64, out: &Path) -> Exported {
    let o = run_export(config, camera, start_us, end_us, out);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.success(),
        "vigil export failed: {:?}\nstdout: {stdout}\nstderr: {}",
        o.status,
        o.stderr
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("exported "))
        .unwrap_or_else(|| panic!("no `exported` line in {stdout:?}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    // exported N frames from START to END (...)
    assert_eq!((w[2], w[3], w[5]), ("frames", "from", "to"), "{line}");
    Exported {
        frames: w[1].parse().unwrap(),
        start_us: parse_rfc3339(w[4]),
        end_us: parse_rfc3339(w[6]),
    }
}

/// What ffprobe says about a file's video stream.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `codec_name`.
    pub codec: String,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Container duration, seconds.
    pub duration: f64,
    /// Frames counted by decoding.
    pub frames: u64,
}

/// `ffprobe -count_frames` of `path`.
pub fn ffprobe(path: &Path) -> Probe {
    let o = run_peer(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
            ])
            .arg("format=duration:stream=codec_name,width,height,nb_read_frames")
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(path),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.success(), "ffprobe {}: {}", path.display(), o.stderr);
    let field = |k: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in ffprobe output {text:?}"))
            .to_owned()
    };
    Probe {
        codec: field("codec_name"),
        width: field("width").parse().unwrap(),
        height: field("height").parse().unwrap(),
        duration: field("duration").parse().unwrap(),
        frames: field("nb_read_frames").parse().unwrap(),
    }
}

/// Decodes `path` to gray frames (one per coded frame) and reads each frame's burned-in
/// test pattern code (`None` where unreadable).
pub fn burned_codes(
    path: &Path,
    size: (u32, u32),
) -> Vec<Option<vigil_camera::testsrc::BurnedCode>> {
    let o = run_peer(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args([
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "gray",
                "-",
            ]),
        Duration::from_secs(60),
    );
    assert!(
        o.success() && o.stderr.trim().is_empty(),
        "ffmpeg decode: {:?} {}",
        o.status,
        o.stderr
    );
    let (w, h) = size;
    let len = (w * h) as usize;
    assert_eq!(o.stdout.len() % len, 0, "not whole {w}x{h} frames");
    o.stdout
        .chunks_exact(len)
        .map(|y| vigil_camera::testsrc::read_code(y, w as usize, w, h))
        .collect()
}

/// A `segment_file` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    /// Path relative to `recordings/`.
    pub path: String,
    /// Start, µs.
    pub start_wall_us: i64,
    /// End, µs.
    pub end_wall_us: i64,
    /// Indexed length.
    pub bytes: i64,
    /// `open` or `closed`.
    pub state: String,
}

/// Opens the index of `data` read-only.
pub fn index(data: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(
        data.join("index.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// Every segment file of the index, by start time.
pub fn files(data: &Path) -> Vec<FileRow> {
    let c = index(data);
    let mut st = c
        .prepare("SELECT path, start_wall_us, end_wall_us, bytes, state FROM segment_file ORDER BY start_wall_us")
        .unwrap();
    st.query_map([], |r| {
        Ok(FileRow {
            path: r.get(0)?,
            start_wall_us: r.get(1)?,
            end_wall_us: r.get(2)?,
            bytes: r.get(3)?,
            state: r.get(4)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Every gap row: (start, end, reason).
pub fn gaps(data: &Path) -> Vec<(i64, i64, String)> {
    let c = index(data);
    let mut st = c
        .prepare("SELECT start_wall_us, end_wall_us, reason FROM gap ORDER BY start_wall_us")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every fragment as a comparable row: (file path, seq, byte_offset, byte_len,
/// data_offset, start_90k, duration_90k, start_wall_us, end_wall_us, samples blob).
pub type FragmentKey = (String, i64, i64, i64, i64, i64, i64, i64, i64, Vec<u8>);

/// Every fragment of the index, ordered by file path and sequence number.
pub fn fragments(data: &Path) -> Vec<FragmentKey> {
    let c = index(data);
    let mut st = c
        .prepare(
            "SELECT s.path, f.seq, f.byte_offset, f.byte_len, f.data_offset, f.start_90k, \
             f.duration_90k, f.start_wall_us, f.end_wall_us, f.samples \
             FROM fragment f JOIN segment_file s ON s.id = f.file_id ORDER BY s.path, f.seq",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Every `.mp4` under `data/recordings`, as paths relative to it, sorted.
pub fn files_on_disk(data: &Path) -> Vec<(String, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "mp4") {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
    }
    let root = data.join("recordings");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Copies a directory tree (the recorder must not be running).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
