//! The recorder's configuration file (`vigil serve --config vigil.toml`), documented for
//! users in `docs/config.md` and `vigil.example.toml`.
//!
//! Parsing is strict: unknown keys are errors (a typo such as `max_byte` must not silently
//! disable retention), camera and stream names are checked before they become directory
//! names, and camera passwords are held in [`Secret`], whose `Debug` never shows them.
//!
//! The cameras become [`vigil_nvr::CameraSpec`]s (source `Config`: read-only in the web
//! app); `[web]` says where the web app listens (or `off`); `[metrics]` where the Prometheus
//! and health check listener does (default loopback, or `off`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vigil_ingest::{CameraStream, CameraUrlError, IngestConfig, Transport};
use vigil_nvr::{CameraSource, CameraSpec, MotionSettings, RecordMode};
use vigil_recorder::retention::RetentionConfig;
use vigil_recorder::RecorderConfig;

/// Errors of loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key, wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml/serde reported (with line and column).
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

pub use vigil_auth::secret::{redact_url, Secret};

mod webrtc;
pub use webrtc::{WebrtcSection, WebrtcSettings};

/// A byte count: an integer, or a string with a unit (`"500MB"`, `"10 GiB"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => parse_bytes(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written as `"30d"`, `"12h"`, `"1h30m"`, `"90s"`, `"500ms"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// `[retention]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    /// Total size of all recordings; the oldest files are deleted above it.
    pub max_bytes: Option<ByteSize>,
    /// Free space to keep on the recordings' filesystem.
    pub min_free_bytes: Option<ByteSize>,
    /// How often retention runs (default 1 minute).
    pub interval: Option<HumanDuration>,
}

/// One `[[camera]]`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraSection {
    /// Camera name: 1-64 of `A-Z a-z 0-9 _ -` (it names a directory).
    pub name: String,
    /// RTSP URL of the main stream.
    pub url: String,
    /// RTSP URL of the sub stream, recorded as stream `sub` when set.
    pub sub_url: Option<String>,
    /// Camera user name.
    pub username: Option<String>,
    /// Camera password.
    pub password: Option<Secret>,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub transport: Transport,
    /// Recordings older than this are deleted.
    pub max_age: Option<HumanDuration>,
    /// Recordings overlapping a motion event (and the events) are kept this long instead
    /// (longer than `max_age`; size limits still apply).
    pub event_max_age: Option<HumanDuration>,
    /// Record the camera's audio (AAC, G.711) beside the video (default true).
    #[serde(default = "default_true")]
    pub audio: bool,
    /// `[camera.motion]`: motion detection settings (default: on, whole picture).
    #[serde(default)]
    pub motion: MotionSettings,
    /// `[camera.record]`: `mode = "continuous"` (default) or `"motion"` with
    /// `pre_roll_s` and `post_roll_s`.
    #[serde(default)]
    pub record: RecordMode,
}

fn default_true() -> bool {
    true
}

impl fmt::Debug for CameraSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CameraSection")
            .field("name", &self.name)
            .field("url", &redact_url(&self.url))
            .field("sub_url", &self.sub_url.as_deref().map(redact_url))
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password)
            .field("transport", &self.transport)
            .field("max_age", &self.max_age)
            .field("event_max_age", &self.event_max_age)
            .field("audio", &self.audio)
            .field("motion", &self.motion)
            .field("record", &self.record)
            .finish()
    }
}

/// `[web]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    /// `"ADDR:PORT"` (default `"0.0.0.0:8443"`) or `"off"`.
    pub listen: Option<String>,
    /// Your own certificate chain (PEM) instead of the self-signed one.
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of `cert`.
    pub key: Option<PathBuf>,
    /// The `https://HOST[:PORT]` address browsers use to reach the web app; passkeys belong
    /// to it. Default: `https://localhost:PORT` (passkeys then work on this machine only).
    pub public_url: Option<String>,
}

