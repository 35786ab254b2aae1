//! The stream writer: carries out the [`Segmenter`]'s file operations on storage and index, in
//! crash-safe order. Blocking; the [`Recorder`](crate::Recorder) runs one per stream on tokio's
//! blocking pool, fed the output of a segmenter that runs in the stream's async task
//! (about one batch of file operations per fragment, not one wake-up per access unit).
//!
//! Per fragment: append `moof`+`mdat` → fsync the file → queue the fragment row, committed
//! with every stream's rows of the last second in one transaction (`synchronous=FULL`,
//! see [`Archive::queue_fragment`](crate::archive::Archive::queue_fragment)). A crash between any two steps leaves either bytes
//! that no row points at (recovery indexes or truncates them) — never a row pointing at
//! missing bytes.
//!
//! Wall-clock time of a file is fixed when it starts: the capture time of its first access
//! unit, but never earlier than where the stream's previous file ended (so a host clock
//! stepped back cannot make recordings overlap), and exactly that end when the new file
//! continues the previous one's timeline (rotation, parameter change). Inside a file, wall
//! time is derived from decode time ([`wall_at`]), never from the host clock.

use std::path::Path;
use std::sync::Arc;
use vigil_media::time::Ticks90k;

use tracing::{info, warn};
use vigil_media::AccessUnit;

use vigil_media::audio::AudioFrame;

use crate::archive::Archive;
use crate::db::{wall_at, FragmentRow};
use crate::retention;
use crate::segment::{file_path, EndReason, FileOp, FragmentOut, Segmenter, SegmenterConfig};
use crate::stats::StreamStats;
use crate::storage::{is_no_space, WriteFile};
use crate::Error;

/// The ingest's latest gap row, so that the file break the same outage causes (the
/// writer's own gap, which comes after it) updates it instead of adding a second row.
#[derive(Clone, Debug)]
struct LastGap {
    id: i64,
    start: i64,
    end: i64,
    reason: String,
}

struct OpenFile {
    id: i64,
    path: String,
    handle: Box<dyn WriteFile>,
    /// Durable, indexed length.
    len: u64,
    start_wall_us: i64,
    end_wall_us: i64,
}

/// Writes one stream's access units into segment files and the index.
pub struct StreamWriter {
    store: Arc<Archive>,
    camera: String,
    stream: String,
    stream_id: i64,
    seg: Segmenter,
    open: Option<OpenFile>,
    /// Where the stream's recordings end, so that new files never start earlier.
    last_end_wall: Option<i64>,
    last_end_reason: Option<EndReason>,
    /// A write error closed the file early ([`Self::abandon`]) and no file was started
    /// since. File operations the segmenter made before it learned of the error may still
    /// come, and a `StartFile` among them "continues" a timeline that now has a hole: it
    /// must start at its own capture time, with a gap row, not at the abandoned file's end.
    abandoned: bool,
    last_gap: Option<LastGap>,
    /// What the ingest said about the latest discontinuity, for the log line of the cut.
    discontinuity_reason: Option<String>,
    ops: Vec<FileOp>,
    /// Monitoring counters (the recorder's shared ones once [`Self::set_stats`] ran).
    stats: Arc<StreamStats>,
}

impl StreamWriter {
    /// A writer for `camera`/`stream` (names checked with [`crate::check_name`]).
    pub fn new(
        store: Arc<Archive>,
        camera: &str,
        stream: &str,
        config: SegmenterConfig,
    ) -> Result<Self, Error> {
        crate::check_name(camera)?;
        crate::check_name(stream)?;
        let (stream_id, last_end_wall) = {
            let mut db = store.index();
            let id = db.stream_id(camera, stream)?;
            (id, db.stream_end_wall(id)?)
        };
        Ok(Self {
            store,
            camera: camera.to_owned(),
            stream: stream.to_owned(),
            stream_id,
            seg: Segmenter::new(config),
            open: None,
            last_end_wall,
            last_end_reason: None,
            abandoned: false,
            last_gap: None,
            discontinuity_reason: None,
            ops: Vec::new(),
            stats: Arc::default(),
        })
    }

    /// Counts into `stats` from now on (the recorder's per-stream counters, which outlive
    /// this writer).
    pub fn set_stats(&mut self, stats: Arc<StreamStats>) {
        self.stats = stats;
    }

