//! The H.264 encoder: OpenH264 (built from its bundled source), configured for live
//! low-latency streaming, producing the hub's [`AccessUnit`]s.

use std::os::raw::c_int;
use std::sync::Arc;

use bytes::Bytes;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig as OhConfig, FrameRate, FrameType,
    IntraFramePeriod, RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use vigil_media::{AccessUnit, Codec, StreamParams};

use crate::frame::{check_size, I420Frame};
use crate::nal::{nal_type, split_annexb, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::CameraError;

/// Settings of one encoded stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Picture width in pixels (even).
    pub width: u32,
    /// Picture height in pixels (even).
    pub height: u32,
    /// Frame rate the source delivers, frames per second.
    pub fps: f64,
    /// Target bit rate, bits per second.
    pub bitrate_bps: u32,
    /// Frames from one IDR picture to the next (the GOP length).
    pub keyint: u32,
}

impl EncoderConfig {
    /// Checks ranges: even size up to 3840x2160 (OpenH264's limit), 1–240 fps,
    /// 16 kbit/s–100 Mbit/s, keyint ≥ 1.
    pub fn validate(&self) -> Result<(), CameraError> {
        check_size(self.width, self.height)
            .map_err(|e| CameraError::InvalidConfig(e.to_string()))?;
        if self.width.max(self.height) > 3840 || self.width.min(self.height) > 2160 {
            return Err(CameraError::InvalidConfig(format!(
                "{}x{} exceeds the encoder's 3840x2160",
                self.width, self.height
            )));
        }
        if !(1.0..=240.0).contains(&self.fps) {
            return Err(CameraError::InvalidConfig(format!(
                "frame rate {} not in 1..=240",
                self.fps
            )));
        }
        if !(16_000..=100_000_000).contains(&self.bitrate_bps) {
            return Err(CameraError::InvalidConfig(format!(
                "bit rate {} not in 16000..=100000000",
                self.bitrate_bps
            )));
        }
        if self.keyint == 0 {
            return Err(CameraError::InvalidConfig(
                "keyint must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Lets OpenH264 read an [`I420Frame`] in place (no copy).
impl YUVSource for I420Frame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.width as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Silences OpenH264's own log before the encoder's first initialization. At its default
/// level (warning) the C library writes to stderr behind our log's back, e.g. `[OpenH264]
/// this = 0x…, Warning:bEnableFrameSkip = 0,bitrate can't be controlled…` at every encoder
/// start, for the frame skipping we turn off on purpose. `EncoderConfig::debug(false)` is
/// applied only after that first initialization, too late; the trace level option is the one
/// the encoder accepts before it (`CWelsH264SVCEncoder::SetOption`), and the wrapper sets the
/// same quiet level again after initializing.
#[allow(unsafe_code)]
fn quiet(enc: &mut Encoder) -> Result<(), CameraError> {
    let mut level: c_int = openh264_sys2::WELS_LOG_QUIET;
    // SAFETY: `raw_api` belongs to this live encoder; ENCODER_OPTION_TRACE_LEVEL reads one
    // int through the pointer during the call and keeps no reference to it, and changes no
    // parameter the wrapper relies on.
    let rc = unsafe {
        enc.raw_api().set_option(
            openh264_sys2::ENCODER_OPTION_TRACE_LEVEL,
            (&raw mut level).cast(),
        )
    };
    if rc != 0 {
        return Err(CameraError::Encoder(format!(
            "cannot set OpenH264's log level (error {rc})"
        )));
    }
    Ok(())
}

/// An H.264 encoder for one stream.
pub struct H264Encoder {
    inner: Encoder,
    cfg: EncoderConfig,
    params: Option<Arc<StreamParams>>,
    /// Reused output buffer for one access unit.
    scratch: Vec<u8>,
}

impl H264Encoder {
    /// Creates an encoder: constrained baseline (no B-frames, so no reordering delay),
    /// bit-rate rate control without frame skipping (every input picture yields an access
    /// unit, so frame counters downstream stay meaningful), an IDR picture every `keyint`
    /// frames with SPS and PPS in front of it, one slice and one thread per picture.
    pub fn new(cfg: EncoderConfig) -> Result<Self, CameraError> {
        cfg.validate()?;
        let oh = OhConfig::new()
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(RateControlMode::Bitrate)
            .bitrate(BitRate::from_bps(cfg.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(cfg.fps as f32))
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(cfg.keyint))
            // Scene-change IDRs would make GOPs irregular; the recorder and the hub's GOP
            // cache are simpler to reason about with a fixed cadence.
            .scene_change_detect(false)
            // Constant ids: the SPS/PPS bytes stay identical, so `params` is shared.
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .complexity(Complexity::Low)
            .num_threads(1);
        let mut inner = Encoder::with_api_config(OpenH264API::from_source(), oh)
            .map_err(|e| CameraError::Encoder(e.to_string()))?;
        quiet(&mut inner)?;
        Ok(H264Encoder {
            inner,
            cfg,
            params: None,
            scratch: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Parameters of the last key frame, once one was encoded.
    pub fn params(&self) -> Option<Arc<StreamParams>> {
        self.params.clone()
    }

    /// Makes the next picture an IDR picture (e.g. when a new consumer needs one at once).
    pub fn force_key_frame(&mut self) {
        self.inner.force_intra_frame();
    }

    /// Encodes one picture of the configured size. `pts` is in 90 kHz units, `capture_us`
    /// the wall-clock capture time; both are copied into the access unit. Returns `None`
    /// when the encoder produced no picture for this input.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        pts: i64,
        capture_us: i64,
    ) -> Result<Option<AccessUnit>, CameraError> {
        if (frame.width, frame.height) != (self.cfg.width, self.cfg.height) {
            return Err(CameraError::InvalidPicture(format!(
                "picture is {}x{}, encoder is configured for {}x{}",
                frame.width, frame.height, self.cfg.width, self.cfg.height
            )));
        }
        let luma = frame.width as usize * frame.height as usize;
        if frame.y.len() != luma || frame.u.len() != luma / 4 || frame.v.len() != luma / 4 {
            return Err(CameraError::InvalidPicture(
                "plane lengths do not match size".into(),
            ));
        }
        let ts = openh264::Timestamp::from_millis(u64::try_from(pts.max(0) / 90).unwrap_or(0));
        let bitstream = self
            .inner
            .encode_at(frame, ts)
            .map_err(|e| CameraError::Encoder(e.to_string()))?;
        if matches!(bitstream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        bitstream.write_vec(&mut scratch);
        let mut data = Vec::with_capacity(self.scratch.len() + 16);
        let (mut sps, mut pps, mut key) = (None, None, false);
        for nal in split_annexb(&scratch) {
            match nal_type(nal) {
                Some(NAL_SPS) => sps = Some(nal),
                Some(NAL_PPS) => pps = Some(nal),
                Some(NAL_IDR) => key = true,
                _ => {}
            }
            crate::nal::push_avcc(&mut data, nal);
        }
        if data.is_empty() {
            return Ok(None);
        }
        if let (Some(sps), Some(pps)) = (sps, pps) {
            self.update_params(sps, pps);
        }
        self.scratch = scratch;
        let Some(params) = self.params.clone() else {
            return Err(CameraError::Encoder(
                "first picture came without SPS/PPS".into(),
            ));
        };
        Ok(Some(AccessUnit {
            params,
            pts,
            capture_us,
            key,
            data: Bytes::from(data),
        }))
    }

    /// Keeps the current `Arc` while SPS and PPS are unchanged, so every sink can compare
    /// parameters by pointer.
    fn update_params(&mut self, sps: &[u8], pps: &[u8]) {
        if let Some(p) = &self.params {
            if p.sps == sps && p.pps == pps {
                return;
            }
        }
        self.params = Some(Arc::new(StreamParams {
            codec: Codec::H264,
            vps: None,
            sps: Bytes::copy_from_slice(sps),
            pps: Bytes::copy_from_slice(pps),
            width: self.cfg.width,
            height: self.cfg.height,
            fps: Some(self.cfg.fps),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsrc::TestPattern;

    fn cfg(width: u32, height: u32, keyint: u32) -> EncoderConfig {
        EncoderConfig {
            width,
            height,
            fps: 30.0,
            bitrate_bps: 1_000_000,
            keyint,
        }
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(H264Encoder::new(cfg(321, 240, 30)).is_err());
        assert!(H264Encoder::new(cfg(320, 240, 0)).is_err());
        assert!(H264Encoder::new(EncoderConfig {
            fps: 0.0,
            ..cfg(320, 240, 30)
        })
        .is_err());
        assert!(H264Encoder::new(EncoderConfig {
            bitrate_bps: 10,
            ..cfg(320, 240, 30)
        })
        .is_err());
        assert!(H264Encoder::new(cfg(4096, 2160, 30)).is_err());
    }

    #[test]
    fn idr_every_keyint_with_parameter_sets_and_shared_params() {
        let mut enc = H264Encoder::new(cfg(320, 240, 10)).unwrap();
        let mut tp = TestPattern::new(320, 240).unwrap();
        let mut first: Option<Arc<StreamParams>> = None;
        for n in 0..35u32 {
            let au = enc
                .encode(tp.render(n, 0), i64::from(n) * 3000, 5)
                .unwrap()
                .unwrap();
            assert_eq!(au.key, n % 10 == 0, "frame {n}");
            let types: Vec<u8> = au.nal_units().filter_map(nal_type).collect();
            if au.key {
                assert!(types.starts_with(&[NAL_SPS, NAL_PPS]), "{types:?}");
                assert!(types.contains(&NAL_IDR));
            } else {
                assert!(
                    !types.contains(&NAL_SPS) && !types.contains(&NAL_IDR),
                    "{types:?}"
                );
            }
            assert_eq!((au.pts, au.capture_us), (i64::from(n) * 3000, 5));
            assert_eq!((au.params.width, au.params.height), (320, 240));
            assert_eq!(au.params.fps, Some(30.0));
            let p = first.get_or_insert_with(|| au.params.clone());
            assert!(
                Arc::ptr_eq(p, &au.params),
                "params re-allocated at frame {n}"
            );
        }
        // The SPS the encoder wrote describes the configured size.
        let sps = crate::nal::parse_sps(&first.unwrap().sps).unwrap();
        assert_eq!((sps.width, sps.height), (320, 240));
    }

    #[test]
    fn wrong_picture_size_is_an_error() {
        let mut enc = H264Encoder::new(cfg(320, 240, 10)).unwrap();
        let f = I420Frame::black(640, 360).unwrap();
        assert!(matches!(
            enc.encode(&f, 0, 0),
            Err(CameraError::InvalidPicture(_))
        ));
    }
}
