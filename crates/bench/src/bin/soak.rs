//! Soak benchmark (issue 18, goal 4: "memory that stays flat"): runs the whole system for a
//! long time, with live viewers coming and going, and reports whether the server's memory
//! grows.
//!
//! Two set-ups (`--server`):
//!
//! - `serve` (default): `--cameras N` (default 16) cameras `cam001`… in one `vigil serve`, all
//!   playing the same mount of one GStreamer RTSP server (`scripts/gst-rtsp-server.py`, shared
//!   media) that loops an H.264 file (`--file`, default: a 20 s 1280x720 30 fps ~4 Mbit/s file
//!   made with ffmpeg, as the `record` bench serves); the web app on 127.0.0.1, motion
//!   detection on the first `--motion-cameras` cameras (default 1; decoding all 16 would take
//!   more than the 2 cores). Viewers watch `cam001`'s main stream.
//! - `demo`: `vigil demo` (two test-pattern cameras, RTSP, ingest, recording, motion on `yard`,
//!   the web app); viewers watch `front`'s main stream.
//!
//! The bench creates the admin through the printed setup link, then every `--every-secs`
//! (default 60) `--viewers` (default 2) viewers open the live WebSocket
//! (`/api/cameras/NAME/live?stream=main`, TLS pinned to the printed fingerprint, the session
//! cookie), read and discard every message for `--view-secs` (default 20) and close it.
//!
//! Every `--sample-secs` (default 30) it samples the vigil process from `/proc`: VmRSS,
//! RssAnon, RssFile and Threads (`status`), Pss (`smaps_rollup`) and the open descriptors
//! (`fd/`), and prints one line (minutes since the soak started, i.e. since the server was up
//! and the admin created; each value; MB are 2^20 bytes), also to `--csv FILE`. PSS shares
//! the binary's pages with any other process mapping it, so it drops while another `vigil`
//! runs beside the soak; RSS does not. After `--duration` minutes (default 120) it prints,
//! over the samples from `--warmup` minutes on (default 10), the least-squares slope of each
//! figure per hour and the line `goal: RSS growth < 1 MB/h after warm-up: met|NOT met`.
//!
//! ```sh
//! cargo build --release -p vigil -p vigil-bench
//! target/release/soak                                 # 2 h, 16 cameras
//! target/release/soak --server demo --duration 240 --csv soak.csv
//! ```
//!
//! Needs `target/release/vigil`; `serve` also needs ffmpeg (unless `--file`) and the system
//! Python with GStreamer's RTSP server (see docs/benchmarks.md). Everything listens on
//! 127.0.0.1 only and is stopped when the bench ends, also on error.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use futures::StreamExt as _;
use vigil_bench::children::{self, ChildGuard};
use vigil_bench::live_client::{self, Target};
use vigil_bench::servers::{self, ServerGuard};
use vigil_bench::BenchError;

#[derive(Parser, Debug)]
#[command(about = "Soak: memory, threads and descriptors of Vigil over hours, with live viewers")]
struct Args {
    /// `serve` (N cameras from one GStreamer RTSP server) or `demo` (`vigil demo`).
    #[arg(long, default_value = "serve")]
    server: String,
    /// Cameras of `vigil serve` (1 to 64).
    #[arg(long, default_value_t = 16)]
    cameras: usize,
    /// Cameras (the first ones) with motion detection, `serve` only.
    #[arg(long, default_value_t = 1)]
    motion_cameras: usize,
    /// Viewers that open the live WebSocket together (0 to 50).
    #[arg(long, default_value_t = 2)]
    viewers: usize,
    /// Seconds each viewer watches.
    #[arg(long, default_value_t = 20.0)]
    view_secs: f64,
    /// Seconds between the starts of two rounds of viewers.
    #[arg(long, default_value_t = 60.0)]
    every_secs: f64,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 30.0)]
    sample_secs: f64,
    /// Minutes of the whole soak, warm-up included.
    #[arg(long, default_value_t = 120.0)]
    duration: f64,
    /// Minutes at the start left out of the slopes.
    #[arg(long, default_value_t = 10.0)]
    warmup: f64,
    /// Also write the samples to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// H.264 MP4 for the GStreamer server (`serve`); default: made with ffmpeg.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The vigil binary (default: next to this binary).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// The GStreamer peer script.
    #[arg(long)]
    gst_script: Option<PathBuf>,
    /// Python with python3-gi (the system one).
    #[arg(long, default_value = "/usr/bin/python3")]
    python: PathBuf,
    /// Keep the temporary directory (recordings, logs) and print its path.
    #[arg(long)]
    keep: bool,
}