    /// The stream's id in the index.
    pub fn stream_id(&self) -> i64 {
        self.stream_id
    }

    /// Path and id of the open file, if any.
    pub fn open_file(&self) -> Option<(i64, &str)> {
        self.open.as_ref().map(|o| (o.id, o.path.as_str()))
    }

    /// Records one access unit. Errors are logged by the caller; the writer stays usable
    /// (a failed file is closed at its last durable fragment and the next key frame
    /// starts a new one).
    pub fn push(&mut self, au: AccessUnit) -> Result<(), Error> {
        let mut ops = std::mem::take(&mut self.ops);
        self.seg.push(au, &mut ops);
        let r = self.apply(&mut ops);
        ops.clear();
        self.ops = ops;
        r
    }

    /// Records one audio frame of the stream (see `segment_audio.rs` for how it is placed).
    pub fn push_audio(&mut self, frame: AudioFrame) -> Result<(), Error> {
        let mut ops = std::mem::take(&mut self.ops);
        self.seg.push_audio(frame, &mut ops);
        let r = self.apply(&mut ops);
        ops.clear();
        self.ops = ops;
        r
    }

    /// Records the stream's audio: a fresh recording waits up to one fragment for the
    /// first audio frame so that its file has an audio track.
    pub fn expect_audio(&mut self, expect: bool) {
        self.seg.expect_audio(expect);
    }

    /// Records an outage the ingest reported: no footage from `start_wall_us` (its last
    /// access unit before) to `end_wall_us` (its first after), because of `reason`.
    ///
    /// Whatever the outage's length, the index gets one row with this reason: a long
    /// outage also ends the file (the ingest advances pts by the outage, which the
    /// segmenter sees as a forward jump); that file break, which comes after this report
    /// (the hub delivers the gap before the first access unit after it), updates the row
    /// to the file boundaries' range (exact against the recordings) and keeps the
    /// ingest's reason. A short one stays inside the file (its last picture is held) and
    /// only this row tells that the camera was gone.
    pub fn record_gap(
        &mut self,
        start_wall_us: i64,
        end_wall_us: i64,
        reason: &str,
    ) -> Result<(), Error> {
        if end_wall_us <= start_wall_us {
            return Ok(());
        }
        self.stats.on_gap();
        self.note_gap(start_wall_us, end_wall_us, reason, true)
    }

    /// The ingest reports that the camera's timestamps jumped at `pts` (and were re-based):
    /// the file ends before the first key frame at or after it and a new one starts there,
    /// logged with `reason`.
    pub fn discontinuity(&mut self, pts: i64, reason: &str) {
        self.discontinuity_reason = Some(reason.to_owned());
        self.seg.mark_discontinuity(pts);
    }

