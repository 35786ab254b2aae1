//! Live-view benchmark: server CPU per live viewer at 1, 10 and 50 WebSocket viewers of one
//! 640x360 test-pattern camera, in one of two set-ups (`--server`):
//!
//! - `inproc` (default): everything in this process, each part on its own named threads so
//!   that `/proc` tells their CPU apart (per-thread scheduler runtime, [`procstat`]): the camera
//!   (`vigil-cam-main`: render + OpenH264 encode) publishes into a hub; the server
//!   (`vigil-web` threads, a 2-worker tokio runtime) is Vigil's live handler
//!   ([`vigil_web::live::serve_socket`]: fMP4 muxing per viewer, bounded queue, WebSocket)
//!   behind HTTPS (axum-server + rustls, TLS 1.3, as `vigil serve` runs it); the viewers
//!   (`bench-client` threads) are tokio-tungstenite clients over TLS. Only the server threads
//!   count: the camera costs the same with 0 or 50 viewers, and the viewers are browsers.
//! - `demo`: the whole system as a user runs it: `vigil demo` (two cameras, RTSP, NVR
//!   ingest, recording, motion, the web app over HTTPS) as a child process; the bench creates
//!   the admin through the one-time setup link, then N viewers open the real
//!   `/api/cameras/front/live` with the session cookie. The figure is the whole process's CPU
//!   with N viewers minus the same window with none, divided by N.
//!
//! For each viewer count: connect, warm up, then measure CPU over a fixed window. Each viewer
//! records, per fragment, received time − capture time (the capture time travels in the
//! 17-byte header; it is taken before encoding, so it includes the encoder).
//!
//! `--transport webrtc` (with `--server demo`) makes the viewers WebRTC ones instead
//! ([`vigil_bench::whep_viewer`]: str0m over UDP, signalled through the real WHEP route):
//! DTLS-SRTP and RTP packetization per viewer instead of fMP4 and TLS. `--transport both`
//! runs the MSE rounds and the WebRTC rounds against the same demo, one after the other, and
//! prints the ratio. WebRTC latency is not measured here (no capture time is read); the
//! `browser` bench measures it in Chromium.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use futures::StreamExt as _;
use rustls::pki_types::PrivatePkcs8KeyDer;
use tokio_tungstenite::tungstenite::Message;
use vigil_bench::live_client::{self, Target};
use vigil_bench::{children, percentile, procstat, whep_viewer};
use vigil_camera::{Camera, CameraConfig, SourceSpec, StreamConfig};
use vigil_hub::Hub;
use vigil_web::live::{serve_socket, Lookup, HEADER_LEN, KIND_FRAGMENT};

/// Thread name of the server runtime (at most 15 bytes: `/proc/*/comm`).
const SERVER_THREADS: &str = "vigil-web";

#[derive(Parser, Debug)]
#[command(about = "Live view: server CPU per WebSocket viewer of one 640x360 test-pattern camera")]
struct Args {
    /// Viewer counts to measure, comma-separated (at most 200 each).
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    viewers: Vec<usize>,
    /// Seconds of viewing before the window opens.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Measured window in seconds.
    #[arg(long, default_value_t = 15.0)]
    window: f64,
    /// Camera frame rate.
    #[arg(long, default_value_t = 15.0)]
    fps: f64,
    /// Camera bit rate, bits per second (inproc).
    #[arg(long, default_value_t = 1_000_000)]
    bitrate: u32,
    /// `inproc` (the live handler alone, server threads measured) or `demo` (`vigil demo`
    /// as a child process, the whole process measured against a no-viewer baseline).
    #[arg(long, default_value = "inproc")]
    server: String,
    /// The vigil binary for `--server demo` (default: next to this binary).
    #[arg(long)]
    vigil: Option<std::path::PathBuf>,
    /// `mse` (WebSocket viewers), `webrtc` (WHEP viewers, `--server demo` only) or `both`.
    #[arg(long, default_value = "mse")]
    transport: String,
}

/// How the viewers of a round watch.
#[derive(Clone)]
enum Mode {
    /// The live WebSocket (fMP4, as the MSE player).
    Mse,
    /// WHEP: this path, with the session's CSRF token.
    Webrtc { path: String, csrf: String },
}

/// What all viewers of one round saw.
#[derive(Default)]
struct Seen {
    fragments: AtomicU64,
    bytes: AtomicU64,
    /// Latency capture → received, ms, in the window.
    latencies: Mutex<Vec<f64>>,
}