impl Args {
    fn check(&self) -> anyhow::Result<()> {
        if !(1..=64).contains(&self.cameras) || self.motion_cameras > self.cameras {
            bail!("--cameras must be 1 to 64 and --motion-cameras at most --cameras");
        }
        if self.viewers > 50 {
            bail!("--viewers must be at most 50");
        }
        if !(self.view_secs > 0.0 && self.every_secs > 0.0 && self.sample_secs >= 1.0) {
            bail!("--view-secs and --every-secs must be above 0, --sample-secs at least 1");
        }
        if !(self.warmup >= 0.0
            && self.duration > self.warmup
            && self.duration <= 7.0 * 24.0 * 60.0)
        {
            bail!("--duration must be above --warmup (>= 0) and at most a week");
        }
        if (self.duration - self.warmup) * 60.0 < 2.0 * self.sample_secs {
            bail!("fewer than two samples after the warm-up: lower --sample-secs or --warmup");
        }
        Ok(())
    }
}

/// SIGTERM to SIGKILL for `vigil serve` (closing one file per camera).
const STOP_GRACE: Duration = Duration::from_secs(30);

/// The system under test, running; dropping it stops vigil first, then GStreamer, then removes
/// the directory (fields drop in this order).
struct System {
    vigil: ChildGuard,
    /// Vigil's stdout after start-up (`recording …`, `offline …`).
    lines: mpsc::Receiver<String>,
    target: Target,
    /// What runs, for the report.
    what: String,
    /// Vigil's stderr.
    log: PathBuf,
    _gst: Option<ServerGuard>,
    dir: tempfile::TempDir,
}

fn camera_name(i: usize) -> String {
    format!("cam{i:03}")
}

/// `vigil demo`, set up, viewers on `front`.
fn start_demo(rt: &tokio::runtime::Runtime, args: &Args) -> anyhow::Result<System> {
    let demo = live_client::start_demo(rt, args.vigil.clone()).context("starting vigil demo")?;
    let log = demo.dir.path().join("demo.log");
    Ok(System {
        vigil: demo.child,
        lines: demo.lines,
        target: demo.target,
        what: "`vigil demo` (cameras front and yard, 640x360 15 fps, recording, motion on yard), \
               viewers on front/main"
            .to_owned(),
        log,
        _gst: None,
        dir: demo.dir,
    })
}

/// A 20 s 1280x720 30 fps ~4 Mbit/s H.264 file (x264 veryfast, GOP 60, no B-frames).
/// `vigil serve`'s configuration: N cameras on `url`, the web app on 127.0.0.1, motion on the
/// first `motion` cameras.
fn serve_config(n: usize, motion: usize, url: &str) -> String {
    let mut toml = String::from("data_dir = \"data\"\n\n[web]\nlisten = \"127.0.0.1:0\"\n");
    for i in 1..=n {
        // Writing to a String cannot fail.
        let _ = write!(
            toml,
            "\n[[camera]]\nname = \"{}\"\nurl = \"{url}\"\ntransport = \"tcp\"\n\
             [camera.motion]\nenabled = {}\n",
            camera_name(i),
            i <= motion
        );
    }
    toml
}

