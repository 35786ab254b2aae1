//! What a camera is: its URLs, credentials, recording mode and motion settings. The same
//! type is read from the configuration file, stored in `cameras.json` and sent by the web
//! app (whose API never returns the password).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use vigil_auth::secret::Secret;
pub use vigil_ingest::Transport;

/// Where a camera is defined.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CameraSource {
    /// In the configuration file: read-only in the web app.
    Config,
    /// Added in the web app (or by `vigil demo`): stored in `<data>/cameras.json`.
    #[default]
    Ui,
}

/// How a camera is recorded.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum RecordMode {
    /// Everything, all the time.
    #[default]
    Continuous,
    /// Only around motion events: `pre_roll_s` before the start (from the hub's buffer) to
    /// `post_roll_s` after the end.
    Motion {
        /// Seconds kept before an event starts.
        pre_roll_s: u32,
        /// Seconds kept after an event ends.
        post_roll_s: u32,
    },
}

/// Whether a polygon is a detection zone or a mask (ignored area).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ZoneKind {
    /// Motion inside is detected and reported under the zone's name.
    #[default]
    Zone,
    /// Motion inside is ignored.
    Mask,
}

/// A zone or mask: a polygon in normalized coordinates (0..1, origin top left).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// Name (1-64 of `A-Z a-z 0-9 _ -`).
    pub name: String,
    /// Zone or mask.
    #[serde(default)]
    pub kind: ZoneKind,
    /// At least 3 points `[x, y]`.
    pub points: Vec<[f32; 2]>,
    /// Per-zone sensitivity override (1-100).
    #[serde(default)]
    pub sensitivity: Option<u8>,
    /// Per-zone minimum area override (percent of the zone).
    #[serde(default)]
    pub min_area_pct: Option<f32>,
}

/// Motion detection settings of one camera.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MotionSettings {
    /// Detect motion on this camera (default true).
    pub enabled: bool,
    /// Frames analysed per second (default 5).
    pub fps: f32,
    /// 1 (only big changes) to 100 (everything); default 50.
    pub sensitivity: u8,
    /// Minimum changed area, percent of the picture (or zone), default 0.5.
    pub min_area_pct: f32,
    /// Motion must last this long before an event starts (default 0.4 s).
    pub min_duration_s: f32,
    /// Quiet time before an event ends (default 2 s).
    pub cooldown_s: f32,
    /// Zones and masks; no zone means the whole picture.
    pub zones: Vec<ZoneSpec>,
}

impl Default for MotionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            fps: 5.0,
            sensitivity: 50,
            min_area_pct: 0.5,
            min_duration_s: 0.4,
            cooldown_s: 2.0,
            zones: Vec::new(),
        }
    }
}

/// One camera.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraSpec {
    /// 1-64 of `A-Z a-z 0-9 _ -` (names the recording directory).
    pub name: String,
    /// RTSP URL of the main stream, without credentials.
    pub url: String,
    /// RTSP URL of the sub stream (motion detection runs on it when set).
    #[serde(default)]
    pub sub_url: Option<String>,
    /// Camera user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Camera password: write-only in the web API (never in an answer; on `PUT`, absent
    /// keeps the stored one); written in clear only to cameras.json.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "vigil_auth::secret::serialize_exposed"
    )]
    // Not in the schema of what is written: the web API never answers it (cameras.json does
    // hold it, but has no schema).
    #[schemars(skip_serializing)]
    pub password: Option<Secret>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub transport: Transport,
    /// Record audio when the camera has it (default true).
    #[serde(default = "default_true")]
    pub audio: bool,
    /// Delete this camera's recordings older than this many seconds.
    #[serde(default)]
    pub max_age_s: Option<u64>,
    /// Keep this camera's motion events this many seconds (default: as `max_age_s`), and
    /// the recordings that overlap them (with 5 s before, or the motion pre-roll): when
    /// longer than `max_age_s`, event footage outlives continuous footage. The storage's
    /// size limits still delete the oldest first, event or not.
    #[serde(default)]
    pub event_max_age_s: Option<u64>,
    /// Continuous or motion-only.
    #[serde(default)]
    pub record: RecordMode,
    /// Motion detection.
    #[serde(default)]
    pub motion: MotionSettings,
    /// Where it is defined (the web API always stores `ui`).
    #[serde(default)]
    pub source: CameraSource,
}

fn default_true() -> bool {
    true
}
