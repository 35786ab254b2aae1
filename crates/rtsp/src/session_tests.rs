use super::*;
use crate::message::{parse, Limits, Parsed};
use bytes::Bytes;

struct FakeEnv {
    now: Instant,
    params: Option<Arc<StreamParams>>,
    /// Users whose `Authorization` header is exactly `ok:<name>`.
    denied_delay: Duration,
    no_users: bool,
    auth_calls: usize,
    next_rand: u32,
    udp_binds: usize,
}

impl FakeEnv {
    fn new() -> Self {
        FakeEnv {
            now: Instant::now(),
            params: Some(Arc::new(StreamParams {
                codec: vigil_media::Codec::H264,
                vps: None,
                sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80]),
                pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
                width: 640,
                height: 480,
                fps: Some(30.0),
            })),
            denied_delay: Duration::from_millis(500),
            no_users: false,
            auth_calls: 0,
            next_rand: 0x1000,
            udp_binds: 0,
        }
    }
}

impl Env for FakeEnv {
    fn authorize(
        &mut self,
        _method: &Method,
        _uri: &str,
        authorization: Option<&str>,
    ) -> AuthDecision {
        self.auth_calls += 1;
        let challenges = vec!["Digest realm=\"vigil\", nonce=\"n\", algorithm=SHA-256".to_owned()];
        if self.no_users {
            return AuthDecision::NoUsers {
                challenges,
                hint: "create a user".into(),
            };
        }
        match authorization.and_then(|a| a.strip_prefix("ok:")) {
            Some(user) => AuthDecision::Allowed {
                user: user.into(),
                role: vigil_auth::Role::Viewer,
            },
            None => AuthDecision::Denied {
                challenges,
                delay: self.denied_delay,
            },
        }
    }
    fn params(&self, mount: &str) -> Option<Option<Arc<StreamParams>>> {
        (mount == "main" || mount == "sub").then(|| self.params.clone())
    }
    fn bind_udp(&mut self, _session_id: &str) -> std::io::Result<(u16, u16)> {
        self.udp_binds += 1;
        Ok((6970, 6971))
    }
    fn play_position(&mut self, _session: &Session) -> (u16, u32) {
        (4242, 90_000)
    }
    fn random_u32(&mut self) -> u32 {
        self.next_rand += 1;
        self.next_rand
    }
    fn now(&self) -> Instant {
        self.now
    }
    fn base_url(&self) -> String {
        "rtsp://192.0.2.1:8554".into()
    }
}

fn request(text: &str) -> Request {
    match parse(text.as_bytes(), &Limits::default()) {
        Ok(Parsed::Request(r, _)) => r,
        other => panic!("test request did not parse: {other:?}"),
    }
}

fn send(conn: &mut ConnState, env: &mut FakeEnv, text: &str) -> Reply {
    conn.handle(&request(text), env)
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.response
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", r.response))
}

fn setup_tcp(conn: &mut ConnState, env: &mut FakeEnv) -> String {
    let r = send(
        conn,
        env,
        "SETUP rtsp://cam/main/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nAuthorization: ok:ann\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
    );
    assert_eq!(r.response.status, 200, "{:?}", r.response);
    header(&r, "Session").split(';').next().unwrap().to_owned()
}

#[test]
fn options_needs_no_credentials_and_lists_methods() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    let r = send(
        &mut c,
        &mut env,
        "OPTIONS rtsp://cam/main RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    );
    assert_eq!(r.response.status, 200);
    assert_eq!(header(&r, "Public"), PUBLIC);
    assert_eq!(env.auth_calls, 0);
}

#[test]
fn every_other_method_without_credentials_is_401_with_delay() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    for m in [
        "DESCRIBE",
        "SETUP",
        "PLAY",
        "PAUSE",
        "TEARDOWN",
        "GET_PARAMETER",
    ] {
        let r = send(
            &mut c,
            &mut env,
            &format!("{m} rtsp://cam/main RTSP/1.0\r\nCSeq: 2\r\nSession: 00000000\r\nTransport: RTP/AVP/TCP;unicast\r\n\r\n"),
        );
        assert_eq!(r.response.status, 401, "{m}");
        assert_eq!(r.delay, Duration::from_millis(500));
        assert!(header(&r, "WWW-Authenticate").starts_with("Digest"));
        assert_eq!(r.effect, Effect::None);
    }
    // Unknown paths also answer 401 first: no probing of mounts without credentials.
    let r = send(
        &mut c,
        &mut env,
        "DESCRIBE rtsp://cam/secret RTSP/1.0\r\nCSeq: 2\r\n\r\n",
    );
    assert_eq!(r.response.status, 401);
}

