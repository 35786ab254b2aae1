//! End-to-end test of `vigil serve`'s monitoring listener (`[metrics] listen`): a real
//! `vigil camera` recorded by a real `vigil serve`; `/metrics` scraped over HTTP and parsed by
//! the Prometheus project's own Python client (`prometheus_client.parser`), which fails on
//! any malformed line; counters move while recording; `/healthz` and `/readyz` answer; the
//! camera killed shows as `vigil_stream_up 0`; no camera credential appears.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::recorder::{vigil_camera, vigil_serve};
use common::{PASSWORD, USER};

/// One sample as the parser gave it: name, labels, value.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Families (name, type) and samples of one scrape.
#[derive(Debug, serde::Deserialize)]
struct Parsed {
    families: Vec<(String, String)>,
    samples: Vec<Sample>,
}

impl Parsed {
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    fn porch(&self, name: &str) -> f64 {
        self.value(name, &[("camera", "porch"), ("stream", "main")])
            .unwrap_or_else(|| panic!("no {name} for porch/main in {:#?}", self.families))
    }
}

/// The parser: Prometheus' reference Python client, installed from PyPI if missing.
const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
families, samples = [], []
for f in text_string_to_metric_families(text):
    families.append((f.name, f.type))
    for s in f.samples:
        samples.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps({"families": families, "samples": samples}))
"#;

fn ensure_parser() {
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if ok(Command::new("python3").args(["-c", "import prometheus_client"])) {
        return;
    }
    // As scripts/test.sh does: Debian's Python may refuse a plain install (PEP 668).
    let pip = ["-m", "pip", "install", "-q", "prometheus-client"];
    if !ok(Command::new("python3").args(pip)) {
        assert!(
            ok(Command::new("python3")
                .args(pip)
                .arg("--break-system-packages")),
            "cannot install prometheus-client from PyPI"
        );
    }
}

fn parse(text: &str) -> Parsed {
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to the parser");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the scrape: {}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// A plain HTTP/1.0 GET (no chunking, the server closes): status, headers, body.
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read the answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn scrape(addr: SocketAddr) -> (String, Parsed) {
    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let parsed = parse(&body);
    (body, parsed)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        thread::sleep(Duration::from_millis(250));
    }
}

fn write_config(dir: &Path, rtsp: SocketAddr) -> std::path::PathBuf {
    // Credentials inside the URL: the configuration moves them out; neither may show.
    let text = format!(
        "data_dir = \"data\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n\n\
         [[camera]]\nname = \"porch\"\nurl = \"rtsp://{USER}:{PASSWORD}@{rtsp}/main\"\n"
    );
    common::recorder::write_private(&dir.join("vigil.toml"), &text)
}

