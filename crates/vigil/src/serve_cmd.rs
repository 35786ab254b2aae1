//! `vigil serve --config vigil.toml`: records every configured camera stream until SIGINT or
//! SIGTERM; `vigil reindex`: rebuilds the index from the recording files.
//!
//! Wiring per stream: `Ingest` (RTSP via retina, supervised) → `Hub` → `Recorder::record`
//! (segment files + index). Ingest gap and discontinuity events go to the stream's writer
//! through the same queue as the frames ([`write_events`]): one gap row per outage with
//! the ingest's reason, a new file at a timestamp jump. A retention task runs on the
//! recorder's interval, and shutdown stops the ingests first so that each writer flushes
//! its pending fragment and closes its file.
//!
//! Stdout carries one machine-readable line per state change, flushed (tests and scripts
//! wait for them): `recording CAMERA/STREAM` when frames start flowing into the recorder
//! (again after each reconnect), `offline CAMERA/STREAM` when the camera is lost.
//! Everything else is logged to stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use vigil_hub::Hub;
use vigil_recorder::ingest::{Ingest, IngestEvent, IngestState, IngestStatus};
use vigil_recorder::{Recorder, RecordingEvents};

use crate::config::{self, Config, DataSource};

/// Access units a stream's hub holds for its subscribers (~4 s at 30 fps). The recorder's
/// own queue behind it is larger (see `RecorderConfig::queue_len`).
const HUB_CAPACITY: usize = 128;

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
        create_private_dir(data_dir)?;
        let path = data_dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
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

/// Creates the data directory (mode 0700 when new: it holds footage).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))
}

/// Prints a machine-readable line on stdout, flushed.
fn announce(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One recorded stream's running parts.
struct Running {
    name: String,
    ingest: Ingest,
    recording: vigil_recorder::recorder::RecordingHandle,
}

/// Runs the recorder until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    check_permissions(&args.config, &cfg);
    if cfg.streams.is_empty() {
        warn!(
            "{} has no [[camera]]: nothing to record",
            args.config.display()
        );
    }
    let _lock = DataLock::acquire(&cfg.data_dir)?;
    let recorder = {
        let (dir, rc) = (cfg.data_dir.clone(), cfg.recorder.clone());
        tokio::task::spawn_blocking(move || Recorder::open(&dir, rc))
            .await
            .context("recorder start task")?
            .with_context(|| format!("opening the recordings in {}", cfg.data_dir.display()))?
    };
    let recorder = Arc::new(recorder);
    info!(data_dir = %cfg.data_dir.display(), streams = cfg.streams.len(), "recorder started");
    let retention = recorder.spawn_retention();

    let mut running = Vec::new();
    let mut watchers = JoinSet::new();
    for spec in &cfg.streams {
        let name = format!("{}/{}", spec.camera, spec.stream);
        let hub = Hub::new(name.clone(), HUB_CAPACITY);
        // The ingest only connects once this loop yields, so subscribing to its audio
        // right after spawning it misses no frame.
        let mut ingest = Ingest::spawn(spec.ingest.clone(), hub.clone());
        let recording = match spec.ingest.audio {
            true => {
                let audio = ingest.subscribe_audio();
                recorder.record_with_audio(&spec.camera, &spec.stream, hub, audio)
            }
            false => recorder.record(&spec.camera, &spec.stream, hub),
        }
        .with_context(|| format!("starting to record {name}"))?;
        if let Some(events) = ingest.take_events() {
            watchers.spawn(write_events(name.clone(), recording.events(), events));
        }
        watchers.spawn(announce_status(name.clone(), ingest.status()));
        running.push(Running {
            name,
            ingest,
            recording,
        });
    }

    let stopped_by = shutdown_signal().await;
    info!("shutting down ({stopped_by}): closing the open files");
    // Ingests first, so that nothing new arrives; then each writer drains its queue, writes
    // its pending fragment and closes its file.
    let mut stops = JoinSet::new();
    let mut handles = Vec::new();
    for r in running {
        stops.spawn(r.ingest.stop());
        handles.push((r.name, r.recording));
    }
    while stops.join_next().await.is_some() {}
    // Let the hub-to-writer tasks forward what the ingests published last.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (name, h) in handles {
        h.stop().await;
        info!(stream = %name, "recording stopped");
    }
    retention.abort();
    // The event writers end once their ingest's channel closes.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while watchers.join_next().await.is_some() {}
    })
    .await;
    info!("stopped");
    Ok(())
}

/// Warns when a configuration file holding camera passwords is readable by group or others.
fn check_permissions(path: &Path, cfg: &Config) {
    if !cfg.has_secrets {
        return;
    }
    match config::readable_by_others(path) {
        Ok(true) => warn!(
            "{} holds camera passwords but other users can read it; run: chmod 600 {}",
            path.display(),
            path.display()
        ),
        Ok(false) => {}
        Err(e) => warn!("cannot check the permissions of {}: {e}", path.display()),
    }
}

/// Prints `recording NAME` each time the stream starts flowing and `offline NAME` when it
/// is lost; logs why.
async fn announce_status(name: String, mut status: tokio::sync::watch::Receiver<IngestStatus>) {
    let mut flowing = false;
    loop {
        let state = status.borrow_and_update().state.clone();
        match state {
            IngestState::Streaming if !flowing => {
                flowing = true;
                announce(&format!("recording {name}"));
            }
            IngestState::Backoff { reason, .. } if flowing => {
                flowing = false;
                warn!(stream = %name, %reason, "camera lost; reconnecting");
                announce(&format!("offline {name}"));
            }
            IngestState::Failed(reason) => {
                if flowing {
                    announce(&format!("offline {name}"));
                }
                flowing = false;
                error!(stream = %name, %reason, "cannot record this stream; will retry slowly");
            }
            IngestState::Stopped => return,
            _ => {}
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Passes the ingest's events to the stream's writer: every outage becomes one gap row
/// with the ingest's reason (the writer merges it with the file break a long outage
/// causes), every timestamp jump a new file. An outage still open when the ingest stops
/// is not written: the recording stops with it, and the next start records the time
/// between as "not recording".
async fn write_events(
    name: String,
    recording: RecordingEvents,
    mut events: tokio::sync::mpsc::Receiver<IngestEvent>,
) {
    while let Some(ev) = events.recv().await {
        let r = match ev {
            IngestEvent::Gap(gap) => {
                let len_ms = gap.end_wall_us.saturating_sub(gap.start_wall_us) / 1000;
                info!(stream = %name, reason = %gap.reason, gap_ms = len_ms, "camera outage");
                if gap.resume_pts.is_none() {
                    continue;
                }
                let reason = format!("camera: {}", gap.reason);
                recording
                    .gap(gap.start_wall_us, gap.end_wall_us, reason)
                    .await
            }
            IngestEvent::Discontinuity(d) => {
                warn!(stream = %name, reason = %d.reason,
                      "camera timestamps jumped; a new file starts at the next key frame");
                recording.discontinuity(d.pts, d.reason).await
            }
        };
        if let Err(e) = r {
            warn!(stream = %name, "cannot pass an ingest event to the recording: {e}");
        }
    }
}

async fn shutdown_signal() -> &'static str {
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
