//! The served OpenAPI document against real answers: the real router on a real NVR (the
//! security tests' fixtures), driven through the account, camera, system, event and
//! recording routes as the UI drives them, each answer — errors included — checked against
//! the document served at `/api/openapi.json` (status documented, JSON body valid against its
//! schema). The recorded timeline and the export are checked in `media_playback.rs`, whose
//! fixture records real video.

#![allow(clippy::unwrap_used)]

mod common;
mod openapi_support;

use axum::http::{header, StatusCode};
use axum::Router;
use common::*;
use openapi_support::ApiDoc;
use serde_json::{json, Value};
use vigil_nvr::events::NormBox;

/// Sends a request and checks its answer against the document; answers the response.
async fn call(
    app: &Router,
    api: &ApiDoc,
    route: &str,
    r: axum::http::request::Builder,
    body: Option<Value>,
) -> Resp {
    let method = r.method_ref().unwrap().as_str().to_owned();
    let resp = send(app, r, body).await;
    let ct = resp
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Err(e) = api.check(&method, route, resp.status.as_u16(), ct, &resp.body) {
        panic!("{e}");
    }
    resp
}

/// The document as served to `client`.
async fn served(app: &Router, client: &Client) -> ApiDoc {
    let r = send(app, client.req("GET", "/api/openapi.json"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    ApiDoc::new(r.json())
}

#[tokio::test]
async fn the_checker_refuses_what_the_document_does_not_say() {
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let api = served(&e.app, &admin).await;
    let json = Some("application/json");
    let session = json!({"username": "a", "role": "admin", "cameras": null, "csrf_token": "x",
                         "must_enrol": false});
    let ok = serde_json::to_vec(&session).unwrap();
    api.check("GET", "/api/session", 200, json, &ok).unwrap();
    let mut extra = session.clone();
    extra["password"] = json!("leak");
    let err = api
        .check(
            "GET",
            "/api/session",
            200,
            json,
            &serde_json::to_vec(&extra).unwrap(),
        )
        .unwrap_err();
    assert!(
        err.contains("GET /api/session") && err.contains("password"),
        "{err}"
    );
    let mut wrong = session.clone();
    wrong["role"] = json!("root");
    let err = api
        .check(
            "GET",
            "/api/session",
            200,
            json,
            &serde_json::to_vec(&wrong).unwrap(),
        )
        .unwrap_err();
    assert!(err.contains("/role"), "{err}");
    let mut missing = session;
    missing.as_object_mut().unwrap().remove("csrf_token");
    assert!(api
        .check(
            "GET",
            "/api/session",
            200,
            json,
            &serde_json::to_vec(&missing).unwrap()
        )
        .is_err());
    let err = api
        .check("GET", "/api/session", 418, json, b"{}")
        .unwrap_err();
    assert!(err.contains("418 is not documented"), "{err}");
    assert!(api.check("GET", "/api/nosuch", 200, json, b"{}").is_err());
    assert!(api
        .check("GET", "/api/session", 200, Some("text/plain"), &ok)
        .is_err());
}

#[tokio::test]
async fn account_answers_match_the_document() {
    let e = env_with(false, false).await;
    let app = &e.app;
    let token = e.state.accounts.new_setup_token();
    // The document is served only to a user; the setup answers are checked once there is one.
    let status = send(app, req("GET", "/api/setup"), None).await;
    let setup_body = json!({"token": token, "username": "admin", "password": ADMIN_PW});
    let bad_setup = send(
        app,
        req("POST", "/api/setup"),
        Some(json!({"token": "wrong", "username": "admin", "password": ADMIN_PW})),
    )
    .await;
    let setup = send(app, req("POST", "/api/setup"), Some(setup_body.clone())).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.text());
    let admin = login(app, "admin", ADMIN_PW).await;
    let api = served(app, &admin).await;
    let json = Some("application/json");
    for (method, r) in [("GET", &status), ("POST", &bad_setup), ("POST", &setup)] {
        api.check(method, "/api/setup", r.status.as_u16(), json, &r.body)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(bad_setup.status, StatusCode::FORBIDDEN);
    let again = call(
        app,
        &api,
        "/api/setup",
        req("POST", "/api/setup"),
        Some(setup_body),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    call(app, &api, "/api/setup", req("GET", "/api/setup"), None).await;
    call(
        app,
        &api,
        "/api/session",
        admin.req("GET", "/api/session"),
        None,
    )
    .await;
    let r = call(app, &api, "/api/session", req("GET", "/api/session"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Users.
    let r = call(
        app,
        &api,
        "/api/users",
        admin.req("POST", "/api/users"),
        Some(json!({"username": "viewer", "password": VIEWER_PW, "role": "viewer", "cameras": ["front"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = call(
        app,
        &api,
        "/api/users",
        admin.req("POST", "/api/users"),
        Some(json!({"username": "viewer", "password": VIEWER_PW, "role": "viewer"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = call(
        app,
        &api,
        "/api/users",
        admin.req("POST", "/api/users"),
        Some(json!({"username": "x", "password": VIEWER_PW, "role": "viewer", "admin": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        app,
        &api,
        "/api/users",
        admin
            .req("POST", "/api/users")
            .header(header::CONTENT_TYPE, "text/plain"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    call(
        app,
        &api,
        "/api/users",
        admin.req("GET", "/api/users"),
        None,
    )
    .await;
    let r = call(
        app,
        &api,
        "/api/users/{name}",
        admin.req("PUT", "/api/users/viewer"),
        Some(json!({"cameras": null})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["cameras"], Value::Null);
    let r = call(
        app,
        &api,
        "/api/users/{name}",
        admin.req("PUT", "/api/users/nosuch"),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        app,
        &api,
        "/api/users/{name}",
        admin.req("DELETE", "/api/users/admin"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "the last admin stays");

    // A viewer: sessions, password, admin routes refused.
    let viewer = login(app, "viewer", VIEWER_PW).await;
    let r = call(
        app,
        &api,
        "/api/users",
        viewer.req("GET", "/api/users"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        app,
        &api,
        "/api/sessions",
        viewer.req("GET", "/api/sessions"),
        None,
    )
    .await;
    let own = r.json()[0]["id"].as_str().unwrap().to_owned();
    let r = call(
        app,
        &api,
        "/api/account/password",
        viewer.req("POST", "/api/account/password"),
        Some(json!({"current": "wrong password here", "new": "another pass phrase"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        app,
        &api,
        "/api/account/password",
        viewer.req("POST", "/api/account/password"),
        Some(json!({"current": VIEWER_PW, "new": "another pass phrase"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        app,
        &api,
        "/api/account/password",
        req("POST", "/api/account/password"),
        Some(json!({"current": VIEWER_PW, "new": "another pass phrase"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    call(
        app,
        &api,
        "/api/sessions",
        admin.req("GET", "/api/sessions"),
        None,
    )
    .await;
    let r = call(
        app,
        &api,
        "/api/sessions/{id}",
        viewer.req("DELETE", "/api/sessions/nosuch"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        app,
        &api,
        "/api/sessions/{id}",
        viewer.req("DELETE", &format!("/api/sessions/{own}")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Tokens and the audit log.
    let r = call(
        app,
        &api,
        "/api/tokens",
        admin.req("POST", "/api/tokens"),
        Some(json!({"name": "script", "username": "viewer"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let tid = r.json()["id"].as_str().unwrap().to_owned();
    assert!(r.json()["token"].is_string());
    let r = call(
        app,
        &api,
        "/api/tokens",
        admin.req("POST", "/api/tokens"),
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        app,
        &api,
        "/api/tokens",
        admin.req("GET", "/api/tokens"),
        None,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = call(
        app,
        &api,
        "/api/tokens/{id}",
        admin.req("DELETE", &format!("/api/tokens/{tid}")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        app,
        &api,
        "/api/tokens/{id}",
        admin.req("DELETE", &format!("/api/tokens/{tid}")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        app,
        &api,
        "/api/audit",
        admin.req("GET", "/api/audit?limit=50"),
        None,
    )
    .await;
    assert!(r.json().as_array().unwrap().len() > 5, "{}", r.text());
    let r = call(
        app,
        &api,
        "/api/audit",
        admin.req("GET", "/api/audit?limit=x"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Another origin is refused; so is a state change without the CSRF token.
    let r = call(
        app,
        &api,
        "/api/logout",
        req("POST", "/api/logout")
            .header(header::COOKIE, format!("vigil_session={}", admin.cookie)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        app,
        &api,
        "/api/users/{name}",
        admin.req("DELETE", "/api/users/viewer"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        app,
        &api,
        "/api/logout",
        admin.req("POST", "/api/logout"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // Logins: wrong, then throttled.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = call(
            app,
            &api,
            "/api/login",
            req("POST", "/api/login"),
            Some(json!({"username": "admin", "password": "not the password"})),
        )
        .await;
        statuses.push(r.status);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn camera_system_event_and_recording_answers_match_the_document() {
    let e = env().await;
    let app = &e.app;
    let admin = login(app, "admin", ADMIN_PW).await;
    let viewer = login(app, "viewer", VIEWER_PW).await;
    let api = served(app, &admin).await;

    // The document itself.
    call(
        app,
        &api,
        "/api/openapi.json",
        viewer.req("GET", "/api/openapi.json"),
        None,
    )
    .await;

    // Cameras, as the admin and as a viewer of one of them.
    let r = call(
        app,
        &api,
        "/api/cameras",
        admin.req("GET", "/api/cameras"),
        None,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert!(!r.text().contains(CAM_PW));
    let r = call(
        app,
        &api,
        "/api/cameras",
        viewer.req("GET", "/api/cameras"),
        None,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    call(
        app,
        &api,
        "/api/cameras/{name}",
        admin.req("GET", "/api/cameras/front"),
        None,
    )
    .await;
    let r = call(
        app,
        &api,
        "/api/cameras/{name}",
        viewer.req("GET", "/api/cameras/yard"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let spec = json!({
        "name": "porch",
        "url": "rtsp://127.0.0.1:9/porch",
        "username": "cam",
        "password": "porch-pw-123",
        "record": {"mode": "motion", "pre_roll_s": 3, "post_roll_s": 5},
        "motion": {"zones": [{"name": "door", "points": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}]},
    });
    let r = call(
        app,
        &api,
        "/api/cameras",
        admin.req("POST", "/api/cameras"),
        Some(spec.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let mut back = r.json();
    let r = call(
        app,
        &api,
        "/api/cameras",
        admin.req("POST", "/api/cameras"),
        Some(spec),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = call(
        app,
        &api,
        "/api/cameras",
        viewer.req("POST", "/api/cameras"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // What was answered can be sent back (the read-only fields are ignored).
    back["audio"] = json!(false);
    let r = call(
        app,
        &api,
        "/api/cameras/{name}",
        admin.req("PUT", "/api/cameras/porch"),
        Some(back),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["has_password"], true);
    let r = call(
        app,
        &api,
        "/api/cameras/{name}",
        admin.req("PUT", "/api/cameras/porch"),
        Some(json!({"name": "other", "url": "rtsp://127.0.0.1:9/x"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        app,
        &api,
        "/api/cameras/test",
        admin.req("POST", "/api/cameras/test"),
        Some(json!({"name": "t", "url": "rtsp://127.0.0.1:9/t"})),
    )
    .await;
    assert!(
        r.status.is_client_error() || r.status.is_server_error(),
        "{}",
        r.text()
    );
    let r = call(
        app,
        &api,
        "/api/cameras/{name}/snapshot.jpg",
        admin.req("GET", "/api/cameras/front/snapshot.jpg"),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the camera is offline"
    );
    let r = call(
        app,
        &api,
        "/api/cameras/{name}",
        admin.req("DELETE", "/api/cameras/porch"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(
        app,
        &api,
        "/api/cameras/{name}",
        admin.req("DELETE", "/api/cameras/porch"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // System status, with what the rest of Vigil adds.
    let r = call(
        app,
        &api,
        "/api/system",
        viewer.req("GET", "/api/system"),
        None,
    )
    .await;
    assert_eq!(r.json()["alerts"]["mqtt"], "off");
    assert_eq!(r.json()["cameras"].as_array().unwrap().len(), 1);

    // Motion events and their thumbnails.
    let store = e.state.nvr.event_store();
    let t = 1_700_000_000_000_000;
    let bbox = NormBox {
        x: 0.1,
        y: 0.2,
        w: 0.3,
        h: 0.4,
    };
    let done = store
        .insert_start(
            "front",
            &["door".into()],
            t,
            0.5,
            Some(bbox),
            Some(vec![0xff, 0xd8, 0xff, 0xd9]),
        )
        .unwrap();
    store
        .finish(done.id, t + 5_000_000, 0.75, Some(bbox))
        .unwrap();
    store
        .insert_start("yard", &[], t + 60_000_000, 0.3, None, None)
        .unwrap();
    let r = call(
        app,
        &api,
        "/api/events",
        admin.req("GET", "/api/events"),
        None,
    )
    .await;
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    call(
        app,
        &api,
        "/api/events",
        viewer.req("GET", "/api/events?camera=front&limit=5"),
        None,
    )
    .await;
    let r = call(
        app,
        &api,
        "/api/events",
        viewer.req("GET", "/api/events?camera=yard"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        app,
        &api,
        "/api/events",
        admin.req("GET", "/api/events?limit=many"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let thumb = "/api/events/{id}/thumbnail.jpg";
    let r = call(
        app,
        &api,
        thumb,
        viewer.req("GET", &format!("/api/events/{}/thumbnail.jpg", done.id)),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        app,
        &api,
        thumb,
        admin.req("GET", "/api/events/999/thumbnail.jpg"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The timeline of a camera with nothing recorded, and its refusals.
    let rec = "/api/cameras/{name}/recordings";
    let r = call(
        app,
        &api,
        rec,
        viewer.req("GET", "/api/cameras/front/recordings?start_us=1&end_us=2"),
        None,
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"ranges": [], "cloud_ranges": [], "gaps": []})
    );
    let r = call(
        app,
        &api,
        rec,
        viewer.req("GET", "/api/cameras/yard/recordings?start_us=1&end_us=2"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        app,
        &api,
        rec,
        admin.req("GET", "/api/cameras/front/recordings"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let export = "/api/cameras/{name}/export.mp4";
    let r = call(
        app,
        &api,
        export,
        admin.req("GET", "/api/cameras/front/export.mp4?start_us=1&end_us=2"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Live: everything but the upgrade itself (media_live_nvr.rs does that).
    let live = "/api/cameras/{name}/live";
    let r = call(
        app,
        &api,
        live,
        viewer.req("GET", "/api/cameras/yard/live"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(
        app,
        &api,
        live,
        admin.req("GET", "/api/cameras/nosuch/live"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        app,
        &api,
        live,
        admin.req("GET", "/api/cameras/front/live?stream=x"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = call(
        app,
        &api,
        live,
        admin.req("GET", "/api/cameras/front/live"),
        None,
    )
    .await;
    assert!(r.status.is_client_error(), "no upgrade asked: {}", r.status);

    // The web app's own files.
    call(app, &api, "/", req("GET", "/"), None).await;
    call(
        app,
        &api,
        "/manifest.webmanifest",
        req("GET", "/manifest.webmanifest"),
        None,
    )
    .await;
}
