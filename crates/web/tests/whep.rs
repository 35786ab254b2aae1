//! WebRTC live view over WHEP with real peers, on one NVR with one test-pattern camera and
//! the real HTTPS server (so the host candidate comes from the connection's local address):
//! - aiortc (an independent WebRTC stack, `tests/whep_client.py`) plays the camera and
//!   decodes H.264 with FFmpeg: every picture decodes, none is refused;
//! - no credentials → 401; a viewer or token limited to another camera → 403; a session
//!   without the CSRF token → 403; the wrong media type → 415; an offer that is no SDP →
//!   400; `PATCH` (trickle ICE) → 405; an unknown resource → 404; WebRTC off → 501; each
//!   answer checked against the served OpenAPI document;
//! - 100 concurrent offers get at most `max_sessions` sessions and 503s for the rest, on one
//!   UDP port, which closes once they are deleted.

#![allow(clippy::unwrap_used)]

mod common;
mod openapi_support;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use common::*;
use serde_json::Value;
use tower::ServiceExt as _;
use vigil_auth::Role;
use vigil_camera::{Camera, CameraConfig, SourceSpec, StreamConfig};
use vigil_hub::Hub;
use vigil_nvr::{CameraSource, CameraSpec, MotionSettings, Nvr, NvrConfig, RecordMode};
use vigil_rtsp::{AuthDecision, AuthRequest, RtspAuth, RtspServer};
use vigil_web::whep::{EdgeConfig, Whep, WhepConfig};
use vigil_web::AppState;

const MAX_SESSIONS: usize = 4;
/// Pictures aiortc must decode (4 s at 15 fps).
const FRAMES: u32 = 60;

struct AllowAll;

impl RtspAuth for AllowAll {
    fn check(&self, _: &AuthRequest<'_>, _connection: u64) -> AuthDecision {
        AuthDecision::Allowed {
            user: "test".into(),
            role: Role::Viewer,
        }
    }
}

fn spec(name: &str, url: String) -> CameraSpec {
    CameraSpec {
        name: name.into(),
        url,
        sub_url: None,
        username: None,
        password: None,
        transport: vigil_nvr::Transport::Tcp,
        audio: false,
        max_age_s: None,
        event_max_age_s: None,
        record: RecordMode::default(),
        motion: MotionSettings {
            enabled: false,
            ..MotionSettings::default()
        },
        source: CameraSource::Config,
    }
}

fn client_script() -> String {
    format!("{}/tests/whep_client.py", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the aiortc client; its one JSON line.
fn aiortc(args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(client_script())
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'aiortc'"),
        "aiortc is missing: pip install aiortc (scripts/test.sh does)"
    );
    assert!(out.status.success(), "aiortc client failed: {stderr}");
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout} / {stderr}"))
}

/// A WHEP POST through the router, as from `from` (no connection, so no local address).
async fn post_offer(
    app: &axum::Router,
    path: &str,
    auth: &[(&str, String)],
    content_type: &str,
    sdp: &str,
) -> Resp {
    let mut r = req("POST", path).header(header::CONTENT_TYPE, content_type);
    for (k, v) in auth {
        r = r.header(*k, v);
    }
    let mut r: Request<Body> = r.body(Body::from(sdp.to_owned())).unwrap();
    r.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 10], 40000))));
    let resp = app.clone().oneshot(r).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

fn with_token(t: &str, method: &str, path: &str) -> axum::http::request::Builder {
    req(method, path).header("authorization", format!("Bearer {t}"))
}

