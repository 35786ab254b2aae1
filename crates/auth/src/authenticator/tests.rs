use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::*;
use crate::digest::{self, Algorithm, DigestCredentials, Qop};

const PW: &str = "correct horse battery";
const URI: &str = "rtsp://192.0.2.10:8554/main";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn setup() -> (tempfile::TempDir, Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    let store = UserStore::open(dir.path()).unwrap();
    store.add("alice", PW, Role::Admin).unwrap();
    (
        dir,
        Authenticator::with_secret(store, [1; 32], NONCE_LIFETIME),
    )
}

fn peer() -> IpAddr {
    "198.51.100.4".parse().unwrap()
}

fn req<'a>(
    method: &'a str,
    uri: &'a str,
    auth: Option<&'a str>,
    now: SystemTime,
) -> AuthRequest<'a> {
    AuthRequest {
        method,
        uri,
        authorization: auth,
        peer: peer(),
        secure: false,
        now,
    }
}

/// The nonce of the first challenge of a denial.
fn nonce_of(d: &AuthDecision) -> String {
    let AuthDecision::Denied { challenges, .. } = d else {
        panic!("{d:?}")
    };
    let c = &challenges[0];
    let start = c.find("nonce=\"").unwrap() + 7;
    c[start..].split('"').next().unwrap().to_owned()
}

/// What a client computes: qop=auth when `qop`, else RFC 2069 style.
fn client_header(
    alg: Algorithm,
    user: &str,
    pw: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: bool,
) -> String {
    let mut c = DigestCredentials {
        username: user.into(),
        realm: "vigil".into(),
        nonce: nonce.into(),
        uri: uri.into(),
        response: String::new(),
        algorithm: alg,
        qop: qop.then_some(Qop::Auth),
        nc: qop.then_some(1),
        cnonce: qop.then(|| "0a4f113b".to_owned()),
        opaque: None,
    };
    c.response = digest::expected_response(&digest::ha1(alg, user, "vigil", pw), method, &c);
    c.to_header()
}

#[test]
fn challenge_order_and_basic_only_when_secure() {
    let (_d, a) = setup();
    let AuthDecision::Denied { challenges, delay } = a.check(&req("DESCRIBE", URI, None, t0()))
    else {
        panic!()
    };
    assert_eq!(delay, Duration::ZERO);
    assert_eq!(challenges.len(), 2);
    assert!(challenges[0].contains("algorithm=SHA-256"));
    assert!(challenges[1].contains("algorithm=MD5"));
    let mut r = req("GET", "/snapshot.jpg", None, t0());
    r.secure = true;
    let AuthDecision::Denied { challenges, .. } = a.check(&r) else {
        panic!()
    };
    assert_eq!(challenges.last().unwrap(), "Basic realm=\"vigil\"");
}

#[test]
fn digest_sha256_md5_and_rfc2069_accepted() {
    let (_d, a) = setup();
    let nonce = nonce_of(&a.check(&req("DESCRIBE", URI, None, t0())));
    for (alg, qop) in [
        (Algorithm::Sha256, true),
        (Algorithm::Md5, true),
        (Algorithm::Md5, false),
    ] {
        let h = client_header(alg, "alice", PW, "DESCRIBE", URI, &nonce, qop);
        let d = a.check(&req(
            "DESCRIBE",
            URI,
            Some(&h),
            t0() + Duration::from_secs(1),
        ));
        assert_eq!(
            d,
            AuthDecision::Allowed {
                user: "alice".into(),
                role: Role::Admin
            },
            "{alg:?} {qop}"
        );
    }
}

#[test]
fn wrong_password_wrong_uri_and_other_method_rejected() {
    let (_d, a) = setup();
    let nonce = nonce_of(&a.check(&req("DESCRIBE", URI, None, t0())));
    let wrong_pw = client_header(
        Algorithm::Sha256,
        "alice",
        "not the password",
        "DESCRIBE",
        URI,
        &nonce,
        true,
    );
    assert!(matches!(
        a.check(&req("DESCRIBE", URI, Some(&wrong_pw), t0())),
        AuthDecision::Denied { .. }
    ));
    // Signed for /main, presented for /sub.
    let h = client_header(
        Algorithm::Sha256,
        "alice",
        PW,
        "DESCRIBE",
        URI,
        &nonce,
        true,
    );
    let sub = "rtsp://192.0.2.10:8554/sub";
    assert!(matches!(
        a.check(&req("DESCRIBE", sub, Some(&h), t0())),
        AuthDecision::Denied { .. }
    ));
    // Replay of a DESCRIBE response as a SETUP.
    assert!(matches!(
        a.check(&req("SETUP", URI, Some(&h), t0())),
        AuthDecision::Denied { .. }
    ));
    // Unknown user.
    let ghost = client_header(Algorithm::Md5, "ghost", PW, "DESCRIBE", URI, &nonce, false);
    assert!(matches!(
        a.check(&req("DESCRIBE", URI, Some(&ghost), t0())),
        AuthDecision::Denied { .. }
    ));
    // Forged nonce with the right password is only "stale"; forged nonce never grants access.
    let forged = client_header(Algorithm::Md5, "alice", PW, "DESCRIBE", URI, "AAAA", false);
    assert!(matches!(
        a.check(&req("DESCRIBE", URI, Some(&forged), t0())),
        AuthDecision::Denied { .. }
    ));
}

