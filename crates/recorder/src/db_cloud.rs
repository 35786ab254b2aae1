//! The cloud tier's upload queue in the index (`docs/cloud.md`, `docs/schema.md`).
//!
//! The queue lives beside the rows it describes so that it survives restarts and `kill -9`
//! exactly as they do (one SQLite database, `synchronous=FULL`), and so that retention can
//! ask in the same transaction whether a file may go. The `vigil-cloud` crate decides what
//! to cut and when to upload; these are its storage primitives.
//!
//! - `cloud_stream`: the streams that go up, since when, and how far their files are cut.
//! - `cloud_part`: a run of whole fragments of one file (the unit of upload), its opaque
//!   object name (chosen when cut, so a retry after a crash writes the same name, which the
//!   create-only put then refuses: never a second copy), its state and retry schedule, and
//!   its manifest entry.
//! - `cloud_manifest`: per stream and UTC hour, the last manifest version written and
//!   whether a newer one is due.
//! - `cloud_state`: the naming key and the loss counters.

use rusqlite::{params, OptionalExtension};

use crate::db::{file_row, Db, FileRow, FILE_COLS};
use crate::Error;

/// Migration 3 (see [`crate::db::SCHEMA`]).
pub(crate) const SCHEMA_V3: &str = "
CREATE TABLE cloud_stream (
    stream_id INTEGER PRIMARY KEY REFERENCES stream(id),
    since_us INTEGER NOT NULL,
    cut_file_id INTEGER NOT NULL
);
CREATE TABLE cloud_part (
    id INTEGER PRIMARY KEY,
    stream_id INTEGER NOT NULL REFERENCES stream(id),
    file_id INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    start_wall_us INTEGER NOT NULL,
    end_wall_us INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    object TEXT NOT NULL UNIQUE,
    entry BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'uploaded', 'lost')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_us INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    uploaded_us INTEGER,
    object_bytes INTEGER
);
CREATE INDEX cloud_part_state ON cloud_part (state, start_wall_us);
CREATE INDEX cloud_part_file ON cloud_part (file_id, last_seq);
CREATE INDEX cloud_part_hour ON cloud_part (stream_id, start_wall_us);
CREATE TABLE cloud_manifest (
    stream_id INTEGER NOT NULL,
    hour_us INTEGER NOT NULL,
    version INTEGER NOT NULL,
    dirty INTEGER NOT NULL,
    PRIMARY KEY (stream_id, hour_us)
) WITHOUT ROWID;
CREATE TABLE cloud_state (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
";

/// One hour in µs: manifests are per stream and UTC hour.
pub const HOUR_US: i64 = 3_600_000_000;

/// The UTC hour a time falls in (its start, µs since the epoch).
pub fn hour_of(wall_us: i64) -> i64 {
    wall_us.div_euclid(HOUR_US) * HOUR_US
}

/// A stream under upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudStream {
    /// Stream id.
    pub stream_id: i64,
    /// Footage that ends before this is not uploaded (recorded before the cloud tier was on).
    pub since_us: i64,
    /// Every file of the stream with an id up to this one is cut to its end.
    pub cut_file_id: i64,
}

/// A file that may have fragments not yet in any part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UncutFile {
    /// The file.
    pub file: FileRow,
    /// Last fragment already in a part (0: none).
    pub covered_seq: u32,
}

/// A new part, as the cutter decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPart {
    /// Stream.
    pub stream_id: i64,
    /// File.
    pub file_id: i64,
    /// First fragment.
    pub first_seq: u32,
    /// Last fragment (inclusive).
    pub last_seq: u32,
    /// Wall clock of the first sample.
    pub start_wall_us: i64,
    /// Wall clock after the last sample.
    pub end_wall_us: i64,
    /// Plaintext length: init segment + fragments.
    pub bytes: u64,
    /// Opaque object name (relative to the configured prefix).
    pub object: String,
    /// The part's manifest entry (serialized by the cloud crate; opaque here).
    pub entry: Vec<u8>,
}

