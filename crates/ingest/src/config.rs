//! What to ingest and how hard to try: the camera's URL and credentials, the RTP
//! transport, and the supervision timings.

use std::fmt;
use std::time::Duration;

use url::Url;

use super::backoff::BackoffConfig;

/// How RTP travels from the camera: `tcp` (the default) or `udp` in the configuration
/// file, `cameras.json` and the API; read in any case (`UDP` too). The one transport type:
/// the configuration file, the camera store and the ingest all use it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Interleaved in the RTSP TCP connection (RFC 2326 §10.12): works through NAT and
    /// firewalls and never loses packets to a full socket buffer. The default.
    #[default]
    Tcp,
    /// Separate UDP ports per stream: lower latency, but packets can be lost.
    Udp,
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            _ => Err(format!("transport must be \"tcp\" or \"udp\", not {s:?}")),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Transport {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a camera stream's settings cannot be ingested. The messages never echo the URL: it
/// may hold a password, possibly in a shape the parser does not recognise.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CameraUrlError {
    /// The URL does not parse.
    #[error("URL is not a URL ({0})")]
    NotAUrl(url::ParseError),
    /// Not `rtsp://`.
    #[error("URL must start with rtsp:// (got {0}://)")]
    NotRtsp(String),
    /// `rtsp:///path` and the like.
    #[error("URL has no host")]
    NoHost,
    /// A password (in the URL or the settings) but no user name.
    #[error("password without username")]
    PasswordWithoutUsername,
}

/// The one check of a camera stream's URL (the configuration file, the camera store and
/// the running NVR all use it): an `rtsp://` URL with a host. Surrounding blanks are
/// ignored; user information is left in place (see [`IngestConfig::for_camera`]).
pub fn camera_url(url: &str) -> Result<Url, CameraUrlError> {
    let u = Url::parse(url.trim()).map_err(CameraUrlError::NotAUrl)?;
    if u.scheme() != "rtsp" {
        return Err(CameraUrlError::NotRtsp(u.scheme().to_owned()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(CameraUrlError::NoHost);
    }
    Ok(u)
}

/// One stream of a camera as the configuration file and the camera store describe it.
/// Its `Debug` redacts the password and any credentials in the URL.
#[derive(Clone, Copy)]
pub struct CameraStream<'a> {
    /// The camera's name.
    pub camera: &'a str,
    /// `main` or `sub`.
    pub stream: &'a str,
    /// The stream's URL, possibly with credentials in it.
    pub url: &'a str,
    /// User name; wins over one in the URL.
    pub username: Option<&'a str>,
    /// Password; wins over one in the URL.
    pub password: Option<&'a str>,
    /// RTP transport.
    pub transport: Transport,
    /// Whether to set up the camera's audio too.
    pub audio: bool,
}

impl fmt::Debug for CameraStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CameraStream")
            .field("camera", &self.camera)
            .field("stream", &self.stream)
            .field("url", &vigil_auth::secret::redact_url(self.url))
            .field("username", &self.username)
            .field("password", &self.password.map(|_| "redacted"))
            .field("transport", &self.transport)
            .field("audio", &self.audio)
            .finish()
    }
}

impl fmt::Display for CameraStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "camera {:?}: {}", self.camera, self.stream)
    }
}

