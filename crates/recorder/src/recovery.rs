//! Startup repair and index rebuilding, both from the files themselves.
//!
//! - [`recover`]: every file the index lists as open was being written when the recorder
//!   stopped. Its bytes are scanned ([`vigil_media::fmp4::scan`]); a partial last fragment
//!   is truncated away; fragments that were fsynced but not yet indexed (a crash between
//!   fsync and commit) get their rows; the file is marked closed. A file with no complete
//!   fragment is deleted. Pending garbage is collected first.
//! - [`reindex`]: fills an empty index from every file under the recordings root. File
//!   names carry the camera, stream and start wall time, so the rebuilt index equals the
//!   original one (except the `gap` table, whose reasons live nowhere else).

use std::path::Path;

use tracing::{info, warn};
use vigil_media::fmp4::{self, Sample, ScanResult, ScannedFragment};

use crate::archive::Archive;
use crate::db::{wall_at, AudioRun, FileState, FragmentRow};
use crate::retention::collect_garbage;
use crate::segment::{parse_file_path, VIDEO_TRACK_ID};
use crate::segment_audio::AUDIO_TRACK_ID;
use crate::Error;

/// What recovery or reindex did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Files checked (recover: open files; reindex: files indexed).
    pub files: u64,
    /// Fragments added to the index.
    pub fragments_added: u64,
    /// Bytes of partial fragments truncated away.
    pub bytes_truncated: u64,
    /// Files deleted (no complete fragment) or skipped (reindex: not ours).
    pub files_dropped: u64,
}

/// Index row of a scanned fragment of file `file_id` starting at `start_wall_us`.
pub fn fragment_row(file_id: i64, start_wall_us: i64, f: &ScannedFragment) -> Option<FragmentRow> {
    let run = f.runs.iter().find(|r| r.track_id == VIDEO_TRACK_ID)?;
    let first = run.samples.first()?;
    let samples: Vec<Sample> = run
        .samples
        .iter()
        .map(|s| Sample {
            duration: s.duration,
            size: s.size,
            is_sync: s.is_sync,
        })
        .collect();
    let duration: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
    let audio = f
        .runs
        .iter()
        .find(|r| r.track_id == AUDIO_TRACK_ID && !r.samples.is_empty())
        .map(|r| AudioRun {
            base_decode_time: r.base_decode_time,
            samples: r
                .samples
                .iter()
                .map(|s| Sample {
                    duration: s.duration,
                    size: s.size,
                    is_sync: s.is_sync,
                })
                .collect(),
        });
    Some(FragmentRow {
        file_id,
        seq: f.sequence_number,
        byte_offset: f.offset,
        byte_len: f.len,
        data_offset: first.offset,
        start_90k: run.base_decode_time,
        duration_90k: duration,
        start_wall_us: wall_at(start_wall_us, run.base_decode_time),
        end_wall_us: wall_at(start_wall_us, run.base_decode_time + duration),
        samples,
        audio,
    })
}

/// Reads and scans a file, truncating a partial tail. `Ok(None)` if it is not an MP4.
fn scan_and_truncate(
    store: &Archive,
    path: &str,
    report: &mut RecoveryReport,
) -> Result<Option<ScanResult>, Error> {
    let p = Path::new(path);
    let data = store
        .storage
        .read(p)
        .map_err(|e| Error::io(format!("reading {path}"), e))?;
    let res = match fmp4::scan(&data) {
        Ok(r) => r,
        Err(e) => {
            warn!("{path}: {e}");
            return Ok(None);
        }
    };
    let len = data.len() as u64;
    if res.valid_len < len {
        warn!(
            "{path}: truncating {} bytes after the last complete fragment ({:?})",
            len - res.valid_len,
            res.end
        );
        store
            .storage
            .truncate(p, res.valid_len)
            .map_err(|e| Error::io(format!("truncating {path}"), e))?;
        report.bytes_truncated += len - res.valid_len;
    }
    Ok(Some(res))
}

/// Repairs the files left open by a stop or crash. Run before any writer starts.
pub fn recover(store: &Archive) -> Result<RecoveryReport, Error> {
    collect_garbage(store)?;
    let mut report = RecoveryReport::default();
    let open = store.index().files_in_state(FileState::Open)?;
    for file in open {
        report.files += 1;
        let scanned = match scan_and_truncate(store, &file.path, &mut report) {
            Ok(s) => s,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let indexed = store.index().fragments_of_file(file.id)?;
        let indexed_end = indexed
            .iter()
            .map(|f| f.byte_offset + f.byte_len)
            .max()
            .unwrap_or(0);
        let missing: Vec<FragmentRow> = scanned
            .iter()
            .flat_map(|s| &s.fragments)
            .filter(|f| f.offset >= indexed_end)
            .filter_map(|f| fragment_row(file.id, file.start_wall_us, f))
            .collect();
        if indexed.is_empty() && missing.is_empty() {
            info!("{}: no complete fragment; deleting it", file.path);
            store.index().move_to_garbage(&[file.id])?;
            collect_garbage(store)?;
            report.files_dropped += 1;
            continue;
        }
        if let Some(s) = &scanned {
            if s.valid_len < indexed_end {
                warn!(
                    "{}: file is shorter than its index rows; keeping the rows",
                    file.path
                );
            }
        }
        report.fragments_added += missing.len() as u64;
        store.index().complete_file(file.id, &missing)?;
        info!(
            "recovered {}: {} fragments were not yet indexed",
            file.path,
            missing.len()
        );
    }
    Ok(report)
}

/// Fills an empty index from the files under the recordings root.
pub fn reindex(store: &Archive) -> Result<RecoveryReport, Error> {
    let mut report = RecoveryReport::default();
    let paths = store
        .storage
        .list()
        .map_err(|e| Error::io("listing recordings", e))?;
    for p in paths {
        let Some(path) = p.to_str().map(|s| s.replace('\\', "/")) else {
            continue;
        };
        let Some((camera, stream, start_wall)) = parse_file_path(&path) else {
            warn!("reindex: skipping {path}: not a recording file name");
            report.files_dropped += 1;
            continue;
        };
        let Some(scanned) = scan_and_truncate(store, &path, &mut report)? else {
            report.files_dropped += 1;
            continue;
        };
        let Some(init) = &scanned.init else {
            warn!("reindex: skipping {path}: no complete init segment");
            report.files_dropped += 1;
            continue;
        };
        let mut db = store.index();
        let stream_id = db.stream_id(&camera, &stream)?;
        let file_id = db.insert_file(stream_id, &path, start_wall, init.len)?;
        let rows: Vec<FragmentRow> = scanned
            .fragments
            .iter()
            .filter_map(|f| fragment_row(file_id, start_wall, f))
            .collect();
        report.fragments_added += rows.len() as u64;
        db.complete_file(file_id, &rows)?;
        report.files += 1;
    }
    info!(
        "reindex: {} files, {} fragments",
        report.files, report.fragments_added
    );
    Ok(report)
}
