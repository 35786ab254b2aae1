//! Alerts end to end with real parts over 127.0.0.1: `vigil camera --source testsrc:scene`
//! (the scripted scene) → `vigil serve` (recording, motion detection on the sub stream,
//! `[mqtt]` and one `[[webhook]]`) → a real Mosquitto (Debian's package, started here on a
//! free port) and a local HTTP receiver that checks `X-Vigil-Signature` the way
//! docs/alerts.md tells users to.
//!
//! The scene loops every 30 s on the wall clock (`vigil_camera::testsrc::scene`): the object
//! walks from :04 to :11 of each loop. One walk is observed with everything up: Home Assistant
//! discovery (retained), availability, the retained motion state ON then OFF, the start and
//! end events on `<prefix>/events` and at the webhook, signed. Then the broker and the
//! receiver are stopped, the next walk happens while both are away, and they come back on the
//! same ports: that walk's events are delivered afterwards, and the recording has no hole over
//! the outage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::alerts::{json, Broker, Sub};
use common::recorder::{self, now_us, Proc};
use serde_json::Value;
use vigil_alerts::sign::{self, VerifyError};
use vigil_camera::testsrc::SceneScript;

const CAMERA: &str = "yard";
/// A non-default prefix, so the test also shows `topic_prefix` is honoured.
const PREFIX: &str = "e2e";
const SECRET: &str = "alerts-e2e-secret-0123456789";
const MAIN: (u32, u32) = (640, 360);
const S: i64 = 1_000_000;
/// How far an event may be from the script. The detector's own test (motion.rs) holds it to
/// 1 s; here the whole system runs on 2 busy cores, and precision is not what is tested.
const SLACK: i64 = 3 * S / 2;

