//! `vigil serve --config vigil.toml`: records every camera (of the configuration file and
//! those added in the web app) and serves the web app until SIGINT or SIGTERM;
//! `vigil reindex`: rebuilds the index from the recording files.
//!
//! The recording itself is the NVR core's ([`vigil_nvr::Nvr`]): per stream `Ingest` →
//! `Hub` → `Recorder::record`, motion detection, status. This command takes the data
//! directory's lock, starts the NVR and the web app (`vigil_web::start`, unless
//! `[web] listen = "off"`), and on a signal stops the web app first, then the cameras
//! (ingests first, so each writer flushes its pending fragment and closes its file).
//!
//! Stdout carries one machine-readable line per state change, flushed (tests and scripts
//! wait for them): `recording CAMERA/STREAM` when frames start flowing into the recorder
//! (again after each reconnect), `offline CAMERA/STREAM` when the camera is lost, and the
//! web app's `listening https ADDR`, `tls-fingerprint sha256 …` and (while no user exists)
//! `setup-url …`, and `listening metrics ADDR` once the monitoring listener serves (after
//! the web app, see [`crate::metrics`]). Everything else is logged to stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use tracing::{info, warn};
use vigil_nvr::{Nvr, NvrConfig};
use vigil_recorder::Recorder;

use crate::alerts_link::AlertsLink;
use crate::config::{self, Config, DataSource};

/// Name of the lock file in the data directory: one recorder per directory, and no
/// `vigil reindex` under a running recorder.
const LOCK_FILE: &str = "vigil.lock";

/// Options of `vigil serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The configuration file (see vigil.example.toml and docs/config.md).
    #[arg(long, value_name = "FILE", env = "VIGIL_CONFIG")]
    config: PathBuf,
}

/// Options of `vigil reindex`.
#[derive(Args, Debug)]
pub struct ReindexArgs {
    #[command(flatten)]
    source: DataSource,
}

/// An exclusive `flock` on `<data>/vigil.lock`, released when dropped or when the process
/// dies (even by `kill -9`), so a crash never leaves a stale lock behind.
pub struct DataLock {
    _file: std::fs::File,
}

