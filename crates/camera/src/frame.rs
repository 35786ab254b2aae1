//! Raw pictures in I420 (planar YUV 4:2:0), the form the encoder takes.

use crate::CameraError;

/// A raw picture in I420: a full-resolution luma plane followed by two quarter-size
/// chroma planes, each tightly packed (stride = plane width). Width and height are even
/// so that every chroma sample covers exactly 2x2 luma samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Cb, `width/2 * height/2` bytes.
    pub u: Vec<u8>,
    /// Cr, `width/2 * height/2` bytes.
    pub v: Vec<u8>,
}

/// Checks that a picture size is usable: even, non-zero and at most 8192 on a side (so that
/// plane sizes cannot overflow and a hostile header cannot make us allocate gigabytes).
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), CameraError> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(CameraError::InvalidPicture(format!(
            "size {width}x{height} must be non-zero and even"
        )));
    }
    if width > 8192 || height > 8192 {
        return Err(CameraError::InvalidPicture(format!(
            "size {width}x{height} exceeds 8192x8192"
        )));
    }
    Ok(())
}

impl I420Frame {
    /// A black picture (Y=16, Cb=Cr=128, i.e. BT.601 limited-range black).
    pub fn black(width: u32, height: u32) -> Result<Self, CameraError> {
        check_size(width, height)?;
        let luma = width as usize * height as usize;
        Ok(I420Frame {
            width,
            height,
            y: vec![16; luma],
            u: vec![128; luma / 4],
            v: vec![128; luma / 4],
        })
    }

    /// Wraps planes, checking that their lengths match the size.
    pub fn from_planes(
        width: u32,
        height: u32,
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
    ) -> Result<Self, CameraError> {
        check_size(width, height)?;
        let luma = width as usize * height as usize;
        if y.len() != luma || u.len() != luma / 4 || v.len() != luma / 4 {
            return Err(CameraError::InvalidPicture(format!(
                "plane lengths {}/{}/{} do not match {width}x{height}",
                y.len(),
                u.len(),
                v.len()
            )));
        }
        Ok(I420Frame {
            width,
            height,
            y,
            u,
            v,
        })
    }

    /// Returns a copy scaled to `width` x `height` (both rounded down to even, at least 2).
    ///
    /// Each output sample is the mean of the box of input samples it covers (an area
    /// filter): exact for the 2:1 main→sub downscale, free of the aliasing a point sampler
    /// would show on fine detail, and nearest-neighbour when enlarging.
    pub fn scale_to(&self, width: u32, height: u32) -> I420Frame {
        let width = (width & !1).max(2);
        let height = (height & !1).max(2);
        let mut out = I420Frame {
            width,
            height,
            y: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
        };
        self.scale_into(&mut out);
        out
    }

    /// Like [`I420Frame::scale_to`], into `out` (its size says the target), reusing its buffers.
    pub fn scale_into(&self, out: &mut I420Frame) {
        let (sw, sh) = (self.width as usize, self.height as usize);
        let (dw, dh) = (out.width as usize, out.height as usize);
        scale_plane(&self.y, sw, sh, &mut out.y, dw, dh);
        scale_plane(&self.u, sw / 2, sh / 2, &mut out.u, dw / 2, dh / 2);
        scale_plane(&self.v, sw / 2, sh / 2, &mut out.v, dw / 2, dh / 2);
    }
}

/// Source ranges `[start, end)` covered by each destination index.
fn box_ranges(src: usize, dst: usize) -> Vec<(usize, usize)> {
    (0..dst)
        .map(|d| {
            let start = d * src / dst;
            let end = ((d + 1) * src / dst).max(start + 1).min(src);
            (start.min(src.saturating_sub(1)), end)
        })
        .collect()
}

fn scale_plane(src: &[u8], sw: usize, sh: usize, dst: &mut Vec<u8>, dw: usize, dh: usize) {
    dst.clear();
    dst.resize(dw * dh, 0);
    if sw == 0 || sh == 0 || src.len() < sw * sh {
        return;
    }
    let xs = box_ranges(sw, dw);
    let ys = box_ranges(sh, dh);
    // One row of column sums per output row keeps the inner loop to additions.
    let mut sums = vec![0u32; sw];
    for (dy, &(y0, y1)) in ys.iter().enumerate() {
        sums.iter_mut().for_each(|s| *s = 0);
        for row in src.chunks_exact(sw).take(y1).skip(y0) {
            for (s, &p) in sums.iter_mut().zip(row) {
                *s += u32::from(p);
            }
        }
        let rows = (y1 - y0) as u32;
        let out_row = &mut dst[dy * dw..(dy + 1) * dw];
        for (o, &(x0, x1)) in out_row.iter_mut().zip(&xs) {
            let total: u32 = sums[x0..x1].iter().sum();
            let n = rows * (x1 - x0) as u32;
            *o = ((total + n / 2) / n) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_odd_and_empty_sizes() {
        assert!(I420Frame::black(3, 2).is_err());
        assert!(I420Frame::black(0, 2).is_err());
        assert!(I420Frame::black(10_000, 2).is_err());
        assert!(I420Frame::from_planes(4, 2, vec![0; 8], vec![0; 2], vec![0; 1]).is_err());
    }

    #[test]
    fn halving_averages_each_2x2_box() {
        let mut f = I420Frame::black(4, 4).unwrap();
        // Luma rows: a 2x2 box of 0,0,100,100 averages to 50, one of 200s stays 200.
        f.y = vec![
            0, 100, 200, 200, //
            0, 100, 200, 200, //
            10, 10, 30, 30, //
            20, 20, 40, 40,
        ];
        f.u = vec![10, 20, 30, 40];
        f.v = vec![90, 90, 90, 90];
        let s = f.scale_to(2, 2);
        assert_eq!((s.width, s.height), (2, 2));
        assert_eq!(s.y, vec![50, 200, 15, 35]);
        assert_eq!(s.u, vec![25]);
        assert_eq!(s.v, vec![90]);
    }

    #[test]
    fn downscale_1280x720_to_640x360_keeps_a_flat_picture_flat_and_rounds_odd_sizes() {
        let mut f = I420Frame::black(1280, 720).unwrap();
        f.y.iter_mut().for_each(|p| *p = 77);
        let s = f.scale_to(640, 360);
        assert_eq!(s.y.len(), 640 * 360);
        assert!(s.y.iter().all(|&p| p == 77));
        assert_eq!(s.u.len(), 320 * 180);
        let odd = f.scale_to(321, 241);
        assert_eq!((odd.width, odd.height), (320, 240));
    }

    #[test]
    fn upscale_repeats_samples() {
        let mut f = I420Frame::black(2, 2).unwrap();
        f.y = vec![1, 2, 3, 4];
        let s = f.scale_to(4, 4);
        assert_eq!(s.y, vec![1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    }
}
