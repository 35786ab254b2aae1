//! Pixel-format conversions from what capture devices deliver (YUYV, NV12, MJPEG) to
//! I420, and I420 to RGB for JPEG snapshots. Colour maths: BT.601, limited range, in
//! 8-bit fixed point (the coefficients of ITU-R BT.601 scaled by 256).

use crate::frame::{check_size, I420Frame};
use crate::CameraError;

/// Largest decoded JPEG we accept (bytes of RGB), so a hostile frame header cannot make
/// us allocate without bound: 8192x8192x3.
const MAX_JPEG_PIXELS_BYTES: usize = 8192 * 8192 * 3;

fn need(src: &[u8], len: usize, what: &str) -> Result<(), CameraError> {
    if src.len() < len {
        return Err(CameraError::InvalidPicture(format!(
            "{what} buffer has {} bytes, needs {len}",
            src.len()
        )));
    }
    Ok(())
}

/// YUYV (YUY2, packed 4:2:2: Y0 U Y1 V per two pixels, rows `2*width` bytes) to I420.
/// Chroma of each row pair is averaged to get 4:2:0.
pub fn yuyv_to_i420(src: &[u8], width: u32, height: u32) -> Result<I420Frame, CameraError> {
    check_size(width, height)?;
    let (w, h) = (width as usize, height as usize);
    need(src, w * h * 2, "YUYV")?;
    let mut f = I420Frame::black(width, height)?;
    for (row, line) in src.chunks_exact(w * 2).take(h).enumerate() {
        for (x, px) in line.chunks_exact(2).enumerate() {
            f.y[row * w + x] = px[0];
        }
    }
    let cw = w / 2;
    for cy in 0..h / 2 {
        let top = &src[2 * cy * w * 2..(2 * cy + 1) * w * 2];
        let bottom = &src[(2 * cy + 1) * w * 2..(2 * cy + 2) * w * 2];
        for (cx, (t, b)) in top.chunks_exact(4).zip(bottom.chunks_exact(4)).enumerate() {
            f.u[cy * cw + cx] = avg2(t[1], b[1]);
            f.v[cy * cw + cx] = avg2(t[3], b[3]);
        }
    }
    Ok(f)
}

/// NV12 (a luma plane, then one plane of interleaved Cb Cr at quarter size) to I420.
pub fn nv12_to_i420(src: &[u8], width: u32, height: u32) -> Result<I420Frame, CameraError> {
    check_size(width, height)?;
    let luma = width as usize * height as usize;
    need(src, luma + luma / 2, "NV12")?;
    let mut f = I420Frame::black(width, height)?;
    f.y.copy_from_slice(&src[..luma]);
    for (i, uv) in src[luma..luma + luma / 2].chunks_exact(2).enumerate() {
        f.u[i] = uv[0];
        f.v[i] = uv[1];
    }
    Ok(f)
}

/// Decodes one Motion-JPEG frame to I420. Odd sizes lose their last column/row. Frames
/// without Huffman tables (usual for webcams) get the standard MJPEG tables.
pub fn mjpeg_to_i420(jpeg: &[u8]) -> Result<I420Frame, CameraError> {
    let mut dec = jpeg_decoder::Decoder::new(jpeg);
    dec.set_max_decoding_buffer_size(MAX_JPEG_PIXELS_BYTES);
    let pixels = dec.decode().map_err(|e| CameraError::Jpeg(e.to_string()))?;
    let info = dec
        .info()
        .ok_or_else(|| CameraError::Jpeg("no frame header".into()))?;
    let (w, h) = (usize::from(info.width), usize::from(info.height));
    let gray = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => false,
        jpeg_decoder::PixelFormat::L8 => true,
        other => {
            return Err(CameraError::Jpeg(format!(
                "unsupported pixel format {other:?}"
            )))
        }
    };
    let bpp = if gray { 1 } else { 3 };
    need(&pixels, w * h * bpp, "decoded JPEG")?;
    let (ew, eh) = (w & !1, h & !1);
    let mut f = I420Frame::black(ew as u32, eh as u32)?;
    let rgb_at = |x: usize, y: usize| -> (i32, i32, i32) {
        let i = (y * w + x) * bpp;
        if gray {
            let l = i32::from(pixels[i]);
            (l, l, l)
        } else {
            (
                i32::from(pixels[i]),
                i32::from(pixels[i + 1]),
                i32::from(pixels[i + 2]),
            )
        }
    };
    for y in 0..eh {
        for x in 0..ew {
            let (r, g, b) = rgb_at(x, y);
            f.y[y * ew + x] = clamp(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16);
        }
    }
    for cy in 0..eh / 2 {
        for cx in 0..ew / 2 {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = rgb_at(2 * cx + dx, 2 * cy + dy);
                r += p.0;
                g += p.1;
                b += p.2;
            }
            let (r, g, b) = ((r + 2) / 4, (g + 2) / 4, (b + 2) / 4);
            f.u[cy * (ew / 2) + cx] = clamp(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
            f.v[cy * (ew / 2) + cx] = clamp(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
        }
    }
    Ok(f)
}

