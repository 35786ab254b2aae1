//! Sans-IO model of what Vigil publishes over MQTT: topic names, Home Assistant discovery
//! documents, and the retained motion/availability states. The MQTT task only sends what this
//! returns, so every payload is testable without a broker.
//!
//! Topics (`<p>` = `topic_prefix`, `<d>` = `discovery_prefix`, names passed through
//! [`topic_id`]):
//! - `<p>/status`: `online` (retained, on connect) / `offline` (retained; last will)
//! - `<p>/events`: one JSON object per [`AlertEvent`] (QoS 1, not retained)
//! - `<p>/<camera>/motion`, `<p>/<camera>/<zone>/motion`: `ON` / `OFF` (retained)
//! - `<p>/<camera>/availability`: `online` / `offline` (retained)
//! - `<p>/<camera>/snapshot`: JPEG at motion start (retained)
//! - `<d>/binary_sensor/<node>_<camera>/motion/config`, `…/zone_<zone>/config`,
//!   `<d>/camera/<node>_<camera>/snapshot/config`: discovery (retained)

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::{AlertEvent, CameraInfo};

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Msg {
    fn retained(topic: String, payload: impl Into<Vec<u8>>) -> Msg {
        Msg {
            topic,
            payload: payload.into(),
            retain: true,
        }
    }
}

/// A name made safe as one MQTT topic level and as a Home Assistant object id: ASCII letters,
/// digits, `-` and `_` kept, anything else (`/`, `+`, `#`, spaces, non-ASCII) becomes `_`.
pub fn topic_id(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".to_owned()
    } else {
        s
    }
}

/// Topic names for one configuration.
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    prefix: String,
    discovery: String,
    /// Home Assistant node id: the topic prefix as an id, so two Vigil instances on one broker
    /// (which need different prefixes anyway) get different entities.
    node: String,
}

impl Topics {
    pub(crate) fn new(topic_prefix: &str, discovery_prefix: &str) -> Topics {
        Topics {
            prefix: topic_prefix.to_owned(),
            discovery: discovery_prefix.to_owned(),
            node: topic_id(topic_prefix),
        }
    }

    pub(crate) fn status(&self) -> String {
        format!("{}/status", self.prefix)
    }

    pub(crate) fn events(&self) -> String {
        format!("{}/events", self.prefix)
    }

    pub(crate) fn camera_motion(&self, camera: &str) -> String {
        format!("{}/{}/motion", self.prefix, topic_id(camera))
    }

    pub(crate) fn zone_motion(&self, camera: &str, zone: &str) -> String {
        format!(
            "{}/{}/{}/motion",
            self.prefix,
            topic_id(camera),
            topic_id(zone)
        )
    }

    pub(crate) fn availability(&self, camera: &str) -> String {
        format!("{}/{}/availability", self.prefix, topic_id(camera))
    }

    pub(crate) fn snapshot(&self, camera: &str) -> String {
        format!("{}/{}/snapshot", self.prefix, topic_id(camera))
    }

    fn object(&self, camera: &str) -> String {
        format!("{}_{}", self.node, topic_id(camera))
    }

    fn camera_motion_config(&self, camera: &str) -> String {
        format!(
            "{}/binary_sensor/{}/motion/config",
            self.discovery,
            self.object(camera)
        )
    }

    fn zone_motion_config(&self, camera: &str, zone: &str) -> String {
        format!(
            "{}/binary_sensor/{}/zone_{}/config",
            self.discovery,
            self.object(camera),
            topic_id(zone)
        )
    }

    fn snapshot_config(&self, camera: &str) -> String {
        format!(
            "{}/camera/{}/snapshot/config",
            self.discovery,
            self.object(camera)
        )
    }

