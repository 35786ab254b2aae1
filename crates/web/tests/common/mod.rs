//! Shared fixtures of the security tests: a real NVR on a temporary data directory, the real
//! router driven with tower `oneshot`, and a logged-in browser (cookie + CSRF token).

#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vigil_auth::Role;
use vigil_nvr::{CameraSpec, Nvr, NvrConfig};
use vigil_web::AppState;

pub const HOST: &str = "vigil.test:8443";
pub const ORIGIN: &str = "https://vigil.test:8443";
pub const ADMIN_PW: &str = "correct horse battery";
pub const VIEWER_PW: &str = "viewer pass phrase";
pub const CAM_PW: &str = "s3cret-camera-pw-93";

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub state: AppState,
    pub app: Router,
}

pub async fn env_with(users: bool, cameras: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let nvr = Nvr::start(NvrConfig {
        data_dir: dir.path().to_owned(),
        recorder: Default::default(),
        cameras: Vec::new(),
        announce: false,
    })
    .await
    .unwrap();
    if cameras {
        for name in ["front", "yard"] {
            let spec: CameraSpec = serde_json::from_value(json!({
                "name": name,
                // Nothing listens there: the camera stays offline, which is fine here.
                "url": format!("rtsp://127.0.0.1:9/{name}"),
                "username": "cam",
                "password": CAM_PW,
            }))
            .unwrap();
            nvr.add_camera(spec).await.unwrap();
        }
    }
    let state = AppState::new(
        nvr,
        Arc::new(|| json!({"alerts": {"mqtt": "off"}})),
        dir.path(),
    )
    .unwrap();
    if users {
        let u = &state.accounts.users;
        u.add("admin", ADMIN_PW, Role::Admin).unwrap();
        u.add_with_cameras(
            "viewer",
            VIEWER_PW,
            Role::Viewer,
            Some(vec!["front".into()]),
        )
        .unwrap();
    }
    let app = vigil_web::router(state.clone());
    Env {
        _dir: dir,
        state,
        app,
    }
}

pub async fn env() -> Env {
    env_with(true, true).await
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request from a browser on our own origin (Host, Origin) from 192.0.2.10.
pub fn req(method: &str, path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
}

pub async fn send(app: &Router, r: axum::http::request::Builder, body: Option<Value>) -> Resp {
    send_from(app, r, body, [192, 0, 2, 10]).await
}

/// [`send`] from another source address.
pub async fn send_from(
    app: &Router,
    r: axum::http::request::Builder,
    body: Option<Value>,
    from: [u8; 4],
) -> Resp {
    let mut r = match body {
        Some(b) => r
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => r.body(Body::empty()).unwrap(),
    };
    r.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((from, 40000))));
    let resp = app.clone().oneshot(r).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// A logged-in browser: cookie and CSRF token.
pub struct Client {
    pub cookie: String,
    pub csrf: String,
}

impl Client {
    pub fn req(&self, method: &str, path: &str) -> axum::http::request::Builder {
        req(method, path)
            .header(header::COOKIE, format!("vigil_session={}", self.cookie))
            .header("x-csrf-token", &self.csrf)
    }
}

pub fn cookie_of(r: &Resp) -> String {
    let sc = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    let v = sc.strip_prefix("vigil_session=").unwrap();
    v.split(';').next().unwrap().to_owned()
}

pub async fn login(app: &Router, user: &str, pw: &str) -> Client {
    let r = send(
        app,
        req("POST", "/api/login"),
        Some(json!({"username": user, "password": pw})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let cookie = cookie_of(&r);
    let s = send(
        app,
        req("GET", "/api/session").header(header::COOKIE, format!("vigil_session={cookie}")),
        None,
    )
    .await;
    assert_eq!(s.status, StatusCode::OK);
    Client {
        cookie,
        csrf: s.json()["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// Records camera `front`'s main stream (a 320x180 15 fps test pattern at 300 kbit/s, a key
/// frame every `keyint` frames) for `seconds` into `dir` with the real recorder; returns the
/// wall-clock span it ran, µs.
pub async fn record_test_pattern(dir: &std::path::Path, seconds: u64, keyint: u32) -> (i64, i64) {
    record_source(dir, vigil_camera::SourceSpec::TestPattern, seconds, keyint).await
}

/// [`record_test_pattern`] from `source` (a file source is replayed as it is encoded).
pub async fn record_source(
    dir: &std::path::Path,
    source: vigil_camera::SourceSpec,
    seconds: u64,
    keyint: u32,
) -> (i64, i64) {
    use vigil_camera::{Camera, CameraConfig, StreamConfig};
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    let start_us = now();
    let recorder =
        vigil_recorder::Recorder::open(dir, vigil_recorder::RecorderConfig::default()).unwrap();
    let hub = vigil_hub::Hub::new("front/main", 128);
    let rec = recorder.record("front", "main", hub.clone()).unwrap();
    let cfg = CameraConfig {
        source,
        main: StreamConfig {
            width: 320,
            height: 180,
            fps: 15.0,
            bitrate_bps: 300_000,
            keyint,
        },
        sub: None,
    };
    let mut cam = Camera::start(cfg, hub, None).unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
    cam.stop();
    rec.stop().await;
    (start_us, now())
}

/// ffprobe's codec, size and decoded frame count of the first video stream of `path`
/// (`key=value` lines); panics when ffprobe cannot read it.
pub fn ffprobe_frames(path: &std::path::Path) -> String {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (apt-get install ffmpeg)");
    assert!(out.status.success(), "ffprobe failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A concrete path for a route pattern.
pub fn concrete(path: &str, camera: &str) -> String {
    path.replace("{name}", camera)
        .replace("{id}", "1")
        .replace("{*path}", "app.js")
}

/// An API token of `user` with `scopes` (comma-separated) on every camera the user may view,
/// valid for a day, made directly in the store (the tests of `POST /api/tokens` go through
/// the API).
pub fn token(accounts: &vigil_web::accounts::Accounts, user: &str, scopes: &str) -> String {
    let spec = vigil_web::accounts::TokenSpec {
        username: user.into(),
        name: "test".into(),
        grant: vigil_web::token_scope::Grant::from_stored(scopes, None),
        expires_us: vigil_web::accounts::now_us() + 86_400_000_000,
        created_by: user.into(),
    };
    accounts.create_token(&spec).unwrap().1
}
