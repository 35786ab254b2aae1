//! The NVR against a real camera in the same process: Vigil's test pattern, encoded with
//! OpenH264 and served by Vigil's RTSP server on 127.0.0.1:0, recorded through the real
//! ingest (retina) and recorder.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use vigil_camera::{Camera, CameraConfig, SourceSpec, StreamConfig};
use vigil_hub::Hub;
use vigil_recorder::RecorderConfig;
use vigil_rtsp::{AuthDecision, AuthRequest, RtspAuth, RtspServer};

use crate::{
    CameraSource, CameraSpec, MotionSettings, Nvr, NvrConfig, NvrError, NvrEvent, RecordMode,
    Secret, StreamState,
};

/// Lets every request in: the tests are about the NVR, not about RTSP authentication.
struct AllowAll;

impl RtspAuth for AllowAll {
    fn check(&self, _: &AuthRequest<'_>, _connection: u64) -> AuthDecision {
        AuthDecision::Allowed {
            user: "test".into(),
            role: vigil_auth::Role::Viewer,
        }
    }
}

/// A test-pattern camera (320x240 main, 160x120 sub, 15 fps) behind an RTSP server.
struct TestCamera {
    addr: SocketAddr,
    camera: Option<Camera>,
    stop: watch::Sender<bool>,
}

impl TestCamera {
    async fn start() -> TestCamera {
        let stream = |width, height| StreamConfig {
            width,
            height,
            fps: 15.0,
            bitrate_bps: 300_000,
            keyint: 15,
        };
        let (main, sub) = (Hub::new("main", 64), Hub::new("sub", 64));
        let cfg = CameraConfig {
            source: SourceSpec::TestPattern,
            main: stream(320, 240),
            sub: Some(stream(160, 120)),
        };
        let camera = {
            let (m, s) = (main.clone(), sub.clone());
            tokio::task::spawn_blocking(move || Camera::start(cfg, m, Some(s)))
                .await
                .unwrap()
                .unwrap()
        };
        let mounts = HashMap::from([("main".to_owned(), main), ("sub".to_owned(), sub)]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = watch::channel(false);
        tokio::spawn(RtspServer::new(mounts, Arc::new(AllowAll)).serve(listener, rx));
        TestCamera {
            addr,
            camera: Some(camera),
            stop,
        }
    }

    fn url(&self, stream: &str) -> String {
        format!("rtsp://{}/{stream}", self.addr)
    }
}

impl Drop for TestCamera {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(mut c) = self.camera.take() {
            c.stop();
        }
    }
}

fn spec(name: &str, url: &str) -> CameraSpec {
    CameraSpec {
        name: name.into(),
        url: url.into(),
        sub_url: None,
        username: None,
        password: None,
        transport: crate::Transport::Tcp,
        audio: false,
        max_age_s: None,
        event_max_age_s: None,
        record: RecordMode::Continuous,
        motion: MotionSettings::default(),
        source: CameraSource::Ui,
    }
}

fn config(dir: &std::path::Path, cameras: Vec<CameraSpec>) -> NvrConfig {
    NvrConfig {
        data_dir: dir.to_owned(),
        recorder: RecorderConfig::default(),
        cameras,
        announce: false,
    }
}