/// GStreamer serving the file, `vigil serve` recording N cameras from it, set up, viewers on
/// `cam001`.
fn start_serve(rt: &tokio::runtime::Runtime, args: &Args) -> anyhow::Result<System> {
    let dir = tempfile::Builder::new()
        .prefix("vigil-soak-")
        .disable_cleanup(args.keep)
        .tempdir()
        .context("creating a temporary directory")?;
    let file = match &args.file {
        Some(f) => f.clone(),
        None => servers::make_test_file(dir.path(), "soak-720p30-4M.mp4")?,
    };
    let gst = servers::spawn_gst_file(
        &args.python,
        args.gst_script.as_deref(),
        &file,
        &[],
        &dir.path().join("gst.log"),
    )?;
    let url = gst.main_url();
    eprintln!("gst: pid {}, serving {url}", gst.pid());

    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        serve_config(args.cameras, args.motion_cameras, &url),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let mut cmd = Command::new(servers::vigil_binary(args.vigil.clone())?);
    cmd.arg("serve").arg("--config").arg(&config);
    let log = dir.path().join("vigil.log");
    let (vigil, lines) = ChildGuard::spawn_with_lines(cmd, &log, STOP_GRACE)?;
    let wanted: Vec<String> = (1..=args.cameras)
        .map(|i| format!("recording {}/main", camera_name(i)))
        .collect();
    let web = live_client::await_web_app(
        &lines,
        &wanted,
        Duration::from_secs(30 + args.cameras as u64),
        &log,
    )
    .context("vigil serve did not come up")?;
    let (Some(addr), Some(sha), Some(token)) = (web.addr, web.sha, web.token) else {
        bail!("vigil serve printed no address, fingerprint or setup link");
    };
    let mut target = Target::web_app(addr, &sha, live_client::live_path(&camera_name(1)));
    rt.block_on(live_client::create_admin(
        &mut target,
        &token,
        "bench",
        &servers::run_password(),
    ))
    .context("creating the admin")?;
    Ok(System {
        vigil,
        lines,
        target,
        what: format!(
            "`vigil serve`, {} cameras from one GStreamer RTSP server ({}), motion on {}, \
             viewers on {}/main",
            args.cameras,
            file.display(),
            args.motion_cameras,
            camera_name(1)
        ),
        log,
        _gst: Some(gst),
        dir,
    })
}

/// One sample of the vigil process.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    /// Minutes since the soak started.
    minute: f64,
    rss_mb: f64,
    pss_mb: f64,
    anon_mb: f64,
    file_mb: f64,
    threads: u64,
    fds: u64,
    /// Viewers connected at the time.
    viewers: u64,
}

/// One figure of a sample.
type Figure = fn(&Sample) -> f64;

/// The figures the report gives a slope of: name, value, decimals shown.
const FIGURES: [(&str, Figure, usize); 6] = [
    ("RSS MB", |s| s.rss_mb, 1),
    ("PSS MB", |s| s.pss_mb, 1),
    ("RssAnon MB", |s| s.anon_mb, 1),
    ("RssFile MB", |s| s.file_mb, 1),
    ("threads", |s| s.threads as f64, 0),
    ("fds", |s| s.fds as f64, 0),
];