/// Where the web app listens, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSettings {
    /// `None`: the web app is off.
    pub listen: Option<SocketAddr>,
    /// Certificate chain (PEM), relative paths resolved against the file's directory.
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
    /// The public URL (an https origin with a host name), checked.
    pub public_url: Option<String>,
}

/// The web app's default address: all interfaces, the usual alternative HTTPS port.
pub const DEFAULT_WEB_LISTEN: &str = "0.0.0.0:8443";

/// `[metrics]`: the Prometheus and health check listener (docs/metrics.md).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `"ADDR:PORT"` (default `"127.0.0.1:9464"`) or `"off"`.
    pub listen: Option<String>,
}

/// Where the metrics listener listens, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `None`: no metrics listener.
    pub listen: Option<SocketAddr>,
    /// Whether the file names the address (a failure to bind it is then fatal; the
    /// default's only warns, so that a second recorder on the host still records).
    pub explicit: bool,
}

/// The metrics listener's default address: loopback only (plain HTTP, and the metrics
/// name the cameras), the port Prometheus exporters commonly use beside 9100.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// The file as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where recordings and the index live (relative paths are relative to the file).
    pub data_dir: PathBuf,
    /// Media time per segment file (default 5 minutes).
    pub file_duration: Option<HumanDuration>,
    /// Retention limits.
    #[serde(default)]
    pub retention: RetentionSection,
    /// The cameras.
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraSection>,
    /// The web app.
    #[serde(default)]
    pub web: WebSection,
    /// Prometheus metrics and health checks.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// MQTT alerts (Home Assistant discovery), see docs/alerts.md.
    #[serde(default)]
    pub mqtt: Option<vigil_alerts::MqttConfig>,
    /// Webhook alerts, see docs/alerts.md.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<vigil_alerts::WebhookConfig>,
    /// The encrypted cloud tier, see docs/cloud.md.
    #[serde(default)]
    pub cloud: Option<CloudSection>,
    /// WebRTC live view, see docs/webrtc.md.
    #[serde(default)]
    pub webrtc: WebrtcSection,
}

/// `[cloud]`: the encrypted offsite copy (docs/cloud.md).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CloudSection {
    /// S3 endpoint URL; absent: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Bucket.
    pub bucket: String,
    /// Key prefix in the bucket.
    #[serde(default)]
    pub prefix: String,
    /// Path-style requests (SeaweedFS, MinIO, Garage); default virtual-hosted style.
    #[serde(default)]
    pub path_style: bool,
    /// Access key id (else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret access key (else `secret_access_key_file`, else `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<Secret>,
    /// A file holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// A PEM file of extra certificate authorities for the endpoint.
    pub ca_file: Option<PathBuf>,
    /// An identity kept on the recorder so the web timeline plays cloud-only footage
    /// (off by default; weaker: docs/cloud.md).
    pub identity_file: Option<PathBuf>,
    /// age recipients (`age1…`).
    pub recipients: Vec<String>,
    /// Cameras that go up (default: all).
    pub cameras: Option<Vec<String>>,
    /// Streams that go up (default `["main"]`).
    pub streams: Option<Vec<String>>,
    /// Footage goes up once it is this old (default 30s, at least 5s).
    pub upload_delay: Option<HumanDuration>,
    /// Average upload rate limit per second (`"2MB"`).
    pub max_upload_rate: Option<ByteSize>,
    /// Objects older than this are deleted from the bucket.
    pub retention: Option<HumanDuration>,
}

