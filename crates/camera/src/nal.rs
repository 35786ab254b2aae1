//! Small H.264 NAL-unit helpers this crate needs (ITU-T H.264 Annex B byte stream and the
//! ISO/IEC 14496-15 length-prefixed form).

/// NAL unit types (H.264 Table 7-1) this crate looks at.
pub(crate) const NAL_SLICE: u8 = 1;
pub(crate) const NAL_IDR: u8 = 5;
pub(crate) const NAL_SEI: u8 = 6;
pub(crate) const NAL_SPS: u8 = 7;
pub(crate) const NAL_PPS: u8 = 8;
pub(crate) const NAL_AUD: u8 = 9;

/// `nal_unit_type` of a NAL unit (H.264 §7.3.1), `None` for an empty one.
pub(crate) fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Splits an Annex B byte stream (H.264 §B.1) into NAL units without start codes. Bytes
/// before the first start code are skipped; trailing zero bytes (the leading zero of a
/// 4-byte start code, or trailing_zero_8bits) are trimmed from each unit.
pub(crate) fn split_annexb(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = find_start(data, 0).map(|(_, body)| body);
    std::iter::from_fn(move || loop {
        let start = pos?;
        let (end, next) = match find_start(data, start) {
            Some((code_at, body)) => (code_at, Some(body)),
            None => (data.len(), None),
        };
        pos = next;
        let mut nal = data.get(start..end)?;
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            return Some(nal);
        }
        pos?;
    })
}

/// Finds the next `00 00 01` at or after `from`: (index of the code, index after it).
fn find_start(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = data.get(from..)?;
    rest.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| (from + i, from + i + 3))
}

/// Appends `nal` with a 4-byte big-endian length prefix.
pub(crate) fn push_avcc(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    out.extend_from_slice(nal);
}

/// Converts length-prefixed NAL units to Annex B (4-byte start codes), appending to `out`.
/// Stops at a truncated length.
pub(crate) fn avcc_to_annexb(data: &[u8], out: &mut Vec<u8>) {
    let mut rest = data;
    while let [a, b, c, d, tail @ ..] = rest {
        let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
        let Some(nal) = tail.get(..len) else { break };
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        rest = &tail[len..];
    }
}

/// Whether a VCL NAL unit starts a new picture: `first_mb_in_slice` (the first ue(v) of
/// the slice header, H.264 §7.3.3) is 0 exactly when its first bit is 1.
pub(crate) fn first_mb_is_zero(nal: &[u8]) -> bool {
    nal.get(1).is_some_and(|b| b & 0x80 != 0)
}

/// What this crate needs from an SPS: the cropped picture size and the VUI frame rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SpsSummary {
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
}

/// Parses an SPS NAL unit (header byte included), H.264 §7.3.2.1.1.
pub(crate) fn parse_sps(sps: &[u8]) -> Result<SpsSummary, String> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{decode_nal, BitReader};
    let rbsp = decode_nal(sps).map_err(|e| format!("SPS: {e}"))?;
    let parsed =
        SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).map_err(|e| format!("SPS: {e:?}"))?;
    let (width, height) = parsed
        .pixel_dimensions()
        .map_err(|e| format!("SPS dimensions: {e:?}"))?;
    let fps = parsed
        .fps()
        .filter(|f| f.is_finite() && *f > 0.0 && *f <= 1000.0);
    Ok(SpsSummary { width, height, fps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes_and_trims_trailing_zeros() {
        let data = [
            0xff, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5, 0,
        ];
        let nals: Vec<&[u8]> = split_annexb(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
        assert_eq!(split_annexb(&[0, 0, 1]).count(), 0);
        assert_eq!(split_annexb(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn avcc_round_trip_and_truncation() {
        let mut avcc = Vec::new();
        push_avcc(&mut avcc, &[0x67, 9]);
        push_avcc(&mut avcc, &[0x65, 1, 2]);
        let mut annexb = Vec::new();
        avcc_to_annexb(&avcc, &mut annexb);
        assert_eq!(annexb, vec![0, 0, 0, 1, 0x67, 9, 0, 0, 0, 1, 0x65, 1, 2]);
        let mut cut = Vec::new();
        avcc_to_annexb(&avcc[..avcc.len() - 1], &mut cut);
        assert_eq!(cut, vec![0, 0, 0, 1, 0x67, 9]);
    }

    #[test]
    fn bad_sps_is_an_error() {
        assert!(parse_sps(&[0x67]).is_err());
        assert!(parse_sps(&[0x67, 0x42, 0xff, 0xff, 0xff]).is_err());
    }
}
