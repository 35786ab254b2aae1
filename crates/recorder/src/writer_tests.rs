//! Writer, recovery, reindex and clock-step tests on simulated storage and time.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::archive::INDEX_COMMIT_INTERVAL;
use crate::clock::SimClock;
use crate::db::{Db, FileRow, FileState};
use crate::recovery::{self, fragment_row};
use crate::retention::RetentionConfig;
use crate::storage::{DirStorage, FaultStorage, Storage};
use crate::testutil::AuGen;

/// 2024-01-01T00:00:00Z.
pub(crate) const T0: i64 = 1_704_067_200_000_000;

pub(crate) fn store_with(
    dir: &Path,
    storage: Arc<dyn Storage>,
    retention: RetentionConfig,
) -> Arc<Archive> {
    store_with_clock(dir, storage, retention, SimClock::new(T0))
}

/// [`store_with`] on a simulated clock the test moves.
pub(crate) fn store_with_clock(
    dir: &Path,
    storage: Arc<dyn Storage>,
    retention: RetentionConfig,
    clock: SimClock,
) -> Arc<Archive> {
    Arc::new(Archive::new(
        storage,
        Db::open(&dir.join("index.sqlite3")).unwrap(),
        Arc::new(clock),
        retention,
    ))
}

/// An index in a temporary directory over an in-memory disk whose faults a test injects
/// (a capacity for ENOSPC, a crash that drops what was not synced), default retention.
pub(crate) fn fault_store() -> (tempfile::TempDir, FaultStorage, Arc<Archive>) {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultStorage::new();
    let store = store_with(
        dir.path(),
        Arc::new(disk.clone()),
        RetentionConfig::default(),
    );
    (dir, disk, store)
}

/// A writer of `camera`'s main stream that has been given `frames` frames (30 per second
/// from T0, a key frame every second), and the generator to go on with.
pub(crate) fn recording(
    store: &Arc<Archive>,
    camera: &str,
    config: SegmenterConfig,
    frames: usize,
) -> (StreamWriter, AuGen) {
    let mut w = StreamWriter::new(store.clone(), camera, "main", config).unwrap();
    let mut g = AuGen::new(T0);
    for _ in 0..frames {
        w.push(g.next_au()).unwrap();
    }
    (w, g)
}

pub(crate) fn short_files() -> SegmenterConfig {
    SegmenterConfig {
        file_duration_90k: 4 * 90_000,
        ..SegmenterConfig::default()
    }
}

/// Rows of the index as they would be rebuilt from the files: (file row minus id, the
/// fragments rebuilt from a scan of the file).
fn index_agrees_with_files(store: &Archive) {
    let files = store.index().all_files().unwrap();
    for f in &files {
        let data = store.storage.read(Path::new(&f.path)).unwrap();
        let scan = vigil_media::fmp4::scan(&data).unwrap();
        assert_eq!(
            scan.valid_len,
            data.len() as u64,
            "{} has a partial tail",
            f.path
        );
        assert_eq!(
            f.bytes as u64,
            data.len() as u64,
            "{}: index length",
            f.path
        );
        let from_file: Vec<_> = scan
            .fragments
            .iter()
            .filter_map(|s| fragment_row(f.id, f.start_wall_us, s))
            .collect();
        assert_eq!(
            store.index().fragments_of_file(f.id).unwrap(),
            from_file,
            "{}",
            f.path
        );
    }
}

