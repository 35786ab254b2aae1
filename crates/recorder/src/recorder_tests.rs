use super::*;
use crate::testutil::{AuGen, SlowSync};

/// 16 streams at 3x real time (about 3 fragments a second each) on storage whose fsync
/// takes 60 ms: ~2.9 writers must run at once to keep up. Returns the frames recorded
/// per stream (of 180) and the write slots at the end.
async fn record_on_slow_storage(write_slots: usize, max_write_slots: usize) -> (Vec<u64>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SlowSync {
        inner: DirStorage::new(dir.path().join(RECORDINGS_DIR)).unwrap(),
        delay: Duration::from_millis(60),
    };
    let config = RecorderConfig {
        // Small buffers, so that falling behind shows as lost frames within seconds.
        queue_len: 60,
        write_slots,
        max_write_slots,
        ..RecorderConfig::default()
    };
    let rec = Recorder::open_with(
        dir.path(),
        config,
        Arc::new(storage),
        Arc::new(RealClock::new()),
    )
    .unwrap();
    let t0 = 1_704_067_200_000_000;
    let mut streams = Vec::new();
    for i in 0..16 {
        let hub = Hub::new(format!("cam{i}/main"), 16);
        let handle = rec.record(&format!("cam{i}"), "main", hub.clone()).unwrap();
        streams.push((hub, handle, AuGen::new(t0)));
    }
    for _ in 0..180 {
        for (hub, _, g) in streams.iter_mut() {
            hub.publish(g.next_au());
        }
        tokio::time::sleep(Duration::from_millis(11)).await;
    }
    let mut frames = Vec::new();
    for (i, (_, handle, _)) in streams.into_iter().enumerate() {
        handle.stop().await;
        let plan = rec.export(&format!("cam{i}"), "main", t0, t0 + 10_000_000);
        frames.push(plan.map_or(0, |p| p.frames));
    }
    eprintln!(
        "slots {}..{max_write_slots}: {} now, frames {frames:?}",
        write_slots,
        rec.write_slots()
    );
    (frames, rec.write_slots())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_slots_grow_when_slow_storage_makes_queues_back_up() {
    // One slot, fixed: the writers fall behind and frames are lost.
    let (frames, slots) = record_on_slow_storage(1, 1).await;
    assert_eq!(slots, 1);
    assert!(frames.iter().any(|&f| f < 180), "{frames:?}");
    // One slot at first, growing: every frame of every stream is recorded.
    let (frames, slots) = record_on_slow_storage(1, 16).await;
    assert!(slots > 2, "{slots} slots");
    assert!(frames.iter().all(|&f| f == 180), "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_hub_then_reopens_exports_and_lists_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(dir.path(), RecorderConfig::default()).unwrap();
    let hub = Hub::new("door/main", 64);
    let handle = rec.record("door", "main", hub.clone()).unwrap();
    assert!(rec.record("door", "main", hub.clone()).is_err());
    assert!(rec.record("../etc", "main", hub.clone()).is_err());
    let t0 = 1_704_067_200_000_000;
    let mut g = AuGen::new(t0);
    for _ in 0..90 {
        hub.publish(g.next_au());
        // Let the recording task keep up (the hub would skip a lagging subscriber).
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The ticker commits the queued rows within about half a second, with nobody
    // touching the recorder (another process, e.g. `vigil export`, sees them).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let raw = Db::open_read_only(&dir.path().join(INDEX_FILE)).unwrap();
    let fragments = raw.totals().unwrap().fragments;
    assert!(fragments >= 2, "{fragments} fragments committed");
    handle.stop().await;
    drop(rec);

    let rec = Recorder::open(dir.path(), RecorderConfig::default()).unwrap();
    let ranges = rec.ranges("door", "main", 0, i64::MAX).unwrap();
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0].start_wall_us, t0);
    assert!(ranges[0].end_wall_us >= t0 + 2_900_000, "{ranges:?}");
    let plan = rec.export("door", "main", t0, t0 + 2_000_000).unwrap();
    assert_eq!(plan.frames, 60);
    let mut out = Vec::new();
    plan.write_to(&mut out).unwrap();
    assert_eq!(out.len() as u64, plan.total_len);
    assert!(matches!(
        rec.export("nope", "main", t0, t0 + 1),
        Err(Error::UnknownStream { .. })
    ));
    assert_eq!(rec.totals().unwrap().files, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_and_discontinuities_come_in_order_and_read_only_opens_beside_a_live_recorder() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Recorder::open_read_only(dir.path()),
        Err(Error::NoIndex(_))
    ));
    let rec = Recorder::open(dir.path(), RecorderConfig::default()).unwrap();
    let hub = Hub::new("door/main", 64);
    let handle = rec.record("door", "main", hub.clone()).unwrap();
    let t0 = 1_704_067_200_000_000;
    let mut g = AuGen::new(t0);
    let mut last = 0;
    for _ in 0..30 {
        let au = g.next_au();
        last = au.capture_us;
        hub.publish(au);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A 1.5 s outage: inside the file, recorded from the report alone.
    g.pts += 135_000;
    g.capture_us += 1_500_000;
    g.align_to_key();
    // As the ingest publishes them: just before the access unit where they take effect.
    hub.publish_gap(vigil_hub::Gap {
        start_wall_us: last,
        end_wall_us: g.capture_us,
        resume_pts: Some(g.pts),
        reason: "camera closed the stream".into(),
    });
    hub.publish_discontinuity(vigil_hub::Discontinuity {
        pts: g.pts,
        wall_us: g.capture_us,
        reason: "timestamp went back 1 s".into(),
    });
    for _ in 0..30 {
        hub.publish(g.next_au());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The read-only view sees what is indexed so far, and cannot write.
    let ro = Recorder::open_read_only(dir.path()).unwrap();
    assert!(matches!(
        ro.record("door", "main", hub.clone()),
        Err(Error::ReadOnly)
    ));
    assert!(matches!(ro.run_retention(), Err(Error::ReadOnly)));
    // An outage still open when the source stops is not written (the next recording
    // records the time between as "not recording").
    hub.publish_gap(vigil_hub::Gap {
        start_wall_us: g.capture_us,
        end_wall_us: g.capture_us + 1_000_000,
        resume_pts: None,
        reason: "stopped".into(),
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.stop().await;
    let gaps = ro.gaps("door", "main", 0, i64::MAX).unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].reason, "camera: camera closed the stream");
    let ranges = ro.ranges("door", "main", 0, i64::MAX).unwrap();
    assert_eq!(ro.totals().unwrap().files, 2, "{ranges:?}");
    let plan = ro.export("door", "main", t0, t0 + 1_000_000).unwrap();
    assert_eq!(plan.frames, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_stream_can_be_recorded_again_without_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(dir.path(), RecorderConfig::default()).unwrap();
    let t0 = 1_704_067_200_000_000;
    // Three recordings of door/main in one process, as the NVR does when a camera is
    // edited: 2 s; 2 s after a 3 s pause; 1 s whose camera clock says it started 1 s
    // before the previous one ended (a host clock stepped back, or a camera restart).
    for (start, frames) in [(t0, 60), (t0 + 5_000_000, 60), (t0 + 6_000_000, 30)] {
        let hub = Hub::new("door/main", 64);
        let handle = rec.record("door", "main", hub.clone()).unwrap();
        assert!(
            matches!(
                rec.record("door", "main", hub.clone()),
                Err(Error::Corrupt(_))
            ),
            "one recording per stream at a time"
        );
        let mut g = AuGen::new(start);
        for _ in 0..frames {
            hub.publish(g.next_au());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        handle.stop().await;
    }
    let mut files = rec.archive().index().all_files().unwrap();
    files.sort_by_key(|f| f.start_wall_us);
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files
        .iter()
        .all(|f| f.state == crate::db::FileState::Closed));
    for pair in files.windows(2) {
        assert!(
            pair[0].end_wall_us <= pair[1].start_wall_us,
            "overlapping recordings: {files:?}"
        );
    }
    assert_eq!(files[0].start_wall_us, t0);
    assert_eq!(files[1].start_wall_us, t0 + 5_000_000);
    // The third starts where the second ended, not at its camera's earlier clock.
    assert_eq!(files[2].start_wall_us, files[1].end_wall_us);
    // The pause is a gap; every frame of the three is indexed and exports.
    let gaps = rec.gaps("door", "main", 0, i64::MAX).unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (gaps[0].start_wall_us, gaps[0].end_wall_us),
        (t0 + 2_000_000, t0 + 5_000_000)
    );
    let plan = rec.export("door", "main", t0, t0 + 10_000_000).unwrap();
    assert_eq!(plan.frames, 150);
}

/// `vigil reindex` after a crash between retention's index commit and its unlink: the
/// file that retention removed is deleted, not brought back into the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_finishes_deletions_instead_of_reviving_them() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(dir.path(), RecorderConfig::default()).unwrap();
    let hub = Hub::new("door/main", 64);
    let handle = rec.record("door", "main", hub.clone()).unwrap();
    let mut g = AuGen::new(1_704_067_200_000_000);
    for _ in 0..60 {
        hub.publish(g.next_au());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    handle.stop().await;
    let files = rec.archive().index().all_files().unwrap();
    assert_eq!(files.len(), 1);
    // Retention's first step only (rows out, path in `garbage`), then the "crash".
    rec.archive()
        .index()
        .move_to_garbage(&[files[0].id])
        .unwrap();
    drop(rec);
    let media = dir.path().join(RECORDINGS_DIR).join(&files[0].path);
    assert!(media.exists());

    let report = Recorder::reindex(dir.path()).unwrap();
    assert_eq!(report.files, 0);
    assert!(!media.exists(), "{} came back", media.display());
    let rec = Recorder::open(dir.path(), RecorderConfig::default()).unwrap();
    assert_eq!(rec.totals().unwrap().files, 0);
}
