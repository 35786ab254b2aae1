//! `vigil serve`'s monitoring listener: `GET /metrics` (Prometheus text exposition format
//! 0.0.4), `GET /healthz` (liveness) and `GET /readyz` (readiness), plain HTTP on its own
//! address (`[metrics] listen`, default `127.0.0.1:9464`). docs/metrics.md lists every
//! metric and the readiness rule.
//!
//! Nothing is counted here: every figure is read, at scrape time, from the crate that owns
//! the event — the NVR's ingest counters ([`vigil_nvr::Nvr::stream_counters`]), the
//! recorder's writer counters ([`vigil_recorder::Recorder::stream_stats`]), the web app's
//! ([`vigil_web::live::viewers_now`], [`vigil_web::account_routes::login_counters`]), the
//! cloud uploader's status, and `/proc` for the process. A scrape therefore costs the
//! recorder nothing between scrapes.
//!
//! The exposition is written by hand ([`Text`]) rather than with `prometheus-client`: the
//! format is a few lines of rules (HELP/TYPE, samples, label escaping, cumulative histogram
//! buckets), the values already live in atomics elsewhere, and a registry of its own would
//! only mirror them.
//!
//! Why a separate listener and not a route of the HTTPS web app: Prometheus scrapes over the
//! host's own network with no session, and API tokens cannot yet be scoped to `metrics`
//! (another issue). On loopback (the default) the metrics are visible to local users only;
//! a non-loopback address is allowed but warned about, since metrics name the cameras.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::warn;
use vigil_nvr::{Nvr, StreamCounters, StreamState};
use vigil_recorder::stats::{StreamStatsSnapshot, WRITE_LATENCY_BOUNDS_S};

/// Errors of the metrics listener.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("binding the metrics listener to {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bound socket could not be handed to the runtime, or its address read.
    #[error("setting up the metrics listener: {0}")]
    Setup(std::io::Error),
    /// The `listening metrics` line could not be written.
    #[error("writing to stdout: {0}")]
    Stdout(std::io::Error),
}

/// The `Content-Type` of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long in-flight scrapes get at shutdown before the server task is aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where the figures come from.
pub struct Sources {
    /// The NVR (cameras, ingest counters, the recorder).
    pub nvr: Arc<Nvr>,
    /// The cloud tier, if configured (its backlog).
    pub cloud: Option<Arc<vigil_cloud::Uploader>>,
    /// Whether the web app runs (its metrics are exported only then).
    pub web: bool,
    /// The data directory (free space of its file system).
    pub data_dir: PathBuf,
    /// Liveness beyond "answers HTTP": no recorded stream stalled (`/healthz`).
    pub(crate) health: Arc<crate::service::Health>,
}

/// A bound, not yet serving, metrics listener: bound early so that a bad address fails
/// before anything starts; served once the recorder and web app are up.
pub struct Bound {
    listener: std::net::TcpListener,
}

