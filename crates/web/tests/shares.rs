//! Share links through the real router: a test-pattern stream recorded for a few seconds by
//! the real recorder, then shares created by an API token (as a Home Assistant automation
//! would), opened without an account, scoped, limited, expired (the shares' clock moved),
//! revoked, throttled, and ended by retention. The browser side is in
//! `crates/vigil/tests/browser_share.rs`.

#![allow(clippy::unwrap_used)]

mod common;
mod openapi_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use common::{HOST, ORIGIN};
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vigil_auth::Role;
use vigil_nvr::{CameraSpec, Nvr, NvrConfig};
use vigil_recorder::retention::RetentionConfig;
use vigil_recorder::RecorderConfig;
use vigil_web::AppState;

const PASSWORD: &str = "a long enough test password 1";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    app: Router,
    admin: String,
    viewer: String,
    start_us: i64,
    end_us: i64,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The media session cookie set by an open, as `name=value`.
    fn share_cookie(&self) -> String {
        let sc = self.headers[header::SET_COOKIE].to_str().unwrap();
        assert!(sc.contains("HttpOnly") && sc.contains("Secure") && sc.contains("SameSite=Strict"));
        sc.split(';').next().unwrap().to_owned()
    }
}

/// Records camera `front` for about 3 s, then serves the NVR (with `front` configured but
/// offline) on that data directory; an admin token and a token of a viewer of `yard` only.
async fn fixture() -> Fixture {
    fixture_from(vigil_camera::SourceSpec::TestPattern).await
}

/// [`fixture`] with 3 s of footage from `source`.
async fn fixture_from(source: vigil_camera::SourceSpec) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (start_us, end_us) = common::record_source(dir.path(), source, 3, 15).await;
    let nvr = Nvr::start(NvrConfig {
        data_dir: dir.path().to_owned(),
        recorder: RecorderConfig::default(),
        cameras: Vec::new(),
        announce: false,
    })
    .await
    .unwrap();
    for name in ["front", "yard"] {
        let spec: CameraSpec = serde_json::from_value(json!({
            "name": name,
            "url": format!("rtsp://127.0.0.1:9/{name}"),
        }))
        .unwrap();
        nvr.add_camera(spec).await.unwrap();
    }
    let state = AppState::new(nvr, Arc::new(|| json!({})), dir.path()).unwrap();
    let users = &state.accounts.users;
    users.add("admin", PASSWORD, Role::Admin).unwrap();
    users
        .add_with_cameras("viewer", PASSWORD, Role::Viewer, Some(vec!["yard".into()]))
        .unwrap();
    let admin = common::token(&state.accounts, "admin", "view,share,cameras,admin");
    let viewer = common::token(&state.accounts, "viewer", "view,share");
    Fixture {
        _dir: dir,
        app: vigil_web::router(state.clone()),
        state,
        admin,
        viewer,
        start_us,
        end_us,
    }
}