fn no_overlap(files: &[FileRow]) {
    let mut sorted = files.to_vec();
    sorted.sort_by_key(|f| f.start_wall_us);
    for w in sorted.windows(2) {
        assert!(w[0].end_wall_us > w[0].start_wall_us, "{:?}", w[0]);
        assert!(
            w[1].start_wall_us >= w[0].end_wall_us,
            "overlap: {:?} {:?}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn kill_9_recovers_to_last_complete_fragment_losing_under_2s() {
    let (dir, disk, store) = fault_store();
    let (w, _) = recording(&store, "door", SegmenterConfig::default(), 300); // 10 s
    let (_, path) = w.open_file().unwrap();
    let path = path.to_owned();
    // The shared index commit of the rows queued so far.
    drop(store.index());
    // The process dies: part of the next fragment had reached the disk, and the last
    // fragment was fsynced but its row never committed.
    disk.crash();
    let mut partial = disk.open_append(Path::new(&path)).unwrap();
    partial
        .append(&[0, 0, 1, 0, b'm', b'o', b'o', b'f', 1, 2])
        .unwrap();
    partial.sync().unwrap();
    std::mem::forget(w);
    let conn = rusqlite::Connection::open(dir.path().join("index.sqlite3")).unwrap();
    conn.execute(
        "DELETE FROM fragment WHERE seq = (SELECT MAX(seq) FROM fragment)",
        [],
    )
    .unwrap();
    drop(conn);

    let store = store_with(
        dir.path(),
        Arc::new(disk.clone()),
        RetentionConfig::default(),
    );
    let report = recovery::recover(&store).unwrap();
    assert_eq!(report.files, 1);
    assert_eq!(
        report.fragments_added, 1,
        "the fsynced fragment is indexed again"
    );
    assert!(report.bytes_truncated > 0);
    let files = store.index().all_files().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].state, FileState::Closed);
    let recorded_us = files[0].end_wall_us - files[0].start_wall_us;
    assert!(
        recorded_us >= 8_000_000,
        "only {recorded_us} µs of 10 s survived"
    );
    index_agrees_with_files(&store);
}

#[test]
fn open_file_without_fragments_is_deleted_on_recovery() {
    let (dir, disk, store) = fault_store();
    let (w, _) = recording(&store, "door", SegmenterConfig::default(), 1);
    std::mem::forget(w);
    disk.crash();
    let store = store_with(
        dir.path(),
        Arc::new(disk.clone()),
        RetentionConfig::default(),
    );
    recovery::recover(&store).unwrap();
    assert!(store.index().all_files().unwrap().is_empty());
    assert!(disk.list().unwrap().is_empty());
}

#[test]
fn host_clock_steps_never_overlap_or_go_negative() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(
        dir.path(),
        Arc::new(FaultStorage::new()),
        RetentionConfig::default(),
    );
    let mut w = StreamWriter::new(store.clone(), "door", "main", short_files()).unwrap();
    let mut g = AuGen::new(T0);
    for _ in 0..150 {
        w.push(g.next_au()).unwrap();
    }
    // Host clock steps back an hour mid-file: the media clock carries on.
    g.capture_us -= 3_600_000_000;
    for _ in 0..150 {
        w.push(g.next_au()).unwrap();
    }
    // The camera restarts (timestamps go back) while the host clock is still an hour
    // behind: the new file must not start before the previous one ended.
    g.pts = 0;
    g.align_to_key();
    for _ in 0..90 {
        w.push(g.next_au()).unwrap();
    }
    // Host clock steps forward two hours, with a camera timestamp jump.
    g.capture_us += 7_200_000_000;
    g.pts += 20 * 90_000;
    g.align_to_key();
    for _ in 0..90 {
        w.push(g.next_au()).unwrap();
    }
    w.finish().unwrap();
    let files = store.index().all_files().unwrap();
    assert!(files.len() >= 4, "{files:?}");
    no_overlap(&files);
    let gaps = store
        .index()
        .gaps(w.stream_id(), i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].reason, "timestamp jumped forward");
    index_agrees_with_files(&store);
}

#[test]
fn enospc_frees_oldest_and_keeps_recording() {
    let (_dir, disk, store) = fault_store();
    let (mut w, mut g) = recording(&store, "door", short_files(), 120);
    // About 3 files' worth of disk.
    let per_4s = disk.used();
    disk.set_capacity(Some(per_4s * 3));
    for _ in 0..900 {
        w.push(g.next_au()).unwrap(); // 30 s more: needs ~8 files
    }
    w.finish().unwrap();
    assert!(disk.used() <= per_4s * 3);
    let files = store.index().all_files().unwrap();
    assert!(files.len() >= 2);
    let first = files.iter().map(|f| f.start_wall_us).min().unwrap();
    assert!(first > T0, "the oldest file was deleted");
    let last = files.iter().map(|f| f.end_wall_us).max().unwrap();
    let end_of_input = T0 + 1020 * 100_000 / 3;
    assert!(
        last >= end_of_input - 100_000,
        "recording continued to the end: {last} vs {end_of_input}"
    );
    // Every row's file exists at its indexed length; nothing else is on disk.
    assert_eq!(disk.list().unwrap().len(), files.len());
    index_agrees_with_files(&store);
}

