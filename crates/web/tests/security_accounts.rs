//! Security tests of accounts: setup token, login throttling, session fixation, password
//! change, logout, API tokens, default passwords.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::{header, Request, StatusCode};
use common::*;
use serde_json::json;

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
async fn open_streams_can_tell_when_their_login_ends() {
    use vigil_web::auth::{Credential, Identity};
    let e = env().await;
    let v = login(&e.app, "viewer", VIEWER_PW).await;
    let session = e.state.accounts.session(&v.cookie).unwrap().unwrap();
    let user = e.state.accounts.users.get("viewer").unwrap().unwrap();
    let id = Identity {
        user: vigil_web::CurrentUser::from_user(user),
        credential: Credential::Session(session),
    };
    assert!(id.still_valid(&e.state, Some("front")));
    assert!(!id.still_valid(&e.state, Some("yard")));
    // Access narrowed by an admin: the stream of that camera must end.
    e.state
        .accounts
        .users
        .update("viewer", None, Some(Some(vec!["yard".into()])))
        .unwrap();
    assert!(!id.still_valid(&e.state, Some("front")));
    assert!(id.still_valid(&e.state, Some("yard")));
    let r = send(&e.app, v.req("POST", "/api/logout"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(!id.still_valid(&e.state, None));
}

/// Issue 17 item 5: wrong passwords sent at once from one address used to pass the throttle
/// check together and all be hashed (argon2), the failures counted only afterwards. Each login
/// now takes its throttle slot before hashing: only the three free failures and the one that
/// opens the window are verified, the rest get 429 unverified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_are_throttled_before_hashing() {
    let e = env().await;
    let before = e.state.accounts.users.password_verifications();
    let guesses = (0..12).map(|i| {
        send(
            &e.app,
            req("POST", "/api/login"),
            Some(json!({"username": "admin", "password": format!("wrong guess {i}")})),
        )
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    let verified = e.state.accounts.users.password_verifications() - before;
    assert_eq!(verified, 4, "{statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        8,
        "{statuses:?}"
    );
}

/// Scoped API tokens (issue 16): a token opens what its scopes and cameras say and never
/// more than its user; viewers make their own; a person's account routes refuse tokens.
#[tokio::test]
async fn scoped_tokens_open_only_their_scopes_and_cameras() {
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let viewer = login(&e.app, "viewer", VIEWER_PW).await;
    let bearer = |token: &str, m: &str, p: &str| {
        Request::builder()
            .method(m)
            .uri(p)
            .header(header::HOST, HOST)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
    };
    let make = |client: &Client, body: serde_json::Value| {
        let r = client.req("POST", "/api/tokens");
        let app = e.app.clone();
        async move { send(&app, r, Some(body)).await }
    };

    // A viewer can make a view-only token for themselves, but nothing beyond them.
    let r = make(&viewer, json!({"name": "display", "scopes": ["view"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["scopes"], json!(["view"]));
    assert!(r.json()["expires_us"].as_i64().is_some());
    let display = r.json()["token"].as_str().unwrap().to_owned();
    for (body, why) in [
        (json!({"name": "x", "scopes": ["admin"]}), "admin scope"),
        (json!({"name": "x", "scopes": ["cameras"]}), "cameras scope"),
        (
            json!({"name": "x", "cameras": ["yard"]}),
            "a camera they cannot view",
        ),
        (json!({"name": "x", "expires_in_days": 0}), "no lifetime"),
        (json!({"name": "x", "scopes": []}), "no scope"),
    ] {
        let r = make(&viewer, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.text());
    }
    let r = make(&viewer, json!({"name": "x", "username": "admin"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a token for someone else");

    // The view token: its camera, read-only; no share, no admin, no account routes.
    let r = send(&e.app, bearer(&display, "GET", "/api/cameras"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = send(&e.app, bearer(&display, "GET", "/api/cameras/yard"), None).await;
    assert!(
        matches!(r.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{}",
        r.status
    );
    let r = send(
        &e.app,
        bearer(&display, "POST", "/api/shares"),
        Some(json!({"camera": "front"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("\\\"share\\\" scope"), "{}", r.text());
    let r = send(
        &e.app,
        bearer(&display, "POST", "/api/account/password"),
        Some(json!({"current": VIEWER_PW, "new": "another long pass phrase"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("sign in instead"), "{}", r.text());
    let r = send(&e.app, bearer(&display, "GET", "/api/tokens"), None).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a token cannot list tokens"
    );

    // An admin's token limited to one camera is no admin; one with only the cameras scope
    // manages cameras and nothing else; a view token of an admin changes nothing.
    let r = make(
        &admin,
        json!({"name": "front only", "scopes": ["view", "admin"], "cameras": ["front"]}),
    )
    .await;
    let front_only = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(&e.app, bearer(&front_only, "GET", "/api/users"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&e.app, bearer(&front_only, "GET", "/api/cameras"), None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = make(&admin, json!({"name": "installer", "scopes": ["cameras"]})).await;
    let installer = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(
        &e.app,
        bearer(&installer, "DELETE", "/api/cameras/yard"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = send(&e.app, bearer(&installer, "GET", "/api/users"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = make(&admin, json!({"name": "ro", "scopes": ["view"]})).await;
    let ro = r.json()["token"].as_str().unwrap().to_owned();
    let r = send(&e.app, bearer(&ro, "DELETE", "/api/cameras/front"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Lists: the viewer sees their own token only; an admin sees all four.
    let r = send(&e.app, viewer.req("GET", "/api/tokens"), None).await;
    let mine = r.json();
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["username"], "viewer");
    let r = send(&e.app, admin.req("GET", "/api/tokens"), None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 4);
    // A viewer cannot delete an admin's token (404, ids not confirmed), but their own.
    let admins = r.json()[1]["id"].as_str().unwrap().to_owned();
    let r = send(
        &e.app,
        viewer.req("DELETE", &format!("/api/tokens/{admins}")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let own = mine[0]["id"].as_str().unwrap();
    let r = send(
        &e.app,
        viewer.req("DELETE", &format!("/api/tokens/{own}")),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send(&e.app, bearer(&display, "GET", "/api/cameras"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Creation is audited with what was granted.
    let audit = send(&e.app, admin.req("GET", "/api/audit"), None).await;
    assert!(
        audit.text().contains("view,admin cameras front"),
        "{}",
        audit.text()
    );

    // A demoted user's full token is demoted with them: rights are re-read per request.
    let u = &e.state.accounts.users;
    u.add("boss", "a long boss pass phrase", vigil_auth::Role::Admin)
        .unwrap();
    let full = token(&e.state.accounts, "boss", "view,share,cameras,admin");
    let r = send(&e.app, bearer(&full, "GET", "/api/users"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    u.update(
        "boss",
        Some(vigil_auth::Role::Viewer),
        Some(Some(vec!["front".into()])),
    )
    .unwrap();
    let r = send(&e.app, bearer(&full, "GET", "/api/users"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(&e.app, bearer(&full, "GET", "/api/cameras"), None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1);
}

/// The login's second step with codes computed by an independent TOTP (Python's hmac):
/// enrolment, a code accepted once, a code two steps off refused, a recovery code once,
/// failures throttled like passwords, and the policy that sends a user to enrol first.
#[tokio::test]
async fn a_second_factor_is_needed_after_the_password_and_codes_work_once() {
    use vigil_testkit::totp;
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let r = send(
        &e.app,
        admin.req("POST", "/api/account/second-factor/totp"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let secret = r.json()["secret"].as_str().unwrap().to_owned();
    assert!(r.json()["qr_svg"].as_str().unwrap().starts_with("<?xml"));
    let r = send(
        &e.app,
        admin.req("POST", "/api/account/second-factor/totp/confirm"),
        Some(json!({"code": "000000"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let now = totp::now();
    let r = send(
        &e.app,
        admin.req("POST", "/api/account/second-factor/totp/confirm"),
        Some(json!({"code": totp::code(&secret, now)})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let recovery: Vec<String> = serde_json::from_value(r.json()["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    // The password alone: a ticket, no session.
    let password_step = || async {
        let r = send(
            &e.app,
            req("POST", "/api/login"),
            Some(json!({"username": "admin", "password": ADMIN_PW})),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        assert_eq!(r.json()["second_factor"], "totp");
        r.json()["ticket"].as_str().unwrap().to_owned()
    };
    let second = |ticket: String, body: serde_json::Value| {
        let app = e.app.clone();
        async move {
            let mut b = body;
            b["ticket"] = json!(ticket);
            send(&app, req("POST", "/api/login/second-factor"), Some(b)).await
        }
    };
    let ticket = password_step().await;
    // The next step's code (the confirming one is spent), once.
    let next = totp::code(&secret, now + 30);
    let r = second(ticket.clone(), json!({"code": next})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(cookie_of(&r).len() > 20);
    // A recovery code, typed loosely, works once.
    let loose = recovery[0].to_uppercase().replace('-', " ");
    let r = second(password_step().await, json!({"recovery_code": loose})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Refused: the replayed code, codes two steps off, the used recovery code, a forged
    // ticket. (After the first failure the throttle may answer 429 instead of 401.)
    let ticket = password_step().await;
    let r = second(ticket.clone(), json!({"code": next})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a replayed code");
    let refused = |r: &Resp| {
        matches!(
            r.status,
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
        )
    };
    for off in [now - 60, now + 90] {
        let r = second(ticket.clone(), json!({"code": totp::code(&secret, off)})).await;
        assert!(refused(&r), "two steps off: {}", r.status);
    }
    let r = second(ticket.clone(), json!({"recovery_code": recovery[0]})).await;
    assert!(refused(&r), "a used recovery code: {}", r.status);
    let r = second("forged".into(), json!({"recovery_code": recovery[1]})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let s = send(&e.app, admin.req("GET", "/api/account/second-factor"), None).await;
    assert_eq!(s.json()["recovery_codes_left"], 9);
    // Wrong codes count in the login throttle: soon 429, whatever the ticket.
    let mut throttled = false;
    for _ in 0..12 {
        let t = password_step_or_429(&e.app).await;
        let Some(t) = t else {
            throttled = true;
            break;
        };
        let r = second(t, json!({"code": "123456"})).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert!(throttled, "wrong codes were never throttled");

    let audit = send(&e.app, admin.req("GET", "/api/audit"), None).await;
    for action in ["second_factor_enrolled", "second_factor_failed"] {
        assert!(audit.text().contains(action), "{action} not audited");
    }
}

/// `POST /api/login` for the admin: the ticket, or `None` when throttled.
async fn password_step_or_429(app: &axum::Router) -> Option<String> {
    let r = send(
        app,
        req("POST", "/api/login"),
        Some(json!({"username": "admin", "password": ADMIN_PW})),
    )
    .await;
    if r.status == StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    Some(r.json()["ticket"].as_str().unwrap().to_owned())
}

/// The policy: with "everyone", a viewer without a second factor is sent to enrol — only the
/// session and the enrolment answer until then; an admin's reset sends them back.
#[tokio::test]
async fn the_policy_sends_a_user_without_a_second_factor_to_enrol() {
    use vigil_testkit::totp;
    let e = env().await;
    let admin = login(&e.app, "admin", ADMIN_PW).await;
    let r = send(
        &e.app,
        admin.req("PUT", "/api/settings/second-factor"),
        Some(json!({"require": "everyone"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let viewer = login(&e.app, "viewer", VIEWER_PW).await;
    let s = send(&e.app, viewer.req("GET", "/api/session"), None).await;
    assert_eq!(s.json()["must_enrol"], true);
    let r = send(&e.app, viewer.req("GET", "/api/cameras"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text().contains("second factor is required"),
        "{}",
        r.text()
    );
    let r = send(
        &e.app,
        viewer.req("POST", "/api/account/second-factor/totp"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let vs = r.json()["secret"].as_str().unwrap().to_owned();
    let r = send(
        &e.app,
        viewer.req("POST", "/api/account/second-factor/totp/confirm"),
        Some(json!({"code": totp::code(&vs, totp::now())})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = send(&e.app, viewer.req("GET", "/api/cameras"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    // The policy covers the admin too: refused until they enrol.
    let r = send(&e.app, admin.req("GET", "/api/users"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &e.app,
        admin.req("POST", "/api/account/second-factor/totp"),
        None,
    )
    .await;
    let s = r.json()["secret"].as_str().unwrap().to_owned();
    let r = send(
        &e.app,
        admin.req("POST", "/api/account/second-factor/totp/confirm"),
        Some(json!({"code": totp::code(&s, totp::now())})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // An admin resets the viewer's factor: enrol again.
    let r = send(
        &e.app,
        admin.req("POST", "/api/users/viewer/reset-second-factor"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send(&e.app, viewer.req("GET", "/api/cameras"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let audit = send(&e.app, admin.req("GET", "/api/audit"), None).await;
    for action in ["second_factor_policy", "second_factor_removed"] {
        assert!(audit.text().contains(action), "{action} not audited");
    }
    // New recovery codes and turning it off both need the password.
    let path = "/api/account/second-factor/recovery-codes";
    let r = send(
        &e.app,
        admin.req("POST", path),
        Some(json!({"password": "wrong"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = send(
        &e.app,
        admin.req("POST", path),
        Some(json!({"password": ADMIN_PW})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["recovery_codes"].as_array().unwrap().len(), 10);
    let r = send(
        &e.app,
        admin.req("POST", "/api/account/second-factor/remove"),
        Some(json!({"password": ADMIN_PW})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send(&e.app, admin.req("GET", "/api/account/second-factor"), None).await;
    assert_eq!(r.json()["totp"], false);
    assert_eq!(r.json()["recovery_codes_left"], 0);
    // The policy still covers the admin: back to enrolment.
    let r = send(&e.app, admin.req("GET", "/api/users"), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// Forged passkey sign-ins count in the login throttle like wrong passwords (per address),
/// and during the penalty no new passkey ceremony starts; each failure is audited. (The
/// ceremonies themselves run in Chromium with a virtual authenticator:
/// crates/vigil/tests/browser.rs.)
#[tokio::test]
async fn forged_passkey_sign_ins_are_throttled_and_audited() {
    let e = env().await;
    let forged = json!({
        "ticket": "not-a-ticket",
        "credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA"}},
    });
    // Outside a penalty the options answer (here: passkeys are off without a public URL),
    // and the throttle is free afterwards.
    for _ in 0..2 {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            send(&e.app, req("POST", "/api/login/passkey/options"), None),
        )
        .await
        .expect("passkey options answer");
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
        assert!(r.text().contains("passkeys are off"), "{}", r.text());
    }
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let r = send(
            &e.app,
            req("POST", "/api/login/passkey"),
            Some(forged.clone()),
        )
        .await;
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED, "{statuses:?}");
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    let r = send(&e.app, req("POST", "/api/login/passkey/options"), None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let admin = {
        // Another address: the throttle is per address.
        let r = send_from(
            &e.app,
            req("POST", "/api/login"),
            Some(json!({"username": "admin", "password": ADMIN_PW})),
            [192, 0, 2, 99],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r
    };
    let cookie = cookie_of(&admin);
    let audit = send_from(
        &e.app,
        req("GET", "/api/audit").header(header::COOKIE, format!("vigil_session={cookie}")),
        None,
        [192, 0, 2, 99],
    )
    .await;
    let failures = audit
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["action"] == "login_failed" && a["detail"].as_str().unwrap().starts_with("passkey")
        })
        .count();
    assert!(failures >= 1, "{}", audit.text());
}
