//! Ingest against real RTSP peers over 127.0.0.1: GStreamer's RTSP server (x264), and
//! Vigil's own camera with digest authentication, whose burned-in frame counter proves
//! that no frame is lost or repeated. Then the camera dies, hangs and comes back.
//!
//! Needs `cargo build -p vigil` first (or `VIGIL_BIN`), and GStreamer's Python bindings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{camera_data_dir, gst_server, vigil_camera, PASSWORD, USER};
use tokio::sync::watch;
use url::Url;
use vigil_camera::testsrc::read_code;
use vigil_camera::H264Decoder;
use vigil_hub::{Hub, Item, Subscriber};
use vigil_ingest::{Gap, Ingest, IngestConfig, IngestState, IngestStatus, Transport};
use vigil_media::AccessUnit;

const FPS: u32 = 15;
/// pts step of one frame at [`FPS`], 90 kHz.
const STEP: i64 = 90_000 / FPS as i64;
/// Vigil's default key-frame interval: two seconds.
const GOP: Duration = Duration::from_secs(2);

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

fn url(addr: std::net::SocketAddr) -> Url {
    Url::parse(&format!("rtsp://{addr}/main")).unwrap()
}

async fn next_au(sub: &mut Subscriber, within: Duration) -> AccessUnit {
    tokio::time::timeout(within, sub.recv_video())
        .await
        .unwrap_or_else(|_| panic!("no access unit within {within:?}"))
        .unwrap()
}

/// Collects access units for `dur` after the first one.
async fn collect(sub: &mut Subscriber, dur: Duration) -> Vec<AccessUnit> {
    let first = next_au(sub, Duration::from_secs(15)).await;
    let end = tokio::time::Instant::now() + dur;
    let mut aus = vec![first];
    while let Ok(r) = tokio::time::timeout_at(end, sub.recv_video()).await {
        aus.push(r.unwrap());
    }
    aus
}