/// One camera stream to ingest.
///
/// `Debug` is written by hand: the credentials never appear in logs, and the URL is shown
/// without any user information.
#[derive(Clone)]
pub struct IngestConfig {
    /// Stream name, for logs and the hub (e.g. `"driveway/main"`).
    pub name: String,
    /// `rtsp://host[:port]/path` of the camera stream, without credentials (see
    /// [`IngestConfig::new`], which moves any user information into the fields below).
    pub url: Url,
    /// User name for the camera's RTSP authentication.
    pub username: Option<String>,
    /// Password for the camera's RTSP authentication.
    pub password: Option<String>,
    /// RTP transport; TCP by default.
    pub transport: Transport,
    /// Whether to set up the camera's audio stream (AAC, G.711) too, if it has one.
    pub audio: bool,
    /// A session with no video frame for this long is considered dead and reconnected.
    /// Below 5 s so that a dead camera is noticed within 5 s.
    pub stall_timeout: Duration,
    /// Upper bound for each RTSP request of the connection set-up (DESCRIBE, SETUP, PLAY).
    pub request_timeout: Duration,
    /// Reconnection back-off.
    pub backoff: BackoffConfig,
    /// While backing off from a camera that did not answer RTSP when the back-off started
    /// (port closed, or a hung camera that accepts connections but says nothing), probe it
    /// this often with an `OPTIONS` request (no credentials; any RTSP status counts) and
    /// reconnect as soon as it answers: a camera that comes back is recorded again within
    /// this interval plus one GOP, whatever the back-off had grown to. A camera that
    /// answers while its sessions fail is left to the back-off. `None` disables the probe.
    pub port_probe: Option<Duration>,
    /// Seed of the back-off jitter; `None` seeds from the OS. Tests fix it.
    pub jitter_seed: Option<u64>,
    /// With TCP transport, while no live subscriber watches the stream, let the kernel
    /// gather about this much of the stream before waking the reader (fewer, larger
    /// reads: about a third less CPU per recorded stream). Frames reach the hub up to
    /// about this late (at most 4x, or 200 ms); `Duration::ZERO` turns it off. See
    /// [`super::batching`].
    pub read_batch: Duration,
}

/// The default [`IngestConfig::read_batch`]: 50 ms of media per wake-up. 400 ms cut the
/// recorder's CPU at 16 streams by about a tenth more, but motion events, and the first frame
/// after an outage, then came up to 0.4 s later: the end-to-end tests of motion, alerts and
/// outages failed on it in a CI rehearsal (docs/benchmarks.md, "Issue 18").
pub const DEFAULT_READ_BATCH: Duration = Duration::from_millis(50);

impl IngestConfig {
    /// A configuration with the defaults (TCP, audio on, 4 s stall timeout, 5 s request
    /// timeout, 0.5 s → 30 s back-off, 50 ms read batches while nobody watches live). Credentials embedded in `url`
    /// (`rtsp://user:pass@host/...`) are moved out of the URL into `username`/`password`
    /// so that the URL can be logged.
    pub fn new(name: impl Into<String>, mut url: Url) -> Self {
        let (username, password) = take_userinfo(&mut url);
        IngestConfig {
            name: name.into(),
            url,
            username,
            password,
            transport: Transport::default(),
            audio: true,
            stall_timeout: Duration::from_secs(4),
            request_timeout: Duration::from_secs(5),
            backoff: BackoffConfig::default(),
            port_probe: Some(Duration::from_millis(500)),
            jitter_seed: None,
            read_batch: DEFAULT_READ_BATCH,
        }
    }

    /// Sets the credentials.
    pub fn with_credentials(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// The URL as it may be logged: without user information, even if a caller put some
    /// back into `url`.
    pub fn redacted_url(&self) -> String {
        vigil_auth::secret::redact(&self.url)
    }
}

impl IngestConfig {
    /// The one conversion from a camera's settings to an ingest, with the one validation
    /// ([`camera_url`], and a password needs a user name). Credentials written into the
    /// URL are moved out of it (so the URL can be logged); `username`/`password` win over
    /// them. Named `camera/stream`.
    pub fn for_camera(c: &CameraStream<'_>) -> Result<IngestConfig, CameraUrlError> {
        let url = camera_url(c.url)?;
        let mut cfg = IngestConfig::new(format!("{}/{}", c.camera, c.stream), url);
        if let Some(u) = c.username {
            cfg.username = Some(u.to_owned());
        }
        if let Some(p) = c.password {
            cfg.password = Some(p.to_owned());
        }
        if cfg.password.is_some() && cfg.username.is_none() {
            return Err(CameraUrlError::PasswordWithoutUsername);
        }
        cfg.transport = c.transport;
        cfg.audio = c.audio;
        Ok(cfg)
    }
}

impl fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("IngestConfig")
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("username", &redact(&self.username))
            .field("password", &redact(&self.password))
            .field("transport", &self.transport)
            .field("audio", &self.audio)
            .field("stall_timeout", &self.stall_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("backoff", &self.backoff)
            .field("port_probe", &self.port_probe)
            .field("read_batch", &self.read_batch)
            .finish()
    }
}

