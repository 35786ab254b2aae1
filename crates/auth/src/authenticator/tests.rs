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
    // After the delay the right password works and clears alice's count; the address keeps
    // its own (decaying) count, since a success proves nothing about the other guesses.
    assert!(matches!(
        a.check(&req("DESCRIBE", URI, Some(&good), now)),
        AuthDecision::Allowed { .. }
    ));
    let mut t = a.throttle();
    assert_eq!(t.name_failures("alice", now), 0);
    assert_eq!(t.failures(peer(), now), 5);
    assert_eq!(
        t.failures(peer(), now + LoginThrottle::LEAK_INTERVAL * 5),
        0
    );
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

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// Issue 17 item 5: concurrent wrong passwords from one address used to be checked against the
/// throttle all at once, then all verified (argon2), and only then counted; the right password
/// sent while they were being hashed got in. Each attempt now takes its slot before hashing.
#[test]
fn concurrent_wrong_passwords_are_throttled_before_verification() {
    let (_d, a) = setup();
    let a = std::sync::Arc::new(a);
    let before = a.store().password_verifications();
    const GUESSES: usize = 12;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(GUESSES));
    let guesses: Vec<_> = (0..GUESSES)
        .map(|i| {
            let (a, barrier) = (a.clone(), barrier.clone());
            std::thread::spawn(move || {
                let h = basic("alice", &format!("wrong guess {i}"));
                let mut r = req("GET", "/snapshot.jpg", Some(&h), t0());
                r.secure = true;
                barrier.wait();
                a.check(&r)
            })
        })
        .collect();
    // Once the first wrong guesses are being hashed, the right password from the same address.
    let started = std::time::Instant::now();
    while a.store().password_verifications() - before < LoginThrottle::FREE_FAILURES as u64 + 1 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "guesses never started"
        );
        std::thread::yield_now();
    }
    let h = basic("alice", PW);
    let mut right = req("GET", "/snapshot.jpg", Some(&h), t0());
    right.secure = true;
    let d = a.check(&right);
    let outcomes: Vec<_> = guesses.into_iter().map(|g| g.join().unwrap()).collect();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, AuthDecision::Denied { .. })),
        "{outcomes:?}"
    );
    assert!(
        matches!(d, AuthDecision::Denied { .. }),
        "the right password slipped in while the guesses were being verified: {d:?}"
    );
    assert_eq!(
        a.store().password_verifications() - before,
        u64::from(LoginThrottle::FREE_FAILURES) + 1,
        "only the free failures and the one that opened the window may be verified"
    );
    // No lock-out: after the window the right password works.
    right.now = t0() + LoginThrottle::MAX_DELAY;
    assert!(matches!(a.check(&right), AuthDecision::Allowed { .. }));
}

/// Issue 17 item 6: an attacker who owns a viewer account logs in with it between guesses at
/// the admin's password. That success used to reset the address's count, so the guesses were
/// never slowed. Now only alice's own success clears alice's count.
#[test]
fn interleaved_successes_of_another_account_do_not_reset_the_target() {
    let (_d, a) = setup();
    a.store()
        .add("bob", "bob's own password", Role::Viewer)
        .unwrap();
    let mut now = t0();
    let nonce = nonce_of(&a.check(&req("DESCRIBE", URI, None, now)));
    let mut guess_delays = Vec::new();
    for i in 0..8 {
        let guess = client_header(
            Algorithm::Sha256,
            "alice",
            &format!("guess {i}"),
            "DESCRIBE",
            URI,
            &nonce,
            true,
        );
        let AuthDecision::Denied { delay, .. } = a.check(&req("DESCRIBE", URI, Some(&guess), now))
        else {
            panic!("a wrong guess was allowed")
        };
        guess_delays.push(delay.as_millis());
        now += delay;
        let own = client_header(
            Algorithm::Sha256,
            "bob",
            "bob's own password",
            "DESCRIBE",
            URI,
            &nonce,
            true,
        );
        let d = a.check(&req("DESCRIBE", URI, Some(&own), now));
        assert!(matches!(d, AuthDecision::Allowed { .. }), "{d:?}");
    }
    assert_eq!(guess_delays, [0, 0, 0, 250, 500, 1000, 2000, 4000]);
}

