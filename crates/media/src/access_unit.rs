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

    /// Writes this access unit into `out` (cleared first) as a decoder's input: an Annex B
    /// byte stream (ITU-T H.264 / H.265 Annex B, a 4-byte start code before each NAL unit).
    ///
    /// A key frame whose data carries no SPS gets the stream's parameter sets from `params`
    /// first ((VPS,) SPS, PPS), so a decoder can start on any key frame and follows a camera
    /// that changes its parameter sets mid-stream without `extradata`. OpenH264 and
    /// libavcodec both take this form; `out` is the caller's, reused across access units.
    pub fn write_decoder_input(&self, out: &mut Vec<u8>) {
        out.clear();
        let p = &*self.params;
        let is_sps = |nal: &[u8]| match p.codec {
            Codec::H264 => crate::h264::nal_type(nal) == Some(crate::h264::NAL_SPS),
            Codec::H265 => crate::h265::nal_type(nal) == Some(crate::h265::NAL_SPS),
        };
        if self.key && !self.nal_units().any(is_sps) {
            for ps in p.vps.iter().chain([&p.sps, &p.pps]) {
                if !ps.is_empty() {
                    out.extend_from_slice(&[0, 0, 0, 1]);
                    out.extend_from_slice(ps);
                }
            }
        }
        crate::h264::avcc_to_annexb(&self.data, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn au(codec: Codec, key: bool, nals: &[&[u8]]) -> AccessUnit {
        let vps = (codec == Codec::H265).then(|| Bytes::from_static(&[0x40, 0x01, 0xaa]));
        let (sps, pps): (&'static [u8], &'static [u8]) = match codec {
            Codec::H264 => (&[0x67, 0xbb], &[0x68, 0xcc]),
            Codec::H265 => (&[0x42, 0x01, 0xbb], &[0x44, 0x01, 0xcc]),
        };
        AccessUnit {
            params: Arc::new(StreamParams {
                codec,
                vps,
                sps: Bytes::from_static(sps),
                pps: Bytes::from_static(pps),
                width: 16,
                height: 16,
                fps: None,
            }),
            pts: 0,
            capture_us: 0,
            key,
            data: crate::h264::avcc_from_nals(nals.iter().copied()).into(),
        }
    }

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|n| [&[0, 0, 0, 1][..], n].concat())
            .collect()
    }

    #[test]
    fn h264_key_frame_without_parameter_sets_gets_them_first() {
        let mut out = vec![9, 9];
        au(Codec::H264, true, &[&[0x65, 1]]).write_decoder_input(&mut out);
        assert_eq!(out, annexb(&[&[0x67, 0xbb], &[0x68, 0xcc], &[0x65, 1]]));
    }

    #[test]
    fn key_frame_with_its_own_sps_and_non_key_frames_pass_as_they_are() {
        let mut out = Vec::new();
        let own: &[&[u8]] = &[&[0x67, 7], &[0x68, 8], &[0x65, 1]];
        au(Codec::H264, true, own).write_decoder_input(&mut out);
        assert_eq!(out, annexb(own));
        au(Codec::H264, false, &[&[0x41, 2]]).write_decoder_input(&mut out);
        assert_eq!(out, annexb(&[&[0x41, 2]]));
    }

    #[test]
    fn h265_key_frame_gets_vps_sps_and_pps() {
        let mut out = Vec::new();
        au(Codec::H265, true, &[&[0x26, 0x01, 5]]).write_decoder_input(&mut out);
        let want: &[&[u8]] = &[
            &[0x40, 0x01, 0xaa],
            &[0x42, 0x01, 0xbb],
            &[0x44, 0x01, 0xcc],
            &[0x26, 0x01, 5],
        ];
        assert_eq!(out, annexb(want));
        let own: &[&[u8]] = &[&[0x42, 0x01, 7], &[0x26, 0x01, 5]];
        au(Codec::H265, true, own).write_decoder_input(&mut out);
        assert_eq!(out, annexb(own));
    }
}
