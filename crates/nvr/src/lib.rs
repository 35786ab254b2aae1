//! The NVR core of `vigil serve` and `vigil demo`: the running set of cameras (ingest →
//! hub → recorder, sub stream → motion detector), their live status, the camera store
//! (`<data>/cameras.json`) and the motion event store (`<data>/events.sqlite3`).
//!
//! The web app (`vigil-web`) and the alerts (`vigil-alerts`) see the system only through
//! [`Nvr`]: they never touch an ingest or a writer directly.

pub mod events;
mod fleet;
pub mod motion;
mod probe;
mod snapshot;
mod spec;
mod status;
mod store;

pub use spec::{
    CameraSource, CameraSpec, MotionSettings, RecordMode, Secret, Transport, ZoneKind, ZoneSpec,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;
use vigil_hub::Hub;
use vigil_media::Codec;
use vigil_recorder::retention::{EventRetention, RetentionConfig};
use vigil_recorder::{Recorder, RecorderConfig};

use fleet::{CameraRun, Ctx};

pub use store::{validate as validate_camera, CAMERAS_FILE};

/// Errors of the NVR core.
#[derive(Debug, thiserror::Error)]
pub enum NvrError {
    /// A camera spec that makes no sense (bad name, URL, zone…); the message says what.
    #[error("{0}")]
    Invalid(String),
    /// No camera of that name.
    #[error("no camera named {0:?}")]
    NoSuchCamera(String),
    /// A camera of that name exists already.
    #[error("a camera named {0:?} exists already")]
    Exists(String),
    /// The camera is defined in the configuration file and can only be changed there.
    #[error("camera {0:?} is defined in the configuration file; edit it there")]
    ReadOnly(String),
    /// Probing a camera failed (connection, authentication, no video…).
    #[error("camera test failed: {0}")]
    Probe(String),
    /// The recorder failed.
    #[error(transparent)]
    Recorder(#[from] vigil_recorder::Error),
    /// The camera has no picture to give right now (not connected yet, or an H.265
    /// stream for a snapshot); the message says why.
    #[error("{0}")]
    Unavailable(String),
    /// The event store failed.
    #[error("event store: {0}")]
    Events(String),
    /// Reading or writing a file of the data directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What `Nvr::start` needs.
#[derive(Clone, Debug)]
pub struct NvrConfig {
    /// The data directory (recordings, index, cameras.json, events.sqlite3).
    pub data_dir: PathBuf,
    /// Recorder settings (file duration, retention of the configuration file).
    pub recorder: RecorderConfig,
    /// Cameras of the configuration file (source [`CameraSource::Config`]).
    pub cameras: Vec<CameraSpec>,
    /// Print `recording CAM/STREAM` / `offline CAM/STREAM` lines on stdout (`vigil serve`).
    pub announce: bool,
}

/// What a stream is doing, as the UI shows it (`connecting`, `streaming`, `offline` or
/// `failed` on the wire).
#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StreamState {
    /// Connecting to the camera.
    Connecting,
    /// Frames are flowing.
    Streaming,
    /// Lost or stopped; the ingest retries after a back-off (the status's `reason` says why).
    Offline,
    /// The ingest gave up, or the camera could not start (the status's `reason` says why).
    Failed,
}

/// State of one stream's ingest, for the UI.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema, PartialEq)]
pub struct StreamStatus {
    /// `main` or `sub`.
    pub stream: String,
    /// What the stream is doing.
    pub state: StreamState,
    /// Why it is offline or failed.
    pub reason: Option<String>,
    /// The codec once known (`h264` or `h265` on the wire).
    #[serde(serialize_with = "status::serialize_codec")]
    #[schemars(with = "Option<status::CodecName>")]
    pub codec: Option<Codec>,
    /// Picture size once known.
    pub width: Option<u32>,
    /// Picture size once known.
    pub height: Option<u32>,
    /// Measured frames per second over the last seconds.
    pub fps: f64,
    /// Measured bits per second over the last seconds.
    pub bitrate_bps: u64,
    /// Wall-clock time (µs since the epoch) of the newest frame.
    pub last_frame_us: Option<i64>,
}

/// One stream's counters for monitoring (`/metrics`, `/readyz`): what the ingest has
/// counted since the camera (re)started, without rates or codec.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamCounters {
    /// The camera.
    pub camera: String,
    /// `main` or `sub`.
    pub stream: String,
    /// What the stream is doing.
    pub state: StreamState,
    /// Video access units received since the camera started.
    pub frames: u64,
    /// Video payload bytes received since the camera started.
    pub bytes: u64,
    /// Sessions started after the first one.
    pub reconnects: u64,
    /// Wall-clock time (µs since the epoch) of the newest frame.
    pub last_frame_us: Option<i64>,
}

/// Live state of one camera.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema, PartialEq)]
pub struct CameraStatus {
    /// The camera.
    pub name: String,
    /// One entry per configured stream.
    pub streams: Vec<StreamStatus>,
    /// Whether a motion event is active now.
    pub motion_active: bool,
}

/// Something that happened, for the web app and the alerts.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NvrEvent {
    /// A camera's main stream started flowing.
    CameraOnline {
        /// The camera.
        camera: String,
    },
    /// A camera's main stream was lost.
    CameraOffline {
        /// The camera.
        camera: String,
        /// Why.
        reason: String,
    },
    /// A motion event started (already stored, `event.end_us` is `None`).
    MotionStart {
        /// The stored event.
        event: events::EventRow,
    },
    /// A motion event ended (final row).
    MotionEnd {
        /// The stored event.
        event: events::EventRow,
    },
}

