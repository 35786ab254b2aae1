//! Decode and detect, synchronously: every access unit goes through OpenH264 (a P-frame needs
//! its references), only one picture per analysis period goes through the detector. No
//! threads, no clock: the pipeline ([`super::spawn_motion`]) and the benchmark drive it.

use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use vigil_camera::I420Frame;
use vigil_media::{AccessUnit, Codec};
use vigil_motion::{FrameResult, MotionDetector, MotionEvent, Scope};

use super::settings::motion_config;
use crate::{MotionSettings, NvrError};

/// H.264 NAL unit type of a sequence parameter set (ITU-T H.264 Table 7-1).
const NAL_SPS: u8 = 7;

/// One analysed picture.
#[derive(Debug)]
pub struct Analysed {
    /// The picture's capture time, µs since the epoch.
    pub ts_us: i64,
    /// The detector's output (its `events` include the end of events cut by a size change).
    pub result: FrameResult,
    /// A copy of the picture when a camera event started on it (for the thumbnail).
    pub start_frame: Option<I420Frame>,
}

/// Counters since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnalyzerStats {
    /// Access units given to the decoder.
    pub decoded: u64,
    /// Pictures given to the detector.
    pub analysed: u64,
    /// Access units skipped after a decode error, up to the next key frame.
    pub skipped: u64,
    /// Decode errors.
    pub errors: u64,
    /// Non-reference pictures not decoded because no analysis was due (nothing refers to them).
    pub not_needed: u64,
}

/// Whether every slice of `au` has `nal_ref_idc` 0: no other picture refers to it, so it
/// need not be decoded when it is not analysed (ITU-T H.264 §7.4.1; cameras with temporal
/// scalability send every other picture like this).
fn is_non_reference(au: &AccessUnit) -> bool {
    let mut slices = 0;
    for nal in au.nal_units() {
        let Some(&h) = nal.first() else { continue };
        if (1..=5).contains(&(h & 0x1f)) {
            if h & 0x60 != 0 {
                return false;
            }
            slices += 1;
        }
    }
    slices > 0
}

/// OpenH264 + [`MotionDetector`] for one stream.
pub struct Analyzer {
    settings: MotionSettings,
    decoder: Decoder,
    annexb: Vec<u8>,
    detector: Option<MotionDetector>,
    period_us: i64,
    next_due: Option<i64>,
    last_ts: i64,
    need_key: bool,
    stats: AnalyzerStats,
    /// Ends of events cut by a clock jump, reported with the next analysed picture.
    pending: Vec<MotionEvent>,
}

/// A capture time this far behind the newest one is a clock step (NTP, a camera's clock set
/// back), not jitter.
const BACKWARDS_JUMP_US: i64 = 1_000_000;