impl Bound {
    /// Binds `addr`, warning when it is not a loopback address.
    pub fn bind(addr: SocketAddr) -> Result<Bound, MetricsError> {
        if !addr.ip().is_loopback() {
            warn!(
                %addr,
                "[metrics] listen is not a loopback address: anyone who can reach it reads \
                 camera names and recorder figures, unauthenticated (docs/metrics.md)"
            );
        }
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| MetricsError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(MetricsError::Setup)?;
        Ok(Bound { listener })
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` until [`Server::shutdown`]; prints
    /// `listening metrics ADDR` on stdout.
    pub fn serve(self, sources: Sources) -> Result<Server, MetricsError> {
        let addr = self.listener.local_addr().map_err(MetricsError::Setup)?;
        let listener =
            tokio::net::TcpListener::from_std(self.listener).map_err(MetricsError::Setup)?;
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(Arc::new(sources));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = r {
                warn!("metrics listener: {e}");
            }
        });
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening metrics {addr}").map_err(MetricsError::Stdout)?;
            out.flush().map_err(MetricsError::Stdout)?;
        }
        Ok(Server { stop, task })
    }
}

/// The serving metrics listener.
pub struct Server {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops accepting and gives in-flight scrapes [`SHUTDOWN_GRACE`].
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Liveness: the process answers HTTP and no recorded stream is stalled (frames arrive,
/// nothing is written: a hung disk or writer; see `crate::service`). An offline camera is
/// not a stall, so a supervisor restarting on `/healthz` never restarts over one camera.
async fn healthz(State(src): State<Arc<Sources>>) -> Response {
    match src.health.ok() {
        true => text(StatusCode::OK, "ok\n"),
        false => text(StatusCode::SERVICE_UNAVAILABLE, "stalled\n"),
    }
}

/// Readiness: see [`ready`].
async fn readyz(State(src): State<Arc<Sources>>) -> Response {
    match ready(&src.nvr.stream_counters()) {
        true => text(StatusCode::OK, "ok\n"),
        false => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

/// Whether every configured camera records: each camera's main stream is receiving frames
/// (`recording`). With no camera, ready. This is the "is everything recording" check for
/// dashboards and load balancers; it turns 503 when a camera dies and back when it
/// returns. Never restart the recorder on it (the other cameras still record): liveness is
/// `/healthz` and the systemd watchdog.
pub(crate) fn ready(counters: &[StreamCounters]) -> bool {
    counters
        .iter()
        .filter(|c| c.stream == "main")
        .all(|c| c.state == StreamState::Streaming)
}

async fn metrics(State(src): State<Arc<Sources>>) -> Response {
    // `/proc` and statvfs are file system calls (a data directory on a hung NFS mount
    // would block): off the async workers.
    match tokio::task::spawn_blocking(move || render(&gather(&src))).await {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            warn!("metrics: {e}");
            text(StatusCode::INTERNAL_SERVER_ERROR, "error\n")
        }
    }
}

/// Everything one scrape exports, gathered first so that rendering is pure (and tested).
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub streams: Vec<StreamSample>,
    pub cloud: Option<CloudSample>,
    pub web: Option<WebSample>,
    pub process: ProcessSample,
}

/// One stream: the ingest's counters and the recorder's.
#[derive(Clone, Debug)]
pub(crate) struct StreamSample {
    pub counters: StreamCounters,
    /// Seconds since the newest frame, if one arrived.
    pub last_frame_age_s: Option<f64>,
    pub recorded: StreamStatsSnapshot,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CloudSample {
    pub backlog_parts: u64,
    pub backlog_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WebSample {
    pub viewers: u64,
    pub logins: vigil_web::account_routes::LoginCounters,
}

/// Process figures; `None` where the platform did not tell.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcessSample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_s: Option<f64>,
    pub disk_free_bytes: Option<u64>,
    pub disk_size_bytes: Option<u64>,
}

fn gather(src: &Sources) -> Snapshot {
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    let recorded = src.nvr.recorder().stream_stats();
    let streams = src
        .nvr
        .stream_counters()
        .into_iter()
        .map(|c| StreamSample {
            last_frame_age_s: c
                .last_frame_us
                .map(|t| now_us.saturating_sub(t).max(0) as f64 / 1e6),
            recorded: recorded
                .iter()
                .find(|(cam, s, _)| *cam == c.camera && *s == c.stream)
                .map(|(_, _, st)| st.clone())
                .unwrap_or_default(),
            counters: c,
        })
        .collect();
    Snapshot {
        streams,
        cloud: src.cloud.as_ref().map(|u| {
            let s = u.status();
            CloudSample {
                backlog_parts: s.pending_parts,
                backlog_bytes: s.pending_bytes,
            }
        }),
        web: src.web.then(|| WebSample {
            viewers: vigil_web::live::viewers_now(),
            logins: vigil_web::account_routes::login_counters(),
        }),
        process: process_sample(&src.data_dir),
    }
}

/// CPU time, start time, RSS and descriptors from `/proc`; disk space by statvfs.
fn process_sample(data_dir: &std::path::Path) -> ProcessSample {
    let mut p = ProcessSample::default();
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        if let Some(f) = proc_stat_fields(&stat) {
            p.cpu_seconds = Some((f.utime + f.stime) as f64 / ticks);
            let btime = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| boot_time(&s));
            p.start_time_s = btime.map(|b| b as f64 + f.starttime as f64 / ticks);
        }
    }
    p.resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| vm_rss_bytes(&s));
    p.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    p.max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    if let Ok(v) = rustix::fs::statvfs(data_dir) {
        p.disk_free_bytes = Some(v.f_bavail.saturating_mul(v.f_frsize));
        p.disk_size_bytes = Some(v.f_blocks.saturating_mul(v.f_frsize));
    }
    p
}

/// The fields of `/proc/self/stat` we use (clock ticks).
#[derive(Debug, PartialEq, Eq)]
struct ProcStat {
    utime: u64,
    stime: u64,
    /// Since boot.
    starttime: u64,
}

/// proc(5): `pid (comm) state ppid …`; `comm` may hold spaces and parentheses, so fields
/// are counted from the last `)`. utime, stime and starttime are fields 14, 15 and 22.
fn proc_stat_fields(stat: &str) -> Option<ProcStat> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
    })
}

/// `btime` of `/proc/stat`: boot time, seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS:  1234 kB` of `/proc/self/status`, in bytes.
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let v = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = v.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

/// The wire name of a stream state in `vigil_stream_state` (`recording` as in the
/// `recording CAMERA/STREAM` stdout line: frames flow into the recorder).
fn state_name(s: StreamState) -> &'static str {
    match s {
        StreamState::Streaming => "recording",
        StreamState::Connecting => "connecting",
        StreamState::Offline => "offline",
        StreamState::Failed => "failed",
    }
}

