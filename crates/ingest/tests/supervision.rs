//! Supervision on a simulated clock: dead-camera detection and the bounds of the outage's
//! `Gap`, without waiting out real outages.
//!
//! The peer is Vigil's own RTSP server (vigil-rtsp) in this process, on 127.0.0.1, fed by
//! a hub the test publishes synthetic H.264 access units into: when the test stops
//! publishing, the camera is frozen with its connection open, exactly the case the stall
//! timeout exists for. Retina is real and talks real TCP; only the ingest's clock is
//! simulated.
//!
//! What reads which clock (crates/ingest/src/supervisor.rs): the stall deadline is set
//! from the injected clock's monotonic time when each video frame is taken from retina,
//! and waited for on it; a frame's `capture_us` (and so a gap's bounds) is retina's
//! host-wall-clock stamp of its reception. The simulated clock starts years away from the
//! host's, so a gap bound read from the wrong clock cannot match by accident.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use vigil_auth::{AuthDecision, AuthRequest, Role};
use vigil_hub::clock::{Clock, SimClock};
use vigil_hub::{Hub, Item, Subscriber};
use vigil_ingest::{Gap, Ingest, IngestConfig, IngestState, IngestStatus};
use vigil_media::{AccessUnit, Codec, StreamParams};
use vigil_rtsp::{RtspAuth, RtspServer};

/// 2024-01-01T00:00:00Z: years before any host clock this runs on.
const T0: i64 = 1_704_067_200_000_000;
/// A 320x240 Baseline SPS that retina parses (ITU-T H.264 §7.3.2.1.1: id 0, POC type 2,
/// one reference frame, 20x15 macroblocks, frames only, no cropping, no VUI), and a PPS.
const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xda, 0x05, 0x07, 0xe4];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
/// 25 fps in 90 kHz ticks.
const STEP: i64 = 3600;
/// How long the tests give the ingest to do something it must not do. Its reactions
/// to the clock are task wake-ups (microseconds); this is only the bound on waiting.
const QUIET: Duration = Duration::from_millis(200);
/// How long the tests give the ingest to do what it must (real time, bounded).
const WITHIN: Duration = Duration::from_secs(3);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "vigil_ingest=info".into()),
        )
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// Lets anyone in: authentication is not what is tested here.
struct Open;

impl RtspAuth for Open {
    fn check(&self, _: &AuthRequest<'_>, _: u64) -> AuthDecision {
        AuthDecision::Allowed {
            user: "test".to_owned(),
            role: Role::Viewer,
        }
    }
}

/// A camera whose every frame the test publishes: `rtsp://ADDR/main`.
struct Camera {
    hub: Hub,
    addr: std::net::SocketAddr,
    params: Arc<StreamParams>,
    next_pts: i64,
    _shutdown: watch::Sender<bool>,
}

impl Camera {
    /// Starts the server with a key frame published, so DESCRIBE has parameters at once.
    async fn start() -> Camera {
        let hub = Hub::new("main", 64);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, rx) = watch::channel(false);
        let mounts = HashMap::from([("main".to_owned(), hub.clone())]);
        tokio::spawn(RtspServer::new(mounts, Arc::new(Open)).serve(listener, rx));
        let mut cam = Camera {
            hub,
            addr,
            params: Arc::new(StreamParams {
                codec: Codec::H264,
                vps: None,
                sps: Bytes::from_static(SPS),
                pps: Bytes::from_static(PPS),
                width: 320,
                height: 240,
                fps: Some(25.0),
            }),
            next_pts: 0,
            _shutdown: shutdown,
        };
        cam.publish(true);
        cam
    }

    fn url(&self) -> url::Url {
        url::Url::parse(&format!("rtsp://{}/main", self.addr)).unwrap()
    }

    /// Publishes one access unit: an IDR slice if `key`, else a P slice (one NAL unit,
    /// 4-byte length prefixed; the server adds SPS/PPS before an IDR).
    fn publish(&mut self, key: bool) {
        let (header, len) = if key { (0x65u8, 3000) } else { (0x41, 300) };
        let mut data = (len as u32).to_be_bytes().to_vec();
        data.push(header);
        data.extend((1..len).map(|i| (i % 251) as u8));
        let pts = self.next_pts;
        self.next_pts += STEP;
        self.hub.publish(AccessUnit {
            params: self.params.clone(),
            pts,
            // The server's (for its RTCP reports); the ingest stamps reception itself.
            capture_us: T0 + pts * 100 / 9,
            key,
            data: Bytes::from(data),
        });
    }
}

