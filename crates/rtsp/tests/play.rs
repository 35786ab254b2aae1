//! End-to-end: the server on 127.0.0.1 with a hub fed synthetic access units, and a
//! hand-written RTSP client doing Digest auth, DESCRIBE, SETUP, PLAY over TCP and UDP.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use vigil_auth::digest::{self, Algorithm, DigestCredentials};
use vigil_auth::DigestPolicy;
use vigil_hub::Hub;
use vigil_media::{AccessUnit, Codec, StreamParams};
use vigil_rtsp::message::{decode_interleaved, write_interleaved, INTERLEAVED_MAGIC};
use vigil_rtsp::{RtspServer, ServerOptions};

const USER: &str = "viewer";
const PASS: &str = "correct horse battery";
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0xc0, 0x44,
];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

fn params() -> Arc<StreamParams> {
    Arc::new(StreamParams {
        codec: Codec::H264,
        vps: None,
        sps: Bytes::from_static(SPS),
        pps: Bytes::from_static(PPS),
        width: 320,
        height: 240,
        fps: Some(25.0),
    })
}

/// A 25 fps source: an `idr_len`-byte IDR (so FU-A) every 10 frames, 200-byte P slices between.
fn spawn_source(hub: Hub, idr_len: usize) -> tokio::task::JoinHandle<()> {
    let p = params();
    tokio::spawn(async move {
        for n in 0i64.. {
            let key = n % 10 == 0;
            let (hdr, len) = if key { (0x65u8, idr_len) } else { (0x41, 200) };
            let mut data = (len as u32).to_be_bytes().to_vec();
            data.push(hdr);
            data.extend((1..len).map(|i| (i % 251) as u8));
            hub.publish(AccessUnit {
                params: p.clone(),
                pts: n * 3600,
                capture_us: 1_700_000_000_000_000 + n * 40_000,
                key,
                data: Bytes::from(data),
            });
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

struct Fixture {
    addr: std::net::SocketAddr,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
    _source: tokio::task::JoinHandle<()>,
}

async fn start(options: ServerOptions, idr_len: usize) -> Fixture {
    start_with_policy(options, idr_len, DigestPolicy::default()).await
}

async fn start_with_policy(
    options: ServerOptions,
    idr_len: usize,
    policy: DigestPolicy,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = vigil_auth::UserStore::open(dir.path()).unwrap();
    store.add(USER, PASS, vigil_auth::Role::Viewer).unwrap();
    let auth = Arc::new(vigil_auth::Authenticator::new(store).with_digest_policy(policy));
    let hub = Hub::new("main", 64);
    let source = spawn_source(hub.clone(), idr_len);
    hub.wait_params().await;
    let mounts = HashMap::from([("main".to_owned(), hub)]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = watch::channel(false);
    let server = RtspServer::new(mounts, auth).with_options(options);
    tokio::spawn(server.serve(listener, rx));
    Fixture {
        addr,
        _shutdown: tx,
        _dir: dir,
        _source: source,
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    tcp: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    url: String,
    nonce: Option<String>,
    /// Digest algorithm and whether to send `qop=auth` (default MD5 without qop, as
    /// GStreamer 1.22 does).
    digest: (Algorithm, bool),
    /// Interleaved frames that arrived before a response.
    skipped: Vec<(u8, Vec<u8>)>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        Self::with_stream(TcpStream::connect(addr).await.unwrap(), addr)
    }

    /// A client with a small receive buffer, so a client that stops reading stalls the
    /// server's writes quickly whatever the machine's TCP autotuning.
    async fn connect_small_window(addr: std::net::SocketAddr) -> Self {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(16 * 1024).unwrap();
        Self::with_stream(sock.connect(addr).await.unwrap(), addr)
    }

    fn with_stream(tcp: TcpStream, addr: std::net::SocketAddr) -> Self {
        Client {
            tcp,
            buf: Vec::new(),
            cseq: 0,
            url: format!("rtsp://{addr}/main"),
            nonce: None,
            digest: (Algorithm::Md5, false),
            skipped: Vec::new(),
        }
    }

    async fn fill(&mut self) {
        let mut tmp = [0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(5), self.tcp.read(&mut tmp))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "server closed the connection");
        self.buf.extend_from_slice(&tmp[..n]);
    }

    /// Next interleaved frame (channel, data).
    async fn frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.buf.first() == Some(&INTERLEAVED_MAGIC) {
                if let Some((ch, data)) = decode_interleaved(&self.buf) {
                    let frame = (ch, self.buf[data.clone()].to_vec());
                    self.buf.drain(..data.end);
                    return frame;
                }
            } else if !self.buf.is_empty() {
                panic!(
                    "expected interleaved frame, got {:?}",
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(40)])
                );
            }
            self.fill().await;
        }
    }

    async fn response(&mut self) -> Resp {
        loop {
            // Skip interleaved media that precedes the response.
            while let Some((ch, data)) = decode_interleaved(&self.buf) {
                self.skipped.push((ch, self.buf[data.clone()].to_vec()));
                self.buf.drain(..data.end);
            }
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                if self.buf[0] != INTERLEAVED_MAGIC {
                    let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                    let mut lines = head.split("\r\n");
                    let status: u16 = lines
                        .next()
                        .unwrap()
                        .split(' ')
                        .nth(1)
                        .unwrap()
                        .parse()
                        .unwrap();
                    let headers: Vec<(String, String)> = lines
                        .map(|l| {
                            let (n, v) = l.split_once(':').unwrap();
                            (n.trim().to_owned(), v.trim().to_owned())
                        })
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(n, _)| n == "Content-Length")
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    while self.buf.len() < end + 4 + len {
                        self.fill().await;
                    }
                    let body = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    return Resp {
                        status,
                        headers,
                        body,
                    };
                }
            }
            self.fill().await;
        }
    }

    fn authorization(&self, method: &str, uri: &str, password: &str) -> Option<String> {
        let nonce = self.nonce.clone()?;
        let (algorithm, qop) = self.digest;
        let mut creds = DigestCredentials {
            username: USER.into(),
            realm: "vigil".into(),
            nonce,
            uri: uri.into(),
            response: String::new(),
            algorithm,
            qop: qop.then_some(digest::Qop::Auth),
            nc: qop.then_some(self.cseq + 1),
            cnonce: qop.then(|| "0a4f113b".to_owned()),
            opaque: None,
        };
        let ha1 = digest::ha1(algorithm, USER, "vigil", password);
        creds.response = digest::expected_response(&ha1, method, &creds);
        Some(creds.to_header())
    }

    async fn request_with(&mut self, method: &str, uri: &str, extra: &str, password: &str) -> Resp {
        self.cseq += 1;
        let mut msg = format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: test\r\n{extra}",
            self.cseq
        );
        if let Some(a) = self.authorization(method, uri, password) {
            msg.push_str(&format!("Authorization: {a}\r\n"));
        }
        msg.push_str("\r\n");
        self.tcp.write_all(msg.as_bytes()).await.unwrap();
        let r = self.response().await;
        assert_eq!(r.get("CSeq"), Some(self.cseq.to_string().as_str()));
        r
    }

    async fn request(&mut self, method: &str, uri: &str, extra: &str) -> Resp {
        self.request_with(method, uri, extra, PASS).await
    }

    /// DESCRIBE, answering the 401 challenge as ffmpeg does (MD5, no qop).
    async fn describe(&mut self) -> Resp {
        let url = self.url.clone();
        let r = self
            .request("DESCRIBE", &url, "Accept: application/sdp\r\n")
            .await;
        assert_eq!(r.status, 401);
        let md5 = r
            .headers
            .iter()
            .filter(|(n, _)| n == "WWW-Authenticate")
            .map(|(_, v)| v.clone())
            .find(|v| v.contains("algorithm=MD5"))
            .unwrap();
        let nonce = md5
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        self.nonce = Some(nonce.to_owned());
        self.request("DESCRIBE", &url, "Accept: application/sdp\r\n")
            .await
    }

    async fn setup(&mut self, transport: &str) -> (Resp, String) {
        let url = format!("{}/trackID=0", self.url);
        let r = self
            .request("SETUP", &url, &format!("Transport: {transport}\r\n"))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.headers);
        let session = r
            .get("Session")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        (r, session)
    }

    async fn play(&mut self, session: &str) -> Resp {
        let url = format!("{}/", self.url);
        let r = self
            .request(
                "PLAY",
                &url,
                &format!("Session: {session}\r\nRange: npt=0.000-\r\n"),
            )
            .await;
        assert_eq!(r.status, 200);
        r
    }
}

