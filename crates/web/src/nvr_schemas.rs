//! JSON Schemas of the `vigil-nvr` types that the API sends and receives as they are
//! ([`CameraSpec`], [`CameraStatus`], [`ProbeReport`], [`EventRow`]).
//!
//! Those types live in a crate without a schemars dependency, so each has a schema-only
//! mirror here, with the same fields and the same serde attributes. The handlers still
//! serialize the NVR's own types; the mirrors only describe them. A mirror that drifts is
//! caught twice: at compile time, by the tests' exhaustive patterns over the NVR's types (a
//! field added or removed there stops them compiling), and by `tests/openapi.rs`, which
//! validates real answers against the served document: answer schemas are closed
//! (`additionalProperties: false`, every always-written field required), so a field that
//! changed name or type fails there, naming the field.
//!
//! [`CameraSpec`]: vigil_nvr::CameraSpec
//! [`CameraStatus`]: vigil_nvr::CameraStatus
//! [`ProbeReport`]: vigil_nvr::ProbeReport
//! [`EventRow`]: vigil_nvr::events::EventRow

// The mirrors exist for their derived schemas, not to hold values.
#![allow(dead_code)]

use schemars::JsonSchema;

// Mirrors `vigil_nvr::CameraSource`.
/// Where a camera is defined: `config` (the configuration file, read-only here) or `ui`.
#[derive(JsonSchema)]
#[schemars(rename = "CameraSource")]
#[serde(rename_all = "lowercase")]
pub enum CameraSourceSchema {
    /// In the configuration file: read-only in the web app.
    Config,
    /// Added in the web app (or by `vigil demo`): stored in `<data>/cameras.json`.
    Ui,
}

// Mirrors `vigil_nvr::RecordMode`.
/// How a camera is recorded.
#[derive(JsonSchema)]
#[schemars(rename = "RecordMode")]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum RecordModeSchema {
    /// Everything, all the time.
    Continuous,
    /// Only around motion events.
    Motion {
        /// Seconds kept before an event starts.
        pre_roll_s: u32,
        /// Seconds kept after an event ends.
        post_roll_s: u32,
    },
}

// Mirrors `vigil_nvr::ZoneKind`.
/// Whether a polygon is a detection zone or a mask (ignored area).
#[derive(JsonSchema)]
#[schemars(rename = "ZoneKind")]
#[serde(rename_all = "lowercase")]
pub enum ZoneKindSchema {
    /// Motion inside is detected and reported under the zone's name.
    Zone,
    /// Motion inside is ignored.
    Mask,
}

// Mirrors `vigil_nvr::ZoneSpec`.
/// A zone or mask: a polygon in normalized coordinates.
#[derive(JsonSchema)]
#[schemars(rename = "ZoneSpec")]
#[serde(deny_unknown_fields)]
pub struct ZoneSpecSchema {
    /// Name (1-64 of `A-Z a-z 0-9 _ -`).
    pub name: String,
    /// Zone or mask (default zone).
    #[serde(default)]
    #[schemars(with = "ZoneKindSchema")]
    pub kind: vigil_nvr::ZoneKind,
    /// At least 3 points `[x, y]`, normalized (0..1, origin top left).
    pub points: Vec<[f32; 2]>,
    /// Per-zone sensitivity override (1-100).
    #[serde(default)]
    pub sensitivity: Option<u8>,
    /// Per-zone minimum area override (percent of the zone).
    #[serde(default)]
    pub min_area_pct: Option<f32>,
}

// Mirrors `vigil_nvr::MotionSettings`; every field has a default.
/// Motion detection settings of a camera; every field has a default.
#[derive(JsonSchema)]
#[schemars(rename = "MotionSettings")]
#[serde(deny_unknown_fields, default)]
pub struct MotionSettingsSchema {
    /// Detect motion on this camera.
    pub enabled: bool,
    /// Frames analysed per second.
    pub fps: f32,
    /// 1 (only big changes) to 100 (everything).
    pub sensitivity: u8,
    /// Minimum changed area, percent of the picture (or zone).
    pub min_area_pct: f32,
    /// Motion must last this long (seconds) before an event starts.
    pub min_duration_s: f32,
    /// Quiet time (seconds) before an event ends.
    pub cooldown_s: f32,
    /// Zones and masks; no zone means the whole picture.
    pub zones: Vec<ZoneSpecSchema>,
}

