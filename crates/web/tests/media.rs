//! Live view end to end: a real test-pattern camera (OpenH264) into a hub, the live
//! WebSocket served by axum on loopback, a tokio-tungstenite client reading the protocol,
//! and ffmpeg decoding what a browser's MSE would get.
//!
//! ffmpeg and ffprobe must be installed (scripts/test.sh installs them); a missing tool fails
//! the test.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use vigil_camera::encoder::{EncoderConfig, H264Encoder};
use vigil_camera::testsrc::TestPattern;
use vigil_camera::{Camera, CameraConfig, SourceSpec, StreamConfig};
use vigil_hub::Hub;
use vigil_media::fmp4::{self, live};
use vigil_web::live::{serve_socket, Lookup, HEADER_LEN, KIND_FRAGMENT, KIND_INIT};

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// `ffprobe -count_frames` of the first video stream, as `key=value` lines.
fn ffprobe(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "default=noprint_wrappers=1", "-f", "mp4"])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (apt-get install ffmpeg)");
    assert!(out.status.success(), "ffprobe failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn live_fragments_of_encoded_test_pattern_decode_in_ffmpeg() {
    let mut pattern = TestPattern::new(640, 360).unwrap();
    let mut enc = H264Encoder::new(EncoderConfig {
        width: 640,
        height: 360,
        fps: 30.0,
        bitrate_bps: 1_000_000,
        keyint: 15,
    })
    .unwrap();
    let mut file = Vec::new();
    let mut frames = 0;
    let mut keys = 0;
    for n in 0..45u32 {
        let pts = i64::from(n) * 3000;
        let au = enc
            .encode(pattern.render(n, 1_000_000 + pts), pts, 1_000_000 + pts)
            .unwrap()
            .unwrap();
        if file.is_empty() {
            assert!(au.key, "the encoder starts on a key frame");
            // Constrained baseline (OpenH264): avc1.42C0LL.
            let codec = live::codec_string(&au.params);
            assert!(
                codec.starts_with("avc1.42C0") && codec.len() == 11,
                "{codec}"
            );
            file = live::init_segment(&au.params);
        }
        keys += usize::from(au.key);
        file.extend_from_slice(&live::fragment(n + 1, &au, 3000));
        frames += 1;
    }
    assert_eq!(keys, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = ffprobe(&path);
    for want in [
        "codec_name=h264",
        "width=640",
        "height=360",
        &format!("nb_read_frames={frames}"),
    ] {
        assert!(probe.lines().any(|l| l == want), "{want} not in {probe}");
    }
    assert_eq!(vigil_testkit::ffmpeg::decode_errors_as("mp4", &path), "");
}

/// A test-pattern camera publishing into `hub`, stopped on drop.
struct TestCamera(Camera);

impl TestCamera {
    fn start(hub: &Hub) -> Self {
        Self::with_keyint(hub, 15)
    }

    fn with_keyint(hub: &Hub, keyint: u32) -> Self {
        let cfg = CameraConfig {
            source: SourceSpec::TestPattern,
            main: StreamConfig {
                width: 320,
                height: 180,
                fps: 15.0,
                bitrate_bps: 300_000,
                keyint,
            },
            sub: None,
        };
        TestCamera(Camera::start(cfg, hub.clone(), None).unwrap())
    }
}

impl Drop for TestCamera {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Serves the live socket of whatever `lookup` returns on `ws://ADDR/live`.
async fn serve(lookup: impl Fn() -> Lookup + Clone + Send + Sync + 'static) -> String {
    let app = Router::new().route(
        "/live",
        get(move |ws: WebSocketUpgrade| {
            let lookup = lookup.clone();
            async move { ws.on_upgrade(move |s| serve_socket(s, lookup)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("ws://{addr}/live")
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One message of the live protocol.
#[derive(Debug)]
enum Live {
    Init(serde_json::Value),
    Ping(i64),
    Bin {
        kind: u8,
        capture_us: i64,
        pts: i64,
        payload: Vec<u8>,
    },
}

async fn next(ws: &mut Client) -> Live {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("socket open")
            .unwrap();
        match msg {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("init") => return Live::Init(v),
                    Some("ping") => return Live::Ping(v["server_time_us"].as_i64().unwrap()),
                    other => panic!("unknown text message {other:?}"),
                }
            }
            Message::Binary(b) => {
                assert!(b.len() > HEADER_LEN);
                return Live::Bin {
                    kind: b[0],
                    capture_us: i64::from_be_bytes(b[1..9].try_into().unwrap()),
                    pts: i64::from_be_bytes(b[9..17].try_into().unwrap()),
                    payload: b[HEADER_LEN..].to_vec(),
                };
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads init text + init segment, checking them.
async fn expect_init(ws: &mut Client) -> Vec<u8> {
    let Live::Init(v) = next(ws).await else {
        panic!("the first message is the init text")
    };
    let codec = v["codec"].as_str().unwrap();
    assert!(codec.starts_with("avc1.42C0") && codec.len() == 11, "{v}");
    assert_eq!(v["width"], 320);
    assert_eq!(v["height"], 180);
    let server = v["server_time_us"].as_i64().unwrap();
    assert!(
        (server - now_us()).abs() < 2_000_000,
        "server_time_us {server}"
    );
    let Live::Bin { kind, payload, .. } = next(ws).await else {
        panic!("init segment")
    };
    assert_eq!(kind, KIND_INIT);
    assert_eq!(&payload[4..8], b"ftyp");
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_starts_on_a_key_frame_and_stays_live() {
    let hub = Hub::new("test", 128);
    let _cam = TestCamera::start(&hub);
    // Let a GOP build up, so the first fragment must come from the cache.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let h = hub.clone();
    let url = serve(move || Lookup::Hub(h.clone())).await;

    let t0 = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut file = expect_init(&mut ws).await;
    let (mut pings, mut frags, mut first_at) = (0, 0, None);
    let (mut last_capture, mut last_pts) = (i64::MIN, i64::MIN);
    while t0.elapsed() < Duration::from_millis(4500) {
        match next(&mut ws).await {
            Live::Ping(t) => {
                assert!((t - now_us()).abs() < 2_000_000);
                pings += 1;
            }
            Live::Bin {
                kind,
                capture_us,
                pts,
                payload,
            } => {
                assert_eq!(kind, KIND_FRAGMENT);
                assert_eq!(&payload[4..8], b"moof");
                first_at.get_or_insert(t0.elapsed());
                assert!(capture_us > last_capture, "capture times increase");
                assert!(pts > last_pts, "pts increase");
                assert!(
                    (now_us() - capture_us) < 3_000_000,
                    "fragment is {} ms old",
                    (now_us() - capture_us) / 1000
                );
                (last_capture, last_pts) = (capture_us, pts);
                file.extend_from_slice(&payload);
                frags += 1;
            }
            Live::Init(v) => panic!("unexpected second init {v}"),
        }
    }
    let first_at = first_at.unwrap();
    assert!(
        first_at < Duration::from_secs(1),
        "first fragment after {first_at:?}"
    );
    assert!(pings >= 2, "pings every 2 s: got {pings}");
    // 15 fps for ~4.5 s, plus the cached GOP.
    assert!(frags >= 55, "only {frags} fragments");

    // What the client got is one valid fMP4 stream: the first sample is a key frame,
    // tfdt = pts, and ffmpeg decodes all of it.
    let scanned = fmp4::scan(&file).unwrap();
    assert_eq!(scanned.fragments.len(), frags);
    assert!(scanned.fragments[0].runs[0].samples[0].is_sync);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ws.mp4");
    std::fs::write(&path, &file).unwrap();
    assert!(ffprobe(&path).contains(&format!("nb_read_frames={frags}")));
    assert_eq!(vigil_testkit::ffmpeg::decode_errors_as("mp4", &path), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_viewer_does_not_slow_down_another() {
    let hub = Hub::new("test", 128);
    let _cam = TestCamera::start(&hub);
    let h = hub.clone();
    let url = serve(move || Lookup::Hub(h.clone())).await;
    // This one connects and never reads.
    let (_stalled, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    expect_init(&mut ws).await;
    let t0 = Instant::now();
    let mut late = 0;
    let mut frags = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        if let Live::Bin { capture_us, .. } = next(&mut ws).await {
            frags += 1;
            if now_us() - capture_us > 500_000 {
                late += 1;
            }
        }
    }
    assert!(frags >= 40, "only {frags} fragments in 3 s at 15 fps");
    // Only the GOP cache at the start may be older than 0.5 s.
    assert!(
        late <= 16,
        "{late} fragments arrived over 0.5 s after capture"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_camera_keeps_the_socket_and_resumes_with_a_new_init() {
    let hub = Hub::new("test", 128);
    let started = Arc::new(AtomicBool::new(false));
    let (h, s) = (hub.clone(), started.clone());
    // Until the camera is up its stream has no hub; then it has.
    let url = serve(move || {
        if s.load(Ordering::SeqCst) {
            Lookup::Hub(h.clone())
        } else {
            Lookup::NotYet
        }
    })
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cam = TestCamera::start(&hub);
    started.store(true, Ordering::SeqCst);
    expect_init(&mut ws).await;
    let Live::Bin { kind, .. } = next(&mut ws).await else {
        panic!()
    };
    assert_eq!(kind, KIND_FRAGMENT);
    // The camera drops out: the socket stays, with pings.
    drop(cam);
    let t0 = Instant::now();
    let mut pings = 0;
    while t0.elapsed() < Duration::from_millis(2500) {
        match next(&mut ws).await {
            Live::Ping(_) => pings += 1,
            Live::Bin { .. } => {} // the last pictures before the outage
            Live::Init(v) => panic!("init while offline {v}"),
        }
    }
    assert!(pings >= 1);
    // It comes back with a new timeline (pts from 0): the viewer gets a new init, then
    // pictures again.
    let _cam = TestCamera::start(&hub);
    let mut file = loop {
        if let Live::Init(_) = next(&mut ws).await {
            let Live::Bin { kind, payload, .. } = next(&mut ws).await else {
                panic!()
            };
            assert_eq!(kind, KIND_INIT);
            break payload;
        }
    };
    for _ in 0..10 {
        if let Live::Bin { payload, .. } = next(&mut ws).await {
            file.extend_from_slice(&payload);
        }
    }
    let scanned = fmp4::scan(&file).unwrap();
    assert!(scanned.fragments[0].runs[0].samples[0].is_sync);
}

#[tokio::test]
async fn removed_camera_closes_the_socket_with_4404() {
    let url = serve(|| Lookup::Gone).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match msg {
        Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 4404),
        other => panic!("expected close, got {other:?}"),
    }
}

/// A cached GOP longer than the viewer's queue (4 s at 15 fps = 60 pictures) is sent whole:
/// the viewer starts at the cached key frame and gets every picture after it, rather than
/// losing the tail of the burst and waiting for the next key frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_cached_gop_is_sent_whole() {
    let hub = Hub::new("test", 128);
    let _cam = TestCamera::with_keyint(&hub, 60);
    // Wait until the cache holds well over a queue's worth of pictures.
    let t0 = Instant::now();
    while hub.gop().len() < 45 {
        assert!(t0.elapsed() < Duration::from_secs(10), "no long GOP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cached = hub.gop().len();
    assert!(cached > vigil_web::live::QUEUE_LEN);
    let h = hub.clone();
    let url = serve(move || Lookup::Hub(h.clone())).await;
    let t0 = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut file = expect_init(&mut ws).await;
    let mut pts = Vec::new();
    while pts.len() < cached + 5 {
        if let Live::Bin {
            pts: p, payload, ..
        } = next(&mut ws).await
        {
            pts.push(p);
            file.extend_from_slice(&payload);
        }
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    // One picture after the other: 6000 ticks at 15 fps, nothing skipped.
    for w in pts.windows(2) {
        assert_eq!(w[1] - w[0], 6000, "pts {pts:?}");
    }
    let scanned = fmp4::scan(&file).unwrap();
    assert!(scanned.fragments[0].runs[0].samples[0].is_sync);
}
