//! `vigil serve` with a `[webrtc]` section, end to end: the configuration reaches the web
//! app, no UDP media port is open before anyone watches, aiortc (`crates/web/tests/
//! whep_client.py`) plays a `vigil camera` through WHEP with an API token and decodes every
//! picture, and the port is closed again after its DELETE. The routes' authorization and
//! limits are tested in `crates/web/tests/whep.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::browser::Api;
use common::recorder::{vigil_camera, vigil_serve};
use common::{PASSWORD, USER};
use serde_json::{json, Value};

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn udp_port_free(port: u16) -> bool {
    std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

fn write_config(dir: &Path, rtsp: std::net::SocketAddr, udp_port: u16) -> std::path::PathBuf {
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = format!(
        "data_dir = \"data\"\n[web]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"off\"\n\
         [webrtc]\nudp_port = {udp_port}\nmax_sessions = 2\n\
         [[camera]]\nname = \"porch\"\nurl = \"rtsp://{rtsp}/main\"\n\
         username = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
    );
    let path = dir.join("vigil.toml");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_serve_plays_a_camera_over_whep_with_its_port_open_only_while_watched() {
    let cam_dir = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_cam, rtsp) = vigil_camera(cam_dir.path(), "127.0.0.1:0", (320, 180), 15, &[]);
    let udp_port = free_udp_port();
    let mut serve = vigil_serve(&write_config(dir.path(), rtsp, udp_port));
    let (line, _) = serve.wait_line("listening https ", 0, Duration::from_secs(60));
    let addr: std::net::SocketAddr = line["listening https ".len()..].trim().parse().unwrap();
    let (line, _) = serve.wait_line("tls-fingerprint sha256 ", 0, Duration::from_secs(10));
    let fingerprint = line["tls-fingerprint sha256 ".len()..].trim().to_owned();
    let (line, _) = serve.wait_line("setup-url ", 0, Duration::from_secs(10));
    let setup_token = line.rsplit('/').next().unwrap().trim().to_owned();
    serve.wait_line("recording porch/main", 0, Duration::from_secs(60));
    assert!(
        udp_port_free(udp_port),
        "the WebRTC port is open before anyone watches"
    );

    let mut api = Api::https(addr, &fingerprint);
    api.setup(&setup_token, "admin", "a long admin pass phrase")
        .await;
    let r = api
        .request(
            "POST",
            "/api/tokens",
            Some(&json!({"name": "whep", "scopes": ["view"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_owned();

    // aiortc plays porch over WHEP; meanwhile the port is open (checked from here).
    let url = format!("https://{addr}/api/cameras/porch/whep?stream=main");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/whep_client.py");
    let mut client = Command::new("python3")
        .arg(&script)
        .args(["play", &url, &token, "45"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen_open = false;
    while client.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "aiortc did not finish"
        );
        seen_open |= !udp_port_free(udp_port);
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "aiortc: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let play: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} / {stderr}"));
    eprintln!("aiortc through vigil serve: {play}");
    assert!(
        seen_open,
        "the configured UDP port {udp_port} was never open"
    );
    assert_eq!(play["post"], 201, "{play}");
    assert_eq!(play["frames"], 45, "{play}");
    assert_eq!(play["decode_errors"], 0, "{play}");
    assert_eq!(play["size"], json!([320, 180]), "{play}");
    assert_eq!(play["delete"], 204, "{play}");
    let closing = Instant::now();
    while !udp_port_free(udp_port) {
        assert!(
            closing.elapsed() < Duration::from_secs(5),
            "the WebRTC port is still open after the last session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve.stop_gracefully(Duration::from_secs(20));
}