/// The schema's defaults are the NVR's own.
impl Default for MotionSettingsSchema {
    fn default() -> Self {
        let d = vigil_nvr::MotionSettings::default();
        Self {
            enabled: d.enabled,
            fps: d.fps,
            sensitivity: d.sensitivity,
            min_area_pct: d.min_area_pct,
            min_duration_s: d.min_duration_s,
            cooldown_s: d.cooldown_s,
            zones: Vec::new(),
        }
    }
}

// Mirrors `vigil_nvr::CameraSpec` as the API reads it: the password is write-only (never
// in an answer, so it is not in the answer's schema).
/// A camera.
#[derive(JsonSchema)]
#[schemars(rename = "CameraSpec")]
#[serde(deny_unknown_fields)]
pub struct CameraSpecSchema {
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
    /// Camera password: write-only; on `PUT`, absent keeps the stored one.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// `tcp` or `udp`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Record audio when the camera has it.
    #[serde(default = "default_true")]
    pub audio: bool,
    /// Delete this camera's recordings older than this many seconds.
    #[serde(default)]
    pub max_age_s: Option<u64>,
    /// Keep this camera's motion events (and the recordings overlapping them) this many
    /// seconds (default: as `max_age_s`).
    #[serde(default)]
    pub event_max_age_s: Option<u64>,
    /// Continuous (default) or motion-only.
    #[serde(default)]
    #[schemars(with = "RecordModeSchema")]
    pub record: vigil_nvr::RecordMode,
    /// Motion detection.
    #[serde(default)]
    #[schemars(with = "MotionSettingsSchema")]
    pub motion: vigil_nvr::MotionSettings,
    /// Where it is defined; the API always stores `ui`.
    #[serde(default)]
    #[schemars(with = "CameraSourceSchema")]
    pub source: vigil_nvr::CameraSource,
}

// The NVR's defaults, which its private default functions give (checked in the tests below).
fn default_transport() -> String {
    "tcp".to_owned()
}

fn default_true() -> bool {
    true
}

// Mirrors `vigil_nvr::StreamState`.
/// What a stream is doing.
#[derive(JsonSchema)]
#[schemars(rename = "StreamState")]
#[serde(rename_all = "lowercase")]
pub enum StreamStateSchema {
    /// Connecting to the camera.
    Connecting,
    /// Frames are flowing.
    Streaming,
    /// Lost or stopped; retried after a back-off (`reason` says why).
    Offline,
    /// Given up, or the camera could not start (`reason` says why).
    Failed,
}

// Mirrors `vigil_nvr::StreamStatus`.
/// State of one stream of a camera.
#[derive(JsonSchema)]
#[schemars(rename = "StreamStatus", deny_unknown_fields)]
pub struct StreamStatusSchema {
    /// `main` or `sub`.
    pub stream: String,
    /// What the stream is doing.
    pub state: StreamStateSchema,
    /// Why it is offline or failed.
    pub reason: Option<String>,
    /// `h264` or `h265` once known.
    pub codec: Option<String>,
    /// Picture width once known.
    pub width: Option<u32>,
    /// Picture height once known.
    pub height: Option<u32>,
    /// Measured frames per second over the last seconds.
    pub fps: f64,
    /// Measured bits per second over the last seconds.
    pub bitrate_bps: u64,
    /// Wall-clock time (µs since the epoch) of the newest frame.
    pub last_frame_us: Option<i64>,
}

// Mirrors `vigil_nvr::CameraStatus`.
/// Live state of a camera.
#[derive(JsonSchema)]
#[schemars(rename = "CameraStatus", deny_unknown_fields)]
pub struct CameraStatusSchema {
    /// The camera.
    pub name: String,
    /// One entry per configured stream.
    pub streams: Vec<StreamStatusSchema>,
    /// Whether a motion event is active now.
    pub motion_active: bool,
}

// Mirrors `vigil_nvr::ProbeReport`.
/// What a tested camera offers.
#[derive(JsonSchema)]
#[schemars(rename = "ProbeReport", deny_unknown_fields)]
pub struct ProbeReportSchema {
    /// `h264` or `h265`.
    pub codec: String,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Whether the camera offers audio.
    pub audio: bool,
}

