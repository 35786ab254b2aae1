//! The archive: the recordings of one data directory — their media storage, their index,
//! the index rows waiting to be committed, and the retention limits — shared by every
//! stream's writer and the background tasks (retention, the index committer).
//!
//! The index is reachable only through [`Archive::index`], which commits the queued
//! fragment rows first: whoever reads or writes the index sees every fragment whose media
//! is durable, and a file's rows are always in before it is closed or deleted.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tracing::warn;

use crate::clock::Clock;
use crate::db::{Db, FragmentRow};
use crate::retention::{EventRetention, RetentionConfig};
use crate::storage::Storage;

/// What every writer and background task of one data directory shares.
pub struct Archive {
    /// The recordings directory.
    pub storage: Arc<dyn Storage>,
    /// The index; only through [`Archive::index`].
    index: Mutex<Db>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Retention limits (also used to free space on ENOSPC); changed at runtime through
    /// [`Recorder::set_retention`](crate::Recorder::set_retention), read as a clone by
    /// each pass (see [`Archive::retention`]).
    retention: RwLock<RetentionConfig>,
    /// Longer retention of event footage (see [`EventRetention`]); none until the NVR
    /// sets it.
    event_retention: RwLock<EventRetention>,
    /// Fragment rows of all streams whose media is fsynced, waiting for the next shared
    /// index commit (see [`Archive::queue_fragment`]).
    pending: Mutex<PendingRows>,
}

/// Rows queued for the next index commit.
#[derive(Default)]
struct PendingRows {
    rows: Vec<FragmentRow>,
    /// When the oldest queued row was queued, on the archive's monotonic clock.
    since: Option<Duration>,
}

/// How long a fragment row may wait for the shared index commit when no
/// [`Archive::commit_older_than`] ticker runs (a writer used on its own). Rows are queued
/// only after their media is fsynced; after a crash recovery indexes such fragments from
/// the file itself, so the wait costs no footage, only index freshness.
pub const INDEX_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Rows kept for a retry while the index cannot be written (≈ 1 minute of 64 streams);
/// beyond that the oldest are dropped, logged (`vigil reindex` restores them).
const MAX_PENDING_ROWS: usize = 4096;

impl Archive {
    /// The shared state of one data directory.
    pub fn new(
        storage: Arc<dyn Storage>,
        db: Db,
        clock: Arc<dyn Clock>,
        retention: RetentionConfig,
    ) -> Self {
        Self {
            storage,
            index: Mutex::new(db),
            clock,
            retention: RwLock::new(retention),
            event_retention: RwLock::new(EventRetention::default()),
            pending: Mutex::new(PendingRows::default()),
        }
    }

    /// Locks the index, after committing the queued fragment rows: whoever reads or
    /// writes the index sees every fragment queued so far, and a file's rows are always
    /// in before it is closed or deleted. A panic elsewhere while holding the lock leaves
    /// SQLite consistent (its transactions roll back), so a poisoned lock is taken over.
    pub fn index(&self) -> MutexGuard<'_, Db> {
        let mut db = self.index.lock().unwrap_or_else(|e| e.into_inner());
        self.commit_pending(&mut db);
        db
    }

    /// Queues the index row of a fragment whose media is already fsynced. All streams'
    /// rows go into one transaction, committed by the first writer that queues a row
    /// [`INDEX_COMMIT_INTERVAL`] after the oldest queued one, or by the next use of
    /// [`index`](Self::index) (one commit a second instead of one per stream per second).
    pub fn queue_fragment(&self, row: FragmentRow) {
        let due = {
            let mut p = self.pending();
            p.rows.push(row);
            let now = self.clock.monotonic();
            let since = *p.since.get_or_insert(now);
            now.saturating_sub(since) >= INDEX_COMMIT_INTERVAL
        };
        if due {
            drop(self.index());
        }
    }

    /// Commits the queued rows if the oldest has waited `age` (the recorder's ticker: the
    /// streams' fragments, cut at about the same moments, arrive in bursts; waiting a
    /// little gathers a burst into one commit). Returns whether it committed.
    pub fn commit_older_than(&self, age: Duration) -> bool {
        let now = self.clock.monotonic();
        let due = self
            .pending()
            .since
            .is_some_and(|t| now.saturating_sub(t) >= age);
        if due {
            drop(self.index());
        }
        due
    }

    /// Whether fragment rows wait for a commit.
    pub fn has_pending(&self) -> bool {
        self.pending().since.is_some()
    }

    fn pending(&self) -> MutexGuard<'_, PendingRows> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn commit_pending(&self, db: &mut Db) {
        let rows = {
            let mut p = self.pending();
            p.since = None;
            std::mem::take(&mut p.rows)
        };
        if rows.is_empty() {
            return;
        }
        if let Err(e) = db.insert_fragments(&rows) {
            // Kept for the next commit (the media is durable; recovery would also find it
            // after a restart, as long as its file is still open then).
            warn!(
                "index: {} fragment rows not committed, retrying: {e}",
                rows.len()
            );
            let mut p = self.pending();
            let mut rows = rows;
            rows.append(&mut p.rows);
            if rows.len() > MAX_PENDING_ROWS {
                let n = rows.len() - MAX_PENDING_ROWS;
                warn!("index: dropping {n} fragment rows (run `vigil reindex` to restore them)");
                rows.drain(..n);
            }
            p.rows = rows;
            p.since.get_or_insert(self.clock.monotonic());
        }
    }

    /// The current retention limits (a clone: a pass works on one consistent setting
    /// while the NVR may change it).
    pub fn retention(&self) -> RetentionConfig {
        self.retention
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the retention limits; the next pass (and the next ENOSPC) uses them.
    pub fn set_retention(&self, retention: RetentionConfig) {
        *self.retention.write().unwrap_or_else(|e| e.into_inner()) = retention;
    }

    /// The current event retention (a clone, like [`retention`](Self::retention)).
    pub fn event_retention(&self) -> EventRetention {
        self.event_retention
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the event retention; the next age pass uses it.
    pub fn set_event_retention(&self, events: EventRetention) {
        *self
            .event_retention
            .write()
            .unwrap_or_else(|e| e.into_inner()) = events;
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        // The last queued rows (a recorder closed between commits).
        drop(self.index());
    }
}