/// Recorded µs of `camera/stream` so far (0 if nothing).
fn recorded_end(nvr: &Nvr, camera: &str, stream: &str) -> i64 {
    nvr.recorder()
        .ranges(camera, stream, 0, i64::MAX)
        .map(|r| r.iter().map(|x| x.end_wall_us).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Writes an export and decodes it with ffmpeg (which must be installed: scripts/test.sh
/// installs it); returns what ffmpeg reported as errors.
fn ffmpeg_decode_errors(plan: &vigil_recorder::ExportPlan, dir: &std::path::Path) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
    let path = dir.join("export.mp4");
    let mut out = std::fs::File::create(&path).unwrap();
    out.write_all(&plan.header).unwrap();
    for (file, offset, len) in &plan.ranges {
        let mut f = std::fs::File::open(file).unwrap();
        f.seek(SeekFrom::Start(*offset)).unwrap();
        let mut buf = vec![0; usize::try_from(*len).unwrap()];
        f.read_exact(&mut buf).unwrap();
        out.write_all(&buf).unwrap();
    }
    drop(out);
    vigil_testkit::ffmpeg::decode_errors(&path)
}

/// Waits until `f` holds, polling; panics with `what` after `timeout`.
async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_update_remove_a_camera_starts_restarts_and_stops_its_recording() {
    let cam = TestCamera::start().await;
    let dir = tempfile::tempdir().unwrap();
    let nvr = Nvr::start(config(dir.path(), Vec::new())).await.unwrap();
    let mut bus = nvr.subscribe();
    assert!(nvr.cameras().is_empty());

    let mut s = spec("porch", &cam.url("main"));
    s.sub_url = Some(cam.url("sub"));
    // Credentials in the URL are moved out of it and stored (the test server ignores them).
    s.url = format!("rtsp://viewer:pw-in-url@{}/main", cam.addr);
    nvr.add_camera(s.clone()).await.unwrap();
    assert!(matches!(
        nvr.add_camera(s.clone()).await,
        Err(NvrError::Exists(_))
    ));

    // Frames flow: status says so, with measured rates, and the recorder writes both streams.
    wait_for("both streams recorded", Duration::from_secs(20), || {
        recorded_end(&nvr, "porch", "main") > 0 && recorded_end(&nvr, "porch", "sub") > 0
    })
    .await;
    let online = tokio::time::timeout(Duration::from_secs(5), bus.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        online,
        NvrEvent::CameraOnline {
            camera: "porch".into()
        }
    );
    wait_for("fps measured", Duration::from_secs(10), || {
        nvr.camera("porch")
            .is_some_and(|(_, st)| st.streams.iter().all(|s| s.fps > 5.0))
    })
    .await;
    let (pub_spec, st) = nvr.camera("porch").unwrap();
    assert_eq!(pub_spec.password, None, "the password never leaves the NVR");
    assert!(nvr.has_password("porch"));
    assert_eq!(pub_spec.url, cam.url("main"));
    assert_eq!(pub_spec.username.as_deref(), Some("viewer"));
    let main = &st.streams[0];
    assert_eq!(
        (main.stream.as_str(), main.state),
        ("main", StreamState::Streaming)
    );
    assert_eq!(main.codec, Some(vigil_media::Codec::H264));
    assert_eq!((main.width, main.height), (Some(320), Some(240)));
    assert!((10.0..=20.0).contains(&main.fps), "{main:?}");
    assert!(main.bitrate_bps > 10_000, "{main:?}");
    assert!(main.last_frame_us.is_some());
    assert_eq!(st.streams[1].width, Some(160));

    // Snapshots come from the sub stream.
    let jpeg = nvr.snapshot_jpeg("porch").await.unwrap();
    let mut dec = jpeg_decoder::Decoder::new(&jpeg[..]);
    dec.decode().unwrap();
    let info = dec.info().unwrap();
    assert_eq!((info.width, info.height), (160, 120));

    // Stored with the password, privately.
    let stored = std::fs::read_to_string(dir.path().join(crate::CAMERAS_FILE)).unwrap();
    assert!(stored.contains("pw-in-url") && !stored.contains("viewer:pw"));

    // Update: without a password the stored one is kept; the pipeline restarts with the
    // new spec (no sub stream any more) and records again.
    let mut s2 = spec("porch", &cam.url("main"));
    s2.username = Some("viewer".into());
    nvr.update_camera("porch", s2).await.unwrap();
    assert!(nvr.has_password("porch"));
    assert!(nvr.hub("porch", "sub").is_none());
    let before = recorded_end(&nvr, "porch", "main");
    wait_for(
        "recording after the restart",
        Duration::from_secs(20),
        || recorded_end(&nvr, "porch", "main") > before + 1_000_000,
    )
    .await;
    // The restart stopped the old recording and started a fresh one: a new file after
    // the old one (never overlapping it), the time between a gap row, and the recording
    // around it exports as one MP4 that decodes cleanly.
    let gaps = nvr.recorder().gaps("porch", "main", 0, i64::MAX).unwrap();
    assert!(gaps.iter().any(|g| g.reason == "not recording"), "{gaps:?}");
    let mut files: Vec<_> = nvr
        .recorder()
        .archive()
        .index()
        .all_files()
        .unwrap()
        .into_iter()
        .filter(|f| f.path.starts_with("porch/main/"))
        .collect();
    files.sort_by_key(|f| f.start_wall_us);
    assert!(files.len() >= 2, "{files:?}");
    assert!(
        files
            .windows(2)
            .all(|w| w[0].end_wall_us <= w[1].start_wall_us),
        "{files:?}"
    );
    let plan = nvr
        .recorder()
        .export("porch", "main", 0, recorded_end(&nvr, "porch", "main"))
        .unwrap();
    assert!(plan.frames > 15, "{}", plan.frames);
    let errors = ffmpeg_decode_errors(&plan, dir.path());
    assert!(errors.is_empty(), "ffmpeg: {errors}");
    let sub_end = recorded_end(&nvr, "porch", "sub");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        recorded_end(&nvr, "porch", "sub"),
        sub_end,
        "sub stream no longer recorded"
    );

    // Remove: gone from the list and the store, recording stops, recordings stay.
    nvr.remove_camera("porch").await.unwrap();
    assert!(nvr.camera("porch").is_none());
    assert!(nvr.hub("porch", "main").is_none());
    assert!(matches!(
        nvr.remove_camera("porch").await,
        Err(NvrError::NoSuchCamera(_))
    ));
    let end = recorded_end(&nvr, "porch", "main");
    assert!(end > 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(recorded_end(&nvr, "porch", "main"), end, "still recording");
    let stored = std::fs::read_to_string(dir.path().join(crate::CAMERAS_FILE)).unwrap();
    assert!(!stored.contains("porch"), "{stored}");

    // Added again under the same name: recorded again.
    nvr.add_camera(spec("porch", &cam.url("main")))
        .await
        .unwrap();
    wait_for("recording after re-adding", Duration::from_secs(20), || {
        recorded_end(&nvr, "porch", "main") > end + 1_000_000
    })
    .await;
    nvr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_cameras_are_read_only_and_stored_cameras_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: the cameras are offline, which is fine for this test.
    let mut fixed = spec("garage", "rtsp://127.0.0.1:9/main");
    fixed.source = CameraSource::Config;
    fixed.max_age_s = Some(3600);
    let nvr = Nvr::start(config(dir.path(), vec![fixed.clone()]))
        .await
        .unwrap();
    let mut edit = fixed.clone();
    edit.audio = true;
    assert!(matches!(
        nvr.update_camera("garage", edit).await,
        Err(NvrError::ReadOnly(_))
    ));
    assert!(matches!(
        nvr.remove_camera("garage").await,
        Err(NvrError::ReadOnly(_))
    ));
    // A web-app camera may not take a configured camera's name.
    assert!(matches!(
        nvr.add_camera(spec("garage", "rtsp://127.0.0.1:9/x")).await,
        Err(NvrError::Exists(_))
    ));
    let mut ui = spec("shed", "rtsp://127.0.0.1:9/shed");
    ui.source = CameraSource::Config; // ignored: whatever comes through the API is Ui
    ui.username = Some("u".into());
    ui.password = Some(Secret::new("p"));
    ui.max_age_s = Some(7200);
    nvr.add_camera(ui).await.unwrap();
    let ages = nvr.recorder().retention().max_age;
    assert_eq!(ages.get("garage"), Some(&Duration::from_secs(3600)));
    assert_eq!(ages.get("shed"), Some(&Duration::from_secs(7200)));
    let names: Vec<_> = nvr
        .cameras()
        .into_iter()
        .map(|(s, _)| (s.name, s.source))
        .collect();
    assert_eq!(
        names,
        [
            ("garage".to_owned(), CameraSource::Config),
            ("shed".to_owned(), CameraSource::Ui)
        ]
    );
    // Not connected: the status says so and a snapshot is refused, not an error 500.
    let (_, st) = nvr.camera("shed").unwrap();
    assert_ne!(st.streams[0].state, StreamState::Streaming);
    assert!(matches!(
        nvr.snapshot_jpeg("shed").await,
        Err(NvrError::Unavailable(_))
    ));
    assert!(matches!(
        nvr.snapshot_jpeg("nope").await,
        Err(NvrError::NoSuchCamera(_))
    ));
    // The stored password is never sent to another address than the one it was given for.
    let mut moved = spec("shed", "rtsp://192.0.2.99/shed");
    moved.username = Some("u".into());
    let e = nvr.update_camera("shed", moved.clone()).await.unwrap_err();
    assert!(e.to_string().contains("password again"), "{e}");
    let e = nvr.probe_camera(&moved).await.unwrap_err();
    assert!(e.to_string().contains("password again"), "{e}");
    nvr.shutdown().await;
    drop(nvr);

    let nvr = Nvr::start(config(dir.path(), vec![fixed])).await.unwrap();
    assert!(nvr.has_password("shed"));
    assert_eq!(nvr.cameras().len(), 2);
    nvr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_the_cameras_codec_and_size_and_fails_clearly() {
    let cam = TestCamera::start().await;
    let dir = tempfile::tempdir().unwrap();
    let nvr = Nvr::start(config(dir.path(), Vec::new())).await.unwrap();
    let report = nvr
        .probe_camera(&spec("t", &cam.url("main")))
        .await
        .unwrap();
    assert_eq!(
        (
            report.codec.as_str(),
            report.width,
            report.height,
            report.audio
        ),
        ("h264", 320, 240, false)
    );
    // A closed port fails with a probe error, quickly.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = l.local_addr().unwrap();
    drop(l);
    let t0 = Instant::now();
    let e = nvr
        .probe_camera(&spec("t", &format!("rtsp://{closed}/main")))
        .await
        .unwrap_err();
    assert!(matches!(e, NvrError::Probe(_)), "{e:?}");
    assert!(t0.elapsed() < Duration::from_secs(11));
    // An invalid spec is refused before any connection.
    assert!(matches!(
        nvr.probe_camera(&spec("t", "http://x/")).await,
        Err(NvrError::Invalid(_))
    ));
    nvr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_motion_events_are_deleted_by_their_cameras_age_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cam = spec("gate", "rtsp://127.0.0.1:9/main");
    cam.source = CameraSource::Config;
    cam.max_age_s = Some(86_400);
    cam.event_max_age_s = Some(3600);
    let mut cfg = config(dir.path(), vec![cam]);
    cfg.recorder.retention_interval = Duration::from_secs(1);
    let nvr = Nvr::start(cfg).await.unwrap();
    let store = nvr.event_store().clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let old = store
        .insert_start("gate", &[], now - 7_200_000_000, 0.5, None, None)
        .unwrap();
    store
        .finish(old.id, now - 7_100_000_000, 0.5, None)
        .unwrap();
    let recent = store
        .insert_start("gate", &[], now - 60_000_000, 0.5, None, None)
        .unwrap();
    store
        .finish(recent.id, now - 50_000_000, 0.5, None)
        .unwrap();
    // Another camera's events are not this camera's limit's business.
    let other = store
        .insert_start("elsewhere", &[], now - 7_200_000_000, 0.5, None, None)
        .unwrap();
    store
        .finish(other.id, now - 7_100_000_000, 0.5, None)
        .unwrap();
    // Passes run every second; the generous bound is for a loaded CI machine, where one
    // commit behind the whole suite's fsyncs has taken over 5 s.
    wait_for("the old event deleted", Duration::from_secs(30), || {
        store.get(old.id).unwrap().is_none()
    })
    .await;
    assert!(store.get(recent.id).unwrap().is_some());
    assert!(store.get(other.id).unwrap().is_some());
    nvr.shutdown().await;
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footage_of_a_motion_event_outlives_the_cameras_age_limit() {
    let cam = TestCamera::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Continuous footage is kept 1 s, footage of an event 1 h; files of about 1 s.
    let mut gate = spec("gate", &cam.url("main"));
    gate.source = CameraSource::Config;
    gate.max_age_s = Some(1);
    gate.event_max_age_s = Some(3600);
    gate.motion.enabled = false; // the only event is the one this test writes
    let mut cfg = config(dir.path(), vec![gate]);
    cfg.recorder.file_duration = Duration::from_secs(1);
    cfg.recorder.retention_interval = Duration::from_secs(1);
    let nvr = Nvr::start(cfg).await.unwrap();
    let files = || -> Vec<vigil_recorder::db::FileRow> {
        let mut f: Vec<_> = nvr
            .recorder()
            .archive()
            .index()
            .all_files()
            .unwrap()
            .into_iter()
            .filter(|f| f.path.starts_with("gate/main/"))
            .collect();
        f.sort_by_key(|f| f.start_wall_us);
        f
    };
    wait_for("recording", Duration::from_secs(20), || {
        recorded_end(&nvr, "gate", "main") > 0
    })
    .await;
    let first_start = files()[0].start_wall_us;
    // A motion event from t+6 s to t+7 s, through the real event store, written while it
    // happens (open first, as the detector does). With the 5 s kept before an event,
    // [t+1 s, t+7 s] is event footage.
    let t = now_us();
    let store = nvr.event_store().clone();
    let ev = store
        .insert_start("gate", &[], t + 6_000_000, 0.5, None, None)
        .unwrap();
    let (keep_from, keep_to) = (t + 1_000_000, t + 7_000_000);
    tokio::time::sleep(Duration::from_millis(7500)).await;
    store.finish(ev.id, t + 7_000_000, 0.5, None).unwrap();
    let event_footage =
        |f: &vigil_recorder::db::FileRow| f.start_wall_us <= keep_to && f.end_wall_us >= keep_from;
    // Every closed file that ended more than 3 s ago (two passes past its 1 s limit) is
    // gone unless it holds event footage.
    wait_for(
        "continuous footage deleted, event footage kept",
        Duration::from_secs(20),
        || {
            let old = now_us() - 3_000_000;
            recorded_end(&nvr, "gate", "main") > t + 11_000_000
                && files()
                    .iter()
                    .filter(|f| f.state == vigil_recorder::db::FileState::Closed)
                    .filter(|f| f.end_wall_us < old)
                    .all(event_footage)
        },
    )
    .await;
    let left = files();
    assert!(
        left[0].start_wall_us > first_start,
        "the oldest footage went"
    );
    let kept: Vec<_> = left.iter().filter(|f| event_footage(f)).collect();
    let kept_s = kept
        .iter()
        .map(|f| f.end_wall_us - f.start_wall_us)
        .sum::<i64>();
    assert!(kept_s >= 5_000_000, "{kept:?}");
    assert!(
        kept.iter().all(|f| f.end_wall_us < now_us() - 3_000_000),
        "kept past the 1 s limit: {kept:?}"
    );
    // After the event, continuous footage goes again.
    assert!(
        left.iter()
            .filter(|f| f.start_wall_us > keep_to)
            .all(|f| f.end_wall_us > now_us() - 5_000_000),
        "{left:?}"
    );
    nvr.shutdown().await;
}
