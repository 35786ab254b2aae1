//! H.265 / HEVC bitstream helpers: NAL unit headers, key-frame detection and the parts
//! of the sequence parameter set that a recorder needs (picture size, profile, chroma
//! format and bit depths for the `hvcC` box).
//!
//! Everything here takes hostile bytes: malformed input yields an error, never a panic.

use bytes::Bytes;

use crate::access_unit::{Codec, StreamParams};
use crate::h264::AvccNalIter;

/// `nal_unit_type` of the first IRAP (intra random access point) type, BLA_W_LP (Table 7-1).
pub const NAL_BLA_W_LP: u8 = 16;
/// `nal_unit_type` of an IDR picture without leading pictures.
pub const NAL_IDR_N_LP: u8 = 20;
/// `nal_unit_type` of a clean random access picture.
pub const NAL_CRA: u8 = 21;
/// `nal_unit_type` of the last (reserved) IRAP type.
pub const NAL_RSV_IRAP_23: u8 = 23;
/// `nal_unit_type` of a video parameter set.
pub const NAL_VPS: u8 = 32;
/// `nal_unit_type` of a sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// `nal_unit_type` of a picture parameter set.
pub const NAL_PPS: u8 = 34;

/// Largest picture side we accept (as for H.264: room beyond 8K, no nonsense sizes).
const MAX_DIMENSION: u32 = 16384;

/// Errors of H.265 parameter-set handling.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum H265Error {
    /// The NAL unit is shorter than its 2-byte header.
    #[error("NAL unit shorter than its 2-byte header")]
    ShortNal,
    /// The NAL unit is not of the expected `nal_unit_type`.
    #[error("expected NAL unit type {expected}, got {actual}")]
    WrongNalType {
        /// Type the caller asked for (32 = VPS, 33 = SPS, 34 = PPS).
        expected: u8,
        /// Type found in the header.
        actual: u8,
    },
    /// The sequence parameter set does not follow §7.3.2.2 syntax.
    #[error("invalid H.265 sequence parameter set: {0}")]
    InvalidSps(&'static str),
    /// The SPS describes a picture size Vigil does not handle.
    #[error("unsupported picture size {width}x{height}")]
    UnsupportedSize {
        /// Width in luma samples after cropping.
        width: u32,
        /// Height in luma samples after cropping.
        height: u32,
    },
}

/// ITU-T H.265 §7.3.1.2: `nal_unit_type` from the 2-byte NAL unit header,
/// `None` for a NAL unit shorter than the header.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    match nal {
        [b0, _, ..] => Some((b0 >> 1) & 0x3f),
        _ => None,
    }
}

/// Whether `nal_unit_type` is an IRAP picture (BLA, IDR, CRA or reserved IRAP, 16..=23),
/// where a decoder can start.
pub fn is_irap(nal_unit_type: u8) -> bool {
    (NAL_BLA_W_LP..=NAL_RSV_IRAP_23).contains(&nal_unit_type)
}

/// Whether the access unit in 4-byte length-prefixed form holds an IRAP picture.
pub fn access_unit_is_irap(data: &[u8]) -> bool {
    AvccNalIter::new(data).any(|nal| nal_type(nal).is_some_and(is_irap))
}

/// The general profile, tier and level of §7.3.3 `profile_tier_level`, as the `hvcC`
/// record (ISO/IEC 14496-15 §8.3.3.1) copies them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeneralProfile {
    /// `general_profile_space` (2 bits).
    pub profile_space: u8,
    /// `general_tier_flag`.
    pub tier: bool,
    /// `general_profile_idc` (5 bits): 1 Main, 2 Main 10, 4 range extensions …
    pub profile_idc: u8,
    /// `general_profile_compatibility_flag[0..32]`, flag 0 in the most significant bit.
    pub compatibility_flags: u32,
    /// The 48 bits from `general_progressive_source_flag` up to and including
    /// `general_inbld_flag`/reserved bit, in the low 48 bits.
    pub constraint_flags: u64,
    /// `general_level_idc` (30 × level).
    pub level_idc: u8,
}

/// What Vigil reads from an H.265 sequence parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    /// Width in luma samples after the conformance window.
    pub width: u32,
    /// Height in luma samples after the conformance window.
    pub height: u32,
    /// `sps_max_sub_layers_minus1` + 1.
    pub max_sub_layers: u8,
    /// `sps_temporal_id_nesting_flag`.
    pub temporal_id_nesting: bool,
    /// General profile, tier and level.
    pub profile: GeneralProfile,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// `bit_depth_luma_minus8`.
    pub bit_depth_luma_minus8: u8,
    /// `bit_depth_chroma_minus8`.
    pub bit_depth_chroma_minus8: u8,
}