fn rtp_info_seq(r: &Resp) -> u16 {
    let info = r.get("RTP-Info").unwrap();
    info.split(';')
        .find_map(|p| p.strip_prefix("seq="))
        .unwrap()
        .parse()
        .unwrap()
}

/// Checks a run of RTP packets: consecutive sequence numbers from `seq`, SPS and PPS
/// in-band before the IDR at its timestamp, a marker exactly on each access unit's last packet.
fn check_rtp(packets: &[Vec<u8>], mut seq: u16) {
    assert!(packets.len() > 10);
    let nal_type = |p: &[u8]| p[12] & 0x1f;
    assert_eq!(nal_type(&packets[0]), 7, "stream must start with SPS");
    assert_eq!(nal_type(&packets[1]), 8, "then PPS");
    assert!(
        nal_type(&packets[2]) == 28 && packets[2][13] & 0x1f == 5,
        "then the IDR as FU-A"
    );
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p[0] >> 6, 2);
        assert_eq!(p[1] & 0x7f, 96);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), seq, "packet {i}");
        seq = seq.wrapping_add(1);
        let ts = &p[4..8];
        let marker = p[1] & 0x80 != 0;
        if let Some(next) = packets.get(i + 1) {
            assert_eq!(
                marker,
                &next[4..8] != ts,
                "marker on packet {i} must end its access unit"
            );
        }
    }
}

