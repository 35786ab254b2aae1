//! H.264 bitstream helpers: NAL unit framing (Annex B byte streams and 4-byte
//! length-prefixed "AVC" form), sequence parameter set parsing and access-unit splitting.
//!
//! Everything here takes hostile bytes: malformed input yields an error or is skipped,
//! never a panic.

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};

use crate::access_unit::{Codec, StreamParams};

mod splitter;

pub use splitter::{AccessUnitSplitter, SplitAccessUnit};

/// `nal_unit_type` of a coded slice of a non-IDR picture (Table 7-1).
pub const NAL_SLICE: u8 = 1;
/// `nal_unit_type` of a coded slice data partition A.
pub const NAL_SLICE_PART_A: u8 = 2;
/// `nal_unit_type` of a coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// `nal_unit_type` of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// `nal_unit_type` of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// `nal_unit_type` of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// `nal_unit_type` of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Errors of H.264 parameter-set handling.
#[derive(Debug, thiserror::Error)]
pub enum H264Error {
    /// The NAL unit is empty (no header byte).
    #[error("empty NAL unit")]
    EmptyNal,
    /// The NAL unit is not of the expected `nal_unit_type`.
    #[error("expected NAL unit type {expected}, got {actual}")]
    WrongNalType {
        /// Type the caller asked for (7 = SPS, 8 = PPS).
        expected: u8,
        /// Type found in the header byte.
        actual: u8,
    },
    /// The sequence parameter set does not follow §7.3.2.1.1 syntax.
    #[error("invalid sequence parameter set: {0}")]
    InvalidSps(String),
    /// The SPS describes a picture size Vigil does not handle (zero or beyond 16384 pixels).
    #[error("unsupported picture size {width}x{height}")]
    UnsupportedSize {
        /// Width in pixels after cropping.
        width: u32,
        /// Height in pixels after cropping.
        height: u32,
    },
}

/// Largest picture side we accept; level 6.2 tops out at 8192x4320, so this leaves room
/// while rejecting nonsense that would make sinks allocate gigabytes.
const MAX_DIMENSION: u32 = 16384;

/// Iterator over 4-byte big-endian length-prefixed NAL units (ISO/IEC 14496-15 §5.3.3
/// with `lengthSizeMinusOne = 3`).
///
/// Stops (without panicking) at the first truncated length or body; a zero length yields
/// an empty slice.
#[derive(Clone, Debug)]
pub struct AvccNalIter<'a> {
    rest: &'a [u8],
}

impl<'a> AvccNalIter<'a> {
    /// Iterates over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        AvccNalIter { rest: data }
    }

    /// Bytes not yet consumed; non-empty after iteration ends only if `data` was truncated.
    pub fn remainder(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for AvccNalIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, body) = self.rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if len > body.len() {
            return None;
        }
        let (nal, rest) = body.split_at(len);
        self.rest = rest;
        Some(nal)
    }
}

/// Iterator over the NAL units of an Annex B byte stream; see [`split_annexb`].
#[derive(Clone, Debug)]
pub struct AnnexBNalIter<'a> {
    data: &'a [u8],
    /// Offset of the next NAL unit's first byte (just past a start code), if any.
    pos: Option<usize>,
}

/// Splits an Annex B byte stream (ITU-T H.264 §B.2) into NAL units, without start codes.
///
/// Accepts 3-byte (`00 00 01`) and 4-byte (`00 00 00 01`) start codes, leading and
/// trailing zero bytes; bytes before the first start code are ignored. A NAL unit ends at
/// the next `00 00 00` or `00 00 01` (which emulation prevention keeps out of NAL units)
/// or at the end of `data`, with trailing zero bytes removed. Empty NAL units are skipped.
pub fn split_annexb(data: &[u8]) -> AnnexBNalIter<'_> {
    AnnexBNalIter {
        data,
        pos: find_start_code(data, 0).map(|i| i + 3),
    }
}