#[test]
fn metrics_parse_move_while_recording_and_show_a_dead_camera() {
    ensure_parser();
    let started = Instant::now();
    let cam_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut cam, rtsp) = vigil_camera(cam_dir.path(), "127.0.0.1:0", (160, 120), 10, &[]);
    let mut serve = vigil_serve(&write_config(dir.path(), rtsp));
    let (line, _) = serve.wait_line("listening metrics ", 0, Duration::from_secs(30));
    let addr: SocketAddr = line
        .trim_start_matches("listening metrics ")
        .trim()
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback(), "{addr}");

    let (status, _, body) = get(addr, "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    serve.wait_line("recording porch/main", 0, Duration::from_secs(30));
    wait_for(
        "/readyz 200 once recording",
        Duration::from_secs(10),
        || {
            let (status, _, body) = get(addr, "/readyz");
            assert!(matches!(
                (status, body.trim()),
                (200, "ok") | (503, "not ready")
            ));
            status == 200
        },
    );
    assert_eq!(get(addr, "/nothing").0, 404);

    // Let a few fragments (≤ 1 s each) reach the disk, then scrape twice.
    thread::sleep(Duration::from_secs(2));
    let (text1, m1) = scrape(addr);
    thread::sleep(Duration::from_secs(3));
    let (text2, m2) = scrape(addr);
    for name in [
        "vigil_stream_frames_received_total",
        "vigil_stream_received_bytes_total",
        "vigil_stream_recorded_bytes_total",
        "vigil_stream_fragments_written_total",
        "vigil_stream_write_duration_seconds_count",
    ] {
        let (a, b) = (m1.porch(name), m2.porch(name));
        assert!(b > a, "{name} did not grow between scrapes: {a} → {b}");
    }
    assert_eq!(m2.porch("vigil_stream_up"), 1.0);
    let state = |m: &Parsed, s: &str| {
        m.value(
            "vigil_stream_state",
            &[("camera", "porch"), ("stream", "main"), ("state", s)],
        )
    };
    assert_eq!(state(&m2, "recording"), Some(1.0));
    assert_eq!(state(&m2, "offline"), Some(0.0));
    assert!(m2.porch("vigil_stream_last_frame_age_seconds") < 5.0);
    // The histogram's +Inf bucket is its count.
    let inf = m2
        .value(
            "vigil_stream_write_duration_seconds_bucket",
            &[("camera", "porch"), ("le", "+Inf")],
        )
        .expect("+Inf bucket");
    assert_eq!(inf, m2.porch("vigil_stream_write_duration_seconds_count"));
    let types: BTreeMap<&str, &str> = m2
        .families
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    for (family, kind) in [
        ("vigil_stream_frames_received", "counter"),
        ("vigil_stream_write_duration_seconds", "histogram"),
        ("vigil_web_live_viewers", "gauge"),
        ("vigil_web_login_failures", "counter"),
        ("vigil_web_throttled_requests", "counter"),
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("vigil_data_disk_free_bytes", "gauge"),
    ] {
        assert_eq!(types.get(family), Some(&kind), "{family} in {types:?}");
    }
    assert!(m2.value("vigil_data_disk_free_bytes", &[]).unwrap_or(0.0) > 0.0);
    assert!(m2.value("process_cpu_seconds_total", &[]).unwrap_or(0.0) > 0.0);
    for text in [&text1, &text2] {
        assert!(
            !text.contains(PASSWORD),
            "the camera password leaked:\n{text}"
        );
        assert!(
            !text.contains(&format!("{USER}:")),
            "URL credentials leaked"
        );
        assert!(!text.contains("rtsp://"), "a camera URL leaked");
    }

    // The camera dies: the stream shows down, and /readyz with it (docs/metrics.md).
    cam.kill9();
    wait_for("vigil_stream_up 0", Duration::from_secs(15), || {
        scrape(addr).1.porch("vigil_stream_up") == 0.0
    });
    let (_, m3) = scrape(addr);
    assert_eq!(state(&m3, "recording"), Some(0.0));
    assert_eq!(
        state(&m3, "offline").unwrap_or(0.0) + state(&m3, "connecting").unwrap_or(0.0),
        1.0
    );
    // Not every camera records: not ready; the recorder itself is alive.
    wait_for("/readyz 503", Duration::from_secs(5), || {
        get(addr, "/readyz").0 == 503
    });
    let (status, _, body) = get(addr, "/readyz");
    assert_eq!((status, body.trim()), (503, "not ready"));
    let (status, _, _) = get(addr, "/healthz");
    assert_eq!(status, 200);

    serve.stop_gracefully(Duration::from_secs(15));
    assert!(
        TcpStream::connect(addr).is_err(),
        "the metrics listener outlived the process"
    );
    eprintln!("metrics test took {:?}", started.elapsed());
}

/// The systemd side of sd_notify(3): a datagram socket standing in for `NOTIFY_SOCKET`,
/// keeping every message with the time it arrived.
struct NotifySocket {
    path: std::path::PathBuf,
    got: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    fn bind(path: std::path::PathBuf) -> NotifySocket {
        let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind NOTIFY_SOCKET");
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = got.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    sink.lock().unwrap().push((Instant::now(), line.to_owned()));
                }
            }
        });
        NotifySocket { path, got }
    }

    fn env(&self) -> &str {
        self.path.to_str().expect("UTF-8 temp path")
    }

    /// Times at which `message` arrived.
    fn times(&self, message: &str) -> Vec<Instant> {
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|(_, m)| m == message)
            .map(|(t, _)| *t)
            .collect()
    }

    fn wait(&self, message: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.times(message).is_empty() {
            assert!(
                Instant::now() < deadline,
                "no {message} within {timeout:?}; got {:?}",
                self.got.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A 64 MiB ext4 file system on a loop device, which `fsfreeze` can hang like a dead disk
/// (tmpfs cannot be frozen). Needs root, as CI has; unfrozen, unmounted and removed on drop.
struct FreezableFs {
    mount: std::path::PathBuf,
    image: std::path::PathBuf,
}

impl FreezableFs {
    fn mount(dir: &Path) -> FreezableFs {
        let image = dir.join("disk.img");
        let mount = dir.join("data");
        std::fs::create_dir_all(&mount).unwrap();
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 20))
            .unwrap();
        run("mkfs.ext4", &["-q".as_ref(), image.as_os_str()]);
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                mount.as_os_str(),
            ],
        );
        FreezableFs { mount, image }
    }

    fn freeze(&self, on: bool) {
        let flag = if on { "--freeze" } else { "--unfreeze" };
        run("fsfreeze", &[flag.as_ref(), self.mount.as_os_str()]);
    }
}