impl Analyzer {
    /// Checks `settings` and creates the decoder; the detector is created at the first
    /// picture, when its size is known.
    pub fn new(settings: MotionSettings) -> Result<Self, NvrError> {
        // Validates fps, sensitivity, durations and areas (zones are checked at the first
        // picture, against its real grid).
        motion_config(&settings, 640, 360)?;
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| NvrError::Invalid(format!("H.264 decoder: {e}")))?;
        Ok(Analyzer {
            period_us: (1e6 / f64::from(settings.fps)).round() as i64,
            settings,
            decoder,
            annexb: Vec::new(),
            detector: None,
            next_due: None,
            last_ts: 0,
            need_key: true,
            stats: AnalyzerStats::default(),
            pending: Vec::new(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> AnalyzerStats {
        self.stats
    }

    /// Time of the newest access unit seen, µs.
    pub fn last_ts(&self) -> i64 {
        self.last_ts
    }

    /// Decodes `au` and, if an analysis is due, runs the detector on the picture. An H.265
    /// stream is an error (OpenH264 decodes H.264 only); a corrupt access unit is counted
    /// and the stream resumes at the next key frame.
    pub fn push(&mut self, au: &AccessUnit) -> Result<Option<Analysed>, NvrError> {
        if au.params.codec != Codec::H264 {
            return Err(NvrError::Invalid(
                "motion detection decodes H.264 only; this stream is H.265".into(),
            ));
        }
        if self.need_key && !au.key {
            self.stats.skipped += 1;
            return Ok(None);
        }
        self.need_key = false;
        if au.capture_us < self.last_ts.saturating_sub(BACKWARDS_JUMP_US) {
            // The clock went back: the detector's times would stand still until the clock
            // caught up (an open event could not end for that long). End what is open at the
            // last time seen and start over with a fresh detector.
            tracing::warn!(
                jump_ms = (self.last_ts - au.capture_us) / 1000,
                "motion: capture clock went backwards; restarting detection"
            );
            if let Some(mut d) = self.detector.take() {
                self.pending.extend(d.finish(self.last_ts));
            }
            self.next_due = None;
            self.last_ts = au.capture_us;
        }
        self.last_ts = self.last_ts.max(au.capture_us);
        let due = self.next_due.is_none_or(|d| au.capture_us >= d);
        if !due && !au.key && is_non_reference(au) {
            self.stats.not_needed += 1;
            return Ok(None);
        }
        self.annexb.clear();
        if au.key
            && !au
                .nal_units()
                .any(|n| n.first().map(|b| b & 0x1f) == Some(NAL_SPS))
        {
            for ps in [&au.params.sps, &au.params.pps] {
                self.annexb.extend_from_slice(&[0, 0, 0, 1]);
                self.annexb.extend_from_slice(ps);
            }
        }
        // ITU-T H.264 Annex B: each NAL unit behind a start code.
        for nal in au.nal_units() {
            self.annexb.extend_from_slice(&[0, 0, 0, 1]);
            self.annexb.extend_from_slice(nal);
        }
        self.stats.decoded += 1;
        let yuv = match self.decoder.decode(&self.annexb) {
            Ok(Some(yuv)) => yuv,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.stats.errors += 1;
                self.need_key = true;
                if self.stats.errors == 1 {
                    tracing::warn!(error = %e, "motion: H.264 decode error; resuming at the next key frame");
                }
                return Ok(None);
            }
        };
        if !due {
            return Ok(None);
        }
        // Next analysis one period later; after a stall, one period from now (no burst).
        let next = self.next_due.map_or(au.capture_us, |d| d) + self.period_us;
        self.next_due = Some(if next <= au.capture_us {
            au.capture_us + self.period_us
        } else {
            next
        });

        let (w, h) = yuv.dimensions();
        let (ys, us, _) = yuv.strides();
        let (w32, h32) = (
            u32::try_from(w).map_err(|_| NvrError::Invalid("picture too large".into()))?,
            u32::try_from(h).map_err(|_| NvrError::Invalid("picture too large".into()))?,
        );
        let mut ended = std::mem::take(&mut self.pending);
        let fits = self
            .detector
            .as_ref()
            .is_some_and(|d| (d.config().width, d.config().height) == (w32, h32));
        if !fits {
            if let Some(mut old) = self.detector.take() {
                ended.extend(old.finish(au.capture_us));
            }
            let config = motion_config(&self.settings, w32, h32)?;
            self.detector = Some(
                MotionDetector::new(config)
                    .map_err(|e| NvrError::Invalid(format!("motion: {e}")))?,
            );
        }
        let Some(detector) = self.detector.as_mut() else {
            return Ok(None);
        };
        let mut result = detector
            .process(yuv.y(), ys, au.capture_us)
            .map_err(|e| NvrError::Invalid(format!("motion: {e}")))?;
        self.stats.analysed += 1;
        let started = result.events.iter().any(|e| {
            matches!(
                e,
                MotionEvent::Start {
                    scope: Scope::Camera,
                    ..
                }
            )
        });
        let start_frame = if started {
            copy_frame(yuv.y(), yuv.u(), yuv.v(), ys, us, w, h)
        } else {
            None
        };
        if !ended.is_empty() {
            ended.append(&mut result.events);
            result.events = ended;
        }
        Ok(Some(Analysed {
            ts_us: au.capture_us,
            result,
            start_frame,
        }))
    }

    /// Ends every open event at the newest access unit's time (the stream stopped).
    pub fn finish(&mut self) -> Vec<MotionEvent> {
        let ts = self.last_ts;
        self.detector
            .as_mut()
            .map(|d| d.finish(ts))
            .unwrap_or_default()
    }
}

/// The decoded picture as a tightly packed I420 frame of even size (for the thumbnail).
fn copy_frame(
    y: &[u8],
    u: &[u8],
    v: &[u8],
    ys: usize,
    cs: usize,
    w: usize,
    h: usize,
) -> Option<I420Frame> {
    let (w, h) = (w & !1, h & !1);
    let plane = |src: &[u8], stride: usize, pw: usize, ph: usize| -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(pw * ph);
        for row in 0..ph {
            out.extend_from_slice(src.get(row * stride..row * stride + pw)?);
        }
        Some(out)
    };
    Some(I420Frame {
        width: u32::try_from(w).ok()?,
        height: u32::try_from(h).ok()?,
        y: plane(y, ys, w, h)?,
        u: plane(u, cs, w / 2, h / 2)?,
        v: plane(v, cs, w / 2, h / 2)?,
    })
}
