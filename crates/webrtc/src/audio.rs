//! G.711 audio passed through to a viewer: which hub audio a browser can play as it is, and
//! how a hub audio frame becomes RTP payloads.
//!
//! RFC 7874 §3 makes PCMU and PCMA (G.711, RFC 3551 §4.5.14: static payload types 0 and 8,
//! 8000 Hz, mono) mandatory for WebRTC endpoints beside Opus, so every browser decodes
//! them. G.711 has no frame structure: one byte is one sample, and any run of bytes is a
//! valid RTP payload (RFC 3551 §4.5.14), so frames pass through untouched. AAC, which
//! browsers' WebRTC stacks do not negotiate, is never transcoded: such a stream plays
//! without sound.

use str0m::format::Codec as RtcCodec;
use str0m::media::{Frequency, MediaTime};
use vigil_media::audio::{AudioCodec, AudioFrame, AudioParams};

/// Largest G.711 payload per RTP packet: 60 ms at 8 kHz. Below the smallest datagram str0m
/// is configured for (576 bytes, `DATAGRAM_MTU_TARGET_MIN`) with RTP and SRTP overhead, so
/// str0m's packetizer never splits it: it would give every piece the same RTP timestamp,
/// where each must carry the time of its first sample (RFC 3550 §5.1).
pub const MAX_G711_PAYLOAD: usize = 480;

/// The str0m codec for passing `params` through, if a browser can play it as it is:
/// PCMU or PCMA at 8000 Hz, mono (RFC 7874 §3; RFC 3551 §4.5.14 fixes the static payload
/// types to 8000 Hz and one channel).
pub(crate) fn g711_codec(params: &AudioParams) -> Option<RtcCodec> {
    if params.sample_rate != 8000 || params.channels != 1 {
        return None;
    }
    match params.codec {
        AudioCodec::Pcmu => Some(RtcCodec::PCMU),
        AudioCodec::Pcma => Some(RtcCodec::PCMA),
        AudioCodec::Aac { .. } => None,
    }
}

/// The RTP side of one session's G.711 track: RTP time counted from the first frame sent.
#[derive(Debug)]
pub(crate) struct G711Track {
    codec: RtcCodec,
    origin: Option<i64>,
}

impl G711Track {
    pub(crate) fn new(codec: RtcCodec) -> Self {
        G711Track {
            codec,
            origin: None,
        }
    }

    /// The RTP payloads of `frame`, each with its RTP time (8 kHz, counted from the first
    /// frame's pts; the hub's audio pts is monotonic, so this never runs backwards).
    /// Nothing for a frame of another codec (the camera changed it since the answer).
    pub(crate) fn packets<'a>(
        &mut self,
        frame: &'a AudioFrame,
    ) -> impl Iterator<Item = (MediaTime, &'a [u8])> + 'a {
        let matches = g711_codec(&frame.params) == Some(self.codec);
        let origin = *self.origin.get_or_insert(frame.pts);
        let start = u64::try_from(frame.pts.saturating_sub(origin)).unwrap_or(0);
        let data: &'a [u8] = if matches { &frame.data } else { &[] };
        // One byte per sample (mono): a chunk's offset in bytes is its offset in samples.
        data.chunks(MAX_G711_PAYLOAD)
            .enumerate()
            .map(move |(i, chunk)| {
                let ticks = start + (i * MAX_G711_PAYLOAD) as u64;
                (MediaTime::new(ticks, Frequency::EIGHT_KHZ), chunk)
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    fn frame(codec: AudioCodec, pts: i64, len: usize) -> AudioFrame {
        AudioFrame {
            params: Arc::new(AudioParams {
                codec,
                sample_rate: 8000,
                channels: 1,
            }),
            pts,
            capture_us: 0,
            duration: len as u32,
            data: Bytes::from(vec![0xd5; len]),
        }
    }

    #[test]
    fn only_8khz_mono_g711_passes() {
        let mut p = AudioParams {
            codec: AudioCodec::Pcma,
            sample_rate: 8000,
            channels: 1,
        };
        assert_eq!(g711_codec(&p), Some(RtcCodec::PCMA));
        p.codec = AudioCodec::Pcmu;
        assert_eq!(g711_codec(&p), Some(RtcCodec::PCMU));
        p.channels = 2;
        assert_eq!(g711_codec(&p), None);
        p.channels = 1;
        p.sample_rate = 16000;
        assert_eq!(g711_codec(&p), None);
        p.sample_rate = 8000;
        p.codec = AudioCodec::Aac {
            config: Bytes::from_static(&[0x15, 0x88]),
        };
        assert_eq!(g711_codec(&p), None);
    }

    /// A 20 ms frame is one packet; a 200 ms frame is split, each piece stamped with the
    /// time of its first sample; a frame of another codec sends nothing.
    #[test]
    fn frames_pass_through_and_large_ones_are_split_with_their_own_times() {
        let mut t = G711Track::new(RtcCodec::PCMU);
        let f = frame(AudioCodec::Pcmu, 16_000, 160);
        let p: Vec<_> = t.packets(&f).map(|(t, d)| (t.numer(), d.len())).collect();
        assert_eq!(p, [(0, 160)]);
        let f = frame(AudioCodec::Pcmu, 16_160, 1600);
        let p: Vec<_> = t.packets(&f).map(|(t, d)| (t.numer(), d.len())).collect();
        assert_eq!(p, [(160, 480), (640, 480), (1120, 480), (1600, 160)]);
        let f = frame(AudioCodec::Pcma, 17_760, 160);
        assert_eq!(t.packets(&f).count(), 0);
    }
}
