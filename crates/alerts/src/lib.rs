//! Alerts: MQTT with Home Assistant discovery, and HMAC-SHA256-signed webhooks. Delivery
//! runs in its own tasks behind bounded queues, so a broken broker or a dead endpoint
//! never delays recording.
//!
//! ```text
//! NVR events ──send()──┬─► MQTT task ── outbox (≤1000 events) ──► broker (QoS 1, re-sent until PUBACK)
//!   (never blocks)     └─► one task per webhook ── queue (≤1000) ──► signed POST, back-off retries
//! ```
//! `send` only does `try_send` on bounded channels: if a channel is full the event is counted
//! as dropped/failed for that channel and logged, and the caller goes on. Topics, payloads and
//! the signature scheme are documented in docs/alerts.md.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;

mod config;
pub mod ha;
mod http;
mod mqtt;
pub mod sign;
mod webhook;

pub use config::{AlertsConfig, MqttConfig, Secret, WebhookConfig, EVENT_TYPES};
pub use webhook::backoff;

/// Errors of this crate (configuration and TLS setup; delivery errors go to `status()`).
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// A configuration value is invalid.
    #[error("{0}")]
    Config(String),
    /// TLS could not be set up (CA file unreadable, no trust roots).
    #[error("TLS: {0}")]
    Tls(String),
}

/// A box in normalized picture coordinates (0..1, origin top left).
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct BBox {
    /// Left.
    pub x: f32,
    /// Top.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// What is alerted. Serialized (MQTT `<prefix>/events`, webhook body) as a JSON object with a
/// `type` field: `motion_start`, `motion_end`, `camera_online`, `camera_offline`.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertEvent {
    /// Motion started on a camera.
    MotionStart {
        /// Event id (the event store's row id).
        id: i64,
        /// Camera name.
        camera: String,
        /// Zones the motion touched (empty: no zones configured).
        zones: Vec<String>,
        /// Start, µs since the epoch.
        start_us: i64,
        /// Score of the triggering frame (0..1).
        score: f32,
        /// Box around the moving region.
        bbox: Option<BBox>,
    },
    /// Motion ended.
    MotionEnd {
        /// Event id (same as the start's).
        id: i64,
        /// Camera name.
        camera: String,
        /// Zones the motion touched during the event.
        zones: Vec<String>,
        /// Start, µs since the epoch.
        start_us: i64,
        /// End, µs since the epoch.
        end_us: i64,
        /// Peak score (0..1).
        peak_score: f32,
        /// Box around the moving region at the peak.
        bbox: Option<BBox>,
    },
    /// A camera's stream came (back) up.
    CameraOnline {
        /// Camera name.
        camera: String,
    },
    /// A camera's stream was lost.
    CameraOffline {
        /// Camera name.
        camera: String,
        /// Why.
        reason: String,
    },
}

impl AlertEvent {
    /// The `type` string (see [`EVENT_TYPES`]), used by webhook filters.
    pub fn type_name(&self) -> &'static str {
        match self {
            AlertEvent::MotionStart { .. } => "motion_start",
            AlertEvent::MotionEnd { .. } => "motion_end",
            AlertEvent::CameraOnline { .. } => "camera_online",
            AlertEvent::CameraOffline { .. } => "camera_offline",
        }
    }

    /// The camera the event is about.
    pub fn camera(&self) -> &str {
        match self {
            AlertEvent::MotionStart { camera, .. }
            | AlertEvent::MotionEnd { camera, .. }
            | AlertEvent::CameraOnline { camera }
            | AlertEvent::CameraOffline { camera, .. } => camera,
        }
    }

    /// The JSON published and POSTed.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings and numbers cannot fail (non-finite floats become null).
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A camera as Home Assistant sees it: one device with a motion sensor, one per zone, and a
/// snapshot camera entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraInfo {
    /// Camera name.
    pub name: String,
    /// Names of its motion zones (not masks).
    pub zones: Vec<String>,
}

/// Fetches a camera's current JPEG snapshot (published to `<prefix>/<camera>/snapshot` when
/// motion starts); `None` if there is none. Called from a spawned task with a timeout.
pub type SnapshotFn =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>> + Send + Sync>;

/// The running alert channels. Cheap to clone; every clone feeds the same tasks, and
/// [`Alerts::shutdown`] on any clone stops them.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("status", &self.status())
            .finish()
    }
}

struct Inner {
    mqtt: Mutex<Option<mqtt::MqttHandle>>,
    /// Status of the MQTT side (shared with its task).
    mqtt_status: Arc<Mutex<mqtt::MqttStatus>>,
    webhooks: Mutex<Vec<webhook::WebhookHandle>>,
    /// Status of each webhook, in configuration order (kept after shutdown for a last look).
    webhook_status: Vec<Arc<Mutex<webhook::WebhookStats>>>,
}