#[test]
fn expired_nonce_gives_stale_challenge() {
    let (_d, a) = setup();
    let nonce = nonce_of(&a.check(&req("DESCRIBE", URI, None, t0())));
    let h = client_header(
        Algorithm::Sha256,
        "alice",
        PW,
        "DESCRIBE",
        URI,
        &nonce,
        true,
    );
    let late = t0() + NONCE_LIFETIME + Duration::from_secs(1);
    let AuthDecision::Denied { challenges, delay } = a.check(&req("DESCRIBE", URI, Some(&h), late))
    else {
        panic!()
    };
    assert!(
        challenges.iter().all(|c| c.ends_with("stale=true")),
        "{challenges:?}"
    );
    assert_eq!(delay, Duration::ZERO);
    // A wrong password with an expired nonce is a plain failure, not stale.
    let bad = client_header(
        Algorithm::Sha256,
        "alice",
        "wrong password!",
        "DESCRIBE",
        URI,
        &nonce,
        true,
    );
    let AuthDecision::Denied { challenges, .. } = a.check(&req("DESCRIBE", URI, Some(&bad), late))
    else {
        panic!()
    };
    assert!(!challenges[0].contains("stale"));
}

#[test]
fn basic_refused_on_plain_accepted_on_tls() {
    let (_d, a) = setup();
    let cred = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{PW}"))
    );
    let mut r = req("GET", "/snapshot.jpg", Some(&cred), t0());
    assert!(matches!(a.check(&r), AuthDecision::Denied { .. }));
    r.secure = true;
    assert_eq!(
        a.check(&r),
        AuthDecision::Allowed {
            user: "alice".into(),
            role: Role::Admin
        }
    );
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:admin")
    );
    r.authorization = Some(&wrong);
    assert!(matches!(a.check(&r), AuthDecision::Denied { .. }));
}

#[test]
fn repeated_failures_are_throttled_then_recover() {
    let (_d, a) = setup();
    let nonce = nonce_of(&a.check(&req("DESCRIBE", URI, None, t0())));
    let bad = client_header(
        Algorithm::Md5,
        "alice",
        "guess guess",
        "DESCRIBE",
        URI,
        &nonce,
        true,
    );
    let mut now = t0();
    let mut delays = Vec::new();
    for _ in 0..5 {
        let AuthDecision::Denied { delay, .. } = a.check(&req("DESCRIBE", URI, Some(&bad), now))
        else {
            panic!()
        };
        delays.push(delay.as_millis());
        now += delay;
    }
    assert_eq!(delays, [0, 0, 0, 250, 500]);
    // Inside the penalty window even the right password is not checked.
    let good = client_header(Algorithm::Md5, "alice", PW, "DESCRIBE", URI, &nonce, true);
    let AuthDecision::Denied { delay, .. } = a.check(&req(
        "DESCRIBE",
        URI,
        Some(&good),
        now - Duration::from_millis(100),
    )) else {
        panic!()
    };
    assert_eq!(delay, Duration::from_millis(100));
    // After the delay the right password works, and resets the count.
    assert!(matches!(
        a.check(&req("DESCRIBE", URI, Some(&good), now)),
        AuthDecision::Allowed { .. }
    ));
    let AuthDecision::Denied { delay, .. } = a.check(&req("DESCRIBE", URI, Some(&bad), now)) else {
        panic!()
    };
    assert_eq!(delay, Duration::ZERO);
}

#[test]
fn no_users_gives_hint_and_default_credentials_never_work() {
    let dir = tempfile::tempdir().unwrap();
    let a = Authenticator::new(UserStore::open(dir.path()).unwrap());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:admin")
    );
    let r = AuthRequest {
        method: "GET",
        uri: "/",
        authorization: Some(&basic),
        peer: peer(),
        secure: true,
        now: t0(),
    };
    let AuthDecision::NoUsers { hint, challenges } = a.check(&r) else {
        panic!()
    };
    assert!(hint.contains("vigil user add NAME --data"), "{hint}");
    assert!(hint.contains(&dir.path().display().to_string()));
    assert_eq!(challenges.len(), 3);
}

#[test]
fn garbage_headers_never_allow() {
    let (_d, a) = setup();
    for h in [
        "",
        "Digest",
        "Basic",
        "Basic !!!",
        "Bearer x",
        "Digest username=\"alice\"",
        "Basic YWxpY2U=",
    ] {
        let mut r = req("GET", "/", Some(h), t0());
        r.secure = true;
        assert!(matches!(a.check(&r), AuthDecision::Denied { .. }), "{h:?}");
    }
}
