//! One camera's running pipeline: per stream (main, and sub when the camera has one)
//! `Ingest` (RTSP via retina, supervised) → `Hub` → `Recorder::record`. The hub carries
//! the stream's video, audio (when the camera's audio is recorded), gaps and
//! discontinuities in one ordered stream, so the recording subscribes once. The ingest's
//! status feeds the measured rates, the `recording`/`offline` stdout lines of `vigil
//! serve` and the `CameraOnline`/`CameraOffline` events ([`watch_status`]).
//!
//! Stopping goes ingest first (nothing new arrives), then each writer drains its queue,
//! writes its pending fragment and closes its file.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};
use vigil_hub::Hub;
use vigil_ingest::{CameraStream, Ingest, IngestConfig, IngestState, IngestStatus};
use vigil_recorder::{Recorder, RecordingHandle};

use crate::motion::{self, MotionHandle};
use crate::status::{self, RateWindow};
use crate::{
    CameraSpec, CameraStatus, NvrError, NvrEvent, RecordMode, StreamCounters, StreamState,
    StreamStatus,
};

/// Access units a stream's hub holds for its subscribers (~4 s at 30 fps). The recorder's
/// own queue behind it is larger (see `RecorderConfig::queue_len`).
pub(crate) const HUB_CAPACITY: usize = 128;
/// The same for a stream whose audio travels in the hub too (AAC at 48 kHz adds about 47
/// frames a second to the video's 30): the same ~4 s.
pub(crate) const HUB_CAPACITY_WITH_AUDIO: usize = 3 * HUB_CAPACITY;

/// A hub for one stream of `spec` (its audio too, if the camera's audio is recorded).
fn stream_hub(spec: &CameraSpec, name: String) -> Hub {
    match spec.audio {
        true => Hub::with_audio(name, HUB_CAPACITY_WITH_AUDIO),
        false => Hub::new(name, HUB_CAPACITY),
    }
}

/// What every camera's tasks share.
pub(crate) struct Ctx {
    /// The recorder of the data directory.
    pub recorder: Arc<Recorder>,
    /// Camera and motion events.
    pub bus: broadcast::Sender<NvrEvent>,
    /// Print `recording`/`offline` lines on stdout.
    pub announce: bool,
    /// The motion event store (for the motion pipeline).
    pub events: Arc<crate::events::EventStore>,
}

/// One running stream.
pub(crate) struct StreamRun {
    /// `main` or `sub`.
    pub stream: String,
    /// The hub the ingest publishes into (live view, snapshots, motion).
    pub hub: Hub,
    ingest: Ingest,
    recording: RecordingHandle,
    status: watch::Receiver<IngestStatus>,
    rates: Arc<Mutex<RateWindow>>,
    tasks: Vec<JoinHandle<()>>,
}

impl StreamRun {
    fn counters(&self, camera: &str) -> StreamCounters {
        let st = self.status.borrow();
        StreamCounters {
            camera: camera.to_owned(),
            stream: self.stream.clone(),
            state: status::stream_state(&st.state).0,
            frames: st.frames,
            bytes: st.bytes,
            reconnects: st.reconnects,
            last_frame_us: st.last_frame_wall_us,
        }
    }

    fn status(&self, now: Instant) -> StreamStatus {
        let ingest = self.status.borrow().clone();
        let rates = self
            .rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rates(now);
        let params = self.hub.params();
        status::stream_status(&self.stream, &ingest, params.as_deref(), rates)
    }
}

/// One camera: its spec (with the password) and its streams, or why it could not start.
pub(crate) struct CameraRun {
    pub spec: CameraSpec,
    pub streams: Vec<StreamRun>,
    /// Set when the pipeline could not be started (e.g. the recorder refused).
    pub error: Option<String>,
    motion: Option<MotionHandle>,
    /// Recording gates of a motion-only camera, one per stream.
    gates: Vec<JoinHandle<()>>,
}