impl DataLock {
    /// Takes the lock, failing at once if another process holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataLock> {
        use std::os::unix::fs::OpenOptionsExt as _;
        create_private_dir(data_dir)?;
        let path = data_dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(vigil_datadir::private_fs::FILE_MODE)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(DataLock { _file: file }),
            Err(rustix::io::Errno::WOULDBLOCK) => bail!(
                "{} is in use by another vigil process (a running `vigil serve`?); stop it first",
                data_dir.display()
            ),
            Err(e) => {
                Err(std::io::Error::from(e)).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// Creates the data directory (mode 0700: it holds footage and credentials), or narrows an
/// existing one that other users could read or enter to 0700, saying so.
pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use vigil_datadir::private_fs;
    private_fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    if let Some(old) = private_fs::tighten_dir(dir)
        .with_context(|| format!("restricting the data directory {}", dir.display()))?
    {
        tracing::warn!(
            "the data directory {} was mode {old:o}, open to other users; narrowed to 0700",
            dir.display()
        );
    }
    Ok(())
}

/// Runs the recorder and the web app until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    check_permissions(&args.config, &cfg);
    let _lock = DataLock::acquire(&cfg.data_dir)?;
    // Bound first, so that an address in use fails before anything starts. The default
    // address only warns: a second recorder on the host (or a test) still records.
    let metrics_listener = match cfg.metrics.listen {
        Some(addr) => match crate::metrics::Bound::bind(addr) {
            Ok(b) => Some(b),
            Err(e) if !cfg.metrics.explicit => {
                warn!("metrics are off: {e} (set [metrics] listen to another address or \"off\")");
                None
            }
            Err(e) => return Err(anyhow::Error::from(e).context("[metrics] listen")),
        },
        None => None,
    };
    let nvr = Nvr::start(NvrConfig {
        data_dir: cfg.data_dir.clone(),
        recorder: cfg.recorder.clone(),
        cameras: cfg.cameras.clone(),
        announce: true,
    })
    .await
    .with_context(|| format!("starting the recorder in {}", cfg.data_dir.display()))?;
    if nvr.cameras().is_empty() {
        warn!(
            "no camera yet: add [[camera]] to {} or add one in the web app",
            args.config.display()
        );
    }
    info!(data_dir = %cfg.data_dir.display(), cameras = nvr.cameras().len(), "recorder started");
    let mut running = Running {
        metrics: None,
        web: None,
        nvr: nvr.clone(),
        cloud: None,
        alerts: AlertsLink::start(cfg.alerts.clone(), nvr.clone()),
    };
    running.cloud = match &cfg.cloud {
        Some(c) => {
            let streams: Vec<(String, String)> = cfg
                .streams
                .iter()
                .map(|s| (s.camera.clone(), s.stream.clone()))
                .collect();
            match vigil_cloud::Uploader::start(
                nvr.recorder().archive().clone(),
                c.clone(),
                &streams,
            ) {
                Ok(u) => Some(Arc::new(u)),
                Err(e) => {
                    running.stop().await;
                    return Err(anyhow::Error::from(e).context("starting the cloud tier"));
                }
            }
        }
        None => None,
    };
    // With an identity on the recorder (weaker, opt-in), the timeline plays cloud-only footage.
    let cloud_playback = match (&cfg.cloud, cfg.cloud_identity.as_deref()) {
        (Some(c), Some(identity)) => {
            warn!(
                "[cloud] identity_file is set: this recorder can read the bucket, so a thief of \
                 it could too (docs/cloud.md)"
            );
            match vigil_cloud::playback::CloudPlayback::open(
                nvr.recorder().archive().clone(),
                c,
                identity,
            ) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    running.stop().await;
                    return Err(anyhow::Error::from(e).context("[cloud] identity_file"));
                }
            }
        }
        _ => None,
    };
    // Offsite share links go to the same bucket, under `<prefix>s/`.
    let offsite = match &cfg.cloud {
        Some(c) => match vigil_cloud::share::OffsitePublisher::new(c) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                warn!(error = %e, "offsite share links are off: the bucket client failed");
                None
            }
        },
        None => None,
    };
    running.web = match cfg.web.listen {
        Some(listen) => {
            let web_cfg = vigil_web::WebConfig {
                listen,
                cert: cfg.web.cert.clone(),
                key: cfg.web.key.clone(),
                data_dir: cfg.data_dir.clone(),
                // Each camera: a main and maybe a sub stream ingested and recorded.
                limits: vigil_web::edge::Limits {
                    caps: crate::fd_limits::derive_now(
                        cfg.cameras.len() * 2,
                        &[crate::fd_limits::Listener::Web],
                    )
                    .of(crate::fd_limits::Listener::Web),
                    ..vigil_web::edge::Limits::default()
                },
                cloud: cloud_playback,
                offsite,
                webrtc: cfg.webrtc.as_ref().map(|w| w.whep_config(listen.ip())),
                public_url: cfg.web.public_url.clone(),
            };
            let status = status_provider(running.alerts.as_ref(), running.cloud.clone());
            match vigil_web::start(web_cfg, nvr.clone(), status).await {
                Ok(w) => Some(w),
                Err(e) => {
                    running.stop().await;
                    return Err(e.context("starting the web app"));
                }
            }
        }
        None => None,
    };

    // Liveness for /healthz and the systemd watchdog: no stream receiving without writing.
    let (health, health_task) = crate::service::Health::start(
        nvr.clone(),
        crate::service::watchdog_period().unwrap_or(crate::service::DEFAULT_STALL_LIMIT),
    );
    running.metrics = match metrics_listener {
        Some(b) => {
            let sources = crate::metrics::Sources {
                health: health.clone(),
                nvr: nvr.clone(),
                cloud: running.cloud.clone(),
                web: running.web.is_some(),
                data_dir: cfg.data_dir.clone(),
            };
            match b.serve(sources) {
                Ok(m) => Some(m),
                Err(e) => {
                    health_task.abort();
                    running.stop().await;
                    return Err(anyhow::Error::from(e).context("starting the metrics listener"));
                }
            }
        }
        None => None,
    };

    crate::service::ready(&format!("recording {} camera(s)", nvr.cameras().len()));
    let watchdog = crate::service::spawn_watchdog(move |_, _| health.ok());
    let stopped_by = shutdown_signal().await;
    info!("shutting down ({stopped_by}): closing the open files");
    crate::service::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    health_task.abort();
    running.stop().await;
    info!("stopped");
    Ok(())
}