/// A part waiting for upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPart {
    /// Row id.
    pub id: i64,
    /// Stream.
    pub stream_id: i64,
    /// File.
    pub file_id: i64,
    /// First fragment.
    pub first_seq: u32,
    /// Last fragment (inclusive).
    pub last_seq: u32,
    /// Wall clock of the first sample.
    pub start_wall_us: i64,
    /// Plaintext length.
    pub bytes: u64,
    /// Object name.
    pub object: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Its manifest entry.
    pub entry: Vec<u8>,
}

/// An uploaded part's manifest entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedEntry {
    /// The entry as the cutter serialized it.
    pub entry: Vec<u8>,
    /// Object length in the bucket (ciphertext).
    pub object_bytes: u64,
}

/// What the System page shows of the cloud tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudTotals {
    /// Parts waiting for upload.
    pub pending_parts: u64,
    /// Their plaintext bytes.
    pub pending_bytes: u64,
    /// Wall clock of the oldest footage waiting.
    pub oldest_pending_us: Option<i64>,
    /// Parts uploaded (still tracked locally).
    pub uploaded_parts: u64,
    /// Their ciphertext bytes in the bucket.
    pub uploaded_bytes: u64,
    /// Last successful upload.
    pub last_upload_us: Option<i64>,
    /// Parts that could not be uploaded because their file was deleted first (disk full).
    pub lost_parts: u64,
    /// Files deleted locally before their footage was uploaded (disk full or byte limit).
    pub lost_files: u64,
    /// Bytes of those files.
    pub lost_bytes: u64,
    /// The latest upload error, if the latest attempt failed.
    pub last_error: Option<String>,
}