#[test]
fn unknown_methods_and_require_headers_are_401_before_anything_else() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    for text in [
        "SET_PARAMETER rtsp://cam/main RTSP/1.0\r\nCSeq: 2\r\n\r\n",
        "ANNOUNCE rtsp://cam/main RTSP/1.0\r\nCSeq: 2\r\n\r\n",
        "RECORD rtsp://cam/main RTSP/1.0\r\nCSeq: 2\r\n\r\n",
        "DESCRIBE rtsp://cam/main RTSP/1.0\r\nCSeq: 2\r\nRequire: funky-feature\r\n\r\n",
    ] {
        let r = send(&mut c, &mut env, text);
        assert_eq!(r.response.status, 401, "{text}");
    }
    // With credentials, the same requests get their real answers.
    let r = send(
        &mut c,
        &mut env,
        "DESCRIBE rtsp://cam/main RTSP/1.0\r\nCSeq: 3\r\nAuthorization: ok:ann\r\nRequire: funky-feature\r\n\r\n",
    );
    assert_eq!(r.response.status, 551);
    assert_eq!(header(&r, "Unsupported"), "funky-feature");
    let r = send(
        &mut c,
        &mut env,
        "RECORD rtsp://cam/main RTSP/1.0\r\nCSeq: 4\r\nAuthorization: ok:ann\r\n\r\n",
    );
    assert_eq!(r.response.status, 501);
}

#[test]
fn session_id_alone_is_not_trusted() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    let id = setup_tcp(&mut c, &mut env);
    let r = send(
        &mut c,
        &mut env,
        &format!("PLAY rtsp://cam/main/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\n\r\n"),
    );
    assert_eq!(r.response.status, 401);
    assert_eq!(c.session(&id).unwrap().state, State::Ready);
}

#[test]
fn no_users_hint_is_logged_once_per_connection() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    env.no_users = true;
    let a = send(
        &mut c,
        &mut env,
        "DESCRIBE rtsp://cam/main RTSP/1.0\r\nCSeq: 2\r\n\r\n",
    );
    let b = send(
        &mut c,
        &mut env,
        "DESCRIBE rtsp://cam/main RTSP/1.0\r\nCSeq: 3\r\n\r\n",
    );
    assert_eq!((a.response.status, b.response.status), (401, 401));
    assert_eq!(a.log_hint.as_deref(), Some("create a user"));
    assert_eq!(b.log_hint, None);
}

#[test]
fn describe_returns_sdp_with_content_base() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    let r = send(
        &mut c,
        &mut env,
        "DESCRIBE rtsp://whatever.example:554/main RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\nAuthorization: ok:ann\r\n\r\n",
    );
    assert_eq!(r.response.status, 200);
    assert_eq!(header(&r, "Content-Base"), "rtsp://192.0.2.1:8554/main/");
    assert_eq!(header(&r, "Content-Type"), "application/sdp");
    let sdp = String::from_utf8(r.response.body.clone()).unwrap();
    assert!(sdp.contains("a=control:trackID=0"), "{sdp}");
    assert!(sdp.contains("H264/90000"), "{sdp}");

    let r = send(
        &mut c,
        &mut env,
        "DESCRIBE /nope RTSP/1.0\r\nCSeq: 3\r\nAuthorization: ok:ann\r\n\r\n",
    );
    assert_eq!(r.response.status, 404);
    env.params = None;
    let r = send(
        &mut c,
        &mut env,
        "DESCRIBE /main RTSP/1.0\r\nCSeq: 4\r\nAuthorization: ok:ann\r\n\r\n",
    );
    assert_eq!(r.response.status, 503);
}

#[test]
fn full_tcp_lifecycle() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    let id = setup_tcp(&mut c, &mut env);
    let s = c.session(&id).unwrap();
    assert_eq!(s.transport, SessionTransport::Tcp { channels: (0, 1) });
    assert_eq!(s.user, "ann");

    let play = format!("PLAY rtsp://cam/main/ RTSP/1.0\r\nCSeq: 5\r\nAuthorization: ok:ann\r\nSession: {id}\r\nRange: npt=0.000-\r\n\r\n");
    let r = send(&mut c, &mut env, &play);
    assert_eq!(r.response.status, 200);
    assert_eq!(r.effect, Effect::Play(id.clone()));
    assert_eq!(
        header(&r, "RTP-Info"),
        "url=rtsp://192.0.2.1:8554/main/trackID=0;seq=4242;rtptime=90000"
    );
    assert!(header(&r, "Session").ends_with(";timeout=60"));
    // SETUP while playing is not valid in this state.
    let r = send(
        &mut c,
        &mut env,
        &format!("SETUP /main/trackID=0 RTSP/1.0\r\nCSeq: 6\r\nAuthorization: ok:ann\r\nSession: {id}\r\nTransport: RTP/AVP/TCP;unicast\r\n\r\n"),
    );
    assert_eq!(r.response.status, 455);

    let r = send(
        &mut c,
        &mut env,
        &format!(
            "PAUSE /main RTSP/1.0\r\nCSeq: 7\r\nAuthorization: ok:ann\r\nSession: {id}\r\n\r\n"
        ),
    );
    assert_eq!(r.effect, Effect::Pause(id.clone()));
    let r = send(&mut c, &mut env, &play);
    assert_eq!(r.effect, Effect::Play(id.clone()));

    let r = send(
        &mut c,
        &mut env,
        &format!(
            "TEARDOWN /main RTSP/1.0\r\nCSeq: 8\r\nAuthorization: ok:ann\r\nSession: {id}\r\n\r\n"
        ),
    );
    assert_eq!(r.effect, Effect::Teardown(id.clone()));
    let r = send(&mut c, &mut env, &play);
    assert_eq!(r.response.status, 454);
}

