//! The [`Recorder`] facade: one per data directory. Opens and repairs the index, records
//! hubs (one async task per stream takes the hub's items in order — video, audio, gaps,
//! discontinuities —, runs the sans-IO segmenter on them and hands its output, about one
//! batch per fragment, to the stream's writer on the blocking pool), runs retention,
//! plans exports. [`Recorder::open_read_only`] serves exports beside a live recorder.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vigil_media::time::Ticks90k;

use tokio::sync::oneshot;
use tracing::{info, warn};
use vigil_hub::{Hub, Item};

use crate::archive::Archive;
use crate::clock::{Clock, RealClock};
use crate::db::{Db, GapRow, RecordedRange, Totals};
use crate::export::{self, ExportPlan};
use crate::recovery::{self, RecoveryReport};
use crate::retention::{self, EventRetention, RetentionConfig, RetentionReport};
use crate::segment::{FileOp, Segmenter, SegmenterConfig};
use crate::stats::{StatsRegistry, StreamStatsSnapshot};
use crate::storage::{DirStorage, Storage};
use crate::writer::StreamWriter;
use crate::{check_name, Error};

/// File name of the index inside the data directory.
pub const INDEX_FILE: &str = "index.sqlite3";
/// Directory of the segment files inside the data directory.
pub const RECORDINGS_DIR: &str = "recordings";

/// Recorder settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecorderConfig {
    /// Media time per segment file (default 5 minutes).
    pub file_duration: Duration,
    /// Retention limits.
    pub retention: RetentionConfig,
    /// How often the retention task runs (default 1 minute).
    pub retention_interval: Duration,
    /// How much is queued per stream between the hub and its writer, in access
    /// units at 30 fps (default 512, about 17 s: rides out a slow fsync without
    /// dropping). The queue holds the segmenter's output, about one fragment (≤ 1 s) per
    /// entry, so its capacity is `queue_len / 30` entries (at least 2).
    pub queue_len: usize,
    /// Streams' writers running at once on the blocking pool at first (default 4). Each
    /// writer batch is mostly one fsync, so a few threads keep up with 64 streams on a
    /// disk whose fsync takes < ~60 ms.
    pub write_slots: usize,
    /// Up to how many the write slots grow, one at a time, when a stream's queue backs
    /// up (slow storage: SD card, busy HDD, network share) (default 32). Equal to
    /// `write_slots` to keep the number fixed.
    pub max_write_slots: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            file_duration: Duration::from_secs(300),
            retention: RetentionConfig::default(),
            retention_interval: Duration::from_secs(60),
            queue_len: 512,
            write_slots: 4,
            max_write_slots: 32,
        }
    }
}

impl RecorderConfig {
    fn segmenter(&self) -> SegmenterConfig {
        SegmenterConfig {
            file_duration_90k: u64::try_from(Ticks90k::from_duration(self.file_duration).0)
                .unwrap_or(u64::MAX),
            ..SegmenterConfig::default()
        }
    }
}

/// What a stream's writer carries out, in the order the stream's task saw it.
enum Input {
    /// The segmenter's output for one input (files, fragments).
    FileOps(Vec<FileOp>),
    Gap {
        start_wall_us: i64,
        end_wall_us: i64,
        reason: String,
    },
    Discontinuity {
        pts: i64,
        reason: String,
    },
}

