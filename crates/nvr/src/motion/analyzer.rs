//! Decode and detect, synchronously: every access unit goes through the decoder (a P-frame
//! needs its references), only one picture per analysis period goes through the detector. No
//! threads, no clock: the pipeline ([`super::spawn_motion`]) and the benchmark drive it.
//!
//! The decoder is OpenH264 (H.264 only), or libavcodec (H.264 and H.265) when the crate is
//! built with the `libav` feature: [`DecoderKind::preferred`] is the selection point.

use openh264::decoder::{Decoder, DecoderConfig};
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use vigil_camera::I420Frame;
use vigil_media::{AccessUnit, Codec};
use vigil_motion::{FrameResult, MotionDetector, MotionEvent, Scope};

use super::settings::motion_config;
use crate::{MotionSettings, NvrError};

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

/// Which decoder an [`Analyzer`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecoderKind {
    /// Cisco's OpenH264 (built in, H.264 only).
    OpenH264,
    /// libavcodec (feature `libav`): H.264 and H.265, about twice OpenH264's speed.
    #[cfg(feature = "libav")]
    Libav,
}

impl DecoderKind {
    /// libavcodec when the crate is built with the `libav` feature, else OpenH264.
    pub fn preferred() -> Self {
        #[cfg(feature = "libav")]
        return DecoderKind::Libav;
        #[cfg(not(feature = "libav"))]
        return DecoderKind::OpenH264;
    }

    /// A name for logs and the benchmark.
    pub fn name(self) -> &'static str {
        match self {
            DecoderKind::OpenH264 => "OpenH264",
            #[cfg(feature = "libav")]
            DecoderKind::Libav => "libavcodec",
        }
    }
}

/// A decoded picture, borrowed from its decoder: 8-bit luma with its stride, and the two
/// chroma planes (with their common stride) when the picture is 4:2:0 planar.
pub(super) struct Picture<'a> {
    /// Capture time of the access unit the picture came from, µs.
    pub ts_us: i64,
    pub width: usize,
    pub height: usize,
    pub y: &'a [u8],
    pub y_stride: usize,
    pub chroma: Option<(&'a [u8], &'a [u8], usize)>,
}

enum Backend {
    OpenH264(Decoder),
    #[cfg(feature = "libav")]
    Libav(Box<super::libav::LibavDecoder>),
}

/// The detection half: what happens to a decoded picture.
struct Detect {
    settings: MotionSettings,
    detector: Option<MotionDetector>,
    period_us: i64,
    next_due: Option<i64>,
    /// Ends of events cut by a clock jump, reported with the next analysed picture.
    pending: Vec<MotionEvent>,
}

/// A decoder + [`MotionDetector`] for one stream.
pub struct Analyzer {
    kind: DecoderKind,
    backend: Backend,
    annexb: Vec<u8>,
    detect: Detect,
    last_ts: i64,
    need_key: bool,
    stats: AnalyzerStats,
}

/// A capture time this far behind the newest one is a clock step (NTP, a camera's clock set
/// back), not jitter.
const BACKWARDS_JUMP_US: i64 = 1_000_000;

impl Analyzer {
    /// Checks `settings` and creates the [preferred](DecoderKind::preferred) decoder; the
    /// detector is created at the first picture, when its size is known.
    pub fn new(settings: MotionSettings) -> Result<Self, NvrError> {
        Self::with_decoder(settings, DecoderKind::preferred())
    }

    /// [`Analyzer::new`] with a given decoder (the benchmark compares them).
    pub fn with_decoder(settings: MotionSettings, kind: DecoderKind) -> Result<Self, NvrError> {
        // Validates fps, sensitivity, durations and areas (zones are checked at the first
        // picture, against its real grid).
        motion_config(&settings, 640, 360)?;
        let backend = match kind {
            DecoderKind::OpenH264 => Backend::OpenH264(
                Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
                    .map_err(|e| NvrError::Invalid(format!("H.264 decoder: {e}")))?,
            ),
            #[cfg(feature = "libav")]
            DecoderKind::Libav => Backend::Libav(Box::new(
                super::libav::LibavDecoder::new().map_err(NvrError::Invalid)?,
            )),
        };
        Ok(Analyzer {
            kind,
            backend,
            annexb: Vec::new(),
            detect: Detect {
                period_us: (1e6 / f64::from(settings.fps)).round() as i64,
                settings,
                detector: None,
                next_due: None,
                pending: Vec::new(),
            },
            last_ts: 0,
            need_key: true,
            stats: AnalyzerStats::default(),
        })
    }