async fn wait_state(
    status: &mut watch::Receiver<IngestStatus>,
    within: Duration,
    pred: impl Fn(&IngestState) -> bool,
) -> IngestStatus {
    let r = tokio::time::timeout(within, status.wait_for(|s| pred(&s.state)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match r {
        Ok(Ok(s)) => s,
        _ => panic!(
            "state not reached within {within:?}; now {:?}",
            status.borrow().state
        ),
    }
}

fn check_avcc(au: &AccessUnit) {
    let total: usize = au.nal_units().map(|n| n.len() + 4).sum();
    assert_eq!(
        total,
        au.data.len(),
        "AU data is not 4-byte length-prefixed NAL units"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_x264_camera_over_tcp_and_udp() {
    init_logs();
    let server = gst_server((320, 240), FPS);
    for transport in [Transport::Tcp, Transport::Udp] {
        let hub = Hub::new("gst", 512);
        let mut sub = hub.subscribe();
        let mut cfg = IngestConfig::new("gst", url(server.addr));
        cfg.transport = transport;
        let ingest = Ingest::spawn(cfg, hub.clone());
        let aus = collect(&mut sub, Duration::from_secs(5)).await;

        let n = aus.len() as i64;
        let want = i64::from(FPS) * 5;
        assert!(
            (want - 8..=want + 3).contains(&n),
            "{transport:?}: {n} AUs in 5 s, want ~{want}"
        );
        assert!(aus[0].key, "first AU must be a key frame");
        assert_eq!((aus[0].params.width, aus[0].params.height), (320, 240));
        assert!(
            aus.iter()
                .all(|a| std::sync::Arc::ptr_eq(&a.params, &aus[0].params)),
            "params Arc reused"
        );
        for w in aus.windows(2) {
            assert_eq!(w[1].pts - w[0].pts, STEP, "{transport:?}: pts step");
            assert!(w[1].capture_us >= w[0].capture_us);
        }
        aus.iter().for_each(check_avcc);
        assert!(
            aus.iter().filter(|a| a.key).count() >= 2,
            "x264 key-int-max is 2 s"
        );

        let st = ingest.status().borrow().clone();
        assert_eq!(st.state, IngestState::Streaming);
        // Counters are published about once a second.
        assert!(st.frames + u64::from(FPS) + 1 >= aus.len() as u64, "{st:?}");
        let bytes: usize = aus.iter().map(|a| a.data.len()).sum();
        assert!(st.bytes > 0 && st.bytes <= bytes as u64, "{st:?}");
        assert!(st.bitrate_bps > 10_000, "{st:?}");
        ingest.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_camera_with_digest_auth_loses_no_frame() {
    init_logs();
    let data = camera_data_dir();
    let cam = vigil_camera(data.path(), (320, 240), FPS, 0);
    let hub = Hub::new("vigil", 512);
    let mut sub = hub.subscribe();
    let cfg = IngestConfig::new("vigil", url(cam.addr)).with_credentials(USER, PASSWORD);
    let ingest = Ingest::spawn(cfg, hub.clone());
    let aus = collect(&mut sub, Duration::from_secs(5)).await;
    assert!(aus.len() >= 70, "{} AUs", aus.len());
    assert!(aus[0].key);

    let mut dec = H264Decoder::new().unwrap();
    let mut counters = Vec::new();
    for au in &aus {
        check_avcc(au);
        if let Some(f) = dec.decode(au).unwrap() {
            let code = read_code(&f.y, f.width as usize, f.width, f.height)
                .unwrap_or_else(|| panic!("burned-in code unreadable at pts {}", au.pts));
            counters.push(code.counter);
        }
    }
    assert!(
        counters.len() + 1 >= aus.len(),
        "decoded {} of {}",
        counters.len(),
        aus.len()
    );
    for w in counters.windows(2) {
        assert_eq!(
            w[1],
            w[0].wrapping_add(1),
            "counter jumped: lost or repeated frame"
        );
    }
    for w in aus.windows(2) {
        assert_eq!(w[1].pts - w[0].pts, STEP);
    }
    ingest.stop().await;

    // Wrong password: a clear, permanent failure, never a stream.
    let hub = Hub::new("vigil-bad", 16);
    let cfg = IngestConfig::new("bad", url(cam.addr)).with_credentials(USER, "not-the-password");
    let ingest = Ingest::spawn(cfg, hub.clone());
    let mut status = ingest.status();
    let st = wait_state(&mut status, Duration::from_secs(10), |s| {
        matches!(s, IngestState::Failed(_))
    })
    .await;
    let IngestState::Failed(msg) = &st.state else {
        unreachable!()
    };
    assert!(msg.contains("credentials"), "{msg}");
    assert!(!msg.contains("not-the-password"), "{msg}");
    assert_eq!(hub.published(), 0);
    ingest.stop().await;
}

/// Takes the next gap from a subscriber that takes every item, skipping video before it
/// (no discontinuity is expected), and checks that it comes right before the access unit
/// the stream resumes on.
async fn next_gap(items: &mut Subscriber, within: Duration) -> Gap {
    let end = tokio::time::Instant::now() + within;
    let gap = loop {
        match tokio::time::timeout_at(end, items.recv()).await {
            Ok(Ok(Item::Gap(g))) => break g,
            Ok(Ok(Item::Video(_))) => continue,
            other => panic!("expected a gap, got {other:?}"),
        }
    };
    match tokio::time::timeout_at(end, items.recv()).await {
        Ok(Ok(Item::Video(au))) => assert_eq!(Some(au.pts), gap.resume_pts, "{gap:?}"),
        other => panic!("expected the access unit after {gap:?}, got {other:?}"),
    }
    gap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_killed_then_restarted_resumes_with_a_gap() {
    init_logs();
    let data = camera_data_dir();
    let cam = vigil_camera(data.path(), (320, 240), FPS, 0);
    let port = cam.addr.port();
    let hub = Hub::new("flaky", 512);
    let mut sub = hub.subscribe();
    // What a recorder sees: every item, gaps in order with the access units.
    let mut items = hub.subscribe_bulk();
    let mut cfg = IngestConfig::new("flaky", url(cam.addr)).with_credentials(USER, PASSWORD);
    // The few seconds of streaming between the outages below must count as healthy, so
    // the hang is followed by the initial back-off (the default counts any session that
    // recorded a frame; 2 s checks that a non-zero threshold is honoured too).
    cfg.backoff.healthy_after = Duration::from_secs(2);
    let ingest = Ingest::spawn(cfg, hub.clone());
    let mut status = ingest.status();
    let mut last_before = collect(&mut sub, Duration::from_secs(2))
        .await
        .pop()
        .unwrap();

    // Kill: noticed within 5 s.
    let killed = Instant::now();
    cam.kill();
    let st = wait_state(&mut status, Duration::from_secs(5), |s| {
        matches!(s, IngestState::Backoff { .. })
    })
    .await;
    println!("backoff after {:?}: {:?}", killed.elapsed(), st.state);
    // What arrived between the collection and the kill.
    while let Ok(Ok(au)) = tokio::time::timeout(Duration::from_millis(50), sub.recv_video()).await {
        last_before = au;
    }

    // Down for 6 s (the back-off grows to seconds), then back on the same port.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let cam = vigil_camera(data.path(), (320, 240), FPS, port);
    let back = Instant::now();
    // Without the port probe, the next attempt would only be at the Backoff's `until`.
    let pending_backoff = match &status.borrow().state {
        IngestState::Backoff { until_wall_us, .. } => {
            let now = vigil_recorder_wall_us();
            Duration::from_micros((*until_wall_us - now).max(0) as u64)
        }
        _ => Duration::ZERO,
    };
    let resumed = next_au(&mut sub, Duration::from_secs(20)).await;
    let took = back.elapsed();
    println!(
        "resumed {took:?} after the camera was back (back-off pending then: {pending_backoff:?})"
    );
    assert!(
        took <= Duration::from_secs(1) + GOP,
        "resumed after {took:?}; promise: 1 s + GOP whatever the back-off"
    );
    assert!(resumed.key);

    let gap = next_gap(&mut items, Duration::from_secs(2)).await;
    assert_eq!(gap.start_wall_us, last_before.capture_us);
    assert_eq!(gap.end_wall_us, resumed.capture_us);
    assert_eq!(gap.resume_pts, Some(resumed.pts));
    let outage_us = resumed.capture_us - last_before.capture_us;
    assert!(outage_us > 6_000_000, "{outage_us}");
    // pts keep counting through the outage, on the host's monotonic clock.
    let pts_gap_us = (resumed.pts - last_before.pts) * 1_000_000 / 90_000;
    assert!(
        (pts_gap_us - outage_us).abs() < 200_000,
        "pts gap {pts_gap_us} µs vs wall {outage_us} µs"
    );
    let st = wait_state(&mut status, Duration::from_secs(2), |s| {
        *s == IngestState::Streaming
    })
    .await;
    assert!(st.reconnects >= 1, "{st:?}");

    // A camera that hangs with its connection open: noticed by the stall timeout.
    let _ = collect(&mut sub, Duration::from_secs(3)).await;
    let frozen = Instant::now();
    cam.freeze(true);
    wait_state(
        &mut status,
        Duration::from_secs(5) + Duration::from_millis(300),
        |s| matches!(s, IngestState::Backoff { .. }),
    )
    .await;
    println!("hang noticed after {:?}", frozen.elapsed());
    assert!(frozen.elapsed() <= Duration::from_secs(5));
    // Frames published between the collection and the freeze are still queued for this
    // subscriber; the first one after the thaw is what must be a key frame.
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(50), sub.recv_video()).await {}
    cam.freeze(false);
    let thawed = Instant::now();
    let resumed = next_au(&mut sub, Duration::from_secs(15)).await;
    println!("resumed {:?} after the hang ended", thawed.elapsed());
    assert!(resumed.key);
    assert!(
        thawed.elapsed() <= Duration::from_millis(500) + Duration::from_secs(1) + GOP,
        "initial back-off + 1 s + GOP"
    );
    let gap = next_gap(&mut items, Duration::from_secs(2)).await;
    assert!(gap.reason.contains("no video frame"), "{gap:?}");
    ingest.stop().await;
}

fn vigil_recorder_wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Access units as they reach a subscriber, with their arrival times.
async fn collect_timed(
    sub: &mut Subscriber,
    dur: Duration,
) -> Vec<(tokio::time::Instant, AccessUnit)> {
    let end = tokio::time::Instant::now() + dur;
    let mut aus = Vec::new();
    while let Ok(r) = tokio::time::timeout_at(end, sub.recv_video()).await {
        aus.push((tokio::time::Instant::now(), r.unwrap()));
    }
    aus
}

/// Inter-arrival gaps of at least `min`: the pauses between read batches.
fn long_gaps(aus: &[(tokio::time::Instant, AccessUnit)], min: Duration) -> usize {
    aus.windows(2).filter(|w| w[1].0 - w[0].0 >= min).count()
}

async fn wait_batch(
    status: &mut watch::Receiver<IngestStatus>,
    within: Duration,
    pred: impl Fn(u64) -> bool,
) {
    let r = tokio::time::timeout(within, status.wait_for(|s| pred(s.read_batch_bytes)))
        .await
        .is_ok();
    assert!(
        r,
        "read batch not as expected within {within:?}: {} bytes",
        status.borrow().read_batch_bytes
    );
}

/// Burned-in counters of `aus` strictly +1 and pts exactly one frame apart: nothing lost
/// or repeated, whatever the reads did.
fn assert_contiguous(aus: &[(tokio::time::Instant, AccessUnit)]) {
    let mut dec = H264Decoder::new().unwrap();
    let mut counters = Vec::new();
    for (_, au) in aus {
        check_avcc(au);
        if let Some(f) = dec.decode(au).unwrap() {
            let code = read_code(&f.y, f.width as usize, f.width, f.height)
                .unwrap_or_else(|| panic!("burned-in code unreadable at pts {}", au.pts));
            counters.push(code.counter);
        }
    }
    assert!(counters.len() + 1 >= aus.len());
    for w in counters.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "lost or repeated frame");
    }
    for w in aus.windows(2) {
        assert_eq!(w[1].1.pts - w[0].1.pts, STEP);
    }
}

/// Waits for the next read batch to be delivered, then lets `after` of the stream gather
/// in the socket, below the mark.
async fn just_after_a_batch(sub: &mut Subscriber, after: Duration) -> Vec<AccessUnit> {
    let mut got = vec![next_au(sub, Duration::from_secs(5)).await];
    // The rest of this batch comes back to back.
    while let Ok(r) = tokio::time::timeout(Duration::from_millis(30), sub.recv_video()).await {
        got.push(r.unwrap());
    }
    tokio::time::sleep(after).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_batched_only_while_nobody_watches_and_lose_nothing_on_stop_or_hang() {
    init_logs();
    let data = camera_data_dir();
    // 300 kbit/s: half a second of it (18 KiB) is worth batching.
    let cam = vigil_camera(data.path(), (320, 240), FPS, 0);
    let budget = Duration::from_millis(500);
    let hub = Hub::new("batched", 512);
    let mut recorder = hub.subscribe_bulk();
    let mut cfg = IngestConfig::new("batched", url(cam.addr)).with_credentials(USER, PASSWORD);
    cfg.read_batch = budget;
    let ingest = Ingest::spawn(cfg.clone(), hub.clone());
    let mut status = ingest.status();
    let mut seen = collect_timed(&mut recorder, Duration::from_millis(500)).await;

    // Nobody watches: after a measured second, the kernel hands over ~500 ms at a time.
    wait_batch(&mut status, Duration::from_secs(10), |b| b > 4096).await;
    let batched = collect_timed(&mut recorder, Duration::from_secs(3)).await;
    let pauses = long_gaps(&batched, Duration::from_millis(250));
    println!(
        "batched: {} bytes, {} frames in 3 s, {pauses} pauses >= 250 ms",
        status.borrow().read_batch_bytes,
        batched.len()
    );
    assert!(pauses >= 3, "reads not batched: {pauses} pauses");
    seen.extend(batched);

    // A viewer: frames flow as they come again.
    let viewer = hub.subscribe();
    wait_batch(&mut status, Duration::from_secs(3), |b| b == 0).await;
    let watched = collect_timed(&mut recorder, Duration::from_secs(3)).await;
    let pauses = long_gaps(&watched, Duration::from_millis(250));
    println!("watched: {} frames in 3 s, {pauses} pauses", watched.len());
    assert!(
        pauses <= 1,
        "a live viewer waits for batches: {pauses} pauses"
    );
    seen.extend(watched);

    // The viewer leaves: batching again. Stop with ~300 ms of the stream below the mark:
    // the ingest reads it before it goes.
    drop(viewer);
    wait_batch(&mut status, Duration::from_secs(5), |b| b > 4096).await;
    seen.extend(collect_timed(&mut recorder, Duration::from_millis(200)).await);
    for au in just_after_a_batch(&mut recorder, Duration::from_millis(300)).await {
        seen.push((tokio::time::Instant::now(), au));
    }
    let stopped = tokio::time::Instant::now();
    ingest.stop().await;
    let drained: Vec<_> = collect_timed(&mut recorder, Duration::from_millis(300)).await;
    println!("stop: {} frames drained", drained.len());
    assert!(
        drained.len() >= 2,
        "frames waiting in the socket lost at stop"
    );
    assert!(drained
        .iter()
        .all(|(t, _)| *t - stopped < Duration::from_millis(300)));
    seen.extend(drained);
    assert_contiguous(&seen);

    // A camera that hangs with frames below the mark: read once it has been quiet for
    // 4 batches (2 s here), well before the 4 s stall timeout ends the session.
    let hub = Hub::new("hangs", 512);
    let mut recorder = hub.subscribe_bulk();
    let ingest = Ingest::spawn(cfg, hub.clone());
    let mut status = ingest.status();
    next_au(&mut recorder, Duration::from_secs(10)).await;
    wait_batch(&mut status, Duration::from_secs(10), |b| b > 4096).await;
    just_after_a_batch(&mut recorder, Duration::from_millis(300)).await;
    cam.freeze(true);
    let frozen = tokio::time::Instant::now();
    let after = collect_timed(&mut recorder, Duration::from_millis(3500)).await;
    cam.freeze(false);
    println!(
        "hang: {} frames read {:?} after the camera froze",
        after.len(),
        after.first().map(|(t, _)| *t - frozen)
    );
    assert!(
        after.len() >= 2,
        "frames below the mark not read after a hang"
    );
    assert!(after
        .iter()
        .all(|(t, _)| *t - frozen < Duration::from_millis(3000)));
    ingest.stop().await;
}