    /// Every discovery topic of these cameras (to retract those that disappear).
    pub(crate) fn config_topics(&self, cameras: &[CameraInfo]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for c in cameras {
            out.insert(self.camera_motion_config(&c.name));
            out.insert(self.snapshot_config(&c.name));
            for z in &c.zones {
                out.insert(self.zone_motion_config(&c.name, z));
            }
        }
        out
    }

    /// Home Assistant MQTT discovery: per camera one device holding a motion binary sensor,
    /// one per zone, and a camera entity showing the last motion snapshot.
    pub(crate) fn discovery(&self, cameras: &[CameraInfo]) -> Vec<Msg> {
        let mut out = Vec::new();
        for c in cameras {
            let obj = self.object(&c.name);
            let device = json!({
                "identifiers": [obj],
                "name": c.name,
                "manufacturer": "Vigil",
                "model": "Vigil NVR camera",
                "sw_version": env!("CARGO_PKG_VERSION"),
            });
            let origin = json!({ "name": "Vigil", "sw_version": env!("CARGO_PKG_VERSION") });
            // Both must be online: Vigil itself (its last will flips this) and the camera.
            let availability = json!([
                { "topic": self.status() },
                { "topic": self.availability(&c.name) },
            ]);
            let motion = json!({
                "name": "Motion",
                "unique_id": format!("{obj}_motion"),
                "device_class": "motion",
                "state_topic": self.camera_motion(&c.name),
                "payload_on": "ON",
                "payload_off": "OFF",
                "availability": availability,
                "availability_mode": "all",
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": device,
                "origin": origin,
            });
            out.push(Msg::retained(
                self.camera_motion_config(&c.name),
                motion.to_string(),
            ));
            for z in &c.zones {
                let zone = json!({
                    "name": format!("Motion {z}"),
                    "unique_id": format!("{obj}_zone_{}_motion", topic_id(z)),
                    "device_class": "motion",
                    "state_topic": self.zone_motion(&c.name, z),
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "availability": availability,
                    "availability_mode": "all",
                    "payload_available": "online",
                    "payload_not_available": "offline",
                    "device": device,
                    "origin": origin,
                });
                out.push(Msg::retained(
                    self.zone_motion_config(&c.name, z),
                    zone.to_string(),
                ));
            }
            let snapshot = json!({
                "name": "Motion snapshot",
                "unique_id": format!("{obj}_snapshot"),
                "topic": self.snapshot(&c.name),
                "availability": availability,
                "availability_mode": "all",
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": device,
                "origin": origin,
            });
            out.push(Msg::retained(
                self.snapshot_config(&c.name),
                snapshot.to_string(),
            ));
        }
        out
    }

    /// Empty retained payloads on the discovery topics of entities that no longer exist, which
    /// is how Home Assistant is told to remove them.
    pub(crate) fn retractions(&self, old: &[CameraInfo], new: &[CameraInfo]) -> Vec<Msg> {
        let keep = self.config_topics(new);
        self.config_topics(old)
            .into_iter()
            .filter(|t| !keep.contains(t))
            .map(|t| Msg::retained(t, Vec::new()))
            .collect()
    }
}

#[derive(Debug, Default)]
struct CameraState {
    /// Motion events in progress (by id); the camera's sensor is ON while any is.
    active: BTreeSet<i64>,
    /// Per zone, the events in progress touching it.
    zones: BTreeMap<String, BTreeSet<i64>>,
    offline: bool,
}

/// The retained states Home Assistant shows, kept so they can be re-published after every
/// reconnect (a restarted broker without persistence has forgotten them).
#[derive(Debug, Default)]
pub(crate) struct States {
    cameras: BTreeMap<String, CameraState>,
}

fn on_off(on: bool) -> &'static str {
    if on {
        "ON"
    } else {
        "OFF"
    }
}