#[test]
fn reindex_rebuilds_the_same_index() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("recordings");
    let storage: Arc<dyn Storage> = Arc::new(DirStorage::new(&rec).unwrap());
    let store = store_with(dir.path(), storage.clone(), RetentionConfig::default());
    for (cam, offset) in [("door", 0), ("yard", 123_456)] {
        let mut w = StreamWriter::new(store.clone(), cam, "main", short_files()).unwrap();
        let mut g = AuGen::new(T0 + offset);
        for _ in 0..400 {
            w.push(g.next_au()).unwrap();
        }
        w.finish().unwrap();
    }
    let dump = |store: &Archive| {
        let db = store.index();
        let mut out = Vec::new();
        for f in db.all_files().unwrap() {
            let (c, s) = db.stream_names(f.stream_id).unwrap();
            let frags: Vec<_> = db
                .fragments_of_file(f.id)
                .unwrap()
                .into_iter()
                .map(|mut fr| {
                    fr.file_id = 0;
                    fr
                })
                .collect();
            out.push((
                c,
                s,
                f.path,
                f.start_90k,
                f.end_90k,
                f.start_wall_us,
                f.end_wall_us,
                f.bytes,
                f.init_len,
                f.state,
                frags,
            ));
        }
        out.sort_by(|a, b| a.2.cmp(&b.2));
        out
    };
    let before = dump(&store);
    assert_eq!(before.len(), 8);
    drop(store);
    crate::Recorder::reindex(dir.path()).unwrap();
    let store = store_with(dir.path(), storage, RetentionConfig::default());
    assert_eq!(dump(&store), before);
}

/// A writer on simulated storage, and its store.
fn gap_writer(dir: &Path) -> (Arc<Archive>, StreamWriter) {
    let store = store_with(
        dir,
        Arc::new(FaultStorage::new()),
        RetentionConfig::default(),
    );
    let w = StreamWriter::new(store.clone(), "door", "main", short_files()).unwrap();
    (store, w)
}

/// Pushes `n` access units; returns the capture time of the last one.
fn push_n(w: &mut StreamWriter, g: &mut AuGen, n: usize) -> i64 {
    let mut last = 0;
    for _ in 0..n {
        let au = g.next_au();
        last = au.capture_us;
        w.push(au).unwrap();
    }
    last
}

/// An outage as the ingest makes it: pts and capture time advance by `us`, the stream
/// resumes on a key frame. Returns the capture time of the first access unit after it.
fn outage(g: &mut AuGen, us: i64) -> i64 {
    g.pts += us * 9 / 100;
    g.capture_us += us;
    g.align_to_key();
    g.capture_us
}

#[test]
fn a_long_outage_is_one_gap_row_with_the_ingest_reason() {
    {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut w) = gap_writer(dir.path());
        let mut g = AuGen::new(T0);
        let last = push_n(&mut w, &mut g, 45);
        let back = outage(&mut g, 8_000_000);
        let reason = "camera: no video frame for 4s (camera stalled or unreachable)";
        // The report comes first, as the hub delivers it: before the access unit the
        // stream resumes on, whose pts leap ends the file.
        w.record_gap(last, back, reason).unwrap();
        push_n(&mut w, &mut g, 45);
        w.finish().unwrap();
        let files = store.index().all_files().unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        let gaps = store
            .index()
            .gaps(w.stream_id(), i64::MIN, i64::MAX)
            .unwrap();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        // The range is exactly the hole between the files; the reason is the ingest's.
        assert_eq!(gaps[0].start_wall_us, files[0].end_wall_us);
        assert_eq!(gaps[0].end_wall_us, files[1].start_wall_us);
        assert_eq!(gaps[0].reason, reason);
    }
}