/// Result of testing a camera before adding it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema, PartialEq)]
pub struct ProbeReport {
    /// `h264` or `h265`.
    pub codec: String,
    /// Picture size.
    pub width: u32,
    /// Picture size.
    pub height: u32,
    /// Whether the camera offers audio.
    pub audio: bool,
}

/// The NVR: owns the recorder and every camera's pipeline.
pub struct Nvr {
    data_dir: PathBuf,
    ctx: Arc<Ctx>,
    /// Retention of the configuration file; per-camera ages of `Ui` cameras are added.
    base_retention: RetentionConfig,
    /// Every camera by name, running or failed to start. Held only briefly (never across
    /// an await), so status queries never wait for a camera to start or stop.
    running: Mutex<BTreeMap<String, CameraRun>>,
    /// The `Ui` cameras as stored in cameras.json; its lock also serializes changes.
    stored: tokio::sync::Mutex<Vec<CameraSpec>>,
    retention_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// How long each camera's motion events are kept (read by the event retention task).
    event_ages: Arc<Mutex<BTreeMap<String, std::time::Duration>>>,
    event_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Capacity of the event broadcast: a subscriber this far behind skips events.
const BUS_CAPACITY: usize = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A spec as others may see it: without the password.
fn public(spec: &CameraSpec) -> CameraSpec {
    CameraSpec {
        password: None,
        ..spec.clone()
    }
}

impl Nvr {
    /// Opens the data directory, loads `cameras.json`, starts every camera.
    pub async fn start(config: NvrConfig) -> Result<Arc<Nvr>, NvrError> {
        let data_dir = config.data_dir.clone();
        let mut config_cams = Vec::new();
        for mut spec in config.cameras {
            spec.source = CameraSource::Config;
            store::validate(&mut spec)?;
            if config_cams.iter().any(|c: &CameraSpec| c.name == spec.name) {
                return Err(NvrError::Exists(spec.name));
            }
            config_cams.push(spec);
        }
        let stored = {
            let d = data_dir.clone();
            tokio::task::spawn_blocking(move || store::load(&d))
                .await
                .map_err(|e| NvrError::Invalid(format!("loading cameras: {e}")))??
        };
        let base_retention = config.recorder.retention.clone();
        let mut rc = config.recorder.clone();
        rc.retention = retention_for(&base_retention, config_cams.iter().chain(&stored));
        let recorder = {
            let d = data_dir.clone();
            tokio::task::spawn_blocking(move || Recorder::open(&d, rc))
                .await
                .map_err(|e| NvrError::Invalid(format!("opening the recorder: {e}")))??
        };
        let events = {
            let d = data_dir.clone();
            tokio::task::spawn_blocking(move || events::EventStore::open(&d))
                .await
                .map_err(|e| NvrError::Events(e.to_string()))??
        };
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let ctx = Arc::new(Ctx {
            recorder: Arc::new(recorder),
            bus,
            announce: config.announce,
            events: Arc::new(events),
        });
        // Before the first retention pass, which runs at once.
        ctx.recorder.set_event_retention(event_retention_for(
            &ctx.events,
            config_cams.iter().chain(&stored),
        ));
        let retention = ctx.recorder.spawn_retention();
        let event_ages = Arc::new(Mutex::new(event_ages_for(
            config_cams.iter().chain(&stored),
        )));
        let event_task = spawn_event_retention(
            ctx.events.clone(),
            event_ages.clone(),
            config.recorder.retention_interval,
        );
        let mut running = BTreeMap::new();
        for spec in config_cams.iter().chain(stored.iter()) {
            if running.contains_key(&spec.name) {
                tracing::warn!(camera = %spec.name,
                    "a camera of the configuration file has the name of one added in the web app; \
                     the web app's is not started (rename or remove it there)");
                continue;
            }
            let run = CameraRun::start(&ctx, spec.clone()).await;
            running.insert(spec.name.clone(), run);
        }
        tracing::info!(data_dir = %data_dir.display(), cameras = running.len(), "NVR started");
        Ok(Arc::new(Nvr {
            data_dir,
            ctx,
            base_retention,
            running: Mutex::new(running),
            stored: tokio::sync::Mutex::new(stored),
            retention_task: Mutex::new(Some(retention)),
            event_ages,
            event_task: Mutex::new(Some(event_task)),
        }))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The recorder (ranges, gaps, export, totals).
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.ctx.recorder
    }