// ---------------------------------------------------------------------------------------
// Webhook receiver

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Hook {
    headers: HeaderMap,
    body: Bytes,
    verified: Result<(), VerifyError>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The receiver's check, as docs/alerts.md describes it (raw body, timestamp window,
/// constant-time comparison inside `verify`).
fn check(headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    sign::verify_request(SECRET.as_bytes(), header, body, now_unix())
}

/// An HTTP receiver on `addr`: 204 for a good signature, 401 otherwise; logs every request.
struct Receiver {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(addr: SocketAddr, log: Arc<Mutex<Vec<Hook>>>) -> Receiver {
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let log = log.clone();
                async move {
                    let verified = check(&headers, &body);
                    let status = if verified.is_ok() {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::UNAUTHORIZED
                    };
                    log.lock().unwrap().push(Hook {
                        headers,
                        body,
                        verified,
                    });
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("webhook receiver cannot bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { addr, task }
    }

    /// Closes the listener. (Vigil's webhook client uses one connection per request, so no
    /// kept-alive connection outlives it.)
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        assert!(
            tokio::net::TcpStream::connect(self.addr).await.is_err(),
            "the stopped receiver still accepts connections"
        );
    }
}

/// Waits up to `timeout` for a request whose body is an event of `kind` with id `id`.
async fn wait_hook(log: &Mutex<Vec<Hook>>, kind: &str, id: i64, timeout: Duration) -> Hook {
    let deadline = Instant::now() + timeout;
    loop {
        let found = log
            .lock()
            .unwrap()
            .iter()
            .find(|h| {
                let v = json(&h.body);
                v["type"] == kind && v["id"] == id
            })
            .cloned();
        if let Some(h) = found {
            return h;
        }
        if Instant::now() >= deadline {
            let got: Vec<String> = log
                .lock()
                .unwrap()
                .iter()
                .map(|h| format!("{:?} {}", h.verified, String::from_utf8_lossy(&h.body)))
                .collect();
            panic!("webhook: no {kind} of event {id} within {timeout:?}; received: {got:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A delivered webhook request: signed correctly, headers right, the same JSON as on MQTT;
/// and the receiver's check refuses a tampered copy.
fn assert_signed(hook: &Hook, mqtt_event: &Value) {
    assert_eq!(hook.verified, Ok(()), "signature did not verify: {hook:?}");
    assert_eq!(
        &json(&hook.body),
        mqtt_event,
        "webhook body and MQTT event differ"
    );
    assert_eq!(hook.headers["content-type"], "application/json");
    assert_eq!(
        hook.headers["x-vigil-event"],
        mqtt_event["type"].as_str().unwrap()
    );
    assert!(hook.headers.contains_key("x-vigil-delivery"));
    // One byte of the body changed (the camera name): refused.
    let mut tampered = hook.body.to_vec();
    let at = tampered
        .windows(CAMERA.len())
        .position(|w| w == CAMERA.as_bytes())
        .unwrap();
    tampered[at] ^= 0x20;
    assert_eq!(check(&hook.headers, &tampered), Err(VerifyError::Mismatch));
    // Re-signed with another key: refused.
    let ts = hook.headers[sign::TIMESTAMP_HEADER].to_str().unwrap();
    let mut forged = hook.headers.clone();
    forged.insert(
        sign::SIGNATURE_HEADER,
        sign::sign(b"some-other-secret-0123456789", ts, &hook.body)
            .parse()
            .unwrap(),
    );
    assert_eq!(check(&forged, &hook.body), Err(VerifyError::Mismatch));
}

// ---------------------------------------------------------------------------------------
// Camera, configuration, indexes

/// `vigil camera --source testsrc:scene` with the test user; returns it and its RTSP address.
fn scene_camera(data: &Path) -> (Proc, String) {
    common::add_user(data, common::USER, common::PASSWORD);
    let mut cmd = Command::new(common::vigil_bin());
    cmd.args(["camera", "--source", "testsrc:scene", "--data"])
        .arg(data)
        .args(["--rtsp", "127.0.0.1:0", "--rtsps", "off", "--http", "off"])
        .args(["--onvif", "off"])
        .args(["--size", &format!("{}x{}", MAIN.0, MAIN.1)])
        .args(["--sub-size", "320x180", "--fps", "15", "--bitrate", "800k"])
        .env("RUST_LOG", "warn");
    let mut p = Proc::spawn("vigil camera", &mut cmd);
    let (line, _) = p.wait_line("listening rtsp ", 0, Duration::from_secs(30));
    let addr = line.trim_start_matches("listening rtsp ").trim().to_owned();
    (p, addr)
}

fn toml_rect((x0, y0, x1, y1): (f32, f32, f32, f32)) -> String {
    format!("[[{x0}, {y0}], [{x1}, {y0}], [{x1}, {y1}], [{x0}, {y1}]]")
}

/// `dir/vigil.toml` (mode 0600: it holds secrets): the camera with both streams, motion on
/// with the scene's clock and masked area as masks, no web app, the broker and the receiver.
fn write_config(dir: &Path, rtsp: &str, broker_port: u16, hook_port: u16) -> PathBuf {
    let script = SceneScript::default();
    let text = format!(
        r#"data_dir = "data"

[web]
listen = "off"

[[camera]]
name = "{CAMERA}"
url = "rtsp://{rtsp}/main"
sub_url = "rtsp://{rtsp}/sub"
username = "{user}"
password = "{password}"
audio = false

[camera.motion]
enabled = true

[[camera.motion.zones]]
name = "clock"
kind = "mask"
points = {clock}

[[camera.motion.zones]]
name = "flag"
kind = "mask"
points = {flag}

[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "vigil-alerts-e2e"
topic_prefix = "{PREFIX}"

[[webhook]]
url = "http://127.0.0.1:{hook_port}/hook"
secret = "{SECRET}"
timeout_s = 5
"#,
        user = common::USER,
        password = common::PASSWORD,
        clock = toml_rect(script.overlay_mask(MAIN.0, MAIN.1)),
        flag = toml_rect(script.masked_area()),
    );
    common::recorder::write_private(&dir.join("vigil.toml"), &text)
}

/// The finished motion event of the camera starting within `SLACK` of `enter`, from the
/// event store (read-only, beside the running `vigil serve`): `(id, start_us, end_us)`.
fn finished_event(data: &Path, enter: i64) -> Option<(i64, i64, i64)> {
    let c = rusqlite::Connection::open_with_flags(
        data.join("events.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    c.query_row(
        "SELECT id, start_us, end_us FROM event WHERE camera = ?1 AND start_us BETWEEN ?2 AND ?3 \
         AND end_us IS NOT NULL ORDER BY start_us LIMIT 1",
        rusqlite::params![CAMERA, enter - SLACK, enter + SLACK],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

/// The indexed fragments of `CAMERA`/`stream` overlapping `[from, to)`, as wall-clock
/// `(start, end)` in µs, by start.
fn fragments(data: &Path, stream: &str, from: i64, to: i64) -> Vec<(i64, i64)> {
    let c = recorder::index(data);
    let mut st = c
        .prepare(
            "SELECT f.start_wall_us, f.end_wall_us FROM fragment f \
             JOIN segment_file s ON s.id = f.file_id JOIN stream st ON st.id = s.stream_id \
             JOIN camera c ON c.id = st.camera_id \
             WHERE c.name = ?1 AND st.name = ?2 AND f.end_wall_us > ?3 AND f.start_wall_us < ?4 \
             ORDER BY f.start_wall_us",
        )
        .unwrap();
    st.query_map(rusqlite::params![CAMERA, stream, from, to], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn secs(us: i64, base: i64) -> f64 {
    (us - base) as f64 / 1e6
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn motion_alerts_reach_mqtt_and_webhook_and_survive_their_outage() {
    let t_test = Instant::now();
    let mut broker = Broker::start();
    // Subscribed before Vigil starts, with a session the broker keeps across its restart.
    let mut sub = Sub::connect(broker.port, "alerts-e2e-sub", true).await;
    let hooks = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap(), hooks.clone()).await;
    let hook_addr = receiver.addr;

    let cam_data = tempfile::tempdir().unwrap();
    let (_camera, rtsp) = scene_camera(cam_data.path());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &rtsp, broker.port, hook_addr.port());
    let data = dir.path().join("data");
    let mut serve = recorder::vigil_serve(&config);
    serve.wait_line(
        &format!("recording {CAMERA}/main"),
        0,
        Duration::from_secs(30),
    );
    serve.wait_line(
        &format!("recording {CAMERA}/sub"),
        0,
        Duration::from_secs(30),
    );

    // Home Assistant discovery of the camera's motion sensor and snapshot camera, retained.
    let t = Duration::from_secs(15);
    let motion_topic = format!("{PREFIX}/{CAMERA}/motion");
    let disc_topic = format!("homeassistant/binary_sensor/{PREFIX}_{CAMERA}/motion/config");
    let (_, disc) = sub.wait(&disc_topic, 0, t, |p| p.topic == disc_topic).await;
    let doc = json(&disc.payload);
    assert_eq!(doc["device_class"], "motion", "{doc}");
    assert_eq!(doc["state_topic"], motion_topic, "{doc}");
    assert_eq!(
        doc["device"]["identifiers"][0],
        format!("{PREFIX}_{CAMERA}")
    );
    let avail: Vec<&str> = doc["availability"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["topic"].as_str().unwrap())
        .collect();
    let status_topic = format!("{PREFIX}/status");
    let events = format!("{PREFIX}/events");
    let cam_avail = format!("{PREFIX}/{CAMERA}/availability");
    assert_eq!(avail, [status_topic.as_str(), cam_avail.as_str()], "{doc}");
    let snap_topic = format!("homeassistant/camera/{PREFIX}_{CAMERA}/snapshot/config");
    sub.wait(&snap_topic, 0, t, |p| p.topic == snap_topic).await;
    // Availability: Vigil itself, and the camera once its stream is in.
    sub.wait_payload(&status_topic, "online", 0, t).await;
    sub.wait_payload(&cam_avail, "online", 0, t).await;
    {
        let mut late = Sub::connect(broker.port, "alerts-e2e-late1", false).await;
        let (_, d) = late
            .wait(&disc_topic, 0, t, |p| p.topic == disc_topic)
            .await;
        assert!(d.retain, "discovery is not retained");
        let (_, s) = late.wait_payload(&status_topic, "online", 0, t).await;
        assert!(s.retain, "{status_topic} is not retained");
        let (_, a) = late.wait_payload(&cam_avail, "online", 0, t).await;
        assert!(a.retain, "{cam_avail} is not retained");
    }
    eprintln!("discovery and availability after {:?}", t_test.elapsed());

    // The first walk that starts at least 3 s from now (the detector's background settles).
    let script = SceneScript::default();
    let period = script.period_us;
    let ready = now_us() + 3 * S;
    let mut loop1 = ready.div_euclid(period) * period;
    if loop1 + script.object_us.0 < ready {
        loop1 += period;
    }
    let (enter1, leave1) = (loop1 + script.object_us.0, loop1 + script.object_us.1);
    let until = |us: i64| Duration::from_micros((us - now_us()).max(0) as u64);
    eprintln!("walk 1 in {:.1} s", secs(enter1, now_us()));

    // Start: the event, then the retained state ON.
    let from = sub.seen.len();
    let (i_start, start1) = sub
        .wait_event(&events, "motion_start", from, until(enter1 + 10 * S), |v| {
            v["camera"] == CAMERA && (v["start_us"].as_i64().unwrap_or(0) - enter1).abs() <= SLACK
        })
        .await;
    let id1 = start1["id"].as_i64().unwrap();
    assert!(
        start1["bbox"]["w"].as_f64().unwrap_or(0.0) > 0.0,
        "{start1}"
    );
    assert_eq!(start1["zones"], serde_json::json!([]), "{start1}");
    // The snapshot for Home Assistant's camera entity: a JPEG, retained.
    let snapshot = format!("{PREFIX}/{CAMERA}/snapshot");
    sub.wait(&format!("a JPEG on {snapshot}"), from, t, |p| {
        p.topic == snapshot && p.payload.starts_with(&[0xFF, 0xD8])
    })
    .await;
    let (i_on, _) = sub.wait_payload(&motion_topic, "ON", from, t).await;
    {
        let mut late = Sub::connect(broker.port, "alerts-e2e-late2", false).await;
        let (_, on) = late.wait_payload(&motion_topic, "ON", 0, t).await;
        assert!(on.retain, "the motion state is not retained");
        let (_, jpeg) = late.wait(&snapshot, 0, t, |p| p.topic == snapshot).await;
        assert!(jpeg.retain, "the snapshot is not retained");
    }
    // End: the same event, within the script, then the state OFF.
    let (_, end1) = sub
        .wait_event(
            &events,
            "motion_end",
            i_start,
            until(leave1 + 10 * S),
            |v| v["id"] == id1,
        )
        .await;
    let end_us = end1["end_us"].as_i64().unwrap();
    assert!(
        (end_us - leave1).abs() <= SLACK,
        "walk 1 ended at {:.2} s, the script says {:.2} s",
        secs(end_us, loop1),
        secs(leave1, loop1)
    );
    // (Searched from the ON: the state toggled ON, then OFF.)
    sub.wait_payload(&motion_topic, "OFF", i_on, t).await;
    {
        let mut late = Sub::connect(broker.port, "alerts-e2e-late3", false).await;
        let (_, off) = late.wait_payload(&motion_topic, "OFF", 0, t).await;
        assert!(off.retain, "the motion state is not retained");
    }
    // The same two events at the webhook, signed.
    assert_signed(&wait_hook(&hooks, "motion_start", id1, t).await, &start1);
    assert_signed(&wait_hook(&hooks, "motion_end", id1, t).await, &end1);
    eprintln!(
        "walk 1 (event {id1}) delivered after {:?}",
        t_test.elapsed()
    );

    // Outage: the broker and the receiver go away; the next walk happens without them.
    broker.stop();
    receiver.stop().await;
    let down_us = now_us();
    let loop2 = loop1 + period;
    let (enter2, leave2) = (loop2 + script.object_us.0, loop2 + script.object_us.1);
    assert!(
        enter2 > down_us + S,
        "walk 2 started before the outage ({:.1} s)",
        secs(down_us, enter2)
    );
    let before = hooks.lock().unwrap().len();
    let ev2 = loop {
        if let Some(e) = finished_event(&data, enter2) {
            break e;
        }
        assert!(
            now_us() < leave2 + 10 * S,
            "walk 2 raised no finished event in events.sqlite3"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id2 = ev2.0;
    assert!(
        (ev2.2 - leave2).abs() <= SLACK,
        "walk 2 ended at {:.2} s of its loop",
        secs(ev2.2, loop2)
    );
    assert_eq!(
        hooks.lock().unwrap().len(),
        before,
        "a webhook got through the outage"
    );
    // Back on the same ports.
    let from = sub.seen.len();
    broker.run();
    let receiver = Receiver::start(hook_addr, hooks.clone()).await;
    let up_us = now_us();
    eprintln!(
        "outage of {:.1} s (walk 2 = event {id2} inside it), back after {:?}",
        secs(up_us, down_us),
        t_test.elapsed()
    );

    // Delivered once back (Vigil's reconnect back-off is at most 15 s, the webhook's retry
    // after a 30 s outage at most 16 s).
    let back = Duration::from_secs(45);
    let (i_start2, start2) = sub
        .wait_event(&events, "motion_start", from, back, |v| v["id"] == id2)
        .await;
    assert_eq!(start2["start_us"], ev2.1);
    let (_, end2) = sub
        .wait_event(&events, "motion_end", i_start2, back, |v| v["id"] == id2)
        .await;
    assert_eq!(end2["end_us"], ev2.2);
    sub.wait_payload(&motion_topic, "OFF", from, t).await;
    sub.wait_payload(&status_topic, "online", from, t).await;
    assert_signed(&wait_hook(&hooks, "motion_start", id2, back).await, &start2);
    assert_signed(&wait_hook(&hooks, "motion_end", id2, back).await, &end2);
    // Every request the receiver ever got was signed correctly.
    for h in hooks.lock().unwrap().iter() {
        assert_eq!(h.verified, Ok(()), "{h:?}");
    }
    eprintln!("walk 2 delivered after {:?}", t_test.elapsed());

    // Recording never stopped: fragments cover the outage without a hole, and an export of
    // it plays for as long.
    for stream in ["main", "sub"] {
        let frags = fragments(&data, stream, down_us, up_us);
        assert!(
            !frags.is_empty(),
            "{stream}: nothing recorded during the outage"
        );
        let first = frags.first().unwrap().0;
        let last = frags.last().unwrap().1;
        assert!(
            first <= down_us && last >= up_us,
            "{stream}: fragments cover {:.2}..{:.2} s of the outage 0..{:.2} s",
            secs(first, down_us),
            secs(last, down_us),
            secs(up_us, down_us)
        );
        eprintln!(
            "{stream}: {} fragments over the outage, {:.2}..{:.2} s",
            frags.len(),
            secs(first, down_us),
            secs(last, down_us)
        );
        for w in frags.windows(2) {
            assert!(
                w[1].0 - w[0].1 <= S / 2,
                "{stream}: a hole of {:.2} s at {:.2} s of the outage",
                secs(w[1].0, w[0].1),
                secs(w[0].1, down_us)
            );
        }
    }
    let out = dir.path().join("outage.mp4");
    let exported = recorder::export(&config, CAMERA, down_us, up_us, &out);
    assert!(
        exported.start_us <= down_us && exported.end_us >= up_us - S / 2,
        "the export of the outage starts {:.2} s and ends {:.2} s into it",
        secs(exported.start_us, down_us),
        secs(exported.end_us, down_us)
    );
    let probe = recorder::ffprobe(&out);
    let want = secs(up_us, down_us);
    assert!(
        probe.duration >= want - 0.5,
        "the export of the {want:.1} s outage lasts {:.2} s ({exported:?})",
        probe.duration
    );
    assert!(
        probe.frames as f64 >= want * 15.0 * 0.9,
        "{} frames in the {want:.1} s outage at 15 fps",
        probe.frames
    );

    eprintln!(
        "outage export: {:.2} s, {} frames ({exported:?})",
        probe.duration, probe.frames
    );

    // A graceful stop leaves `offline` retained: Home Assistant shows the entities unavailable.
    serve.stop_gracefully(Duration::from_secs(30));
    {
        let mut late = Sub::connect(broker.port, "alerts-e2e-late4", false).await;
        let (_, off) = late.wait_payload(&status_topic, "offline", 0, t).await;
        assert!(off.retain);
    }
    receiver.stop().await;
    eprintln!("done after {:?}", t_test.elapsed());
}
