//! `vigil demo`: the whole system in one process on embedded defaults, for a first look.
//!
//! ```text
//!  test pattern "front" ─┐                         ┌─► NVR: ingest → hub → recorder
//!  scripted scene "yard" ─┴─► hubs ─► RTSP server ──┤        (motion on yard's sub stream)
//!   (640x360 + 320x180, 15 fps)   127.0.0.1, random └─► web app (HTTPS, live, timeline)
//!                                 internal password
//! ```
//!
//! The cameras go through the same RTSP path as any third-party camera would, so what the
//! demo shows is what a real installation does. Their RTSP account lives in its own user
//! store (`<data>/demo-camera/`), never mixed with the web app's users, with a password
//! made afresh on every start. The two cameras are stored in `<data>/cameras.json` as
//! web-app cameras on the first run (so they can be edited or removed in the UI); later
//! runs only point them at this run's RTSP address and password.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use tokio::sync::watch;
use vigil_auth::{Authenticator, Role, UserStore};
use vigil_camera::testsrc::SceneScript;
use vigil_camera::{Camera, CameraConfig, SourceSpec, StreamConfig};
use vigil_hub::Hub;
use vigil_nvr::{
    CameraSource, CameraSpec, MotionSettings, Nvr, NvrConfig, RecordMode, Secret, ZoneKind,
    ZoneSpec,
};
use vigil_rtsp::{RtspAuth, RtspServer};

use crate::alerts_link::AlertsLink;
use crate::serve_cmd::{create_private_dir, shutdown_signal, DataLock};

/// Access units a demo camera's hub holds (~4 s at 15 fps).
const HUB_CAPACITY: usize = 64;
/// The RTSP user the NVR logs in with.
const CAMERA_USER: &str = "vigil-demo";
/// Recordings older than this are deleted (a demo left running must not fill the disk).
const MAX_AGE_S: u64 = 24 * 3600;
/// And never more than this in all.
const MAX_BYTES: u64 = 5_000_000_000;

/// Options of `vigil demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Data directory: recordings, index, users, TLS certificate.
    #[arg(long, value_name = "DIR", default_value = "vigil-demo")]
    data: PathBuf,
    /// HTTPS listen address of the web app.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// RTSP listen address of the two test cameras.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    rtsp: SocketAddr,
}

/// One demo camera.
struct DemoCamera {
    name: &'static str,
    source: SourceSpec,
}

const DEMO_CAMERAS: [(&str, bool); 2] = [("front", false), ("yard", true)];

/// Prints a machine-readable line on stdout, flushed.
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the demo until SIGINT or SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    create_private_dir(&args.data)?;
    let _lock = DataLock::acquire(&args.data)?;
    let cameras: Vec<DemoCamera> = DEMO_CAMERAS
        .iter()
        .map(|&(name, scene)| DemoCamera {
            name,
            source: if scene {
                SourceSpec::TestScene
            } else {
                SourceSpec::TestPattern
            },
        })
        .collect();

    // The cameras: encoders publishing into hubs.
    let mut mounts = HashMap::new();
    let mut running = Vec::new();
    for cam in &cameras {
        let (main, sub) = (
            Hub::new(format!("{}-main", cam.name), HUB_CAPACITY),
            Hub::new(format!("{}-sub", cam.name), HUB_CAPACITY),
        );
        let stream = |width, height, bitrate_bps| StreamConfig {
            width,
            height,
            fps: 15.0,
            bitrate_bps,
            keyint: 30,
        };
        let cfg = CameraConfig {
            source: cam.source.clone(),
            main: stream(640, 360, 800_000),
            sub: Some(stream(320, 180, 200_000)),
        };
        let (m, s) = (main.clone(), sub.clone());
        let camera = tokio::task::spawn_blocking(move || Camera::start(cfg, m, Some(s)))
            .await
            .context("camera start task")?
            .with_context(|| format!("starting the demo camera {}", cam.name))?;
        running.push(camera);
        mounts.insert(format!("{}-main", cam.name), main);
        mounts.insert(format!("{}-sub", cam.name), sub);
    }
    let result = serve(&args, &cameras, mounts).await;
    tokio::task::spawn_blocking(move || {
        for mut c in running {
            c.stop();
        }
    })
    .await
    .ok();
    result
}