    /// The motion event store.
    pub fn event_store(&self) -> &Arc<events::EventStore> {
        &self.ctx.events
    }

    /// Every camera (passwords removed: `password` is always `None`) with its status, by name.
    pub fn cameras(&self) -> Vec<(CameraSpec, CameraStatus)> {
        lock(&self.running)
            .values()
            .map(|r| (public(&r.spec), r.status()))
            .collect()
    }

    /// Every stream's counters, by camera then stream (cheap: no database, no rates; for
    /// monitoring). A camera whose pipeline could not start reports a failed `main`.
    pub fn stream_counters(&self) -> Vec<StreamCounters> {
        lock(&self.running)
            .values()
            .flat_map(|r| r.counters())
            .collect()
    }

    /// One camera (password removed) with its status.
    pub fn camera(&self, name: &str) -> Option<(CameraSpec, CameraStatus)> {
        lock(&self.running)
            .get(name)
            .map(|r| (public(&r.spec), r.status()))
    }

    /// Whether the camera has a password set (the API reports `has_password`).
    pub fn has_password(&self, name: &str) -> bool {
        lock(&self.running)
            .get(name)
            .is_some_and(|r| r.spec.password.is_some())
    }

    /// The hub of a running stream (`main` or `sub`), for live view and snapshots.
    pub fn hub(&self, camera: &str, stream: &str) -> Option<Hub> {
        lock(&self.running).get(camera).and_then(|r| r.hub(stream))
    }

    /// Adds a camera (source `Ui`), persists it in cameras.json and starts it.
    pub async fn add_camera(&self, mut spec: CameraSpec) -> Result<(), NvrError> {
        spec.source = CameraSource::Ui;
        store::validate(&mut spec)?;
        let mut stored = self.stored.lock().await;
        if lock(&self.running).contains_key(&spec.name)
            || stored.iter().any(|c| c.name == spec.name)
        {
            return Err(NvrError::Exists(spec.name));
        }
        let mut next = stored.clone();
        next.push(spec.clone());
        self.save(&next).await?;
        *stored = next;
        self.apply_retention(&stored);
        tracing::info!(camera = %spec.name, url = %spec.url, "camera added");
        let run = CameraRun::start(&self.ctx, spec.clone()).await;
        lock(&self.running).insert(spec.name, run);
        Ok(())
    }

