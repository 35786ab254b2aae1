use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::SimClock;
use crate::storage::{FaultStorage, Storage};
use crate::testutil::AuGen;
use crate::writer::tests::{short_files, store_with, T0};
use crate::writer::StreamWriter;

#[test]
fn deletes_oldest_first_by_bytes_and_never_the_open_file() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultStorage::new();
    let store = store_with(
        dir.path(),
        Arc::new(disk.clone()),
        RetentionConfig::default(),
    );
    let mut w = StreamWriter::new(store.clone(), "door", "main", short_files()).unwrap();
    let mut g = AuGen::new(T0);
    for _ in 0..600 {
        w.push(g.next_au()).unwrap(); // 20 s: 5 files, the last one open
    }
    let before = store.db().all_files().unwrap();
    assert_eq!(before.len(), 5);
    let (open_id, _) = w.open_file().unwrap();
    let keep = before[3].bytes as u64 + before[4].bytes as u64;
    let store2 = Store::new(
        store.storage.clone(),
        crate::db::Db::open(&dir.path().join("index.sqlite3")).unwrap(),
        Arc::new(SimClock::new(T0)),
        RetentionConfig {
            max_bytes: Some(keep),
            ..Default::default()
        },
    );
    let report = run(&store2).unwrap();
    assert_eq!(report.files, 3);
    let after: Vec<i64> = store2
        .db()
        .all_files()
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(
        after,
        vec![before[3].id, before[4].id],
        "the three oldest went"
    );
    assert_eq!(disk.list().unwrap().len(), 2);
    assert!(store2.db().garbage().unwrap().is_empty());

    // Even a limit of 0 never deletes the file being written.
    let store3 = store2;
    store3.set_retention(RetentionConfig {
        max_bytes: Some(0),
        ..Default::default()
    });
    run(&store3).unwrap();
    let left = store3.db().all_files().unwrap();
    assert_eq!(left.iter().map(|f| f.id).collect::<Vec<_>>(), vec![open_id]);
    w.push(g.next_au()).unwrap();
}

#[test]
fn deletes_by_age_per_camera_set_at_runtime_and_finishes_pending_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultStorage::new();
    let store = store_with(
        dir.path(),
        Arc::new(disk.clone()),
        RetentionConfig::default(),
    );
    for cam in ["door", "yard"] {
        let mut w = StreamWriter::new(store.clone(), cam, "main", short_files()).unwrap();
        let mut g = AuGen::new(T0);
        for _ in 0..600 {
            w.push(g.next_au()).unwrap();
        }
        w.finish().unwrap();
    }
    let clock = SimClock::new(T0 + 30_000_000);
    // No limit at first: the NVR sets one at runtime below.
    let store = Store::new(
        store.storage.clone(),
        crate::db::Db::open(&dir.path().join("index.sqlite3")).unwrap(),
        Arc::new(clock),
        RetentionConfig::default(),
    );
    // A deletion interrupted after step 1 (rows gone, file still there).
    let yard = store
        .db()
        .all_files()
        .unwrap()
        .into_iter()
        .find(|f| f.path.starts_with("yard"))
        .unwrap();
    store.db().move_to_garbage(&[yard.id]).unwrap();
    assert!(disk.read(std::path::Path::new(&yard.path)).is_ok());
    assert_eq!(collect_garbage(&store).unwrap(), 1);
    assert!(disk.read(std::path::Path::new(&yard.path)).is_err());

    assert_eq!(run(&store).unwrap().files, 0, "no limit, nothing deleted");
    store.set_retention(RetentionConfig {
        max_age: [("door".to_string(), Duration::from_secs(20))]
            .into_iter()
            .collect(),
        ..Default::default()
    });
    let r = run(&store).unwrap();
    // door: files ending before T0+10 s are older than 20 s at T0+30 s: the first two.
    assert_eq!(r.files, 2);
    let files = store.db().all_files().unwrap();
    assert!(files
        .iter()
        .filter(|f| f.path.starts_with("door"))
        .all(|f| f.end_wall_us >= T0 + 10_000_000));
    assert_eq!(
        files.iter().filter(|f| f.path.starts_with("yard")).count(),
        4
    );
}
