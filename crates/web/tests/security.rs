//! Security tests of the web app, against the real router (tower `oneshot`) over a real NVR on a
//! temporary data directory, and against the real HTTPS listener where transport matters.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vigil_auth::Role;
use vigil_nvr::{CameraSpec, Nvr, NvrConfig};
use vigil_web::{Access, AppState, ROUTES};

const HOST: &str = "vigil.test:8443";
const ORIGIN: &str = "https://vigil.test:8443";
const ADMIN_PW: &str = "correct horse battery";
const VIEWER_PW: &str = "viewer pass phrase";
const CAM_PW: &str = "s3cret-camera-pw-93";

struct Env {
    _dir: tempfile::TempDir,
    state: AppState,
    app: Router,
}

async fn env_with(users: bool, cameras: bool) -> Env {
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

async fn env() -> Env {
    env_with(true, true).await
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
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request from a browser on our own origin (Host, Origin) from 192.0.2.10.
fn req(method: &str, path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::ORIGIN, ORIGIN)
}

async fn send(app: &Router, r: axum::http::request::Builder, body: Option<Value>) -> Resp {
    let mut r = match body {
        Some(b) => r
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => r.body(Body::empty()).unwrap(),
    };
    r.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 10], 40000))));
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
struct Client {
    cookie: String,
    csrf: String,
}

impl Client {
    fn req(&self, method: &str, path: &str) -> axum::http::request::Builder {
        req(method, path)
            .header(header::COOKIE, format!("vigil_session={}", self.cookie))
            .header("x-csrf-token", &self.csrf)
    }
}

fn cookie_of(r: &Resp) -> String {
    let sc = r.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    let v = sc.strip_prefix("vigil_session=").unwrap();
    v.split(';').next().unwrap().to_owned()
}

async fn login(app: &Router, user: &str, pw: &str) -> Client {
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

/// A concrete path for a route pattern.
fn concrete(path: &str, camera: &str) -> String {
    path.replace("{name}", camera)
        .replace("{id}", "1")
        .replace("{*path}", "app.js")
}

#[tokio::test]
async fn every_non_public_route_answers_401_without_a_session() {
    let e = env().await;
    let forged = [
        ("cookie", "vigil_session=forged"),
        ("authorization", "Bearer vigil_forged"),
        ("authorization", "Basic YWRtaW46YWRtaW4="),
        ("x-forwarded-for", "127.0.0.1"),
        ("cookie", "session=admin; user=admin; role=admin"),
    ];
    let mut n = 0;
    for d in ROUTES.iter().filter(|d| d.access != Access::Public) {
        let path = concrete(d.path, "front");
        let body = (d.method != "GET").then(|| json!({}));
        let r = send(&e.app, req(d.method, &path), body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{} {path}: {}",
            d.method,
            r.text()
        );
        assert!(r.json()["error"].is_string(), "{} {path}", d.method);
        for (h, v) in forged {
            let r = send(&e.app, req(d.method, &path).header(h, v), body.clone()).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{} {path} with {h}: {v}",
                d.method
            );
        }
        // Magic query parameters grant nothing either.
        let q = if path.contains('?') { "&" } else { "?" };
        let r = send(
            &e.app,
            req(d.method, &format!("{path}{q}token=admin&debug=1")),
            body.clone(),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{} {path} with query",
            d.method
        );
        // Without an Origin a state change is refused before anything else: never a success.
        if d.method != "GET" {
            let bare = Request::builder()
                .method(d.method)
                .uri(&path)
                .header(header::HOST, HOST);
            let r = send(&e.app, bare, body).await;
            assert!(
                r.status == StatusCode::FORBIDDEN || r.status == StatusCode::UNAUTHORIZED,
                "{} {path}: {}",
                d.method,
                r.status
            );
        }
        n += 1;
    }
    assert!(n >= 25, "only {n} protected routes");
    // The public routes exist and answer without a session.
    for d in ROUTES
        .iter()
        .filter(|d| d.access == Access::Public && d.method == "GET")
    {
        let r = send(&e.app, req("GET", &concrete(d.path, "front")), None).await;
        assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{}", d.path);
    }
}