#[tokio::test]
async fn tcp_interleaved_play_with_digest_auth() {
    let fx = start(ServerOptions::default(), 3000).await;
    let mut c = Client::connect(fx.addr).await;
    let url = c.url.clone();
    let r = c.request("OPTIONS", &url, "").await;
    assert_eq!(r.status, 200);
    assert!(r.get("Public").unwrap().contains("GET_PARAMETER"));

    let r = c.describe().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.get("Content-Type"), Some("application/sdp"));
    let sdp = String::from_utf8(r.body.clone()).unwrap();
    assert!(sdp.contains("sprop-parameter-sets="), "{sdp}");
    assert!(r.get("Content-Base").unwrap().ends_with("/main/"));

    let (r, session) = c.setup("RTP/AVP/TCP;unicast;interleaved=0-1").await;
    assert!(r.get("Transport").unwrap().contains("interleaved=0-1"));
    let r = c.play(&session).await;
    let seq = rtp_info_seq(&r);

    let mut rtp = Vec::new();
    let mut sr = None;
    while rtp.len() < 40 || sr.is_none() {
        let (ch, data) = c.frame().await;
        match ch {
            0 => rtp.push(data),
            1 => sr = Some(data),
            other => panic!("unexpected channel {other}"),
        }
    }
    check_rtp(&rtp, seq);
    let sr = sr.unwrap();
    assert_eq!(sr[1], 200, "RTCP sender report");
    // The SR's SSRC is the stream's.
    assert_eq!(sr[4..8], rtp[0][8..12]);

    // A wrong password is refused even with a valid session id.
    let r = c
        .request_with(
            "GET_PARAMETER",
            &format!("{url}/"),
            &format!("Session: {session}\r\n"),
            "wrong password!",
        )
        .await;
    assert_eq!(r.status, 401);
    let r = c
        .request(
            "TEARDOWN",
            &format!("{url}/"),
            &format!("Session: {session}\r\n"),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn udp_play() {
    let fx = start(ServerOptions::default(), 3000).await;
    let mut c = Client::connect(fx.addr).await;
    c.describe().await;
    let rtp_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = rtp_sock.local_addr().unwrap().port();
    let (r, session) = c
        .setup(&format!("RTP/AVP;unicast;client_port={port}-{}", port + 1))
        .await;
    let t = r.get("Transport").unwrap();
    assert!(t.contains("server_port="), "{t}");
    let r = c.play(&session).await;
    let seq = rtp_info_seq(&r);
    let mut packets = Vec::new();
    let mut buf = [0u8; 2048];
    while packets.len() < 40 {
        let n = tokio::time::timeout(Duration::from_secs(5), rtp_sock.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        packets.push(buf[..n].to_vec());
    }
    check_rtp(&packets, seq);
}

#[tokio::test]
async fn unauthenticated_requests_get_401_and_unknown_mount_404() {
    let fx = start(ServerOptions::default(), 3000).await;
    let mut c = Client::connect(fx.addr).await;
    let url = c.url.clone();
    for m in ["SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER"] {
        let r = c
            .request(
                m,
                &url,
                "Transport: RTP/AVP/TCP;unicast\r\nSession: 1234\r\n",
            )
            .await;
        assert_eq!(r.status, 401, "{m}");
    }
    c.describe().await;
    let r = c
        .request("DESCRIBE", &format!("rtsp://{}/nothing", fx.addr), "")
        .await;
    // The nonce was for another URI, but Digest signs the request's own uri; this one is valid.
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn slow_client_is_dropped_without_stalling_others() {
    let options = ServerOptions {
        write_timeout: Duration::from_millis(500),
        ..ServerOptions::default()
    };
    let fx = start(options, 2_000_000).await;
    // The slow client plays but never reads.
    let mut slow = Client::connect_small_window(fx.addr).await;
    slow.describe().await;
    let (_, s1) = slow.setup("RTP/AVP/TCP;unicast;interleaved=0-1").await;
    slow.play(&s1).await;
    let mut fast = Client::connect(fx.addr).await;
    fast.describe().await;
    let (_, s2) = fast.setup("RTP/AVP/TCP;unicast;interleaved=0-1").await;
    fast.play(&s2).await;
    // 2 MB key frames (5 MB/s) fill the slow client's socket buffers within seconds; the
    // fast client must keep receiving meanwhile, and the slow one must then be dropped.
    let start = tokio::time::Instant::now();
    let mut packets = 0;
    while start.elapsed() < Duration::from_secs(5) {
        let (ch, _) = fast.frame().await;
        if ch == 0 {
            packets += 1;
        }
    }
    assert!(packets > 5000, "fast client starved: {packets} packets");
    // Drain what the kernel buffered for the slow client: the server must have closed it.
    let mut tmp = vec![0u8; 1 << 20];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match slow.tcp.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow client was never dropped");
}

#[tokio::test]
async fn silent_connections_time_out_and_connection_limit_holds() {
    let options = ServerOptions {
        first_request_timeout: Duration::from_millis(300),
        max_connections: 1,
        ..ServerOptions::default()
    };
    let fx = start(options, 3000).await;
    let mut silent = TcpStream::connect(fx.addr).await.unwrap();
    // While the silent one holds the only slot, a second connection is closed at once.
    let mut second = TcpStream::connect(fx.addr).await.unwrap();
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), second.read(&mut b))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "second connection was served");
    // The silent one is closed after the first-request timeout...
    let n = tokio::time::timeout(Duration::from_secs(2), silent.read(&mut b))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
    // ...which frees the slot for a real client.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut c = Client::connect(fx.addr).await;
    let url = c.url.clone();
    assert_eq!(c.request("OPTIONS", &url, "").await.status, 200);
}

