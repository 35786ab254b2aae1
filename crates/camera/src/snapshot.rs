//! JPEG snapshots from a hub's GOP: works for any source, encoded here or passed through.

use vigil_media::AccessUnit;

use crate::convert::i420_to_rgb;
use crate::decoder::H264Decoder;
use crate::CameraError;

/// Decodes `gop` (key frame first, as [`vigil_hub::Hub::gop`] returns it) and encodes its
/// last picture as a baseline JPEG of the given `quality` (1–100).
pub fn snapshot_jpeg(gop: &[AccessUnit], quality: u8) -> Result<Vec<u8>, CameraError> {
    let first = gop
        .first()
        .ok_or_else(|| CameraError::NoPicture("the stream has no key frame yet".into()))?;
    if !first.key {
        return Err(CameraError::NoPicture(
            "GOP does not start on a key frame".into(),
        ));
    }
    let mut decoder = H264Decoder::new()?;
    let mut last = None;
    for au in gop {
        if let Some(frame) = decoder.decode(au)? {
            last = Some(frame.clone());
        }
    }
    let frame = last.ok_or_else(|| CameraError::NoPicture("nothing in the GOP decoded".into()))?;
    let (w, h) = (
        u16::try_from(frame.width).map_err(|_| CameraError::Jpeg("picture too wide".into()))?,
        u16::try_from(frame.height).map_err(|_| CameraError::Jpeg("picture too tall".into()))?,
    );
    let rgb = i420_to_rgb(&frame);
    let mut out = Vec::with_capacity(rgb.len() / 8);
    jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| CameraError::Jpeg(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::{EncoderConfig, H264Encoder};
    use crate::testsrc::TestPattern;

    #[test]
    fn snapshot_of_an_encoded_gop_is_a_jpeg_of_the_right_size() {
        let (w, h) = (320, 240);
        let mut enc = H264Encoder::new(EncoderConfig {
            width: w,
            height: h,
            fps: 30.0,
            bitrate_bps: 800_000,
            keyint: 30,
        })
        .unwrap();
        let mut tp = TestPattern::new(w, h).unwrap();
        let gop: Vec<AccessUnit> = (0..5)
            .map(|n| {
                enc.encode(tp.render(n, 0), i64::from(n) * 3000, 0)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let jpeg = snapshot_jpeg(&gop, 80).unwrap();
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let mut dec = jpeg_decoder::Decoder::new(&jpeg[..]);
        let pixels = dec.decode().unwrap();
        let info = dec.info().unwrap();
        assert_eq!((u32::from(info.width), u32::from(info.height)), (w, h));
        assert_eq!(pixels.len(), (w * h * 3) as usize);
        // Without its key frame the GOP is refused rather than decoded into garbage.
        assert!(matches!(
            snapshot_jpeg(&gop[1..], 80),
            Err(CameraError::NoPicture(_))
        ));
        assert!(matches!(
            snapshot_jpeg(&[], 80),
            Err(CameraError::NoPicture(_))
        ));
    }
}