impl Alerts {
    /// Starts the MQTT task (if configured) and one task per webhook. Must be called within a
    /// Tokio runtime. Never fails: an invalid part is disabled and its error shown in `status()`.
    pub fn start(cfg: AlertsConfig, cameras: Vec<CameraInfo>, snapshot: SnapshotFn) -> Alerts {
        let (mqtt, mqtt_status) = match cfg.mqtt {
            None => (None, Arc::new(Mutex::new(mqtt::MqttStatus::disabled(None)))),
            Some(m) => match mqtt::spawn(m, cameras, snapshot) {
                Ok((handle, status)) => (Some(handle), status),
                Err(e) => {
                    tracing::error!("mqtt disabled: {e}");
                    (
                        None,
                        Arc::new(Mutex::new(mqtt::MqttStatus::disabled(Some(e.to_string())))),
                    )
                }
            },
        };
        let mut webhooks = Vec::new();
        let mut webhook_status = Vec::new();
        for w in cfg.webhooks {
            let (handle, stats) = webhook::spawn(w);
            webhook_status.push(stats);
            if let Some(h) = handle {
                webhooks.push(h);
            }
        }
        Alerts {
            inner: Arc::new(Inner {
                mqtt: Mutex::new(mqtt),
                mqtt_status,
                webhooks: Mutex::new(webhooks),
                webhook_status,
            }),
        }
    }

    /// Hands an event to every channel. Never blocks and never fails: a full queue counts the
    /// event as dropped (MQTT) or failed (webhook) and logs it.
    pub fn send(&self, ev: AlertEvent) {
        let json = bytes::Bytes::from(ev.to_json());
        if let Ok(hooks) = self.inner.webhooks.lock() {
            for w in hooks.iter() {
                w.send(ev.type_name(), json.clone());
            }
        }
        if let Ok(m) = self.inner.mqtt.lock() {
            if let Some(m) = m.as_ref() {
                m.send(ev, json);
            }
        }
    }

    /// Replaces the camera list (Home Assistant entities are added and retracted to match).
    pub fn set_cameras(&self, cameras: Vec<CameraInfo>) {
        if let Ok(m) = self.inner.mqtt.lock() {
            if let Some(m) = m.as_ref() {
                m.set_cameras(cameras);
            }
        }
    }

    /// `{"mqtt": {"state": "connected"|"connecting"|"disabled", "broker", "last_error", "queued",
    /// "delivered", "dropped"}, "webhooks": [{"url", "delivered", "failed", "queued", "last_error"}]}`.
    /// URLs are shown without user info and query.
    pub fn status(&self) -> serde_json::Value {
        let mqtt = match self.inner.mqtt_status.lock() {
            Ok(s) => s.to_json(),
            Err(_) => serde_json::Value::Null,
        };
        let webhooks: Vec<serde_json::Value> = self
            .inner
            .webhook_status
            .iter()
            .map(|s| match s.lock() {
                Ok(s) => s.to_json(),
                Err(_) => serde_json::Value::Null,
            })
            .collect();
        serde_json::json!({ "mqtt": mqtt, "webhooks": webhooks })
    }

    /// Stops every task: MQTT publishes `offline` and disconnects (within ~2 s); webhooks get
    /// a few seconds to deliver what is queued, the rest is logged and counted as failed.
    pub async fn shutdown(self) {
        let mqtt = self.inner.mqtt.lock().ok().and_then(|mut m| m.take());
        let hooks = self
            .inner
            .webhooks
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        let mqtt_done = async {
            if let Some(m) = mqtt {
                m.shutdown().await;
            }
        };
        let hooks_done = futures_join_all(hooks.into_iter().map(webhook::WebhookHandle::shutdown));
        tokio::join!(mqtt_done, hooks_done);
    }
}

/// Awaits all futures concurrently (a tiny `join_all` without the futures crate).
async fn futures_join_all<F: Future<Output = ()> + Send + 'static>(futs: impl Iterator<Item = F>) {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_json_payloads() {
        let ev = AlertEvent::MotionStart {
            id: 7,
            camera: "yard".into(),
            zones: vec!["gate".into()],
            start_us: 1_700_000_000_000_000,
            score: 0.25,
            bbox: Some(BBox {
                x: 0.5,
                y: 0.25,
                w: 0.125,
                h: 0.5,
            }),
        };
        let v: serde_json::Value = serde_json::from_slice(&ev.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"motion_start","id":7,"camera":"yard","zones":["gate"],
                "start_us":1_700_000_000_000_000_i64,"score":0.25,
                "bbox":{"x":0.5,"y":0.25,"w":0.125,"h":0.5}})
        );
        let off = AlertEvent::CameraOffline {
            camera: "yard".into(),
            reason: "timeout".into(),
        };
        assert_eq!(
            off.to_json(),
            br#"{"type":"camera_offline","camera":"yard","reason":"timeout"}"#
        );
        assert_eq!(off.type_name(), "camera_offline");
        assert_eq!(off.camera(), "yard");
        let end = AlertEvent::MotionEnd {
            id: 7,
            camera: "yard".into(),
            zones: vec![],
            start_us: 1,
            end_us: 2,
            peak_score: 0.5,
            bbox: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&end.to_json()).unwrap();
        assert_eq!(v["type"], "motion_end");
        assert_eq!(v["end_us"], 2);
        assert_eq!(v["bbox"], serde_json::Value::Null);
        for (ev, name) in [(ev, "motion_start"), (end, "motion_end")] {
            assert!(EVENT_TYPES.contains(&ev.type_name()));
            assert_eq!(ev.type_name(), name);
        }
    }
}