/// Figures of one round.
struct Round {
    viewers: usize,
    server_cpu_s: f64,
    window_s: f64,
    fps_per_viewer: f64,
    mbit_s_total: f64,
    p50_ms: f64,
    p95_ms: f64,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// CPU seconds of this process's server threads between two samples.
fn server_threads_cpu(before: &procstat::ProcSample, after: &procstat::ProcSample) -> f64 {
    let names = children::thread_names(std::process::id());
    after
        .threads
        .iter()
        .filter(|(tid, _)| {
            names
                .get(tid)
                .is_some_and(|n| n.starts_with(SERVER_THREADS))
        })
        .map(|(tid, t)| t - before.threads.get(tid).copied().unwrap_or(0.0))
        .sum()
}

/// CPU seconds of the whole process between two samples.
fn process_cpu(before: &procstat::ProcSample, after: &procstat::ProcSample) -> f64 {
    procstat::cpu_between(before, after).cpu_s
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Starts the HTTPS live server for `hub` on the server runtime.
fn start_inproc_server(rt: &tokio::runtime::Runtime, hub: Hub) -> anyhow::Result<Target> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let der = cert.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key.into())?;
    let app = Router::new().route(
        "/live",
        get(move |ws: WebSocketUpgrade| {
            let hub = hub.clone();
            async move { ws.on_upgrade(move |s| serve_socket(s, move || Lookup::Hub(hub.clone()))) }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(server_cfg));
    let server = axum_server::from_tcp_rustls(listener, tls);
    rt.spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            eprintln!("server: {e}");
        }
    });
    Ok(Target {
        addr,
        tls: vigil_testkit::tls::pinned_client_config(&live_client::fingerprint(der.as_ref())),
        path: "/live".into(),
        headers: Vec::new(),
    })
}

