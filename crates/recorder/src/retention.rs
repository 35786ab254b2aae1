//! Retention: deletes the oldest recordings first, by age per camera and by total bytes,
//! and frees space when a write hits a full disk. Never deletes an open file.
//!
//! Every deletion goes through the `garbage` table: (1) in one transaction the files'
//! paths are listed in `garbage` and their rows deleted, (2) the files are unlinked,
//! (3) the garbage rows are deleted. A crash between the steps leaves garbage rows that
//! [`collect_garbage`] finishes at startup; no index row ever points at a missing file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tracing::{info, warn};

use crate::writer::Store;
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

/// What a retention pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files deleted.
    pub files: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// Steps 2 and 3 for every pending garbage row: unlink, then forget. Idempotent.
pub fn collect_garbage(store: &Store) -> Result<u64, Error> {
    let paths = store.db().garbage()?;
    let mut n = 0;
    for p in paths {
        store
            .storage
            .remove(Path::new(&p))
            .map_err(|e| Error::io(format!("deleting {p}"), e))?;
        store.db().remove_garbage(&p)?;
        n += 1;
    }
    Ok(n)
}

/// Deletes files (rows first, through the garbage table, then the files).
fn delete_files(store: &Store, files: &[crate::db::FileRow]) -> Result<RetentionReport, Error> {
    if files.is_empty() {
        return Ok(RetentionReport::default());
    }
    let ids: Vec<i64> = files.iter().map(|f| f.id).collect();
    store.db().move_to_garbage(&ids)?;
    collect_garbage(store)?;
    Ok(RetentionReport {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.bytes.max(0) as u64).sum(),
    })
}

/// One retention pass: age limits per camera, then the byte limit, then free space.
pub fn run(store: &Store) -> Result<RetentionReport, Error> {
    let mut report = RetentionReport::default();
    let now = store.clock.wall_us();
    // One consistent setting for the whole pass, even if the NVR changes it meanwhile.
    let retention = store.retention();
    for (camera, age) in &retention.max_age {
        let cutoff = now.saturating_sub(i64::try_from(age.as_micros()).unwrap_or(i64::MAX));
        let old = store.db().closed_files_of_camera_before(camera, cutoff)?;
        let r = delete_files(store, &old)?;
        if r.files > 0 {
            info!(camera = %camera, "retention: deleted {} files older than {:?}", r.files, age);
        }
        report.files += r.files;
        report.bytes += r.bytes;
    }
    if let Some(max) = retention.max_bytes {
        loop {
            let total = store.db().totals()?.bytes;
            if total <= max {
                break;
            }
            let oldest = store.db().oldest_closed_files(16)?;
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
        let r = free_space_for(store, 0)?;
        report.files += r;
    }
    Ok(report)
}

/// Deletes the oldest closed files until `need` bytes plus the configured free margin are
/// available (at least one file when called for a failed write). Returns bytes freed.
pub fn free_space_for(store: &Store, need: u64) -> Result<u64, Error> {
    let target = need.saturating_add(store.retention().min_free_bytes);
    let mut freed = 0;
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
        let Some(oldest) = store.db().oldest_closed_files(1)?.pop() else {
            if freed == 0 {
                warn!("disk full and no closed recording left to delete");
            }
            return Ok(freed);
        };
        info!("disk space: deleting oldest recording {}", oldest.path);
        freed += delete_files(store, std::slice::from_ref(&oldest))?.bytes;
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