/// `[cloud]` as the cloud tier takes it: relative paths resolved against the file's
/// directory, credentials from the file, a key file or the environment.
fn cloud_config(
    c: &CloudSection,
    path: &Path,
    cameras: &[CameraSection],
) -> Result<vigil_cloud::CloudConfig, String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let access = c
        .access_key_id
        .clone()
        .or_else(|| env("AWS_ACCESS_KEY_ID"))
        .unwrap_or_default();
    let secret = match (&c.secret_access_key, &c.secret_access_key_file) {
        (Some(_), Some(_)) => {
            return Err("cloud: set secret_access_key or secret_access_key_file, not both".into())
        }
        (Some(s), None) => s.clone(),
        (None, Some(f)) => {
            let f = dir.join(f);
            let text = std::fs::read_to_string(&f)
                .map_err(|e| format!("cloud: reading {}: {e}", f.display()))?;
            Secret::new(text.trim())
        }
        (None, None) => Secret::new(env("AWS_SECRET_ACCESS_KEY").unwrap_or_default()),
    };
    let mut cfg =
        vigil_cloud::CloudConfig::new(c.bucket.clone(), access, secret, c.recipients.clone());
    cfg.endpoint = c.endpoint.clone();
    if let Some(r) = &c.region {
        cfg.region = r.clone();
    }
    cfg.prefix = c.prefix.clone();
    cfg.ca_file = c.ca_file.as_ref().map(|f| dir.join(f));
    cfg.path_style = c.path_style;
    if let Some(list) = &c.cameras {
        for name in list {
            if !cameras.iter().any(|cam| &cam.name == name) {
                return Err(format!("cloud.cameras: no camera named {name:?}"));
            }
        }
        cfg.select.cameras = Some(list.clone());
    }
    if let Some(s) = &c.streams {
        if s.iter().any(|s| s != "main" && s != "sub") {
            return Err("cloud.streams: use \"main\" and/or \"sub\"".into());
        }
        cfg.select.streams = s.clone();
    }
    if let Some(d) = c.upload_delay {
        cfg.upload_delay = d.0;
    }
    cfg.max_upload_rate = c.max_upload_rate.map(|b| b.0);
    cfg.retention = c.retention.map(|d| d.0);
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// One camera stream to record, ready for the ingest.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    /// Camera name.
    pub camera: String,
    /// `main` or `sub`.
    pub stream: String,
    /// What the ingest needs (URL without credentials, credentials, transport).
    pub ingest: IngestConfig,
}