/// Parses a `NAME:   1234` line of a `/proc` file (e.g. `Threads:`).
fn parse_count_field(text: &str, name: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
    rest.split_ascii_whitespace().next()?.parse().ok()
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Samples process `pid` from `/proc`.
fn sample(pid: u32, minute: f64, viewers: u64) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .with_context(|| format!("reading /proc/{pid}/smaps_rollup"))?;
    let kb = |text: &str, name: &str| {
        children::parse_kb_field(text, name).with_context(|| format!("no {name} in /proc/{pid}"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("listing /proc/{pid}/fd"))?
        .count() as u64;
    Ok(Sample {
        minute,
        rss_mb: mb(kb(&status, "VmRSS:")?),
        pss_mb: mb(kb(&rollup, "Pss:")?),
        anon_mb: mb(kb(&status, "RssAnon:")?),
        file_mb: mb(kb(&status, "RssFile:")?),
        threads: parse_count_field(&status, "Threads:")
            .with_context(|| format!("no Threads: in /proc/{pid}/status"))?,
        fds,
        viewers,
    })
}

/// Least-squares slope of y over x; `None` with fewer than two points or all x equal.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Slope per hour of `value` over the samples from minute `warmup` on.
fn slope_per_hour(samples: &[Sample], warmup: f64, value: Figure) -> Option<f64> {
    let points: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.minute >= warmup)
        .map(|s| (s.minute / 60.0, value(s)))
        .collect();
    slope(&points)
}

/// The goal line: met when the RSS slope after warm-up is known and below 1 MB/h.
fn goal_line(rss_slope: Option<f64>) -> String {
    let verdict = match rss_slope {
        Some(s) if s < 1.0 => "met",
        Some(_) => "NOT met",
        None => "NOT met (fewer than two samples after warm-up)",
    };
    format!("goal: RSS growth < 1 MB/h after warm-up: {verdict}")
}

const HEADER: &str = "    min   RSS MB   PSS MB  anon MB  file MB  threads    fds  viewers";
const CSV_HEADER: &str = "minute,rss_mb,pss_mb,rss_anon_mb,rss_file_mb,threads,fds,viewers";

fn sample_line(s: &Sample) -> String {
    format!(
        "{:>7.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8} {:>6} {:>8}",
        s.minute, s.rss_mb, s.pss_mb, s.anon_mb, s.file_mb, s.threads, s.fds, s.viewers
    )
}

fn csv_line(s: &Sample) -> String {
    format!(
        "{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{}",
        s.minute, s.rss_mb, s.pss_mb, s.anon_mb, s.file_mb, s.threads, s.fds, s.viewers
    )
}

/// What all viewer sessions saw.
#[derive(Default)]
struct ViewStats {
    ok: AtomicU64,
    failed: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
    /// Connected now.
    live: AtomicU64,
}

/// One viewer: opens the live socket, reads and discards messages for `secs` (or until
/// `stop`), closes it.
async fn view(
    target: Target,
    secs: f64,
    stats: Arc<ViewStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BenchError> {
    let mut ws = live_client::open_live(&target).await?;
    stats.live.fetch_add(1, Ordering::Relaxed);
    let end = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let result = loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = tokio::time::sleep_until(end) => break Ok(()),
            _ = stop.changed() => break Ok(()),
        };
        match msg {
            None => break Err(BenchError::Client("server closed the live socket".into())),
            Some(Err(e)) => break Err(BenchError::Client(format!("live socket: {e}"))),
            Some(Ok(m)) => {
                stats.messages.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(m.len() as u64, Ordering::Relaxed);
            }
        }
    };
    stats.live.fetch_sub(1, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    result
}

/// The last `n` lines of a log, for an error message.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.check()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let mut sys = match args.server.as_str() {
        "serve" => start_serve(&rt, &args)?,
        "demo" => start_demo(&rt, &args)?,
        other => bail!("--server must be serve or demo, not {other:?}"),
    };
    let pid = sys.vigil.pid();
    let mut csv = match &args.csv {
        Some(p) => {
            let mut f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            writeln!(f, "{CSV_HEADER}").with_context(|| format!("writing {}", p.display()))?;
            Some(f)
        }
        None => None,
    };
    eprintln!(
        "soak: {}; pid {pid}, web app on {}; {} viewers x {} s every {} s; sample every {} s \
         for {} min, warm-up {} min{}",
        sys.what,
        sys.target.addr,
        args.viewers,
        args.view_secs,
        args.every_secs,
        args.sample_secs,
        args.duration,
        args.warmup,
        if args.keep {
            format!("; keeping {}", sys.dir.path().display())
        } else {
            String::new()
        }
    );
    println!("{HEADER}");

    let stats = Arc::new(ViewStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut sessions = Vec::new();
    let mut samples = Vec::new();
    let mut offline = 0usize;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration * 60.0);
    let at = |secs: f64, k: u64| start + Duration::from_secs_f64(secs * k as f64);
    let (mut next_sample, mut next_round) = (0u64, 0u64);
    let outcome = loop {
        let sample_at = at(args.sample_secs, next_sample);
        if sample_at > end {
            break Ok(());
        }
        let round_at = at(args.every_secs, next_round);
        let now = Instant::now();
        if args.viewers > 0 && round_at < end && now >= round_at {
            for _ in 0..args.viewers {
                let (target, stats, stop) = (sys.target.clone(), stats.clone(), stop_rx.clone());
                let secs = args.view_secs;
                sessions.push(rt.spawn(async move {
                    match view(target, secs, stats.clone(), stop).await {
                        Ok(()) => {
                            stats.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if stats.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("viewer: {e}");
                            }
                        }
                    }
                }));
            }
            sessions.retain(|s| !s.is_finished());
            next_round += 1;
            continue;
        }
        if now >= sample_at {
            if let Some(status) = sys.vigil.exited() {
                break Err(anyhow::anyhow!(
                    "vigil exited during the soak ({status}); last lines of {}:\n{}",
                    sys.log.display(),
                    log_tail(&sys.log, 20)
                ));
            }
            let minute = start.elapsed().as_secs_f64() / 60.0;
            for line in sys.lines.try_iter() {
                if line.starts_with("offline ") {
                    offline += 1;
                    eprintln!("{minute:.1} min: {line}");
                }
            }
            let s = match sample(pid, minute, stats.live.load(Ordering::Relaxed)) {
                Ok(s) => s,
                Err(e) => break Err(e),
            };
            println!("{}", sample_line(&s));
            if let (Some(f), Some(p)) = (csv.as_mut(), &args.csv) {
                if let Err(e) = writeln!(f, "{}", csv_line(&s)) {
                    break Err(anyhow::Error::new(e).context(format!("writing {}", p.display())));
                }
            }
            samples.push(s);
            next_sample += 1;
            continue;
        }
        let wake = if args.viewers > 0 && round_at < end {
            sample_at.min(round_at)
        } else {
            sample_at
        };
        std::thread::sleep(wake.saturating_duration_since(now));
    };
    let _ = stop_tx.send(true);
    for s in sessions {
        let _ = rt.block_on(s);
    }
    outcome?;

    let after: Vec<&Sample> = samples.iter().filter(|s| s.minute >= args.warmup).collect();
    println!();
    println!("soak: {}", sys.what);
    println!(
        "{} viewers x {} s every {} s: {} sessions ok, {} failed, {} messages, {:.1} MB received; \
         {offline} `offline` lines from vigil",
        args.viewers,
        args.view_secs,
        args.every_secs,
        stats.ok.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.messages.load(Ordering::Relaxed),
        mb(stats.bytes.load(Ordering::Relaxed))
    );
    println!(
        "{:.1} min, {} samples, {} from minute {} on (after warm-up):",
        args.duration,
        samples.len(),
        after.len(),
        args.warmup
    );
    println!(
        "{:>12} {:>9} {:>9} {:>9} {:>9} {:>12}",
        "", "first", "last", "min", "max", "slope /h"
    );
    for (name, value, d) in FIGURES {
        let vals: Vec<f64> = after.iter().map(|s| value(s)).collect();
        let first = vals.first().copied().unwrap_or(f64::NAN);
        let last = vals.last().copied().unwrap_or(f64::NAN);
        let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let slope = slope_per_hour(&samples, args.warmup, value)
            .map_or_else(|| "-".to_owned(), |s| format!("{s:+.3}"));
        println!("{name:>12} {first:>9.d$} {last:>9.d$} {min:>9.d$} {max:>9.d$} {slope:>12}");
    }
    let rss_slope = slope_per_hour(&samples, args.warmup, |s| s.rss_mb);
    let anon_slope = slope_per_hour(&samples, args.warmup, |s| s.anon_mb);
    println!(
        "RSS slope after warm-up: {} MB/h; RssAnon slope: {} MB/h",
        rss_slope.map_or_else(|| "-".to_owned(), |s| format!("{s:+.3}")),
        anon_slope.map_or_else(|| "-".to_owned(), |s| format!("{s:+.3}"))
    );
    println!("{}", goal_line(rss_slope));
    if args.keep {
        eprintln!("kept {}", sys.dir.path().display());
    }
    drop(sys);
    if args.viewers > 0 && stats.ok.load(Ordering::Relaxed) == 0 {
        bail!("no viewer session succeeded: the soak ran without live viewers");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 3.0 + 0.5 * f64::from(i)))
            .collect();
        assert!((slope(&line).unwrap() - 0.5).abs() < 1e-12);
        // Symmetric noise around a flat line: no slope.
        let flat = [
            (0.0, 10.0),
            (1.0, 12.0),
            (2.0, 8.0),
            (3.0, 8.0),
            (4.0, 12.0),
        ];
        assert!(slope(&flat).unwrap().abs() < 1e-12);
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[]), None);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 5.0)]), None);
    }

    #[test]
    fn slope_per_hour_skips_warm_up() {
        let s = |minute: f64, rss_mb: f64| Sample {
            minute,
            rss_mb,
            pss_mb: 0.0,
            anon_mb: 0.0,
            file_mb: 0.0,
            threads: 0,
            fds: 0,
            viewers: 0,
        };
        // Grows 50 MB in the first 10 min, then 1 MB per 30 min.
        let samples = [
            s(0.0, 10.0),
            s(5.0, 40.0),
            s(10.0, 60.0),
            s(40.0, 61.0),
            s(70.0, 62.0),
        ];
        let per_hour = slope_per_hour(&samples, 10.0, |s| s.rss_mb).unwrap();
        assert!((per_hour - 2.0).abs() < 1e-9, "{per_hour}");
        assert_eq!(slope_per_hour(&samples, 60.0, |s| s.rss_mb), None);
        assert_eq!(
            goal_line(Some(per_hour)),
            "goal: RSS growth < 1 MB/h after warm-up: NOT met"
        );
        assert_eq!(
            goal_line(Some(-0.2)),
            "goal: RSS growth < 1 MB/h after warm-up: met"
        );
        assert!(goal_line(None).contains("NOT met"));
    }

    #[test]
    fn count_fields() {
        let status = "Name:\tvigil\nThreads:\t23\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_count_field(status, "Threads:"), Some(23));
        assert_eq!(parse_count_field(status, "Missing:"), None);
        assert_eq!(parse_count_field("Threads: x\n", "Threads:"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id(), 1.5, 2).unwrap();
        assert!(s.rss_mb > 0.0 && s.threads >= 1 && s.fds >= 3);
        assert_eq!(s.viewers, 2);
        assert_eq!(
            csv_line(&s).split(',').count(),
            CSV_HEADER.split(',').count()
        );
    }

    #[test]
    fn config_has_every_camera_and_the_web_app() {
        let toml = serve_config(3, 1, "rtsp://127.0.0.1:5554/main");
        assert!(toml.contains("listen = \"127.0.0.1:0\""));
        assert_eq!(toml.matches("[[camera]]").count(), 3);
        assert!(toml.contains("name = \"cam001\"") && toml.contains("name = \"cam003\""));
        assert_eq!(toml.matches("enabled = true").count(), 1);
    }
}