fn pending_part(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingPart> {
    Ok(PendingPart {
        id: r.get(0)?,
        stream_id: r.get(1)?,
        file_id: r.get(2)?,
        first_seq: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        last_seq: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        start_wall_us: r.get(5)?,
        bytes: r.get::<_, i64>(6)?.max(0) as u64,
        object: r.get(7)?,
        attempts: u32::try_from(r.get::<_, i64>(8)?).unwrap_or(u32::MAX),
        entry: r.get(9)?,
    })
}

const PART_COLS: &str =
    "id, stream_id, file_id, first_seq, last_seq, start_wall_us, bytes, object, attempts, entry";

impl Db {
    /// Makes exactly `streams` (stream id, since) the uploaded streams: new ones start
    /// at their `since`, existing ones keep theirs, others stop (their holds on retention
    /// go with them). An empty list turns the cloud tier off.
    pub fn cloud_set_streams(&mut self, streams: &[(i64, i64)]) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        let keep: Vec<i64> = streams.iter().map(|s| s.0).collect();
        let existing: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT stream_id FROM cloud_stream")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in existing.iter().filter(|id| !keep.contains(id)) {
            tx.execute("DELETE FROM cloud_stream WHERE stream_id = ?1", [id])?;
        }
        for (id, since) in streams {
            // Files that ended before `since` are never cut: start past them.
            tx.execute(
                "INSERT OR IGNORE INTO cloud_stream (stream_id, since_us, cut_file_id) \
                 VALUES (?1, ?2, COALESCE((SELECT MAX(id) FROM segment_file \
                 WHERE stream_id = ?1 AND state = 'closed' AND end_wall_us <= ?2), 0))",
                params![id, since],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every stream in the index: (id, camera, stream).
    pub fn all_streams(&self) -> Result<Vec<(i64, String, String)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.id, c.name, s.name FROM stream s JOIN camera c ON s.camera_id = c.id \
             ORDER BY s.id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The uploaded streams.
    pub fn cloud_streams(&self) -> Result<Vec<CloudStream>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT stream_id, since_us, cut_file_id FROM cloud_stream ORDER BY stream_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CloudStream {
                stream_id: r.get(0)?,
                since_us: r.get(1)?,
                cut_file_id: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Files of an uploaded stream past its cut mark, oldest first, with how far each is
    /// cut. Cheap: the mark skips every file already cut to its end.
    pub fn cloud_uncut_files(&self, s: &CloudStream) -> Result<Vec<UncutFile>, Error> {
        // The file's columns as `file_row` reads them, then how far parts cover it.
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILE_COLS}, \
             COALESCE((SELECT MAX(last_seq) FROM cloud_part p WHERE p.file_id = segment_file.id), 0) \
             FROM segment_file WHERE stream_id = ?1 AND id > ?2 ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![s.stream_id, s.cut_file_id], |r| {
            Ok(UncutFile {
                file: file_row(r)?,
                covered_seq: u32::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Inserts new parts and moves the stream's cut mark, in one transaction.
    pub fn cloud_insert_parts(
        &mut self,
        stream_id: i64,
        parts: &[NewPart],
        cut_file_id: i64,
    ) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        for p in parts {
            tx.prepare_cached(
                "INSERT INTO cloud_part (stream_id, file_id, first_seq, last_seq, start_wall_us, \
                 end_wall_us, bytes, object, entry, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending')",
            )?
            .execute(params![
                p.stream_id,
                p.file_id,
                p.first_seq,
                p.last_seq,
                p.start_wall_us,
                p.end_wall_us,
                i64::try_from(p.bytes).unwrap_or(i64::MAX),
                p.object,
                p.entry,
            ])?;
        }
        tx.execute(
            "UPDATE cloud_stream SET cut_file_id = MAX(cut_file_id, ?2) WHERE stream_id = ?1",
            params![stream_id, cut_file_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Pending parts due at `now_us`, oldest footage first.
    pub fn cloud_due_parts(&self, now_us: i64, limit: u32) -> Result<Vec<PendingPart>, Error> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {PART_COLS} FROM cloud_part WHERE state = 'pending' AND next_try_us <= ?1 \
             ORDER BY start_wall_us, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![now_us, limit], pending_part)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next pending part is due (None: nothing pending).
    pub fn cloud_next_due(&self) -> Result<Option<i64>, Error> {
        Ok(self.conn.query_row(
            "SELECT MIN(next_try_us) FROM cloud_part WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// A part is in the bucket: mark it, and its hour's manifest due.
    pub fn cloud_mark_uploaded(
        &mut self,
        part_id: i64,
        object_bytes: u64,
        now_us: i64,
    ) -> Result<(), Error> {
        let tx = self.conn.transaction()?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT stream_id, start_wall_us FROM cloud_part WHERE id = ?1",
                [part_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((stream_id, start)) = row else {
            return Ok(());
        };
        tx.execute(
            "UPDATE cloud_part SET state = 'uploaded', uploaded_us = ?2, object_bytes = ?3, \
             last_error = NULL WHERE id = ?1",
            params![
                part_id,
                now_us,
                i64::try_from(object_bytes).unwrap_or(i64::MAX)
            ],
        )?;
        tx.execute(
            "INSERT INTO cloud_manifest (stream_id, hour_us, version, dirty) VALUES (?1, ?2, 0, 1) \
             ON CONFLICT (stream_id, hour_us) DO UPDATE SET dirty = 1",
            params![stream_id, hour_of(start)],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO cloud_state (key, value) VALUES ('last_upload_us', ?1)",
            [now_us],
        )?;
        tx.execute("DELETE FROM cloud_state WHERE key = 'last_error'", [])?;
        tx.commit()?;
        Ok(())
    }

    /// An attempt failed: count it and schedule the next one.
    pub fn cloud_mark_failed(
        &mut self,
        part_id: i64,
        error: &str,
        next_try_us: i64,
    ) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE cloud_part SET attempts = attempts + 1, next_try_us = ?2, last_error = ?3 \
             WHERE id = ?1",
            params![part_id, next_try_us, error],
        )?;
        self.cloud_set_last_error(error)
    }

    /// Records the latest error (upload, manifest or retention) for the System page.
    pub fn cloud_set_last_error(&mut self, error: &str) -> Result<(), Error> {
        self.conn.execute(
            "INSERT OR REPLACE INTO cloud_state (key, value) VALUES ('last_error', ?1)",
            [error],
        )?;
        Ok(())
    }

    /// A part cannot be uploaded any more (its file is gone): count it lost.
    pub fn cloud_mark_lost(&mut self, part_id: i64) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE cloud_part SET state = 'lost' WHERE id = ?1 AND state = 'pending'",
            [part_id],
        )?;
        Ok(())
    }

    /// Manifests due for a new version: (stream, hour, last version written).
    pub fn cloud_dirty_manifests(&self) -> Result<Vec<(i64, i64, u32)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT stream_id, hour_us, version FROM cloud_manifest WHERE dirty = 1 \
             ORDER BY hour_us, stream_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The manifest entries of every uploaded part of a stream's hour, in time order.
    pub fn cloud_hour_entries(
        &self,
        stream_id: i64,
        hour_us: i64,
    ) -> Result<Vec<UploadedEntry>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT entry, object_bytes FROM cloud_part WHERE stream_id = ?1 \
             AND start_wall_us >= ?2 AND start_wall_us < ?3 AND state = 'uploaded' \
             ORDER BY start_wall_us, id",
        )?;
        let rows = stmt.query_map(params![stream_id, hour_us, hour_us + HOUR_US], |r| {
            Ok(UploadedEntry {
                entry: r.get(0)?,
                object_bytes: r.get::<_, i64>(1)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Uploaded parts of a stream overlapping `[start_us, end_us)` whose file is gone from
    /// the disk (local retention deleted it after upload): the footage only the cloud has.
    /// With their footage's span.
    pub fn cloud_only_parts(
        &self,
        stream_id: i64,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<(UploadedEntry, i64, i64)>, Error> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT entry, object_bytes, start_wall_us, end_wall_us FROM cloud_part p \
             WHERE stream_id = ?1 AND state = 'uploaded' AND start_wall_us < ?3 \
             AND end_wall_us > ?2 \
             AND NOT EXISTS (SELECT 1 FROM segment_file f WHERE f.id = p.file_id) \
             ORDER BY start_wall_us",
        )?;
        let rows = stmt.query_map(params![stream_id, start_us, end_us], |r| {
            Ok((
                UploadedEntry {
                    entry: r.get(0)?,
                    object_bytes: r.get::<_, i64>(1)?.max(0) as u64,
                },
                r.get(2)?,
                r.get(3)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Version `version` of a manifest is in the bucket. It stays dirty if a part of its
    /// hour was uploaded after `entries_upto_us` (the upload time the manifest saw).
    pub fn cloud_manifest_written(
        &mut self,
        stream_id: i64,
        hour_us: i64,
        version: u32,
        still_dirty: bool,
    ) -> Result<(), Error> {
        self.conn.execute(
            "UPDATE cloud_manifest SET version = ?3, dirty = ?4 WHERE stream_id = ?1 \
             AND hour_us = ?2",
            params![stream_id, hour_us, version, i64::from(still_dirty)],
        )?;
        Ok(())
    }

    /// A value of the cloud tier's state (naming key, counters).
    pub fn cloud_state(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .conn
            .query_row("SELECT value FROM cloud_state WHERE key = ?1", [key], |r| {
                // Counters are INTEGER, keys BLOB: both read back as bytes.
                let v = r.get_ref(0)?;
                Ok(match v {
                    rusqlite::types::ValueRef::Integer(i) => i.to_string().into_bytes(),
                    other => other.as_bytes().map(<[u8]>::to_vec).unwrap_or_default(),
                })
            })
            .optional()?)
    }

    /// Sets a value of the cloud tier's state, unless one is there (first writer wins: the
    /// naming key is made once).
    pub fn cloud_state_init(&mut self, key: &str, value: &[u8]) -> Result<Vec<u8>, Error> {
        self.conn.execute(
            "INSERT OR IGNORE INTO cloud_state (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(self.cloud_state(key)?.unwrap_or_default())
    }

    /// Whether retention by age must keep a file: it belongs to an uploaded stream, ends
    /// after the stream's `since`, and some of its footage is not in the bucket yet (a
    /// pending part, or fragments not cut into a part).
    pub fn cloud_holds(&self, file: &FileRow) -> Result<bool, Error> {
        let s: Option<i64> = self
            .conn
            .prepare_cached("SELECT since_us FROM cloud_stream WHERE stream_id = ?1")?
            .query_row([file.stream_id], |r| r.get(0))
            .optional()?;
        let Some(since) = s else { return Ok(false) };
        if file.end_wall_us <= since {
            return Ok(false);
        }
        let (pending, covered): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FILTER (WHERE state = 'pending'), COALESCE(MAX(last_seq), 0) \
             FROM cloud_part WHERE file_id = ?1",
            )?
            .query_row([file.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if pending > 0 {
            return Ok(true);
        }
        let last: i64 = self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM fragment WHERE file_id = ?1")?
            .query_row([file.id], |r| r.get(0))?;
        Ok(last > covered)
    }

    /// Inside a deletion's transaction (`move_to_garbage`): a file that a hold would have
    /// kept is going (disk full, byte limit), so its pending parts are lost and the loss
    /// is counted.
    pub(crate) fn cloud_count_loss(
        tx: &rusqlite::Transaction<'_>,
        file: &FileRow,
        held: bool,
    ) -> Result<(), Error> {
        tx.execute(
            "UPDATE cloud_part SET state = 'lost' WHERE file_id = ?1 AND state = 'pending'",
            [file.id],
        )?;
        if held {
            for (key, add) in [("lost_files", 1), ("lost_bytes", file.bytes.max(0))] {
                tx.execute(
                    "INSERT INTO cloud_state (key, value) VALUES (?1, ?2) ON CONFLICT (key) \
                     DO UPDATE SET value = value + ?2",
                    params![key, add],
                )?;
            }
        }
        Ok(())
    }

    /// Counts for the System page.
    pub fn cloud_totals(&self) -> Result<CloudTotals, Error> {
        let mut t = CloudTotals::default();
        let (pp, pb, oldest, up, ub, lost): (i64, i64, Option<i64>, i64, i64, i64) =
            self.conn.query_row(
                "SELECT COUNT(*) FILTER (WHERE state = 'pending'), \
                 COALESCE(SUM(bytes) FILTER (WHERE state = 'pending'), 0), \
                 MIN(start_wall_us) FILTER (WHERE state = 'pending'), \
                 COUNT(*) FILTER (WHERE state = 'uploaded'), \
                 COALESCE(SUM(object_bytes) FILTER (WHERE state = 'uploaded'), 0), \
                 COUNT(*) FILTER (WHERE state = 'lost') FROM cloud_part",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )?;
        t.pending_parts = pp.max(0) as u64;
        t.pending_bytes = pb.max(0) as u64;
        t.oldest_pending_us = oldest;
        t.uploaded_parts = up.max(0) as u64;
        t.uploaded_bytes = ub.max(0) as u64;
        t.lost_parts = lost.max(0) as u64;
        let num = |k: &str| -> Result<u64, Error> {
            Ok(self
                .cloud_state(k)?
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0))
        };
        t.lost_files = num("lost_files")?;
        t.lost_bytes = num("lost_bytes")?;
        t.last_upload_us = self
            .cloud_state("last_upload_us")?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse().ok());
        t.last_error = self
            .cloud_state("last_error")?
            .and_then(|v| String::from_utf8(v).ok());
        Ok(t)
    }

    /// Forgets uploaded parts that the bucket no longer holds (cloud retention deleted
    /// them): their rows only served manifests of hours that are gone too.
    pub fn cloud_forget_before(&mut self, before_us: i64) -> Result<u64, Error> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM cloud_part WHERE state IN ('uploaded', 'lost') AND end_wall_us < ?1",
            [before_us],
        )?;
        tx.execute(
            "DELETE FROM cloud_manifest WHERE hour_us + ?2 < ?1 AND dirty = 0",
            params![before_us, HOUR_US],
        )?;
        tx.commit()?;
        Ok(n as u64)
    }
}
