//! `vigil camera`: a source and encoders feeding two stream hubs, served over RTSP, RTSPS,
//! HTTPS snapshots and ONVIF until SIGINT/SIGTERM.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::watch;
use vigil_auth::{Authenticator, DigestPolicy, UserStore};
use vigil_camera::{Camera, CameraConfig, SourceSpec, StreamConfig};
use vigil_hub::Hub;
use vigil_rtsp::{RtspAuth, RtspServer};

use crate::{fd_limits, http, onvif_discovery, onvif_http, tls};

/// Access units a hub's broadcast holds: about 4 s at 30 fps. A subscriber further behind
/// skips to the next key frame, so this bounds memory per stream, not per client.
const HUB_CAPACITY: usize = 128;

/// Options of `vigil camera`.
#[derive(Args, Debug)]
pub struct CameraArgs {
    /// What to capture: `testsrc`, `testsrc:scene` (the scripted motion scene), `file:PATH`
    /// (MP4 or Annex B H.264, looped, not re-encoded) or `v4l2:/dev/videoN`.
    #[arg(long)]
    source: SourceSpec,
    /// Data directory: users, TLS certificate.
    #[arg(long)]
    data: PathBuf,
    /// RTSP listen address.
    #[arg(long, default_value = "0.0.0.0:8554")]
    rtsp: Listen,
    /// RTSPS (RTSP over TLS) listen address, or `off`.
    #[arg(long, default_value = "0.0.0.0:8322")]
    rtsps: Listen,
    /// HTTPS listen address for `/snapshot.jpg`, or `off`.
    #[arg(long, default_value = "0.0.0.0:8443")]
    http: Listen,
    /// ONVIF listen address (plain HTTP: `/onvif/device_service`, `/onvif/media_service`),
    /// or `off`. See docs/onvif.md.
    #[arg(long, default_value = "0.0.0.0:8000")]
    onvif: Listen,
    /// WS-Discovery (UDP) listen address, or `off`; off too when `--onvif off`. On a wildcard
    /// IPv4 address it joins 239.255.255.250 and announces Hello and Bye.
    #[arg(long, default_value = "0.0.0.0:3702")]
    discovery: Listen,
    /// Main stream size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    size: (u32, u32),
    /// Sub stream size, WIDTHxHEIGHT, or `off`.
    #[arg(long, default_value = "640x360")]
    sub_size: SubSize,
    /// Frames per second.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Main stream bit rate in bits per second (`k` and `M` suffixes accepted).
    #[arg(long, default_value = "2M", value_parser = parse_bitrate)]
    bitrate: u32,
    /// Sub stream bit rate in bits per second.
    #[arg(long, default_value = "500k", value_parser = parse_bitrate)]
    sub_bitrate: u32,
    /// Frames from one key frame to the next (default: two seconds' worth).
    #[arg(long)]
    keyint: Option<u32>,
    /// Your own TLS certificate chain (PEM) instead of the self-signed one.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Digest responses accepted on RTSP, RTSPS and HTTPS: `sha256` (SHA-256 with qop=auth
    /// only, so a man in the middle cannot force MD5; ffmpeg and GStreamer cannot log in),
    /// `md5` (also MD5 with qop=auth: ffmpeg) or `legacy` (also RFC 2069 MD5 without qop:
    /// GStreamer rtspsrc, VLC). See docs/security.md.
    #[arg(long, default_value = "legacy")]
    digest: DigestPolicy,
}

/// A listen address or `off`.
#[derive(Clone, Copy, Debug)]
pub struct Listen(Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(Listen(None));
        }
        s.parse()
            .map(|a| Listen(Some(a)))
            .map_err(|_| format!("expected ADDR:PORT (e.g. 0.0.0.0:8554) or off, got {s:?}"))
    }
}

/// The sub stream size or `off`.
#[derive(Clone, Copy, Debug)]
pub struct SubSize(Option<(u32, u32)>);

impl std::str::FromStr for SubSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(SubSize(None));
        }
        parse_size(s).map(|v| SubSize(Some(v)))
    }
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("expected WIDTHxHEIGHT with even numbers from 16 to 4096, got {s:?}");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) || w % 2 != 0 || h % 2 != 0 {
        return Err(bad());
    }
    Ok((w, h))
}

