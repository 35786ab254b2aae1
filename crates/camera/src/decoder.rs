//! H.264 decoding (OpenH264) of the hub's access units back to raw pictures: for the sub
//! stream of a passthrough source, snapshots and tests.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use openh264::OpenH264API;
use vigil_media::AccessUnit;

use crate::frame::I420Frame;
use crate::CameraError;

/// Decodes one stream's access units, in order, starting at a key frame.
pub struct H264Decoder {
    inner: Decoder,
    annexb: Vec<u8>,
    frame: Option<I420Frame>,
}

impl H264Decoder {
    /// A decoder with OpenH264's defaults (single-threaded, no output delay for streams
    /// without B-frames).
    pub fn new() -> Result<Self, CameraError> {
        let inner = Decoder::with_api_config(OpenH264API::from_source(), Default::default())
            .map_err(|e| CameraError::Decoder(e.to_string()))?;
        Ok(H264Decoder {
            inner,
            annexb: Vec::new(),
            frame: None,
        })
    }

    /// Decodes one access unit; returns the picture it completed, if any. A key frame
    /// whose data lacks SPS/PPS gets them from `au.params` first.
    pub fn decode(&mut self, au: &AccessUnit) -> Result<Option<&I420Frame>, CameraError> {
        au.write_decoder_input(&mut self.annexb);
        let decoded = self
            .inner
            .decode(&self.annexb)
            .map_err(|e| CameraError::Decoder(e.to_string()))?;
        let Some(yuv) = decoded else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (ys, us, vs) = yuv.strides();
        // An odd cropped size loses its last column/row: I420Frame is even by design.
        let (w, h) = (w & !1, h & !1);
        if w == 0 || h == 0 {
            return Ok(None);
        }
        let fits =
            matches!(&self.frame, Some(f) if (f.width as usize, f.height as usize) == (w, h));
        if !fits {
            self.frame = Some(I420Frame::black(w as u32, h as u32)?);
        }
        let Some(frame) = self.frame.as_mut() else {
            return Ok(None);
        };
        copy_plane(yuv.y(), ys, &mut frame.y, w, h)?;
        copy_plane(yuv.u(), us, &mut frame.u, w / 2, h / 2)?;
        copy_plane(yuv.v(), vs, &mut frame.v, w / 2, h / 2)?;
        Ok(Some(&*frame))
    }
}

fn copy_plane(
    src: &[u8],
    stride: usize,
    dst: &mut [u8],
    w: usize,
    h: usize,
) -> Result<(), CameraError> {
    for (row, out) in dst.chunks_exact_mut(w).take(h).enumerate() {
        let line = src
            .get(row * stride..row * stride + w)
            .ok_or_else(|| CameraError::Decoder("decoded plane shorter than its size".into()))?;
        out.copy_from_slice(line);
    }
    Ok(())
}
