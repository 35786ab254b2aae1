//! Video4Linux2 capture (cargo feature `v4l2`): open a device, negotiate a format with
//! [`crate::negotiate::negotiate`], stream with mmap buffers and hand each picture on as
//! I420 (or as H.264 for passthrough).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use v4l::buffer::Type;
use v4l::format::FourCC;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Fraction};

use crate::convert::{mjpeg_to_i420, nv12_to_i420, yuyv_to_i420};
use crate::frame::I420Frame;
use crate::negotiate::{negotiate, CaptureFormat, Negotiated, OfferedFormat, OfferedSize};
use crate::CameraError;

/// One captured picture.
pub enum Captured<'a> {
    /// A raw picture, converted to I420.
    Picture(I420Frame),
    /// An H.264 access unit in Annex B form, straight from the device.
    H264(&'a [u8]),
}

/// An opened, configured capture device.
pub struct V4l2Capture {
    path: PathBuf,
    device: Device,
    mode: Negotiated,
}

fn dev_err(path: &Path, what: &str, e: std::io::Error) -> CameraError {
    CameraError::Device(format!("{}: {what}: {e}", path.display()))
}

impl V4l2Capture {
    /// Opens `path`, enumerates its formats and sets the best one for the request.
    pub fn open(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self, CameraError> {
        let device = Device::with_path(path).map_err(|e| dev_err(path, "open", e))?;
        let offered = enumerate(&device).map_err(|e| dev_err(path, "enumerate formats", e))?;
        let mode = negotiate(&offered, width, height, fps).ok_or_else(|| {
            CameraError::Device(format!(
                "{}: offers no usable format (need H264, YUYV, MJPG or NV12)",
                path.display()
            ))
        })?;
        let mut fmt = device
            .format()
            .map_err(|e| dev_err(path, "get format", e))?;
        fmt.width = mode.width;
        fmt.height = mode.height;
        fmt.fourcc = FourCC::new(&mode.format.fourcc());
        let set = device
            .set_format(&fmt)
            .map_err(|e| dev_err(path, "set format", e))?;
        if set.fourcc != fmt.fourcc || (set.width, set.height) != (mode.width, mode.height) {
            return Err(CameraError::Device(format!(
                "{}: asked for {} {}x{}, driver gave {} {}x{}",
                path.display(),
                fmt.fourcc,
                mode.width,
                mode.height,
                set.fourcc,
                set.width,
                set.height
            )));
        }
        // Frame rate as a time-per-frame fraction in milliseconds-ish precision.
        let params = v4l::video::capture::Parameters::new(Fraction::new(
            1000,
            (mode.fps * 1000.0).round() as u32,
        ));
        if let Err(e) = device.set_params(&params) {
            tracing::warn!(device = %path.display(), error = %e, "could not set frame rate");
        }
        tracing::info!(device = %path.display(), ?mode, "capture format negotiated");
        Ok(V4l2Capture {
            path: path.to_owned(),
            device,
            mode,
        })
    }

    /// The negotiated capture mode.
    pub fn mode(&self) -> Negotiated {
        self.mode
    }

    /// Streams until `stop` is raised or `on_frame` returns `Ok(false)` or an error.
    /// Raw formats are converted to I420; H.264 is passed as captured.
    pub fn run(
        &self,
        stop: &AtomicBool,
        mut on_frame: impl FnMut(Captured<'_>) -> Result<bool, CameraError>,
    ) -> Result<(), CameraError> {
        let path = &self.path;
        let mut stream = Stream::with_buffers(&self.device, Type::VideoCapture, 4)
            .map_err(|e| dev_err(path, "allocate buffers", e))?;
        stream.set_timeout(Duration::from_secs(2));
        let (w, h) = (self.mode.width, self.mode.height);
        while !stop.load(Ordering::Relaxed) {
            let (buf, meta) =
                CaptureStream::next(&mut stream).map_err(|e| dev_err(path, "capture", e))?;
            let data = buf.get(..meta.bytesused as usize).unwrap_or(buf);
            let captured = match self.mode.format {
                CaptureFormat::H264 => Captured::H264(data),
                CaptureFormat::Yuyv => Captured::Picture(yuyv_to_i420(data, w, h)?),
                CaptureFormat::Nv12 => Captured::Picture(nv12_to_i420(data, w, h)?),
                CaptureFormat::Mjpeg => match mjpeg_to_i420(data) {
                    Ok(f) => Captured::Picture(f),
                    // Webcams send the odd corrupt JPEG: skip it, keep streaming.
                    Err(e) => {
                        tracing::debug!(error = %e, "skipping undecodable MJPEG frame");
                        continue;
                    }
                },
            };
            if !on_frame(captured)? {
                break;
            }
        }
        Ok(())
    }
}

/// The device's formats, sizes and rates, in the pure form [`negotiate`] takes. Stepwise
/// and continuous sizes are reduced to a few common sizes within their range.
fn enumerate(device: &Device) -> std::io::Result<Vec<OfferedFormat>> {
    const COMMON: [(u32, u32); 6] = [
        (3840, 2160),
        (1920, 1080),
        (1280, 720),
        (640, 480),
        (640, 360),
        (320, 240),
    ];
    let mut out = Vec::new();
    for desc in device.enum_formats()? {
        let mut sizes = Vec::new();
        for size in device.enum_framesizes(desc.fourcc)? {
            let candidates: Vec<(u32, u32)> = match size.size {
                FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                FrameSizeEnum::Stepwise(s) => COMMON
                    .iter()
                    .copied()
                    .filter(|&(w, h)| {
                        (s.min_width..=s.max_width).contains(&w)
                            && (s.min_height..=s.max_height).contains(&h)
                    })
                    .collect(),
            };
            for (width, height) in candidates {
                let fps = device
                    .enum_frameintervals(desc.fourcc, width, height)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|i| match i.interval {
                        FrameIntervalEnum::Discrete(f) => fraction_fps(f),
                        FrameIntervalEnum::Stepwise(s) => fraction_fps(s.min),
                    })
                    .collect();
                sizes.push(OfferedSize { width, height, fps });
            }
        }
        out.push(OfferedFormat {
            fourcc: desc.fourcc.repr,
            sizes,
        });
    }
    Ok(out)
}

/// A frame interval (seconds per frame) as frames per second.
fn fraction_fps(f: Fraction) -> Option<f64> {
    (f.numerator > 0).then(|| f64::from(f.denominator) / f64::from(f.numerator))
}
