//! Choosing a capture format from what a device offers (pure, so it is tested without a
//! device; the `v4l2` module feeds it the device's enumeration).
//!
//! Preference: H.264 from the device (passthrough: no encoding cost, nothing lost), then
//! YUYV at exactly the requested size (no decoding, no scaling), then MJPEG (the only way
//! most USB 2 webcams deliver large sizes at full rate), then NV12, then YUYV at another
//! size. Within one choice the nearest size wins, then the frame rate nearest the request.

/// Capture pixel formats this crate can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// H.264 elementary stream, passed through.
    H264,
    /// Packed YUV 4:2:2 (`YUYV`).
    Yuyv,
    /// Motion JPEG (`MJPG`).
    Mjpeg,
    /// Semi-planar YUV 4:2:0 (`NV12`).
    Nv12,
}

impl CaptureFormat {
    /// The format of a V4L2 fourcc, if we can use it.
    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<Self> {
        match &fourcc {
            b"H264" => Some(CaptureFormat::H264),
            b"YUYV" => Some(CaptureFormat::Yuyv),
            b"MJPG" => Some(CaptureFormat::Mjpeg),
            b"NV12" => Some(CaptureFormat::Nv12),
            _ => None,
        }
    }

    /// The V4L2 fourcc.
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            CaptureFormat::H264 => *b"H264",
            CaptureFormat::Yuyv => *b"YUYV",
            CaptureFormat::Mjpeg => *b"MJPG",
            CaptureFormat::Nv12 => *b"NV12",
        }
    }
}

/// One frame size a device offers for a format, with the frame rates it offers there.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferedSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rates (frames per second); empty when the device did not say.
    pub fps: Vec<f64>,
}

/// A pixel format a device offers, with its sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferedFormat {
    /// V4L2 fourcc, e.g. `*b"YUYV"`.
    pub fourcc: [u8; 4],
    /// Sizes offered in this format.
    pub sizes: Vec<OfferedSize>,
}

/// The chosen capture mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Negotiated {
    /// Pixel format.
    pub format: CaptureFormat,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frame rate to ask for.
    pub fps: f64,
}

/// Picks the best capture mode for `width` x `height` at `fps`, or `None` when the device
/// offers nothing usable.
pub fn negotiate(
    offered: &[OfferedFormat],
    width: u32,
    height: u32,
    fps: f64,
) -> Option<Negotiated> {
    let mut best: Option<((u8, u64, u64, u64), Negotiated)> = None;
    for f in offered {
        let Some(format) = CaptureFormat::from_fourcc(f.fourcc) else {
            continue;
        };
        for s in &f.sizes {
            // Raw pictures become I420, which needs even sizes.
            if s.width == 0
                || s.height == 0
                || (format != CaptureFormat::H264 && (s.width % 2 == 1 || s.height % 2 == 1))
            {
                continue;
            }
            let exact = (s.width, s.height) == (width, height);
            let tier = match (format, exact) {
                (CaptureFormat::H264, _) => 0,
                (CaptureFormat::Yuyv, true) => 1,
                (CaptureFormat::Mjpeg, _) => 2,
                (CaptureFormat::Nv12, true) => 3,
                (CaptureFormat::Yuyv, false) => 4,
                (CaptureFormat::Nv12, false) => 5,
            };
            let distance =
                u64::from(s.width.abs_diff(width)) + u64::from(s.height.abs_diff(height));
            let chosen_fps = pick_fps(&s.fps, fps);
            // Falling short of the requested rate is worse than exceeding it.
            let fps_cost = if chosen_fps >= fps {
                ((chosen_fps - fps) * 1000.0) as u64
            } else {
                ((fps - chosen_fps) * 10_000.0) as u64
            };
            // Ties in distance: the larger picture keeps more detail.
            let smaller = u64::MAX - u64::from(s.width) * u64::from(s.height);
            let key = (tier, distance, fps_cost, smaller);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((
                    key,
                    Negotiated {
                        format,
                        width: s.width,
                        height: s.height,
                        fps: chosen_fps,
                    },
                ));
            }
        }
    }
    best.map(|(_, n)| n)
}