const STATES: [StreamState; 4] = [
    StreamState::Streaming,
    StreamState::Connecting,
    StreamState::Offline,
    StreamState::Failed,
];

/// Renders a scrape in the text exposition format.
pub(crate) fn render(s: &Snapshot) -> String {
    let mut t = Text::default();
    let labels = |x: &StreamSample| {
        [
            ("camera", x.counters.camera.clone()),
            ("stream", x.counters.stream.clone()),
        ]
    };
    // Per stream: each family's samples together, as the format requires.
    type Getter = fn(&StreamSample) -> Option<Num>;
    let families: [(&str, Kind, &str, Getter); 8] = [
        (
            "vigil_stream_up",
            Kind::Gauge,
            "1 while frames of the stream flow into the recorder, else 0.",
            |x| {
                Some(Num::U(u64::from(
                    x.counters.state == StreamState::Streaming,
                )))
            },
        ),
        (
            "vigil_stream_frames_received_total",
            Kind::Counter,
            "Video access units received from the camera since the camera started.",
            |x| Some(Num::U(x.counters.frames)),
        ),
        (
            "vigil_stream_received_bytes_total",
            Kind::Counter,
            "Video payload bytes received from the camera since the camera started.",
            |x| Some(Num::U(x.counters.bytes)),
        ),
        (
            "vigil_stream_reconnects_total",
            Kind::Counter,
            "Camera sessions started after the first one.",
            |x| Some(Num::U(x.counters.reconnects)),
        ),
        (
            "vigil_stream_last_frame_age_seconds",
            Kind::Gauge,
            "Seconds since the newest frame arrived (absent before the first).",
            |x| x.last_frame_age_s.map(Num::F),
        ),
        (
            "vigil_stream_gaps_total",
            Kind::Counter,
            "Camera outages recorded as gaps in the recording.",
            |x| Some(Num::U(x.recorded.gaps)),
        ),
        (
            "vigil_stream_recorded_bytes_total",
            Kind::Counter,
            "Bytes of recording appended and fsynced.",
            |x| Some(Num::U(x.recorded.bytes_written)),
        ),
        (
            "vigil_stream_fragments_written_total",
            Kind::Counter,
            "Recording fragments appended and fsynced.",
            |x| Some(Num::U(x.recorded.fragments_written)),
        ),
    ];
    for (name, kind, help, get) in families {
        t.header(name, kind, help);
        for x in &s.streams {
            if let Some(v) = get(x) {
                t.sample(name, &labels(x), v);
            }
        }
    }
    t.header(
        "vigil_stream_state",
        Kind::Gauge,
        "1 for the stream's current state (recording, connecting, offline, failed), 0 for the others.",
    );
    for x in &s.streams {
        for st in STATES {
            let [c, n] = labels(x);
            let l = [c, n, ("state", state_name(st).to_owned())];
            t.sample(
                "vigil_stream_state",
                &l,
                Num::U(u64::from(x.counters.state == st)),
            );
        }
    }
    t.header(
        "vigil_stream_write_duration_seconds",
        Kind::Histogram,
        "Time to append and fsync one recording fragment.",
    );
    for x in &s.streams {
        let h = &x.recorded.write_latency;
        t.histogram(
            "vigil_stream_write_duration_seconds",
            &labels(x),
            &WRITE_LATENCY_BOUNDS_S,
            &h.buckets,
            h.sum_seconds,
        );
    }
    if let Some(c) = s.cloud {
        t.header(
            "vigil_cloud_backlog_parts",
            Kind::Gauge,
            "Recording parts waiting to go up to the cloud tier.",
        );
        t.sample("vigil_cloud_backlog_parts", &[], Num::U(c.backlog_parts));
        t.header(
            "vigil_cloud_backlog_bytes",
            Kind::Gauge,
            "Plaintext bytes waiting to go up to the cloud tier.",
        );
        t.sample("vigil_cloud_backlog_bytes", &[], Num::U(c.backlog_bytes));
    }
    if let Some(w) = s.web {
        let web: [(&str, Kind, &str, u64); 4] = [
            (
                "vigil_web_live_viewers",
                Kind::Gauge,
                "Live view streams being served now (share links included).",
                w.viewers,
            ),
            (
                "vigil_web_logins_total",
                Kind::Counter,
                "Successful web logins.",
                w.logins.logins,
            ),
            (
                "vigil_web_login_failures_total",
                Kind::Counter,
                "Web logins refused for a wrong user name or password.",
                w.logins.failures,
            ),
            (
                "vigil_web_throttled_requests_total",
                Kind::Counter,
                "Requests refused with 429 by the brute-force throttle.",
                w.logins.throttled,
            ),
        ];
        for (name, kind, help, v) in web {
            t.header(name, kind, help);
            t.sample(name, &[], Num::U(v));
        }
    }
    let p = &s.process;
    let process: [(&str, Kind, &str, Option<Num>); 7] = [
        (
            "process_cpu_seconds_total",
            Kind::Counter,
            "User and system CPU time spent, seconds.",
            p.cpu_seconds.map(Num::F),
        ),
        (
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory size, bytes.",
            p.resident_bytes.map(Num::U),
        ),
        (
            "process_open_fds",
            Kind::Gauge,
            "Open file descriptors.",
            p.open_fds.map(Num::U),
        ),
        (
            "process_max_fds",
            Kind::Gauge,
            "The open file descriptor limit.",
            p.max_fds.map(Num::U),
        ),
        (
            "process_start_time_seconds",
            Kind::Gauge,
            "Start time of the process, seconds since the Unix epoch.",
            p.start_time_s.map(Num::F),
        ),
        (
            "vigil_data_disk_free_bytes",
            Kind::Gauge,
            "Bytes available to Vigil on the data directory's file system.",
            p.disk_free_bytes.map(Num::U),
        ),
        (
            "vigil_data_disk_size_bytes",
            Kind::Gauge,
            "Size of the data directory's file system, bytes.",
            p.disk_size_bytes.map(Num::U),
        ),
    ];
    for (name, kind, help, v) in process {
        if let Some(v) = v {
            t.header(name, kind, help);
            t.sample(name, &[], v);
        }
    }
    t.header(
        "vigil_build_info",
        Kind::Gauge,
        "Always 1; the version in a label.",
    );
    t.sample(
        "vigil_build_info",
        &[("version", env!("CARGO_PKG_VERSION").to_owned())],
        Num::U(1),
    );
    t.out
}

