//! Box-filter downscaling of a luma plane to the small working grid.
//!
//! Detection runs on a grid of about 160 cells across: motion of a person or a car spans many
//! cells, sensor noise averages out (a 4x4 box divides its standard deviation by 4), and every
//! later stage costs per cell, not per pixel.
//!
//! Cell `c` covers source columns `c * W / w .. (c + 1) * W / w` (integer division), likewise for
//! rows, and takes the rounded mean of those pixels. For integer ratios (640 → 160) every box has
//! the same size and the result is the exact rounded mean; otherwise boxes differ by one pixel.

use crate::error::FrameError;

/// Maps a luma plane of a fixed size onto a smaller working grid by averaging (box filter).
///
/// Box boundaries and the accumulator row are computed once in [`Downscaler::new`], so
/// [`Downscaler::run`] allocates nothing.
#[derive(Debug, Clone)]
pub struct Downscaler {
    src_width: usize,
    src_height: usize,
    /// `grid_width + 1` column boundaries in source pixels.
    cols: Vec<usize>,
    /// `grid_height + 1` row boundaries in source rows.
    rows: Vec<usize>,
    /// Horizontal box size when it is the same for every cell (the common 640 → 160 case).
    uniform_fx: Option<usize>,
    /// One accumulator per cell of the current grid row. `u32`: a 4K source gives 24x24 boxes,
    /// whose sum (146,880) overflows `u16`.
    acc: Vec<u32>,
}

impl Downscaler {
    /// A downscaler from `src_width` x `src_height` to `grid_width` x `grid_height`.
    ///
    /// The grid is clamped to the source size (it never upscales) and to at least 1x1.
    pub fn new(src_width: usize, src_height: usize, grid_width: usize, grid_height: usize) -> Self {
        let src_width = src_width.max(1);
        let src_height = src_height.max(1);
        let gw = grid_width.clamp(1, src_width);
        let gh = grid_height.clamp(1, src_height);
        let cols: Vec<usize> = (0..=gw).map(|i| i * src_width / gw).collect();
        let rows: Vec<usize> = (0..=gh).map(|i| i * src_height / gh).collect();
        let uniform_fx = src_width.is_multiple_of(gw).then_some(src_width / gw);
        Self {
            src_width,
            src_height,
            cols,
            rows,
            uniform_fx,
            acc: vec![0; gw],
        }
    }

    /// Grid width in cells.
    pub fn grid_width(&self) -> usize {
        self.cols.len() - 1
    }

    /// Grid height in cells.
    pub fn grid_height(&self) -> usize {
        self.rows.len() - 1
    }

    /// Checks that `luma` with `stride` holds a whole plane of the configured size.
    pub fn check(&self, luma: &[u8], stride: usize) -> Result<(), FrameError> {
        if stride < self.src_width {
            return Err(FrameError::Stride {
                stride,
                width: self.src_width,
            });
        }
        // The last row need not be padded to the stride (decoders often crop it).
        let needed = stride
            .checked_mul(self.src_height - 1)
            .and_then(|n| n.checked_add(self.src_width))
            .unwrap_or(usize::MAX);
        if luma.len() < needed {
            return Err(FrameError::TooShort {
                got: luma.len(),
                needed,
            });
        }
        Ok(())
    }