#[test]
fn udp_setup_binds_ports_and_is_refused_over_tls() {
    let setup = "SETUP /main/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nAuthorization: ok:ann\r\nTransport: RTP/AVP;unicast;client_port=50000-50001\r\n\r\n";
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    let r = send(&mut c, &mut env, setup);
    assert_eq!(r.response.status, 200);
    let t = header(&r, "Transport");
    assert!(
        t.contains("client_port=50000-50001;server_port=6970-6971;ssrc="),
        "{t}"
    );
    assert_eq!(env.udp_binds, 1);

    let (mut c, mut env) = (ConnState::new(true), FakeEnv::new());
    assert_eq!(send(&mut c, &mut env, setup).response.status, 461);
    assert_eq!(env.udp_binds, 0);
}

#[test]
fn bad_requests_get_the_right_codes() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    let auth = "Authorization: ok:ann\r\n";
    let cases = [
        (
            "SETUP /main/trackID=0 RTSP/1.0\r\nTransport: RTP/AVP;multicast\r\n",
            461,
        ),
        ("SETUP /main/trackID=0 RTSP/1.0\r\n", 400),
        (
            "SETUP /main/trackID=7 RTSP/1.0\r\nTransport: RTP/AVP/TCP;unicast\r\n",
            404,
        ),
        (
            "SETUP /main RTSP/1.0\r\nSession: DEAD\r\nTransport: RTP/AVP/TCP;unicast\r\n",
            454,
        ),
        ("PLAY /main RTSP/1.0\r\n", 454),
        ("PLAY /main RTSP/1.0\r\nSession: DEAD\r\n", 454),
        ("RECORD /main RTSP/1.0\r\n", 501),
        ("FROB /main RTSP/1.0\r\n", 501),
        ("DESCRIBE http://cam/main RTSP/1.0\r\n", 404),
        ("GET_PARAMETER * RTSP/1.0\r\n", 200),
        ("DESCRIBE /main RTSP/1.0\r\nRequire: funky-feature\r\n", 551),
    ];
    for (head, status) in cases {
        let r = send(&mut c, &mut env, &format!("{head}CSeq: 1\r\n{auth}\r\n"));
        assert_eq!(r.response.status, status, "{head}");
    }
}

#[test]
fn idle_sessions_expire_but_playing_tcp_lives_with_connection() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    let tcp = setup_tcp(&mut c, &mut env);
    let udp = send(
        &mut c,
        &mut env,
        "SETUP /main/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nAuthorization: ok:ann\r\nTransport: RTP/AVP;unicast;client_port=50000-50001\r\n\r\n",
    );
    let udp = header(&udp, "Session")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for id in [&tcp, &udp] {
        send(
            &mut c,
            &mut env,
            &format!(
                "PLAY /main RTSP/1.0\r\nCSeq: 4\r\nAuthorization: ok:ann\r\nSession: {id}\r\n\r\n"
            ),
        );
    }
    let t0 = env.now;
    assert_eq!(c.expire(t0 + Duration::from_secs(59)), Vec::<String>::new());
    // RTCP from the UDP client keeps it alive.
    c.touch(&udp, t0 + Duration::from_secs(50));
    assert!(c.expire(t0 + Duration::from_secs(61)).is_empty());
    assert_eq!(c.next_expiry(), Some(t0 + Duration::from_secs(110)));
    assert_eq!(c.expire(t0 + Duration::from_secs(111)), vec![udp.clone()]);
    assert!(c.session(&tcp).is_some());
    // Only the playing TCP session is left: nothing to wake up for.
    assert_eq!(c.next_expiry(), None);
}

#[test]
fn second_tcp_session_gets_free_channels() {
    let (mut c, mut env) = (ConnState::new(false), FakeEnv::new());
    setup_tcp(&mut c, &mut env);
    let r = send(
        &mut c,
        &mut env,
        "SETUP /sub/trackID=0 RTSP/1.0\r\nCSeq: 9\r\nAuthorization: ok:ann\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
    );
    assert!(header(&r, "Transport").contains("interleaved=2-3"));
    let id = header(&r, "Session").split(';').next().unwrap();
    assert_eq!(c.session_by_channel(3).map(|s| s.id.as_str()), Some(id));
}
