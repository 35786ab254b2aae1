//! Motion detection of one camera, and the recording gate of motion-only cameras.
//!
//! ```text
//!  hub ──subscribe──► feeder task ──bounded queue──► worker thread ──► sink task
//!   (sub stream)       (async, never     (drops to the     (OpenH264 or libav   (thumbnail JPEG,
//!                       blocks the hub)   next key frame    every AU, detector    EventStore rows,
//!                                         when full)        at settings.fps)      NvrEvent bus)
//! ```
//!
//! Decoding is CPU-bound, so it runs on a dedicated std thread, never on the tokio runtime.
//! The feeder hands access units over a small bounded queue: when decoding cannot keep up,
//! access units are dropped up to the next key frame (a P-frame without its references would
//! decode to garbage), so a slow machine analyses fewer pictures but never delays the hub,
//! the recorder or the live view. The worker only decides; storage (SQLite, JPEG encoding)
//! happens in the sink task on the blocking pool, off the decode path.
//!
//! [`MotionHandle::active`] turns true when an event is confirmed (after `min_duration_s`)
//! and false when it ends (after `cooldown_s`); [`spawn_gate`] uses it to record motion-only
//! cameras with a pre-roll taken from what it buffered.

mod analyzer;
mod gate;
#[cfg(feature = "libav")]
mod libav;
mod settings;
mod sink;

pub use analyzer::{Analysed, Analyzer, AnalyzerStats, DecoderKind};
pub use gate::{spawn_gate, Gate};
pub use settings::{detector_sensitivity, motion_config, validate_settings, MAX_FPS};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, watch};
use vigil_hub::Hub;
use vigil_media::AccessUnit;
use vigil_motion::{BBox, MotionEvent, Scope};

use crate::events::{EventStore, NormBox};
use crate::{MotionSettings, NvrError, NvrEvent};

/// Access units queued between the feeder and the decoder: about 2 s of a 15 fps sub stream.
const QUEUE: usize = 32;

/// How often an active event's row is refreshed (so a crash closes it near the truth).
const TOUCH_EVERY_US: i64 = 5_000_000;

/// A running motion detector. Dropping it without [`MotionHandle::stop`] aborts the feeder;
/// the worker then ends on its own and its open event is closed at the next start.
pub struct MotionHandle {
    /// Whether a motion event is active now.
    pub active: watch::Receiver<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    feeder: tokio::task::JoinHandle<()>,
    sink: tokio::task::JoinHandle<()>,
    counters: Arc<Counters>,
}

/// Counters of a running detector, for the status page and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MotionStats {
    /// Access units decoded.
    pub decoded: u64,
    /// Pictures analysed.
    pub analysed: u64,
    /// Access units dropped because decoding could not keep up (or after a decode error).
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    decoded: AtomicU64,
    analysed: AtomicU64,
    dropped: AtomicU64,
}

