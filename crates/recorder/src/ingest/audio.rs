//! Audio from the camera, passed through like video: encoded frames with monotonic
//! timestamps in the stream's own clock, ready for an MP4 audio track.

use std::sync::Arc;

use bytes::Bytes;

/// Audio codecs Vigil records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// MPEG-4 AAC (RFC 3640 `mpeg4-generic`); frames are raw access units.
    Aac {
        /// The AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), for the MP4 `esds` box.
        config: Bytes,
    },
    /// G.711 µ-law (RFC 3551 §4.5.14 PCMU).
    Pcmu,
    /// G.711 A-law (RFC 3551 §4.5.14 PCMA).
    Pcma,
}

impl AudioCodec {
    /// The codec an SDP `rtpmap` encoding name (lower case, as retina reports it) stands
    /// for, if Vigil records it. AAC's config is filled in once retina has parsed it.
    pub(crate) fn from_encoding_name(name: &str) -> Option<AudioCodec> {
        match name {
            "mpeg4-generic" => Some(AudioCodec::Aac {
                config: Bytes::new(),
            }),
            "pcmu" => Some(AudioCodec::Pcmu),
            "pcma" => Some(AudioCodec::Pcma),
            _ => None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_the_recorded_codecs_only() {
        assert!(matches!(
            AudioCodec::from_encoding_name("mpeg4-generic"),
            Some(AudioCodec::Aac { .. })
        ));
        assert_eq!(
            AudioCodec::from_encoding_name("pcmu"),
            Some(AudioCodec::Pcmu)
        );
        assert_eq!(
            AudioCodec::from_encoding_name("pcma"),
            Some(AudioCodec::Pcma)
        );
        assert_eq!(AudioCodec::from_encoding_name("g726-32"), None);
        assert_eq!(AudioCodec::from_encoding_name("opus"), None);
    }
}
