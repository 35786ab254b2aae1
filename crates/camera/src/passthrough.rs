//! Turns H.264 access units in Annex B form (as UVC cameras deliver them) into the hub's
//! [`AccessUnit`]s without re-encoding: length-prefixed NAL units, parameters tracked
//! from in-band SPS/PPS (one shared `Arc` while they are unchanged).

use std::sync::Arc;

use bytes::Bytes;
use vigil_media::{AccessUnit, Codec, StreamParams};

use crate::nal::{
    nal_type, parse_sps, push_avcc, split_annexb, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS,
};
use crate::CameraError;

/// Converter state for one passthrough stream.
#[cfg_attr(not(feature = "v4l2"), allow(dead_code))]
pub(crate) struct AnnexbToAu {
    default_fps: f64,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    params: Option<Arc<StreamParams>>,
    started: bool,
}

#[cfg_attr(not(feature = "v4l2"), allow(dead_code))]
impl AnnexbToAu {
    pub(crate) fn new(default_fps: f64) -> Self {
        AnnexbToAu {
            default_fps,
            sps: None,
            pps: None,
            params: None,
            started: false,
        }
    }

    /// Converts one access unit. `None` until the first key frame with known parameters
    /// (a decoder could not start earlier), and for buffers without any NAL unit.
    pub(crate) fn convert(
        &mut self,
        annexb: &[u8],
        pts: i64,
        capture_us: i64,
    ) -> Result<Option<AccessUnit>, CameraError> {
        let mut data = Vec::with_capacity(annexb.len() + 16);
        let mut key = false;
        for nal in split_annexb(annexb) {
            match nal_type(nal) {
                Some(NAL_SPS) if self.sps.as_deref() != Some(nal) => {
                    self.sps = Some(Bytes::copy_from_slice(nal));
                    self.params = None;
                }
                Some(NAL_PPS) if self.pps.as_deref() != Some(nal) => {
                    self.pps = Some(Bytes::copy_from_slice(nal));
                    self.params = None;
                }
                Some(NAL_IDR) => key = true,
                Some(NAL_AUD) => continue,
                _ => {}
            }
            push_avcc(&mut data, nal);
        }
        if data.is_empty() {
            return Ok(None);
        }
        if self.params.is_none() {
            if let (Some(sps), Some(pps)) = (&self.sps, &self.pps) {
                let info = parse_sps(sps)
                    .map_err(|e| CameraError::Device(format!("H.264 from device: {e}")))?;
                self.params = Some(Arc::new(StreamParams {
                    codec: Codec::H264,
                    vps: None,
                    sps: sps.clone(),
                    pps: pps.clone(),
                    width: info.width,
                    height: info.height,
                    fps: Some(info.fps.unwrap_or(self.default_fps)),
                }));
            }
        }
        let Some(params) = self.params.clone() else {
            return Ok(None);
        };
        if !self.started && !key {
            return Ok(None);
        }
        self.started = true;
        Ok(Some(AccessUnit {
            params,
            pts,
            capture_us,
            key,
            data: Bytes::from(data),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::{EncoderConfig, H264Encoder};
    use crate::testsrc::TestPattern;

    #[test]
    fn waits_for_a_key_frame_then_converts_and_shares_params() {
        let mut enc = H264Encoder::new(EncoderConfig {
            width: 320,
            height: 240,
            fps: 30.0,
            bitrate_bps: 400_000,
            keyint: 5,
        })
        .unwrap();
        let mut tp = TestPattern::new(320, 240).unwrap();
        let annexb: Vec<(Vec<u8>, bool)> = (0..12)
            .map(|n| {
                let au = enc.encode(tp.render(n, 0), 0, 0).unwrap().unwrap();
                let mut out = vec![0, 0, 0, 1, 0x09, 0xf0]; // an AUD, as cameras send
                let mut body = Vec::new();
                vigil_media::h264::avcc_to_annexb(&au.data, &mut body);
                out.extend_from_slice(&body);
                (out, au.key)
            })
            .collect();
        let mut conv = AnnexbToAu::new(25.0);
        // Starting mid-GOP: nothing until the IDR at frame 5.
        let mut got = Vec::new();
        for (i, (bytes, _)) in annexb.iter().enumerate().skip(2) {
            if let Some(au) = conv.convert(bytes, i as i64 * 3000, 9).unwrap() {
                got.push(au);
            }
        }
        assert_eq!(got.len(), 7);
        assert!(got[0].key && got[5].key && !got[1].key);
        assert_eq!((got[0].params.width, got[0].params.height), (320, 240));
        assert_eq!(got[0].params.fps, Some(25.0));
        assert!(got.iter().all(|a| Arc::ptr_eq(&a.params, &got[0].params)));
        // The AUD is gone; the first NAL unit of a key frame is the SPS.
        assert_eq!(got[0].nal_units().next().and_then(nal_type), Some(NAL_SPS));
        assert_eq!(conv.convert(&[1, 2, 3], 0, 0).unwrap().map(|a| a.pts), None);
    }
}