impl<'a> Iterator for AnnexBNalIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let start = self.pos?;
            let rest = self.data.get(start..)?;
            let nal = match find_boundary(rest, 0) {
                Some(end) => {
                    self.pos = find_start_code(rest, end).map(|i| start + i + 3);
                    rest.get(..end).unwrap_or_default()
                }
                None => {
                    self.pos = None;
                    trim_trailing_zeros(rest)
                }
            };
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    }
}

fn trim_trailing_zeros(mut s: &[u8]) -> &[u8] {
    while let [head @ .., 0] = s {
        s = head;
    }
    s
}

/// Finds the first `i >= from` where `data[i..i + 3]` is `00 00 00` or `00 00 01`.
///
/// Steps by up to three bytes at a time: when the third byte is neither 0 nor 1, no
/// pattern can start at any of the three positions it covers.
fn find_boundary(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&[b0, b1, b2]) = data.get(i..i.checked_add(3)?) {
        if b2 > 1 {
            i += 3;
        } else if b1 != 0 {
            i += 2;
        } else if b0 != 0 {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

/// Finds the first `i >= from` where `data[i..i + 3]` is the start code `00 00 01`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let at = find_boundary(data, i)?;
        if data.get(at + 2) == Some(&1) {
            return Some(at);
        }
        i = at + 1;
    }
}

/// Converts an Annex B byte stream into 4-byte length-prefixed NAL units.
pub fn annexb_to_avcc(data: &[u8]) -> Vec<u8> {
    avcc_from_nals(split_annexb(data))
}

/// Converts 4-byte length-prefixed NAL units to Annex B (4-byte start codes), appending to
/// `out`. Stops at a truncated length, like [`AvccNalIter`].
pub fn avcc_to_annexb(data: &[u8], out: &mut Vec<u8>) {
    for nal in AvccNalIter::new(data) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
}

/// Writes NAL units (without start codes) as 4-byte big-endian length-prefixed NAL units.
///
/// Empty NAL units are dropped, and so is any NAL unit longer than `u32::MAX` bytes (which
/// the 4-byte length cannot describe).
pub fn avcc_from_nals<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        let Ok(len) = u32::try_from(nal.len()) else {
            continue;
        };
        if len == 0 {
            continue;
        }
        out.reserve(4 + nal.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// Returns `nal_unit_type`, the low 5 bits of the NAL unit header (§7.3.1), or `None`
/// for an empty slice.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1f)
}

/// What Vigil needs from a sequence parameter set.
#[derive(Clone, Debug, PartialEq)]
pub struct SpsInfo {
    /// Picture width in pixels, after frame cropping.
    pub width: u32,
    /// Picture height in pixels, after frame cropping.
    pub height: u32,
    /// Frame rate from the VUI timing info (`time_scale / (2 * num_units_in_tick)`), if present.
    pub fps: Option<f64>,
    /// `profile_idc` (66 baseline, 77 main, 100 high, ...).
    pub profile_idc: u8,
    /// The `constraint_set0_flag`..`constraint_set5_flag` byte.
    pub constraint_flags: u8,
    /// `level_idc` (e.g. 31 for level 3.1).
    pub level_idc: u8,
}

/// Parses a sequence parameter set NAL unit (header byte included, emulation prevention
/// bytes still present) per §7.3.2.1.1, using `h264-reader`.
pub fn parse_sps(sps_nal: &[u8]) -> Result<SpsInfo, H264Error> {
    let actual = nal_type(sps_nal).ok_or(H264Error::EmptyNal)?;
    if actual != NAL_SPS {
        return Err(H264Error::WrongNalType {
            expected: NAL_SPS,
            actual,
        });
    }
    let rbsp = decode_nal(sps_nal).map_err(|e| H264Error::InvalidSps(e.to_string()))?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&*rbsp))
        .map_err(|e| H264Error::InvalidSps(format!("{e:?}")))?;
    let (width, height) = sps
        .pixel_dimensions()
        .map_err(|e| H264Error::InvalidSps(format!("{e:?}")))?;
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(H264Error::UnsupportedSize { width, height });
    }
    // A zero num_units_in_tick gives infinity; treat anything non-finite or absurd as unknown.
    let fps = sps
        .fps()
        .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0);
    Ok(SpsInfo {
        width,
        height,
        fps,
        profile_idc: sps.profile_idc.into(),
        constraint_flags: sps.constraint_flags.into(),
        level_idc: sps.level_idc,
    })
}

