//! Live view through the whole server side: a test-pattern camera served over RTSP (Vigil's
//! own RTSP server), ingested by the real NVR, viewed through the real router (session cookie,
//! Origin check on the upgrade) by a WebSocket client.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use vigil_auth::Role;
use vigil_camera::{Camera, CameraConfig, SourceSpec, StreamConfig};
use vigil_hub::Hub;
use vigil_nvr::{CameraSource, CameraSpec, MotionSettings, Nvr, NvrConfig, RecordMode};
use vigil_recorder::RecorderConfig;
use vigil_rtsp::{AuthDecision, AuthRequest, RtspAuth, RtspServer};
use vigil_web::live::{HEADER_LEN, KIND_FRAGMENT, KIND_INIT};
use vigil_web::AppState;

struct AllowAll;

impl RtspAuth for AllowAll {
    fn check(&self, _: &AuthRequest<'_>, _connection: u64) -> AuthDecision {
        AuthDecision::Allowed {
            user: "test".into(),
            role: vigil_auth::Role::Viewer,
        }
    }
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message: text as JSON, binary as its header fields and first box type.
async fn next(ws: &mut Client) -> serde_json::Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a message within 15 s (the RTSP ingest connects first)")
            .unwrap()
            .unwrap();
        match m {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Binary(b) => {
                assert!(b.len() > HEADER_LEN + 8);
                return serde_json::json!({
                    "kind": b[0],
                    "capture_us": i64::from_be_bytes(b[1..9].try_into().unwrap()),
                    "box": String::from_utf8_lossy(&b[HEADER_LEN + 4..HEADER_LEN + 8]),
                });
            }
            _ => continue,
        }
    }
}

/// Reads until the server's close frame (at most 15 s: the re-check runs every 5 s) and
/// returns its code.
async fn close_code(ws: &mut Client) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return f.code.into(),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) => panic!("closed without a code"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("socket error before the close frame: {e}"),
            Err(_) => panic!("no close frame within 15 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_view_of_an_nvr_camera_through_the_router() {
    // The "camera": test pattern → hub → RTSP server.
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
    let mut cam = Camera::start(cfg, hub.clone(), None).unwrap();
    let rtsp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rtsp_addr = rtsp.local_addr().unwrap();
    let (_rtsp_stop, stop_rx) = tokio::sync::watch::channel(false);
    let mounts = HashMap::from([("main".to_owned(), hub)]);
    tokio::spawn(RtspServer::new(mounts, Arc::new(AllowAll)).serve(rtsp, stop_rx));

    // The NVR with that camera, and the web app on plain TCP (TLS is not what is tested).
    let dir = tempfile::tempdir().unwrap();
    let spec = CameraSpec {
        name: "front".into(),
        url: format!("rtsp://{rtsp_addr}/main"),
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
    };
    let nvr = Nvr::start(NvrConfig {
        data_dir: dir.path().to_owned(),
        recorder: RecorderConfig::default(),
        cameras: vec![spec],
        announce: false,
    })
    .await
    .unwrap();
    let state = AppState::new(nvr.clone(), Arc::new(|| serde_json::json!({})), dir.path()).unwrap();
    state
        .accounts
        .users
        .add("admin", "a long enough test password 1", Role::Admin)
        .unwrap();
    // A browser session (the Origin check on upgrades guards cookies; API tokens, which a
    // cross-site page cannot send, are exempt).
    let session = state
        .accounts
        .create_session("admin", std::net::Ipv4Addr::LOCALHOST.into(), "test")
        .unwrap()
        .secret;
    // A second session, revoked while its stream is open.
    let revoked = state
        .accounts
        .create_session("admin", std::net::Ipv4Addr::LOCALHOST.into(), "test")
        .unwrap();
    let (accounts, closing) = (state.accounts.clone(), state.closing.clone());
    let app = vigil_web::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });

    let request_as = |secret: &str, origin: &str| {
        let mut req = format!("ws://{addr}/api/cameras/front/live?stream=main")
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        h.insert("cookie", format!("vigil_session={secret}").parse().unwrap());
        h.insert("origin", origin.parse().unwrap());
        req
    };
    let request = |origin: &str| request_as(&session, origin);

    // A cross-site page cannot open the live stream with the user's session cookie.
    let err = tokio_tungstenite::connect_async(request("https://evil.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 403),
        "{err:?}"
    );

    // Same origin: init, init segment, then fragments starting on a key frame.
    let t0 = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(request(&format!("https://{addr}")))
        .await
        .unwrap();
    let init = next(&mut ws).await;
    assert_eq!(init["type"], "init", "{init}");
    assert_eq!(init["width"], 320);
    assert!(init["codec"].as_str().unwrap().starts_with("avc1."));
    let seg = next(&mut ws).await;
    assert_eq!(seg["kind"], KIND_INIT);
    assert_eq!(seg["box"], "ftyp");
    let mut last = 0;
    let mut frags = 0;
    while frags < 20 {
        let m = next(&mut ws).await;
        if m["type"] == "ping" {
            continue;
        }
        assert_eq!(m["kind"], KIND_FRAGMENT, "{m}");
        assert_eq!(m["box"], "moof");
        let c = m["capture_us"].as_i64().unwrap();
        assert!(c > last, "capture times increase");
        last = c;
        frags += 1;
    }
    assert!(t0.elapsed() < Duration::from_secs(15));

    // Logging out (here: revoking the session) also ends the streams it opened.
    let origin = format!("https://{addr}");
    let (mut ws2, _) = tokio_tungstenite::connect_async(request_as(&revoked.secret, &origin))
        .await
        .unwrap();
    assert_eq!(next(&mut ws2).await["type"], "init");
    assert!(accounts.revoke_session(&revoked.session.id).unwrap());
    assert_eq!(close_code(&mut ws2).await, 4401, "revoked session");

    // A server shutting down says "going away" (the UI reconnects), not "camera removed".
    closing.send_replace(true);
    assert_eq!(close_code(&mut ws).await, 1001, "server shutdown");
    nvr.shutdown().await;
    cam.stop();
}