/// The offered rate nearest `want`, preferring one at or above it.
fn pick_fps(offered: &[f64], want: f64) -> f64 {
    let usable = offered
        .iter()
        .copied()
        .filter(|f| f.is_finite() && *f > 0.0);
    let at_or_above = usable.clone().filter(|f| *f >= want).reduce(f64::min);
    at_or_above
        .or_else(|| usable.reduce(f64::max))
        .unwrap_or(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(fourcc: &[u8; 4], sizes: &[(u32, u32, &[f64])]) -> OfferedFormat {
        OfferedFormat {
            fourcc: *fourcc,
            sizes: sizes
                .iter()
                .map(|&(width, height, fps)| OfferedSize {
                    width,
                    height,
                    fps: fps.to_vec(),
                })
                .collect(),
        }
    }

    /// A typical USB webcam: YUYV only up to 640x480 at full rate, MJPEG up to 1080p.
    fn webcam() -> Vec<OfferedFormat> {
        vec![
            fmt(
                b"YUYV",
                &[
                    (640, 480, &[30.0, 15.0]),
                    (1280, 720, &[10.0, 5.0]),
                    (320, 240, &[30.0]),
                ],
            ),
            fmt(
                b"MJPG",
                &[
                    (1920, 1080, &[30.0]),
                    (1280, 720, &[60.0, 30.0]),
                    (640, 480, &[30.0]),
                ],
            ),
        ]
    }

    #[test]
    fn yuyv_at_the_exact_size_beats_mjpeg() {
        let n = negotiate(&webcam(), 640, 480, 30.0).unwrap();
        assert_eq!(
            (n.format, n.width, n.height, n.fps),
            (CaptureFormat::Yuyv, 640, 480, 30.0)
        );
        // Exact YUYV wins even at a lower rate than MJPEG offers (the rate is then what
        // the device can do).
        let n = negotiate(&webcam(), 1280, 720, 30.0).unwrap();
        assert_eq!((n.format, n.fps), (CaptureFormat::Yuyv, 10.0));
    }

    #[test]
    fn mjpeg_when_yuyv_lacks_the_size_and_the_nearest_size_wins() {
        let n = negotiate(&webcam(), 1920, 1080, 30.0).unwrap();
        assert_eq!(
            (n.format, n.width, n.height),
            (CaptureFormat::Mjpeg, 1920, 1080)
        );
        let n = negotiate(&webcam(), 1600, 900, 25.0).unwrap();
        assert_eq!(
            (n.format, n.width, n.height, n.fps),
            (CaptureFormat::Mjpeg, 1920, 1080, 30.0)
        );
        let n = negotiate(&webcam(), 1280, 800, 30.0).unwrap();
        assert_eq!((n.width, n.height, n.fps), (1280, 720, 30.0));
    }

    #[test]
    fn h264_passthrough_is_preferred_when_offered() {
        let mut offered = webcam();
        offered.push(fmt(b"H264", &[(1920, 1080, &[30.0]), (1280, 720, &[30.0])]));
        let n = negotiate(&offered, 1280, 720, 30.0).unwrap();
        assert_eq!(
            (n.format, n.width, n.height),
            (CaptureFormat::H264, 1280, 720)
        );
    }

    #[test]
    fn fps_prefers_at_or_above_the_request() {
        assert_eq!(pick_fps(&[5.0, 15.0, 30.0, 60.0], 25.0), 30.0);
        assert_eq!(pick_fps(&[5.0, 15.0], 25.0), 15.0);
        assert_eq!(pick_fps(&[], 25.0), 25.0);
        assert_eq!(pick_fps(&[f64::NAN, 0.0], 12.0), 12.0);
    }

    #[test]
    fn nothing_usable_gives_none_and_nv12_is_a_fallback() {
        assert_eq!(
            negotiate(&[fmt(b"GREY", &[(640, 480, &[30.0])])], 640, 480, 30.0),
            None
        );
        assert_eq!(
            negotiate(&[fmt(b"YUYV", &[(641, 480, &[30.0])])], 640, 480, 30.0),
            None
        );
        assert_eq!(negotiate(&[], 640, 480, 30.0), None);
        let n = negotiate(&[fmt(b"NV12", &[(640, 480, &[])])], 640, 480, 30.0).unwrap();
        assert_eq!((n.format, n.fps), (CaptureFormat::Nv12, 30.0));
    }
}