/// A metric family's type.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A sample value: counts as integers, measurements as floats.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Num {
    U(u64),
    F(f64),
}

/// The text exposition format 0.0.4, written line by line.
#[derive(Debug, Default)]
pub(crate) struct Text {
    pub out: String,
}

impl Text {
    /// `# HELP` and `# TYPE` of a family; its samples follow.
    pub fn header(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, String)], v: Num) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_num(v));
        self.out.push('\n');
    }

    /// A histogram's `_bucket` lines (cumulative, ending with `+Inf`), `_sum` and `_count`.
    /// `buckets` are per-bucket counts, not cumulative, one more than `bounds` (the last
    /// counts what lies above every bound).
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, String)],
        bounds: &[f64],
        buckets: &[u64],
        sum: f64,
    ) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        let les = bounds
            .iter()
            .map(|b| format_num(Num::F(*b)))
            .chain(std::iter::once("+Inf".to_owned()));
        for (i, le) in les.enumerate() {
            cumulative = cumulative.saturating_add(buckets.get(i).copied().unwrap_or(0));
            let mut l = labels.to_vec();
            l.push(("le", le));
            self.sample(&bucket, &l, Num::U(cumulative));
        }
        self.sample(&format!("{name}_sum"), labels, Num::F(sum));
        self.sample(&format!("{name}_count"), labels, Num::U(cumulative));
    }
}