impl States {
    /// Applies an event; returns the state messages that changed.
    pub(crate) fn apply(&mut self, t: &Topics, ev: &AlertEvent) -> Vec<Msg> {
        let mut out = Vec::new();
        match ev {
            AlertEvent::MotionStart {
                id, camera, zones, ..
            } => {
                let st = self.cameras.entry(camera.clone()).or_default();
                if st.active.is_empty() {
                    out.push(Msg::retained(t.camera_motion(camera), "ON"));
                }
                st.active.insert(*id);
                for z in zones {
                    let ids = st.zones.entry(z.clone()).or_default();
                    if ids.is_empty() {
                        out.push(Msg::retained(t.zone_motion(camera, z), "ON"));
                    }
                    ids.insert(*id);
                }
            }
            AlertEvent::MotionEnd {
                id, camera, zones, ..
            } => {
                let st = self.cameras.entry(camera.clone()).or_default();
                let was_on = !st.active.is_empty();
                st.active.remove(id);
                // An end without a start we saw (Vigil restarted in between) still clears the
                // sensor: publishing OFF when it is already OFF is harmless.
                if st.active.is_empty() || !was_on {
                    out.push(Msg::retained(t.camera_motion(camera), "OFF"));
                }
                for z in zones {
                    let ids = st.zones.entry(z.clone()).or_default();
                    ids.remove(id);
                    if ids.is_empty() {
                        out.push(Msg::retained(t.zone_motion(camera, z), "OFF"));
                    }
                }
            }
            AlertEvent::CameraOnline { camera } => {
                self.cameras.entry(camera.clone()).or_default().offline = false;
                out.push(Msg::retained(t.availability(camera), "online"));
            }
            AlertEvent::CameraOffline { camera, .. } => {
                self.cameras.entry(camera.clone()).or_default().offline = true;
                out.push(Msg::retained(t.availability(camera), "offline"));
            }
        }
        out
    }

