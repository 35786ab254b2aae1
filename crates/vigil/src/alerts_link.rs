//! Connects the NVR's events to the alerts (MQTT, webhooks): `vigil-alerts` knows nothing
//! of the NVR, so this module maps one onto the other and keeps the alerts' camera list
//! (Home Assistant entities) in step with cameras and zones added or removed in the web app.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tracing::warn;
use vigil_alerts::{AlertEvent, Alerts, AlertsConfig, BBox, CameraInfo, SnapshotFn};
use vigil_nvr::events::EventRow;
use vigil_nvr::{Nvr, NvrEvent, ZoneKind};

/// How often the camera list is compared with the NVR's (cameras and zones change in the web
/// app without an event on the bus).
const CAMERA_REFRESH: Duration = Duration::from_secs(5);

/// The running alerts and the task feeding them.
pub struct AlertsLink {
    alerts: Alerts,
    feeder: tokio::task::JoinHandle<()>,
}

impl AlertsLink {
    /// Starts the alerts when the configuration has any (`None` otherwise).
    pub fn start(cfg: AlertsConfig, nvr: Arc<Nvr>) -> Option<AlertsLink> {
        if cfg.mqtt.is_none() && cfg.webhooks.is_empty() {
            return None;
        }
        let snap_nvr = nvr.clone();
        let snapshot: SnapshotFn = Arc::new(move |camera: String| {
            let nvr = snap_nvr.clone();
            Box::pin(async move { nvr.snapshot_jpeg(&camera).await.ok() })
        });
        let alerts = Alerts::start(cfg, camera_infos(&nvr), snapshot);
        let feeder = tokio::spawn(feed(nvr, alerts.clone()));
        Some(AlertsLink { alerts, feeder })
    }

    /// The web app's extra status: `{"alerts": …}`.
    pub fn status_provider(link: Option<&AlertsLink>) -> vigil_web::StatusProvider {
        match link {
            Some(l) => {
                let alerts = l.alerts.clone();
                Arc::new(move || serde_json::json!({ "alerts": alerts.status() }))
            }
            None => Arc::new(|| serde_json::json!({ "alerts": { "configured": false } })),
        }
    }

    /// Stops feeding and lets the alerts deliver what they can (bounded by their shutdown).
    pub async fn shutdown(self) {
        self.feeder.abort();
        self.alerts.shutdown().await;
    }
}

/// The alerts' view of the cameras: names and zone names (masks are not entities).
fn camera_infos(nvr: &Nvr) -> Vec<CameraInfo> {
    nvr.cameras()
        .into_iter()
        .map(|(spec, _)| CameraInfo {
            name: spec.name,
            zones: spec
                .motion
                .zones
                .into_iter()
                .filter(|z| z.kind == ZoneKind::Zone)
                .map(|z| z.name)
                .collect(),
        })
        .collect()
}

fn bbox(e: &EventRow) -> Option<BBox> {
    e.bbox.map(|b| BBox {
        x: b.x,
        y: b.y,
        w: b.w,
        h: b.h,
    })
}

/// Maps one NVR event; `None` for an end without an end time (cannot happen for rows the
/// store finished, but a hostile or corrupt row must not panic).
pub fn to_alert(ev: NvrEvent) -> Option<AlertEvent> {
    Some(match ev {
        NvrEvent::CameraOnline { camera } => AlertEvent::CameraOnline { camera },
        NvrEvent::CameraOffline { camera, reason } => AlertEvent::CameraOffline { camera, reason },
        NvrEvent::MotionStart { event } => AlertEvent::MotionStart {
            id: event.id,
            bbox: bbox(&event),
            camera: event.camera,
            zones: event.zones,
            start_us: event.start_us,
            score: event.peak_score,
        },
        NvrEvent::MotionEnd { event } => AlertEvent::MotionEnd {
            id: event.id,
            bbox: bbox(&event),
            end_us: event.end_us?,
            camera: event.camera,
            zones: event.zones,
            start_us: event.start_us,
            peak_score: event.peak_score,
        },
    })
}

async fn feed(nvr: Arc<Nvr>, alerts: Alerts) {
    let mut bus = nvr.subscribe();
    let mut known = zones_by_camera(&camera_infos(&nvr));
    let mut refresh = tokio::time::interval(CAMERA_REFRESH);
    loop {
        tokio::select! {
            ev = bus.recv() => match ev {
                Ok(ev) => {
                    if let Some(a) = to_alert(ev) {
                        alerts.send(a);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    warn!("alerts: {n} NVR events were missed (the bus overflowed)");
                }
                Err(RecvError::Closed) => return,
            },
            _ = refresh.tick() => {
                let now = camera_infos(&nvr);
                let map = zones_by_camera(&now);
                if map != known {
                    known = map;
                    alerts.set_cameras(now);
                }
            }
        }
    }
}

fn zones_by_camera(c: &[CameraInfo]) -> BTreeMap<String, Vec<String>> {
    c.iter()
        .map(|c| (c.name.clone(), c.zones.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_nvr::events::NormBox;

    fn row(end: Option<i64>) -> EventRow {
        EventRow {
            id: 7,
            camera: "yard".into(),
            zones: vec!["gate".into()],
            start_us: 1_000,
            end_us: end,
            peak_score: 0.25,
            bbox: Some(NormBox {
                x: 0.1,
                y: 0.2,
                w: 0.3,
                h: 0.4,
            }),
            has_thumbnail: true,
        }
    }

    #[test]
    fn motion_events_keep_ids_times_zones_and_box() {
        let a = to_alert(NvrEvent::MotionEnd {
            event: row(Some(5_000)),
        })
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&a.to_json()).unwrap();
        assert_eq!(json["type"], "motion_end");
        assert_eq!(json["id"], 7);
        assert_eq!(json["end_us"], 5_000);
        assert_eq!(json["zones"][0], "gate");
        assert!((json["bbox"]["h"].as_f64().unwrap() - 0.4).abs() < 1e-6);
        let s = to_alert(NvrEvent::MotionStart { event: row(None) }).unwrap();
        assert_eq!(s.type_name(), "motion_start");
    }

    #[test]
    fn an_end_without_end_time_is_dropped() {
        assert!(to_alert(NvrEvent::MotionEnd { event: row(None) }).is_none());
    }
}