/// The RBSP of a NAL unit without its 2-byte header: emulation prevention bytes
/// (`00 00 03` → `00 00`, §7.4.2) removed.
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let body = nal.get(2..).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len());
    let mut zeros = 0;
    for &b in body {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// A bounded MSB-first bit reader with Exp-Golomb codes (§9.2); running off the end is
/// an error, never a panic.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

type BitsResult<T> = Result<T, H265Error>;

const SHORT: H265Error = H265Error::InvalidSps("ends early");

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> BitsResult<u32> {
        let byte = self.data.get(self.pos / 8).ok_or(SHORT)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    /// `u(n)` for n ≤ 32.
    fn bits(&mut self, n: u32) -> BitsResult<u32> {
        let mut v = 0u32;
        for _ in 0..n.min(32) {
            v = v << 1 | self.bit()?;
        }
        Ok(v)
    }

    fn flag(&mut self) -> BitsResult<bool> {
        Ok(self.bit()? == 1)
    }

    fn skip(&mut self, n: usize) -> BitsResult<()> {
        let end = self.pos.checked_add(n).ok_or(SHORT)?;
        if end > self.data.len().saturating_mul(8) {
            return Err(SHORT);
        }
        self.pos = end;
        Ok(())
    }

    /// §9.2 `ue(v)`; values beyond 32 bits are invalid for every field we read.
    fn ue(&mut self) -> BitsResult<u32> {
        let mut leading_zeros = 0;
        while self.bit()? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return Err(H265Error::InvalidSps("Exp-Golomb code longer than 32 bits"));
            }
        }
        let rest = self.bits(leading_zeros)?;
        // 2^lz - 1 + rest fits u32 for lz ≤ 31.
        Ok(((1u64 << leading_zeros) - 1 + u64::from(rest)) as u32)
    }
}

/// §7.3.3 `profile_tier_level(1, max_sub_layers_minus1)`: the general part, with the
/// sub-layer parts skipped as their presence flags say.
fn profile_tier_level(r: &mut Bits<'_>, max_sub_layers_minus1: u8) -> BitsResult<GeneralProfile> {
    let profile_space = r.bits(2)? as u8;
    let tier = r.flag()?;
    let profile_idc = r.bits(5)? as u8;
    let compatibility_flags = r.bits(32)?;
    // progressive, interlaced, non_packed, frame_only (4), 43 constraint bits, 1 more.
    let constraint_flags = u64::from(r.bits(16)?) << 32 | u64::from(r.bits(32)?);
    let level_idc = r.bits(8)? as u8;
    let n = usize::from(max_sub_layers_minus1);
    let mut present = [(false, false); 7];
    for p in present.iter_mut().take(n) {
        *p = (r.flag()?, r.flag()?);
    }
    if n > 0 {
        r.skip(2 * (8 - n))?; // reserved_zero_2bits
    }
    for &(profile_present, level_present) in present.iter().take(n) {
        if profile_present {
            // sub_layer profile_space … sub_layer_inbld/reserved: 2+1+5+32+4+43+1 bits.
            r.skip(88)?;
        }
        if level_present {
            r.skip(8)?; // sub_layer_level_idc
        }
    }
    Ok(GeneralProfile {
        profile_space,
        tier,
        profile_idc,
        compatibility_flags,
        constraint_flags,
        level_idc,
    })
}