impl MotionHandle {
    /// Counters so far.
    pub fn stats(&self) -> MotionStats {
        let c = &self.counters;
        MotionStats {
            decoded: c.decoded.load(Ordering::Relaxed),
            analysed: c.analysed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Stops: the worker ends open events at the last picture's time, the sink stores them
    /// and publishes `MotionEnd`, then this returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.feeder).await;
        let _ = (&mut self.sink).await;
    }
}

impl Drop for MotionHandle {
    fn drop(&mut self) {
        self.feeder.abort();
    }
}

/// What the worker tells the sink, in order.
#[derive(Debug)]
enum SinkMsg {
    Start {
        key: u64,
        zones: Vec<String>,
        start_us: i64,
        score: f32,
        bbox: Option<NormBox>,
        frame: Option<vigil_camera::I420Frame>,
    },
    Touch {
        key: u64,
        now_us: i64,
        peak: f32,
        bbox: Option<NormBox>,
    },
    End {
        key: u64,
        end_us: i64,
        peak: f32,
        bbox: Option<NormBox>,
        zones: Vec<String>,
    },
}

fn norm(b: BBox) -> NormBox {
    NormBox {
        x: b.x,
        y: b.y,
        w: b.width,
        h: b.height,
    }
}

/// Starts motion detection on `hub` (the camera's sub stream, else its main stream): events
/// go to `store` and, once stored, to `bus` as [`NvrEvent::MotionStart`] / `MotionEnd`.
/// Fails only on invalid settings or when the worker thread cannot be created.
pub fn spawn_motion(
    camera: String,
    hub: Hub,
    settings: MotionSettings,
    store: Arc<EventStore>,
    bus: broadcast::Sender<NvrEvent>,
) -> Result<MotionHandle, NvrError> {
    let analyzer = Analyzer::new(settings)?;
    let (active_tx, active) = watch::channel(false);
    let (au_tx, au_rx) = sync_channel::<AccessUnit>(QUEUE);
    let (sink_tx, sink_rx) = mpsc::unbounded_channel();
    let counters = Arc::new(Counters::default());
    let c = counters.clone();
    let cam = camera.clone();
    std::thread::Builder::new()
        .name("vigil-motion".into())
        .spawn(move || worker(&cam, analyzer, au_rx, &sink_tx, &active_tx, &c))
        .map_err(|source| NvrError::Io {
            context: "starting the motion thread".into(),
            source,
        })?;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
    let mut sub = hub.subscribe_bulk();
    drop(hub);
    let c = counters.clone();
    let cam = camera.clone();
    let feeder = tokio::spawn(async move {
        let mut need_key = false;
        let mut warned = false;
        loop {
            let au = tokio::select! {
                _ = &mut stop_rx => break,
                r = sub.recv_video() => match r {
                    Ok(au) => au,
                    Err(_) => break,
                },
            };
            if need_key && !au.key {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            need_key = false;
            match au_tx.try_send(au) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    need_key = true;
                    if !warned {
                        warned = true;
                        tracing::warn!(
                            camera = %cam,
                            "motion detection cannot keep up with the stream; skipping to key \
                             frames (analysing fewer pictures); this is logged once"
                        );
                    }
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        // Dropping `au_tx` ends the worker, which ends open events and then the sink.
    });
    let sink = tokio::spawn(sink::run(camera, sink_rx, store, bus));
    Ok(MotionHandle {
        active,
        stop: Some(stop_tx),
        feeder,
        sink,
        counters,
    })
}

/// State of the camera-scope event the worker is tracking.
struct Open {
    key: u64,
    peak: f32,
    bbox: Option<BBox>,
    touched_us: i64,
}

fn worker(
    camera: &str,
    mut analyzer: Analyzer,
    rx: Receiver<AccessUnit>,
    sink: &mpsc::UnboundedSender<SinkMsg>,
    active: &watch::Sender<bool>,
    counters: &Counters,
) {
    let mut open: Option<Open> = None;
    let mut failed = false;
    while let Ok(au) = rx.recv() {
        if failed {
            continue;
        }
        let out = analyzer.push(&au);
        let st = analyzer.stats();
        counters.decoded.store(st.decoded, Ordering::Relaxed);
        counters.analysed.store(st.analysed, Ordering::Relaxed);
        match out {
            Ok(Some(a)) => handle(a, &mut open, sink, active),
            Ok(None) => {}
            Err(e) => {
                // H.265 or a zone that does not fit: nothing to analyse on this stream.
                tracing::warn!(camera, error = %e, "motion detection stopped");
                failed = true;
            }
        }
    }
    for e in analyzer.finish() {
        event(e, None, 0.0, None, &mut open, sink, active);
    }
}

fn handle(
    a: Analysed,
    open: &mut Option<Open>,
    sink: &mpsc::UnboundedSender<SinkMsg>,
    active: &watch::Sender<bool>,
) {
    let frame_box = a
        .result
        .regions
        .iter()
        .map(|r| r.bbox)
        .reduce(|x, y| x.union(&y));
    let mut frame = a.start_frame;
    for e in a.result.events {
        event(
            e,
            frame.take(),
            a.result.score,
            frame_box,
            open,
            sink,
            active,
        );
    }
    if let Some(o) = open.as_mut() {
        if a.result.motion {
            o.peak = o.peak.max(a.result.score);
            if let Some(b) = frame_box {
                o.bbox = Some(o.bbox.map_or(b, |x| x.union(&b)));
            }
        }
        if a.ts_us - o.touched_us >= TOUCH_EVERY_US {
            o.touched_us = a.ts_us;
            let _ = sink.send(SinkMsg::Touch {
                key: o.key,
                now_us: a.ts_us,
                peak: o.peak,
                bbox: o.bbox.map(norm),
            });
        }
    }
}

/// Turns a camera-scope detector event into a sink message (zone-scope events are folded
/// into the camera event's zone list by the detector already).
fn event(
    e: MotionEvent,
    frame: Option<vigil_camera::I420Frame>,
    score: f32,
    frame_box: Option<BBox>,
    open: &mut Option<Open>,
    sink: &mpsc::UnboundedSender<SinkMsg>,
    active: &watch::Sender<bool>,
) {
    match e {
        MotionEvent::Start {
            id,
            scope: Scope::Camera,
            zones,
            ts_us,
        } => {
            *open = Some(Open {
                key: id,
                peak: score,
                bbox: frame_box,
                touched_us: ts_us,
            });
            active.send_replace(true);
            let _ = sink.send(SinkMsg::Start {
                key: id,
                zones: zones.iter().map(|z| z.to_string()).collect(),
                start_us: ts_us,
                score,
                bbox: frame_box.map(norm),
                frame,
            });
        }
        MotionEvent::End {
            id,
            scope: Scope::Camera,
            ts_us,
            peak_score,
            bbox,
            zones,
            ..
        } => {
            *open = None;
            active.send_replace(false);
            let _ = sink.send(SinkMsg::End {
                key: id,
                end_us: ts_us,
                peak: peak_score,
                bbox: Some(norm(bbox)),
                zones: zones.iter().map(|z| z.to_string()).collect(),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
#[cfg(feature = "libav")]
mod libav_tests;
#[cfg(test)]
mod tests;