/// Everything after the cameras: RTSP server, camera store, NVR, web app, until a signal.
async fn serve(
    args: &DemoArgs,
    cameras: &[DemoCamera],
    mounts: HashMap<String, Hub>,
) -> anyhow::Result<()> {
    // The cameras' own RTSP account, in a store of its own, new password every run.
    let cam_dir = args.data.join("demo-camera");
    create_private_dir(&cam_dir)?;
    let password = random_password()?;
    let auth = {
        let (dir, pw) = (cam_dir.clone(), password.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<Authenticator> {
            let store = UserStore::open(&dir)?;
            if store.get(CAMERA_USER)?.is_some() {
                store.set_password(CAMERA_USER, &pw)?;
            } else {
                store.add(CAMERA_USER, &pw, Role::Viewer)?;
            }
            Ok(Authenticator::new(store))
        })
        .await
        .context("camera user store task")?
        .with_context(|| format!("setting up the camera account in {}", cam_dir.display()))?
    };
    let listener = tokio::net::TcpListener::bind(args.rtsp)
        .await
        .with_context(|| format!("cannot listen for RTSP on {}", args.rtsp))?;
    let rtsp_addr = listener.local_addr()?;
    announce(&format!("listening rtsp {rtsp_addr}"));
    let (stop_rtsp, stop_rx) = watch::channel(false);
    let rtsp_auth: Arc<dyn RtspAuth> = Arc::new(auth);
    // The NVR's own ingest comes through this server: caps that fit the descriptor limit keep
    // a flood (here or on the web app) from starving it.
    let caps = crate::fd_limits::derive_now(
        mounts.len(),
        &[
            crate::fd_limits::Listener::Rtsp,
            crate::fd_limits::Listener::Web,
        ],
    );
    let rtsp_caps = caps.of(crate::fd_limits::Listener::Rtsp);
    let rtsp_options = vigil_rtsp::ServerOptions {
        max_connections: rtsp_caps.total,
        max_connections_per_address: rtsp_caps.per_source,
        ..vigil_rtsp::ServerOptions::default()
    };
    let rtsp = tokio::spawn(
        RtspServer::new(mounts, rtsp_auth)
            .with_options(rtsp_options)
            .serve(listener, stop_rx),
    );

    // The NVR connects over loopback even when the server listens on all interfaces.
    let connect = match rtsp_addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        a => a,
    };
    prepare_store(&args.data, cameras, connect, &password)?;

    let mut recorder = vigil_recorder::RecorderConfig::default();
    recorder.retention.max_bytes = Some(MAX_BYTES);
    let result = async {
        let nvr = Nvr::start(NvrConfig {
            data_dir: args.data.clone(),
            recorder,
            cameras: Vec::new(),
            announce: true,
        })
        .await
        .with_context(|| format!("starting the recorder in {}", args.data.display()))?;
        let web_cfg = vigil_web::WebConfig {
            listen: args.listen,
            cert: None,
            key: None,
            data_dir: args.data.clone(),
            limits: vigil_web::edge::Limits {
                caps: caps.of(crate::fd_limits::Listener::Web),
                ..vigil_web::edge::Limits::default()
            },
            cloud: None,
            offsite: None,
            // WebRTC on, its UDP port ephemeral and open only while someone watches.
            webrtc: Some(crate::config::WebrtcSettings::demo().whep_config(args.listen.ip())),
            public_url: None,
        };
        let web =
            match vigil_web::start(web_cfg, nvr.clone(), AlertsLink::status_provider(None)).await {
                Ok(w) => w,
                Err(e) => {
                    nvr.shutdown().await;
                    return Err(e.context("starting the web app"));
                }
            };
        announce(&format!(
            "Open https://localhost:{}/ in your browser",
            web.local_addr().port()
        ));
        crate::logging::note(
            crate::logging::Severity::Info,
            "the certificate is self-signed: your browser will warn once; compare the \
             tls-fingerprint line above with the one it shows",
        );
        let stopped_by = shutdown_signal().await;
        tracing::info!("shutting down ({stopped_by})");
        web.shutdown().await;
        nvr.shutdown().await;
        Ok(())
    }
    .await;
    let _ = stop_rtsp.send(true);
    let _ = rtsp.await;
    result
}

