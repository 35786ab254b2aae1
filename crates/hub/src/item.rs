//! What a hub carries: one ordered stream of [`Item`]s per camera stream.

use vigil_media::audio::AudioFrame;
use vigil_media::AccessUnit;

/// One entry of a stream, in the order the source produced it: a consumer that records
/// everything (the recorder) subscribes once and never has to merge separate channels.
#[derive(Clone, Debug)]
pub enum Item {
    /// A video access unit.
    Video(AccessUnit),
    /// An encoded audio frame (only in hubs made with [`crate::Hub::with_audio`]).
    Audio(AudioFrame),
    /// The source was without footage for a while; published before the first access
    /// unit after it (or, with no `resume_pts`, when the source stops during it).
    Gap(Gap),
    /// The source's timestamps jumped; published just before the re-based access unit.
    Discontinuity(Discontinuity),
}

impl Item {
    /// Whether this is a gap or a discontinuity: rare items that a lagging subscriber
    /// gets back from the hub's log instead of losing them (see [`crate::Subscriber`]).
    pub fn is_control(&self) -> bool {
        matches!(self, Item::Gap(_) | Item::Discontinuity(_))
    }
}

/// A stretch of time in which the source received no access unit although it was
/// running (a camera outage). Reported once it is over (when the stream resumes, or
/// when the source stops).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Wall-clock time of the last access unit before the gap, µs since the Unix epoch.
    pub start_wall_us: i64,
    /// Wall-clock time of the first access unit after the gap (or of the stop), µs.
    pub end_wall_us: i64,
    /// pts of the first access unit after the gap, `None` if the source stopped.
    pub resume_pts: Option<i64>,
    /// Why the session ended, for the index and the UI.
    pub reason: String,
}

/// The source's timestamps jumped; the access unit with pts `pts` was re-based to follow
/// the previous one. A recorder starts a new file there; nothing before it is touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discontinuity {
    /// pts (90 kHz) of the first access unit after the jump.
    pub pts: i64,
    /// Wall-clock time of that access unit, µs since the Unix epoch.
    pub wall_us: i64,
    /// What happened, for logs and the index.
    pub reason: String,
}