    /// Replaces a `Ui` camera's spec (a `None` password keeps the stored one) and restarts it.
    pub async fn update_camera(&self, name: &str, mut spec: CameraSpec) -> Result<(), NvrError> {
        let mut stored = self.stored.lock().await;
        self.check_editable(name, &stored)?;
        if spec.name != name {
            return Err(NvrError::Invalid(format!(
                "renaming camera {name:?} to {:?} is not supported; add a new camera instead",
                spec.name
            )));
        }
        spec.source = CameraSource::Ui;
        let old = stored.iter().find(|c| c.name == name).cloned();
        store::validate(&mut spec)?;
        if let Some(old) = &old {
            keep_password(&mut spec, old)?;
        }
        let next: Vec<CameraSpec> = stored
            .iter()
            .map(|c| {
                if c.name == name {
                    spec.clone()
                } else {
                    c.clone()
                }
            })
            .collect();
        self.save(&next).await?;
        *stored = next;
        self.apply_retention(&stored);
        let old_run = lock(&self.running).remove(name);
        if let Some(r) = old_run {
            r.stop().await;
        }
        tracing::info!(camera = %name, url = %spec.url, "camera updated; restarting it");
        let run = CameraRun::start(&self.ctx, spec).await;
        lock(&self.running).insert(name.to_owned(), run);
        Ok(())
    }

    /// Stops and forgets a `Ui` camera; its recordings stay until retention removes them.
    pub async fn remove_camera(&self, name: &str) -> Result<(), NvrError> {
        let mut stored = self.stored.lock().await;
        self.check_editable(name, &stored)?;
        let next: Vec<CameraSpec> = stored.iter().filter(|c| c.name != name).cloned().collect();
        self.save(&next).await?;
        *stored = next;
        let old_run = lock(&self.running).remove(name);
        if let Some(r) = old_run {
            r.stop().await;
        }
        // Its recordings keep the storage-wide limits; the camera's own age limit goes.
        self.apply_retention(&stored);
        tracing::info!(camera = %name, "camera removed; its recordings stay until retention deletes them");
        Ok(())
    }

    /// Connects to a camera spec without adding it: codec, size, audio (10 s timeout).
    /// A spec without a password takes the stored camera's of the same name, so that an
    /// edited camera can be tested without typing the password again.
    pub async fn probe_camera(&self, spec: &CameraSpec) -> Result<ProbeReport, NvrError> {
        let mut spec = spec.clone();
        store::validate(&mut spec)?;
        let known = lock(&self.running).get(&spec.name).map(|r| r.spec.clone());
        if let Some(known) = &known {
            keep_password(&mut spec, known)?;
        }
        probe::probe(&spec).await
    }

    /// A JPEG of the camera's newest key frame (sub stream if any, else main).
    pub async fn snapshot_jpeg(&self, camera: &str) -> Result<Vec<u8>, NvrError> {
        let hub = {
            let running = lock(&self.running);
            let run = running
                .get(camera)
                .ok_or_else(|| NvrError::NoSuchCamera(camera.to_owned()))?;
            run.hub("sub").or_else(|| run.hub("main"))
        };
        let hub =
            hub.ok_or_else(|| NvrError::Unavailable(format!("camera {camera:?} is not running")))?;
        snapshot::jpeg(camera, &hub).await
    }

    /// Subscribes to camera and motion events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<NvrEvent> {
        self.ctx.bus.subscribe()
    }

    /// Stops every camera (ingest first, then the writers flush and close their files).
    pub async fn shutdown(&self) {
        // Holding the store's lock keeps a concurrent add from starting a camera now.
        let _stored = self.stored.lock().await;
        let runs: Vec<CameraRun> = std::mem::take(&mut *lock(&self.running))
            .into_values()
            .collect();
        let mut stops = tokio::task::JoinSet::new();
        for r in runs {
            stops.spawn(r.stop());
        }
        while stops.join_next().await.is_some() {}
        for task in [&self.retention_task, &self.event_task] {
            if let Some(t) = lock(task).take() {
                t.abort();
            }
        }
        tracing::info!("NVR stopped");
    }

    fn check_editable(&self, name: &str, stored: &[CameraSpec]) -> Result<(), NvrError> {
        // A configured camera wins over a stored one of the same name (which is not run).
        if lock(&self.running)
            .get(name)
            .is_some_and(|r| r.spec.source == CameraSource::Config)
        {
            return Err(NvrError::ReadOnly(name.to_owned()));
        }
        if stored.iter().any(|c| c.name == name) {
            Ok(())
        } else {
            Err(NvrError::NoSuchCamera(name.to_owned()))
        }
    }