#[test]
fn a_short_outage_inside_a_file_is_a_gap_row_too_and_two_outages_are_two_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = gap_writer(dir.path());
    let mut g = AuGen::new(T0);
    let last = push_n(&mut w, &mut g, 30);
    let back = outage(&mut g, 1_500_000);
    w.record_gap(last, back, "camera: camera closed the stream")
        .unwrap();
    let last2 = push_n(&mut w, &mut g, 30);
    let back2 = outage(&mut g, 9_000_000);
    w.record_gap(last2, back2, "camera: RTSP: connection refused")
        .unwrap();
    push_n(&mut w, &mut g, 30);
    // Nothing to record for an empty or inverted range.
    w.record_gap(back2, back2, "camera: nothing").unwrap();
    w.finish().unwrap();
    let gaps = store
        .index()
        .gaps(w.stream_id(), i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert_eq!(
        (gaps[0].start_wall_us, gaps[0].end_wall_us),
        (last, back),
        "{gaps:?}"
    );
    assert_eq!(gaps[0].reason, "camera: camera closed the stream");
    assert_eq!(gaps[1].reason, "camera: RTSP: connection refused");
    assert!(gaps[1].start_wall_us > gaps[0].end_wall_us);
}

#[test]
fn a_reported_discontinuity_starts_a_new_file_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut w) = gap_writer(dir.path());
    let mut g = AuGen::new(T0);
    push_n(&mut w, &mut g, 40);
    g.align_to_key();
    w.discontinuity(g.pts, "timestamp went back 3.000 s");
    push_n(&mut w, &mut g, 40);
    w.finish().unwrap();
    let files = store.index().all_files().unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[1].start_wall_us, files[0].end_wall_us);
    assert!(store
        .index()
        .gaps(w.stream_id(), i64::MIN, i64::MAX)
        .unwrap()
        .is_empty());
    no_overlap(&files);
    index_agrees_with_files(&store);
}

#[test]
fn fragment_rows_of_all_streams_are_committed_together_and_recovered_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultStorage::new();
    let clock = SimClock::new(T0);
    let store = store_with_clock(
        dir.path(),
        Arc::new(disk.clone()),
        RetentionConfig::default(),
        clock.clone(),
    );
    let raw = rusqlite::Connection::open(dir.path().join("index.sqlite3")).unwrap();
    let committed = |raw: &rusqlite::Connection| -> (i64, i64) {
        raw.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT file_id) FROM fragment",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let keys = |raw: &rusqlite::Connection| -> Vec<(i64, i64)> {
        let mut st = raw.prepare("SELECT file_id, seq FROM fragment").unwrap();
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    let mut writers: Vec<StreamWriter> = ["main", "sub"]
        .iter()
        .map(|s| StreamWriter::new(store.clone(), "door", s, SegmenterConfig::default()).unwrap())
        .collect();
    let mut gens = [AuGen::new(T0), AuGen::new(T0)];
    let mut push = |writers: &mut Vec<StreamWriter>, n: usize| {
        for _ in 0..n {
            for (w, g) in writers.iter_mut().zip(gens.iter_mut()) {
                w.push(g.next_au()).unwrap();
            }
        }
    };
    push(&mut writers, 90); // 3 s each: fragments written and fsynced
                            // Queued within the commit interval: not in the index yet (another process does not
                            // see them; whoever goes through the store does).
    assert_eq!(committed(&raw), (0, 0));
    // Commit ageing runs on the archive's clock, not the host's: nothing is due until
    // the simulated time passes the interval.
    assert!(!store.commit_older_than(INDEX_COMMIT_INTERVAL));
    clock.advance(INDEX_COMMIT_INTERVAL - Duration::from_millis(1));
    assert!(!store.commit_older_than(INDEX_COMMIT_INTERVAL));
    assert_eq!(committed(&raw), (0, 0));
    clock.advance(Duration::from_millis(1));
    push(&mut writers, 30);
    // The first row queued after the interval committed both streams' rows at once.
    let (first, files) = committed(&raw);
    assert!(first >= 4, "{first}");
    assert_eq!(files, 2, "rows of both streams in one commit");
    let first_keys = keys(&raw);
    push(&mut writers, 60);
    assert_eq!(
        committed(&raw).0,
        first,
        "the next rows wait for the next interval"
    );
    // The recorder's ticker: rows queued 250 ms ago are due, younger ones are not.
    let tick = Duration::from_millis(250);
    assert!(!store.commit_older_than(tick));
    clock.advance(tick);
    assert!(store.commit_older_than(tick));
    assert!(!store.has_pending());
    let all = committed(&raw).0;
    assert!(all > first);

    // kill -9 as if that last commit had not happened: the rows' media was fsynced
    // before they were queued, so recovery indexes it again.
    disk.crash();
    for w in writers {
        std::mem::forget(w);
    }
    let keys_now = keys(&raw);
    for (file, seq) in keys_now.iter().filter(|k| !first_keys.contains(k)) {
        raw.execute(
            "DELETE FROM fragment WHERE file_id = ?1 AND seq = ?2",
            [file, seq],
        )
        .unwrap();
    }
    drop(raw);
    let store = store_with(
        dir.path(),
        Arc::new(disk.clone()),
        RetentionConfig::default(),
    );
    let report = recovery::recover(&store).unwrap();
    assert_eq!(report.fragments_added as i64, all - first, "{report:?}");
    let files = store.index().all_files().unwrap();
    assert_eq!(files.len(), 2);
    for f in &files {
        assert!(f.end_wall_us - f.start_wall_us >= 5_000_000, "{f:?}");
    }
}

