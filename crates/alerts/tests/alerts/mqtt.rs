//! MQTT against a real Mosquitto (Debian's `mosquitto` package, started here on 127.0.0.1 and
//! a free port): Home Assistant discovery, retained states, the event JSON, the snapshot, and
//! an event sent while the broker is down delivered once it is back.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Broker, Sub};
use rumqttc::{Publish, QoS};
use vigil_alerts::{AlertEvent, Alerts, AlertsConfig, BBox, CameraInfo, MqttConfig, SnapshotFn};

const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 0xFF, 0xD9];

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

    // The camera removed while the broker is down: retracted once it is back.
    broker.stop();
    wait_status(&alerts, "connecting", |s| {
        s["mqtt"]["state"] == "connecting"
    })
    .await;
    alerts.set_cameras(vec![]);
    broker.run();
    sub.topic("homeassistant/binary_sensor/vigil_front/motion/config", b"")
        .await;
    sub.topic("homeassistant/camera/vigil_front/snapshot/config", b"")
        .await;
    alerts.shutdown().await;
}