/// A checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Absolute or relative-to-cwd data directory.
    pub data_dir: PathBuf,
    /// Recorder settings (file duration, retention).
    pub recorder: RecorderConfig,
    /// Every stream to record, in file order.
    pub streams: Vec<StreamSpec>,
    /// The cameras for the NVR (source `Config`), in file order.
    pub cameras: Vec<CameraSpec>,
    /// The web app.
    pub web: WebSettings,
    /// The metrics and health check listener.
    pub metrics: MetricsSettings,
    /// WebRTC live view (None: `enabled = false`).
    pub webrtc: Option<WebrtcSettings>,
    /// MQTT and webhook alerts.
    pub alerts: vigil_alerts::AlertsConfig,
    /// The cloud tier (None: off).
    pub cloud: Option<vigil_cloud::CloudConfig>,
    /// `[cloud] identity_file`, resolved against the file's directory.
    pub cloud_identity: Option<PathBuf>,
    /// Whether any camera has a password (the file should then be private).
    pub has_secrets: bool,
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` (read from `path`, used for messages and relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let data_dir = if raw.data_dir.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(&raw.data_dir)
        } else {
            raw.data_dir.clone()
        };
        let mut recorder = RecorderConfig::default();
        if let Some(d) = raw.file_duration {
            if d.0 < Duration::from_secs(1) {
                return Err(invalid("file_duration must be at least 1s".into()));
            }
            recorder.file_duration = d.0;
        }
        if let Some(i) = raw.retention.interval {
            if i.0 < Duration::from_secs(1) {
                return Err(invalid("retention.interval must be at least 1s".into()));
            }
            recorder.retention_interval = i.0;
        }
        let mut retention = RetentionConfig {
            max_bytes: raw.retention.max_bytes.map(|b| b.0),
            max_age: BTreeMap::new(),
            min_free_bytes: raw.retention.min_free_bytes.map_or(0, |b| b.0),
        };
        let mut streams = Vec::new();
        let mut cameras = Vec::new();
        let mut has_secrets = false;
        for cam in &raw.cameras {
            vigil_recorder::check_name(&cam.name)
                .map_err(|e| invalid(format!("camera name: {e}")))?;
            if raw.cameras.iter().filter(|c| c.name == cam.name).count() > 1 {
                return Err(invalid(format!(
                    "camera {:?} is configured twice",
                    cam.name
                )));
            }
            if let Some(age) = cam.max_age {
                retention.max_age.insert(cam.name.clone(), age.0);
            }
            let mut urls = vec![("main", cam.url.as_str())];
            if let Some(sub) = &cam.sub_url {
                urls.push(("sub", sub.as_str()));
            }
            let first = streams.len();
            for (stream, url) in urls {
                let ingest = ingest_config(cam, stream, url).map_err(invalid)?;
                has_secrets |= ingest.password.is_some();
                streams.push(StreamSpec {
                    camera: cam.name.clone(),
                    stream: stream.to_owned(),
                    ingest,
                });
            }
            let mut spec = camera_spec(cam, streams.get(first..).unwrap_or_default());
            vigil_nvr::validate_camera(&mut spec).map_err(|e| invalid(e.to_string()))?;
            cameras.push(spec);
        }
        recorder.retention = retention;
        let web = web_settings(&raw.web, path).map_err(invalid)?;
        let metrics = metrics_settings(&raw.metrics).map_err(invalid)?;
        let alerts = vigil_alerts::AlertsConfig {
            mqtt: raw.mqtt.clone(),
            webhooks: raw.webhooks.clone(),
        };
        alerts.validate().map_err(|e| invalid(e.to_string()))?;
        has_secrets |= raw.mqtt.as_ref().is_some_and(|m| m.password.is_some());
        has_secrets |= !raw.webhooks.is_empty();
        let webrtc = webrtc::webrtc_settings(&raw.webrtc).map_err(invalid)?;
        has_secrets |= raw
            .webrtc
            .ice_servers
            .iter()
            .any(|s| s.secret.is_some() || s.credential.is_some());
        let cloud = match &raw.cloud {
            Some(c) => {
                has_secrets |= c.secret_access_key.is_some();
                Some(cloud_config(c, path, &raw.cameras).map_err(invalid)?)
            }
            None => None,
        };
        let cloud_identity = raw.cloud.as_ref().and_then(|c| {
            c.identity_file
                .as_ref()
                .map(|f| path.parent().unwrap_or(Path::new(".")).join(f))
        });
        Ok(Config {
            cloud_identity,
            cloud,
            data_dir,
            recorder,
            streams,
            cameras,
            web,
            metrics,
            webrtc,
            alerts,
            has_secrets,
        })
    }
}

/// The NVR's spec of a camera whose streams (main, then sub) are already checked: URLs
/// without credentials, the credentials (from the keys or moved out of the URL) beside.
fn camera_spec(cam: &CameraSection, streams: &[StreamSpec]) -> CameraSpec {
    let find = |name: &str| streams.iter().find(|s| s.stream == name).map(|s| &s.ingest);
    let (main, sub) = (find("main"), find("sub"));
    CameraSpec {
        name: cam.name.clone(),
        url: main.map(|i| i.url.to_string()).unwrap_or_default(),
        sub_url: sub.map(|i| i.url.to_string()),
        username: main.and_then(|i| i.username.clone()),
        password: main
            .and_then(|i| i.password.clone())
            .map(vigil_nvr::Secret::new),
        transport: cam.transport,
        audio: cam.audio,
        // Rounded up: a limit below a second is still a limit.
        max_age_s: cam
            .max_age
            .map(|d| d.0.as_secs() + u64::from(d.0.subsec_nanos() > 0)),
        event_max_age_s: cam
            .event_max_age
            .map(|d| d.0.as_secs() + u64::from(d.0.subsec_nanos() > 0)),
        record: cam.record.clone(),
        motion: cam.motion.clone(),
        source: CameraSource::Config,
    }
}

/// `[metrics]` checked: `listen` an address or `off`.
fn metrics_settings(m: &MetricsSection) -> Result<MetricsSettings, String> {
    let listen = match m.listen.as_deref().unwrap_or(DEFAULT_METRICS_LISTEN).trim() {
        "off" => None,
        a => Some(a.parse::<SocketAddr>().map_err(|_| {
            format!(
                "metrics.listen must be ADDR:PORT (e.g. \"127.0.0.1:9464\") or \"off\", got {a:?}"
            )
        })?),
    };
    Ok(MetricsSettings {
        listen,
        explicit: m.listen.is_some(),
    })
}

/// `[web]` checked: `listen` an address or `off`, `cert` and `key` both or neither.
fn web_settings(web: &WebSection, path: &Path) -> Result<WebSettings, String> {
    let listen = match web.listen.as_deref().unwrap_or(DEFAULT_WEB_LISTEN).trim() {
        "off" => None,
        a => Some(a.parse::<SocketAddr>().map_err(|_| {
            format!("web.listen must be ADDR:PORT (e.g. \"0.0.0.0:8443\") or \"off\", got {a:?}")
        })?),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &PathBuf| {
        if p.is_relative() {
            base.join(p)
        } else {
            p.clone()
        }
    };
    let public_url = match &web.public_url {
        None => None,
        Some(u) => Some(
            vigil_web::passkeys::check_public_url(u)?
                .origin()
                .ascii_serialization(),
        ),
    };
    match (&web.cert, &web.key) {
        (Some(_), None) | (None, Some(_)) => {
            Err("web.cert and web.key go together: give both or neither".into())
        }
        _ => Ok(WebSettings {
            listen,
            cert: web.cert.as_ref().map(resolve),
            key: web.key.as_ref().map(resolve),
            public_url,
        }),
    }
}

/// The ingest settings of one stream, through the one conversion (and validation) the
/// NVR uses too: credentials written into the URL are accepted but moved out of it (so
/// the URL can be logged); `username`/`password` keys win over them.
fn ingest_config(cam: &CameraSection, stream: &str, url: &str) -> Result<IngestConfig, String> {
    let c = CameraStream {
        camera: &cam.name,
        stream,
        url,
        username: cam.username.as_deref(),
        password: cam.password.as_ref().map(|p| p.expose()),
        transport: cam.transport,
        // The recording files get an audio track when the camera has one.
        audio: cam.audio,
    };
    IngestConfig::for_camera(&c).map_err(|e| match e {
        CameraUrlError::PasswordWithoutUsername => format!("camera {:?}: {e}", cam.name),
        e => format!("{c} {e}"),
    })
}

/// `--config FILE` or `--data DIR`: where `vigil export` and `vigil reindex` find the data.
#[derive(Clone, Debug, clap::Args)]
pub struct DataSource {
    /// The configuration file `vigil serve` runs with (its `data_dir` is used).
    #[arg(
        long,
        value_name = "FILE",
        env = "VIGIL_CONFIG",
        conflicts_with = "data"
    )]
    pub config: Option<PathBuf>,
    /// The data directory itself, instead of `--config`.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DataSource {
    /// The data directory, and the configuration if one was given.
    pub fn resolve(&self) -> Result<(PathBuf, Option<Config>), ConfigError> {
        match (&self.data, &self.config) {
            (Some(d), _) => Ok((d.clone(), None)),
            (None, Some(c)) => {
                let cfg = Config::load(c)?;
                Ok((cfg.data_dir.clone(), Some(cfg)))
            }
            (None, None) => Err(ConfigError::Invalid {
                path: PathBuf::from("(command line)"),
                message: "give --config FILE or --data DIR".into(),
            }),
        }
    }
}

/// Parses `"30d"`, `"12h"`, `"1h30m"`, `"90s"`, `"250ms"` (units: ms s m h d w).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("expected a duration such as \"30d\", \"12h\", \"1h30m\" or \"90s\", got {s:?}");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest
            .get(..digits)
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        rest = rest.get(digits..).ok_or_else(bad)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len).ok_or_else(bad)?.trim();
        rest = rest.get(unit_len..).ok_or_else(bad)?.trim_start();
        let secs_per: u64 = match unit {
            "ms" => {
                total = total.saturating_add(Duration::from_millis(n));
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        total = total.saturating_add(Duration::from_secs(n.saturating_mul(secs_per)));
    }
    Ok(total)
}

/// Parses `"500MB"`, `"10 GiB"`, `"2000000"` (units B, kB/KB, MB, GB, TB powers of 1000;
/// KiB, MiB, GiB, TiB powers of 1024; decimals allowed: `"1.5GB"`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("expected a size such as \"500MB\", \"10GiB\" or 2000000, got {s:?}");
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = (
        s.get(..split).ok_or_else(bad)?,
        s.get(split..).ok_or_else(bad)?,
    );
    let v: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = v * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Whether a file's permission bits let other users read it: a config file holding camera
/// passwords should be 0600, or 0640 with the process's own group (the Debian package's
/// `root:vigil 0640`: root owns it, only the service's group reads it).
pub fn readable_by_others(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path)?;
    Ok(readable_beyond(
        m.mode(),
        m.gid(),
        rustix::process::getegid().as_raw(),
    ))
}

/// [`readable_by_others`] on the bits: world-readable, or group-readable by a group that is
/// not `own_gid`.
fn readable_beyond(mode: u32, file_gid: u32, own_gid: u32) -> bool {
    mode & 0o004 != 0 || (mode & 0o040 != 0 && file_gid != own_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_read_is_fine_only_for_the_process_own_group() {
        assert!(!readable_beyond(0o600, 0, 1000));
        assert!(
            !readable_beyond(0o640, 1000, 1000),
            "root:vigil 0640 read by vigil"
        );
        assert!(readable_beyond(0o640, 0, 1000), "another group reads it");
        assert!(readable_beyond(0o644, 1000, 1000), "everyone reads it");
    }

    const FULL: &str = r#"
data_dir = "rec"
file_duration = "2m"
[retention]
max_bytes = "1.5GB"
min_free_bytes = 1000000
interval = "30s"
[[camera]]
name = "porch"
url = "rtsp://192.0.2.10:554/stream1"
sub_url = "rtsp://192.0.2.10:554/stream2"
username = "viewer"
password = "hunter2-secret"
transport = "udp"
max_age = "30d"
audio = false
[[camera]]
name = "garage"
url = "rtsp://cam:pa%40ss@192.0.2.11/live"
"#;

    #[test]
    fn a_full_file_becomes_recorder_and_ingest_settings() {
        let c = Config::parse(FULL, Path::new("/etc/vigil/vigil.toml")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/vigil/rec"));
        assert_eq!(c.recorder.file_duration, Duration::from_secs(120));
        assert_eq!(c.recorder.retention_interval, Duration::from_secs(30));
        assert_eq!(c.recorder.retention.max_bytes, Some(1_500_000_000));
        assert_eq!(c.recorder.retention.min_free_bytes, 1_000_000);
        assert_eq!(
            c.recorder.retention.max_age.get("porch"),
            Some(&Duration::from_secs(30 * 86_400))
        );
        assert!(!c.recorder.retention.max_age.contains_key("garage"));
        let names: Vec<_> = c
            .streams
            .iter()
            .map(|s| format!("{}/{}", s.camera, s.stream))
            .collect();
        assert_eq!(names, ["porch/main", "porch/sub", "garage/main"]);
        let porch = &c.streams[0].ingest;
        assert_eq!(porch.transport, Transport::Udp);
        // Audio is recorded unless switched off, for each stream of the camera.
        assert!(!porch.audio && !c.streams[1].ingest.audio);
        assert!(c.streams[2].ingest.audio);
        assert_eq!(porch.password.as_deref(), Some("hunter2-secret"));
        assert_eq!(c.streams[1].ingest.url.path(), "/stream2");
        // Credentials in the URL move out of it, percent-decoded.
        let garage = &c.streams[2].ingest;
        assert_eq!(garage.url.as_str(), "rtsp://192.0.2.11/live");
        assert_eq!(garage.username.as_deref(), Some("cam"));
        assert_eq!(garage.password.as_deref(), Some("pa@ss"));
        assert_eq!(garage.transport, Transport::Tcp);
        assert!(c.has_secrets);
    }

    #[test]
    fn debug_output_never_contains_a_password() {
        let c = Config::parse(FULL, Path::new("vigil.toml")).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("pa@ss") && !dbg.contains("pa%40ss"), "{dbg}");
        let raw: RawConfig = toml::from_str(FULL).unwrap();
        let dbg = format!("{raw:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("pa%40ss"), "{dbg}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_with_the_reason() {
        let p = Path::new("v.toml");
        let err = |t: &str| Config::parse(t, p).unwrap_err().to_string();
        assert!(err("data_dir = \"d\"\nmax_byte = 3\n").contains("max_byte"));
        assert!(err("data_dir = \"d\"\n[retention]\nmax_byte = 3\n").contains("max_byte"));
        let e = err("data_dir = \"d\"\n[[camera]]\nname = \"../x\"\nurl = \"rtsp://h/\"\n");
        assert!(e.contains("invalid name"), "{e}");
        let e = err("data_dir = \"d\"\n[[camera]]\nname = \"a\"\nurl = \"http://h/\"\n");
        assert!(e.contains("rtsp://"), "{e}");
        let e = err("data_dir = \"d\"\n[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\ntransport = \"sctp\"\n");
        assert!(e.contains("sctp"), "{e}");
        let e = err("data_dir = \"d\"\n[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\nmax_age = \"3 fortnights\"\n");
        assert!(e.contains("duration"), "{e}");
        let e = err("data_dir = \"d\"\n[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\n[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\n");
        assert!(e.contains("twice"), "{e}");
        // A password that cannot be parsed as part of a URL is never echoed back.
        let e = err("data_dir = \"d\"\n[[camera]]\nname = \"a\"\nurl = \"rtsp://u:sekrit@[bad\"\n");
        assert!(!e.contains("sekrit"), "{e}");
    }

    #[test]
    fn cameras_become_nvr_specs_with_motion_record_and_web_sections() {
        let text = r#"
data_dir = "/var/lib/vigil"
[web]
listen = "127.0.0.1:9443"
cert = "tls/cert.pem"
key = "/etc/tls/key.pem"
public_url = "https://NVR.example:9443/"
[[camera]]
name = "porch"
url = "rtsp://cam:pa%40ss@192.0.2.10/main"
sub_url = "rtsp://192.0.2.10/sub"
max_age = "1d"
event_max_age = "30d"
[camera.motion]
sensitivity = 70
fps = 4
[[camera.motion.zones]]
name = "path"
points = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
[[camera.motion.zones]]
name = "tree"
kind = "mask"
points = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]
[camera.record]
mode = "motion"
pre_roll_s = 5
post_roll_s = 10
[[camera]]
name = "garage"
url = "rtsp://192.0.2.11/live"
"#;
        let c = Config::parse(text, Path::new("/etc/vigil/vigil.toml")).unwrap();
        assert_eq!(
            c.web,
            WebSettings {
                listen: Some("127.0.0.1:9443".parse().unwrap()),
                cert: Some(PathBuf::from("/etc/vigil/tls/cert.pem")),
                key: Some(PathBuf::from("/etc/tls/key.pem")),
                public_url: Some("https://nvr.example:9443".into()),
            }
        );
        let porch = &c.cameras[0];
        assert_eq!(porch.source, CameraSource::Config);
        assert_eq!(porch.url, "rtsp://192.0.2.10/main");
        assert_eq!(porch.sub_url.as_deref(), Some("rtsp://192.0.2.10/sub"));
        assert_eq!(porch.username.as_deref(), Some("cam"));
        assert_eq!(porch.password.as_ref().map(|p| p.expose()), Some("pa@ss"));
        assert_eq!(porch.max_age_s, Some(86_400));
        assert_eq!(porch.event_max_age_s, Some(30 * 86_400));
        assert_eq!(porch.motion.sensitivity, 70);
        assert_eq!(porch.motion.zones.len(), 2);
        assert_eq!(porch.motion.zones[1].kind, vigil_nvr::ZoneKind::Mask);
        assert_eq!(
            porch.record,
            RecordMode::Motion {
                pre_roll_s: 5,
                post_roll_s: 10
            }
        );
        let garage = &c.cameras[1];
        assert_eq!(garage.record, RecordMode::Continuous);
        assert!(garage.motion.enabled && garage.motion.zones.is_empty());
        // Defaults: the web app on all interfaces, port 8443.
        let c = Config::parse("data_dir = \"d\"\n", Path::new("v.toml")).unwrap();
        assert_eq!(c.web.listen, Some(DEFAULT_WEB_LISTEN.parse().unwrap()));
        let c = Config::parse(
            "data_dir = \"d\"\n[web]\nlisten = \"off\"\n",
            Path::new("v.toml"),
        )
        .unwrap();
        assert_eq!(c.web.listen, None);
    }

    #[test]
    fn metrics_listen_defaults_to_loopback_and_can_be_off() {
        let p = Path::new("v.toml");
        let c = Config::parse("data_dir = \"d\"\n", p).unwrap();
        assert_eq!(
            c.metrics,
            MetricsSettings {
                listen: Some(DEFAULT_METRICS_LISTEN.parse().unwrap()),
                explicit: false
            }
        );
        assert!(c.metrics.listen.unwrap().ip().is_loopback());
        let c = Config::parse("data_dir = \"d\"\n[metrics]\nlisten = \"off\"\n", p).unwrap();
        assert_eq!(c.metrics.listen, None);
        let c =
            Config::parse("data_dir = \"d\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n", p).unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert!(c.metrics.explicit);
        let err = |t: &str| Config::parse(t, p).unwrap_err().to_string();
        assert!(err("data_dir = \"d\"\n[metrics]\nlisten = \"9464\"\n").contains("metrics.listen"));
        assert!(err("data_dir = \"d\"\n[metrics]\npath = \"/m\"\n").contains("path"));
    }

    #[test]
    fn bad_web_motion_and_record_sections_are_refused() {
        let p = Path::new("v.toml");
        let err = |t: &str| Config::parse(t, p).unwrap_err().to_string();
        let cam = "data_dir = \"d\"\n[[camera]]\nname = \"a\"\nurl = \"rtsp://h/\"\n";
        assert!(err("data_dir = \"d\"\n[web]\nlisten = \"8443\"\n").contains("web.listen"));
        assert!(err("data_dir = \"d\"\n[web]\ncert = \"c.pem\"\n").contains("web.key"));
        assert!(err("data_dir = \"d\"\n[web]\nport = 1\n").contains("port"));
        for (bad, says) in [
            ("http://nvr.example", "https://"),
            ("https://192.0.2.1:8443", "host name"),
            ("https://nvr.example/vigil", "without a path"),
            ("nvr.example", "URL"),
        ] {
            let e = err(&format!(
                "data_dir = \"d\"\n[web]\npublic_url = \"{bad}\"\n"
            ));
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = err(&format!("{cam}[camera.motion]\nsensitivty = 3\n"));
        assert!(e.contains("sensitivty"), "{e}");
        let e = err(&format!("{cam}[camera.motion]\nsensitivity = 300\n"));
        assert!(e.contains("sensitivity"), "{e}");
        let e = err(&format!("{cam}[camera.record]\nmode = \"sometimes\"\n"));
        assert!(e.contains("sometimes"), "{e}");
        let e = err(&format!(
            "{cam}[[camera.motion.zones]]\nname = \"z\"\npoints = [[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]]\n"
        ));
        assert!(e.contains("0..1"), "{e}");
    }

    #[test]
    fn durations_and_sizes_parse_like_people_write_them() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "d", "30", "5x", "-3s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bytes("500MB"), Ok(500_000_000));
        assert_eq!(parse_bytes("10 GiB"), Ok(10 << 30));
        assert_eq!(parse_bytes("1.5gb"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("123"), Ok(123));
        for bad in ["", "MB", "5 parsecs", "1e9"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_example_file_in_the_repository_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vigil.example.toml");
        let c = Config::load(&path).unwrap();
        assert!(!c.streams.is_empty());
    }
}
