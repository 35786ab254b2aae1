//! Security tests of the web app against the real router (tower `oneshot`) over a real NVR on
//! a temporary data directory: authentication of every route, Origin/CSRF, paths, per-camera
//! access, secrets in answers, headers.

#![allow(clippy::unwrap_used)]

mod common;

use axum::http::{header, Request, StatusCode};
use common::*;
use serde_json::json;
use vigil_web::{Access, ROUTES};

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
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"vigil\""
        );
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