/// Connects from `ip` (an address of 127.0.0.0/8), so a test can play several sources.
async fn connect_from(ip: &str, addr: std::net::SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    sock.connect(addr).await.unwrap()
}

#[tokio::test]
async fn a_flood_from_one_address_does_not_lock_out_another() {
    let options = ServerOptions {
        first_request_timeout: Duration::from_millis(500),
        max_connections: 8,
        max_connections_per_address: 4,
        ..ServerOptions::default()
    };
    let fx = start(options, 3000).await;
    // 127.0.0.2 opens far more half-open connections than the whole server takes.
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(connect_from("127.0.0.2", fx.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 127.0.0.1 is still served.
    let mut c = Client::with_stream(connect_from("127.0.0.1", fx.addr).await, fx.addr);
    let url = c.url.clone();
    assert_eq!(c.request("OPTIONS", &url, "").await.status, 200);
    // The flood's admitted connections are closed at the first-request deadline, the rest
    // at once: within a bounded time every one of them is closed.
    let started = std::time::Instant::now();
    let mut b = [0u8; 16];
    for s in &mut flood {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut b))
            .await
            .expect("a half-open connection outlived its deadline");
        assert!(matches!(n, Ok(0) | Err(_)), "a flood connection was served");
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn rtcp_bye_over_interleaved_ends_the_session() {
    let fx = start(ServerOptions::default(), 3000).await;
    let mut c = Client::connect(fx.addr).await;
    c.describe().await;
    let (_, session) = c.setup("RTP/AVP/TCP;unicast;interleaved=0-1").await;
    c.play(&session).await;
    c.frame().await;
    // RTCP RR + BYE (RFC 3550 §6.4.2, §6.6) on the RTCP channel.
    let mut bye = Vec::new();
    write_interleaved(
        &mut bye,
        1,
        &[0x80, 201, 0, 1, 0, 0, 0, 7, 0x81, 203, 0, 1, 0, 0, 0, 7],
    )
    .unwrap();
    c.tcp.write_all(&bye).await.unwrap();
    let url = format!("{}/", c.url);
    let r = c
        .request("GET_PARAMETER", &url, &format!("Session: {session}\r\n"))
        .await;
    assert_eq!(r.status, 454, "session must be gone after BYE");
}

#[tokio::test]
async fn pause_and_resume_keep_sequence_and_timestamps_increasing() {
    let fx = start(ServerOptions::default(), 3000).await;
    let mut c = Client::connect(fx.addr).await;
    c.describe().await;
    let (_, session) = c.setup("RTP/AVP/TCP;unicast;interleaved=0-1").await;
    c.play(&session).await;
    let mut sent = Vec::new();
    while sent.len() < 20 {
        let (ch, data) = c.frame().await;
        if ch == 0 {
            sent.push(data);
        }
    }
    let url = format!("{}/", c.url);
    let r = c
        .request("PAUSE", &url, &format!("Session: {session}\r\n"))
        .await;
    assert_eq!(r.status, 200);
    sent.extend(
        c.skipped
            .drain(..)
            .filter(|(ch, _)| *ch == 0)
            .map(|(_, d)| d),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c.play(&session).await;
    sent.extend(
        c.skipped
            .drain(..)
            .filter(|(ch, _)| *ch == 0)
            .map(|(_, d)| d),
    );
    let last = sent.last().unwrap();
    let last_seq = u16::from_be_bytes([last[2], last[3]]);
    let last_ts = u32::from_be_bytes([last[4], last[5], last[6], last[7]]);
    assert_eq!(rtp_info_seq(&r), last_seq.wrapping_add(1));
    let mut after = Vec::new();
    while after.len() < 20 {
        let (ch, data) = c.frame().await;
        if ch == 0 {
            after.push(data);
        }
    }
    // Resumes on a key frame, right after the last packet, later in time.
    check_rtp(&after, last_seq.wrapping_add(1));
    let ts = u32::from_be_bytes([after[0][4], after[0][5], after[0][6], after[0][7]]);
    assert!(
        (ts.wrapping_sub(last_ts) as i32) > 0,
        "timestamp went backwards"
    );
}

/// Issue 17 item 1: the DESCRIBE, SETUP and PLAY `Authorization` headers a client sent on
/// plain RTSP, replayed verbatim by an eavesdropper from another connection and address
/// within the nonce's lifetime, get 401 with a stale challenge (which only the password
/// holder can answer) instead of the stream.
#[tokio::test]
async fn captured_authorization_replayed_from_another_connection_is_refused() {
    let fx = start(ServerOptions::default(), 3000).await;
    let mut victim = Client::connect(fx.addr).await;
    let url = victim.url.clone();
    let track = format!("{url}/trackID=0");
    let aggregate = format!("{url}/");
    assert_eq!(victim.describe().await.status, 200);
    let (_, session) = victim.setup("RTP/AVP/TCP;unicast;interleaved=0-1").await;
    // What went over the wire (MD5 without qop is deterministic, so this is byte for byte).
    let describe_h = victim.authorization("DESCRIBE", &url, PASS).unwrap();
    let setup_h = victim.authorization("SETUP", &track, PASS).unwrap();
    let play_h = victim.authorization("PLAY", &aggregate, PASS).unwrap();

    let mut replayer = Client::with_stream(connect_from("127.0.0.3", fx.addr).await, fx.addr);
    let r = replayer
        .request(
            "DESCRIBE",
            &url,
            &format!("Accept: application/sdp\r\nAuthorization: {describe_h}\r\n"),
        )
        .await;
    assert_eq!(r.status, 401, "replayed DESCRIBE accepted");
    assert!(
        r.get("WWW-Authenticate").unwrap().contains("stale=true"),
        "{:?}",
        r.headers
    );
    let r = replayer
        .request(
            "SETUP",
            &track,
            &format!(
                "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nAuthorization: {setup_h}\r\n"
            ),
        )
        .await;
    assert_eq!(r.status, 401, "replayed SETUP accepted");
    let r = replayer
        .request(
            "PLAY",
            &aggregate,
            &format!("Session: {session}\r\nRange: npt=0.000-\r\nAuthorization: {play_h}\r\n"),
        )
        .await;
    assert_eq!(r.status, 401, "replayed PLAY accepted");
    // The victim's own connection goes on with the same nonce.
    victim.play(&session).await;
    assert_eq!(victim.frame().await.0, 0);
}

/// A session belongs to the connection that set it up: another connection, even with valid
/// credentials of its own, gets 454 for every method naming it, and the owner's session
/// plays on untouched.
#[tokio::test]
async fn session_id_from_another_connection_is_refused() {
    let fx = start(ServerOptions::default(), 3000).await;
    let mut owner = Client::connect(fx.addr).await;
    let url = owner.url.clone();
    owner.describe().await;
    let (_, session) = owner.setup("RTP/AVP/TCP;unicast;interleaved=0-1").await;
    let mut other = Client::with_stream(connect_from("127.0.0.4", fx.addr).await, fx.addr);
    assert_eq!(other.describe().await.status, 200);
    let aggregate = format!("{url}/");
    for m in ["PLAY", "PAUSE", "GET_PARAMETER", "TEARDOWN"] {
        let r = other
            .request(m, &aggregate, &format!("Session: {session}\r\n"))
            .await;
        assert_eq!(r.status, 454, "{m} with another connection's session");
    }
    let r = other
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &format!("Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: {session}\r\n"),
        )
        .await;
    assert_eq!(r.status, 454, "SETUP joining another connection's session");
    owner.play(&session).await;
    assert_eq!(owner.frame().await.0, 0);
}

/// Issue 17 item 2: with `--digest sha256` only a SHA-256 challenge is offered and MD5 (with or
/// without qop) and SHA-256 without qop are refused, so a man in the middle who rewrites the
/// challenge cannot get an MD5 response accepted; SHA-256 with qop=auth plays.
#[tokio::test]
async fn sha256_policy_refuses_md5_and_missing_qop() {
    let fx = start_with_policy(ServerOptions::default(), 3000, DigestPolicy::Sha256).await;
    let mut c = Client::connect(fx.addr).await;
    let url = c.url.clone();
    let accept = "Accept: application/sdp\r\n";
    let r = c.request("DESCRIBE", &url, accept).await;
    let challenges: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "WWW-Authenticate")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(challenges[0].contains("algorithm=SHA-256"));
    let nonce = challenges[0].split("nonce=\"").nth(1).unwrap();
    c.nonce = Some(nonce.split('"').next().unwrap().to_owned());
    for refused in [
        (Algorithm::Md5, true),
        (Algorithm::Md5, false),
        (Algorithm::Sha256, false),
    ] {
        c.digest = refused;
        let r = c.request("DESCRIBE", &url, accept).await;
        assert_eq!(r.status, 401, "{refused:?} accepted");
    }
    c.digest = (Algorithm::Sha256, true);
    assert_eq!(c.request("DESCRIBE", &url, accept).await.status, 200);
    let (_, session) = c.setup("RTP/AVP/TCP;unicast;interleaved=0-1").await;
    c.play(&session).await;
    assert_eq!(c.frame().await.0, 0);
}