impl CameraRun {
    /// Starts every stream of `spec` (already validated), and its motion detector. A
    /// failure leaves a run that reports the error in its status, so the camera still
    /// shows in the UI.
    pub(crate) async fn start(ctx: &Arc<Ctx>, spec: CameraSpec) -> CameraRun {
        let mut run = CameraRun {
            spec,
            streams: Vec::new(),
            error: None,
            motion: None,
            gates: Vec::new(),
        };
        let name = run.spec.name.clone();
        let mut urls = vec![("main", run.spec.url.clone())];
        if let Some(sub) = &run.spec.sub_url {
            urls.push(("sub", sub.clone()));
        }
        // Hubs first: the detector and the gates subscribe before any frame arrives.
        let hubs: Vec<Hub> = urls
            .iter()
            .map(|(stream, _)| stream_hub(&run.spec, format!("{name}/{stream}")))
            .collect();
        if run.spec.motion.enabled {
            // Motion is detected on the sub stream (cheap to decode), else on the main one.
            let Some(detect_hub) = hubs.last().cloned() else {
                return run;
            };
            match motion::spawn_motion(
                name.clone(),
                detect_hub,
                run.spec.motion.clone(),
                ctx.events.clone(),
                ctx.bus.clone(),
            ) {
                Ok(m) => run.motion = Some(m),
                Err(e) => error!(camera = %name, "cannot start motion detection: {e}"),
            }
        }
        for ((stream, url), hub) in urls.into_iter().zip(hubs) {
            // Motion-only recording: the recorder gets what the gate lets through.
            let record_hub = match (&run.spec.record, &run.motion) {
                (
                    RecordMode::Motion {
                        pre_roll_s,
                        post_roll_s,
                    },
                    Some(m),
                ) => {
                    let out = stream_hub(&run.spec, format!("{name}/{stream}/gated"));
                    run.gates.push(motion::spawn_gate(
                        hub.clone(),
                        out.clone(),
                        Duration::from_secs(u64::from(*pre_roll_s)),
                        Duration::from_secs(u64::from(*post_roll_s)),
                        m.active.clone(),
                    ));
                    out
                }
                (RecordMode::Motion { .. }, None) => {
                    warn!(camera = %name, "motion detection is not running; recording continuously");
                    hub.clone()
                }
                (RecordMode::Continuous, _) => hub.clone(),
            };
            match start_stream(ctx, &run.spec, stream, &url, hub, record_hub) {
                Ok(s) => run.streams.push(s),
                Err(e) => {
                    error!(camera = %name, stream, "cannot start recording: {e}");
                    run.error = Some(e.to_string());
                    let streams = std::mem::take(&mut run.streams);
                    let (motion, gates) = (run.motion.take(), std::mem::take(&mut run.gates));
                    stop_streams(streams, motion, gates).await;
                    return run;
                }
            }
        }
        run
    }

    /// The camera's live status.
    pub(crate) fn status(&self) -> CameraStatus {
        let now = Instant::now();
        let mut streams: Vec<StreamStatus> = self.streams.iter().map(|s| s.status(now)).collect();
        if let Some(e) = &self.error {
            streams = vec![StreamStatus {
                stream: "main".into(),
                state: StreamState::Failed,
                reason: Some(e.clone()),
                codec: None,
                width: None,
                height: None,
                fps: 0.0,
                bitrate_bps: 0,
                last_frame_us: None,
            }];
        }
        CameraStatus {
            name: self.spec.name.clone(),
            streams,
            motion_active: self.motion.as_ref().is_some_and(|m| *m.active.borrow()),
        }
    }

    /// The streams' counters; a camera that could not start reports a failed `main`.
    pub(crate) fn counters(&self) -> Vec<StreamCounters> {
        if self.error.is_some() {
            return vec![StreamCounters {
                camera: self.spec.name.clone(),
                stream: "main".into(),
                state: StreamState::Failed,
                frames: 0,
                bytes: 0,
                reconnects: 0,
                last_frame_us: None,
            }];
        }
        self.streams
            .iter()
            .map(|s| s.counters(&self.spec.name))
            .collect()
    }

    /// The hub of `stream`.
    pub(crate) fn hub(&self, stream: &str) -> Option<Hub> {
        self.streams
            .iter()
            .find(|s| s.stream == stream)
            .map(|s| s.hub.clone())
    }

    /// Stops the camera: ingests first, then the recordings flush and close their files.
    /// Once it returns the camera can start again (an edit, or removed and added again):
    /// its streams get fresh recordings, with a gap row for the time between.
    pub(crate) async fn stop(self) {
        stop_streams(self.streams, self.motion, self.gates).await;
    }
}