    /// Averages `luma` (rows `stride` bytes apart) into `out`, row-major, one byte per cell.
    ///
    /// `out` must hold `grid_width * grid_height` bytes; extra bytes are left alone.
    pub fn run(&mut self, luma: &[u8], stride: usize, out: &mut [u8]) -> Result<(), FrameError> {
        self.check(luma, stride)?;
        let gw = self.grid_width();
        for (r, out_row) in self.rows.windows(2).zip(out.chunks_mut(gw)) {
            let (y0, y1) = (r[0], r[1]);
            self.acc.fill(0);
            for y in y0..y1 {
                let start = y * stride;
                // In bounds: `check` proved stride * (H - 1) + W <= len and y < H.
                let line = luma.get(start..start + self.src_width).unwrap_or(&[]);
                match self.uniform_fx {
                    Some(4) => {
                        for (a, px) in self.acc.iter_mut().zip(line.chunks_exact(4)) {
                            *a += u32::from(px[0])
                                + u32::from(px[1])
                                + u32::from(px[2])
                                + u32::from(px[3]);
                        }
                    }
                    Some(fx) => {
                        for (a, px) in self.acc.iter_mut().zip(line.chunks_exact(fx)) {
                            *a += px.iter().map(|&p| u32::from(p)).sum::<u32>();
                        }
                    }
                    None => {
                        for (a, c) in self.acc.iter_mut().zip(self.cols.windows(2)) {
                            let px = line.get(c[0]..c[1]).unwrap_or(&[]);
                            *a += px.iter().map(|&p| u32::from(p)).sum::<u32>();
                        }
                    }
                }
            }
            let box_h = (y1 - y0) as u32;
            for ((o, &a), c) in out_row.iter_mut().zip(&self.acc).zip(self.cols.windows(2)) {
                let n = box_h * (c[1] - c[0]) as u32;
                // Rounded mean; n >= 1 because the grid never exceeds the source size.
                *o = ((a + n / 2) / n.max(1)) as u8;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(w: usize, h: usize, stride: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut v = vec![0xAA; stride * h];
        for y in 0..h {
            for x in 0..w {
                v[y * stride + x] = f(x, y);
            }
        }
        v
    }

    #[test]
    fn integer_ratio_is_the_exact_rounded_box_mean() {
        // 8x4 → 2x1: boxes of 4x4 pixels.
        let p = plane(8, 4, 8, |x, y| (x * 10 + y) as u8);
        let mut d = Downscaler::new(8, 4, 2, 1);
        let mut out = [0u8; 2];
        d.run(&p, 8, &mut out).unwrap();
        // Left box: x 0..4 → mean 15, y 0..4 → mean 1.5: 16.5 → rounds to 17 (half up).
        // Right box: x 4..8 → mean 55 + 1.5 = 56.5 → 57.
        assert_eq!(out, [17, 57]);
    }

    #[test]
    fn uniform_plane_stays_uniform_for_any_ratio() {
        for (w, h, gw, gh) in [
            (640, 360, 160, 90),
            (641, 359, 160, 90),
            (1920, 1080, 160, 90),
            (7, 5, 3, 2),
        ] {
            let p = plane(w, h, w + 13, |_, _| 77);
            let mut d = Downscaler::new(w, h, gw, gh);
            let mut out = vec![0u8; gw * gh];
            d.run(&p, w + 13, &mut out).unwrap();
            assert!(out.iter().all(|&v| v == 77), "{w}x{h}");
        }
    }

    #[test]
    fn stride_padding_is_ignored() {
        // Padding bytes are 0xAA; a plane of zeros must stay zero.
        let p = plane(640, 360, 704, |_, _| 0);
        let mut d = Downscaler::new(640, 360, 160, 90);
        let mut out = vec![1u8; 160 * 90];
        d.run(&p, 704, &mut out).unwrap();
        assert!(out.iter().all(|&v| v == 0));
    }

    #[test]
    fn a_bright_block_lands_in_exactly_its_cells() {
        // 640x360 → 160x90: pixels 40..48 x 20..28 are cells 10..12 x 5..7.
        let p = plane(640, 360, 640, |x, y| {
            if (40..48).contains(&x) && (20..28).contains(&y) {
                200
            } else {
                10
            }
        });
        let mut d = Downscaler::new(640, 360, 160, 90);
        assert_eq!((d.grid_width(), d.grid_height()), (160, 90));
        let mut out = vec![0u8; 160 * 90];
        d.run(&p, 640, &mut out).unwrap();
        for cy in 0..90 {
            for cx in 0..160 {
                let want = if (10..12).contains(&cx) && (5..7).contains(&cy) {
                    200
                } else {
                    10
                };
                assert_eq!(out[cy * 160 + cx], want, "cell {cx},{cy}");
            }
        }
    }

    #[test]
    fn non_integer_ratio_uses_variable_boxes() {
        // 5 → 2 columns: boxes 0..2 and 2..5.
        let p = plane(5, 1, 5, |x, _| [0, 10, 20, 30, 40][x]);
        let mut d = Downscaler::new(5, 1, 2, 1);
        let mut out = [0u8; 2];
        d.run(&p, 5, &mut out).unwrap();
        assert_eq!(out, [5, 30]);
    }

    #[test]
    fn short_buffers_and_small_strides_are_errors_not_panics() {
        let mut d = Downscaler::new(640, 360, 160, 90);
        let mut out = vec![0u8; 160 * 90];
        assert_eq!(
            d.run(&[0; 100], 640, &mut out),
            Err(FrameError::TooShort {
                got: 100,
                needed: 640 * 360
            })
        );
        assert_eq!(
            d.run(&vec![0; 640 * 360], 639, &mut out),
            Err(FrameError::Stride {
                stride: 639,
                width: 640
            })
        );
        assert!(d.run(&vec![0; 640 * 360], usize::MAX, &mut out).is_err());
        // The last row need not be padded.
        assert!(d.run(&vec![0; 700 * 359 + 640], 700, &mut out).is_ok());
    }

    #[test]
    fn never_upscales() {
        let d = Downscaler::new(100, 50, 160, 90);
        assert_eq!((d.grid_width(), d.grid_height()), (100, 50));
    }
}