/// Parses an H.265 sequence parameter set NAL unit (2-byte header included, emulation
/// prevention bytes still present) per ITU-T H.265 §7.3.2.2.1, up to the bit depths.
pub fn parse_sps(sps_nal: &[u8]) -> Result<SpsInfo, H265Error> {
    let actual = nal_type(sps_nal).ok_or(H265Error::ShortNal)?;
    if actual != NAL_SPS {
        return Err(H265Error::WrongNalType {
            expected: NAL_SPS,
            actual,
        });
    }
    let data = rbsp(sps_nal);
    let mut r = Bits::new(&data);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)? as u8;
    if max_sub_layers_minus1 > 6 {
        return Err(H265Error::InvalidSps("sps_max_sub_layers_minus1 above 6"));
    }
    let temporal_id_nesting = r.flag()?;
    let profile = profile_tier_level(&mut r, max_sub_layers_minus1)?;
    if r.ue()? > 15 {
        return Err(H265Error::InvalidSps("sps_seq_parameter_set_id above 15"));
    }
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return Err(H265Error::InvalidSps("chroma_format_idc above 3"));
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let coded_width = r.ue()?;
    let coded_height = r.ue()?;
    // §6.2 Table 6-1: SubWidthC and SubHeightC; separate colour planes count as monochrome.
    let (sub_w, sub_h): (u64, u64) = match (chroma_format_idc, separate_colour_plane) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let (mut width, mut height) = (coded_width, coded_height);
    if r.flag()? {
        // §7.4.3.2.1 conformance window, in chroma sample units.
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let crop_w = sub_w * (u64::from(left) + u64::from(right));
        let crop_h = sub_h * (u64::from(top) + u64::from(bottom));
        width = u64::from(coded_width)
            .checked_sub(crop_w)
            .and_then(|w| u32::try_from(w).ok())
            .ok_or(H265Error::InvalidSps(
                "conformance window wider than the picture",
            ))?;
        height = u64::from(coded_height)
            .checked_sub(crop_h)
            .and_then(|h| u32::try_from(h).ok())
            .ok_or(H265Error::InvalidSps(
                "conformance window taller than the picture",
            ))?;
    }
    let bit_depth_luma_minus8 = r.ue()?;
    let bit_depth_chroma_minus8 = r.ue()?;
    if bit_depth_luma_minus8 > 8 || bit_depth_chroma_minus8 > 8 {
        return Err(H265Error::InvalidSps("bit depth above 16"));
    }
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(H265Error::UnsupportedSize { width, height });
    }
    Ok(SpsInfo {
        width,
        height,
        max_sub_layers: max_sub_layers_minus1 + 1,
        temporal_id_nesting,
        profile,
        chroma_format_idc: chroma_format_idc as u8,
        bit_depth_luma_minus8: bit_depth_luma_minus8 as u8,
        bit_depth_chroma_minus8: bit_depth_chroma_minus8 as u8,
    })
}

fn expect_type(nal: &[u8], expected: u8) -> Result<(), H265Error> {
    let actual = nal_type(nal).ok_or(H265Error::ShortNal)?;
    if actual == expected {
        Ok(())
    } else {
        Err(H265Error::WrongNalType { expected, actual })
    }
}

