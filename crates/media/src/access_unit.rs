//! The one type every part of Vigil passes around: an encoded access unit.

use std::sync::Arc;

use bytes::Bytes;

/// Video codec of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// ITU-T H.264 / MPEG-4 AVC.
    H264,
    /// ITU-T H.265 / HEVC.
    H265,
}

/// Codec parameters of a stream, shared (`Arc`) by every access unit until they change.
///
/// These are the parameter sets (raw NAL units, without start codes or length prefixes)
/// and what is derived from them: SPS and PPS for H.264, VPS, SPS and PPS for H.265.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamParams {
    /// The codec.
    pub codec: Codec,
    /// H.265 video parameter set NAL unit (2-byte header included); `None` for H.264.
    pub vps: Option<Bytes>,
    /// Sequence parameter set NAL unit (NAL unit header included).
    pub sps: Bytes,
    /// Picture parameter set NAL unit (NAL unit header included).
    pub pps: Bytes,
    /// Coded picture width in pixels (after cropping).
    pub width: u32,
    /// Coded picture height in pixels (after cropping).
    pub height: u32,
    /// Nominal frame rate in frames per second, if known.
    pub fps: Option<f64>,
}

impl StreamParams {
    /// H.264 only: RFC 6184 §8.1 `profile-level-id`: profile_idc, constraint flags and level_idc,
    /// i.e. bytes 1..4 of the SPS NAL unit.
    pub fn profile_level_id(&self) -> [u8; 3] {
        let mut out = [0x42, 0xc0, 0x1f];
        if self.sps.len() >= 4 {
            out.copy_from_slice(&self.sps[1..4]);
        }
        out
    }
}

/// An encoded access unit (one picture) of one stream.
///
/// `data` holds the picture's NAL units in AVC (ISO/IEC 14496-15) form: each NAL unit
/// preceded by its length as a 4-byte big-endian integer. That form is what MP4 stores
/// and what RTP packetization walks without a start-code scan. Parameter sets travel in
/// `params`; a key frame's `data` may repeat them.
#[derive(Clone, Debug)]
pub struct AccessUnit {
    /// Codec parameters in force for this picture.
    pub params: Arc<StreamParams>,
    /// Presentation time in the stream's 90 kHz clock; monotonic within a stream.
    pub pts: i64,
    /// Wall-clock time of capture, microseconds since the Unix epoch.
    pub capture_us: i64,
    /// Whether a decoder can start from this picture: an H.264 IDR picture, an H.265
    /// IRAP picture (IDR, CRA or BLA).
    pub key: bool,
    /// Length-prefixed NAL units (4-byte big-endian lengths).
    pub data: Bytes,
}

impl AccessUnit {
    /// Iterates over the NAL units of `data`, without their length prefixes.
    /// Stops early (without panicking) at a truncated or inconsistent length.
    pub fn nal_units(&self) -> crate::h264::AvccNalIter<'_> {
        crate::h264::AvccNalIter::new(&self.data)
    }
}