/// Stops a camera's parts: all ingests at once, then the detector (closing an open
/// event) and the gates, then each recording.
async fn stop_streams(
    streams: Vec<StreamRun>,
    motion: Option<MotionHandle>,
    gates: Vec<JoinHandle<()>>,
) {
    let mut rest = Vec::new();
    let mut stops = tokio::task::JoinSet::new();
    for s in streams {
        stops.spawn(s.ingest.stop());
        rest.push((s.hub, s.recording, s.tasks));
    }
    while stops.join_next().await.is_some() {}
    // Let the hub-to-writer tasks (and gates) forward what the ingests published last.
    if !rest.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(m) = motion {
        m.stop().await;
    }
    // A gate only ends when its source hub does, which we still hold: stop it here.
    for g in gates {
        g.abort();
    }
    for (hub, recording, tasks) in rest {
        recording.stop().await;
        info!(stream = %hub.name(), "recording stopped");
        // The status watcher ends at `Stopped`; it may not hold up a shutdown.
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(2), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }
}

/// The ingest settings of one stream of a spec, through the one conversion (and its
/// validation) the configuration file uses too.
pub(crate) fn ingest_config(
    spec: &CameraSpec,
    stream: &str,
    url: &str,
) -> Result<IngestConfig, NvrError> {
    let cam = CameraStream {
        camera: &spec.name,
        stream,
        url,
        username: spec.username.as_deref(),
        password: spec.password.as_ref().map(|p| p.expose()),
        transport: spec.transport,
        audio: spec.audio,
    };
    IngestConfig::for_camera(&cam).map_err(|e| NvrError::Invalid(format!("{cam} {e}")))
}

/// Starts one stream: its ingest publishing into `hub`, the recording of `record_hub`
/// (the same hub, or a motion gate's output), and the event and status tasks.
fn start_stream(
    ctx: &Arc<Ctx>,
    spec: &CameraSpec,
    stream: &str,
    url: &str,
    hub: Hub,
    record_hub: Hub,
) -> Result<StreamRun, NvrError> {
    let cfg = ingest_config(spec, stream, url)?;
    let name = cfg.name.clone();
    // The ingest only connects once this task yields, so the recording subscribing right
    // after it misses nothing.
    let ingest = Ingest::spawn(cfg, hub.clone());
    let recording = ctx.recorder.record(&spec.name, stream, record_hub)?;
    let mut tasks = Vec::new();
    let status = ingest.status();
    let rates = Arc::new(Mutex::new(RateWindow::default()));
    tasks.push(tokio::spawn(watch_status(
        WatchCtx {
            name,
            camera: spec.name.clone(),
            main: stream == "main",
            bus: ctx.bus.clone(),
            announce: ctx.announce,
            rates: rates.clone(),
        },
        status.clone(),
    )));
    Ok(StreamRun {
        stream: stream.to_owned(),
        hub,
        ingest,
        recording,
        status,
        rates,
        tasks,
    })
}

/// Prints a machine-readable line on stdout, flushed.
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct WatchCtx {
    name: String,
    camera: String,
    main: bool,
    bus: broadcast::Sender<NvrEvent>,
    announce: bool,
    rates: Arc<Mutex<RateWindow>>,
}

/// Follows a stream's ingest status: feeds the rate window, prints `recording NAME` each
/// time the stream starts flowing and `offline NAME` when it is lost (with `announce`),
/// and for the main stream broadcasts `CameraOnline`/`CameraOffline`.
async fn watch_status(w: WatchCtx, mut status: watch::Receiver<IngestStatus>) {
    let mut flowing = false;
    loop {
        let st = status.borrow_and_update().clone();
        {
            let mut rates = w.rates.lock().unwrap_or_else(|e| e.into_inner());
            match st.state {
                IngestState::Streaming => rates.push(Instant::now(), st.frames, st.bytes),
                _ => rates.clear(),
            }
        }
        let lost = |reason: &str| {
            if w.announce {
                announce(&format!("offline {}", w.name));
            }
            if w.main {
                let _ = w.bus.send(NvrEvent::CameraOffline {
                    camera: w.camera.clone(),
                    reason: reason.to_owned(),
                });
            }
        };
        match &st.state {
            IngestState::Streaming if !flowing => {
                flowing = true;
                if w.announce {
                    announce(&format!("recording {}", w.name));
                }
                if w.main {
                    let _ = w.bus.send(NvrEvent::CameraOnline {
                        camera: w.camera.clone(),
                    });
                }
            }
            IngestState::Backoff { reason, .. } if flowing => {
                flowing = false;
                warn!(stream = %w.name, %reason, "camera lost; reconnecting");
                lost(reason);
            }
            IngestState::Failed(reason) => {
                if flowing {
                    lost(reason);
                }
                flowing = false;
                error!(stream = %w.name, %reason, "cannot record this stream; will retry slowly");
            }
            IngestState::Stopped => return,
            _ => {}
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}
