//! The sink: turns the worker's decisions into stored rows and bus events, in order. SQLite
//! and JPEG encoding run on the blocking pool, so neither the runtime nor the decoder waits.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use vigil_camera::I420Frame;

use super::SinkMsg;
use crate::events::{EventRow, EventStore};
use crate::{NvrError, NvrEvent};

/// Thumbnails are at most this wide (the sub stream's 640 is halved; main streams more).
const THUMB_WIDTH: u32 = 320;
/// JPEG quality of thumbnails: small files, faces still recognisable.
const THUMB_QUALITY: u8 = 75;

/// Runs until the worker hangs up.
pub(super) async fn run(
    camera: String,
    mut rx: mpsc::UnboundedReceiver<SinkMsg>,
    store: Arc<EventStore>,
    bus: broadcast::Sender<NvrEvent>,
) {
    // Detector event id → stored row id.
    let mut rows: HashMap<u64, EventRow> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        let store = store.clone();
        let cam = camera.clone();
        match msg {
            SinkMsg::Start {
                key,
                zones,
                start_us,
                score,
                bbox,
                frame,
            } => {
                let r = blocking(move || {
                    let thumb = frame.and_then(|f| match thumbnail_jpeg(&f) {
                        Ok(j) => Some(j),
                        Err(e) => {
                            tracing::warn!(camera = %cam, error = %e, "motion thumbnail");
                            None
                        }
                    });
                    store.insert_start(&cam, &zones, start_us, score, bbox, thumb)
                })
                .await;
                match r {
                    Ok(row) => {
                        rows.insert(key, row.clone());
                        let _ = bus.send(NvrEvent::MotionStart { event: row });
                    }
                    Err(e) => {
                        tracing::error!(camera = %camera, error = %e, "storing a motion event")
                    }
                }
            }
            SinkMsg::Touch {
                key,
                now_us,
                peak,
                bbox,
            } => {
                if let Some(id) = rows.get(&key).map(|r| r.id) {
                    if let Err(e) = blocking(move || store.touch(id, now_us, peak, bbox)).await {
                        tracing::warn!(camera = %camera, error = %e, "updating a motion event");
                    }
                }
            }
            SinkMsg::End {
                key,
                end_us,
                peak,
                bbox,
                zones,
            } => {
                let Some(started) = rows.remove(&key) else {
                    continue;
                };
                let r = blocking(move || {
                    if zones != started.zones && !zones.is_empty() {
                        store.set_zones(started.id, &zones)?;
                    }
                    store.finish(started.id, end_us, peak, bbox)
                })
                .await;
                match r {
                    Ok(row) => {
                        let _ = bus.send(NvrEvent::MotionEnd { event: row });
                    }
                    Err(e) => {
                        tracing::error!(camera = %camera, error = %e, "ending a motion event")
                    }
                }
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NvrError> + Send + 'static,
) -> Result<T, NvrError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NvrError::Events(format!("event task failed: {e}")))?
}

/// A JPEG of `frame` at most [`THUMB_WIDTH`] wide.
pub(super) fn thumbnail_jpeg(frame: &I420Frame) -> Result<Vec<u8>, NvrError> {
    let small;
    let f = if frame.width > THUMB_WIDTH {
        let h = (u64::from(frame.height) * u64::from(THUMB_WIDTH) / u64::from(frame.width)).max(2)
            as u32
            & !1;
        small = frame.scale_to(THUMB_WIDTH, h);
        &small
    } else {
        frame
    };
    let bad = |_| NvrError::Invalid("thumbnail too large".into());
    let (w, h) = (
        u16::try_from(f.width).map_err(bad)?,
        u16::try_from(f.height).map_err(bad)?,
    );
    let rgb = vigil_camera::convert::i420_to_rgb(f);
    let mut out = Vec::with_capacity(rgb.len() / 10);
    jpeg_encoder::Encoder::new(&mut out, THUMB_QUALITY)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| NvrError::Events(format!("thumbnail JPEG: {e}")))?;
    Ok(out)
}
