//! libavcodec's H.264 and H.265 decoders (cargo feature `libav`), through the safe
//! `ffmpeg-next` binding: about twice OpenH264's speed on camera streams (CABAC main profile),
//! and H.265, which OpenH264 does not decode.
//!
//! One thread per decoder (`thread_count` 1, like `ffmpeg -threads 1`): the motion worker is
//! already one thread per camera, and frame threading would add a picture of latency per
//! thread. The access units go in as [`AccessUnit::write_decoder_input`] writes them (Annex B,
//! parameter sets before each key frame), so no `extradata` is needed and a camera changing its
//! parameter sets mid-stream just works. Only the luma plane is read, in place, with its stride.

use ff::codec::threading;
use ff::format::Pixel;
use ffmpeg_next as ff;
use vigil_media::{AccessUnit, Codec};

use super::analyzer::Picture;

/// Pixel formats whose plane 0 is 8-bit luma, one byte per pixel (what the detector reads).
/// 10-bit H.265 (Main 10) is not among them: it is refused, not misread.
fn luma_8bit(p: Pixel) -> bool {
    matches!(
        p,
        Pixel::YUV420P
            | Pixel::YUVJ420P
            | Pixel::YUV422P
            | Pixel::YUVJ422P
            | Pixel::YUV444P
            | Pixel::YUVJ444P
            | Pixel::NV12
            | Pixel::NV21
            | Pixel::GRAY8
    )
}

/// Why [`LibavDecoder::decode`] gave no picture.
pub(super) enum LibavError {
    /// A damaged access unit: resume at the next key frame.
    Corrupt(String),
    /// A stream the detector cannot read (not 8-bit luma): stop analysing it.
    Unsupported(String),
}

/// A libavcodec decoder, opened for the codec of the first access unit (and reopened if the
/// stream changes codec).
pub(super) struct LibavDecoder {
    open: Option<(Codec, ff::decoder::Video)>,
    annexb: Vec<u8>,
    /// The newest decoded picture.
    frame: ff::frame::Video,
    /// Where further pictures of the same packet land (swapped into `frame`).
    scratch: ff::frame::Video,
}

impl LibavDecoder {
    /// Checks that libavcodec has both decoders (a build of ffmpeg without them fails here,
    /// at start, rather than at the first picture).
    pub(super) fn new() -> Result<Self, String> {
        // libavcodec logs decode errors of hostile or damaged streams to stderr; ours are
        // counted and logged once through tracing. (Process-wide: nothing else here uses it.)
        ff::util::log::set_level(ff::util::log::Level::Fatal);
        for id in [ff::codec::Id::H264, ff::codec::Id::HEVC] {
            if ff::decoder::find(id).is_none() {
                return Err(format!("libavcodec has no {id:?} decoder"));
            }
        }
        Ok(LibavDecoder {
            open: None,
            annexb: Vec::new(),
            frame: ff::frame::Video::empty(),
            scratch: ff::frame::Video::empty(),
        })
    }

    fn open(codec: Codec) -> Result<ff::decoder::Video, String> {
        let id = match codec {
            Codec::H264 => ff::codec::Id::H264,
            Codec::H265 => ff::codec::Id::HEVC,
        };
        let c = ff::decoder::find(id).ok_or_else(|| format!("libavcodec has no {id:?} decoder"))?;
        let mut ctx = ff::codec::Context::new_with_codec(c);
        ctx.set_threading(threading::Config {
            kind: threading::Type::None,
            count: 1,
            ..threading::Config::default()
        });
        ctx.decoder()
            .open_as(c)
            .and_then(|o| o.video())
            .map_err(|e| format!("opening libavcodec's {id:?} decoder: {e}"))
    }

    /// Decodes `au`; the newest picture it completes, if any. Pictures come out with the
    /// capture time of their own access unit (the packet's pts), so a decoder that holds
    /// pictures back (B-frames) still dates them right.
    pub(super) fn decode(&mut self, au: &AccessUnit) -> Result<Option<Picture<'_>>, LibavError> {
        let codec = au.params.codec;
        if self.open.as_ref().is_none_or(|(c, _)| *c != codec) {
            self.open = Some((codec, Self::open(codec).map_err(LibavError::Unsupported)?));
        }
        let Some((_, dec)) = self.open.as_mut() else {
            return Ok(None);
        };
        au.write_decoder_input(&mut self.annexb);
        let mut pkt = ff::Packet::copy(&self.annexb);
        pkt.set_pts(Some(au.capture_us));
        dec.send_packet(&pkt)
            .map_err(|e| LibavError::Corrupt(e.to_string()))?;
        let mut got = false;
        loop {
            match dec.receive_frame(&mut self.scratch) {
                Ok(()) => {
                    // Keep the newest; an older one of the same packet is not analysed.
                    std::mem::swap(&mut self.frame, &mut self.scratch);
                    got = true;
                }
                Err(ff::Error::Other {
                    errno: ff::util::error::EAGAIN,
                })
                | Err(ff::Error::Eof) => break,
                Err(e) => return Err(LibavError::Corrupt(e.to_string())),
            }
        }
        if !got {
            return Ok(None);
        }
        let f = &self.frame;
        if !luma_8bit(f.format()) {
            return Err(LibavError::Unsupported(format!(
                "motion detection reads 8-bit luma; this stream decodes to {:?}",
                f.format()
            )));
        }
        if f.planes() == 0 {
            return Ok(None);
        }
        let chroma = if matches!(f.format(), Pixel::YUV420P | Pixel::YUVJ420P)
            && f.planes() >= 3
            && f.stride(1) == f.stride(2)
        {
            Some((f.data(1), f.data(2), f.stride(1)))
        } else {
            None
        };
        Ok(Some(Picture {
            ts_us: f.pts().unwrap_or(au.capture_us),
            width: f.width() as usize,
            height: f.height() as usize,
            y: f.data(0),
            y_stride: f.stride(0),
            chroma,
        }))
    }
}
