//! Motion detection end to end with real parts: `vigil camera --source testsrc:scene` (the
//! scripted scene, encoded by the camera, served over RTSP) → the NVR core (ingest of both
//! streams, recorder, motion detector on the sub stream) → events in `events.sqlite3`.
//!
//! The scene loops every 30 s on the wall clock (see `vigil_camera::testsrc::scene`): the
//! object walks from :04 to :11 of each loop, the lights go up at :15 and down at :21, and
//! something swings inside a masked area from :24 to :28.5. Events must start and end within
//! 1 s of the walk; the lights and the masked motion must raise none. A second camera spec on
//! the same stream records only around motion (the recording gate): the walk with its pre- and
//! post-roll is recorded, the rest of the loop is not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil_camera::testsrc::SceneScript;
use vigil_nvr::events::{EventFilter, EventRow};
use vigil_nvr::{
    CameraSource, CameraSpec, MotionSettings, Nvr, NvrConfig, NvrEvent, RecordMode, Secret,
    ZoneKind, ZoneSpec,
};

const MAIN: (u32, u32) = (640, 360);
const PRE_ROLL_S: u32 = 3;
const POST_ROLL_S: u32 = 2;
const S: i64 = 1_000_000;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// `vigil camera --source testsrc:scene`, killed on drop.
struct SceneCamera {
    child: Child,
    rtsp: String,
    _data: tempfile::TempDir,
}

