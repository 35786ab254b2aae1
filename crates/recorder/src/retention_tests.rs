use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::SimClock;
use crate::storage::Storage;
use crate::writer::tests::{fault_store, recording, short_files, T0};

#[test]
fn deletes_oldest_first_by_bytes_and_never_the_open_file() {
    let (dir, disk, store) = fault_store();
    let (mut w, mut g) = recording(&store, "door", short_files(), 600); // 20 s: 5 files, the last open
    let before = store.index().all_files().unwrap();
    assert_eq!(before.len(), 5);
    let (open_id, _) = w.open_file().unwrap();
    let keep = before[3].bytes as u64 + before[4].bytes as u64;
    let store2 = Archive::new(
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
        .index()
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
    assert!(store2.index().garbage().unwrap().is_empty());

    // Even a limit of 0 never deletes the file being written.
    let store3 = store2;
    store3.set_retention(RetentionConfig {
        max_bytes: Some(0),
        ..Default::default()
    });
    run(&store3).unwrap();
    let left = store3.index().all_files().unwrap();
    assert_eq!(left.iter().map(|f| f.id).collect::<Vec<_>>(), vec![open_id]);
    w.push(g.next_au()).unwrap();
}

#[test]
fn deletes_by_age_per_camera_set_at_runtime_and_finishes_pending_garbage() {
    let (dir, disk, store) = fault_store();
    for cam in ["door", "yard"] {
        let (mut w, _) = recording(&store, cam, short_files(), 600);
        w.finish().unwrap();
    }
    let clock = SimClock::new(T0 + 30_000_000);
    // No limit at first: the NVR sets one at runtime below.
    let store = Archive::new(
        store.storage.clone(),
        crate::db::Db::open(&dir.path().join("index.sqlite3")).unwrap(),
        Arc::new(clock),
        RetentionConfig::default(),
    );
    // A deletion interrupted after step 1 (rows gone, file still there).
    let yard = store
        .index()
        .all_files()
        .unwrap()
        .into_iter()
        .find(|f| f.path.starts_with("yard"))
        .unwrap();
    store.index().move_to_garbage(&[yard.id]).unwrap();
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
    let files = store.index().all_files().unwrap();
    assert!(files
        .iter()
        .filter(|f| f.path.starts_with("door"))
        .all(|f| f.end_wall_us >= T0 + 10_000_000));
    assert_eq!(
        files.iter().filter(|f| f.path.starts_with("yard")).count(),
        4
    );
}

#[test]
fn event_footage_outlives_the_age_limit_but_not_the_size_limits() {
    let (dir, disk, store) = fault_store();
    for cam in ["door", "yard"] {
        let (mut w, _) = recording(&store, cam, short_files(), 600); // 20 s: files [0,4) [4,8) … [16,20) s
        w.finish().unwrap();
    }
    let store = Archive::new(
        store.storage.clone(),
        crate::db::Db::open(&dir.path().join("index.sqlite3")).unwrap(),
        Arc::new(SimClock::new(T0 + 30_000_000)),
        RetentionConfig::default(),
    );
    let s = |secs: i64| T0 + secs * 1_000_000;
    let door: Vec<i64> = files_of(&store, "door");
    assert_eq!(door.len(), 5);
    // Both cameras' footage is older than their 5 s limit; door keeps event footage 26 s.
    store.set_retention(RetentionConfig {
        max_age: [("door", 5), ("yard", 5)]
            .into_iter()
            .map(|(c, a)| (c.to_string(), Duration::from_secs(a)))
            .collect(),
        ..Default::default()
    });
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls2 = calls.clone();
    store.set_event_retention(EventRetention {
        max_age: [("door".to_string(), Duration::from_secs(26))].into(),
        spans: Arc::new(move |camera: &str, from, to| {
            calls2.lock().unwrap().push((camera.to_owned(), from, to));
            let events = [
                ("door", s(1), s(2)),      // ended 28 s ago: older than 26 s
                ("door", s(5), s(6)),      // ended 24 s ago: keeps [4,8)
                ("door", s(17), i64::MAX), // still going on: keeps [16,20)
                ("yard", s(0), s(20)),     // yard has no event age: nothing kept
            ];
            events
                .iter()
                .filter(|(c, start, end)| *c == camera && *start <= to && *end >= from)
                .map(|&(_, start, end)| (start, end))
                .collect()
        }),
    });
    let r = run(&store).unwrap();
    assert_eq!(r.files, 3 + 5);
    assert_eq!(files_of(&store, "door"), vec![door[1], door[4]]);
    assert!(files_of(&store, "yard").is_empty());
    assert_eq!(
        *calls.lock().unwrap(),
        vec![("door".to_string(), s(0), s(20))],
        "asked once, for door's candidates only"
    );
    // The next pass keeps them too.
    assert_eq!(run(&store).unwrap().files, 0);

    // Free space below the margin: the oldest goes, event footage or not.
    let used = disk.used();
    disk.set_capacity(Some(used + 1000));
    store.set_retention(RetentionConfig {
        min_free_bytes: 2000,
        ..store.retention()
    });
    assert_eq!(run(&store).unwrap().files, 1);
    assert_eq!(files_of(&store, "door"), vec![door[4]]);
    // A byte limit too, even for the footage of an event still going on.
    disk.set_capacity(None);
    store.set_retention(RetentionConfig {
        max_bytes: Some(0),
        ..store.retention()
    });
    assert_eq!(run(&store).unwrap().files, 1);
    assert!(files_of(&store, "door").is_empty());
}

/// Ids of a camera's files, oldest first.
fn files_of(store: &Archive, camera: &str) -> Vec<i64> {
    let mut files: Vec<_> = store
        .index()
        .all_files()
        .unwrap()
        .into_iter()
        .filter(|f| f.path.starts_with(&format!("{camera}/")))
        .collect();
    files.sort_by_key(|f| f.start_wall_us);
    files.iter().map(|f| f.id).collect()
}

/// The cloud tier's hold: the age pass keeps a file until its footage is uploaded; the
/// size limits (like a full disk) delete it anyway and count the loss.
#[test]
fn age_retention_waits_for_the_cloud_but_size_limits_do_not() {
    use crate::db_cloud::NewPart;
    let (dir, _disk, store) = fault_store();
    let (mut w, _) = recording(&store, "door", short_files(), 600);
    w.finish().unwrap();
    let store = Archive::new(
        store.storage.clone(),
        crate::db::Db::open(&dir.path().join("index.sqlite3")).unwrap(),
        Arc::new(SimClock::new(T0 + 30_000_000)),
        RetentionConfig {
            max_age: [("door".to_string(), Duration::from_secs(20))]
                .into_iter()
                .collect(),
            ..Default::default()
        },
    );
    let stream = store.index().find_stream("door", "main").unwrap().unwrap();
    store.index().cloud_set_streams(&[(stream, 0)]).unwrap();
    let files = store.index().all_files().unwrap();
    assert_eq!(files.len(), 5);
    // Nothing is uploaded: the two files past 20 s stay.
    assert_eq!(run(&store).unwrap().files, 0);
    assert!(files.iter().all(|f| store.index().cloud_holds(f).unwrap()));

    // The first file is uploaded whole; the second has a part still queued.
    let part = |f: &crate::db::FileRow, object: &str| {
        let frags = store.index().fragments_of_file(f.id).unwrap();
        NewPart {
            stream_id: stream,
            file_id: f.id,
            first_seq: frags[0].seq,
            last_seq: frags.last().unwrap().seq,
            start_wall_us: frags[0].start_wall_us,
            end_wall_us: frags.last().unwrap().end_wall_us,
            bytes: f.bytes as u64,
            object: object.into(),
            entry: b"{}".to_vec(),
        }
    };
    let (p0, p1) = (part(&files[0], "d/0"), part(&files[1], "d/1"));
    store
        .index()
        .cloud_insert_parts(stream, &[p0, p1], files[1].id)
        .unwrap();
    let due = store.index().cloud_due_parts(i64::MAX, 10).unwrap();
    assert_eq!(due.len(), 2);
    store
        .index()
        .cloud_mark_uploaded(due[0].id, 1234, T0)
        .unwrap();
    assert!(!store.index().cloud_holds(&files[0]).unwrap());
    assert!(store.index().cloud_holds(&files[1]).unwrap());
    let r = run(&store).unwrap();
    assert_eq!(r.files, 1, "only the uploaded file goes by age");
    assert_eq!(store.index().cloud_totals().unwrap().lost_files, 0);

    // A byte limit of 0 deletes every closed file, held or not, and counts the loss.
    store.set_retention(RetentionConfig {
        max_bytes: Some(0),
        ..Default::default()
    });
    let r = run(&store).unwrap();
    assert_eq!(r.files, 4);
    let t = store.index().cloud_totals().unwrap();
    assert_eq!(t.lost_files, 4, "{t:?}");
    assert_eq!(
        t.lost_bytes,
        files[1..].iter().map(|f| f.bytes as u64).sum::<u64>()
    );
    assert_eq!((t.lost_parts, t.pending_parts, t.uploaded_parts), (1, 0, 1));
    assert_eq!(t.uploaded_bytes, 1234);
}