/// A running recording of one stream; dropping it does not stop it, [`stop`](Self::stop) does.
pub struct RecordingHandle {
    task: tokio::task::JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl RecordingHandle {
    /// Stops recording: what was taken from the hub is written, the pending fragment
    /// too, and the file is closed. Once it returns, the same camera stream can be
    /// recorded again (a new file, after a gap row for the time between).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// The recorder of one data directory.
pub struct Recorder {
    store: Arc<Archive>,
    config: RecorderConfig,
    data_dir: PathBuf,
    /// The (camera, stream) pairs being recorded: one recording per stream at a time.
    recording: Arc<Mutex<Vec<(String, String)>>>,
    read_only: bool,
    /// Writer batches running at once across all streams (bounds the blocking threads).
    write_slots: Arc<WriteSlots>,
    /// Whether the index commit ticker runs (started by the first recording).
    committer: AtomicBool,
    /// Every recorded stream's counters (monitoring).
    stats: Arc<StatsRegistry>,
}

/// A (camera, stream) entry of [`Recorder`]'s list of running recordings, removed when
/// dropped. The stream's writer task owns it, so the entry goes when that task ends: after
/// [`RecordingHandle::stop`] closed the file, the same stream can be recorded again.
struct Registration {
    list: Arc<Mutex<Vec<(String, String)>>>,
    camera: String,
    stream: String,
}

impl Registration {
    fn take(
        list: &Arc<Mutex<Vec<(String, String)>>>,
        camera: &str,
        stream: &str,
    ) -> Result<Self, Error> {
        let mut rec = list.lock().unwrap_or_else(|e| e.into_inner());
        if rec.iter().any(|(c, s)| c == camera && s == stream) {
            return Err(Error::Corrupt(format!(
                "{camera}/{stream} is already recording"
            )));
        }
        rec.push((camera.to_owned(), stream.to_owned()));
        Ok(Self {
            list: list.clone(),
            camera: camera.to_owned(),
            stream: stream.to_owned(),
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut rec = self.list.lock().unwrap_or_else(|e| e.into_inner());
        rec.retain(|(c, s)| !(*c == self.camera && *s == self.stream));
    }
}

/// How often the index commit ticker looks at the queued fragment rows, and how old the
/// oldest must be: a burst of all streams' rows is committed at once, at most ~0.5 s
/// after its media was fsynced. (One commit a second instead saved nothing measurable on
/// the record bench and made recorded seconds reach playback and export a second later.)
const INDEX_TICK: Duration = Duration::from_millis(250);

/// How many streams' writers run at once on the blocking pool: a few at first (each
/// batch is mostly one fsync, so 4 keep up with 64 streams at 4 Mbit/s on a disk whose
/// fsync is fast), one more each time a stream's writer finds its queue backed up.
struct WriteSlots {
    sem: Arc<tokio::sync::Semaphore>,
    total: std::sync::atomic::AtomicUsize,
    max: usize,
}

/// A batch of this many queued fragments (≈ seconds of footage) means the stream's
/// writer fell behind: waiting for a slot, or its storage is slow.
const BACKLOG: usize = 3;

fn has_fragment(input: &Input) -> bool {
    matches!(input, Input::FileOps(ev) if ev.iter().any(|e| matches!(e, FileOp::Fragment(_))))
}

impl WriteSlots {
    fn new(config: &RecorderConfig) -> Arc<Self> {
        let n = config.write_slots.max(1);
        Arc::new(Self {
            sem: Arc::new(tokio::sync::Semaphore::new(n)),
            total: std::sync::atomic::AtomicUsize::new(n),
            max: config.max_write_slots.max(n),
        })
    }

    /// One more slot, up to the maximum; returns the new count if it grew.
    fn grow(&self) -> Option<usize> {
        let prev = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        self.sem.add_permits(1);
        Some(prev + 1)
    }
}

impl Recorder {
    /// Opens the data directory (creating it), finishes pending deletions and repairs files
    /// left open by a crash.
    pub fn open(data_dir: &Path, config: RecorderConfig) -> Result<Self, Error> {
        let storage = DirStorage::new(data_dir.join(RECORDINGS_DIR))
            .map_err(|e| Error::io(format!("creating {}", data_dir.display()), e))?;
        Self::open_with(
            data_dir,
            config,
            Arc::new(storage),
            Arc::new(RealClock::new()),
        )
    }

    /// [`open`](Self::open) with injected storage and clock (tests, other backends).
    pub fn open_with(
        data_dir: &Path,
        config: RecorderConfig,
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        vigil_datadir::private_fs::create_dir_all(data_dir)
            .map_err(|e| Error::io(format!("creating {}", data_dir.display()), e))?;
        let db = Db::open(&data_dir.join(INDEX_FILE))?;
        let store = Arc::new(Archive::new(storage, db, clock, config.retention.clone()));
        let report = recovery::recover(&store)?;
        if report.files > 0 {
            info!(
                "recovery: {} open files checked, {} fragments indexed, {} bytes of partial \
                 fragments truncated, {} empty files deleted",
                report.files, report.fragments_added, report.bytes_truncated, report.files_dropped
            );
        }
        Ok(Self {
            store,
            write_slots: WriteSlots::new(&config),
            config,
            data_dir: data_dir.to_path_buf(),
            recording: Arc::default(),
            read_only: false,
            committer: AtomicBool::new(false),
            stats: Arc::default(),
        })
    }

    /// Opens the data directory for reading only (`vigil export`, a second process beside
    /// a live `vigil serve`): no lock, no recovery, no garbage collection, nothing created
    /// or written. [`export`](Self::export), [`ranges`](Self::ranges), [`gaps`](Self::gaps)
    /// and [`totals`](Self::totals) work; recording and retention fail with
    /// [`Error::ReadOnly`]. Fragments a live recorder has fsynced but not yet indexed are
    /// simply not seen yet.
    pub fn open_read_only(data_dir: &Path) -> Result<Self, Error> {
        let index = data_dir.join(INDEX_FILE);
        if !index.is_file() {
            return Err(Error::NoIndex(index));
        }
        let db = Db::open_read_only(&index)?;
        let storage = DirStorage::existing(data_dir.join(RECORDINGS_DIR))
            .map_err(|e| Error::io(format!("opening {}", data_dir.display()), e))?;
        Ok(Self {
            store: Arc::new(Archive::new(
                Arc::new(storage),
                db,
                Arc::new(RealClock::new()),
                RetentionConfig::default(),
            )),
            config: RecorderConfig::default(),
            data_dir: data_dir.to_path_buf(),
            recording: Arc::default(),
            write_slots: WriteSlots::new(&RecorderConfig::default()),
            read_only: true,
            committer: AtomicBool::new(false),
            stats: Arc::default(),
        })
    }

    fn writable(&self) -> Result<(), Error> {
        match self.read_only {
            true => Err(Error::ReadOnly),
            false => Ok(()),
        }
    }

    /// Deletes the index of `data_dir` and rebuilds it from the files (`vigil reindex`).
    /// Must not run while a recorder has the directory open.
    pub fn reindex(data_dir: &Path) -> Result<RecoveryReport, Error> {
        let storage = DirStorage::new(data_dir.join(RECORDINGS_DIR))
            .map_err(|e| Error::io(format!("opening {}", data_dir.display()), e))?;
        // First finish the deletions the old index decided on (its `garbage` rows: rows
        // gone, file not yet unlinked when the recorder stopped), or the rebuild from the
        // files would bring them back. An index too broken to read has nothing to say.
        let old = data_dir.join(INDEX_FILE);
        if old.exists() {
            match Db::open(&old).and_then(|db| db.garbage()) {
                Ok(paths) => {
                    for p in paths {
                        match storage.remove(Path::new(&p)) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                                return Err(Error::io(format!("deleting {p}"), e))
                            }
                            _ => info!("reindex: deleted {p}, which retention had removed"),
                        }
                    }
                }
                Err(e) => warn!("reindex: the old index cannot be read ({e}); rebuilding"),
            }
        }
        for suffix in ["", "-wal", "-shm"] {
            let p = data_dir.join(format!("{INDEX_FILE}{suffix}"));
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("deleting {}", p.display()), e))
                }
                _ => {}
            }
        }
        let store = Archive::new(
            Arc::new(storage),
            Db::open(&data_dir.join(INDEX_FILE))?,
            Arc::new(RealClock::new()),
            RetentionConfig::default(),
        );
        recovery::reindex(&store)
    }

    /// How many streams' writers may run at once now (grows on slow storage, see
    /// [`RecorderConfig::max_write_slots`]).
    pub fn write_slots(&self) -> usize {
        self.write_slots.total.load(Ordering::Acquire)
    }

    /// The recordings: media storage, index, clock and retention limits.
    pub fn archive(&self) -> &Arc<Archive> {
        &self.store
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A blocking writer for one stream (what [`record`](Self::record) runs on the blocking pool).
    pub fn writer(&self, camera: &str, stream: &str) -> Result<StreamWriter, Error> {
        self.writable()?;
        let mut w = StreamWriter::new(self.store.clone(), camera, stream, self.config.segmenter())?;
        w.set_stats(self.stats.get(camera, stream));
        Ok(w)
    }

    /// Every stream recorded since the recorder opened, by (camera, stream), with its
    /// counters: bytes and fragments written, outages, write latency (for `/metrics`).
    pub fn stream_stats(&self) -> Vec<(String, String, StreamStatsSnapshot)> {
        self.stats.snapshot()
    }

    /// Starts recording `hub` as `camera`/`stream`. Must be called inside a tokio runtime.
    ///
    /// A task subscribes to the hub, runs the segmenter and queues its output (about one
    /// fragment a second) for the stream's writer, which runs on tokio's blocking pool
    /// (file I/O and fsync block; at most a few streams' writers at once, see
    /// [`RecorderConfig::write_slots`]; more when queues back up). If the writer still
    /// falls behind, the queue fills, the task stops reading, the hub subscriber lags and
    /// skips to the next key frame (logged by the hub), so a slow disk costs frames,
    /// never memory.
    ///
    /// The task takes the hub's items in order: audio frames go into the same files (a
    /// hub made with [`Hub::with_audio`] gives them an audio track), gaps become rows of
    /// the index (one per outage, with the source's reason), discontinuities start a new
    /// file.
    pub fn record(&self, camera: &str, stream: &str, hub: Hub) -> Result<RecordingHandle, Error> {
        self.record_inner(camera, stream, hub)
    }

    fn record_inner(&self, camera: &str, stream: &str, hub: Hub) -> Result<RecordingHandle, Error> {
        self.writable()?;
        check_name(camera)?;
        check_name(stream)?;
        // Released when the task ends (after the file is closed), or right here if the
        // writer cannot be created.
        let registration = Registration::take(&self.recording, camera, stream)?;
        let writer = self.writer(camera, stream)?;
        if !self.committer.swap(true, Ordering::AcqRel) {
            spawn_committer(Arc::downgrade(&self.store));
        }
        let mut seg = Segmenter::new(self.config.segmenter());
        seg.expect_audio(hub.has_audio());
        let capacity = (self.config.queue_len / 30).max(2);
        let (stop, stopped) = oneshot::channel();
        let stream = StreamTask {
            name: format!("{camera}/{stream}"),
            sub: hub.subscribe_bulk(),
            seg,
            queue: Vec::new(),
            capacity,
            backlog: BACKLOG.min(capacity),
            slots: self.write_slots.clone(),
        };
        let task = tokio::spawn(async move {
            // Dropped when this task ends: after `finish`, so a new recording of the
            // stream starts after this one's last file is closed and indexed.
            let _registration = registration;
            stream.run(writer, stopped).await;
        });
        Ok(RecordingHandle { task, stop })
    }

    fn stream_id(&self, camera: &str, stream: &str) -> Result<i64, Error> {
        self.store
            .index()
            .find_stream(camera, stream)?
            .ok_or_else(|| Error::UnknownStream {
                camera: camera.to_owned(),
                stream: stream.to_owned(),
            })
    }

    /// Plans the export of `[start_wall_us, end_wall_us)` (µs since the epoch).
    pub fn export(
        &self,
        camera: &str,
        stream: &str,
        start_wall_us: i64,
        end_wall_us: i64,
    ) -> Result<ExportPlan, Error> {
        let id = self.stream_id(camera, stream)?;
        export::plan(&self.store, id, start_wall_us, end_wall_us)
    }

    /// Recorded spans of a stream within a range (for a timeline).
    pub fn ranges(
        &self,
        camera: &str,
        stream: &str,
        start_wall_us: i64,
        end_wall_us: i64,
    ) -> Result<Vec<RecordedRange>, Error> {
        let id = self.stream_id(camera, stream)?;
        self.store.index().ranges(id, start_wall_us, end_wall_us)
    }

    /// Gaps of a stream within a range.
    pub fn gaps(
        &self,
        camera: &str,
        stream: &str,
        start_wall_us: i64,
        end_wall_us: i64,
    ) -> Result<Vec<GapRow>, Error> {
        let id = self.stream_id(camera, stream)?;
        self.store.index().gaps(id, start_wall_us, end_wall_us)
    }

    /// Storage totals.
    pub fn totals(&self) -> Result<Totals, Error> {
        self.store.index().totals()
    }

    /// Changes the retention limits at runtime (the NVR, when a camera's maximum age or
    /// the storage limit is edited) without reopening: the next pass, and the next
    /// full-disk cleanup, use them. A pass already running finishes with the old ones.
    pub fn set_retention(&self, retention: RetentionConfig) {
        self.store.set_retention(retention);
    }

    /// The current retention limits.
    pub fn retention(&self) -> RetentionConfig {
        self.store.retention()
    }

    /// Keeps footage of events longer than the cameras' maximum age (the NVR, from its
    /// event store, at start and when a camera's limits are edited): see
    /// [`EventRetention`]. Size limits and a full disk ignore it.
    pub fn set_event_retention(&self, events: EventRetention) {
        self.store.set_event_retention(events);
    }

    /// One retention pass now.
    pub fn run_retention(&self) -> Result<RetentionReport, Error> {
        self.writable()?;
        retention::run(&self.store)
    }

    /// Runs retention every `retention_interval` on the blocking pool until the returned
    /// task is aborted. A read-only recorder's task does nothing.
    pub fn spawn_retention(&self) -> tokio::task::JoinHandle<()> {
        if self.read_only {
            return tokio::spawn(async {});
        }
        let store = self.store.clone();
        let every = self.config.retention_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let s = store.clone();
                match tokio::task::spawn_blocking(move || retention::run(&s)).await {
                    Ok(Ok(r)) if r.files > 0 => {
                        info!("retention: deleted {} files, {} bytes", r.files, r.bytes)
                    }
                    Ok(Err(e)) => warn!("retention: {e}"),
                    _ => {}
                }
            }
        })
    }
}