/// The rightful owner, at an address that never failed, still gets in while an attacker keeps
/// the account's name throttle closed from elsewhere; the attacker's addresses are refused.
#[test]
fn owner_gets_in_while_the_name_throttle_is_held_closed() {
    let (_d, a) = setup();
    let now = t0();
    let nonce = nonce_of(&a.check(&req("DESCRIBE", URI, None, now)));
    let good = client_header(
        Algorithm::Sha256,
        "alice",
        PW,
        "DESCRIBE",
        URI,
        &nonce,
        true,
    );
    // The owner has logged in from this address before.
    assert!(matches!(
        a.check(&req("DESCRIBE", URI, Some(&good), now)),
        AuthDecision::Allowed { .. }
    ));
    let mut attacker = req("DESCRIBE", URI, None, now);
    let guesses: Vec<String> = (0..5)
        .map(|i| {
            client_header(
                Algorithm::Sha256,
                "alice",
                &format!("guess {i}"),
                "DESCRIBE",
                URI,
                &nonce,
                true,
            )
        })
        .collect();
    // Five attacker addresses, one guess each: the fourth opens the name window, and the
    // fifth, a fresh address, is refused unverified (a botnet gains nothing from new ones).
    for (i, g) in guesses.iter().enumerate() {
        attacker.peer = IpAddr::from([203, 0, 113, i as u8 + 1]);
        attacker.authorization = Some(g);
        assert!(matches!(a.check(&attacker), AuthDecision::Denied { .. }));
    }
    assert!(a.throttle().name_failures("alice", now) >= 4);
    // An attacker address that has failed before is refused unverified while it is open.
    attacker.peer = IpAddr::from([203, 0, 113, 1]);
    let AuthDecision::Denied { delay, .. } = a.check(&attacker) else {
        panic!()
    };
    assert!(delay > Duration::ZERO);
    assert_eq!(
        a.throttle().name_failures("alice", now),
        4,
        "a refused attempt is not counted"
    );
    // The owner's known address is let through while the window is held closed.
    assert!(matches!(
        a.check(&req("DESCRIBE", URI, Some(&good), now)),
        AuthDecision::Allowed { .. }
    ));
}

/// Issue 17 item 2: `--digest sha256` refuses MD5 and offers only SHA-256; a response without
/// `qop=auth` is refused unless the policy is `legacy`, and for SHA-256 always.
#[test]
fn digest_policy_refuses_md5_and_missing_qop() {
    let cases = [
        // (policy, algorithm, qop, accepted)
        (DigestPolicy::Sha256, Algorithm::Sha256, true, true),
        (DigestPolicy::Sha256, Algorithm::Md5, true, false),
        (DigestPolicy::Sha256, Algorithm::Md5, false, false),
        (DigestPolicy::Sha256, Algorithm::Sha256, false, false),
        (DigestPolicy::Md5, Algorithm::Md5, true, true),
        (DigestPolicy::Md5, Algorithm::Md5, false, false),
        (DigestPolicy::Md5, Algorithm::Sha256, false, false),
        (DigestPolicy::Legacy, Algorithm::Md5, false, true),
        (DigestPolicy::Legacy, Algorithm::Sha256, false, false),
    ];
    for (policy, alg, qop, accepted) in cases {
        let (_d, a) = setup();
        let a = a.with_digest_policy(policy);
        let first = a.check(&req("DESCRIBE", URI, None, t0()));
        let AuthDecision::Denied { challenges, .. } = &first else {
            panic!()
        };
        let md5_offered = challenges.iter().any(|c| c.contains("algorithm=MD5"));
        assert_eq!(md5_offered, policy != DigestPolicy::Sha256, "{policy}");
        let nonce = nonce_of(&first);
        let h = client_header(alg, "alice", PW, "DESCRIBE", URI, &nonce, qop);
        let d = a.check(&req("DESCRIBE", URI, Some(&h), t0()));
        assert_eq!(
            matches!(d, AuthDecision::Allowed { .. }),
            accepted,
            "{policy} {alg:?} qop={qop}: {d:?}"
        );
        // A refusal by policy verifies nothing and so costs the account nothing.
        assert_eq!(a.throttle().name_failures("alice", t0()), 0);
    }
    assert_eq!("sha256".parse::<DigestPolicy>(), Ok(DigestPolicy::Sha256));
    assert_eq!(DigestPolicy::default(), DigestPolicy::Legacy);
    assert!("sha1".parse::<DigestPolicy>().is_err());
}

