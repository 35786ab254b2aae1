//! ISO base media file format (ISO/IEC 14496-12) for recordings and exports.
//!
//! Sans-IO, like the rest of this crate: every function appends bytes to a `Vec<u8>` or
//! reads a byte slice; files, fsync and byte copying are the caller's business.
//!
//! - Recording files are **fragmented MP4**: [`write_init_segment`] once (`ftyp` + `moov`
//!   with empty sample tables and `mvex`), then per fragment [`write_fragment_header`]
//!   (`moof` + `mdat` header) followed by the samples' bytes, which the caller appends in
//!   the order of the runs. Such a file plays in VLC and ffmpeg as it is.
//! - [`scan`] reads such a file back for crash recovery and reindexing: it returns the
//!   tracks and every *complete* fragment with each sample's absolute byte offset and
//!   decode time, and the length up to which the file is valid.
//! - [`ExportBuilder`] describes a progressive ("fast start") MP4 — `ftyp`, `moov` with
//!   full sample tables, `mdat` header — for samples whose bytes the caller copies after
//!   it. Its total length is known before a byte of media is read (HTTP Range serving).
//!
//! Video samples are H.264 or H.265 access units in length-prefixed form (4-byte lengths,
//! ISO/IEC 14496-15 §5.3.3 and §8.3.3, `lengthSizeMinusOne = 3`; `avc1`+`avcC` or
//! `hvc1`+`hvcC` sample entries), exactly
//! [`AccessUnit::data`](crate::AccessUnit::data). Samples carry no composition offset:
//! streams with B-frames are out of scope until [`AccessUnit`](crate::AccessUnit) carries
//! a decode time.

use std::sync::Arc;

use crate::audio::AudioCodec;
use crate::StreamParams;

mod boxes;
mod export;
mod fragment;
mod hevc;
mod init;
pub mod live;
mod parse_init;
mod scan;

#[cfg(test)]
mod hevc_tests;
#[cfg(test)]
mod tests;

pub use export::{ExportBuilder, ExportLayout};
pub use fragment::{write_fragment_header, FragmentHeader, Sample, TrackRun};
pub use init::write_init_segment;
pub use scan::{
    check_scan_invariants, scan, InitInfo, ScanEnd, ScanResult, ScannedFragment, ScannedRun,
    ScannedSample,
};

/// An H.264 or H.265 video track.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoTrack {
    /// `track_ID` (non-zero, unique within the file).
    pub track_id: u32,
    /// Ticks per second of the track's timestamps; 90 000 for RTP video.
    pub timescale: u32,
    /// Parameter sets and picture size; the `avcC` or `hvcC` box is built from them.
    pub params: Arc<StreamParams>,
}

/// An audio track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioTrack {
    /// `track_ID` (non-zero, unique within the file).
    pub track_id: u32,
    /// Ticks per second; the sample rate (8000 for G.711).
    pub timescale: u32,
    /// Number of channels.
    pub channels: u16,
    /// The codec and its configuration.
    pub codec: AudioCodec,
}

/// One track of a recording or export.
#[derive(Clone, Debug, PartialEq)]
pub enum Track {
    /// A video track.
    Video(VideoTrack),
    /// An audio track.
    Audio(AudioTrack),
}

impl Track {
    /// The track's `track_ID`.
    pub fn track_id(&self) -> u32 {
        match self {
            Track::Video(v) => v.track_id,
            Track::Audio(a) => a.track_id,
        }
    }

    /// Ticks per second of the track's timestamps.
    pub fn timescale(&self) -> u32 {
        match self {
            Track::Video(v) => v.timescale,
            Track::Audio(a) => a.timescale,
        }
    }
}

/// Errors of building MP4 exports and of reading files that are not MP4 at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Mp4Error {
    /// The data does not start with an `ftyp` box, so it is not a file this module wrote;
    /// recovery must not truncate it.
    #[error("not an ISO BMFF file: it starts with {found:?}, not an ftyp box")]
    NotMp4 {
        /// The first four bytes of the first box's type (or of the file).
        found: [u8; 4],
    },
    /// A sample names a track the builder was not given.
    #[error("sample for unknown track {0}")]
    UnknownTrack(u32),
    /// A sample's decode time is earlier than the previous sample's of the same track.
    #[error(
        "track {track_id}: decode time {decode_time} is before the previous sample's {previous}"
    )]
    DecodeTimeBackwards {
        /// The track.
        track_id: u32,
        /// Decode time of the rejected sample.
        decode_time: u64,
        /// Decode time of the previous sample.
        previous: u64,
    },
}