/// Commits the fragment rows the writers queue (all streams in one transaction) every
/// [`INDEX_TICK`], on the blocking pool; ends with the store.
fn spawn_committer(store: std::sync::Weak<Archive>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INDEX_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(s) = store.upgrade() else { return };
            if s.has_pending() {
                let _ = tokio::task::spawn_blocking(move || s.commit_older_than(INDEX_TICK)).await;
            }
        }
    });
}

/// Carries out one queued input on the stream's writer (blocking). Returns false if the
/// writer closed its file after an error (the segmenter must then forget it).
fn write_input(writer: &mut StreamWriter, input: Input, name: &str) -> bool {
    let (r, ok) = match input {
        Input::FileOps(mut ops) => {
            let r = writer.apply_ops(&mut ops);
            let ok = r.is_ok();
            (r, ok)
        }
        Input::Gap {
            start_wall_us,
            end_wall_us,
            reason,
        } => (writer.record_gap(start_wall_us, end_wall_us, &reason), true),
        Input::Discontinuity { pts, reason } => {
            // For the log line of the cut (the task's segmenter cuts).
            writer.discontinuity(pts, &reason);
            (Ok(()), true)
        }
    };
    if let Err(e) = r {
        warn!("recording {name}: {e}");
    }
    ok
}

/// One stream's recording: takes the hub's items, runs the segmenter and keeps the
/// writer busy with one batch at a time on the blocking pool. Segmenter and writer
/// results meet in this one task, so a write error that closed the file resets the
/// segmenter right when the batch comes back (the next key frame starts a new file;
/// what the segmenter produced for the closed file meanwhile is dropped by the writer).
struct StreamTask {
    name: String,
    sub: vigil_hub::Subscriber,
    seg: Segmenter,
    /// What the writer has not been given yet, in order.
    queue: Vec<Input>,
    /// Fragments the queue may hold (one more, see `run`) before the task stops reading
    /// the hub.
    capacity: usize,
    /// Fragments in one batch that mean the writer fell behind.
    backlog: usize,
    slots: Arc<WriteSlots>,
}

