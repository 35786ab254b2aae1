//! Retention: deletes the oldest recordings first, by age per camera (footage of events
//! may be kept longer, see [`EventRetention`]) and by total bytes, and frees space when a
//! write hits a full disk. Never deletes an open file.
//!
//! Every deletion goes through the `garbage` table: (1) in one transaction the files'
//! paths are listed in `garbage` and their rows deleted, (2) the files are unlinked,
//! (3) the garbage rows are deleted. A crash between the steps leaves garbage rows that
//! [`collect_garbage`] finishes at startup; no index row ever points at a missing file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::archive::Archive;
use crate::Error;

/// Retention limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Maximum bytes of recordings in the data directory (all cameras).
    pub max_bytes: Option<u64>,
    /// Maximum age of recordings, per camera name.
    pub max_age: BTreeMap<String, Duration>,
    /// Free space to keep on the filesystem; below it the oldest files are deleted.
    pub min_free_bytes: u64,
}

/// The spans of footage a camera's events cover that overlap `[from_us, to_us]`, as
/// `(start_us, end_us)` in µs since the epoch (an event still going on ends at `i64::MAX`).
/// Called on the blocking pool during a retention pass, once per camera with an event age.
/// If the events cannot be read it should answer `(i64::MIN, i64::MAX)`: keeping footage
/// a little longer is better than deleting an event's.
pub type ProtectedSpans = Arc<dyn Fn(&str, i64, i64) -> Vec<(i64, i64)> + Send + Sync>;

/// Longer retention for footage of events (motion), set at runtime by the NVR through
/// [`Recorder::set_event_retention`](crate::Recorder::set_event_retention).
///
/// Kept apart from [`RetentionConfig`] (which the configuration file fills and which
/// compares and prints) because the recorder knows nothing of events: the NVR owns the
/// event store and answers through [`spans`](Self::spans). The age pass keeps a closed file
/// past its camera's [`RetentionConfig::max_age`] while it overlaps an event span that
/// ended less than the camera's [`EventRetention::max_age`] ago. Size limits ignore it: `max_bytes`,
/// `min_free_bytes` and a full disk still delete the oldest first, event or not, so event
/// footage can never fill the disk.
#[derive(Clone)]
pub struct EventRetention {
    /// How long footage overlapping an event is kept, per camera name (only a value above
    /// the camera's `RetentionConfig::max_age` changes anything; a camera without one
    /// has no age limit at all).
    pub max_age: BTreeMap<String, Duration>,
    /// Where the events are.
    pub spans: ProtectedSpans,
}

impl Default for EventRetention {
    fn default() -> Self {
        Self {
            max_age: BTreeMap::new(),
            spans: Arc::new(|_, _, _| Vec::new()),
        }
    }
}

impl std::fmt::Debug for EventRetention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRetention")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// What a retention pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files deleted.
    pub files: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// Steps 2 and 3 for every pending garbage row: unlink, then forget. Idempotent.
pub fn collect_garbage(store: &Archive) -> Result<u64, Error> {
    let paths = store.index().garbage()?;
    let mut n = 0;
    for p in paths {
        store
            .storage
            .remove(Path::new(&p))
            .map_err(|e| Error::io(format!("deleting {p}"), e))?;
        store.index().remove_garbage(&p)?;
        n += 1;
    }
    Ok(n)
}

/// Deletes files (rows first, through the garbage table, then the files).
fn delete_files(store: &Archive, files: &[crate::db::FileRow]) -> Result<RetentionReport, Error> {
    if files.is_empty() {
        return Ok(RetentionReport::default());
    }
    let ids: Vec<i64> = files.iter().map(|f| f.id).collect();
    store.index().move_to_garbage(&ids)?;
    collect_garbage(store)?;
    Ok(RetentionReport {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.bytes.max(0) as u64).sum(),
    })
}

