//! The motion event store: `<data>/events.sqlite3`, beside the recordings index but in its
//! own file, because `vigil reindex` rebuilds the index from the media files and events
//! cannot be rebuilt from them.

use serde::Serialize;

/// A box in normalized picture coordinates (0..1).
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
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
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventRow {
    /// Row id.
    pub id: i64,
    /// Camera.
    pub camera: String,
    /// Zones the motion touched (empty: whole picture, no zones configured).
    pub zones: Vec<String>,
    /// Start, µs since the epoch.
    pub start_us: i64,
    /// End, µs since the epoch; `None` while active.
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

/// The event store (skeleton: the motion owner implements it).
pub struct EventStore {
    _private: (),
}

impl EventStore {
    /// Events matching `filter`, newest first.
    pub fn list(&self, _filter: &EventFilter) -> Result<Vec<EventRow>, crate::NvrError> {
        unimplemented!()
    }

    /// One event.
    pub fn get(&self, _id: i64) -> Result<Option<EventRow>, crate::NvrError> {
        unimplemented!()
    }

    /// The event's JPEG thumbnail.
    pub fn thumbnail(&self, _id: i64) -> Result<Option<Vec<u8>>, crate::NvrError> {
        unimplemented!()
    }
}