/// A writer batch running on the blocking pool; gives back the writer, the emptied batch
/// (its allocation is reused) and whether every input went through.
type InFlight = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<(StreamWriter, Vec<Input>, bool)>> + Send>,
>;

impl StreamTask {
    async fn run(mut self, writer: StreamWriter, mut stop: oneshot::Receiver<()>) {
        let mut idle = Some((writer, Vec::new()));
        let mut in_flight: Option<InFlight> = None;
        let mut hub_open = true;
        // Dropping the handle does not stop the recording.
        let mut handle_gone = false;
        loop {
            if in_flight.is_none() && !self.queue.is_empty() {
                if let Some((writer, batch)) = idle.take() {
                    in_flight = Some(self.dispatch(writer, batch));
                }
            }
            // As many as a channel of `capacity` entries plus the one its sender holds.
            let room = self.fragments_queued() <= self.capacity;
            tokio::select! {
                item = self.sub.recv(), if hub_open && room => match item {
                    Ok(item) => self.take(item),
                    // The hub is gone: wait for stop, writing what is queued.
                    Err(_) => hub_open = false,
                },
                done = async { in_flight.as_mut()?.await }, if in_flight.is_some() => {
                    in_flight = None;
                    match done {
                        Some((writer, batch, ok)) => {
                            if !ok {
                                self.seg.reset();
                            }
                            idle = Some((writer, batch));
                        }
                        None => return,
                    }
                }
                r = &mut stop, if !handle_gone => match r {
                    Ok(()) => break,
                    Err(_) => handle_gone = true,
                },
                // The hub is gone, nothing is being written, and no one can stop us any
                // more: finish as a stop would (every branch disabled would panic).
                else => break,
            }
        }
        // Stopping: what is queued is written, then the pending fragment, and the file
        // is closed.
        if let Some(f) = in_flight.take() {
            match f.await {
                Some((writer, batch, ok)) => {
                    if !ok {
                        self.seg.reset();
                    }
                    idle = Some((writer, batch));
                }
                None => return,
            }
        }
        let Some((mut writer, _)) = idle else { return };
        let mut out = Vec::new();
        self.seg.finish(&mut out);
        if !out.is_empty() {
            self.queue.push(Input::FileOps(out));
        }
        let (queue, name) = (std::mem::take(&mut self.queue), self.name.clone());
        let _ = tokio::task::spawn_blocking(move || {
            for input in queue {
                write_input(&mut writer, input, &name);
            }
            if let Err(e) = writer.finish() {
                warn!("recording {name}: {e}");
            }
        })
        .await;
    }

