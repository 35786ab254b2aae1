//! What a WHEP request must satisfy before a session is set up: a stream the browser can
//! decode when passed through untouched, and an offer that can receive it.

use str0m::change::SdpOffer;
use vigil_media::{Codec, StreamParams};

/// Largest offer accepted. Browsers' offers for one video and one audio section are 4-6 KiB;
/// the limit keeps the SDP parser away from arbitrarily large input.
pub const MAX_OFFER_BYTES: usize = 32 * 1024;

/// Why a stream cannot be passed through to a browser; the UI shows the message (`Display`)
/// and falls back to MSE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Declined {
    /// Browsers' WebRTC stacks do not negotiate H.265 everywhere; we never transcode.
    #[error("the stream is H.265; WebRTC live view passes H.264 through only, use MSE")]
    H265,
    /// WebRTC assumes decode order equals presentation order (no reordering buffer), so
    /// B-frames would play out of order.
    #[error("the stream has B-frames (max_num_reorder_frames {0}); WebRTC cannot play them in order, use MSE")]
    BFrames(u32),
    /// The SPS allows B-frames and does not say how deep the reordering is.
    #[error("the stream may have B-frames (profile_idc {0}, no bitstream restriction in the SPS); use MSE")]
    MayReorder(u8),
    /// The SPS does not parse; nothing truthful can be advertised.
    #[error("the stream's SPS does not parse: {0}")]
    BadSps(String),
}

/// Why an offer is refused (HTTP 400 or 415 at the edge).
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// Larger than [`MAX_OFFER_BYTES`].
    #[error("offer is {0} bytes, more than {MAX_OFFER_BYTES}")]
    TooLarge(usize),
    /// Not SDP that str0m can parse.
    #[error("offer is not valid SDP: {0}")]
    Sdp(String),
    /// RFC 9725 §4.2: the client offers what it can receive; it must be able to receive
    /// H.264 in packetization mode 1 (RFC 6184 §6.3, non-interleaved) for pass-through.
    #[error("offer has no video section receiving H.264 with packetization-mode=1")]
    NoH264,
}

/// Checks that `params` can be passed through to a browser untouched.
///
/// B-frames are recognised from the SPS (ITU-T H.264 §E.2.1): a `bitstream_restriction`
/// with `max_num_reorder_frames > 0`, or, without one, a profile that allows B slices and a
/// `pic_order_cnt_type` other than 2 (type 2 means output order equals decoding order,
/// §8.2.1.3). Without a bitstream restriction a main/high stream is assumed to reorder
/// unless the POC type rules it out: cameras that omit the VUI are rare, and the cost of a
/// wrong guess is an MSE fallback, not broken video.
pub fn check_stream(params: &StreamParams) -> Result<(), Declined> {
    use h264_reader::nal::sps::{PicOrderCntType, SeqParameterSet};
    use h264_reader::rbsp::{decode_nal, BitReader};

    if params.codec == Codec::H265 {
        return Err(Declined::H265);
    }
    let rbsp = decode_nal(&params.sps).map_err(|e| Declined::BadSps(e.to_string()))?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&*rbsp))
        .map_err(|e| Declined::BadSps(format!("{e:?}")))?;
    let restriction = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.bitstream_restrictions.as_ref());
    if let Some(r) = restriction {
        return match r.max_num_reorder_frames {
            0 => Ok(()),
            n => Err(Declined::BFrames(n)),
        };
    }
    let profile_idc: u8 = sps.profile_idc.into();
    let constrained_baseline = profile_idc == 66 || u8::from(sps.constraint_flags) & 0x40 != 0;
    if constrained_baseline || matches!(sps.pic_order_cnt, PicOrderCntType::TypeTwo) {
        Ok(())
    } else {
        // Unknown reorder depth; the decoder's worst case (§A.3.1) is what the browser
        // would have to buffer, so decline.
        Err(Declined::MayReorder(profile_idc))
    }
}

/// Parses a WHEP offer and checks that it can receive H.264 in packetization mode 1.
pub fn check_offer(sdp: &str) -> Result<SdpOffer, OfferError> {
    if sdp.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooLarge(sdp.len()));
    }
    if !offers_h264_mode1(sdp) {
        return Err(OfferError::NoH264);
    }
    SdpOffer::from_sdp_string(sdp).map_err(|e| OfferError::Sdp(e.to_string()))
}