#[test]
fn a_file_queued_before_a_write_error_was_seen_starts_after_a_gap_not_at_the_hole() {
    // The recorder's task learns of a failed batch only when it returns; the segmenter
    // has gone on meanwhile, and its next file "continues" the one the writer abandoned.
    let (_dir, disk, store) = fault_store();
    let mut w = StreamWriter::new(store.clone(), "door", "main", short_files()).unwrap();
    let mut seg = Segmenter::new(short_files());
    let mut g = AuGen::new(T0);
    let mut ops = Vec::new();
    for _ in 0..45 {
        seg.push(g.next_au(), &mut ops);
    }
    w.apply_ops(&mut ops).unwrap();
    // Frames up to past the 4 s rotation; the open file's handle dies before they land.
    for _ in 0..105 {
        seg.push(g.next_au(), &mut ops);
    }
    let split = ops
        .iter()
        .position(|op| matches!(op, FileOp::StartFile { .. }))
        .expect("the segmenter rotated");
    let new_file_capture_us = match &ops[split] {
        FileOp::StartFile {
            capture_us,
            continues,
            ..
        } => {
            assert_eq!(*continues, Some(EndReason::Rotation));
            *capture_us
        }
        _ => unreachable!(),
    };
    let mut after = ops.split_off(split);
    disk.crash(); // the open file's handle goes dead; new files can still be made
    assert!(
        w.apply_ops(&mut ops).is_err(),
        "the dead handle fails a fragment"
    );
    w.apply_ops(&mut after).unwrap();
    w.finish().unwrap();

    let files = store.index().all_files().unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    let gaps = store
        .index()
        .gaps(w.stream_id(), i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(gaps.len(), 1, "the lost stretch is a gap row: {gaps:?}");
    assert_eq!(gaps[0].reason, "write error");
    assert_eq!(gaps[0].start_wall_us, files[0].end_wall_us);
    // The new file starts at its own first frame, not where the abandoned one ended.
    assert_eq!(files[1].start_wall_us, new_file_capture_us);
    assert_eq!(gaps[0].end_wall_us, files[1].start_wall_us);
    assert!(files[1].start_wall_us > files[0].end_wall_us + 1_000_000);
    index_agrees_with_files(&store);
}