impl Fixture {
    async fn send(
        &self,
        method: &str,
        uri: &str,
        auth: Auth<'_>,
        body: Option<Value>,
        from: [u8; 4],
    ) -> Resp {
        let mut r = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, HOST)
            .header(header::ORIGIN, ORIGIN);
        match auth {
            Auth::None => {}
            Auth::Token(t) => r = r.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Auth::Cookie(c) => r = r.header(header::COOKIE, c),
        }
        let c = common::send_from(&self.app, r, body, from).await;
        Resp {
            status: c.status,
            headers: c.headers,
            body: c.body,
        }
    }

    async fn create(&self, token: &str, body: Value) -> Resp {
        self.send("POST", "/api/shares", Auth::Token(token), Some(body), OWNER)
            .await
    }

    /// `DELETE /api/shares/{id}` with `token`.
    async fn revoke(&self, token: &str, id: &str) -> StatusCode {
        self.send(
            "DELETE",
            &format!("/api/shares/{id}"),
            Auth::Token(token),
            None,
            OWNER,
        )
        .await
        .status
    }

    fn clip(&self) -> Value {
        json!({"kind": "clip", "camera": "front", "start_us": self.start_us, "end_us": self.end_us})
    }

    async fn open(&self, token: &str, password: Option<&str>, cookie: Option<&str>) -> Resp {
        let auth = cookie.map_or(Auth::None, Auth::Cookie);
        self.send(
            "POST",
            "/api/share/open",
            auth,
            Some(json!({"token": token, "password": password})),
            RECIPIENT,
        )
        .await
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Token(&'a str),
    Cookie(&'a str),
}

const OWNER: [u8; 4] = [192, 0, 2, 10];
const RECIPIENT: [u8; 4] = [198, 51, 100, 7];

/// The token of a share URL (`https://host/s/#<token>`).
fn token_of(url: &str) -> String {
    let (base, token) = url.split_once("/s/#").unwrap();
    assert_eq!(base, format!("https://{HOST}"));
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    token.to_owned()
}

fn ffprobe_ok(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("clip.mp4");
    std::fs::write(&p, bytes).unwrap();
    common::ffprobe_frames(&p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clip_share_opens_plays_is_scoped_limited_and_revoked() {
    let f = fixture().await;
    let mut body = f.clip();
    body["password"] = json!("open sesame");
    body["max_views"] = json!(2);
    body["label"] = json!("Parcel thief");
    let r = f.create(&f.admin, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let created = r.json();
    let token = token_of(created["url"].as_str().unwrap());
    let id = created["share"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["share"]["state"], "active");
    assert_eq!(created["share"]["password"], true);
    assert!(created["share"].get("password_hash").is_none());

    // The served OpenAPI document describes these answers.
    let doc = f
        .send(
            "GET",
            "/api/openapi.json",
            Auth::Token(&f.admin),
            None,
            OWNER,
        )
        .await;
    let api = openapi_support::ApiDoc::new(doc.json());
    api.check(
        "POST",
        "/api/shares",
        201,
        Some("application/json"),
        &r.body,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The password is asked for, then checked.
    let r = f.open(&token, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["reason"], "password_required");
    api.check(
        "POST",
        "/api/share/open",
        401,
        Some("application/json"),
        &r.body,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = f.open(&token, Some("wrong"), None).await;
    assert_eq!(r.json()["reason"], "wrong_password");
    let r = f.open(&token, Some("open sesame"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    api.check(
        "POST",
        "/api/share/open",
        200,
        Some("application/json"),
        &r.body,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.json()["camera"], "front");
    assert_eq!(r.json()["label"], "Parcel thief");
    let cookie = r.share_cookie();
    assert!(cookie.starts_with(&format!("vigil_share_{id}=")));
    let sc = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(sc.contains("Path=/api/share/;"), "{sc}");

    // The clip plays and downloads.
    let clip = format!("/api/share/{id}/clip.mp4");
    let r = f
        .send("GET", &clip, Auth::Cookie(&cookie), None, RECIPIENT)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "video/mp4");
    let probe = ffprobe_ok(&r.body);
    assert!(probe.contains("codec_name=h264"), "{probe}");
    let r = f
        .send(
            "GET",
            &format!("{clip}?download=1"),
            Auth::Cookie(&cookie),
            None,
            RECIPIENT,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));

    // Nothing else: another camera, stream or range through the same session is refused, and
    // the session is no login anywhere else.
    for q in [
        "?camera=yard".to_owned(),
        "?stream=sub".to_owned(),
        format!("?start_us={}", f.start_us - 3_600_000_000),
        format!("?end_us={}", f.end_us + 3_600_000_000),
    ] {
        let r = f
            .send(
                "GET",
                &format!("{clip}{q}"),
                Auth::Cookie(&cookie),
                None,
                RECIPIENT,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{q}");
    }
    for path in [
        format!(
            "/api/cameras/front/export.mp4?start_us={}&end_us={}",
            f.start_us, f.end_us
        ),
        "/api/cameras".to_owned(),
        "/api/shares".to_owned(),
        format!("/api/share/{id}x/clip.mp4"),
        "/api/share/0123456789abcdef01234567/info".to_owned(),
    ] {
        let r = f
            .send("GET", &path, Auth::Cookie(&cookie), None, RECIPIENT)
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // A clip share has no live view.
    let r = f
        .send(
            "GET",
            &format!("/api/share/{id}/live"),
            Auth::Cookie(&cookie),
            None,
            RECIPIENT,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // The view limit: a reload with the session is no new view; a second browser is the
    // second view; a third is refused.
    let r = f.open(&token, None, Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let r = f.open(&token, Some("open sesame"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = f.open(&token, Some("open sesame"), None).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.json()["reason"], "used_up");
    let list = f
        .send("GET", "/api/shares", Auth::Token(&f.admin), None, OWNER)
        .await;
    api.check(
        "GET",
        "/api/shares",
        200,
        Some("application/json"),
        &list.body,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = &list.json()["shares"][0];
    assert_eq!(
        (s["views"].as_i64(), s["state"].as_str()),
        (Some(2), Some("used_up"))
    );
    assert_eq!(s["last_used_address"], "198.51.100.7");

    // Revoked: the open session ends at once, a new open is told so.
    assert_eq!(f.revoke(&f.admin, &id).await, StatusCode::NO_CONTENT);
    let r = f
        .send("GET", &clip, Auth::Cookie(&cookie), None, RECIPIENT)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = f.open(&token, Some("open sesame"), None).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.json()["reason"], "revoked");

    // Audited, and the token is in no audit row.
    let audit = f
        .send(
            "GET",
            "/api/audit?limit=50",
            Auth::Token(&f.admin),
            None,
            OWNER,
        )
        .await;
    let text = String::from_utf8_lossy(&audit.body).into_owned();
    for action in [
        "share_create",
        "share_open",
        "share_password_failed",
        "share_revoke",
    ] {
        assert!(text.contains(action), "{action} not audited: {text}");
    }
    assert!(!text.contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_expire_and_end_with_their_footage() {
    let f = fixture().await;
    // Expiry, with the shares' clock moved a day on.
    let r = f.create(&f.admin, f.clip()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = token_of(r.json()["url"].as_str().unwrap());
    let r = f.open(&token, None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.share_cookie();
    let id = r.json()["id"].as_str().unwrap().to_owned();
    f.state
        .shares
        .advance_clock(Duration::from_secs(24 * 3600 + 1));
    let r = f.open(&token, None, None).await;
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (StatusCode::GONE, Some("expired"))
    );
    let r = f
        .send(
            "GET",
            &format!("/api/share/{id}/info"),
            Auth::Cookie(&cookie),
            None,
            RECIPIENT,
        )
        .await;
    assert_ne!(r.status, StatusCode::OK);

    // Limits: too short, too long for live, a range with nothing recorded, bad input.
    for (body, status) in [
        (
            json!({"kind": "clip", "camera": "front", "start_us": f.start_us, "end_us": f.end_us, "expires_s": 60}),
            400,
        ),
        (
            json!({"kind": "live", "camera": "front", "expires_s": 2 * 86400}),
            400,
        ),
        (
            json!({"kind": "clip", "camera": "front", "start_us": 1_000_000, "end_us": 2_000_000}),
            404,
        ),
        (
            json!({"kind": "clip", "camera": "front", "start_us": 5, "end_us": 4}),
            400,
        ),
        (
            json!({"kind": "clip", "camera": "front", "start_us": f.start_us, "end_us": f.end_us, "max_views": 0}),
            400,
        ),
        (json!({"kind": "live", "camera": "nosuch"}), 404),
        (
            json!({"kind": "offsite", "camera": "front", "start_us": f.start_us, "end_us": f.end_us}),
            503,
        ),
        (json!({"kind": "bogus", "camera": "front"}), 400),
    ] {
        let r = f.create(&f.admin, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.json());
    }

    // A viewer shares only what they may watch, and sees and revokes only their own shares.
    let r = f.create(&f.viewer, f.clip()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = f
        .create(
            &f.viewer,
            json!({"kind": "live", "camera": "yard", "expires_s": 3600}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let r = f
        .send("GET", "/api/shares", Auth::Token(&f.viewer), None, OWNER)
        .await;
    let own = r.json()["shares"].as_array().unwrap().clone();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["created_by"], "viewer");
    assert_eq!(f.revoke(&f.viewer, &id).await, StatusCode::NOT_FOUND);

    // Retention deletes a shared clip's footage: the share ends with its own reason.
    let r = f
        .create(&f.admin, json!({"kind": "clip", "camera": "front", "start_us": f.start_us, "end_us": f.end_us, "expires_s": 30 * 86400}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = token_of(r.json()["url"].as_str().unwrap());
    let recorder = f.state.nvr.recorder().clone();
    recorder.set_retention(RetentionConfig {
        max_bytes: Some(1),
        ..RetentionConfig::default()
    });
    tokio::task::spawn_blocking(move || recorder.run_retention().unwrap())
        .await
        .unwrap();
    let r = f.open(&token, None, None).await;
    assert_eq!(r.status, StatusCode::GONE, "{}", r.json());
    assert_eq!(r.json()["reason"], "footage_deleted");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("no longer exists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_tokens_is_throttled_per_address() {
    let f = fixture().await;
    let r = f.create(&f.admin, f.clip()).await;
    let token = token_of(r.json()["url"].as_str().unwrap());
    let mut limited = 0;
    for i in 0..100 {
        let r = f.open(&format!("wrong-token-{i}"), None, None).await;
        match r.status {
            StatusCode::NOT_FOUND => assert_eq!(r.json()["reason"], "invalid"),
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers.contains_key(header::RETRY_AFTER));
                limited += 1;
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert!(
        limited > 50,
        "only {limited} of 100 guesses were refused unchecked"
    );
    // While the address is in its penalty even the right token waits: nothing is checked.
    let r = f.open(&token, None, None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is not held up.
    let r = f
        .send(
            "POST",
            "/api/share/open",
            Auth::None,
            Some(json!({"token": token})),
            [203, 0, 113, 5],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    // A cross-site page cannot open shares on a visitor's behalf.
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/share/open")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"token": token}).to_string()))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([203, 0, 113, 6], 1))));
    let r = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_page_is_served_unindexed() {
    let f = fixture().await;
    let r = f.send("GET", "/s/", Auth::None, None, RECIPIENT).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-robots-tag"], "noindex, nofollow");
    assert_eq!(r.headers[header::REFERRER_POLICY], "no-referrer");
    assert!(r.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
}

/// A download in progress when its share is revoked is cut: the body ends in an error well
/// before its `Content-Length` (what is already buffered, at most about a megabyte, still
/// arrives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_cuts_a_download_in_progress() {
    use futures::StreamExt as _;
    // Noise at 16 Mbit/s (the test pattern compresses too well): megabytes in 3 s.
    let src = tempfile::tempdir().unwrap();
    let noise = src.path().join("noise.mp4");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg("nullsrc=s=320x180:r=15,geq=random(1)*255:128:128")
        .args([
            "-t", "4", "-c:v", "libx264", "-g", "15", "-b:v", "16M", "-minrate", "16M",
        ])
        .args(["-maxrate", "16M", "-bufsize", "2M", "-pix_fmt", "yuv420p"])
        .arg(&noise)
        .output()
        .expect("ffmpeg must be installed");
    assert!(out.status.success(), "ffmpeg: {out:?}");
    let f = fixture_from(vigil_camera::SourceSpec::File(noise)).await;
    let r = f.create(&f.admin, f.clip()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = token_of(r.json()["url"].as_str().unwrap());
    let id = r.json()["share"]["id"].as_str().unwrap().to_owned();
    let r = f.open(&token, None, None).await;
    let cookie = r.share_cookie();
    let mut req = Request::builder()
        .uri(format!("/api/share/{id}/clip.mp4"))
        .header(header::HOST, HOST)
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((RECIPIENT, 1))));
    let resp = f.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let total: usize = resp.headers()[header::CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(total > 2 << 20, "only {total} bytes: too short to cut");
    let mut body = resp.into_body().into_data_stream();
    let mut got = body.next().await.unwrap().unwrap().len();
    assert_eq!(f.revoke(&f.admin, &id).await, StatusCode::NO_CONTENT);
    // The reader notices at its next check (once a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut cut = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => got += c.len(),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(cut, "the download ran to its end ({got} of {total} bytes)");
    assert!(got < total, "{got} of {total}");
}
