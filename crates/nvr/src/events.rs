//! The motion event store: `<data>/events.sqlite3`, beside the recordings index but in its
//! own file, because `vigil reindex` rebuilds the index from the media files and events
//! cannot be rebuilt from them.
//!
//! One row per event (`event`), its JPEG thumbnail in a table of its own (`thumbnail`) so
//! listing events never reads image bytes. An event is written twice: when it starts
//! ([`EventStore::insert_start`], `end_us` NULL) and when it ends ([`EventStore::finish`]);
//! while it is active the pipeline refreshes `updated_us` ([`EventStore::touch`]). An event
//! still open when the store is opened was cut short by a crash or a power loss: it is
//! closed at its last update, so no event stays "active" forever.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use vigil_datadir::{Migration, Schema};

use crate::NvrError;

/// The event store's schema (`docs/schema.md`): its migrations, oldest first. Never edit a
/// released one; add a step.
const SCHEMA: Schema = Schema {
    file: "events.sqlite3",
    migrations: &[Migration {
        description: "events and their thumbnails",
        sql: SCHEMA_V1,
    }],
};

const SCHEMA_V1: &str = "
CREATE TABLE event (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    zones TEXT NOT NULL,          -- JSON array of zone names
    start_us INTEGER NOT NULL,
    end_us INTEGER,               -- NULL while active
    updated_us INTEGER NOT NULL,  -- last time the row was known to be current
    peak_score REAL NOT NULL,
    bbox_x REAL, bbox_y REAL, bbox_w REAL, bbox_h REAL
);
CREATE INDEX event_start ON event (start_us);
CREATE INDEX event_camera_start ON event (camera, start_us);
CREATE TABLE thumbnail (
    event_id INTEGER PRIMARY KEY REFERENCES event (id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL
);
";

/// Default and largest number of rows [`EventStore::list`] returns.
const DEFAULT_LIMIT: u32 = 200;
const MAX_LIMIT: u32 = 10_000;

/// A box in normalized picture coordinates (0..1).
#[derive(Clone, Copy, Debug, Serialize, schemars::JsonSchema, PartialEq)]
pub struct NormBox {
    /// Left.
    pub x: f32,
    /// Top.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// One stored motion event.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema, PartialEq)]
pub struct EventRow {
    /// Row id.
    pub id: i64,
    /// Camera.
    pub camera: String,
    /// Zones the motion touched (empty: whole picture, no zones configured).
    pub zones: Vec<String>,
    /// Start, µs since the epoch.
    pub start_us: i64,
    /// End, µs since the epoch; none (`null`) while active.
    pub end_us: Option<i64>,
    /// Peak score (0..1, changed fraction of the watched area).
    pub peak_score: f32,
    /// Box around the moving region at the peak.
    pub bbox: Option<NormBox>,
    /// Whether a JPEG thumbnail is stored.
    pub has_thumbnail: bool,
}

/// Which events to list.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only these cameras (`None`: all).
    pub cameras: Option<Vec<String>>,
    /// Only events touching this zone.
    pub zone: Option<String>,
    /// Events overlapping `[start_us, end_us)`.
    pub start_us: Option<i64>,
    /// See `start_us`.
    pub end_us: Option<i64>,
    /// At most this many, newest first (default 200).
    pub limit: Option<u32>,
}

/// The event store. Calls are short blocking SQLite statements behind a mutex; async callers
/// on a hot path wrap them in `spawn_blocking`.
pub struct EventStore {
    conn: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> NvrError {
    NvrError::Events(e.to_string())
}

const ROW_COLUMNS: &str = "e.id, e.camera, e.zones, e.start_us, e.end_us, e.peak_score, \
     e.bbox_x, e.bbox_y, e.bbox_w, e.bbox_h, \
     EXISTS (SELECT 1 FROM thumbnail t WHERE t.event_id = e.id)";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let zones: String = r.get(2)?;
    let bbox = match (
        r.get::<_, Option<f64>>(6)?,
        r.get::<_, Option<f64>>(7)?,
        r.get::<_, Option<f64>>(8)?,
        r.get::<_, Option<f64>>(9)?,
    ) {
        (Some(x), Some(y), Some(w), Some(h)) => Some(NormBox {
            x: x as f32,
            y: y as f32,
            w: w as f32,
            h: h as f32,
        }),
        _ => None,
    };
    Ok(EventRow {
        id: r.get(0)?,
        camera: r.get(1)?,
        // Written only by this module; a damaged value reads as "no zones", not an error.
        zones: serde_json::from_str(&zones).unwrap_or_default(),
        start_us: r.get(3)?,
        end_us: r.get(4)?,
        peak_score: r.get::<_, f64>(5)? as f32,
        bbox,
        has_thumbnail: r.get(10)?,
    })
}

/// A finite score in 0..=1 (a NaN from a broken detector must not poison the column).
fn clean_score(s: f32) -> f64 {
    if s.is_finite() {
        f64::from(s.clamp(0.0, 1.0))
    } else {
        0.0
    }
}

fn bbox_params(b: Option<NormBox>) -> [Option<f64>; 4] {
    match b {
        Some(b) if [b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) => [
            Some(f64::from(b.x)),
            Some(f64::from(b.y)),
            Some(f64::from(b.w)),
            Some(f64::from(b.h)),
        ],
        _ => [None; 4],
    }
}

impl EventStore {
    /// Opens (creating if needed) `<data_dir>/events.sqlite3` in WAL mode, and closes the
    /// events a crash left open at their last update.
    pub fn open(data_dir: &Path) -> Result<EventStore, NvrError> {
        use vigil_datadir::private_fs;
        let path = data_dir.join("events.sqlite3");
        private_fs::create_dir_all(data_dir)
            .and_then(|()| private_fs::prepare_file(&path))
            .map_err(|source| NvrError::Io {
                context: format!("creating {}", path.display()),
                source,
            })?;
        let conn = Connection::open(&path).map_err(db_err)?;
        Self::init(conn)
    }

    /// An in-memory store, for tests of other modules.
    pub fn open_in_memory() -> Result<EventStore, NvrError> {
        Self::init(Connection::open_in_memory().map_err(db_err)?)
    }

    fn init(conn: Connection) -> Result<EventStore, NvrError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db_err)?;
        // In-memory databases answer "memory"; both are fine.
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(db_err)?;
        // WAL + NORMAL: a power loss may lose the last transactions, never corrupts.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(db_err)?;
        let mut conn = conn;
        SCHEMA
            .upgrade(&mut conn)
            .map_err(|e| NvrError::Events(e.to_string()))?;
        let closed = conn
            .execute(
                "UPDATE event SET end_us = MAX(updated_us, start_us) WHERE end_us IS NULL",
                [],
            )
            .map_err(db_err)?;
        if closed > 0 {
            tracing::warn!(
                events = closed,
                "closed motion events left open by an unclean shutdown"
            );
        }
        Ok(EventStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // SQLite keeps its own consistency; a panic elsewhere cannot break the connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new active event (`end_us` NULL) and its thumbnail; returns the stored row.
    pub fn insert_start(
        &self,
        camera: &str,
        zones: &[String],
        start_us: i64,
        score: f32,
        bbox: Option<NormBox>,
        thumbnail: Option<Vec<u8>>,
    ) -> Result<EventRow, NvrError> {
        let zones_json =
            serde_json::to_string(zones).map_err(|e| NvrError::Events(e.to_string()))?;
        let [bx, by, bw, bh] = bbox_params(bbox);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db_err)?;
        tx.execute(
            "INSERT INTO event (camera, zones, start_us, end_us, updated_us, peak_score, \
             bbox_x, bbox_y, bbox_w, bbox_h) VALUES (?1, ?2, ?3, NULL, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                camera,
                zones_json,
                start_us,
                clean_score(score),
                bx,
                by,
                bw,
                bh
            ],
        )
        .map_err(db_err)?;
        let id = tx.last_insert_rowid();
        if let Some(jpeg) = thumbnail {
            tx.execute(
                "INSERT INTO thumbnail (event_id, jpeg) VALUES (?1, ?2)",
                params![id, jpeg],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Self::get_locked(&conn, id)?
            .ok_or_else(|| NvrError::Events(format!("event {id} vanished after insert")))
    }

    /// Records that event `id` is still active at `now_us` (with its peak so far), so a crash
    /// closes it near the truth.
    pub fn touch(
        &self,
        id: i64,
        now_us: i64,
        peak_score: f32,
        bbox: Option<NormBox>,
    ) -> Result<(), NvrError> {
        let [bx, by, bw, bh] = bbox_params(bbox);
        self.conn()
            .execute(
                "UPDATE event SET updated_us = MAX(updated_us, ?2), \
                 peak_score = MAX(peak_score, ?3), \
                 bbox_x = COALESCE(?4, bbox_x), bbox_y = COALESCE(?5, bbox_y), \
                 bbox_w = COALESCE(?6, bbox_w), bbox_h = COALESCE(?7, bbox_h) \
                 WHERE id = ?1 AND end_us IS NULL",
                params![id, now_us, clean_score(peak_score), bx, by, bw, bh],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Ends event `id` at `end_us` (never before its start) with its final peak score and box;
    /// returns the final row. Finishing an event twice keeps the first end.
    pub fn finish(
        &self,
        id: i64,
        end_us: i64,
        peak_score: f32,
        bbox: Option<NormBox>,
    ) -> Result<EventRow, NvrError> {
        let [bx, by, bw, bh] = bbox_params(bbox);
        let conn = self.conn();
        conn.execute(
            "UPDATE event SET end_us = MAX(?2, start_us), updated_us = MAX(updated_us, ?2), \
             peak_score = MAX(peak_score, ?3), \
             bbox_x = COALESCE(?4, bbox_x), bbox_y = COALESCE(?5, bbox_y), \
             bbox_w = COALESCE(?6, bbox_w), bbox_h = COALESCE(?7, bbox_h) \
             WHERE id = ?1 AND end_us IS NULL",
            params![id, end_us, clean_score(peak_score), bx, by, bw, bh],
        )
        .map_err(db_err)?;
        Self::get_locked(&conn, id)?.ok_or_else(|| NvrError::Events(format!("no event {id}")))
    }

    /// Replaces the zones of event `id` (an event that moved into more zones after it started).
    pub fn set_zones(&self, id: i64, zones: &[String]) -> Result<(), NvrError> {
        let zones_json =
            serde_json::to_string(zones).map_err(|e| NvrError::Events(e.to_string()))?;
        self.conn()
            .execute(
                "UPDATE event SET zones = ?2 WHERE id = ?1",
                params![id, zones_json],
            )
            .map_err(db_err)?;
        Ok(())
    }

    /// Events matching `filter`, newest first.
    pub fn list(&self, filter: &EventFilter) -> Result<Vec<EventRow>, NvrError> {
        let mut sql = format!("SELECT {ROW_COLUMNS} FROM event e WHERE 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(cams) = &filter.cameras {
            if cams.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(" AND e.camera IN (");
            for (i, c) in cams.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(c.clone().into());
            }
            sql.push(')');
        }
        if let Some(zone) = &filter.zone {
            sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(e.zones) WHERE value = ?)");
            args.push(zone.clone().into());
        }
        // Overlap with [start, end): an open event extends to now.
        if let Some(end) = filter.end_us {
            sql.push_str(" AND e.start_us < ?");
            args.push(end.into());
        }
        if let Some(start) = filter.start_us {
            sql.push_str(" AND (e.end_us IS NULL OR e.end_us >= ?)");
            args.push(start.into());
        }
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        sql.push_str(" ORDER BY e.start_us DESC, e.id DESC LIMIT ?");
        args.push(i64::from(limit).into());
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), event_row)
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    fn get_locked(conn: &Connection, id: i64) -> Result<Option<EventRow>, NvrError> {
        conn.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM event e WHERE e.id = ?1"
        ))
        .map_err(db_err)?
        .query_row([id], event_row)
        .optional()
        .map_err(db_err)
    }

    /// One event.
    pub fn get(&self, id: i64) -> Result<Option<EventRow>, NvrError> {
        Self::get_locked(&self.conn(), id)
    }

    /// The event's JPEG thumbnail.
    pub fn thumbnail(&self, id: i64) -> Result<Option<Vec<u8>>, NvrError> {
        self.conn()
            .query_row(
                "SELECT jpeg FROM thumbnail WHERE event_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)
    }

    /// Deletes `camera`'s finished events that ended before `before_us` (retention), with
    /// their thumbnails; returns how many.
    pub fn delete_before(&self, camera: &str, before_us: i64) -> Result<usize, NvrError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db_err)?;
        // Explicit, so it does not depend on foreign_keys being on in this connection.
        tx.execute(
            "DELETE FROM thumbnail WHERE event_id IN (SELECT id FROM event \
             WHERE camera = ?1 AND end_us IS NOT NULL AND end_us < ?2)",
            params![camera, before_us],
        )
        .map_err(db_err)?;
        let n = tx
            .execute(
                "DELETE FROM event WHERE camera = ?1 AND end_us IS NOT NULL AND end_us < ?2",
                params![camera, before_us],
            )
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32) -> Option<NormBox> {
        Some(NormBox {
            x,
            y: 0.25,
            w: 0.5,
            h: 0.5,
        })
    }

    #[test]
    fn start_then_finish_round_trips_with_thumbnail() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let zones = vec!["driveway".to_owned(), "porch".to_owned()];
        let row = store
            .insert_start(
                "front",
                &zones,
                1_000,
                0.2,
                b(0.1),
                Some(vec![0xFF, 0xD8, 1]),
            )
            .unwrap();
        assert_eq!(row.camera, "front");
        assert_eq!(row.zones, zones);
        assert_eq!((row.start_us, row.end_us), (1_000, None));
        assert!(row.has_thumbnail);
        assert!((row.peak_score - 0.2).abs() < 1e-6);

        store.touch(row.id, 5_000, 0.3, None).unwrap();
        let zones = vec!["driveway".to_owned(), "gate".to_owned(), "porch".to_owned()];
        store.set_zones(row.id, &zones).unwrap();
        let done = store.finish(row.id, 9_000, 0.25, b(0.0)).unwrap();
        assert_eq!(done.end_us, Some(9_000));
        assert_eq!(done.zones, zones);
        // The peak is the highest seen, not the last one given.
        assert!((done.peak_score - 0.3).abs() < 1e-6);
        assert_eq!(done.bbox, b(0.0));
        assert_eq!(store.get(row.id).unwrap(), Some(done.clone()));
        assert_eq!(store.thumbnail(row.id).unwrap(), Some(vec![0xFF, 0xD8, 1]));
        // A second finish keeps the first end.
        let again = store.finish(row.id, 20_000, 0.1, None).unwrap();
        assert_eq!(again.end_us, Some(9_000));
        assert_eq!(store.get(12345).unwrap(), None);
        assert_eq!(store.thumbnail(12345).unwrap(), None);
        assert!(matches!(
            store.finish(12345, 1, 0.0, None),
            Err(NvrError::Events(_))
        ));
    }

    #[test]
    fn events_left_open_by_a_crash_are_closed_at_their_last_update() {
        let dir = tempfile::tempdir().unwrap();
        let (open_id, fresh_id) = {
            let store = EventStore::open(dir.path()).unwrap();
            let a = store
                .insert_start("yard", &[], 100, 0.1, None, None)
                .unwrap();
            store.touch(a.id, 4_000, 0.1, None).unwrap();
            let b = store
                .insert_start("yard", &[], 7_000, 0.1, None, None)
                .unwrap();
            (a.id, b.id)
        };
        let store = EventStore::open(dir.path()).unwrap();
        assert_eq!(store.get(open_id).unwrap().unwrap().end_us, Some(4_000));
        assert_eq!(store.get(fresh_id).unwrap().unwrap().end_us, Some(7_000));
        let mode: String = store
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_newer_schema_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        drop(EventStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join("events.sqlite3")).unwrap();
        conn.pragma_update(None, "user_version", 7).unwrap();
        drop(conn);
        let err = EventStore::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("newer Vigil"), "{err}");
    }

    fn sample() -> EventStore {
        let store = EventStore::open_in_memory().unwrap();
        let ev = |cam: &str, zones: &[&str], s: i64, e: Option<i64>| {
            let zones: Vec<String> = zones.iter().map(|z| (*z).to_owned()).collect();
            let r = store.insert_start(cam, &zones, s, 0.1, None, None).unwrap();
            if let Some(e) = e {
                store.finish(r.id, e, 0.1, None).unwrap();
            }
        };
        ev("front", &["porch"], 100, Some(200));
        ev("front", &["drive"], 300, Some(400));
        ev("yard", &[], 350, Some(500));
        ev("yard", &["porch", "gate"], 600, None);
        store
    }

    fn starts(rows: &[EventRow]) -> Vec<i64> {
        rows.iter().map(|r| r.start_us).collect()
    }

    #[test]
    fn list_filters_by_camera_zone_time_and_limit_newest_first() {
        let store = sample();
        let all = store.list(&EventFilter::default()).unwrap();
        assert_eq!(starts(&all), [600, 350, 300, 100]);
        let front = EventFilter {
            cameras: Some(vec!["front".into()]),
            ..Default::default()
        };
        assert_eq!(starts(&store.list(&front).unwrap()), [300, 100]);
        let none = EventFilter {
            cameras: Some(vec![]),
            ..Default::default()
        };
        assert!(store.list(&none).unwrap().is_empty());
        let porch = EventFilter {
            zone: Some("porch".into()),
            ..Default::default()
        };
        assert_eq!(starts(&store.list(&porch).unwrap()), [600, 100]);
        // Overlap with [380, 610): 300-400, 350-500 and the open 600-.
        let window = EventFilter {
            start_us: Some(380),
            end_us: Some(610),
            ..Default::default()
        };
        assert_eq!(starts(&store.list(&window).unwrap()), [600, 350, 300]);
        // The open event overlaps any later window.
        let later = EventFilter {
            start_us: Some(10_000),
            ..Default::default()
        };
        assert_eq!(starts(&store.list(&later).unwrap()), [600]);
        let one = EventFilter {
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(starts(&store.list(&one).unwrap()), [600]);
        // A hostile zone name is a value, not SQL.
        let evil = EventFilter {
            zone: Some("x') OR 1=1 --".into()),
            ..Default::default()
        };
        assert!(store.list(&evil).unwrap().is_empty());
    }

    #[test]
    fn delete_before_removes_only_that_cameras_finished_old_events() {
        let store = sample();
        let t = store
            .insert_start("front", &[], 50, 0.1, None, Some(vec![1, 2, 3]))
            .unwrap();
        store.finish(t.id, 60, 0.1, None).unwrap();
        assert_eq!(store.delete_before("front", 250).unwrap(), 2);
        assert_eq!(store.thumbnail(t.id).unwrap(), None);
        assert_eq!(
            starts(&store.list(&EventFilter::default()).unwrap()),
            [600, 350, 300]
        );
        // Open events are never deleted, whatever their start.
        assert_eq!(store.delete_before("yard", i64::MAX).unwrap(), 1);
        assert_eq!(
            starts(&store.list(&EventFilter::default()).unwrap()),
            [600, 300]
        );
    }

    #[test]
    fn non_finite_scores_and_boxes_are_stored_as_harmless_values() {
        let store = EventStore::open_in_memory().unwrap();
        let bad = Some(NormBox {
            x: f32::NAN,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        });
        let r = store
            .insert_start("c", &[], 1, f32::NAN, bad, None)
            .unwrap();
        assert_eq!(r.peak_score, 0.0);
        assert_eq!(r.bbox, None);
        let r = store.finish(r.id, 0, f32::INFINITY, None).unwrap();
        // An end before the start is clamped to the start.
        assert_eq!(r.end_us, Some(1));
        assert_eq!(r.peak_score, 0.0);
    }
}