/// Builds [`StreamParams`] from an SPS and a PPS NAL unit (headers included).
pub fn stream_params(sps: &[u8], pps: &[u8]) -> Result<StreamParams, H264Error> {
    let info = parse_sps(sps)?;
    let actual = nal_type(pps).ok_or(H264Error::EmptyNal)?;
    if actual != NAL_PPS {
        return Err(H264Error::WrongNalType {
            expected: NAL_PPS,
            actual,
        });
    }
    Ok(StreamParams {
        codec: Codec::H264,
        vps: None,
        sps: Bytes::copy_from_slice(sps),
        pps: Bytes::copy_from_slice(pps),
        width: info.width,
        height: info.height,
        fps: info.fps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_to_annexb_round_trips_and_stops_at_a_truncated_length() {
        let avcc = avcc_from_nals([&[0x67, 9][..], &[0x65, 1, 2]]);
        let mut annexb = Vec::new();
        avcc_to_annexb(&avcc, &mut annexb);
        assert_eq!(annexb, vec![0, 0, 0, 1, 0x67, 9, 0, 0, 0, 1, 0x65, 1, 2]);
        assert_eq!(annexb_to_avcc(&annexb), avcc);
        let mut cut = Vec::new();
        avcc_to_annexb(&avcc[..avcc.len() - 1], &mut cut);
        assert_eq!(cut, vec![0, 0, 0, 1, 0x67, 9]);
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// SPS of `ffmpeg -f lavfi -i testsrc=size=1280x720:rate=30 -c:v libx264 -preset ultrafast`.
    const X264_720P30: &str = "6742c01fda014016ec0440000003004000000f03c60ca8";
    /// SPS of x264 `-profile:v high -preset medium`, 1920x1080 at 25 fps (coded 1088, cropped).
    const X264_1080P25_HIGH: &str = "67640028acd940780227e5c044000003000400000300c83c60c658";

    #[test]
    fn parses_x264_720p_sps() {
        let info = parse_sps(&hex(X264_720P30)).unwrap();
        assert_eq!(
            info,
            SpsInfo {
                width: 1280,
                height: 720,
                fps: Some(30.0),
                profile_idc: 66,
                constraint_flags: 0xc0,
                level_idc: 31,
            }
        );
    }

    #[test]
    fn parses_high_profile_sps_with_cropping() {
        let info = parse_sps(&hex(X264_1080P25_HIGH)).unwrap();
        assert_eq!((info.width, info.height), (1920, 1080));
        assert_eq!(info.fps, Some(25.0));
        assert_eq!((info.profile_idc, info.level_idc), (100, 40));
    }

    #[test]
    fn sps_errors_are_errors() {
        assert!(matches!(parse_sps(&[]), Err(H264Error::EmptyNal)));
        assert!(matches!(
            parse_sps(&[0x68, 0xce]),
            Err(H264Error::WrongNalType {
                expected: 7,
                actual: 8
            })
        ));
        let sps = hex(X264_720P30);
        for cut in 1..sps.len() - 4 {
            assert!(parse_sps(&sps[..cut]).is_err(), "truncated at {cut}");
        }
    }

    #[test]
    fn stream_params_from_sps_pps() {
        let sps = hex(X264_720P30);
        let p = stream_params(&sps, &[0x68, 0xce, 0x0f, 0xc8]).unwrap();
        assert_eq!((p.width, p.height, p.fps), (1280, 720, Some(30.0)));
        assert_eq!(p.profile_level_id(), [0x42, 0xc0, 0x1f]);
        assert!(stream_params(&sps, &sps).is_err());
    }

    #[test]
    fn annexb_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 0, 1, 0x67, 1, 2, // leading zero + 4-byte start code
            0, 0, 1, 0x68, 3, // 3-byte start code
            0, 0, 0, 1, 0x65, 0, 0, 3, 1, 9, // emulation prevention kept in
            0, 0, 0, 0, // trailing zeros
            0, 0, 1, 0x41, 7, 0, 0, // last NAL with trailing zeros at end of data
        ];
        let nals: Vec<&[u8]> = split_annexb(&data).collect();
        assert_eq!(
            nals,
            vec![
                &[0x67, 1, 2][..],
                &[0x68, 3],
                &[0x65, 0, 0, 3, 1, 9],
                &[0x41, 7]
            ]
        );
        assert_eq!(
            annexb_to_avcc(&data),
            vec![
                0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 2, 0x68, 3, 0, 0, 0, 6, 0x65, 0, 0, 3, 1, 9, 0, 0,
                0, 2, 0x41, 7
            ]
        );
        let avcc = annexb_to_avcc(&data);
        assert_eq!(AvccNalIter::new(&avcc).collect::<Vec<_>>(), nals);
    }

    #[test]
    fn annexb_edge_cases() {
        assert_eq!(split_annexb(&[]).count(), 0);
        assert_eq!(split_annexb(&[1, 2, 3, 0, 0]).count(), 0, "no start code");
        assert_eq!(split_annexb(&[0, 0, 1]).count(), 0);
        assert_eq!(split_annexb(&[0, 0, 1, 0, 0, 1, 0, 0, 1]).count(), 0);
        // Garbage before the first start code is ignored.
        let nals: Vec<&[u8]> = split_annexb(&[9, 9, 0, 0, 1, 0x09, 0xf0]).collect();
        assert_eq!(nals, vec![&[0x09, 0xf0][..]]);
        // Every prefix of a real stream splits without panicking.
        let file = include_bytes!("../testdata/x264-160x120-2slices.h264");
        for cut in 0..64 {
            let _ = split_annexb(&file[..cut]).count();
        }
    }

    #[test]
    fn annexb_real_stream_nal_types() {
        let file = include_bytes!("../testdata/x264-160x120-2slices.h264");
        let types: Vec<u8> = split_annexb(file).filter_map(nal_type).collect();
        assert_eq!(
            types,
            vec![7, 8, 6, 5, 5, 1, 1, 1, 1, 7, 8, 5, 5, 1, 1, 1, 1]
        );
        let total: usize = split_annexb(file).map(|n| n.len()).sum();
        assert_eq!(annexb_to_avcc(file).len(), total + 4 * types.len());
    }

    #[test]
    fn avcc_iter_stops_on_truncation() {
        let data = [0, 0, 0, 2, 0x41, 1, 0, 0, 0, 9, 0x41];
        let mut it = AvccNalIter::new(&data);
        assert_eq!(it.next(), Some(&[0x41, 1][..]));
        assert_eq!(it.next(), None);
        assert_eq!(it.remainder(), &[0, 0, 0, 9, 0x41]);
        assert_eq!(AvccNalIter::new(&[0, 0, 0]).next(), None);
        assert_eq!(AvccNalIter::new(&[0xff; 8]).next(), None);
        assert_eq!(avcc_from_nals([&[][..], &[0x41]]), vec![0, 0, 0, 1, 0x41]);
    }

    #[test]
    fn nal_type_of_header() {
        assert_eq!(nal_type(&[0x65, 0]), Some(5));
        assert_eq!(nal_type(&[0xff]), Some(31));
        assert_eq!(nal_type(&[]), None);
    }
}