// Mirrors `vigil_nvr::events::NormBox`.
/// A box in normalized coordinates (0..1, origin top left).
#[derive(JsonSchema)]
#[schemars(rename = "NormBox", deny_unknown_fields)]
pub struct NormBoxSchema {
    /// Left (0..1).
    pub x: f32,
    /// Top (0..1).
    pub y: f32,
    /// Width (0..1).
    pub w: f32,
    /// Height (0..1).
    pub h: f32,
}

// Mirrors `vigil_nvr::events::EventRow`.
/// A motion event.
#[derive(JsonSchema)]
#[schemars(rename = "EventRow", deny_unknown_fields)]
pub struct EventRowSchema {
    /// Row id.
    pub id: i64,
    /// Camera.
    pub camera: String,
    /// Zones the motion touched (empty: whole picture, no zones configured).
    pub zones: Vec<String>,
    /// Start, µs since the epoch.
    pub start_us: i64,
    /// End, µs since the epoch; `null` while active.
    pub end_us: Option<i64>,
    /// Peak score (0..1, changed fraction of the watched area).
    pub peak_score: f32,
    /// Box around the moving region at the peak.
    pub bbox: Option<NormBoxSchema>,
    /// Whether a JPEG thumbnail is stored.
    pub has_thumbnail: bool,
}

#[cfg(test)]
mod tests {
    use vigil_nvr::events::{EventRow, NormBox};
    use vigil_nvr::{
        CameraSource, CameraSpec, CameraStatus, MotionSettings, ProbeReport, RecordMode,
        StreamState, StreamStatus, ZoneKind, ZoneSpec,
    };

    /// Names every field of the NVR's types without `..`: a field added to or removed from
    /// one of them stops this from compiling until its mirror above (and so the OpenAPI
    /// document) says the same.
    #[allow(unused_variables, clippy::too_many_arguments)]
    fn same_fields(
        c: CameraSpec,
        z: ZoneSpec,
        m: MotionSettings,
        st: StreamStatus,
        cs: CameraStatus,
        p: ProbeReport,
        e: EventRow,
        b: NormBox,
    ) {
        let CameraSpec {
            name,
            url,
            sub_url,
            username,
            password,
            transport,
            audio,
            max_age_s,
            event_max_age_s,
            record,
            motion,
            source,
        } = c;
        let ZoneSpec {
            name,
            kind,
            points,
            sensitivity,
            min_area_pct,
        } = z;
        let MotionSettings {
            enabled,
            fps,
            sensitivity,
            min_area_pct,
            min_duration_s,
            cooldown_s,
            zones,
        } = m;
        let StreamStatus {
            stream,
            state,
            reason,
            codec,
            width,
            height,
            fps,
            bitrate_bps,
            last_frame_us,
        } = st;
        let CameraStatus {
            name,
            streams,
            motion_active,
        } = cs;
        let ProbeReport {
            codec,
            width,
            height,
            audio,
        } = p;
        let EventRow {
            id,
            camera,
            zones,
            start_us,
            end_us,
            peak_score,
            bbox,
            has_thumbnail,
        } = e;
        let NormBox { x, y, w, h } = b;
    }

    /// Names every variant of the NVR's enums without a wildcard, for the same reason.
    fn same_variants(s: StreamState, r: RecordMode, k: ZoneKind, c: CameraSource) {
        match s {
            StreamState::Connecting
            | StreamState::Streaming
            | StreamState::Offline
            | StreamState::Failed => {}
        }
        match r {
            RecordMode::Continuous
            | RecordMode::Motion {
                pre_roll_s: _,
                post_roll_s: _,
            } => {}
        }
        match k {
            ZoneKind::Zone | ZoneKind::Mask => {}
        }
        match c {
            CameraSource::Config | CameraSource::Ui => {}
        }
    }

    #[test]
    fn mirrored_defaults_are_the_nvr_defaults() {
        let _ = (same_fields, same_variants);
        let spec: CameraSpec =
            serde_json::from_value(serde_json::json!({"name": "a", "url": "rtsp://x"}))
                .expect("minimal spec");
        assert_eq!(spec.transport, super::default_transport());
        assert_eq!(spec.audio, super::default_true());
    }
}