/// Writes the demo cameras into cameras.json: both on the first run; afterwards only the
/// address and password of those still there (the user may have edited or removed them).
fn prepare_store(
    data: &Path,
    cameras: &[DemoCamera],
    rtsp: SocketAddr,
    password: &str,
) -> anyhow::Result<()> {
    let first_run = !data.join(vigil_nvr::CAMERAS_FILE).exists();
    let mut stored = vigil_nvr::load_stored_cameras(data)?;
    for cam in cameras {
        let main = format!("rtsp://{rtsp}/{}-main", cam.name);
        let sub = format!("rtsp://{rtsp}/{}-sub", cam.name);
        if first_run {
            stored.push(demo_spec(cam, main, sub, password));
            continue;
        }
        // Ours if it still points at a demo mount of that camera.
        let ours = |s: &CameraSpec| {
            s.name == cam.name
                && url::Url::parse(&s.url).is_ok_and(|u| u.path() == format!("/{}-main", cam.name))
        };
        if let Some(s) = stored.iter_mut().find(|s| ours(s)) {
            s.url = main;
            if s.sub_url.is_some() {
                s.sub_url = Some(sub);
            }
            s.username = Some(CAMERA_USER.to_owned());
            s.password = Some(Secret::new(password));
        }
    }
    vigil_nvr::save_stored_cameras(data, &stored)
        .with_context(|| format!("writing the demo cameras into {}", data.display()))
}

/// The spec of a demo camera: motion detection on the scripted scene (masking the
/// burned-in clock and the area where motion is meant to be ignored), none on the test
/// pattern, whose bars move all the time.
fn demo_spec(cam: &DemoCamera, main: String, sub: String, password: &str) -> CameraSpec {
    let motion = if cam.source == SourceSpec::TestScene {
        let script = SceneScript::default();
        let rect = |name: &str, (x0, y0, x1, y1): (f32, f32, f32, f32)| ZoneSpec {
            name: name.to_owned(),
            kind: ZoneKind::Mask,
            points: vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
            sensitivity: None,
            min_area_pct: None,
        };
        // The overlay's height is the larger of the two streams' (motion runs on the sub).
        let (a, b) = (script.overlay_mask(320, 180), script.overlay_mask(640, 360));
        let overlay = (0.0, 0.0, 1.0, a.3.max(b.3));
        MotionSettings {
            zones: vec![rect("clock", overlay), rect("flag", script.masked_area())],
            ..MotionSettings::default()
        }
    } else {
        MotionSettings {
            enabled: false,
            ..MotionSettings::default()
        }
    };
    CameraSpec {
        name: cam.name.to_owned(),
        url: main,
        sub_url: Some(sub),
        username: Some(CAMERA_USER.to_owned()),
        password: Some(Secret::new(password)),
        transport: vigil_nvr::Transport::Tcp,
        audio: false,
        max_age_s: Some(MAX_AGE_S),
        event_max_age_s: None,
        record: RecordMode::Continuous,
        motion,
        source: CameraSource::Ui,
    }
}

/// 128 random bits from the OS, as hex.
fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(hex::encode(bytes))
}
