//! MQTT against a real Mosquitto (Debian's `mosquitto` package, started here on 127.0.0.1 and
//! a free port): Home Assistant discovery, retained states, the event JSON, the snapshot, and
//! an event sent while the broker is down delivered once it is back.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Publish, QoS};
use tokio::sync::mpsc;
use vigil_alerts::{AlertEvent, Alerts, AlertsConfig, BBox, CameraInfo, MqttConfig, SnapshotFn};

const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 0xFF, 0xD9];

fn mosquitto_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join("mosquitto");
        if p.is_file() {
            return p;
        }
    }
    panic!("mosquitto not found: install Debian's `mosquitto` package (scripts/test.sh does)");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto on 127.0.0.1 with persistence in a temp dir, so a subscriber's persistent
/// session (and the messages queued for it) survives a broker restart.
struct Broker {
    conf: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nlog_dest stderr\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let mut b = Broker {
            conf,
            port,
            child: None,
            _dir: dir,
        };
        b.run();
        b
    }

    fn run(&mut self) {
        let child = std::process::Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (Mosquitto saves its persistence file) and wait for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let ok = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("kill -TERM {}", child.id()))
                .status()
                .unwrap();
            assert!(ok.success());
            child.wait().unwrap();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A test client subscribed to everything, collecting what it receives.
struct Sub {
    rx: mpsc::UnboundedReceiver<Publish>,
    seen: Vec<Publish>,
    task: tokio::task::JoinHandle<()>,
}

