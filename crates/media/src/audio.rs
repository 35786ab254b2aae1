//! Audio frames as every part of Vigil passes them around: encoded frames with monotonic
//! timestamps in the stream's own clock, passed through untouched like video access units,
//! ready for an MP4 audio track.

use std::sync::Arc;

use bytes::Bytes;

/// Audio codecs Vigil records: of an ingested stream, and of an MP4 audio track
/// ([`crate::fmp4::AudioTrack`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// MPEG-4 AAC (RFC 3640 `mpeg4-generic`; MP4 `mp4a` + `esds`); frames are raw access units.
    Aac {
        /// The AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), e.g. from the SDP `config=`
        /// parameter; written into the MP4 `esds` box.
        config: Bytes,
    },
    /// G.711 µ-law (RFC 3551 §4.5.14 PCMU; MP4 `ulaw` sample entry, as ffmpeg and
    /// QuickTime name it).
    Pcmu,
    /// G.711 A-law (RFC 3551 §4.5.14 PCMA; MP4 `alaw` sample entry).
    Pcma,
}

/// Parameters of an audio stream, shared (`Arc`) by its frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioParams {
    /// The codec.
    pub codec: AudioCodec,
    /// Samples per second; also the clock rate of [`AudioFrame::pts`].
    pub sample_rate: u32,
    /// Number of channels.
    pub channels: u16,
}

/// One encoded audio frame.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// Parameters of the stream.
    pub params: Arc<AudioParams>,
    /// Presentation time in `params.sample_rate` Hz; monotonic within the ingest, on the
    /// same host-monotonic footing as the video pts across reconnects.
    pub pts: i64,
    /// Wall-clock time of reception, µs since the Unix epoch.
    pub capture_us: i64,
    /// Duration in `params.sample_rate` ticks.
    pub duration: u32,
    /// The encoded frame (raw AAC access unit, or G.711 samples).
    pub data: Bytes,
}