/// Builds [`StreamParams`] from a VPS, an SPS and a PPS NAL unit (headers included).
/// The frame rate is left unknown: it lives in the VUI, which Vigil does not parse.
pub fn stream_params(vps: &[u8], sps: &[u8], pps: &[u8]) -> Result<StreamParams, H265Error> {
    expect_type(vps, NAL_VPS)?;
    expect_type(pps, NAL_PPS)?;
    let info = parse_sps(sps)?;
    Ok(StreamParams {
        codec: Codec::H265,
        vps: Some(Bytes::copy_from_slice(vps)),
        sps: Bytes::copy_from_slice(sps),
        pps: Bytes::copy_from_slice(pps),
        width: info.width,
        height: info.height,
        fps: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::split_annexb;

    /// `ffmpeg -f lavfi -i testsrc=size=162x90:rate=15 -t 1 -c:v libx265
    /// -x265-params keyint=5:min-keyint=5:bframes=0:scenecut=0 -f hevc`: an IDR then
    /// two CRA pictures; coded 168x96, cropped to 162x90.
    pub(crate) const X265_162X90: &[u8] = include_bytes!("../testdata/x265-162x90.hevc");

    /// (VPS, SPS, PPS) of [`X265_162X90`].
    pub(crate) fn x265_parameter_sets() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let find = |t| {
            split_annexb(X265_162X90)
                .find(|n| nal_type(n) == Some(t))
                .unwrap()
                .to_vec()
        };
        (find(NAL_VPS), find(NAL_SPS), find(NAL_PPS))
    }

    /// MSB-first bit writer with ue(v), to build SPSs the encoders at hand do not emit.
    #[derive(Default)]
    struct Writer {
        bits: Vec<bool>,
    }

    impl Writer {
        fn u(&mut self, n: u32, v: u64) {
            for i in (0..n).rev() {
                self.bits.push(v >> i & 1 == 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let v = u64::from(v) + 1;
            let len = 64 - v.leading_zeros();
            self.u(len - 1, 0);
            self.u(len, v);
        }
        fn nal(&self, header: [u8; 2]) -> Vec<u8> {
            let mut out = header.to_vec();
            for chunk in self.bits.chunks(8) {
                let mut b = 0u8;
                for (i, bit) in chunk.iter().enumerate() {
                    b |= u8::from(*bit) << (7 - i);
                }
                out.push(b);
            }
            out
        }
    }

    #[test]
    fn parses_x265_sps_with_conformance_window() {
        let (_, sps, _) = x265_parameter_sets();
        let info = parse_sps(&sps).unwrap();
        assert_eq!((info.width, info.height), (162, 90));
        assert_eq!(info.profile.profile_idc, 1, "Main");
        assert_eq!(info.profile.level_idc, 30, "level 1, as ffprobe reports");
        // progressive_source and frame_only_constraint set.
        assert_eq!(info.profile.constraint_flags, 0x9000_0000_0000);
        assert!(!info.profile.tier);
        // Main is compatible with Main (flag 1) and Main 10 (flag 2).
        assert_eq!(info.profile.compatibility_flags, 0x6000_0000);
        assert_eq!((info.chroma_format_idc, info.bit_depth_luma_minus8), (1, 0));
        assert_eq!(info.max_sub_layers, 1);
    }

    #[test]
    fn skips_sub_layer_profile_and_level() {
        let mut w = Writer::default();
        w.u(4, 0); // vps id
        w.u(3, 2); // max_sub_layers_minus1
        w.u(1, 1); // temporal_id_nesting
        w.u(2, 0);
        w.u(1, 0);
        w.u(5, 1); // Main
        w.u(32, 0x6000_0000);
        w.u(48, 0xb000_0000_0000);
        w.u(8, 93);
        w.u(2, 0b10); // sub-layer 0: profile present, level absent
        w.u(2, 0b01); // sub-layer 1: profile absent, level present
        w.u(12, 0); // reserved_zero_2bits for i = 2..8
        w.u(64, u64::MAX); // sub-layer 0 profile (88 bits of ones: must be skipped)
        w.u(24, 0xff_ffff);
        w.u(8, 0xff); // sub-layer 1 level
        w.ue(0); // sps id
        w.ue(1); // 4:2:0
        w.ue(320);
        w.ue(240);
        w.u(1, 1); // conformance window
        for v in [1, 2, 0, 4] {
            w.ue(v);
        }
        w.ue(2); // 10-bit luma
        w.ue(2);
        w.u(1, 1); // rbsp stop bit
        let info = parse_sps(&w.nal([0x42, 0x01])).unwrap();
        assert_eq!((info.width, info.height), (314, 232));
        assert_eq!(info.max_sub_layers, 3);
        assert_eq!(info.profile.level_idc, 93);
        assert_eq!(info.profile.constraint_flags, 0xb000_0000_0000);
        assert_eq!(
            (info.bit_depth_luma_minus8, info.bit_depth_chroma_minus8),
            (2, 2)
        );
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(rbsp(&[0x42, 0x01, 0, 0, 3, 1, 0, 0, 3]), [0, 0, 1, 0, 0]);
    }

    #[test]
    fn bad_sps_is_an_error_not_a_panic() {
        let (_, sps, pps) = x265_parameter_sets();
        assert_eq!(parse_sps(&[0x42]), Err(H265Error::ShortNal));
        assert!(matches!(
            parse_sps(&pps),
            Err(H265Error::WrongNalType {
                expected: 33,
                actual: 34
            })
        ));
        // Parsing stops after the bit depths: every shorter prefix is an error, the first
        // long enough one parses as the whole SPS does.
        let full = parse_sps(&sps).unwrap();
        let enough = (0..sps.len())
            .find(|&n| parse_sps(&sps[..n]).is_ok())
            .unwrap();
        assert!(enough > 15, "the profile_tier_level alone is 12 bytes");
        assert_eq!(parse_sps(&sps[..enough]), Ok(full));
        // All-zero bits: an Exp-Golomb code that never ends.
        let mut zeros = vec![0x42, 0x01];
        zeros.resize(64, 0);
        assert!(parse_sps(&zeros).is_err());
        for b in 0..=255u8 {
            let mut s = sps.clone();
            for x in s.iter_mut().skip(2) {
                *x ^= b;
            }
            let _ = parse_sps(&s);
        }
    }

    #[test]
    fn irap_types_are_key_frames() {
        assert!(is_irap(NAL_IDR_N_LP) && is_irap(NAL_CRA) && is_irap(19) && is_irap(16));
        assert!(!is_irap(1) && !is_irap(NAL_VPS) && !is_irap(15) && !is_irap(24));
        let idr = [0, 0, 0, 3, 0x26, 0x01, 0xaf];
        let trail = [0, 0, 0, 3, 0x02, 0x01, 0xd0];
        assert!(access_unit_is_irap(&idr));
        assert!(!access_unit_is_irap(&trail));
        assert!(!access_unit_is_irap(&[0, 0, 0, 9, 0x26]));
    }

    #[test]
    fn stream_params_checks_each_parameter_set() {
        let (vps, sps, pps) = x265_parameter_sets();
        let p = stream_params(&vps, &sps, &pps).unwrap();
        assert_eq!(p.codec, Codec::H265);
        assert_eq!((p.width, p.height), (162, 90));
        assert_eq!(p.vps.as_deref(), Some(&vps[..]));
        assert!(matches!(
            stream_params(&sps, &sps, &pps),
            Err(H265Error::WrongNalType { expected: 32, .. })
        ));
    }
}