/// Issue 17 item 1: an `Authorization` captured on one connection, replayed on another, gets a
/// stale challenge (answerable only with the password), not access; it counts as neither a
/// failure nor a success of the replayer's address.
#[test]
fn replay_on_another_connection_is_refused() {
    let (_d, a) = setup();
    let r = req("DESCRIBE", URI, None, t0());
    let nonce = nonce_of(&a.check_on_connection(&r, 1));
    let h = client_header(
        Algorithm::Sha256,
        "alice",
        PW,
        "DESCRIBE",
        URI,
        &nonce,
        true,
    );
    let victim = req("DESCRIBE", URI, Some(&h), t0());
    assert!(matches!(
        a.check_on_connection(&victim, 1),
        AuthDecision::Allowed { .. }
    ));
    let mut replay = victim.clone();
    replay.peer = "203.0.113.66".parse().unwrap();
    for d in [a.check_on_connection(&replay, 2), a.check(&replay)] {
        let AuthDecision::Denied { challenges, delay } = d else {
            panic!("replay accepted: {d:?}")
        };
        assert!(challenges[0].ends_with("stale=true"));
        assert_eq!(delay, Duration::ZERO);
    }
    assert_eq!(a.throttle().failures(replay.peer, t0()), 0);
}

/// Failures checked outside (ONVIF WS-UsernameToken) share the throttle with Digest: after
/// three UsernameToken failures the fourth costs 250 ms, a Digest guess inside the penalty is
/// not even looked at, and neither is the next token; requests without credentials and right
/// ones cost nothing.
#[test]
fn external_failures_share_the_throttle_with_digest() {
    let (_d, a) = setup();
    let mut now = t0();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let (ran, delay) = a
            .throttled(peer(), now, || (true, ExternalOutcome::Failed))
            .expect("not in a penalty yet");
        assert!(ran);
        delays.push(delay.as_millis());
        now += delay;
    }
    assert_eq!(delays, [0, 0, 0, 250]);
    // Inside the next penalty (it started at the 4th failure) the verification does not run.
    let inside = now - Duration::from_millis(100);
    assert_eq!(
        a.throttled(peer(), inside, || -> ((), ExternalOutcome) {
            panic!("verified during the penalty")
        }),
        Err(Duration::from_millis(100))
    );
    let nonce = nonce_of(&a.check(&req("DESCRIBE", URI, None, inside)));
    let good = client_header(Algorithm::Md5, "alice", PW, "DESCRIBE", URI, &nonce, true);
    assert!(matches!(
        a.check(&req("DESCRIBE", URI, Some(&good), inside)),
        AuthDecision::Denied { .. }
    ));
    // After it: no credentials and right credentials are free, and leave the count alone.
    let before = a.throttle().failures(peer(), now);
    for outcome in [ExternalOutcome::NoCredentials, ExternalOutcome::Succeeded] {
        assert_eq!(
            a.throttled(peer(), now, || ((), outcome)),
            Ok(((), Duration::ZERO))
        );
    }
    assert_eq!(a.throttle().failures(peer(), now), before);
}