/// The ingest's configuration for these tests.
fn config(cam: &Camera) -> IngestConfig {
    let mut cfg = IngestConfig::new("cam/main", cam.url());
    // Back-off waits only on the clock: no liveness probe shortening it over the network.
    cfg.port_probe = None;
    cfg.jitter_seed = Some(11);
    // Batching would hold these small frames in the socket until a mark's worth (4 KiB
    // at least) arrived, or an idle period passed on the simulated clock; it has its
    // own tests in ingest.rs.
    cfg.read_batch = Duration::ZERO;
    cfg.audio = false;
    cfg
}

/// The ingest of `cam` on `clock`, with a subscriber that takes every item of its hub (as
/// a recorder does).
fn spawn(cam: &Camera, clock: &SimClock) -> (Ingest, Subscriber, IngestConfig) {
    let cfg = config(cam);
    let hub = Hub::new("cam/main", 256);
    let items = hub.subscribe_bulk();
    let ingest = Ingest::spawn_with_clock(cfg.clone(), hub, Arc::new(clock.clone()));
    (ingest, items, cfg)
}

/// Waits (real time, bounded) for a status `pred` accepts.
async fn wait_status(
    status: &mut watch::Receiver<IngestStatus>,
    what: &str,
    pred: impl Fn(&IngestStatus) -> bool,
) -> IngestStatus {
    let found = tokio::time::timeout(WITHIN, status.wait_for(|s| pred(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match found {
        Ok(Ok(s)) => s,
        _ => panic!("not {what} within {WITHIN:?}: {:?}", *status.borrow()),
    }
}

/// Asserts that for [`QUIET`] the ingest stays streaming and does not reconnect.
async fn assert_still_streaming(status: &mut watch::Receiver<IngestStatus>, at: &str) {
    let changed = tokio::time::timeout(
        QUIET,
        status.wait_for(|s| s.state != IngestState::Streaming || s.reconnects > 0),
    )
    .await;
    if let Ok(r) = changed {
        panic!("declared dead {at}: {:?}", r.map(|s| s.clone()));
    }
}

/// The next item of the ingest's hub (real time, bounded).
async fn next_item(items: &mut Subscriber) -> Item {
    tokio::time::timeout(WITHIN, items.recv())
        .await
        .unwrap_or_else(|_| panic!("no item from the ingest within {WITHIN:?}"))
        .unwrap()
}

async fn next_video(items: &mut Subscriber) -> AccessUnit {
    match next_item(items).await {
        Item::Video(au) => au,
        other => panic!("expected an access unit, got {other:?}"),
    }
}

/// Lets the back-off in `st` end: its `until` is on the ingest's clock.
fn end_backoff(clock: &SimClock, st: &IngestStatus) {
    let IngestState::Backoff { until_wall_us, .. } = &st.state else {
        panic!("not backing off: {st:?}");
    };
    let left = (*until_wall_us - clock.wall_us()).max(0) as u64;
    // The status shows whole µs; the back-off waits the exact delay.
    clock.advance(Duration::from_micros(left + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_camera_is_declared_dead_at_the_stall_deadline_and_not_before() {
    init_logs();
    let clock = SimClock::new(T0);
    let mut cam = Camera::start().await;
    let (ingest, mut items, cfg) = spawn(&cam, &clock);
    let stall = cfg.stall_timeout;
    assert_eq!(stall, Duration::from_secs(4), "the documented default");
    let mut status = ingest.status();

    // The key frame the camera had published opens the session, at simulated time 0.
    assert!(next_video(&mut items).await.key);
    wait_status(&mut status, "streaming", |s| {
        s.state == IngestState::Streaming
    })
    .await;

    // A frame 3 s later moves the deadline to 3 s + 4 s: at 6 s, 2 s past a deadline
    // counted from the session's first frame, the camera is alive.
    clock.advance(Duration::from_secs(3));
    cam.publish(false);
    // Taken from retina (so its arrival was seen at 3 s) once it is in the hub.
    assert!(!next_video(&mut items).await.key);
    clock.advance(Duration::from_secs(3));
    assert_still_streaming(&mut status, "6 s after the first frame, 3 s after the last").await;

    // The camera stays silent with its connection open. One µs before the deadline: alive.
    clock.advance(stall - Duration::from_secs(3) - Duration::from_micros(1));
    assert_still_streaming(&mut status, "1 µs before the stall deadline").await;

    // At the deadline: dead, and backing off before a reconnect (within 3 s of real time,
    // less than the 4 s a wait on the host's clock would take).
    clock.advance(Duration::from_micros(1));
    let st = wait_status(&mut status, "backing off at the deadline", |s| {
        matches!(s.state, IngestState::Backoff { .. })
    })
    .await;
    let IngestState::Backoff { reason, .. } = &st.state else {
        unreachable!()
    };
    assert!(reason.contains("no video frame for 4s"), "{reason}");
    assert_eq!(st.reconnects, 0);

    // After the back-off (on the same clock) it reconnects, and streams the camera's
    // current GOP again.
    end_backoff(&clock, &st);
    let st = wait_status(&mut status, "streaming again", |s| {
        s.state == IngestState::Streaming
    })
    .await;
    assert_eq!(st.reconnects, 1, "{st:?}");
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gap_runs_from_the_last_access_unit_before_the_outage_to_the_first_after() {
    init_logs();
    let clock = SimClock::new(T0);
    let mut cam = Camera::start().await;
    let (ingest, mut items, cfg) = spawn(&cam, &clock);
    let mut status = ingest.status();

    // A few frames, each received at its own host time (the gap's start must be the
    // last one's, not any other's).
    let mut before = vec![next_video(&mut items).await];
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        cam.publish(false);
        before.push(next_video(&mut items).await);
    }
    let last_before = before.last().unwrap().clone();
    assert!(
        before.windows(2).all(|w| w[0].capture_us < w[1].capture_us),
        "capture times not distinct: {before:?}"
    );

    // The camera freezes; the ingest gives up on it and backs off.
    clock.advance(cfg.stall_timeout);
    let st = wait_status(&mut status, "backing off", |s| {
        matches!(s.state, IngestState::Backoff { .. })
    })
    .await;
    assert_eq!(st.last_frame_wall_us, Some(last_before.capture_us));

    // The camera comes back with a new GOP while the ingest backs off; the reconnected
    // session starts on that key frame.
    tokio::time::sleep(Duration::from_millis(2)).await;
    cam.publish(true);
    end_backoff(&clock, &st);
    let gap: Gap = match next_item(&mut items).await {
        Item::Gap(g) => g,
        other => panic!("expected the outage's gap first, got {other:?}"),
    };
    // Right after it, the access unit the stream resumes on.
    let first_after = next_video(&mut items).await;
    assert!(first_after.key);
    cam.publish(false);
    let second_after = next_video(&mut items).await;

    assert_eq!(gap.start_wall_us, last_before.capture_us, "{gap:?}");
    assert_eq!(gap.end_wall_us, first_after.capture_us, "{gap:?}");
    assert_eq!(gap.resume_pts, Some(first_after.pts), "{gap:?}");
    assert!(gap.reason.contains("no video frame"), "{gap:?}");
    assert!(gap.start_wall_us < gap.end_wall_us, "{gap:?}");
    // The outage is one gap: nothing else between the resumed frames.
    assert!(second_after.pts > first_after.pts);
    ingest.stop().await;
    // A resumed outage is not reported again at the stop.
    while let Ok(Ok(item)) = tokio::time::timeout(QUIET, items.recv()).await {
        assert!(matches!(item, Item::Video(_)), "{item:?}");
    }
}
