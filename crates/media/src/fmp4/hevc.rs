//! The H.265 decoder configuration box `hvcC` (ISO/IEC 14496-15 §8.3.3.1
//! HEVCDecoderConfigurationRecord): written into `hvc1` sample entries and read back by
//! [`scan`](super::scan).

use super::boxes::{write_box, Cursor, Put, ReadResult};
use crate::h265::{self, NAL_PPS, NAL_SPS, NAL_VPS};
use crate::StreamParams;

/// Writes `hvcC` for `params`: the general profile fields, chroma format and bit depths
/// copied from the SPS, 4-byte NAL unit lengths, one array each of VPS, SPS and PPS.
///
/// `array_completeness` is 1 for the three arrays as `hvc1` requires (§8.4.1.1): the
/// recorder starts a new file whenever the parameter sets change, so the ones here are
/// all the stream uses (key frames may repeat them in-band, identically).
pub(super) fn write_hvcc(out: &mut Vec<u8>, params: &StreamParams) {
    // A stream whose SPS does not parse never reaches a recording (the ingest rejects
    // it); should one, Main 4:2:0 8-bit is the most likely truth.
    let info = h265::parse_sps(&params.sps).ok();
    let profile = info.map(|i| i.profile).unwrap_or_default();
    write_box(out, b"hvcC", |out| {
        out.u8(1); // configurationVersion
        out.u8(profile.profile_space << 6
            | u8::from(profile.tier) << 5
            | profile.profile_idc & 0x1f);
        out.u32(profile.compatibility_flags);
        let constraints = profile.constraint_flags.to_be_bytes();
        out.extend_from_slice(constraints.get(2..).unwrap_or_default());
        out.u8(profile.level_idc);
        out.u16(0xf000); // reserved '1111', min_spatial_segmentation_idc 0 (unknown)
        out.u8(0xfc); // reserved '111111', parallelismType 0 (unknown)
        out.u8(0xfc | info.map_or(1, |i| i.chroma_format_idc & 3));
        out.u8(0xf8 | info.map_or(0, |i| i.bit_depth_luma_minus8 & 7));
        out.u8(0xf8 | info.map_or(0, |i| i.bit_depth_chroma_minus8 & 7));
        out.u16(0); // avgFrameRate: unspecified
                    // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne = 3.
        let layers = info.map_or(0, |i| i.max_sub_layers & 7);
        let nested = info.is_some_and(|i| i.temporal_id_nesting);
        out.u8(layers << 3 | u8::from(nested) << 2 | 3);
        let arrays: Vec<(u8, &[u8])> = [
            (NAL_VPS, params.vps.as_deref().unwrap_or_default()),
            (NAL_SPS, &params.sps[..]),
            (NAL_PPS, &params.pps[..]),
        ]
        .into_iter()
        .filter(|(_, nal)| !nal.is_empty() && u16::try_from(nal.len()).is_ok())
        .collect();
        out.u8(arrays.len() as u8); // numOfArrays
        for (nal_type, nal) in arrays {
            out.u8(0x80 | nal_type); // array_completeness 1, reserved 0, NAL_unit_type
            out.u16(1); // numNalus
            out.u16(nal.len() as u16);
            out.extend_from_slice(nal);
        }
    });
}

/// Reads an `hvcC` body back into [`StreamParams`]: the first VPS, SPS and PPS. `None`
/// for records we cannot use (NAL length fields other than 4 bytes, a missing or
/// unparsable parameter set).
pub(super) fn parse_hvcc(body: &[u8]) -> ReadResult<Option<StreamParams>> {
    let mut c = Cursor::new(body);
    if c.u8()? != 1 {
        return Ok(None); // configurationVersion
    }
    // Profile, tier, level, segmentation, parallelism, chroma, bit depths, frame rate.
    c.skip(20)?;
    let length_size_minus_one = c.u8()? & 3;
    let num_arrays = c.u8()?;
    let (mut vps, mut sps, mut pps) = (None, None, None);
    for _ in 0..num_arrays {
        let nal_type = c.u8()? & 0x3f;
        let count = c.u16()?;
        for _ in 0..count {
            let len = usize::from(c.u16()?);
            let nal = c.bytes(len)?;
            match nal_type {
                NAL_VPS => vps.get_or_insert(nal),
                NAL_SPS => sps.get_or_insert(nal),
                NAL_PPS => pps.get_or_insert(nal),
                _ => continue,
            };
        }
    }
    let (Some(vps), Some(sps), Some(pps)) = (vps, sps, pps) else {
        return Ok(None);
    };
    if length_size_minus_one != 3 {
        return Ok(None);
    }
    Ok(h265::stream_params(vps, sps, pps).ok())
}
