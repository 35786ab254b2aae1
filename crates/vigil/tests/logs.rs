//! The output contract of the real binary (docs/config.md, "Output"): with `--log-format
//! json` every stderr line of `vigil camera` and `vigil serve` is one JSON object, stdout
//! holds only the plain status lines, and OpenH264's own chatter never shows; and
//! `vigil setup-url` hands out a link the running server accepts, once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::recorder::{listening_addr, Proc};
use common::{add_user, run_peer, vigil_bin, PASSWORD, USER};

/// Prefixes of the machine-readable stdout lines.
const STATUS: [&str; 5] = [
    "listening ",
    "tls-fingerprint ",
    "setup-url ",
    "recording ",
    "offline ",
];

/// Every stderr line parsed as a JSON log event; panics on one that is not.
fn json_events(label: &str, stderr: &str) -> Vec<serde_json::Value> {
    assert!(
        !stderr.contains("[OpenH264]"),
        "{label}: OpenH264 chatter:\n{stderr}"
    );
    stderr
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{label}: stderr line is not JSON ({e}): {line:?}"));
            assert!(v.is_object(), "{label}: {line:?}");
            assert!(v["level"].is_string(), "{label}: no level: {line:?}");
            assert!(
                v["timestamp"].is_string(),
                "{label}: no timestamp: {line:?}"
            );
            assert!(v["target"].is_string(), "{label}: no target: {line:?}");
            assert!(v["fields"].is_object(), "{label}: no fields: {line:?}");
            v
        })
        .collect()
}

fn only_status_lines(label: &str, p: &Proc) {
    for line in p.lines() {
        assert!(
            STATUS.iter().any(|s| line.starts_with(s)),
            "{label}: not a status line on stdout: {line:?}"
        );
    }
}

fn write_serve_config(dir: &Path, web: &str, camera: Option<SocketAddr>) -> std::path::PathBuf {
    let mut s = format!(
        "data_dir = \"data\"\n[web]\nlisten = \"{web}\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
    );
    if let Some(addr) = camera {
        s.push_str(&format!(
            "\n[[camera]]\nname = \"cam\"\nurl = \"rtsp://{addr}/main\"\n\
             username = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
        ));
    }
    let path = dir.join("vigil.toml");
    std::fs::write(&path, s).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

fn serve_json(config: &Path) -> Proc {
    let mut cmd = Command::new(vigil_bin());
    cmd.args(["--log-format", "json", "serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info");
    Proc::spawn("vigil serve", &mut cmd)
}

fn suffix<'a>(line: &'a str, prefix: &str) -> &'a str {
    line.strip_prefix(prefix).unwrap().trim()
}

#[test]
fn json_logs_parse_line_by_line_and_stdout_keeps_only_status_lines() {
    let cam_data = tempfile::tempdir().unwrap();
    add_user(cam_data.path(), USER, PASSWORD);
    let mut cmd = Command::new(vigil_bin());
    cmd.args([
        "--log-format",
        "json",
        "camera",
        "--source",
        "testsrc",
        "--data",
    ])
    .arg(cam_data.path())
    .args(["--rtsp", "127.0.0.1:0", "--rtsps", "off", "--http", "off"])
    .args(["--onvif", "off"])
    .args(["--sub-size", "off", "--size", "320x240", "--fps", "10"])
    .env("RUST_LOG", "info");
    let mut cam = Proc::spawn("vigil camera", &mut cmd);
    let addr = listening_addr(&mut cam);

    let dir = tempfile::tempdir().unwrap();
    let config = write_serve_config(dir.path(), "127.0.0.1:0", Some(addr));
    let mut serve = serve_json(&config);
    serve.wait_line("listening https ", 0, Duration::from_secs(30));
    serve.wait_line("tls-fingerprint sha256 ", 0, Duration::from_secs(5));
    let (setup, _) = serve.wait_line("setup-url ", 0, Duration::from_secs(5));
    serve.wait_line("listening metrics ", 0, Duration::from_secs(10));
    // Frames flow: the camera's encoder and the recorder's motion decoder have started.
    serve.wait_line("recording cam/main", 0, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    serve.stop_gracefully(Duration::from_secs(20));
    cam.stop_gracefully(Duration::from_secs(20));

    only_status_lines("vigil camera", &cam);
    only_status_lines("vigil serve", &serve);
    let cam_events = json_events("vigil camera", &cam.stderr_text());
    assert!(
        cam_events
            .iter()
            .any(|e| e["fields"]["message"] == "camera started"),
        "{cam_events:?}"
    );
    let events = json_events("vigil serve", &serve.stderr_text());
    // The setup link is in the JSON log too (for a journal read as JSON), the same as stdout.
    let url = suffix(&setup, "setup-url ");
    assert!(
        events
            .iter()
            .any(|e| e["level"] == "INFO" && e["fields"]["url"] == url),
        "no INFO event with the setup link {url}"
    );
}

/// A port free now on 127.0.0.1 (`vigil setup-url` prints the configured port, so the
/// configuration cannot say 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn setup_url_cmd(config: &Path) -> common::PeerOutput {
    run_peer(
        Command::new(vigil_bin())
            .args(["setup-url", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn"),
        Duration::from_secs(20),
    )
}

#[test]
fn setup_url_command_hands_out_a_link_the_running_server_accepts_once() {
    use common::browser::Api;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_serve_config(dir.path(), &format!("127.0.0.1:{port}"), None);
    let mut serve = serve_json(&config);
    let (https, _) = serve.wait_line("listening https ", 0, Duration::from_secs(30));
    let (fp, _) = serve.wait_line("tls-fingerprint sha256 ", 0, Duration::from_secs(5));
    let (own, _) = serve.wait_line("setup-url ", 0, Duration::from_secs(5));
    let https: SocketAddr = suffix(&https, "listening https ").parse().unwrap();
    assert_eq!(https.port(), port);

    let o = setup_url_cmd(&config);
    assert!(o.success(), "vigil setup-url: {}", o.stderr);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = out.trim();
    let prefix = format!("setup-url https://localhost:{port}/#/setup/");
    assert!(line.starts_with(&prefix), "{line:?}");
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let token = &line[prefix.len()..];
    assert!(!own.ends_with(token), "a fresh token, not the server's");
    let file = dir.path().join("data/setup-token");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut api = Api::https(https, suffix(&fp, "tls-fingerprint sha256 "));
    rt.block_on(api.setup(token, "owner", "correct horse battery staple"));
    let me = rt.block_on(api.request("GET", "/api/session", None));
    assert_eq!(me.status, 200, "{}", me.text());
    assert!(!file.exists(), "the used token's file is deleted");

    // Setup is done: no new link, and a clear word on what to do instead.
    let o = setup_url_cmd(&config);
    assert!(!o.success());
    assert!(
        o.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        o.stderr.contains("setup is done; use `vigil user add`"),
        "{}",
        o.stderr
    );
    serve.stop_gracefully(Duration::from_secs(20));
    json_events("vigil serve", &serve.stderr_text());
}