    /// Runs one item through the segmenter into the queue.
    fn take(&mut self, item: Item) {
        let mut out = Vec::new();
        match item {
            Item::Video(au) => self.seg.push(au, &mut out),
            Item::Audio(frame) => self.seg.push_audio(frame, &mut out),
            // An outage still open when the source stopped is not written: the recording
            // stops with it, and the next start records the time between as "not
            // recording".
            Item::Gap(gap) if gap.resume_pts.is_none() => {}
            Item::Gap(gap) => {
                let len_ms = gap.end_wall_us.saturating_sub(gap.start_wall_us) / 1000;
                info!(stream = %self.name, reason = %gap.reason, gap_ms = len_ms, "camera outage");
                self.queue.push(Input::Gap {
                    start_wall_us: gap.start_wall_us,
                    end_wall_us: gap.end_wall_us,
                    reason: format!("camera: {}", gap.reason),
                });
            }
            Item::Discontinuity(d) => {
                warn!(stream = %self.name, reason = %d.reason,
                      "camera timestamps jumped; a new file starts at the next key frame");
                self.seg.mark_discontinuity(d.pts);
                self.queue.push(Input::Discontinuity {
                    pts: d.pts,
                    reason: d.reason,
                });
            }
        }
        if !out.is_empty() {
            self.queue.push(Input::FileOps(out));
        }
    }