impl Drop for SceneCamera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_scene_camera() -> SceneCamera {
    let data = tempfile::tempdir().unwrap();
    common::add_user(data.path(), common::USER, common::PASSWORD);
    let mut child = Command::new(common::vigil_bin())
        .args(["camera", "--source", "testsrc:scene", "--data"])
        .arg(data.path())
        .args(["--rtsp", "127.0.0.1:0", "--rtsps", "off", "--http", "off"])
        .args(["--onvif", "off"])
        .args(["--size", &format!("{}x{}", MAIN.0, MAIN.1)])
        .args(["--sub-size", "320x180", "--fps", "15", "--bitrate", "800k"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vigil camera");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    // Owned from here: killed and reaped on every path, panics included.
    let mut cam = SceneCamera {
        child,
        rtsp: String::new(),
        _data: data,
    };
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("vigil camera printed no `listening rtsp` line");
        if let Some(addr) = line.strip_prefix("listening rtsp ") {
            cam.rtsp = addr.trim().to_owned();
            return cam;
        }
    }
}

fn rect(name: &str, kind: ZoneKind, (x0, y0, x1, y1): (f32, f32, f32, f32)) -> ZoneSpec {
    ZoneSpec {
        name: name.into(),
        kind,
        points: vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
        sensitivity: None,
        min_area_pct: None,
    }
}

fn spec(cam: &SceneCamera, name: &str, record: RecordMode) -> CameraSpec {
    let script = SceneScript::default();
    CameraSpec {
        name: name.into(),
        url: format!("rtsp://{}/main", cam.rtsp),
        sub_url: Some(format!("rtsp://{}/sub", cam.rtsp)),
        username: Some(common::USER.into()),
        password: Some(Secret::new(common::PASSWORD)),
        transport: vigil_nvr::Transport::Tcp,
        audio: false,
        max_age_s: None,
        event_max_age_s: None,
        record,
        motion: MotionSettings {
            zones: vec![
                rect("clock", ZoneKind::Mask, script.overlay_mask(MAIN.0, MAIN.1)),
                rect("flag", ZoneKind::Mask, script.masked_area()),
            ],
            ..MotionSettings::default()
        },
        source: CameraSource::Config,
    }
}

fn secs(us: i64, base: i64) -> f64 {
    (us - base) as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_scene_events_match_the_script_and_lights_and_masks_raise_none() {
    let cam = start_scene_camera();
    let data = tempfile::tempdir().unwrap();
    let nvr = Nvr::start(NvrConfig {
        data_dir: data.path().to_owned(),
        recorder: Default::default(),
        // The same camera twice: recorded continuously, and only around motion.
        cameras: vec![
            spec(&cam, "yard", RecordMode::Continuous),
            spec(
                &cam,
                "gated",
                RecordMode::Motion {
                    pre_roll_s: PRE_ROLL_S,
                    post_roll_s: POST_ROLL_S,
                },
            ),
        ],
        announce: false,
    })
    .await
    .unwrap();
    let mut bus = nvr.subscribe();

    // Wait for pictures on the sub stream, then give the background a few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ["yard", "gated"]
        .iter()
        .any(|c| nvr.hub(c, "sub").is_none_or(|h| h.published() < 15))
    {
        assert!(Instant::now() < deadline, "no sub stream from the camera");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let script = SceneScript::default();
    let ready = now_us() + 2 * S;
    // The first loop whose walk starts after `ready`, observed to its end (+ cooldown).
    let period = script.period_us;
    let mut loop_start = ready.div_euclid(period) * period;
    if loop_start + script.object_us.0 < ready {
        loop_start += period;
    }
    let until = loop_start + period + 3 * S;
    let wait = Duration::from_micros((until - now_us()).max(0) as u64);
    eprintln!(
        "observing the loop starting at {loop_start} ({:.1} s)",
        wait.as_secs_f64()
    );
    let mut bus_events = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    while let Ok(Ok(ev)) = tokio::time::timeout_at(end, bus.recv()).await {
        bus_events.push(ev);
    }

    let rows: Vec<EventRow> = nvr
        .event_store()
        .list(&EventFilter {
            cameras: Some(vec!["yard".into()]),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .rev()
        .filter(|e| e.start_us >= ready - S)
        .collect();
    let show: Vec<String> = rows
        .iter()
        .map(|e| {
            format!(
                "[{:.2} .. {:?}] peak {:.3} {:?}",
                secs(e.start_us, loop_start),
                e.end_us.map(|x| secs(x, loop_start)),
                e.peak_score,
                e.bbox
            )
        })
        .collect();
    eprintln!("events (s from loop start): {show:#?}");

    // Exactly one event in the observed loop, on the walk.
    let (enter, leave) = (
        loop_start + script.object_us.0,
        loop_start + script.object_us.1,
    );
    let in_loop: Vec<&EventRow> = rows
        .iter()
        .filter(|e| e.start_us >= loop_start && e.start_us < loop_start + period)
        .collect();
    assert_eq!(in_loop.len(), 1, "{show:#?}");
    let ev = in_loop[0];
    assert!(
        (ev.start_us - enter).abs() <= S,
        "start {:.2} s, script 4 s",
        secs(ev.start_us, loop_start)
    );
    let end_us = ev.end_us.expect("the walk's event ended");
    assert!(
        (end_us - leave).abs() <= S,
        "end {:.2} s, script 11 s",
        secs(end_us, loop_start)
    );
    assert!(ev.has_thumbnail);
    let jpeg = nvr.event_store().thumbnail(ev.id).unwrap().unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    // Nothing observed anywhere else than on a walk (a walk of the previous loop may have
    // been cut by the start of the observation).
    for e in &rows {
        let near_walk = script
            .object_intervals(e.start_us - 2 * S, e.start_us + 2 * S)
            .iter()
            .any(|(a, _)| (e.start_us - a).abs() <= S);
        assert!(
            near_walk,
            "event away from the walk at {:.2} s: {show:#?}",
            secs(e.start_us, loop_start)
        );
    }
    // The bus told the same story.
    let on_bus = |start: bool| {
        bus_events.iter().any(|b| match b {
            NvrEvent::MotionStart { event } if start => event.id == ev.id,
            NvrEvent::MotionEnd { event } if !start => event.id == ev.id,
            _ => false,
        })
    };
    assert!(on_bus(true) && on_bus(false), "{bus_events:#?}");

    // Motion-only recording: the walk with its pre- and post-roll, not the lights or the
    // masked motion. (The recording starts at a key frame at least PRE_ROLL_S before the
    // event was confirmed, and ends POST_ROLL_S after it ended, i.e. after the cooldown.)
    let gated = nvr
        .recorder()
        .ranges("gated", "main", loop_start, loop_start + period)
        .unwrap();
    let show_ranges: Vec<(f64, f64)> = gated
        .iter()
        .map(|r| {
            (
                secs(r.start_wall_us, loop_start),
                secs(r.end_wall_us, loop_start),
            )
        })
        .collect();
    eprintln!("gated recordings (s from loop start): {show_ranges:?}");
    let pre = i64::from(PRE_ROLL_S) * S;
    let post = i64::from(POST_ROLL_S) * S;
    assert!(
        gated
            .iter()
            .any(|r| r.start_wall_us <= enter - pre + S && r.end_wall_us >= leave + post),
        "no recording covers the walk with its rolls: {show_ranges:?}"
    );
    let quiet = (leave + post + 5 * S, loop_start + period - 2 * S);
    assert!(
        gated
            .iter()
            .all(|r| r.end_wall_us <= quiet.0 || r.start_wall_us >= quiet.1),
        "recorded while nothing moved: {show_ranges:?}"
    );
    // The continuous camera recorded the whole loop.
    let all = nvr
        .recorder()
        .ranges("yard", "main", loop_start, loop_start + period)
        .unwrap();
    assert!(
        all.iter()
            .any(|r| r.start_wall_us <= loop_start + S && r.end_wall_us >= quiet.1),
        "{all:?}"
    );
    nvr.shutdown().await;
}