    async fn save(&self, cameras: &[CameraSpec]) -> Result<(), NvrError> {
        let (dir, cams) = (self.data_dir.clone(), cameras.to_vec());
        tokio::task::spawn_blocking(move || store::save(&dir, &cams))
            .await
            .map_err(|e| NvrError::Invalid(format!("saving cameras: {e}")))?
    }

    /// Gives the recorder the age limits of the configuration file's and the stored cameras.
    fn apply_retention(&self, stored: &[CameraSpec]) {
        let config_cams: Vec<CameraSpec> = lock(&self.running)
            .values()
            .filter(|r| r.spec.source == CameraSource::Config)
            .map(|r| r.spec.clone())
            .collect();
        let r = retention_for(&self.base_retention, config_cams.iter().chain(stored));
        self.ctx.recorder.set_retention(r);
        self.ctx.recorder.set_event_retention(event_retention_for(
            &self.ctx.events,
            config_cams.iter().chain(stored),
        ));
        *lock(&self.event_ages) = event_ages_for(config_cams.iter().chain(stored));
    }
}

/// How long each camera's events are kept: `event_max_age_s`, else `max_age_s`; cameras
/// with neither keep them (the recordings they point at may be kept as long).
fn event_ages_for<'a>(
    cameras: impl Iterator<Item = &'a CameraSpec>,
) -> BTreeMap<String, std::time::Duration> {
    cameras
        .filter_map(|c| {
            c.event_max_age_s
                .or(c.max_age_s)
                .map(|s| (c.name.clone(), std::time::Duration::from_secs(s)))
        })
        .collect()
}

/// Footage kept before an event's start (at least): the web app plays an event from 5 s
/// before it.
const EVENT_PRE_ROLL_US: i64 = 5_000_000;

/// The recorder's event retention: each camera's `event_max_age_s`, and the spans of its
/// motion events read from the event store when a retention pass asks, widened by what is
/// played or recorded around an event (5 s before, the web app's pre-roll, or a
/// motion-only camera's pre-roll if longer; its post-roll after). The recorder then keeps
/// a file past the camera's `max_age_s` while it overlaps an event younger than
/// `event_max_age_s`; size limits ignore this (docs/recording.md, "Retention").
fn event_retention_for<'a>(
    events: &Arc<events::EventStore>,
    cameras: impl Iterator<Item = &'a CameraSpec>,
) -> EventRetention {
    let mut max_age = BTreeMap::new();
    let mut pads = BTreeMap::new();
    for c in cameras {
        let Some(age) = c.event_max_age_s else {
            continue;
        };
        max_age.insert(c.name.clone(), std::time::Duration::from_secs(age));
        let (pre, post) = match c.record {
            RecordMode::Motion {
                pre_roll_s,
                post_roll_s,
            } => (
                i64::from(pre_roll_s) * 1_000_000,
                i64::from(post_roll_s) * 1_000_000,
            ),
            RecordMode::Continuous => (0, 0),
        };
        pads.insert(c.name.clone(), (pre.max(EVENT_PRE_ROLL_US), post));
    }
    let store = events.clone();
    let spans = move |camera: &str, from: i64, to: i64| -> Vec<(i64, i64)> {
        let (pre, post) = pads.get(camera).copied().unwrap_or((EVENT_PRE_ROLL_US, 0));
        // A widened span [start - pre, end + post] overlaps [from, to] when the event
        // overlaps [from - post, to + pre].
        match event_spans(
            &store,
            camera,
            from.saturating_sub(post),
            to.saturating_add(pre),
        ) {
            Ok(spans) => spans
                .into_iter()
                .map(|(s, e)| (s.saturating_sub(pre), e.saturating_add(post)))
                .collect(),
            Err(e) => {
                // Keeping footage longer beats deleting an event's; size limits still hold.
                tracing::warn!(
                    camera,
                    "retention: cannot read motion events ({e}); \
                               keeping this camera's older footage for now"
                );
                vec![(i64::MIN, i64::MAX)]
            }
        }
    };
    EventRetention {
        max_age,
        spans: Arc::new(spans),
    }
}

