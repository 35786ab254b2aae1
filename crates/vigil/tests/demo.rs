//! `vigil demo` end to end: the real binary starts its two test cameras, the RTSP server,
//! the recorder and the web app in one process; both cameras are recorded within seconds;
//! a second run on the same directory (new RTSP port, new internal password) records them
//! again; SIGTERM stops it cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::recorder::{files, Proc};
use common::vigil_bin;

fn demo(data: &Path) -> Proc {
    let mut cmd = Command::new(vigil_bin());
    cmd.args(["demo", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info");
    Proc::spawn("vigil demo", &mut cmd)
}

/// Waits until every `camera/main` and `camera/sub` of `cameras` has an indexed file with
/// footage ending after `after_us`.
fn wait_recorded(p: &Proc, data: &Path, cameras: &[&str], after_us: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let rows = if data.join("index.sqlite3").exists() {
            files(data)
        } else {
            Vec::new()
        };
        let missing: Vec<String> = cameras
            .iter()
            .flat_map(|c| [format!("{c}/main/"), format!("{c}/sub/")])
            .filter(|prefix| {
                !rows
                    .iter()
                    .any(|f| f.path.starts_with(prefix.as_str()) && f.end_wall_us > after_us)
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not recorded within {timeout:?}: {missing:?}; files {rows:?}\nstderr:\n{}",
            p.stderr_tail(60)
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn now_us() -> i64 {
    common::recorder::now_us()
}

#[test]
fn demo_records_both_cameras_and_serves_the_web_app_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let t0 = now_us();
    let mut p = demo(&data);
    let start = Duration::from_secs(60);
    let (rtsp1, _) = p.wait_line("listening rtsp 127.0.0.1:", 0, start);
    let (https, _) = p.wait_line("listening https 127.0.0.1:", 0, start);
    let port = https.rsplit(':').next().unwrap().to_owned();
    p.wait_line("tls-fingerprint sha256 ", 0, start);
    // A fresh data directory has no user: the single-use setup link is printed.
    let (setup, _) = p.wait_line("setup-url https://", 0, start);
    assert!(setup.contains("/#/setup/"), "{setup}");
    p.wait_line(
        &format!("Open https://localhost:{port}/ in your browser"),
        0,
        start,
    );
    for line in ["recording front/main", "recording yard/main"] {
        p.wait_line(line, 0, Duration::from_secs(30));
    }
    wait_recorded(&p, &data, &["front", "yard"], t0, Duration::from_secs(15));

    // The cameras are web-app cameras, stored privately; the internal password is not the
    // same as the web app's anything and never printed.
    let stored = std::fs::read_to_string(data.join("cameras.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let cams = json["cameras"].as_array().unwrap();
    assert_eq!(cams.len(), 2);
    for c in cams {
        assert_eq!(c["source"], "ui");
        let pw = c["password"].as_str().unwrap();
        assert!(pw.len() >= 32);
        assert!(!p.lines().iter().any(|l| l.contains(pw)));
        assert!(!p.stderr_text().contains(pw));
    }
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("cameras.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    p.stop_gracefully(Duration::from_secs(20));

    // Second run: another RTSP port and password; the stored cameras follow and record.
    let t1 = now_us();
    let mut p = demo(&data);
    let (rtsp2, _) = p.wait_line("listening rtsp 127.0.0.1:", 0, start);
    p.wait_line("Open https://localhost:", 0, start);
    wait_recorded(
        &p,
        &data,
        &["front", "yard"],
        t1 + 1_000_000,
        Duration::from_secs(20),
    );
    let stored2 = std::fs::read_to_string(data.join("cameras.json")).unwrap();
    let port2 = rtsp2.rsplit(':').next().unwrap();
    assert!(
        stored2.contains(&format!(":{port2}/front-main")),
        "{stored2}"
    );
    assert_ne!(
        stored, stored2,
        "new password (and usually port): {rtsp1} {rtsp2}"
    );
    // Not a first run any more: the cameras are not added twice.
    let json: serde_json::Value = serde_json::from_str(&stored2).unwrap();
    assert_eq!(json["cameras"].as_array().unwrap().len(), 2);
    p.signal("INT");
    let st = p.wait_exit(Duration::from_secs(20));
    assert!(
        st.is_some_and(|s| s.success()),
        "exit status {st:?} after SIGINT; stderr:\n{}",
        p.stderr_tail(40)
    );
}

/// A TCP connection from `ip` (an address of 127.0.0.0/8), left idle.
fn tcp_from(ip: &str, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(
        &format!("{ip}:0")
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )?;
    s.connect(&addr.into())?;
    Ok(s.into())
}

/// `GET /api/setup` over TLS from 127.0.0.1 with the printed fingerprint pinned: the status.
fn web_status(addr: std::net::SocketAddr, fingerprint: &str) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connector =
            tokio_rustls::TlsConnector::from(vigil_testkit::tls::pinned_client_config(fingerprint));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
            .await
            .map_err(|_| "handshake timed out".to_owned())?
            .map_err(|e| format!("handshake: {e}"))?;
        tls.write_all(b"GET /api/setup HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
        let head = String::from_utf8_lossy(&out);
        head.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))
    })
}

#[test]
fn under_a_1024_descriptor_limit_a_flood_leaves_room_for_clients_and_recording() {
    // The flood below needs ~1300 descriptors in this process.
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let t0 = now_us();
    // Soft and hard limit 1024 (dash's `ulimit -n` sets both): vigil cannot raise it and must
    // fit its caps under it.
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "ulimit -n 1024 && exec \"$0\" \"$@\"",
        vigil_bin(),
        "demo",
        "--data",
    ])
    .arg(&data)
    .args(["--listen", "127.0.0.1:0"])
    .env("RUST_LOG", "info");
    let mut p = Proc::spawn("vigil demo (ulimit -n 1024)", &mut cmd);
    let start = Duration::from_secs(60);
    let (rtsp, _) = p.wait_line("listening rtsp 127.0.0.1:", 0, start);
    let (https, _) = p.wait_line("listening https 127.0.0.1:", 0, start);
    let (fp, _) = p.wait_line("tls-fingerprint sha256 ", 0, start);
    let fingerprint = fp.trim_start_matches("tls-fingerprint sha256 ").to_owned();
    let rtsp: std::net::SocketAddr = rtsp.trim_start_matches("listening rtsp ").parse().unwrap();
    let https: std::net::SocketAddr = https
        .trim_start_matches("listening https ")
        .parse()
        .unwrap();
    wait_recorded(&p, &data, &["front", "yard"], t0, Duration::from_secs(30));
    assert!(
        p.stderr_text()
            .contains("connection caps derived from the open-file limit"),
        "{}",
        p.stderr_tail(40)
    );

    // Four addresses each open more idle connections than the web app's old per-address cap
    // (256; 4 x 256 was every descriptor), and more than the RTSP server's share.
    let mut flood = Vec::new();
    for a in 2..=5 {
        let ip = format!("127.0.0.{a}");
        for _ in 0..260 {
            flood.push(tcp_from(&ip, https).expect("flood connect (web)"));
        }
        for _ in 0..60 {
            flood.push(tcp_from(&ip, rtsp).expect("flood connect (RTSP)"));
        }
    }
    // While the flood holds (web: until its 10 s handshake deadline), a legitimate client
    // is served and both cameras keep recording through the internal RTSP server.
    let t1 = now_us();
    assert_eq!(
        web_status(https, &fingerprint),
        Ok(200),
        "{}",
        p.stderr_tail(40)
    );
    wait_recorded(&p, &data, &["front", "yard"], t1, Duration::from_secs(20));
    let log = p.stderr_text();
    assert!(
        !log.contains("Too many open files"),
        "{}",
        p.stderr_tail(60)
    );
    // Refusals are logged a few times a minute per listener, not once per connection.
    let refusals = log.matches("closing a new connection").count();
    assert!((1..=6).contains(&refusals), "{refusals} refusal lines");
    drop(flood);
    p.stop_gracefully(Duration::from_secs(20));
}