/// Scans `m=video` sections for a payload type mapped to `H264/90000` (RFC 4566 §6
/// `a=rtpmap`) whose `a=fmtp` has `packetization-mode=1` (RFC 6184 §8.1) and whose direction
/// lets it receive (`recvonly` or `sendrecv`, RFC 3264 §5.1).
fn offers_h264_mode1(sdp: &str) -> bool {
    let mut sections = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            sections.push(vec![line]);
        } else if let Some(s) = sections.last_mut() {
            s.push(line);
        }
    }
    sections.iter().any(|s| {
        if !s[0].starts_with("m=video ") {
            return false;
        }
        if s.iter().any(|l| *l == "a=sendonly" || *l == "a=inactive") {
            return false;
        }
        let pts: Vec<&str> = s
            .iter()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .filter_map(|r| r.split_once(' '))
            .filter(|(_, enc)| enc.eq_ignore_ascii_case("H264/90000"))
            .map(|(pt, _)| pt)
            .collect();
        s.iter()
            .filter_map(|l| l.strip_prefix("a=fmtp:"))
            .filter_map(|r| r.split_once(' '))
            .any(|(pt, params)| {
                pts.contains(&pt)
                    && params
                        .split(';')
                        .any(|p| p.trim() == "packetization-mode=1")
            })
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    /// Writes an SPS (ITU-T H.264 §7.3.2.1.1) for 320x240 with the given profile and POC
    /// type, no VUI; enough for `check_stream` to decide.
    pub(crate) fn sps(profile_idc: u8, constraint: u8, poc_type: u32) -> Vec<u8> {
        let mut bits: Vec<bool> = Vec::new();
        let ue = |bits: &mut Vec<bool>, v: u32| {
            let code = v + 1;
            let n = 32 - code.leading_zeros();
            bits.extend(std::iter::repeat_n(false, n as usize - 1));
            bits.extend((0..n).rev().map(|i| code >> i & 1 == 1));
        };
        ue(&mut bits, 0); // seq_parameter_set_id
        ue(&mut bits, 0); // log2_max_frame_num_minus4
        ue(&mut bits, poc_type);
        if poc_type == 0 {
            ue(&mut bits, 0); // log2_max_pic_order_cnt_lsb_minus4
        }
        ue(&mut bits, 1); // max_num_ref_frames
        bits.push(false); // gaps_in_frame_num_value_allowed_flag
        ue(&mut bits, 19); // pic_width_in_mbs_minus1
        ue(&mut bits, 14); // pic_height_in_map_units_minus1
        bits.extend([true, true, false, false, true]); // frame_mbs_only, direct_8x8, no crop, no VUI, stop bit
        while !bits.len().is_multiple_of(8) {
            bits.push(false);
        }
        let mut out = vec![0x67, profile_idc, constraint, 30];
        out.extend(
            bits.chunks(8)
                .map(|c| c.iter().fold(0u8, |a, b| a << 1 | u8::from(*b))),
        );
        out
    }

    fn params(codec: Codec, sps: Vec<u8>) -> StreamParams {
        StreamParams {
            codec,
            vps: None,
            sps: Bytes::from(sps),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            width: 320,
            height: 240,
            fps: None,
        }
    }

    #[test]
    fn h265_is_declined() {
        assert_eq!(
            check_stream(&params(Codec::H265, sps(66, 0xc0, 2))),
            Err(Declined::H265)
        );
    }

    #[test]
    fn baseline_passes_reordering_main_and_garbage_do_not() {
        assert_eq!(check_stream(&params(Codec::H264, sps(66, 0xc0, 2))), Ok(()));
        assert_eq!(check_stream(&params(Codec::H264, sps(66, 0xc0, 0))), Ok(()));
        // Main profile, POC type 2: output order is decoding order, no B-frames possible.
        assert_eq!(check_stream(&params(Codec::H264, sps(77, 0, 2))), Ok(()));
        assert_eq!(
            check_stream(&params(Codec::H264, sps(77, 0, 0))),
            Err(Declined::MayReorder(77))
        );
        assert!(matches!(
            check_stream(&params(Codec::H264, vec![0x67, 0x64])),
            Err(Declined::BadSps(_))
        ));
    }

    const OFFER_TAIL: &str = "a=mid:0\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n";

    #[test]
    fn offer_needs_receivable_h264_mode1() {
        let head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 102\r\n";
        let ok = format!("{head}{OFFER_TAIL}a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\na=recvonly\r\n");
        assert!(offers_h264_mode1(&ok));
        let mode0 = format!("{head}{OFFER_TAIL}a=fmtp:102 packetization-mode=0\r\na=recvonly\r\n");
        assert!(!offers_h264_mode1(&mode0));
        let sendonly = ok.replace("a=recvonly", "a=sendonly");
        assert!(!offers_h264_mode1(&sendonly));
        let audio = ok.replace("m=video", "m=audio");
        assert!(!offers_h264_mode1(&audio));
        assert!(matches!(
            check_offer(&"x".repeat(MAX_OFFER_BYTES + 1)),
            Err(OfferError::TooLarge(_))
        ));
    }
}