impl Drop for FreezableFs {
    fn drop(&mut self) {
        // Usually not frozen any more ("Invalid argument"): quiet.
        let _ = Command::new("fsfreeze")
            .arg("--unfreeze")
            .arg(&self.mount)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

fn run(program: &str, args: &[&std::ffi::OsStr]) {
    let status = Command::new(program).args(args).status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "{program} {args:?}: {status:?}"
    );
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): `vigil camera` and `vigil serve` say
/// READY=1 once serving; `vigil serve` feeds the watchdog while it records, withholds it
/// (and `/healthz` says `stalled`) while its disk hangs — a frozen file system: frames
/// arrive, nothing is written — feeds it again once the disk returns and while a camera is
/// offline (nothing to write is no stall; `/readyz` says not ready then), and says
/// STOPPING=1 on SIGTERM.
#[test]
fn systemd_notify_ready_watchdog_fed_only_while_recording_progresses() {
    use common::recorder::{vigil_camera_with_env, vigil_serve_with_env};
    let dir = tempfile::tempdir().unwrap();
    let fs = FreezableFs::mount(dir.path());
    let cam_notify = NotifySocket::bind(dir.path().join("camera.notify"));
    let cam_data = tempfile::tempdir().unwrap();
    let (mut cam, rtsp) = vigil_camera_with_env(
        cam_data.path(),
        "127.0.0.1:0",
        (320, 240),
        15,
        &[],
        &[("NOTIFY_SOCKET", cam_notify.env())],
    );
    cam_notify.wait("READY=1", Duration::from_secs(10));

    let notify = NotifySocket::bind(dir.path().join("serve.notify"));
    // A 4 s watchdog: fed every 1.3 s; a stall is declared after 4 s without a write.
    let period = Duration::from_secs(4);
    let mut serve = vigil_serve_with_env(
        &write_config(dir.path(), rtsp),
        &[
            ("NOTIFY_SOCKET", notify.env()),
            ("WATCHDOG_USEC", "4000000"),
        ],
    );
    notify.wait("READY=1", Duration::from_secs(30));
    let (line, _) = serve.wait_line("listening metrics ", 0, Duration::from_secs(30));
    let metrics: SocketAddr = line
        .trim_start_matches("listening metrics ")
        .trim()
        .parse()
        .unwrap();
    serve.wait_line("recording porch/main", 0, Duration::from_secs(30));
    wait_for(
        "/readyz 200 once recording",
        Duration::from_secs(10),
        || get(metrics, "/readyz").0 == 200,
    );
    let fed_after = |t: Instant| {
        notify
            .times("WATCHDOG=1")
            .iter()
            .filter(|&&w| w > t)
            .count()
    };
    let t = Instant::now();
    thread::sleep(period);
    assert!(fed_after(t) >= 2, "watchdog not fed while recording");

    // The disk hangs: frames still arrive, no fragment is made durable.
    fs.freeze(true);
    wait_for("the stall reported", Duration::from_secs(20), || {
        serve
            .stderr_text()
            .contains("not feeding the systemd watchdog")
    });
    let withheld = Instant::now();
    let (status, _, body) = get(metrics, "/healthz");
    assert_eq!((status, body.trim()), (503, "stalled"));
    thread::sleep(period);
    assert_eq!(fed_after(withheld), 0, "watchdog fed while the disk hung");

    // The disk returns: the writer catches up and the watchdog is fed again.
    fs.freeze(false);
    let thawed = Instant::now();
    thread::sleep(period);
    assert!(
        fed_after(thawed) >= 1,
        "watchdog not fed after the disk returned"
    );
    assert_eq!(get(metrics, "/healthz").0, 200);

    // A camera that dies is not a stall: the recorder keeps being fed.
    cam.kill9();
    let died = Instant::now();
    thread::sleep(period * 2);
    assert!(
        fed_after(died + period) >= 2,
        "watchdog withheld over an offline camera"
    );
    // Not everything records any more (readiness), but the recorder is alive (liveness).
    let (status, _, body) = get(metrics, "/readyz");
    assert_eq!((status, body.trim()), (503, "not ready"));
    assert_eq!(get(metrics, "/healthz").0, 200);

    serve.terminate();
    let exit = serve.wait_exit(Duration::from_secs(20));
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
    notify.wait("STOPPING=1", Duration::from_secs(1));
    drop(fs);
}