/// What [`run`] has started so far, stopped in the one safe order whether the server ends
/// normally or a later part fails to start.
struct Running {
    metrics: Option<crate::metrics::Server>,
    web: Option<vigil_web::WebHandle>,
    nvr: Arc<Nvr>,
    cloud: Option<Arc<vigil_cloud::Uploader>>,
    alerts: Option<AlertsLink>,
}

impl Running {
    async fn stop(self) {
        // Listeners first: no new viewer or scrape while the recorder closes its files.
        if let Some(m) = self.metrics {
            m.shutdown().await;
        }
        if let Some(w) = self.web {
            w.shutdown().await;
        }
        self.nvr.shutdown().await;
        // After the NVR: the last fragments of the closed files are queued (they go up
        // after the next start).
        if let Some(c) = &self.cloud {
            c.stop().await;
        }
        // After the NVR: the motion events its shutdown ends still reach the alerts.
        if let Some(a) = self.alerts {
            a.shutdown().await;
        }
    }
}

/// The System page's extra sections: alerts and the cloud tier.
fn status_provider(
    alerts: Option<&AlertsLink>,
    cloud: Option<Arc<vigil_cloud::Uploader>>,
) -> vigil_web::StatusProvider {
    let alerts = AlertsLink::status_provider(alerts);
    Arc::new(move || {
        let mut v = alerts();
        let c = match &cloud {
            Some(u) => serde_json::to_value(u.status()).unwrap_or_default(),
            None => serde_json::json!({ "configured": false }),
        };
        if let Some(o) = v.as_object_mut() {
            o.insert("cloud".into(), c);
        }
        v
    })
}

/// Warns when a configuration file holding camera passwords is readable by group or others.
fn check_permissions(path: &Path, cfg: &Config) {
    if !cfg.has_secrets {
        return;
    }
    match config::readable_by_others(path) {
        Ok(true) => warn!(
            "{} holds camera passwords but other users can read it; run: chmod 600 {} \
             (or 640 with this service's own group)",
            path.display(),
            path.display()
        ),
        Ok(false) => {}
        Err(e) => warn!("cannot check the permissions of {}: {e}", path.display()),
    }
}

/// Waits for SIGINT or SIGTERM; says which.
pub(crate) async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// `vigil reindex`: deletes the index and rebuilds it from the recording files.
pub fn run_reindex(args: ReindexArgs) -> anyhow::Result<()> {
    let (data_dir, _) = args.source.resolve()?;
    if !data_dir
        .join(vigil_recorder::recorder::RECORDINGS_DIR)
        .is_dir()
    {
        bail!(
            "{} has no {}/ directory: is it a Vigil data directory?",
            data_dir.display(),
            vigil_recorder::recorder::RECORDINGS_DIR
        );
    }
    let _lock = DataLock::acquire(&data_dir)?;
    let report = Recorder::reindex(&data_dir)
        .with_context(|| format!("rebuilding the index of {}", data_dir.display()))?;
    println!(
        "reindexed {} files, {} fragments ({} bytes of partial fragments truncated, {} unusable files deleted)",
        report.files, report.fragments_added, report.bytes_truncated, report.files_dropped
    );
    Ok(())
}