/// I420 to packed RGB (3 bytes per pixel), e.g. for a JPEG encoder.
pub fn i420_to_rgb(frame: &I420Frame) -> Vec<u8> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut out = vec![0u8; w * h * 3];
    for (y, row) in out.chunks_exact_mut(w * 3).enumerate() {
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let c = i32::from(frame.y.get(y * w + x).copied().unwrap_or(16)) - 16;
            let ci = (y / 2) * (w / 2) + x / 2;
            let d = i32::from(frame.u.get(ci).copied().unwrap_or(128)) - 128;
            let e = i32::from(frame.v.get(ci).copied().unwrap_or(128)) - 128;
            px[0] = clamp((298 * c + 409 * e + 128) >> 8);
            px[1] = clamp((298 * c - 100 * d - 208 * e + 128) >> 8);
            px[2] = clamp((298 * c + 516 * d + 128) >> 8);
        }
    }
    out
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

fn avg2(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_known_values() {
        // 4x2: row 0 = Y 10 20 30 40, U 100/110, V 200/210; row 1 = Y 50.., U 102/112, V 202/212.
        let src = [
            10, 100, 20, 200, 30, 110, 40, 210, //
            50, 102, 60, 202, 70, 112, 80, 212,
        ];
        let f = yuyv_to_i420(&src, 4, 2).unwrap();
        assert_eq!(f.y, vec![10, 20, 30, 40, 50, 60, 70, 80]);
        assert_eq!(f.u, vec![101, 111]);
        assert_eq!(f.v, vec![201, 211]);
        assert!(yuyv_to_i420(&src[..15], 4, 2).is_err());
        assert!(yuyv_to_i420(&src, 3, 2).is_err());
    }

    #[test]
    fn nv12_known_values() {
        let src = [1, 2, 3, 4, 5, 6, 7, 8, 90, 91, 92, 93];
        let f = nv12_to_i420(&src, 4, 2).unwrap();
        assert_eq!(f.y, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(f.u, vec![90, 92]);
        assert_eq!(f.v, vec![91, 93]);
        assert!(nv12_to_i420(&src[..11], 4, 2).is_err());
    }

    #[test]
    fn rgb_primaries_map_to_bt601_values() {
        let mut f = I420Frame::black(2, 2).unwrap();
        f.y = vec![235; 4];
        assert!(i420_to_rgb(&f).iter().all(|&c| c == 255));
        f.y = vec![16; 4];
        assert!(i420_to_rgb(&f).iter().all(|&c| c == 0));
        // BT.601 red: Y 81, Cb 90, Cr 240.
        f.y = vec![81; 4];
        f.u = vec![90];
        f.v = vec![240];
        let rgb = i420_to_rgb(&f);
        assert!(
            rgb[0] >= 250 && rgb[1] <= 5 && rgb[2] <= 5,
            "{:?}",
            &rgb[..3]
        );
    }

    #[test]
    fn mjpeg_decodes_a_jpeg_made_by_jpeg_encoder() {
        // Left half red, right half blue, 32x16, 4:2:0 (the encoder's default sampling).
        let (w, h) = (32usize, 16usize);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for _ in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(if x < w / 2 {
                    &[255, 0, 0]
                } else {
                    &[0, 0, 255]
                });
            }
        }
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95)
            .encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        let f = mjpeg_to_i420(&jpeg).unwrap();
        assert_eq!((f.width, f.height), (32, 16));
        let (y_red, y_blue) = (f.y[4 * w + 2], f.y[4 * w + 29]);
        assert!((y_red as i32 - 81).abs() <= 4, "red luma {y_red}");
        assert!((y_blue as i32 - 41).abs() <= 4, "blue luma {y_blue}");
        let cw = w / 2;
        assert!(f.v[2 * cw + 1] > 220, "red Cr {}", f.v[2 * cw + 1]);
        assert!(f.u[2 * cw + 14] > 220, "blue Cb {}", f.u[2 * cw + 14]);
        assert!(mjpeg_to_i420(&jpeg[..jpeg.len() / 2]).is_err());
        assert!(mjpeg_to_i420(b"not a jpeg").is_err());
    }
}