    /// The decoder in use.
    pub fn decoder(&self) -> DecoderKind {
        self.kind
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
    /// stream is an error with OpenH264 (it decodes H.264 only); a corrupt access unit is
    /// counted and the stream resumes at the next key frame.
    pub fn push(&mut self, au: &AccessUnit) -> Result<Option<Analysed>, NvrError> {
        if au.params.codec != Codec::H264 && self.kind == DecoderKind::OpenH264 {
            return Err(NvrError::Invalid(
                "motion detection decodes H.264 only; this stream is H.265".into(),
            ));
        }
        if self.need_key && !au.key {
            self.stats.skipped += 1;
            return Ok(None);
        }
        self.need_key = false;
        let d = &mut self.detect;
        if au.capture_us < self.last_ts.saturating_sub(BACKWARDS_JUMP_US) {
            // The clock went back: the detector's times would stand still until the clock
            // caught up (an open event could not end for that long). End what is open at the
            // last time seen and start over with a fresh detector.
            tracing::warn!(
                jump_ms = (self.last_ts - au.capture_us) / 1000,
                "motion: capture clock went backwards; restarting detection"
            );
            if let Some(mut det) = d.detector.take() {
                d.pending.extend(det.finish(self.last_ts));
            }
            d.next_due = None;
            self.last_ts = au.capture_us;
        }
        self.last_ts = self.last_ts.max(au.capture_us);
        let due = d.next_due.is_none_or(|n| au.capture_us >= n);
        // nal_ref_idc is H.264's (H.265's sub-layer non-reference pictures may still be
        // referred to by higher temporal layers: always decoded).
        if !due && !au.key && au.params.codec == Codec::H264 && is_non_reference(au) {
            self.stats.not_needed += 1;
            return Ok(None);
        }
        self.stats.decoded += 1;
        let out = match &mut self.backend {
            Backend::OpenH264(decoder) => {
                au.write_decoder_input(&mut self.annexb);
                match decoder.decode(&self.annexb) {
                    Ok(Some(yuv)) => {
                        let (w, h) = yuv.dimensions();
                        let (ys, us, _) = yuv.strides();
                        Ok(Some(d.analyse(Picture {
                            ts_us: au.capture_us,
                            width: w,
                            height: h,
                            y: yuv.y(),
                            y_stride: ys,
                            chroma: Some((yuv.u(), yuv.v(), us)),
                        })?))
                    }
                    Ok(None) => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            }
            #[cfg(feature = "libav")]
            Backend::Libav(decoder) => {
                use super::libav::LibavError;
                match decoder.decode(au) {
                    Ok(Some(pic)) => Ok(Some(d.analyse(pic)?)),
                    Ok(None) => Ok(None),
                    Err(LibavError::Corrupt(e)) => Err(e),
                    Err(LibavError::Unsupported(e)) => return Err(NvrError::Invalid(e)),
                }
            }
        };
        match out {
            Ok(a) => {
                let a = a.flatten();
                if a.is_some() {
                    self.stats.analysed += 1;
                }
                Ok(a)
            }
            Err(e) => {
                self.stats.errors += 1;
                self.need_key = true;
                if self.stats.errors == 1 {
                    tracing::warn!(error = %e, decoder = self.kind.name(), "motion: decode error; resuming at the next key frame");
                }
                Ok(None)
            }
        }
    }

    /// Ends every open event at the newest access unit's time (the stream stopped).
    pub fn finish(&mut self) -> Vec<MotionEvent> {
        let ts = self.last_ts;
        self.detect
            .detector
            .as_mut()
            .map(|d| d.finish(ts))
            .unwrap_or_default()
    }
}

impl Detect {
    /// Runs the detector on `pic` if an analysis is due at its time.
    fn analyse(&mut self, pic: Picture<'_>) -> Result<Option<Analysed>, NvrError> {
        let ts = pic.ts_us;
        if self.next_due.is_some_and(|n| ts < n) {
            return Ok(None);
        }
        // Next analysis one period later; after a stall, one period from now (no burst).
        let next = self.next_due.map_or(ts, |d| d) + self.period_us;
        self.next_due = Some(if next <= ts {
            ts + self.period_us
        } else {
            next
        });

        let (w, h) = (pic.width, pic.height);
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
                ended.extend(old.finish(ts));
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
            .process(pic.y, pic.y_stride, ts)
            .map_err(|e| NvrError::Invalid(format!("motion: {e}")))?;
        let started = result.events.iter().any(|e| {
            matches!(
                e,
                MotionEvent::Start {
                    scope: Scope::Camera,
                    ..
                }
            )
        });
        let start_frame = if started { copy_frame(&pic) } else { None };
        if !ended.is_empty() {
            ended.append(&mut result.events);
            result.events = ended;
        }
        Ok(Some(Analysed {
            ts_us: ts,
            result,
            start_frame,
        }))
    }
}

/// The decoded picture as a tightly packed I420 frame of even size (for the thumbnail); grey
/// chroma when the picture has no 4:2:0 planes.
fn copy_frame(pic: &Picture<'_>) -> Option<I420Frame> {
    let (w, h) = (pic.width & !1, pic.height & !1);
    let plane = |src: &[u8], stride: usize, pw: usize, ph: usize| -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(pw * ph);
        for row in 0..ph {
            out.extend_from_slice(src.get(row * stride..row * stride + pw)?);
        }
        Some(out)
    };
    let (u, v) = match pic.chroma {
        Some((u, v, cs)) => (plane(u, cs, w / 2, h / 2)?, plane(v, cs, w / 2, h / 2)?),
        None => (vec![128; w / 2 * h / 2], vec![128; w / 2 * h / 2]),
    };
    Some(I420Frame {
        width: u32::try_from(w).ok()?,
        height: u32::try_from(h).ok()?,
        y: plane(pic.y, pic.y_stride, w, h)?,
        u,
        v,
    })
}