/// `(start_us, end_us)` of a camera's events overlapping `[from, to]` (an open event
/// ends at `i64::MAX`), all of them: the store answers in pages, newest first.
fn event_spans(
    store: &events::EventStore,
    camera: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, i64)>, NvrError> {
    const PAGE: u32 = 10_000;
    let mut spans = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut end = to.saturating_add(1);
    loop {
        let page = store.list(&events::EventFilter {
            cameras: Some(vec![camera.to_owned()]),
            start_us: Some(from),
            end_us: Some(end),
            limit: Some(PAGE),
            ..Default::default()
        })?;
        let full = page.len() >= PAGE as usize;
        let mut added = false;
        for ev in page {
            end = end.min(ev.start_us.saturating_add(1));
            if seen.insert(ev.id) {
                added = true;
                spans.push((ev.start_us, ev.end_us.unwrap_or(i64::MAX)));
            }
        }
        // The next page ends at the oldest start seen (inclusive: the ids dedupe).
        if !full || !added {
            return Ok(spans);
        }
    }
}

/// Deletes finished motion events older than their camera's limit, on the recorder's
/// retention interval, on the blocking pool (SQLite).
fn spawn_event_retention(
    store: Arc<events::EventStore>,
    ages: Arc<Mutex<BTreeMap<String, std::time::Duration>>>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
        loop {
            tick.tick().await;
            let ages = lock(&ages).clone();
            let store = store.clone();
            let r = tokio::task::spawn_blocking(move || {
                let now_us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
                let mut n = 0;
                for (camera, age) in ages {
                    let age_us = i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
                    n += store.delete_before(&camera, now_us.saturating_sub(age_us))?;
                }
                Ok::<usize, NvrError>(n)
            })
            .await;
            match r {
                Ok(Ok(n)) if n > 0 => tracing::info!("retention: deleted {n} motion events"),
                Ok(Err(e)) => tracing::warn!("event retention: {e}"),
                _ => {}
            }
        }
    })
}

/// A validated spec sent without a password keeps `old`'s, so that an edit does not need
/// the password typed again — but only towards the same camera (host and port) as the
/// user name: a stored password is never sent to an address it was not given for.
fn keep_password(spec: &mut CameraSpec, old: &CameraSpec) -> Result<(), NvrError> {
    if spec.password.is_some() || old.password.is_none() || spec.username.is_none() {
        return Ok(());
    }
    let endpoint = |u: &str| {
        url::Url::parse(u)
            .ok()
            .map(|u| (u.host_str().map(str::to_owned), u.port_or_known_default()))
    };
    if endpoint(&spec.url) != endpoint(&old.url) || spec.username != old.username {
        return Err(NvrError::Invalid(format!(
            "camera {:?}: the address or user changed; enter the camera's password again",
            spec.name
        )));
    }
    spec.password = old.password.clone();
    Ok(())
}

/// Reads `<data_dir>/cameras.json` without starting anything (none if it does not exist).
/// For tools that prepare the store before [`Nvr::start`], such as `vigil demo`.
pub fn load_stored_cameras(data_dir: &Path) -> Result<Vec<CameraSpec>, NvrError> {
    store::load(data_dir)
}

/// Replaces `<data_dir>/cameras.json` (each spec validated, source set to `Ui`). Only
/// while no [`Nvr`] runs on that directory: a running one would overwrite it.
pub fn save_stored_cameras(data_dir: &Path, cameras: &[CameraSpec]) -> Result<(), NvrError> {
    let mut checked = Vec::with_capacity(cameras.len());
    for c in cameras {
        let mut c = c.clone();
        c.source = CameraSource::Ui;
        store::validate(&mut c)?;
        if checked.iter().any(|o: &CameraSpec| o.name == c.name) {
            return Err(NvrError::Exists(c.name));
        }
        checked.push(c);
    }
    store::save(data_dir, &checked)
}

/// The recorder's retention: the configuration file's limits plus each camera's maximum
/// age (a camera's own setting wins over the file's).
fn retention_for<'a>(
    base: &RetentionConfig,
    cameras: impl Iterator<Item = &'a CameraSpec>,
) -> RetentionConfig {
    let mut r = base.clone();
    for c in cameras {
        if let Some(s) = c.max_age_s {
            r.max_age
                .insert(c.name.clone(), std::time::Duration::from_secs(s));
        }
    }
    r
}

#[cfg(test)]
mod fleet_tests;