#[tokio::test]
async fn no_undocumented_method_on_a_documented_path() {
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let mut paths: Vec<&str> = ROUTES.iter().map(|d| d.path).collect();
    paths.dedup();
    for path in paths {
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if ROUTES.iter().any(|d| d.path == path && d.method == m) {
                continue;
            }
            // As an admin, so that only the router itself can refuse.
            let r = send(
                &e.app,
                admin.req(m, &concrete(path, "front")),
                Some(json!({})),
            )
            .await;
            assert_eq!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{m} {path} is served but not in ROUTES"
            );
        }
    }
}

#[tokio::test]
async fn a_fresh_data_dir_opens_nothing_and_default_passwords_fail() {
    let e = env_with(false, false).await;
    let r = send(&e.app, req("GET", "/api/setup"), None).await;
    assert_eq!(r.json(), json!({"needed": true}));
    for (u, p) in [
        ("admin", "admin"),
        ("root", "root"),
        ("admin", "12345"),
        ("admin", ""),
        ("admin", "password"),
    ] {
        let r = send(
            &e.app,
            req("POST", "/api/login"),
            Some(json!({"username": u, "password": p})),
        )
        .await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::TOO_MANY_REQUESTS,
            "{u}/{p}: {}",
            r.status
        );
    }
    let r = send(&e.app, req("GET", "/api/cameras"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cross_origin_state_changes_are_refused() {
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let new_user =
        json!({"username": "mallory", "password": "mallory pass phrase", "role": "admin"});
    for origin in [
        "https://evil.example",
        "http://vigil.test:8443",
        "null",
        "https://vigil.test:8443.evil.example",
    ] {
        let b = Request::builder()
            .method("POST")
            .uri("/api/users")
            .header(header::HOST, HOST)
            .header(header::ORIGIN, origin)
            .header(header::COOKIE, format!("vigil_session={}", admin.cookie))
            .header("x-csrf-token", &admin.csrf);
        let r = send(&e.app, b, Some(new_user.clone())).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin}");
    }
    // No Origin and no Referer: refused too.
    let b = Request::builder()
        .method("POST")
        .uri("/api/users")
        .header(header::HOST, HOST)
        .header(header::COOKIE, format!("vigil_session={}", admin.cookie))
        .header("x-csrf-token", &admin.csrf);
    assert_eq!(
        send(&e.app, b, Some(new_user.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    // A cross-site login (login CSRF) is refused as well.
    let b = Request::builder()
        .method("POST")
        .uri("/api/login")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, "https://evil.example");
    let r = send(
        &e.app,
        b,
        Some(json!({"username": "admin", "password": ADMIN_PW})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    // A WebSocket upgrade from another origin is refused before the handler.
    let b = Request::builder()
        .uri("/api/cameras/front/live")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, format!("vigil_session={}", admin.cookie))
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(send(&e.app, b, None).await.status, StatusCode::FORBIDDEN);
    assert!(e.state.accounts.users.get("mallory").unwrap().is_none());
}

#[tokio::test]
async fn csrf_token_is_required_with_a_session() {
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let body = json!({"username": "carol", "password": "carol pass phrase", "role": "viewer", "cameras": null});
    let no_token =
        req("POST", "/api/users").header(header::COOKIE, format!("vigil_session={}", admin.cookie));
    assert_eq!(
        send(&e.app, no_token, Some(body.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    let wrong = req("POST", "/api/users")
        .header(header::COOKIE, format!("vigil_session={}", admin.cookie))
        .header("x-csrf-token", "not-the-token");
    assert_eq!(
        send(&e.app, wrong, Some(body.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    // Another session's token does not fit this one.
    let other = login(&e.app, "admin", ADMIN_PW).await;
    let mixed = req("POST", "/api/users")
        .header(header::COOKIE, format!("vigil_session={}", admin.cookie))
        .header("x-csrf-token", &other.csrf);
    assert_eq!(
        send(&e.app, mixed, Some(body.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(e.state.accounts.users.get("carol").unwrap().is_none());
    let r = send(&e.app, admin.req("POST", "/api/users"), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    // Logout is a state change as well.
    let r = send(
        &e.app,
        req("POST", "/api/logout")
            .header(header::COOKIE, format!("vigil_session={}", admin.cookie)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn api_tokens_work_without_csrf_and_are_shown_once() {
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let r = send(
        &e.app,
        admin.req("POST", "/api/tokens"),
        Some(json!({"name": "ha", "username": "viewer"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let list = send(&e.app, admin.req("GET", "/api/tokens"), None).await;
    assert!(!list.text().contains(&token));
    let bearer = |m: &str, p: &str| {
        Request::builder()
            .method(m)
            .uri(p)
            .header(header::HOST, HOST)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
    };
    let r = send(&e.app, bearer("GET", "/api/cameras"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<_> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("front")],
        "the token has its user's camera access"
    );
    // A viewer's token is still a viewer.
    let r = send(&e.app, bearer("GET", "/api/users"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let id = list.json()[0]["id"].as_str().unwrap().to_owned();
    let r = send(
        &e.app,
        admin.req("DELETE", &format!("/api/tokens/{id}")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&e.app, bearer("GET", "/api/cameras"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn paths_never_leave_the_embedded_assets() {
    let e = env().await;
    for path in [
        "/assets/../Cargo.toml",
        "/assets/../../Cargo.toml",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/%2e%2e%2fCargo.toml",
        "/assets/%2E%2E%2F%2E%2E%2FCargo.toml",
        "/assets/..%2f..%2fCargo.toml",
        "/assets/..%5c..%5cCargo.toml",
        "/assets//etc/passwd",
        "/assets/%2fetc%2fpasswd",
        "/assets/../../../../../../etc/passwd",
        "/assets/./../build.rs",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/etc/passwd",
        "/assets/",
        "/assets/pages",
        "/assets/src/lib.rs",
    ] {
        let r = send(&e.app, req("GET", path), None).await;
        assert!(
            r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
            "{path}: {}",
            r.status
        );
        let t = r.text();
        assert!(
            !t.contains("[package]") && !t.contains("root:") && !t.contains("fn main"),
            "{path}"
        );
    }
    // Every embedded file is served as it is, with its type and an ETag that revalidates.
    let mut n = 0;
    for a in vigil_web::assets::all() {
        let r = send(&e.app, req("GET", &format!("/assets/{}", a.path)), None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", a.path);
        assert_eq!(r.body, a.data, "{}", a.path);
        assert_eq!(
            r.headers[header::CONTENT_TYPE].to_str().unwrap(),
            vigil_web::assets::content_type(a.path)
        );
        let etag = r.headers[header::ETAG].to_str().unwrap().to_owned();
        let r = send(
            &e.app,
            req("GET", &format!("/assets/{}", a.path)).header(header::IF_NONE_MATCH, etag),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        n += 1;
    }
    assert!(n > 0, "no embedded assets");
    let index = send(&e.app, req("GET", "/"), None).await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(
        index.body,
        vigil_web::assets::get("index.html").unwrap().data
    );
}

#[tokio::test]
async fn a_session_id_from_before_login_is_not_accepted_after_it() {
    let e = env().await;
    // The attacker plants a cookie, the victim logs in with it present.
    let planted = "attacker-chosen-session-id";
    let r = send(
        &e.app,
        req("POST", "/api/login").header(header::COOKIE, format!("vigil_session={planted}")),
        Some(json!({"username": "admin", "password": ADMIN_PW})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let fresh = cookie_of(&r);
    assert_ne!(fresh, planted);
    assert!(fresh.len() >= 43, "256-bit id");
    let sc = r.headers[header::SET_COOKIE].to_str().unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(sc.contains(attr), "{sc}");
    }
    let with =
        |c: &str| req("GET", "/api/session").header(header::COOKIE, format!("vigil_session={c}"));
    assert_eq!(
        send(&e.app, with(planted), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&e.app, with(&fresh), None).await.status,
        StatusCode::OK
    );
    // A real session held before a new login is ended by it.
    let r = send(
        &e.app,
        req("POST", "/api/login").header(header::COOKIE, format!("vigil_session={fresh}")),
        Some(json!({"username": "viewer", "password": VIEWER_PW})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        send(&e.app, with(&fresh), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let second = cookie_of(&r);
    assert_eq!(
        send(&e.app, with(&second), None).await.json()["username"],
        "viewer"
    );
}

#[tokio::test]
async fn fifty_wrong_passwords_get_429_then_the_right_one_works() {
    let e = env().await;
    let mut statuses = Vec::new();
    let mut retry_after = 0;
    for i in 0..50 {
        let r = send(
            &e.app,
            req("POST", "/api/login"),
            Some(json!({"username": "admin", "password": format!("wrong guess {i}")})),
        )
        .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r.headers[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap();
            assert!(r.headers.get(header::SET_COOKIE).is_none());
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        statuses.push(r.status);
    }
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count()
            >= 40
    );
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    // During the penalty even the right password is refused unchecked …
    let right = json!({"username": "admin", "password": ADMIN_PW});
    assert_eq!(
        send(&e.app, req("POST", "/api/login"), Some(right.clone()))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // … and after it, it works: a slow-down, not a lock-out.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        send(&e.app, req("POST", "/api/login"), Some(right))
            .await
            .status,
        StatusCode::OK
    );
    let log = e.state.accounts.audit_log(100).unwrap();
    assert!(log.iter().filter(|r| r.action == "login_failed").count() >= 4);
    assert!(
        log.iter().all(|r| !r.detail.contains("wrong guess")),
        "no password in the audit log"
    );
}

#[tokio::test]
async fn a_viewer_sees_only_their_cameras() {
    let e = env().await;
    let v = login(&e.app, "viewer", VIEWER_PW).await;
    let r = send(&e.app, v.req("GET", "/api/cameras"), None).await;
    let names: Vec<_> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("front")]);
    let r = send(&e.app, v.req("GET", "/api/cameras/front"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    for d in ROUTES
        .iter()
        .filter(|d| d.path.contains("{name}") && d.method == "GET")
    {
        let path = format!(
            "{}?stream=main&start_us=0&end_us=1000000",
            concrete(d.path, "yard")
        );
        let r = send(&e.app, v.req("GET", &path), None).await;
        assert!(
            r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND,
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
    let r = send(&e.app, v.req("GET", "/api/events?camera=yard"), None).await;
    assert!(
        r.status == StatusCode::FORBIDDEN
            || r.status == StatusCode::NOT_FOUND
            || r.json() == json!([]),
        "{}",
        r.text()
    );
    // By id too: an event of the other camera, its thumbnail, and the event list.
    let store = e.state.nvr.event_store();
    let yard_ev = store
        .insert_start(
            "yard",
            &[],
            1_000_000,
            0.5,
            None,
            Some(b"\xff\xd8yard\xff\xd9".to_vec()),
        )
        .unwrap();
    let front_ev = store
        .insert_start(
            "front",
            &[],
            1_000_000,
            0.5,
            None,
            Some(b"\xff\xd8front\xff\xd9".to_vec()),
        )
        .unwrap();
    let r = send(
        &e.app,
        v.req("GET", &format!("/api/events/{}/thumbnail.jpg", yard_ev.id)),
        None,
    )
    .await;
    assert!(
        r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND,
        "{}",
        r.status
    );
    assert!(!r.text().contains("yard"));
    let r = send(
        &e.app,
        v.req("GET", &format!("/api/events/{}/thumbnail.jpg", front_ev.id)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&e.app, v.req("GET", "/api/events"), None).await;
    let cams: Vec<_> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["camera"].clone())
        .collect();
    assert_eq!(cams, [json!("front")], "{}", r.text());
    let r = send(&e.app, v.req("GET", "/api/system"), None).await;
    assert!(!r.text().contains("yard"), "{}", r.text());
    assert_eq!(r.json()["alerts"]["mqtt"], "off");
    // Admin routes are closed to viewers, whatever the method.
    for d in ROUTES.iter().filter(|d| d.access == Access::Admin) {
        let body = (d.method != "GET").then(|| json!({}));
        let r = send(&e.app, v.req(d.method, &concrete(d.path, "front")), body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{} {}", d.method, d.path);
    }
    // Another user's session cannot be ended by a viewer, nor seen.
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let all = send(&e.app, admin.req("GET", "/api/sessions"), None).await;
    let admin_sid = all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["username"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = send(&e.app, v.req("GET", "/api/sessions"), None).await;
    assert!(mine
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["username"] == "viewer"));
    let r = send(
        &e.app,
        v.req("DELETE", &format!("/api/sessions/{admin_sid}")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_setup_token_is_single_use_and_expires() {
    let e = env_with(false, false).await;
    let acc = &e.state.accounts;
    let setup =
        |token: &str, pw: &str| json!({"token": token, "username": "owner", "password": pw});
    let expired = acc.new_setup_token_with_ttl(Duration::ZERO);
    let r = send(
        &e.app,
        req("POST", "/api/setup"),
        Some(setup(&expired, ADMIN_PW)),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let token = acc.new_setup_token();
    assert_eq!(
        send(
            &e.app,
            req("POST", "/api/setup"),
            Some(setup(&expired, ADMIN_PW))
        )
        .await
        .status,
        StatusCode::FORBIDDEN,
        "an older token is replaced"
    );
    assert_eq!(
        send(
            &e.app,
            req("POST", "/api/setup"),
            Some(setup("guess", ADMIN_PW))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    // A weak password is refused and does not use the token up.
    let r = send(
        &e.app,
        req("POST", "/api/setup"),
        Some(setup(&token, "admin")),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = send(
        &e.app,
        req("POST", "/api/setup"),
        Some(setup(&token, ADMIN_PW)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), json!({"username": "owner", "role": "admin"}));
    let cookie = cookie_of(&r);
    let s = send(
        &e.app,
        req("GET", "/api/session").header(header::COOKIE, format!("vigil_session={cookie}")),
        None,
    )
    .await;
    assert_eq!(s.json()["role"], "admin");
    // Used: a second use fails, also after the user is gone again.
    let r = send(
        &e.app,
        req("POST", "/api/setup"),
        Some(setup(&token, "another pass phrase")),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    acc.users.remove("owner").unwrap();
    let r = send(
        &e.app,
        req("POST", "/api/setup"),
        Some(setup(&token, "another pass phrase")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let log = acc.audit_log(10).unwrap();
    assert!(log.iter().any(|r| r.action == "setup"));
    assert!(log.iter().any(|r| r.action == "setup_failed"));
}

#[tokio::test]
async fn camera_passwords_are_never_returned() {
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let r = send(&e.app, admin.req("GET", "/api/cameras/front"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["has_password"], true);
    assert!(r.json().get("password").is_none());
    // Edit without a password: it is kept, and still not returned.
    let mut spec = r.json();
    spec["transport"] = json!("tcp");
    let r = send(&e.app, admin.req("PUT", "/api/cameras/front"), Some(spec)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["has_password"], true);
    for d in ROUTES
        .iter()
        .filter(|d| d.method == "GET" && !d.path.contains("live"))
    {
        let path = format!(
            "{}?stream=main&start_us=0&end_us=1000000",
            concrete(d.path, "front")
        );
        let r = send(&e.app, admin.req("GET", &path), None).await;
        assert!(
            !r.text().contains(CAM_PW),
            "{path} leaks the camera password"
        );
    }
    let log = e.state.accounts.audit_log(100).unwrap();
    assert!(log.iter().any(|r| r.action == "camera_changed"));
    assert!(serde_json::to_string(&log)
        .map(|s| !s.contains(CAM_PW))
        .unwrap());
}

#[tokio::test]
async fn password_change_and_logout_end_sessions() {
    let e = env().await;
    let a1 = login(&e.app, "viewer", VIEWER_PW).await;
    let a2 = login(&e.app, "viewer", VIEWER_PW).await;
    let r = send(
        &e.app,
        a1.req("POST", "/api/account/password"),
        Some(json!({"current": "nope nope", "new": "x new pass phrase"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &e.app,
        a1.req("POST", "/api/account/password"),
        Some(json!({"current": VIEWER_PW, "new": "x new pass phrase"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(
        send(&e.app, a2.req("GET", "/api/session"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&e.app, a1.req("GET", "/api/session"), None)
            .await
            .status,
        StatusCode::OK
    );
    let r = send(&e.app, a1.req("POST", "/api/logout"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        send(&e.app, a1.req("GET", "/api/session"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Revocation by an admin, and deleting a user, end sessions too.
    let v = login(&e.app, "viewer", "x new pass phrase").await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let r = send(&e.app, admin.req("DELETE", "/api/users/viewer"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&e.app, v.req("GET", "/api/session"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The last admin stays.
    let r = send(&e.app, admin.req("DELETE", "/api/users/admin"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let log = send(&e.app, admin.req("GET", "/api/audit?limit=50"), None)
        .await
        .json();
    let actions: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    for a in [
        "login",
        "password_change_failed",
        "password_changed",
        "logout",
        "user_removed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} not in {actions:?}");
    }
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    for (r, api) in [
        (send(&e.app, req("GET", "/"), None).await, false),
        (send(&e.app, req("GET", "/nope"), None).await, false),
        (send(&e.app, req("GET", "/api/session"), None).await, true),
        (send(&e.app, req("GET", "/api/nope"), None).await, true),
        (
            send(&e.app, admin.req("GET", "/api/system"), None).await,
            true,
        ),
    ] {
        let h = &r.headers;
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert!(h.contains_key(header::STRICT_TRANSPORT_SECURITY));
        if api {
            assert_eq!(h[header::CACHE_CONTROL], "no-store");
            assert!(r.json().is_object(), "JSON answers, errors included");
        }
    }
    // A JSON body too large, or not JSON, is refused.
    let big = json!({"username": "a".repeat(100_000), "password": "x"});
    let r = send(&e.app, req("POST", "/api/login"), Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = send(
        &e.app,
        req("POST", "/api/login").header(header::CONTENT_TYPE, "text/plain"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = send(
        &e.app,
        req("POST", "/api/login"),
        Some(json!({"username": "admin", "password": ADMIN_PW, "admin": true})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let e = env().await;
    let v = login(&e.app, "viewer", VIEWER_PW).await;
    let doc = send(&e.app, v.req("GET", "/api/openapi.json"), None)
        .await
        .json();
    assert_eq!(doc["openapi"], "3.1.0");
    for d in ROUTES {
        let p = d.path.replace("{*", "{");
        assert!(
            doc["paths"][&p][d.method.to_ascii_lowercase()].is_object(),
            "{} {}",
            d.method,
            d.path
        );
    }
    assert!(doc["components"]["securitySchemes"]["session"].is_object());
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
}

// ---- over the real HTTPS listener ----

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn tls_connect(
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// Sends raw bytes over TLS and returns what the server answered before closing.
async fn raw_https(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = tls_connect(addr).await.unwrap();
    tls.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn over_https_raw_paths_and_unauthenticated_requests() {
    let e = env().await;
    let material = vigil_web::tls::load_or_create(&e.state.data_dir, &[]).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handle =
        vigil_web::server::serve(listener, material.server_config.clone(), e.state.clone())
            .unwrap();
    let addr = handle.local_addr();
    for target in [
        "/assets/../Cargo.toml",
        "/assets/%2e%2e%2fCargo.toml",
        "/assets//etc/passwd",
        "/../../etc/passwd",
    ] {
        let resp = raw_https(
            addr,
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        let status = resp.lines().next().unwrap_or("");
        assert!(
            status.contains(" 404 ") || status.contains(" 400 "),
            "{target}: {status}"
        );
        assert!(
            !resp.contains("[package]") && !resp.contains("root:"),
            "{target}"
        );
    }
    let resp = raw_https(
        addr,
        b"GET /api/cameras HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert!(resp
        .to_ascii_lowercase()
        .contains("content-security-policy"));
    // An absolute-form target naming another host does not bypass anything either.
    let resp = raw_https(
        addr,
        b"GET https://localhost/api/users HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 401") || resp.starts_with("HTTP/1.1 400"),
        "{resp}"
    );
    // A huge request head is refused.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let resp = raw_https(addr, big.as_bytes()).await;
    assert!(
        !resp.starts_with("HTTP/1.1 200"),
        "{}",
        resp.lines().next().unwrap_or("")
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn start_serves_https_and_keeps_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let nvr = Nvr::start(NvrConfig {
        data_dir: dir.path().to_owned(),
        recorder: Default::default(),
        cameras: Vec::new(),
        announce: false,
    })
    .await
    .unwrap();
    let cfg = vigil_web::WebConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cert: None,
        key: None,
        data_dir: dir.path().to_owned(),
    };
    let h = vigil_web::start(cfg.clone(), nvr.clone(), Arc::new(|| json!({})))
        .await
        .unwrap();
    let resp = raw_https(
        h.local_addr(),
        b"GET /api/setup HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains(r#"{"needed":true}"#), "{resp}");
    h.shutdown().await;
    let first = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
    let h = vigil_web::start(cfg, nvr, Arc::new(|| json!({})))
        .await
        .unwrap();
    h.shutdown().await;
    assert_eq!(
        std::fs::read(dir.path().join("tls/cert.pem")).unwrap(),
        first,
        "the certificate is kept"
    );
}

#[tokio::test]
async fn slow_clients_and_connection_floods_are_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let e = env_with(true, false).await;
    let material = vigil_web::tls::load_or_create(&e.state.data_dir, &[]).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handle =
        vigil_web::server::serve(listener, material.server_config.clone(), e.state.clone())
            .unwrap();
    let addr = handle.local_addr();

    // Slowloris: a request head that never ends is dropped after the header read timeout.
    let started = std::time::Instant::now();
    let mut slow = tls_connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        vigil_web::server::HEADER_READ_TIMEOUT + Duration::from_secs(5),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(
        read.is_ok(),
        "the connection was still open after the header read timeout"
    );
    assert!(!String::from_utf8_lossy(&buf).contains(" 200 "));
    assert!(started.elapsed() >= vigil_web::server::HEADER_READ_TIMEOUT - Duration::from_secs(1));

    // One address cannot hold more than its share of connections.
    let mut held = Vec::new();
    for _ in 0..vigil_web::server::MAX_CONNECTIONS_PER_ADDRESS {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tls_connect(addr).await.is_err(),
        "a connection beyond the limit was served"
    );
    held.pop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = raw_https(
        addr,
        b"GET /api/setup HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    drop(held);
    handle.shutdown().await;
}