    /// Every state of these cameras (availability, camera and zone motion), for a fresh session.
    pub(crate) fn all(&self, t: &Topics, cameras: &[CameraInfo]) -> Vec<Msg> {
        let empty = CameraState::default();
        let mut out = Vec::new();
        for c in cameras {
            let st = self.cameras.get(&c.name).unwrap_or(&empty);
            let avail = if st.offline { "offline" } else { "online" };
            out.push(Msg::retained(t.availability(&c.name), avail));
            out.push(Msg::retained(
                t.camera_motion(&c.name),
                on_off(!st.active.is_empty()),
            ));
            for z in &c.zones {
                let on = st.zones.get(z).is_some_and(|ids| !ids.is_empty());
                out.push(Msg::retained(t.zone_motion(&c.name, z), on_off(on)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cams() -> Vec<CameraInfo> {
        vec![CameraInfo {
            name: "front door".into(),
            zones: vec!["path".into(), "gate/2".into()],
        }]
    }

    fn json_of(m: &Msg) -> serde_json::Value {
        serde_json::from_slice(&m.payload).unwrap()
    }

    #[test]
    fn topic_ids_are_single_safe_levels() {
        assert_eq!(topic_id("front door"), "front_door");
        assert_eq!(topic_id("a/+/#"), "a____");
        assert_eq!(topic_id("café"), "caf_");
        assert_eq!(topic_id(""), "_");
    }

    #[test]
    fn discovery_documents() {
        let t = Topics::new("vigil", "homeassistant");
        let msgs = t.discovery(&cams());
        let topics: Vec<&str> = msgs.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/binary_sensor/vigil_front_door/motion/config",
                "homeassistant/binary_sensor/vigil_front_door/zone_path/config",
                "homeassistant/binary_sensor/vigil_front_door/zone_gate_2/config",
                "homeassistant/camera/vigil_front_door/snapshot/config",
            ]
        );
        assert!(msgs.iter().all(|m| m.retain));
        let motion = json_of(&msgs[0]);
        assert_eq!(motion["device_class"], "motion");
        assert_eq!(motion["state_topic"], "vigil/front_door/motion");
        assert_eq!(motion["unique_id"], "vigil_front_door_motion");
        assert_eq!(motion["availability"][0]["topic"], "vigil/status");
        assert_eq!(
            motion["availability"][1]["topic"],
            "vigil/front_door/availability"
        );
        assert_eq!(motion["availability_mode"], "all");
        assert_eq!(motion["device"]["name"], "front door");
        let zone = json_of(&msgs[2]);
        assert_eq!(zone["state_topic"], "vigil/front_door/gate_2/motion");
        assert_eq!(zone["name"], "Motion gate/2");
        let cam = json_of(&msgs[3]);
        assert_eq!(cam["topic"], "vigil/front_door/snapshot");
        // One HA device per camera: every entity names the same identifiers.
        for m in &msgs {
            assert_eq!(json_of(m)["device"]["identifiers"][0], "vigil_front_door");
        }
    }

    #[test]
    fn retractions_clear_removed_entities_only() {
        let t = Topics::new("vigil", "ha");
        let old = cams();
        let new = vec![CameraInfo {
            name: "front door".into(),
            zones: vec!["path".into()],
        }];
        let r = t.retractions(&old, &new);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].topic,
            "ha/binary_sensor/vigil_front_door/zone_gate_2/config"
        );
        assert!(r[0].payload.is_empty() && r[0].retain);
        assert_eq!(t.retractions(&old, &[]).len(), 4);
    }

    fn start(id: i64, zones: &[&str]) -> AlertEvent {
        AlertEvent::MotionStart {
            id,
            camera: "front door".into(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
            start_us: 1,
            score: 0.5,
            bbox: None,
        }
    }

    fn end(id: i64, zones: &[&str]) -> AlertEvent {
        AlertEvent::MotionEnd {
            id,
            camera: "front door".into(),
            zones: zones.iter().map(|z| z.to_string()).collect(),
            start_us: 1,
            end_us: 2,
            peak_score: 0.5,
            bbox: None,
        }
    }

    fn shown(msgs: &[Msg]) -> Vec<(String, String)> {
        msgs.iter()
            .map(|m| {
                (
                    m.topic.clone(),
                    String::from_utf8_lossy(&m.payload).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn overlapping_events_keep_the_sensor_on() {
        let t = Topics::new("v", "ha");
        let mut s = States::default();
        let on = |topic: &str, p: &str| (topic.to_owned(), p.to_owned());
        assert_eq!(
            shown(&s.apply(&t, &start(1, &["path"]))),
            [
                on("v/front_door/motion", "ON"),
                on("v/front_door/path/motion", "ON")
            ]
        );
        assert_eq!(
            shown(&s.apply(&t, &start(2, &["gate/2"]))),
            [on("v/front_door/gate_2/motion", "ON")]
        );
        assert_eq!(
            shown(&s.apply(&t, &end(1, &["path"]))),
            [on("v/front_door/path/motion", "OFF")]
        );
        let all = shown(&s.all(&t, &cams()));
        assert!(all.contains(&on("v/front_door/motion", "ON")));
        assert!(all.contains(&on("v/front_door/gate_2/motion", "ON")));
        assert!(all.contains(&on("v/front_door/path/motion", "OFF")));
        assert!(all.contains(&on("v/front_door/availability", "online")));
        assert_eq!(
            shown(&s.apply(&t, &end(2, &["gate/2"]))),
            [
                on("v/front_door/motion", "OFF"),
                on("v/front_door/gate_2/motion", "OFF")
            ]
        );
        // An end whose start was never seen still turns the sensor off.
        assert_eq!(
            shown(&s.apply(&t, &end(9, &[]))),
            [on("v/front_door/motion", "OFF")]
        );
        s.apply(
            &t,
            &AlertEvent::CameraOffline {
                camera: "front door".into(),
                reason: "eof".into(),
            },
        );
        assert!(shown(&s.all(&t, &cams())).contains(&on("v/front_door/availability", "offline")));
    }
}