/// Removes user information from `url`, returning it percent-decoded (RFC 3986 §3.2.1).
fn take_userinfo(url: &mut Url) -> (Option<String>, Option<String>) {
    let user = Some(url.username())
        .filter(|u| !u.is_empty())
        .map(percent_decode);
    let pass = url.password().map(percent_decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    (user, pass)
}

/// RFC 3986 §2.1 percent-decoding; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_camera_stream_debug_shows_no_credentials() {
        let c = CameraStream {
            camera: "door",
            stream: "main",
            url: "rtsp://admin:hunter2@10.0.0.5/live?token=s3cret",
            username: Some("admin"),
            password: Some("letmein"),
            transport: Transport::Tcp,
            audio: true,
        };
        let d = format!("{c:?}");
        for secret in ["hunter2", "s3cret", "letmein"] {
            assert!(!d.contains(secret), "{secret} in {d}");
        }
        assert!(d.contains("10.0.0.5") && d.contains("door"), "{d}");
    }

    use super::*;

    #[test]
    fn credentials_move_out_of_the_url_and_never_show_in_debug() {
        let url = Url::parse("rtsp://admin:s%40cret-pw@192.0.2.7:554/Streaming/101").unwrap();
        let cfg = IngestConfig::new("door", url);
        assert_eq!(cfg.username.as_deref(), Some("admin"));
        assert_eq!(cfg.password.as_deref(), Some("s@cret-pw"));
        assert_eq!(cfg.url.as_str(), "rtsp://192.0.2.7:554/Streaming/101");
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s@cret"), "{dbg}");
        assert!(!dbg.contains("s%40cret"), "{dbg}");
        assert!(!dbg.contains("admin"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
        assert!(dbg.contains("192.0.2.7"), "{dbg}");
    }

    #[test]
    fn redacted_url_strips_credentials_put_back_by_a_caller() {
        let mut cfg = IngestConfig::new("x", Url::parse("rtsp://h/p").unwrap());
        cfg.url = Url::parse("rtsp://u:topsecret@h/p").unwrap();
        assert!(!cfg.redacted_url().contains("topsecret"));
        assert!(!format!("{cfg:?}").contains("topsecret"));
    }

    #[test]
    fn transport_parses_case_insensitively_and_defaults_to_tcp() {
        assert_eq!("UDP".parse::<Transport>(), Ok(Transport::Udp));
        assert_eq!("tcp".parse::<Transport>(), Ok(Transport::Tcp));
        assert!("sctp".parse::<Transport>().is_err());
        assert_eq!(Transport::default(), Transport::Tcp);
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn one_conversion_checks_the_url_and_moves_credentials_out() {
        let cam = |url: &'static str| CameraStream {
            camera: "door",
            stream: "main",
            url,
            username: None,
            password: None,
            transport: Transport::Udp,
            audio: false,
        };
        let cfg = IngestConfig::for_camera(&cam(" rtsp://u:p%40ss@192.0.2.1:8554/s ")).unwrap();
        assert_eq!(cfg.name, "door/main");
        assert_eq!(cfg.url.as_str(), "rtsp://192.0.2.1:8554/s");
        assert_eq!(cfg.username.as_deref(), Some("u"));
        assert_eq!(cfg.password.as_deref(), Some("p@ss"));
        assert_eq!((cfg.transport, cfg.audio), (Transport::Udp, false));
        let err = |url| IngestConfig::for_camera(&cam(url)).unwrap_err();
        assert_eq!(err("http://h/"), CameraUrlError::NotRtsp("http".into()));
        assert_eq!(err("rtsp:///x"), CameraUrlError::NoHost);
        assert!(matches!(
            err("rtsp://u:sekrit@[bad"),
            CameraUrlError::NotAUrl(_)
        ));
        assert!(!err("rtsp://u:sekrit@[bad").to_string().contains("sekrit"));
        let mut c = cam("rtsp://h/");
        c.password = Some("p");
        assert_eq!(
            IngestConfig::for_camera(&c).unwrap_err(),
            CameraUrlError::PasswordWithoutUsername
        );
        c.username = Some("u");
        assert!(IngestConfig::for_camera(&c).is_ok());
    }
}