impl Sub {
    /// `persistent`: a session the broker keeps (and queues QoS 1 messages for) while we are away.
    async fn connect(port: u16, id: &str, persistent: bool) -> Sub {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(!persistent);
        opts.set_max_packet_size(1 << 20, 1 << 16);
        let (client, mut el) = AsyncClient::new(opts, 16);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, mut ready) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                        if ack.session_present {
                            ready_tx.send_replace(true);
                        } else {
                            client.subscribe("#", QoS::AtLeastOnce).await.unwrap();
                        }
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        ready_tx.send_replace(true);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|r| *r))
            .await
            .expect("test subscriber never subscribed")
            .unwrap();
        Sub {
            rx,
            seen: Vec::new(),
            task,
        }
    }

    /// The next message received (not looking at those already seen).
    async fn next(&mut self) -> Publish {
        let p = tokio::time::timeout(Duration::from_secs(15), self.rx.recv())
            .await
            .expect("no message within 15 s")
            .unwrap();
        self.seen.push(p.clone());
        p
    }

    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Publish) -> bool) -> Publish {
        if let Some(p) = self.seen.iter().find(|p| pred(p)) {
            return p.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => {
                    self.seen.push(p.clone());
                    if pred(&p) {
                        return p;
                    }
                }
                _ => {
                    let topics: Vec<_> = self.seen.iter().map(|p| p.topic.clone()).collect();
                    panic!("timed out waiting for {what}; seen: {topics:?}");
                }
            }
        }
    }

    async fn topic(&mut self, topic: &str, payload: &[u8]) -> Publish {
        let t = topic.to_owned();
        let want = payload.to_vec();
        self.wait_for(
            &format!("{topic} = {}", String::from_utf8_lossy(payload)),
            move |p| p.topic == t && p.payload.as_ref() == want.as_slice(),
        )
        .await
    }

    /// Forget what was seen (to wait for a *new* message on a topic).
    fn clear(&mut self) {
        self.seen.clear();
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn snapshot() -> SnapshotFn {
    Arc::new(|_camera: String| Box::pin(async { Some(JPEG.to_vec()) }))
}

fn config(port: u16) -> AlertsConfig {
    let mut m = MqttConfig::new("127.0.0.1");
    m.port = Some(port);
    m.client_id = Some("vigil-test".into());
    AlertsConfig {
        mqtt: Some(m),
        webhooks: vec![],
    }
}

fn cameras() -> Vec<CameraInfo> {
    vec![CameraInfo {
        name: "front".into(),
        zones: vec!["gate".into()],
    }]
}

fn start_event(id: i64) -> AlertEvent {
    AlertEvent::MotionStart {
        id,
        camera: "front".into(),
        zones: vec!["gate".into()],
        start_us: 1_700_000_000_000_000,
        score: 0.25,
        bbox: Some(BBox {
            x: 0.5,
            y: 0.5,
            w: 0.25,
            h: 0.25,
        }),
    }
}

fn end_event(id: i64) -> AlertEvent {
    AlertEvent::MotionEnd {
        id,
        camera: "front".into(),
        zones: vec!["gate".into()],
        start_us: 1_700_000_000_000_000,
        end_us: 1_700_000_005_000_000,
        peak_score: 0.5,
        bbox: None,
    }
}

async fn wait_status(
    alerts: &Alerts,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = alerts.status();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "status never reached {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn json(p: &Publish) -> serde_json::Value {
    serde_json::from_slice(&p.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_states_events_and_outage() {
    let mut broker = Broker::start();
    let mut sub = Sub::connect(broker.port, "test-sub", true).await;

    let alerts = Alerts::start(config(broker.port), cameras(), snapshot());

    // Discovery: one HA device with a motion sensor, a zone sensor and a camera entity.
    let motion_cfg = sub
        .wait_for("camera motion discovery", |p| {
            p.topic == "homeassistant/binary_sensor/vigil_front/motion/config"
        })
        .await;
    let doc = json(&motion_cfg);
    assert_eq!(doc["device_class"], "motion");
    assert_eq!(doc["state_topic"], "vigil/front/motion");
    assert_eq!(doc["device"]["identifiers"][0], "vigil_front");
    let zone_cfg = sub
        .wait_for("zone discovery", |p| {
            p.topic == "homeassistant/binary_sensor/vigil_front/zone_gate/config"
        })
        .await;
    assert_eq!(json(&zone_cfg)["state_topic"], "vigil/front/gate/motion");
    let cam_cfg = sub
        .wait_for("camera entity discovery", |p| {
            p.topic == "homeassistant/camera/vigil_front/snapshot/config"
        })
        .await;
    assert_eq!(json(&cam_cfg)["topic"], "vigil/front/snapshot");
    sub.topic("vigil/status", b"online").await;
    sub.topic("vigil/front/motion", b"OFF").await;
    sub.topic("vigil/front/availability", b"online").await;
    wait_status(&alerts, "connected", |s| s["mqtt"]["state"] == "connected").await;

    // An event: state ON (camera and zone), the event JSON, the snapshot.
    alerts.send(start_event(41));
    let ev = sub
        .wait_for("motion_start event", |p| p.topic == "vigil/events")
        .await;
    assert_eq!(ev.qos, QoS::AtLeastOnce);
    let ev = json(&ev);
    assert_eq!(ev["type"], "motion_start");
    assert_eq!(ev["id"], 41);
    assert_eq!(ev["camera"], "front");
    assert_eq!(ev["zones"][0], "gate");
    sub.topic("vigil/front/motion", b"ON").await;
    sub.topic("vigil/front/gate/motion", b"ON").await;
    sub.topic("vigil/front/snapshot", JPEG).await;
    wait_status(&alerts, "1 delivered", |s| {
        s["mqtt"]["delivered"] == 1 && s["mqtt"]["queued"] == 0
    })
    .await;

    // Retained: a client connecting now gets discovery and the current state at once.
    let mut late = Sub::connect(broker.port, "test-late", false).await;
    let state = late.topic("vigil/front/motion", b"ON").await;
    assert!(state.retain, "state is not retained");
    let disc = late
        .wait_for("retained discovery", |p| {
            p.topic == "homeassistant/binary_sensor/vigil_front/motion/config"
        })
        .await;
    assert!(disc.retain);
    assert!(late.topic("vigil/status", b"online").await.retain);
    drop(late);

    // Broker down: the event waits in the outbox, nothing blocks.
    broker.stop();
    wait_status(&alerts, "connecting", |s| {
        s["mqtt"]["state"] == "connecting"
    })
    .await;
    let t0 = Instant::now();
    alerts.send(end_event(41));
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "send blocked for {:?}",
        t0.elapsed()
    );
    let s = wait_status(&alerts, "1 queued", |s| s["mqtt"]["queued"] == 1).await;
    assert!(s["mqtt"]["last_error"].is_string(), "{s}");

    // Broker back on the same port: Vigil reconnects, re-publishes discovery and states, and
    // delivers the event.
    sub.clear();
    broker.run();
    let ev = sub
        .wait_for("motion_end after the outage", |p| p.topic == "vigil/events")
        .await;
    let ev = json(&ev);
    assert_eq!(ev["type"], "motion_end");
    assert_eq!(ev["id"], 41);
    sub.topic("vigil/front/motion", b"OFF").await;
    sub.topic("vigil/front/gate/motion", b"OFF").await;
    // Re-published (not a retained copy: our subscription was kept by the broker).
    let again = sub
        .wait_for("discovery re-published", |p| {
            p.topic == "homeassistant/binary_sensor/vigil_front/motion/config"
        })
        .await;
    assert!(!again.retain);
    sub.topic("vigil/status", b"online").await;
    let s = wait_status(&alerts, "2 delivered", |s| {
        s["mqtt"]["delivered"] == 2 && s["mqtt"]["queued"] == 0 && s["mqtt"]["state"] == "connected"
    })
    .await;
    assert_eq!(s["mqtt"]["dropped"], 0);

    // Clean shutdown leaves `offline` retained.
    alerts.shutdown().await;
    let mut after = Sub::connect(broker.port, "test-after", false).await;
    assert!(after.topic("vigil/status", b"offline").await.retain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_absent_at_start_then_cameras_change() {
    // The test client's persistent session is set up first, so the broker (persistence on)
    // queues for it whatever Vigil publishes after the restart, whoever reconnects first.
    let mut broker = Broker::start();
    let mut sub = Sub::connect(broker.port, "test-sub2", true).await;
    broker.stop();

    // No broker: events queue up in the outbox.
    let alerts = Alerts::start(config(broker.port), cameras(), snapshot());
    for id in 1..=3 {
        alerts.send(start_event(id));
        alerts.send(end_event(id));
    }
    let s = wait_status(&alerts, "6 queued", |s| s["mqtt"]["queued"] == 6).await;
    assert_eq!(s["mqtt"]["state"], "connecting");

    // The broker comes up: all six arrive, in order.
    broker.run();
    wait_status(&alerts, "all delivered", |s| {
        s["mqtt"]["delivered"] == 6 && s["mqtt"]["queued"] == 0
    })
    .await;
    let mut got = Vec::new();
    while got.len() < 6 {
        let p = sub.next().await;
        if p.topic == "vigil/events" {
            let v = json(&p);
            got.push((
                v["type"].as_str().unwrap().to_owned(),
                v["id"].as_i64().unwrap(),
            ));
        }
    }
    let expected: Vec<(String, i64)> = (1..=3)
        .flat_map(|id| {
            [
                ("motion_start".to_owned(), id),
                ("motion_end".to_owned(), id),
            ]
        })
        .collect();
    assert_eq!(got, expected);

    // A zone removed: its discovery entity is retracted (empty retained payload).
    alerts.set_cameras(vec![CameraInfo {
        name: "front".into(),
        zones: vec![],
    }]);
    sub.topic(
        "homeassistant/binary_sensor/vigil_front/zone_gate/config",
        b"",
    )
    .await;
    alerts.shutdown().await;
}
