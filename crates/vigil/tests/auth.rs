//! Authentication as a hostile client sees it: every RTSP method but OPTIONS needs valid Digest
//! credentials, nothing works before the first user exists, no default password works, forwarded
//! headers grant nothing, and the HTTPS snapshot needs credentials too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{ffprobe_streams, run_peer, Camera, CameraOpts, PASSWORD, USER};
use vigil_testkit::rtsp::blocking::RtspConn;
use vigil_testkit::rtsp::digest::{self, Algorithm};
use vigil_testkit::rtsp::{video_control_url, Response};

/// Pairs that ship as defaults on cameras in the field; none may ever work.
const DEFAULT_PAIRS: &[(&str, &str)] = &[
    ("admin", "admin"),
    ("root", "root"),
    ("admin", "12345"),
    ("admin", ""),
    ("admin", "password"),
];

/// Sends `method url` answering the server's challenge of `alg` with `user`/`pass`.
fn with_creds(
    conn: &mut RtspConn,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    user: &str,
    pass: &str,
    alg: Algorithm,
) -> Response {
    conn.request_digest(method, url, headers, user, pass, Some(alg))
}

fn assert_401(resp: &Response, what: &str) {
    assert_eq!(resp.status, 401, "{what}: want 401, got:\n{}", resp.head);
    let challenges = digest::challenges(resp);
    assert!(
        !challenges.is_empty(),
        "{what}: 401 without a Digest challenge:\n{}",
        resp.head
    );
}

/// `curl -k` against the snapshot endpoint: (HTTP status, content type).
fn curl(url: &str, extra: &[&str], out: &Path) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-k", "-s", "-S", "--max-time", "15", "-o"])
        .arg(out)
        .args(["-w", "%{http_code} %{content_type}"])
        .args(extra)
        .arg(url);
    let res = run_peer(&mut cmd, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&res.stdout).into_owned();
    let mut parts = text.splitn(2, ' ');
    let code = parts.next().unwrap_or("").parse().unwrap_or_else(|_| {
        panic!(
            "curl {url}: no status; stdout {text:?}, stderr {}",
            res.stderr
        )
    });
    (code, parts.next().unwrap_or("").trim().to_owned())
}

#[test]
fn fresh_data_dir_answers_401_to_everything_and_prints_the_setup_command() {
    let cam = Camera::start(CameraOpts {
        with_user: false,
        https: true,
        ..CameraOpts::default()
    });
    let data = cam.data.path().display().to_string();
    assert!(
        cam.wait_stderr("vigil user add", Duration::from_secs(10)),
        "no `vigil user add` hint on stderr"
    );
    let stderr = cam.stderr_text();
    let hint = stderr
        .lines()
        .find(|l| l.contains("vigil user add"))
        .unwrap();
    assert!(
        hint.contains("--data") && hint.contains(&data),
        "the hint should name the data dir {data}: {hint}"
    );

    let url = cam.bare_url("main");
    let mut conn = RtspConn::connect(cam.rtsp);
    let opts = conn.request("OPTIONS", &url, &[]);
    assert_eq!(opts.status, 200, "OPTIONS needs no auth:\n{}", opts.head);

    for method in ["DESCRIBE", "SETUP", "PLAY", "GET_PARAMETER", "TEARDOWN"] {
        let r = conn.request(method, &url, &[]);
        assert_401(&r, &format!("{method} without credentials, no user yet"));
    }
    for (user, pass) in DEFAULT_PAIRS.iter().chain(&[(USER, PASSWORD)]) {
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let r = with_creds(&mut conn, "DESCRIBE", &url, &[], user, pass, alg);
            assert_eq!(
                r.status, 401,
                "{user}/{pass} ({alg}) with no user created:\n{}",
                r.head
            );
        }
    }

    let https = cam.https.unwrap();
    let out = cam.data.path().join("snap.jpg");
    let snap = format!("https://{https}/snapshot.jpg");
    assert_eq!(
        curl(&snap, &[], &out).0,
        401,
        "snapshot without credentials"
    );
    for (user, pass) in DEFAULT_PAIRS {
        let creds = format!("{user}:{pass}");
        assert_eq!(
            curl(&snap, &["-u", &creds], &out).0,
            401,
            "snapshot with {creds}, no user created"
        );
    }
}