/// One viewer: reads until `stop`, counting fragments and (inside the window) latencies.
async fn viewer(
    target: Target,
    seen: Arc<Seen>,
    window_open: Arc<std::sync::atomic::AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut ws = live_client::open_live(&target).await?;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.changed() => break,
        };
        let Some(msg) = msg else {
            bail!("server closed the socket")
        };
        if let Message::Binary(b) = msg? {
            if b.first() != Some(&KIND_FRAGMENT) || b.len() < HEADER_LEN {
                continue;
            }
            if window_open.load(Ordering::Relaxed) {
                let capture = i64::from_be_bytes(b[1..9].try_into()?);
                seen.fragments.fetch_add(1, Ordering::Relaxed);
                seen.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                let ms = (now_us() - capture) as f64 / 1000.0;
                if let Ok(mut l) = seen.latencies.lock() {
                    l.push(ms);
                }
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// Runs `n` viewers (none: a baseline window) and measures `cpu` of process `pid`.
fn measure(
    clients: &tokio::runtime::Runtime,
    target: &Target,
    n: usize,
    args: &Args,
    mode: &Mode,
    pid: u32,
    cpu: fn(&procstat::ProcSample, &procstat::ProcSample) -> f64,
) -> anyhow::Result<Round> {
    let seen = Arc::new(Seen::default());
    let received = Arc::new(whep_viewer::Received::default());
    let window_open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>> = (0..n)
        .map(|_| match mode {
            Mode::Mse => clients.spawn(viewer(
                target.clone(),
                seen.clone(),
                window_open.clone(),
                stop_rx.clone(),
            )),
            Mode::Webrtc { path, csrf } => {
                let run = whep_viewer::run(
                    target.clone(),
                    path.clone(),
                    csrf.clone(),
                    received.clone(),
                    window_open.clone(),
                    stop_rx.clone(),
                );
                clients.spawn(async move { run.await.map_err(anyhow::Error::from) })
            }
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let before = procstat::sample(pid)?;
    let t0 = Instant::now();
    window_open.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(args.window));
    window_open.store(false, Ordering::Relaxed);
    let after = procstat::sample(pid)?;
    let window_s = t0.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);
    for t in tasks {
        clients
            .block_on(t)
            .context("viewer task")?
            .context("viewer")?;
    }
    let mut lat = seen.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    let frames =
        (seen.fragments.load(Ordering::Relaxed) + received.frames.load(Ordering::Relaxed)) as f64;
    let bytes = seen.bytes.load(Ordering::Relaxed) + received.bytes.load(Ordering::Relaxed);
    Ok(Round {
        viewers: n,
        server_cpu_s: cpu(&before, &after),
        window_s,
        fps_per_viewer: frames / window_s / n.max(1) as f64,
        mbit_s_total: bytes as f64 * 8.0 / window_s / 1e6,
        p50_ms: percentile(&lat, 50.0).unwrap_or(f64::NAN),
        p95_ms: percentile(&lat, 95.0).unwrap_or(f64::NAN),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.viewers.iter().any(|&n| n == 0 || n > 200) {
        bail!("--viewers must be between 1 and 200");
    }
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    let mut camera = None;
    let mut demo = None;
    let (target, pid, cpu, what): (Target, u32, fn(&_, &_) -> f64, String) = match args
        .server
        .as_str()
    {
        "inproc" => {
            let hub = Hub::new("bench/main", 128);
            let cfg = CameraConfig {
                source: SourceSpec::TestPattern,
                main: StreamConfig {
                    width: 640,
                    height: 360,
                    fps: args.fps,
                    bitrate_bps: args.bitrate,
                    keyint: (args.fps * 2.0).round() as u32,
                },
                sub: None,
            };
            camera = Some(Camera::start(cfg, hub.clone(), None)?);
            let target = start_inproc_server(&server_rt, hub)?;
            let what = format!(
                    "in-process live handler, one 640x360 {} fps test-pattern camera, WebSocket over TLS (server threads only)",
                    args.fps
                );
            (
                target,
                std::process::id(),
                server_threads_cpu as fn(&_, &_) -> f64,
                what,
            )
        }
        "demo" => {
            let d = live_client::start_demo(&client_rt, args.vigil.clone())?;
            let target = d.target.clone();
            let pid = d.child.pid();
            demo = Some(d);
            let what = "`vigil demo` (camera front: 640x360 15 fps), whole process, \
                            minus the no-viewer window"
                .to_owned();
            (target, pid, process_cpu as fn(&_, &_) -> f64, what)
        }
        other => bail!("--server must be inproc or demo, not {other:?}"),
    };
    let mut modes: Vec<(&str, Mode)> = Vec::new();
    for t in match args.transport.as_str() {
        "both" => vec!["mse", "webrtc"],
        "mse" => vec!["mse"],
        "webrtc" => vec!["webrtc"],
        other => bail!("--transport must be mse, webrtc or both, not {other:?}"),
    } {
        if t == "mse" {
            modes.push(("MSE (WebSocket, fMP4 over TLS)", Mode::Mse));
        } else {
            if demo.is_none() {
                bail!("--transport webrtc needs --server demo (the WHEP route of the web app)");
            }
            let csrf = client_rt.block_on(whep_viewer::csrf_token(&target))?;
            modes.push((
                "WebRTC (WHEP, DTLS-SRTP over UDP)",
                Mode::Webrtc {
                    path: "/api/cameras/front/whep?stream=main".to_owned(),
                    csrf,
                },
            ));
        }
    }
    eprintln!(
        "live bench: {what}; server on {}; warm-up {} s, window {} s",
        target.addr, args.warmup, args.window
    );
    // The same window with no viewer: what the viewers' cost is measured above.
    let baseline = measure(&client_rt, &target, 0, &args, &Mode::Mse, pid, cpu)?;
    let base_pct = baseline.server_cpu_s / baseline.window_s * 100.0;
    let mut results = Vec::new();
    for (label, mode) in &modes {
        let mut rounds = Vec::new();
        for &n in &args.viewers {
            eprintln!("{label}: {n} viewers ...");
            rounds.push(measure(&client_rt, &target, n, &args, mode, pid, cpu)?);
        }
        results.push((*label, rounds));
    }
    if let Some(mut c) = camera {
        c.stop();
    }
    drop(demo);

    println!();
    println!("Live view: {what}; no viewer: {base_pct:.2} % of a core");
    for (label, rounds) in &results {
        println!();
        println!("{label}");
        print_rounds(rounds, base_pct);
    }
    if let [(_, mse), (_, webrtc)] = results.as_slice() {
        println!();
        println!("WebRTC / MSE server CPU per viewer (above idle):");
        for (m, w) in mse.iter().zip(webrtc) {
            let per =
                |r: &Round| (r.server_cpu_s / r.window_s * 100.0 - base_pct) / r.viewers as f64;
            println!("{:>7} viewers: {:.2}x", m.viewers, per(w) / per(m));
        }
    }
    Ok(())
}

/// A latency for the table; `-` where none was measured (WebRTC viewers).
fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else {
        format!("{v:.1}")
    }
}

fn print_rounds(rounds: &[Round], base_pct: f64) {
    println!(
        "{:>7} | {:>12} | {:>14} | {:>18} | {:>10} | {:>10} | {:>10} | {:>10}",
        "viewers",
        "CPU %core",
        "above idle %",
        "per viewer %core",
        "fps/viewer",
        "Mbit/s out",
        "p50 ms",
        "p95 ms"
    );
    for r in rounds {
        let pct = r.server_cpu_s / r.window_s * 100.0;
        let above = pct - base_pct;
        println!(
            "{:>7} | {:>12.2} | {:>14.2} | {:>18.3} | {:>10.1} | {:>10.1} | {:>10} | {:>10}",
            r.viewers,
            pct,
            above,
            above / r.viewers as f64,
            r.fps_per_viewer,
            r.mbit_s_total,
            ms(r.p50_ms),
            ms(r.p95_ms)
        );
    }
}