    fn fragments_queued(&self) -> usize {
        self.queue.iter().filter(|i| has_fragment(i)).count()
    }

    /// Hands the queue to the writer on the blocking pool, once a write slot is free.
    fn dispatch(&mut self, mut writer: StreamWriter, mut batch: Vec<Input>) -> InFlight {
        std::mem::swap(&mut batch, &mut self.queue);
        // Fragments, not inputs: a file start, a gap report and the first fragment
        // arrive together at startup without anything being behind.
        let behind = batch.iter().filter(|i| has_fragment(i)).count();
        if behind >= self.backlog {
            if let Some(n) = self.slots.grow() {
                info!(
                    "recording {}: writer {behind} fragments behind (slow storage?): {n} \
                     streams may now write at once",
                    self.name
                );
            }
        }
        let (name, slots) = (self.name.clone(), self.slots.clone());
        Box::pin(async move {
            // Never closed, so acquiring cannot fail; without a permit, write anyway.
            let permit = slots.sem.clone().acquire_owned().await.ok();
            let n = name.clone();
            let done = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let mut ok = true;
                for input in batch.drain(..) {
                    ok &= write_input(&mut writer, input, &n);
                }
                (writer, batch, ok)
            })
            .await;
            match done {
                Ok(back) => Some(back),
                Err(e) => {
                    warn!("recording {name}: writer failed: {e}");
                    None
                }
            }
        })
    }
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