#[test]
fn every_rtsp_method_but_options_needs_valid_digest() {
    let cam = Camera::start(CameraOpts::default());
    let url = cam.bare_url("main");
    let mut conn = RtspConn::connect(cam.rtsp);

    let opts = conn.request("OPTIONS", &url, &[]);
    assert_eq!(opts.status, 200, "OPTIONS:\n{}", opts.head);

    // The challenge: realm "vigil", SHA-256 offered, MD5 for old clients.
    let r = conn.request("DESCRIBE", &url, &[]);
    assert_401(&r, "DESCRIBE without credentials");
    let challenges = digest::challenges(&r);
    assert!(
        challenges.iter().all(|c| c.realm == "vigil"),
        "{challenges:?}"
    );
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        assert!(
            challenges.iter().any(|c| c.algorithm == alg),
            "no {alg} challenge:\n{}",
            r.head
        );
    }

    // The right credentials work with either algorithm (so the 401s below mean something).
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let mut c = RtspConn::connect(cam.rtsp);
        let d = with_creds(&mut c, "DESCRIBE", &url, &[], USER, PASSWORD, alg);
        assert_eq!(
            d.status, 200,
            "DESCRIBE with valid {alg} digest:\n{}",
            d.head
        );
        assert!(
            String::from_utf8_lossy(&d.body).contains("H264"),
            "SDP without H264: {}",
            String::from_utf8_lossy(&d.body)
        );
    }

    // A forwarded-for header is no credential.
    let r = conn.request("DESCRIBE", &url, &[("X-Forwarded-For", "127.0.0.1".into())]);
    assert_401(&r, "DESCRIBE with X-Forwarded-For: 127.0.0.1");

    // Wrong password, both algorithms.
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let r = with_creds(
            &mut conn,
            "DESCRIBE",
            &url,
            &[],
            USER,
            "wrong-password",
            alg,
        );
        assert_401(&r, &format!("DESCRIBE with a wrong {alg} password"));
    }

    // A valid digest for another URI or method must not be replayed here (RFC 7616 §3.4.6).
    let r = conn.request("DESCRIBE", &url, &[]);
    let ch = digest::challenges(&r).into_iter().next().unwrap();
    let other = cam.bare_url("sub");
    let auth = digest::authorization(&ch, USER, PASSWORD, "DESCRIBE", &other);
    let r = conn.request("DESCRIBE", &url, &[("Authorization", auth)]);
    assert_401(&r, "DESCRIBE with a digest computed for another URI");

    // SETUP and PLAY: learn the control URL and a session with valid credentials, then ask
    // again without them and with wrong ones.
    let mut good = RtspConn::connect(cam.rtsp);
    let d = good.request_digest("DESCRIBE", &url, &[], USER, PASSWORD, None);
    assert_eq!(d.status, 200, "{}", d.head);
    let control = video_control_url(&String::from_utf8_lossy(&d.body), d.content_base(&url));
    let transport = (
        "Transport",
        "RTP/AVP/TCP;unicast;interleaved=0-1".to_owned(),
    );

    let r = conn.request("SETUP", &control, std::slice::from_ref(&transport));
    assert_401(&r, "SETUP without credentials");
    let r = with_creds(
        &mut conn,
        "SETUP",
        &control,
        std::slice::from_ref(&transport),
        USER,
        "wrong-password",
        Algorithm::Sha256,
    );
    assert_401(&r, "SETUP with a wrong password");

    let s = good.request_digest(
        "SETUP",
        &control,
        std::slice::from_ref(&transport),
        USER,
        PASSWORD,
        None,
    );
    assert_eq!(s.status, 200, "SETUP with valid credentials:\n{}", s.head);
    let session = s.session_id().expect("Session header");

    // PLAY on the same connection as the SETUP, without credentials: the session id is no
    // credential either.
    let session_h = ("Session", session.clone());
    let r = good.request("PLAY", &url, std::slice::from_ref(&session_h));
    assert_401(&r, "PLAY with a valid session id but no credentials");
    let r = with_creds(
        &mut good,
        "PLAY",
        &url,
        std::slice::from_ref(&session_h),
        USER,
        "wrong-password",
        Algorithm::Md5,
    );
    assert_401(&r, "PLAY with a wrong password");

    // The rest of the methods, without credentials.
    for method in [
        "PAUSE",
        "TEARDOWN",
        "GET_PARAMETER",
        "SET_PARAMETER",
        "ANNOUNCE",
        "RECORD",
    ] {
        let r = conn.request(method, &url, std::slice::from_ref(&session_h));
        assert_401(&r, &format!("{method} without credentials"));
    }

    let p = good.request_digest(
        "PLAY",
        &url,
        std::slice::from_ref(&session_h),
        USER,
        PASSWORD,
        None,
    );
    assert_eq!(p.status, 200, "PLAY with valid credentials:\n{}", p.head);
}