    /// Inserts a gap row; a file break (`from_ingest` false) that overlaps the ingest's
    /// latest report of an outage updates that row instead: the writer's range matches
    /// the files, the ingest's reason is the real one.
    fn note_gap(
        &mut self,
        start: i64,
        end: i64,
        reason: &str,
        from_ingest: bool,
    ) -> Result<(), Error> {
        let reported = self.last_gap.take();
        let mut db = self.store.index();
        match reported.filter(|g| !from_ingest && start <= g.end && g.start <= end) {
            // One outage seen from both sides: a later break is about another one.
            Some(g) => db.update_gap(g.id, start, end, &g.reason)?,
            None => {
                let id = db.insert_gap(self.stream_id, start, end, reason)?;
                if from_ingest {
                    self.last_gap = Some(LastGap {
                        id,
                        start,
                        end,
                        reason: reason.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Carries out the file operations of a [`Segmenter`] the caller runs itself (the
    /// [`Recorder`](crate::Recorder) runs it in the stream's async task and sends only its
    /// output here). After an error the open file was closed at its last complete
    /// fragment and the caller must [`reset`](Segmenter::reset) its segmenter so that the
    /// next key frame starts a new file; fragments of the closed file that arrive before
    /// that are dropped.
    pub fn apply_ops(&mut self, ops: &mut Vec<FileOp>) -> Result<(), Error> {
        self.apply(ops)
    }

    /// Writes what is pending and closes the open file.
    pub fn finish(&mut self) -> Result<(), Error> {
        let mut ops = Vec::new();
        self.seg.finish(&mut ops);
        self.apply(&mut ops)
    }

    fn apply(&mut self, ops: &mut Vec<FileOp>) -> Result<(), Error> {
        let mut first_err = None;
        for ev in ops.drain(..) {
            let r = match ev {
                FileOp::StartFile {
                    init,
                    capture_us,
                    continues,
                    params,
                } => {
                    match continues {
                        Some(EndReason::ParamsChanged) => info!(
                            camera = %self.camera, stream = %self.stream,
                            "codec parameters changed ({}x{}): starting a new file",
                            params.width, params.height
                        ),
                        Some(EndReason::Discontinuity) => warn!(
                            camera = %self.camera, stream = %self.stream,
                            "camera timestamps jumped ({}): starting a new file",
                            self.discontinuity_reason.take().as_deref().unwrap_or("reported by the ingest")
                        ),
                        _ => {}
                    }
                    let continues = if self.abandoned { None } else { continues };
                    // Only a caller's segmenter reset after an error, racing a new file
                    // already queued, starts a file while one is open: close it first.
                    match self.open.is_some() {
                        true => self
                            .end_file(EndReason::StreamEnd)
                            .and_then(|()| self.start_file(&init, capture_us, continues)),
                        false => self.start_file(&init, capture_us, continues),
                    }
                }
                FileOp::Fragment(f) => match self.open.is_some() {
                    true => self.write_fragment(&f),
                    false => Ok(()), // the file failed earlier in this batch
                },
                FileOp::EndFile(reason) => self.end_file(reason),
            };
            if let Err(e) = r {
                warn!(camera = %self.camera, stream = %self.stream, "recording error: {e}; \
                       closing the file at its last complete fragment");
                self.abandon();
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn start_file(
        &mut self,
        init: &[u8],
        capture_us: i64,
        continues: Option<EndReason>,
    ) -> Result<(), Error> {
        let mut start = match (continues, self.last_end_wall) {
            (Some(_), Some(prev)) => prev,
            (None, Some(prev)) => capture_us.max(prev),
            (_, None) => capture_us,
        };
        if continues.is_none() {
            if let Some(prev) = self.last_end_wall.filter(|p| start > *p) {
                let reason = match self.abandoned {
                    true => "write error",
                    false => self
                        .last_end_reason
                        .map_or("not recording", EndReason::as_str),
                };
                self.note_gap(prev, start, reason, false)?;
                if self.last_end_reason.is_some() {
                    info!(camera = %self.camera, stream = %self.stream,
                          "{reason}: new file, gap of {} ms recorded", (start - prev) / 1000);
                }
            }
        }
        let init_len = init.len() as u64;
        // A name can be taken only by a file starting in the same microsecond (one left
        // from a crash); moving the start a microsecond later keeps times non-overlapping.
        let mut attempt = 0;
        let (id, path, mut handle) = loop {
            attempt += 1;
            let path = file_path(&self.camera, &self.stream, start);
            let id = match self
                .store
                .index()
                .insert_file(self.stream_id, &path, start, init_len)
            {
                Ok(id) => id,
                Err(Error::Db(e)) if attempt < 10 && is_constraint(&e) => {
                    start += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match self.with_space(|s| s.storage.create(Path::new(&path))) {
                Ok(h) => break (id, path, h),
                Err(e) => {
                    self.store.index().move_to_garbage(&[id])?;
                    // Our row is gone; the file it names is someone else's or absent.
                    self.store.index().remove_garbage(&path)?;
                    if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 10 {
                        start += 1;
                        continue;
                    }
                    return Err(Error::io(format!("creating {path}"), e));
                }
            }
        };
        let written = self
            .with_space(|_| handle.append(init))
            .and_then(|()| handle.sync());
        let mut open = OpenFile {
            id,
            path,
            handle,
            len: 0,
            start_wall_us: start,
            end_wall_us: start,
        };
        if let Err(e) = written {
            let ctx = format!("writing {}", open.path);
            open.len = 0;
            self.open = Some(open);
            return Err(Error::io(ctx, e));
        }
        open.len = init_len;
        self.open = Some(open);
        self.last_end_wall = Some(start);
        self.abandoned = false;
        Ok(())
    }

    fn write_fragment(&mut self, f: &FragmentOut) -> Result<(), Error> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        // The header and the samples' own buffers, written in place (no copy).
        let bufs: Vec<&[u8]> = std::iter::once(f.header.as_slice())
            .chain(f.data.iter().map(|d| d.as_ref()))
            .collect();
        let offset = open.len;
        // The host's monotonic clock, not the injected one: this measures the storage.
        let began = std::time::Instant::now();
        let row = FragmentRow {
            file_id: open.id,
            seq: f.seq,
            byte_offset: offset,
            byte_len: f.len(),
            data_offset: offset + f.header.len() as u64,
            start_90k: f.base_decode_time,
            duration_90k: f.duration_90k(),
            start_wall_us: wall_at(open.start_wall_us, f.base_decode_time),
            end_wall_us: wall_at(open.start_wall_us, f.base_decode_time + f.duration_90k()),
            samples: f.samples.clone(),
            audio: f.audio.clone(),
        };
        let mut result = open.handle.append_vectored(&bufs);
        if let Err(e) = &result {
            // Undo a partial append, so the file stays a sequence of whole fragments.
            let _ = self.store.storage.truncate(Path::new(&open.path), offset);
            if is_no_space(e) {
                warn!(camera = %self.camera, stream = %self.stream,
                      "disk full while writing {}: deleting the oldest recordings to make room",
                      open.path);
                let need = row.byte_len;
                match retention::free_space_for(&self.store, need) {
                    Ok(freed) => info!("freed {freed} bytes; retrying the write"),
                    Err(e) => warn!("could not free space: {e}"),
                }
                let open = self.open.as_mut().ok_or(Error::Stopped)?;
                result = open.handle.append_vectored(&bufs);
                if result.is_err() {
                    let _ = self.store.storage.truncate(Path::new(&open.path), offset);
                }
            }
        }
        let open = self.open.as_mut().ok_or(Error::Stopped)?;
        if let Err(e) = result {
            if is_no_space(&e) {
                // Keep the file open: the next fragment tries again after more deletions.
                warn!(camera = %self.camera, stream = %self.stream,
                      "disk still full: fragment {} of {} ({} ms) lost", f.seq, open.path,
                      Ticks90k(i64::try_from(f.duration_90k()).unwrap_or(i64::MAX)).to_micros() / 1000);
                return Ok(());
            }
            return Err(Error::io(format!("writing {}", open.path), e));
        }
        open.handle
            .sync()
            .map_err(|e| Error::io(format!("fsync {}", open.path), e))?;
        self.stats.on_fragment(row.byte_len, began.elapsed());
        open.len += row.byte_len;
        open.end_wall_us = row.end_wall_us;
        self.last_end_wall = Some(row.end_wall_us);
        // Media fsynced above, so the row may point at it.
        self.store.queue_fragment(row);
        Ok(())
    }

    fn end_file(&mut self, reason: EndReason) -> Result<(), Error> {
        if let Some(open) = self.open.take() {
            self.store.index().close_file(open.id)?;
            self.last_end_wall = Some(open.end_wall_us);
            if !reason.is_continuous() && reason != EndReason::StreamEnd {
                warn!(camera = %self.camera, stream = %self.stream,
                      "{}: closed {}", reason.as_str(), open.path);
            }
        }
        self.last_end_reason = Some(reason);
        Ok(())
    }

    /// After an error: close the file at its last durable fragment.
    fn abandon(&mut self) {
        if let Some(open) = self.open.take() {
            let _ = self.store.storage.truncate(Path::new(&open.path), open.len);
            if let Err(e) = self.store.index().close_file(open.id) {
                warn!("could not close {} in the index: {e}", open.path);
            }
            self.last_end_wall = Some(open.end_wall_us);
        }
        self.abandoned = true;
        self.seg.reset();
    }

    /// Runs `op`; on ENOSPC frees space through retention and runs it once more.
    fn with_space<T>(
        &mut self,
        mut op: impl FnMut(&Archive) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        match op(&self.store) {
            Err(e) if is_no_space(&e) => {
                warn!(camera = %self.camera, stream = %self.stream,
                      "disk full: deleting the oldest recordings to make room");
                if let Err(e) = retention::free_space_for(&self.store, 1 << 20) {
                    warn!("could not free space: {e}");
                }
                op(&self.store)
            }
            r => r,
        }
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if self.open.is_some() {
            if let Err(e) = self.finish() {
                warn!("closing {}/{}: {e}", self.camera, self.stream);
            }
        }
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

#[cfg(test)]
#[path = "writer_tests.rs"]
pub(crate) mod tests;
