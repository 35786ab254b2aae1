//! Live-view benchmark: server CPU per live viewer at 1, 10 and 50 WebSocket viewers of one
//! 640x360 test-pattern camera.
//!
//! Everything runs in this process, each part on its own named threads so that `/proc` tells
//! their CPU apart (per-thread scheduler runtime, [`procstat`]):
//! - the camera (`vigil-cam-main`: render + OpenH264 encode) publishes into a hub;
//! - the server (`vigil-web` threads, a 2-worker tokio runtime) is Vigil's live handler
//!   ([`vigil_web::live::serve_socket`]: fMP4 muxing per viewer, bounded queue, WebSocket)
//!   behind HTTPS (axum-server + rustls, TLS 1.3, as `vigil serve` runs it);
//! - the viewers (`bench-client` threads) are tokio-tungstenite clients over TLS that read
//!   every message and record each fragment's latency from its capture time.
//!
//! For each viewer count: connect, warm up, then measure the server threads' CPU over a fixed
//! window. Only the server's threads count: the camera costs the same with 0 or 50 viewers,
//! and the clients would be in browsers. The figure excludes what the real server does for
//! every request besides (the session lookup, once per connection).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use futures::StreamExt as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_tungstenite::tungstenite::Message;
use vigil_bench::{children, percentile, procstat};
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
    /// Camera bit rate, bits per second.
    #[arg(long, default_value_t = 1_000_000)]
    bitrate: u32,
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
fn server_cpu(before: &procstat::ProcSample, after: &procstat::ProcSample) -> f64 {
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

/// Trusts exactly the server's self-signed certificate (pinned by its bytes).
#[derive(Debug)]
struct Pinned {
    der: CertificateDer<'static>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Starts the HTTPS live server for `hub` on the server runtime; returns its address and the
/// client TLS configuration that trusts it.
fn start_server(
    rt: &tokio::runtime::Runtime,
    hub: Hub,
) -> anyhow::Result<(SocketAddr, Arc<rustls::ClientConfig>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let der = cert.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key.into())?;
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            der,
            algs: provider.signature_verification_algorithms,
        }))
        .with_no_client_auth();
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
    Ok((addr, Arc::new(client_cfg)))
}

/// One viewer: reads until `stop`, counting fragments and (inside the window) latencies.
async fn viewer(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    seen: Arc<Seen>,
    window_open: Arc<std::sync::atomic::AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost")?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/live", stream).await?;
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

fn measure(
    clients: &tokio::runtime::Runtime,
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    n: usize,
    args: &Args,
) -> anyhow::Result<Round> {
    let seen = Arc::new(Seen::default());
    let window_open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            clients.spawn(viewer(
                addr,
                tls.clone(),
                seen.clone(),
                window_open.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let pid = std::process::id();
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
    let frames = seen.fragments.load(Ordering::Relaxed) as f64;
    Ok(Round {
        viewers: n,
        server_cpu_s: server_cpu(&before, &after),
        window_s,
        fps_per_viewer: frames / window_s / n as f64,
        mbit_s_total: seen.bytes.load(Ordering::Relaxed) as f64 * 8.0 / window_s / 1e6,
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
    let mut camera = Camera::start(cfg, hub.clone(), None)?;
    let (addr, tls) = start_server(&server_rt, hub)?;
    eprintln!(
        "live bench: 640x360 at {} fps, {} kbit/s; server on {addr}; warm-up {} s, window {} s",
        args.fps,
        args.bitrate / 1000,
        args.warmup,
        args.window
    );
    // Idle server (the hub has no viewer): what the figures are measured above.
    let before = procstat::sample(std::process::id())?;
    std::thread::sleep(Duration::from_secs(2));
    let after = procstat::sample(std::process::id())?;
    let idle_pct = server_cpu(&before, &after) / 2.0 * 100.0;

    let mut rounds = Vec::new();
    for &n in &args.viewers {
        eprintln!("{n} viewers ...");
        rounds.push(measure(&client_rt, addr, &tls, n, &args)?);
    }
    camera.stop();

    println!();
    println!(
        "Live view, one 640x360 {} fps test-pattern camera, WebSocket over TLS (server threads only; idle {idle_pct:.2} % of a core)",
        args.fps
    );
    println!(
        "{:>7} | {:>16} | {:>18} | {:>13} | {:>10} | {:>11} | {:>11}",
        "viewers",
        "server CPU %core",
        "per viewer %core",
        "fps/viewer",
        "Mbit/s out",
        "lat p50 ms",
        "lat p95 ms"
    );
    for r in &rounds {
        let pct = r.server_cpu_s / r.window_s * 100.0;
        println!(
            "{:>7} | {:>16.2} | {:>18.3} | {:>13.1} | {:>10.1} | {:>11.1} | {:>11.1}",
            r.viewers,
            pct,
            pct / r.viewers as f64,
            r.fps_per_viewer,
            r.mbit_s_total,
            r.p50_ms,
            r.p95_ms
        );
    }
    Ok(())
}
