//! The cloud tier's settings, as `[cloud]` in `vigil.toml` becomes them (the file format
//! and its checks live in the `vigil` crate's config module; `docs/config.md`).

use std::fmt;
use std::time::Duration;

use vigil_auth::secret::Secret;

/// Which streams go up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSelection {
    /// Camera names; `None`: every camera.
    pub cameras: Option<Vec<String>>,
    /// Stream names (default `["main"]`).
    pub streams: Vec<String>,
}

impl StreamSelection {
    /// Whether `camera`'s `stream` is uploaded.
    pub fn includes(&self, camera: &str, stream: &str) -> bool {
        self.cameras
            .as_ref()
            .is_none_or(|c| c.iter().any(|c| c == camera))
            && self.streams.iter().any(|s| s == stream)
    }
}

impl Default for StreamSelection {
    fn default() -> Self {
        Self {
            cameras: None,
            streams: vec!["main".to_owned()],
        }
    }
}

/// The cloud tier's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct CloudConfig {
    /// S3 endpoint URL (`https://s3.eu-central-003.backblazeb2.com`, `http://127.0.0.1:8333`);
    /// `None`: AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Region (`us-east-1` where the provider has none).
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`, SeaweedFS, MinIO, Garage) instead of
    /// virtual-hosted style (`bucket.endpoint/key`, AWS, B2, Wasabi).
    pub path_style: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never logged: [`Secret`]).
    pub secret_access_key: Secret,
    /// age recipients (`age1…`): the owner's key, a recovery key.
    pub recipients: Vec<String>,
    /// What goes up.
    pub select: StreamSelection,
    /// Footage is uploaded once it is this old (and at the end of each file).
    pub upload_delay: Duration,
    /// Average upload rate limit, bytes per second.
    pub max_upload_rate: Option<u64>,
    /// Objects older than this are deleted from the bucket (independent of local retention).
    pub retention: Option<Duration>,
    /// A PEM file of certificate authorities to trust besides the system's (a MinIO or
    /// Garage on the LAN with its own CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// Largest part, bytes of fragments (plus the init segment): the unit of upload and
    /// of retry.
    pub part_bytes: u64,
    /// Uploads in flight at once.
    pub concurrency: usize,
}

/// Default [`CloudConfig::upload_delay`].
pub const DEFAULT_UPLOAD_DELAY: Duration = Duration::from_secs(30);
/// The shortest upload delay: shorter would make an object every few seconds.
pub const MIN_UPLOAD_DELAY: Duration = Duration::from_secs(5);
/// Default [`CloudConfig::part_bytes`]: 16 MiB, about 30 s of a 4 Mbit/s stream.
pub const DEFAULT_PART_BYTES: u64 = 16 << 20;

impl CloudConfig {
    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: String| Err(crate::Error::Config(m));
        if self.bucket.is_empty() {
            return bad("bucket is empty".into());
        }
        if self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return bad(format!(
                "prefix {:?}: no leading or trailing '/'",
                self.prefix
            ));
        }
        if self.recipients.is_empty() {
            return bad(
                "no recipients: make a key with `vigil cloud keygen --output FILE` and put its \
                 public key (age1…) in `recipients`"
                    .into(),
            );
        }
        crate::keys::parse_recipients(&self.recipients)?;
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("https://") || e.starts_with("http://")) {
                return bad(format!(
                    "endpoint {e:?} must start with https:// or http://"
                ));
            }
        }
        if self.access_key_id.is_empty() || self.secret_access_key.expose().is_empty() {
            return bad(
                "no credentials: set access_key_id and secret_access_key (or \
                 secret_access_key_file), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                    .into(),
            );
        }
        if self.upload_delay < MIN_UPLOAD_DELAY {
            return bad(format!(
                "upload_delay must be at least {}s",
                MIN_UPLOAD_DELAY.as_secs()
            ));
        }
        if self.max_upload_rate == Some(0) {
            return bad("max_upload_rate must be above 0".into());
        }
        if self.part_bytes < (1 << 20) {
            return bad("part_bytes must be at least 1 MiB".into());
        }
        Ok(())
    }

    /// A configuration with defaults for everything but the bucket, credentials and
    /// recipients (tests, and the starting point of the file parser).
    pub fn new(
        bucket: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: Secret,
        recipients: Vec<String>,
    ) -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            bucket: bucket.into(),
            prefix: String::new(),
            path_style: false,
            access_key_id: access_key_id.into(),
            secret_access_key,
            recipients,
            select: StreamSelection::default(),
            upload_delay: DEFAULT_UPLOAD_DELAY,
            max_upload_rate: None,
            retention: None,
            ca_file: None,
            part_bytes: DEFAULT_PART_BYTES,
            concurrency: 2,
        }
    }
}

impl fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &self.secret_access_key)
            .field("recipients", &self.recipients)
            .field("select", &self.select)
            .field("upload_delay", &self.upload_delay)
            .field("max_upload_rate", &self.max_upload_rate)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}