fn parse_bitrate(s: &str) -> Result<u32, String> {
    let bad = || format!("expected bits per second such as 4000000, 4M or 500k, got {s:?}");
    let (num, mult) = match s.strip_suffix(['M', 'm']) {
        Some(n) => (n, 1_000_000.0),
        None => match s.strip_suffix(['k', 'K']) {
            Some(n) => (n, 1_000.0),
            None => (s, 1.0),
        },
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bps = v * mult;
    if !(10_000.0..=100_000_000.0).contains(&bps) {
        return Err(format!("bit rate {bps} out of range (10k to 100M)"));
    }
    Ok(bps as u32)
}

/// Prints a machine-readable line on stdout (tests and scripts read the bound ports from it).
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Runs the camera until SIGINT or SIGTERM.
pub async fn run(args: CameraArgs) -> anyhow::Result<()> {
    let fps = args.fps;
    if !(1.0..=120.0).contains(&fps) {
        bail!("--fps must be between 1 and 120");
    }
    let keyint = args.keyint.unwrap_or((fps * 2.0).round() as u32).max(1);
    let main = StreamConfig {
        width: args.size.0,
        height: args.size.1,
        fps,
        bitrate_bps: args.bitrate,
        keyint,
    };
    let sub = args.sub_size.0.map(|(width, height)| StreamConfig {
        width,
        height,
        fps,
        bitrate_bps: args.sub_bitrate,
        keyint,
    });

    let store = UserStore::open(&args.data)
        .with_context(|| format!("opening the user store in {}", args.data.display()))?;
    if store.is_empty()? {
        crate::logging::note(
            crate::logging::Severity::Warn,
            &format!(
                "no user exists yet, so every request will be refused (401).\n\
                 create one with:  vigil user add NAME --data {}",
                args.data.display()
            ),
        );
    }
    let auth = Arc::new(Authenticator::new(store).with_digest_policy(args.digest));
    tracing::info!(digest = %args.digest, "Digest policy");

    let main_hub = Hub::new("main", HUB_CAPACITY);
    let sub_hub = sub.map(|_| Hub::new("sub", HUB_CAPACITY));
    let cfg = CameraConfig {
        source: args.source.clone(),
        main,
        sub,
    };
    let mut camera = tokio::task::spawn_blocking({
        let (m, s) = (main_hub.clone(), sub_hub.clone());
        move || Camera::start(cfg, m, s)
    })
    .await
    .context("camera start task")?
    .with_context(|| format!("starting source {}", args.source))?;
    tracing::info!(source = %args.source, "camera started");

    let mut mounts = HashMap::new();
    mounts.insert("main".to_owned(), main_hub.clone());
    if let Some(h) = &sub_hub {
        mounts.insert("sub".to_owned(), h.clone());
    }

    let needs_tls = args.rtsps.0.is_some() || args.http.0.is_some();
    let tls = if !needs_tls {
        None
    } else if let (Some(c), Some(k)) = (&args.tls_cert, &args.tls_key) {
        Some(tls::load_files(c, k)?)
    } else {
        let host = hostname();
        Some(tls::load_or_create(
            &args.data,
            &host.into_iter().collect::<Vec<_>>(),
        )?)
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let rtsp_auth: Arc<dyn RtspAuth> = auth.clone();
    let caps = {
        use fd_limits::Listener;
        let mut listeners = Vec::new();
        listeners.extend(args.rtsp.0.map(|_| Listener::Rtsp));
        listeners.extend(args.rtsps.0.map(|_| Listener::Rtsp));
        listeners.extend(args.http.0.map(|_| Listener::Snapshot));
        listeners.extend(args.onvif.0.map(|_| Listener::Onvif));
        fd_limits::derive_now(mounts.len(), &listeners)
    };
    let rtsp_options = {
        let c = caps.of(fd_limits::Listener::Rtsp);
        vigil_rtsp::ServerOptions {
            max_connections: c.total,
            max_connections_per_address: c.per_source,
            ..vigil_rtsp::ServerOptions::default()
        }
    };

    let mut ports = (None, None, None);
    // The ONVIF services of the HTTPS listener, set below once ONVIF is set up.
    let onvif_over_https = Arc::new(std::sync::OnceLock::new());
    if let Some(addr) = args.rtsp.0 {
        let listener = bind(addr, "RTSP").await?;
        announce(&format!("listening rtsp {}", listener.local_addr()?));
        ports.0 = Some(listener.local_addr()?.port());
        let server =
            RtspServer::new(mounts.clone(), rtsp_auth.clone()).with_options(rtsp_options.clone());
        tasks.spawn(server.serve(listener, shutdown_rx.clone()));
    }
    if let (Some(addr), Some(tls)) = (args.rtsps.0, &tls) {
        let listener = bind(addr, "RTSPS").await?;
        announce(&format!("listening rtsps {}", listener.local_addr()?));
        ports.1 = Some(listener.local_addr()?.port());
        // RTSP clients offer no ALPN (or "rtsp"); the HTTP one would make them fail.
        let mut cfg = (*tls.server_config).clone();
        cfg.alpn_protocols.clear();
        let server = RtspServer::new(mounts.clone(), rtsp_auth.clone())
            .with_tls(Arc::new(cfg))
            .with_options(rtsp_options.clone());
        tasks.spawn(server.serve(listener, shutdown_rx.clone()));
    }
    if let (Some(addr), Some(tls)) = (args.http.0, &tls) {
        let listener = std::net::TcpListener::bind(addr)
            .with_context(|| format!("cannot listen for HTTPS on {addr}"))?;
        announce(&format!("listening https {}", listener.local_addr()?));
        ports.2 = Some(listener.local_addr()?.port());
        let hubs: HashMap<String, Hub> = mounts.clone();
        let snapshot: http::SnapshotFn = Arc::new(move |stream: &str| {
            let hub = hubs
                .get(stream)
                .ok_or_else(|| format!("no stream {stream:?}"))?;
            let gop = hub.gop();
            if gop.is_empty() {
                return Err("no picture yet".to_owned());
            }
            vigil_camera::snapshot_jpeg(&gop, 85).map_err(|e| e.to_string())
        });
        let mut rx = shutdown_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let fut = http::serve_snapshots(
            listener,
            tls.server_config.clone(),
            auth.clone(),
            snapshot,
            onvif_over_https.clone(),
            vigil_web::edge::Limits {
                caps: caps.of(fd_limits::Listener::Snapshot),
                ..vigil_web::edge::Limits::default()
            },
            shutdown,
        );
        tasks.spawn(async move { fut.await.map_err(std::io::Error::other) });
    }
    if let Some(addr) = args.onvif.0 {
        let listener = onvif_http::bind(addr).await?;
        let bound = listener.local_addr()?;
        announce(&format!("listening onvif {bound}"));
        let stream = |token: &str, c: &StreamConfig| onvif_http::StreamDesc {
            token: token.to_owned(),
            width: c.width,
            height: c.height,
            fps: c.fps.round() as u32,
            bitrate_kbps: c.bitrate_bps / 1000,
            gop: c.keyint,
        };
        let mut streams = vec![stream("main", &main)];
        streams.extend(sub.as_ref().map(|c| stream("sub", c)));
        let discovery = match args.discovery.0 {
            Some(addr) => {
                let socket = onvif_discovery::bind(addr)?;
                announce(&format!("listening ws-discovery {}", socket.local_addr()?));
                Some(socket)
            }
            None => None,
        };
        let template = onvif_http::Template {
            hostname: hostname().unwrap_or_else(|| "vigil".to_owned()),
            serial: onvif_http::serial(),
            onvif_port: bound.port(),
            rtsp_port: ports.0,
            rtsps_port: ports.1,
            https_port: ports.2,
            streams,
            discoverable: discovery.is_some(),
        };
        if template.https_port.is_some() {
            let _ = onvif_over_https.set(onvif_http::OnvifOverHttps::new(
                template.clone(),
                auth.clone(),
            ));
        }
        if let Some(socket) = discovery {
            tasks.spawn(onvif_discovery::serve(
                socket,
                template.clone(),
                onvif_discovery::endpoint_uuid(&args.data),
                shutdown_rx.clone(),
            ));
        }
        tasks.spawn(onvif_http::serve(
            listener,
            template,
            auth.clone(),
            caps.of(fd_limits::Listener::Onvif),
            shutdown_rx.clone(),
        ));
    }
    if let Some(tls) = &tls {
        announce(&format!(
            "tls-fingerprint sha256 {}",
            tls.fingerprint_sha256
        ));
        if tls.created {
            crate::logging::note(
                crate::logging::Severity::Info,
                "made a self-signed TLS certificate; check its fingerprint when your client asks",
            );
        }
    }

    crate::service::ready("serving");
    // Fed while the encoder publishes: a capture device that stops delivering (or an
    // encoder that hangs) gets the camera restarted by systemd.
    let watchdog = crate::service::spawn_watchdog({
        let hub = main_hub.clone();
        let mut last = (hub.published(), tokio::time::Instant::now());
        move |now, period| {
            let published = hub.published();
            if published != last.0 {
                last = (published, now);
            }
            now.saturating_duration_since(last.1) <= period
        }
    });
    let stopped_by = tokio::select! {
        s = shutdown_signal() => s,
        Some(r) = tasks.join_next() => {
            match r {
                Ok(Ok(())) => "a server ended".to_owned(),
                Ok(Err(e)) => return Err(anyhow::anyhow!(e).context("server failed")),
                Err(e) => return Err(anyhow::anyhow!(e).context("server task failed")),
            }
        }
    };
    tracing::info!("shutting down ({stopped_by})");
    crate::service::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = shutdown_tx.send(true);
    while tasks.join_next().await.is_some() {}
    tokio::task::spawn_blocking(move || camera.stop())
        .await
        .ok();
    Ok(())
}

async fn shutdown_signal() -> String {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            return tokio::signal::ctrl_c()
                .await
                .map(|_| "SIGINT".to_owned())
                .unwrap_or_default()
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT".to_owned(),
        _ = term.recv() => "SIGTERM".to_owned(),
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bitrates_parse_with_clear_errors() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("1281x720").is_err());
        assert!(parse_size("0x0").is_err());
        assert!(parse_size("big").is_err());
        assert_eq!(parse_bitrate("4M"), Ok(4_000_000));
        assert_eq!(parse_bitrate("500k"), Ok(500_000));
        assert_eq!(parse_bitrate("1500000"), Ok(1_500_000));
        assert!(parse_bitrate("1").is_err());
        assert!("off".parse::<Listen>().unwrap().0.is_none());
        assert!("127.0.0.1:0".parse::<Listen>().unwrap().0.is_some());
        assert!("nope".parse::<Listen>().is_err());
    }
}