/// A label value: `\`, `"` and line feed escaped (the format's only escapes).
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A HELP text: `\` and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Go's float syntax as Prometheus parses it: `+Inf`, `-Inf`, `NaN`, else decimal.
fn format_num(v: Num) -> String {
    match v {
        Num::U(u) => u.to_string(),
        Num::F(f) if f.is_nan() => "NaN".to_owned(),
        Num::F(f) if f.is_infinite() && f > 0.0 => "+Inf".to_owned(),
        Num::F(f) if f.is_infinite() => "-Inf".to_owned(),
        Num::F(f) => f.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn counters(camera: &str, stream: &str, state: StreamState) -> StreamCounters {
        StreamCounters {
            camera: camera.to_owned(),
            stream: stream.to_owned(),
            state,
            frames: 10,
            bytes: 2000,
            reconnects: 1,
            last_frame_us: Some(5),
        }
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("two\nlines"), "two\\nlines");
        assert_eq!(escape_help("x\\y\n\"z\""), "x\\\\y\\n\"z\"");
        let mut t = Text::default();
        t.sample(
            "m",
            &[("camera", "po\"rch\\\n".into()), ("stream", "main".into())],
            Num::U(3),
        );
        assert_eq!(t.out, "m{camera=\"po\\\"rch\\\\\\n\",stream=\"main\"} 3\n");
    }

    #[test]
    fn numbers_use_the_formats_spelling() {
        assert_eq!(format_num(Num::U(42)), "42");
        assert_eq!(format_num(Num::F(0.25)), "0.25");
        assert_eq!(format_num(Num::F(1.0)), "1");
        assert_eq!(format_num(Num::F(f64::INFINITY)), "+Inf");
        assert_eq!(format_num(Num::F(f64::NEG_INFINITY)), "-Inf");
        assert_eq!(format_num(Num::F(f64::NAN)), "NaN");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut t = Text::default();
        t.header("h_seconds", Kind::Histogram, "H.");
        t.histogram(
            "h_seconds",
            &[("camera", "a".into())],
            &[0.1, 1.0],
            &[2, 0, 3],
            4.5,
        );
        assert_eq!(
            t.out,
            "# HELP h_seconds H.\n# TYPE h_seconds histogram\n\
             h_seconds_bucket{camera=\"a\",le=\"0.1\"} 2\n\
             h_seconds_bucket{camera=\"a\",le=\"1\"} 2\n\
             h_seconds_bucket{camera=\"a\",le=\"+Inf\"} 5\n\
             h_seconds_sum{camera=\"a\"} 4.5\n\
             h_seconds_count{camera=\"a\"} 5\n"
        );
    }

    #[test]
    fn a_scrape_groups_each_family_and_reports_one_state() {
        let snap = Snapshot {
            streams: vec![
                StreamSample {
                    counters: counters("porch", "main", StreamState::Streaming),
                    last_frame_age_s: Some(0.5),
                    recorded: StreamStatsSnapshot {
                        bytes_written: 7,
                        fragments_written: 1,
                        gaps: 0,
                        write_latency: vigil_recorder::stats::LatencySnapshot {
                            buckets: vec![1; WRITE_LATENCY_BOUNDS_S.len() + 1],
                            sum_seconds: 0.5,
                            count: 13,
                        },
                    },
                },
                StreamSample {
                    counters: counters("yard", "main", StreamState::Offline),
                    last_frame_age_s: None,
                    recorded: StreamStatsSnapshot::default(),
                },
            ],
            cloud: Some(CloudSample {
                backlog_parts: 3,
                backlog_bytes: 300,
            }),
            web: Some(WebSample::default()),
            process: ProcessSample {
                cpu_seconds: Some(1.5),
                ..ProcessSample::default()
            },
        };
        let out = render(&snap);
        assert!(out.contains("vigil_stream_up{camera=\"porch\",stream=\"main\"} 1\n"));
        assert!(out.contains("vigil_stream_up{camera=\"yard\",stream=\"main\"} 0\n"));
        assert!(out
            .contains("vigil_stream_state{camera=\"yard\",stream=\"main\",state=\"offline\"} 1\n"));
        assert!(out.contains(
            "vigil_stream_state{camera=\"yard\",stream=\"main\",state=\"recording\"} 0\n"
        ));
        assert!(out.contains(
            "vigil_stream_write_duration_seconds_bucket{camera=\"porch\",stream=\"main\",le=\"+Inf\"} 13\n"
        ));
        assert!(out.contains("vigil_cloud_backlog_parts 3\n"));
        assert!(out.contains("process_cpu_seconds_total 1.5\n"));
        // No age before the first frame; no figure the platform did not give.
        assert!(!out.contains("last_frame_age_seconds{camera=\"yard\""));
        assert!(!out.contains("process_open_fds"));
        // Every family's samples follow its TYPE line, none elsewhere.
        let mut seen = std::collections::HashSet::new();
        let mut current = String::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap_or_default().to_owned();
                assert!(seen.insert(current.clone()), "{current} twice");
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&current), "{line} outside {current}");
            }
        }
    }

    #[test]
    fn ready_while_every_main_stream_records() {
        assert!(ready(&[]));
        let c = [
            counters("a", "main", StreamState::Streaming),
            counters("b", "main", StreamState::Connecting),
            counters("a", "sub", StreamState::Connecting),
        ];
        assert!(!ready(&c));
        // The sub stream does not count; a camera that died (offline, retrying) does.
        let c = [
            counters("a", "main", StreamState::Streaming),
            counters("b", "main", StreamState::Streaming),
            counters("a", "sub", StreamState::Offline),
        ];
        assert!(ready(&c));
        for dead in [
            StreamState::Offline,
            StreamState::Failed,
            StreamState::Connecting,
        ] {
            let c = [
                counters("a", "main", StreamState::Streaming),
                counters("b", "main", dead),
            ];
            assert!(!ready(&c));
        }
    }

    #[test]
    fn proc_files_parse() {
        let stat = "1234 (vigil (rec) x) S 1 1234 1234 0 -1 4194560 500 0 0 0 \
                    250 50 0 0 20 0 8 0 987654 123456789 2500 18446744073709551615";
        assert_eq!(
            proc_stat_fields(stat),
            Some(ProcStat {
                utime: 250,
                stime: 50,
                starttime: 987654
            })
        );
        assert_eq!(proc_stat_fields("garbage"), None);
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
        assert_eq!(
            vm_rss_bytes("Name:\tvigil\nVmRSS:\t   2048 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(vm_rss_bytes("Name:\tvigil\n"), None);
        // The real ones, on this machine.
        let p = process_sample(std::path::Path::new("/"));
        assert!(p.cpu_seconds.is_some() && p.resident_bytes.is_some_and(|r| r > 0));
        assert!(p.open_fds.is_some_and(|n| n > 0));
        assert!(p.disk_size_bytes.is_some_and(|n| n > 0));
        let start = p.start_time_s.unwrap_or(0.0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start > now - 86_400.0 * 365.0 && start <= now + 1.0,
            "{start}"
        );
    }
}