#[test]
fn default_passwords_never_work() {
    let cam = Camera::start(CameraOpts::default());
    // An "admin" user exists too, with its own password: the default pairs still fail.
    common::add_user(cam.data.path(), "admin", "a-long-unguessable-pw");
    let url = cam.bare_url("main");
    // One algorithm per pair, alternating: after three failures the server's brute-force
    // throttle adds a growing delay, and every pair must be tried within the test's time budget.
    for ((user, pass), alg) in DEFAULT_PAIRS
        .iter()
        .zip([Algorithm::Sha256, Algorithm::Md5].iter().cycle())
    {
        let mut conn = RtspConn::connect(cam.rtsp);
        let r = with_creds(&mut conn, "DESCRIBE", &url, &[], user, pass, *alg);
        assert_eq!(r.status, 401, "{user}/{pass} ({alg}):\n{}", r.head);
    }
    // The real admin still gets in (after the throttle's delay), so the 401s above were
    // about the passwords.
    let mut conn = RtspConn::connect(cam.rtsp);
    let r = conn.request_digest(
        "DESCRIBE",
        &url,
        &[],
        "admin",
        "a-long-unguessable-pw",
        None,
    );
    assert_eq!(r.status, 200, "admin with its real password:\n{}", r.head);
}

#[test]
fn snapshot_needs_credentials_and_is_a_jpeg_of_the_stream_size() {
    let main = (320, 240);
    let sub = (160, 120);
    let cam = Camera::start(CameraOpts {
        size: main,
        sub_size: Some(sub),
        https: true,
        ..CameraOpts::default()
    });
    let https = cam.https.unwrap();
    let dir = cam.data.path();
    let snap = format!("https://{https}/snapshot.jpg");
    let good = format!("{USER}:{PASSWORD}");
    let junk = dir.join("junk");

    assert_eq!(curl(&snap, &[], &junk).0, 401, "no credentials");
    assert_eq!(
        curl(&snap, &["-H", "X-Forwarded-For: 127.0.0.1"], &junk).0,
        401,
        "X-Forwarded-For: 127.0.0.1"
    );
    let wrong = format!("{USER}:wrong-password");
    assert_eq!(curl(&snap, &["-u", &wrong], &junk).0, 401, "wrong Basic");
    assert_eq!(
        curl(&snap, &["--digest", "-u", &wrong], &junk).0,
        401,
        "wrong Digest"
    );

    let cases = [
        (snap.clone(), vec!["-u", good.as_str()], main, "main.jpg"),
        (
            format!("{snap}?stream=sub"),
            vec!["-u", good.as_str()],
            sub,
            "sub.jpg",
        ),
        (
            snap.clone(),
            vec!["--digest", "-u", good.as_str()],
            main,
            "digest.jpg",
        ),
    ];
    for (url, args, (w, h), name) in cases {
        let file = dir.join(name);
        let (code, ctype) = curl(&url, &args, &file);
        assert_eq!(code, 200, "{url} with {args:?}");
        assert!(
            ctype.starts_with("image/jpeg"),
            "{url}: content type {ctype:?}"
        );
        let probe = run_peer(
            Command::new("ffprobe")
                .args(["-v", "error", "-show_streams", "-of", "json"])
                .arg(&file),
            Duration::from_secs(10),
        );
        assert!(probe.success(), "ffprobe {name}: {}", probe.stderr);
        let streams = ffprobe_streams(&probe.stdout);
        let s = streams.first().expect("a stream in the JPEG");
        assert_eq!(s["codec_name"], "mjpeg", "{name}: {s}");
        assert_eq!(
            (s["width"].clone(), s["height"].clone()),
            (w.into(), h.into()),
            "{name}"
        );
    }
}
