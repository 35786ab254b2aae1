//! The NVR core of `vigil serve` and `vigil demo`: the running set of cameras (ingest →
//! hub → recorder, sub stream → motion detector), their live status, the camera store
//! (`<data>/cameras.json`) and the motion event store (`<data>/events.sqlite3`).
//!
//! The web app (`vigil-web`) and the alerts (`vigil-alerts`) see the system only through
//! [`Nvr`]: they never touch an ingest or a writer directly.

pub mod events;
mod spec;

pub use spec::{CameraSource, CameraSpec, MotionSettings, RecordMode, Secret, ZoneKind, ZoneSpec};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use vigil_hub::Hub;
use vigil_recorder::{Recorder, RecorderConfig};

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

/// State of one stream's ingest, for the UI.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StreamStatus {
    /// `main` or `sub`.
    pub stream: String,
    /// `connecting`, `streaming`, `offline` or `failed`.
    pub state: String,
    /// Why it is offline or failed.
    pub reason: Option<String>,
    /// `h264` or `h265` once known.
    pub codec: Option<String>,
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

/// Live state of one camera.
#[derive(Clone, Debug, Serialize, PartialEq)]
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
#[derive(Clone, Debug, Serialize, PartialEq)]
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
    _private: (),
}

impl Nvr {
    /// Opens the data directory, loads `cameras.json`, starts every camera.
    pub async fn start(_config: NvrConfig) -> Result<Arc<Nvr>, NvrError> {
        unimplemented!("skeleton: vigil-nvr owner implements")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        unimplemented!()
    }

    /// The recorder (ranges, gaps, export, totals).
    pub fn recorder(&self) -> &Arc<Recorder> {
        unimplemented!()
    }

    /// The motion event store.
    pub fn event_store(&self) -> &Arc<events::EventStore> {
        unimplemented!()
    }

    /// Every camera (passwords removed: `password` is always `None`) with its status, by name.
    pub fn cameras(&self) -> Vec<(CameraSpec, CameraStatus)> {
        unimplemented!()
    }

    /// One camera (password removed) with its status.
    pub fn camera(&self, _name: &str) -> Option<(CameraSpec, CameraStatus)> {
        unimplemented!()
    }

    /// The hub of a running stream (`main` or `sub`), for live view and snapshots.
    pub fn hub(&self, _camera: &str, _stream: &str) -> Option<Hub> {
        unimplemented!()
    }

    /// Adds a camera (source `Ui`), persists it in cameras.json and starts it.
    pub async fn add_camera(&self, _spec: CameraSpec) -> Result<(), NvrError> {
        unimplemented!()
    }

    /// Replaces a `Ui` camera's spec (a `None` password keeps the stored one) and restarts it.
    pub async fn update_camera(&self, _name: &str, _spec: CameraSpec) -> Result<(), NvrError> {
        unimplemented!()
    }

    /// Stops and forgets a `Ui` camera; its recordings stay until retention removes them.
    pub async fn remove_camera(&self, _name: &str) -> Result<(), NvrError> {
        unimplemented!()
    }

    /// Connects to a camera spec without adding it: codec, size, audio (10 s timeout).
    pub async fn probe_camera(&self, _spec: &CameraSpec) -> Result<ProbeReport, NvrError> {
        unimplemented!()
    }

    /// A JPEG of the camera's newest key frame (sub stream if any, else main).
    pub async fn snapshot_jpeg(&self, _camera: &str) -> Result<Vec<u8>, NvrError> {
        unimplemented!()
    }

    /// Subscribes to camera and motion events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<NvrEvent> {
        unimplemented!()
    }

    /// Stops every camera (ingest first, then the writers flush and close their files).
    pub async fn shutdown(&self) {
        unimplemented!()
    }
}