fn bearer(t: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {t}"))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiortc_plays_h264_and_whep_is_authorized_and_bounded() {
    // The camera: test pattern → hub → RTSP server.
    let hub = Hub::new("cam/main", 128);
    let cfg = CameraConfig {
        source: SourceSpec::TestPattern,
        main: StreamConfig {
            width: 320,
            height: 180,
            fps: 15.0,
            bitrate_bps: 300_000,
            keyint: 15,
        },
        sub: None,
    };
    let _cam = Camera::start(cfg, hub.clone(), None).unwrap();
    let rtsp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rtsp_addr = rtsp.local_addr().unwrap();
    let (_rtsp_stop, stop_rx) = tokio::sync::watch::channel(false);
    let mounts = HashMap::from([("main".to_owned(), hub)]);
    tokio::spawn(RtspServer::new(mounts, Arc::new(AllowAll)).serve(rtsp, stop_rx));

    // The NVR: "front" streams, "yard" is a camera the viewer may see (offline).
    let dir = tempfile::tempdir().unwrap();
    let nvr = Nvr::start(NvrConfig {
        data_dir: dir.path().to_owned(),
        recorder: Default::default(),
        cameras: vec![
            spec("front", format!("rtsp://{rtsp_addr}/main")),
            spec("yard", "rtsp://127.0.0.1:9/yard".into()),
        ],
        announce: false,
    })
    .await
    .unwrap();
    let mut state =
        AppState::new(nvr.clone(), Arc::new(|| serde_json::json!({})), dir.path()).unwrap();
    let whep = Arc::new(Whep::new(WhepConfig {
        edge: EdgeConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            udp_port: 0,
            max_sessions: MAX_SESSIONS,
            ice_timeout: vigil_web::whep::ICE_TIMEOUT,
        },
        host_addresses: Vec::new(),
        ice_servers: Vec::new(),
    }));
    state.whep = Some(whep.clone());
    let u = &state.accounts.users;
    u.add("admin", ADMIN_PW, Role::Admin).unwrap();
    u.add_with_cameras("viewer", VIEWER_PW, Role::Viewer, Some(vec!["yard".into()]))
        .unwrap();
    let admin_token = token(&state.accounts, "admin", "view");
    let viewer_token = token(&state.accounts, "viewer", "view");
    let app = vigil_web::router(state.clone());

    // The real HTTPS server for aiortc.
    let tls = vigil_web::tls::load_or_create(dir.path(), &[]).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = vigil_web::server::serve_with(
        listener,
        tls.server_config.clone(),
        state.clone(),
        vigil_web::edge::Limits::default(),
    )
    .unwrap();
    let base = format!("https://{}", web.local_addr());

    // Wait for the camera's first picture in the NVR.
    let started = Instant::now();
    while nvr.hub("front", "main").and_then(|h| h.params()).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "camera never streamed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // aiortc plays it, over the real server, and ends its session.
    let play = {
        let url = format!("{base}/api/cameras/front/whep?stream=main");
        let t = admin_token.clone();
        tokio::task::spawn_blocking(move || aiortc(&["play", &url, &t, &FRAMES.to_string()]))
    }
    .await
    .unwrap();
    eprintln!("aiortc: {play}");
    assert_eq!(play["post"], 201, "{play}");
    assert_eq!(play["frames"], FRAMES, "{play}");
    assert_eq!(play["decode_errors"], 0, "{play}");
    assert_eq!(play["size"], serde_json::json!([320, 180]), "{play}");
    assert_eq!(play["delete"], 204, "{play}");
    assert!(play["location"]
        .as_str()
        .unwrap()
        .starts_with("/api/cameras/front/whep/"));

    // Authorization, each answer against the OpenAPI document.
    let offer = aiortc(&["offer"])["offer"].as_str().unwrap().to_owned();
    let doc = send(
        &app,
        with_token(&admin_token, "GET", "/api/openapi.json"),
        None,
    )
    .await;
    let api = openapi_support::ApiDoc::new(doc.json());
    let route = "/api/cameras/{name}/whep";
    let check = |r: &Resp, method: &str, route: &str| {
        let ct = r
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        api.check(method, route, r.status.as_u16(), ct, &r.body)
            .unwrap_or_else(|e| panic!("{e}"));
    };
    let front = "/api/cameras/front/whep";
    let r = post_offer(&app, front, &[], "application/sdp", &offer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    check(&r, "POST", route);
    let r = post_offer(
        &app,
        front,
        &bearer(&viewer_token),
        "application/sdp",
        &offer,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    check(&r, "POST", route);
    let viewer = login(&app, "viewer", VIEWER_PW).await;
    let session = vec![
        ("cookie", format!("vigil_session={}", viewer.cookie)),
        ("x-csrf-token", viewer.csrf.clone()),
    ];
    let r = post_offer(&app, front, &session, "application/sdp", &offer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    let admin = login(&app, "admin", ADMIN_PW).await;
    let no_csrf = vec![("cookie", format!("vigil_session={}", admin.cookie))];
    let r = post_offer(&app, front, &no_csrf, "application/sdp", &offer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("CSRF"), "{}", r.text());
    let admin_session = vec![
        ("cookie", format!("vigil_session={}", admin.cookie)),
        ("x-csrf-token", admin.csrf.clone()),
    ];
    let r = post_offer(&app, front, &admin_session, "application/json", "{}").await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    check(&r, "POST", route);
    let r = post_offer(&app, front, &admin_session, "application/sdp", "v=0\r\n").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    check(&r, "POST", route);
    let r = post_offer(
        &app,
        "/api/cameras/nosuch/whep",
        &admin_session,
        "application/sdp",
        &offer,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    check(&r, "POST", route);
    // The viewer's own camera is offline: 503 with Retry-After, after the params wait.
    let r = post_offer(
        &app,
        "/api/cameras/yard/whep",
        &session,
        "application/sdp",
        &offer,
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    check(&r, "POST", route);
    let r = send(
        &app,
        admin.req("PATCH", "/api/cameras/front/whep/0123"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = send(
        &app,
        admin.req("DELETE", "/api/cameras/front/whep/0123"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    check(&r, "DELETE", "/api/cameras/{name}/whep/{id}");

    // [webrtc] enabled = false: 501, nothing opened.
    let mut off = state.clone();
    off.whep = None;
    let r = post_offer(
        &vigil_web::router(off),
        front,
        &bearer(&admin_token),
        "application/sdp",
        &offer,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED, "{}", r.text());
    check(&r, "POST", route);
    assert_eq!(whep.edge().udp_port(), None);

    // 100 concurrent offers: at most MAX_SESSIONS sessions, on one port; 503 for the rest.
    let answers = futures::future::join_all((0..100).map(|_| {
        let app = app.clone();
        let offer = offer.clone();
        let auth = bearer(&admin_token);
        async move { post_offer(&app, front, &auth, "application/sdp", &offer).await }
    }))
    .await;
    let created: Vec<&Resp> = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    let refused = answers
        .iter()
        .filter(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    eprintln!(
        "100 offers: {} created, {refused} refused 503, {} sessions, port {:?}",
        created.len(),
        whep.edge().sessions(),
        whep.edge().udp_port()
    );
    assert_eq!(created.len(), MAX_SESSIONS);
    assert_eq!(refused, 100 - MAX_SESSIONS);
    assert_eq!(whep.edge().sessions(), MAX_SESSIONS);
    check(created[0], "POST", route);
    let refusal = answers
        .iter()
        .find(|r| r.status == StatusCode::SERVICE_UNAVAILABLE)
        .unwrap();
    check(refusal, "POST", route);
    assert!(refusal.headers.contains_key(header::RETRY_AFTER));
    let port = whep.edge().udp_port().unwrap();
    for r in &created {
        let answer = String::from_utf8_lossy(&r.body);
        assert!(
            answer.contains(&format!("127.0.0.1 {port} typ host")),
            "{answer}"
        );
    }
    // The viewer may not end the admin's sessions; the admin may.
    let location = created[0].headers[header::LOCATION].to_str().unwrap();
    let r = send(&app, viewer.req("DELETE", location), None).await;
    assert!(
        matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{}",
        r.status
    );
    for r in &created {
        let location = r.headers[header::LOCATION].to_str().unwrap();
        let d = send(&app, with_token(&admin_token, "DELETE", location), None).await;
        assert_eq!(d.status, StatusCode::NO_CONTENT);
        check(&d, "DELETE", "/api/cameras/{name}/whep/{id}");
    }
    let closing = Instant::now();
    while whep.edge().udp_port().is_some() {
        assert!(
            closing.elapsed() < Duration::from_secs(5),
            "port still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the media port is closed");
    web.shutdown().await;
    nvr.shutdown().await;
}
