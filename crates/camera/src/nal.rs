//! The H.264 NAL-unit helpers this crate uses: `vigil_media::h264` plus the small
//! ISO/IEC 14496-15 framing and SPS summary it needs beyond that.

pub(crate) use vigil_media::h264::{
    nal_type, split_annexb, AccessUnitSplitter, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS,
};

/// Appends `nal` with a 4-byte big-endian length prefix.
pub(crate) fn push_avcc(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    out.extend_from_slice(nal);
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
    let info = vigil_media::h264::parse_sps(sps).map_err(|e| e.to_string())?;
    Ok(SpsSummary {
        width: info.width,
        height: info.height,
        fps: info.fps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sps_is_an_error() {
        assert!(parse_sps(&[0x67]).is_err());
        assert!(parse_sps(&[0x67, 0x42, 0xff, 0xff, 0xff]).is_err());
    }
}
