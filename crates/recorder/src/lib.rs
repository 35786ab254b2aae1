//! Vigil's recorder: records camera streams without re-encoding into self-describing
//! fragmented MP4 files, indexes every fragment in SQLite, enforces retention and exports
//! any time range as one standard MP4.
//!
//! Layout under the data directory:
//!
//! ```text
//! <data>/index.sqlite3                                   the index (WAL)
//! <data>/recordings/<camera>/<stream>/<YYYYMMDD>/<HHMMSS-uuuuuu>.mp4   segment files (UTC)
//! ```
//!
//! How the parts fit (details in `docs/recording.md`):
//!
//! - [`segment::Segmenter`] is sans-IO: access units in, "start file / write fragment /
//!   end file" events out. It decides fragment cuts (≤ 1 s, at key frames when possible,
//!   contiguous decode times) and new files (every few minutes, on a codec parameter
//!   change, on a timestamp jump).
//! - [`writer::StreamWriter`] applies those events through [`storage::Storage`] and
//!   [`db::Db`] in crash-safe order: append → fsync → index row.
//! - [`recovery`] repairs open files at startup; [`recovery::reindex`] rebuilds the index.
//! - [`retention`] deletes oldest-first through the `garbage` table.
//! - [`export`] turns a wall-clock range into an [`export::ExportPlan`] from the index alone.
//! - [`archive::Archive`] is what the writers and background tasks of one data directory
//!   share: media storage, the index (behind the accessor that commits queued rows), the
//!   retention limits.
//! - [`Recorder`] ties them to tokio and [`vigil_hub::Hub`]s. Where the hub's access units
//!   come from (a camera through `vigil-ingest`, or Vigil's own encoder) is not its concern.
//!
//! Time is injected through [`clock::Clock`] and file I/O through [`storage::Storage`],
//! so rotation, crashes and full disks are tested deterministically.

use std::io;

pub mod archive;
pub mod clock;
pub mod db;
pub mod db_cloud;
pub mod export;
pub mod recorder;
pub mod recovery;
pub mod retention;
pub mod segment;
pub mod segment_audio;
pub mod stats;
pub mod storage;
pub mod writer;

pub use export::ExportPlan;
pub use recorder::{Recorder, RecorderConfig, RecordingHandle};

#[cfg(test)]
mod testutil;

/// Errors of the recorder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// The index database failed.
    #[error("index database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The index's schema cannot be used: written by a newer Vigil, or by an older one and
    /// opened read-only.
    #[error("{0}; `vigil reindex` rebuilds the index from the recordings")]
    Schema(#[from] vigil_datadir::SchemaError),
    /// A media file could not be read or an export could not be built.
    #[error("mp4: {0}")]
    Mp4(#[from] vigil_media::fmp4::Mp4Error),
    /// A camera or stream name that cannot be used in a path.
    #[error("invalid name {0:?}: use 1-64 characters of A-Z a-z 0-9 _ -")]
    InvalidName(String),
    /// No such camera stream in the index.
    #[error("no recordings for camera {camera:?} stream {stream:?}")]
    UnknownStream {
        /// Camera name.
        camera: String,
        /// Stream name.
        stream: String,
    },
    /// Nothing recorded in the requested range.
    #[error("nothing recorded in the requested time range")]
    NothingRecorded,
    /// A file on disk disagrees with the index.
    #[error("{0}")]
    Corrupt(String),
    /// The recorder is shutting down.
    #[error("recorder stopped")]
    Stopped,
    /// The recorder was opened read-only ([`Recorder::open_read_only`]).
    #[error("the recordings were opened read-only")]
    ReadOnly,
    /// The data directory has no index.
    #[error("no recordings index at {} (is the data directory right? `vigil reindex` rebuilds a lost index)", .0.display())]
    NoIndex(std::path::PathBuf),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// `true` if the disk is full.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. } if storage::is_no_space(source))
    }
}

/// Checks a camera or stream name before it becomes a directory name: 1-64 characters of
/// `A-Z a-z 0-9 _ -`, so no path separator, `..` or control character ever reaches a path.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_owned()))
    }
}