/// One retention pass: age limits per camera, then the byte limit, then free space.
pub fn run(store: &Archive) -> Result<RetentionReport, Error> {
    let mut report = RetentionReport::default();
    let now = store.clock.wall_us();
    // One consistent setting for the whole pass, even if the NVR changes it meanwhile.
    let retention = store.retention();
    let events = store.event_retention();
    for (camera, age) in &retention.max_age {
        let cutoff = now.saturating_sub(age_us(*age));
        let mut old = store
            .index()
            .closed_files_of_camera_before(camera, cutoff)?;
        let mut kept = 0;
        if let Some(event_age) = events.max_age.get(camera).filter(|e| *e > age) {
            let before = old.len();
            let event_cutoff = now.saturating_sub(age_us(*event_age));
            old = without_event_footage(&events.spans, camera, event_cutoff, old);
            kept = before - old.len();
        }
        // Footage not yet in the cloud stays until it is (docs/cloud.md); only the size
        // limits below delete it, counted as lost.
        let before = old.len();
        {
            let db = store.index();
            let mut keep = Vec::with_capacity(old.len());
            for f in old {
                if !db.cloud_holds(&f)? {
                    keep.push(f);
                }
            }
            old = keep;
        }
        let held = before - old.len();
        if held > 0 {
            info!(camera = %camera, "retention: keeping {held} files past {:?} until they \
                  are uploaded", age);
        }
        let r = delete_files(store, &old)?;
        if r.files > 0 {
            info!(camera = %camera, "retention: deleted {} files older than {:?} ({kept} older \
                  files with event footage kept)", r.files, age);
        }
        report.files += r.files;
        report.bytes += r.bytes;
    }
    if let Some(max) = retention.max_bytes {
        loop {
            let total = store.index().totals()?.bytes;
            if total <= max {
                break;
            }
            let oldest = store.index().oldest_closed_files(16)?;
            if oldest.is_empty() {
                break;
            }
            // Delete just enough of the oldest.
            let mut excess = total - max;
            let mut batch = Vec::new();
            for f in oldest {
                if excess == 0 {
                    break;
                }
                excess = excess.saturating_sub(f.bytes.max(0) as u64);
                batch.push(f);
            }
            let r = delete_files(store, &batch)?;
            report.files += r.files;
            report.bytes += r.bytes;
        }
    }
    if retention.min_free_bytes > 0 {
        let r = free_space(store, 0)?;
        report.files += r.files;
        report.bytes += r.bytes;
    }
    Ok(report)
}

fn age_us(age: Duration) -> i64 {
    i64::try_from(age.as_micros()).unwrap_or(i64::MAX)
}

/// `files` (a camera's, past its age limit) without those overlapping one of its event
/// spans that ended at or after `event_cutoff` (touching counts: the file holds the
/// event's first or last picture).
fn without_event_footage(
    spans: &ProtectedSpans,
    camera: &str,
    event_cutoff: i64,
    files: Vec<crate::db::FileRow>,
) -> Vec<crate::db::FileRow> {
    let (Some(from), Some(to)) = (
        files.iter().map(|f| f.start_wall_us).min(),
        files.iter().map(|f| f.end_wall_us).max(),
    ) else {
        return files;
    };
    let mut young: Vec<(i64, i64)> = spans(camera, from, to)
        .into_iter()
        .filter(|&(start, end)| end >= event_cutoff && start <= end)
        .collect();
    young.sort_unstable();
    // Merged into disjoint spans sorted by start: one binary search per file.
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(young.len());
    for (start, end) in young {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    files
        .into_iter()
        .filter(|f| {
            // The first merged span ending at or after the file's start overlaps it if it
            // starts by the file's end; the file goes if there is none or it starts later.
            let i = merged.partition_point(|&(_, end)| end < f.start_wall_us);
            merged
                .get(i)
                .is_none_or(|&(start, _)| start > f.end_wall_us)
        })
        .collect()
}

/// Deletes the oldest closed files until `need` bytes plus the configured free margin are
/// available (at least one file when called for a failed write). Returns bytes freed.
pub fn free_space_for(store: &Archive, need: u64) -> Result<u64, Error> {
    Ok(free_space(store, need)?.bytes)
}

/// [`free_space_for`], counting files too.
fn free_space(store: &Archive, need: u64) -> Result<RetentionReport, Error> {
    let target = need.saturating_add(store.retention().min_free_bytes);
    let mut freed = RetentionReport::default();
    let mut first = need > 0;
    loop {
        let free = store
            .storage
            .free_space()
            .map_err(|e| Error::io("checking free space", e))?;
        if free >= target && !first {
            return Ok(freed);
        }
        first = false;
        let Some(oldest) = store.index().oldest_closed_files(1)?.pop() else {
            if freed.files == 0 {
                warn!("disk full and no closed recording left to delete");
            }
            return Ok(freed);
        };
        info!("disk space: deleting oldest recording {}", oldest.path);
        let r = delete_files(store, std::slice::from_ref(&oldest))?;
        freed.files += r.files;
        freed.bytes += r.bytes;
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
