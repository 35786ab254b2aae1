//! Scripted synthetic scenes for tests and benchmarks: a static textured background with sensor
//! noise, rectangles that enter and leave at known times, and global brightness steps.
//!
//! Deterministic: the same script renders the same bytes (the noise is a hash of the frame time
//! and the pixel position), so tests can assert exact times.

/// A rectangle that is visible from `enter_us` (inclusive) to `leave_us` (exclusive), moving at
/// a constant velocity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneObject {
    /// First frame time it is visible, µs.
    pub enter_us: i64,
    /// First frame time it is gone again, µs.
    pub leave_us: i64,
    /// Top-left corner at `enter_us`, normalized `(x, y)`.
    pub pos: (f32, f32),
    /// Size, normalized `(width, height)`.
    pub size: (f32, f32),
    /// Velocity, normalized units per second `(vx, vy)`.
    pub velocity: (f32, f32),
    /// Luma of the rectangle.
    pub luma: u8,
}

/// From `at_us` on, every pixel `v` becomes `v * gain + offset` (before noise), like lights
/// switching on or an exposure change. Later steps replace earlier ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrightnessStep {
    /// Time of the step, µs.
    pub at_us: i64,
    /// Multiplicative part.
    pub gain: f32,
    /// Additive part, luma levels.
    pub offset: f32,
}

/// A scripted scene rendering luma planes of `width` x `height` with rows `stride` bytes apart.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Width, pixels.
    pub width: usize,
    /// Height, pixels.
    pub height: usize,
    /// Row pitch of rendered planes, bytes (>= width; padding is filled with 0xEE).
    pub stride: usize,
    /// Peak amplitude of the per-pixel noise, luma levels (uniform in `-noise..=noise`).
    pub noise: u8,
    /// Objects of the script.
    pub objects: Vec<SceneObject>,
    /// Brightness steps of the script, in time order.
    pub brightness: Vec<BrightnessStep>,
    background: Vec<u8>,
}

/// SplitMix64 finalizer: a good hash of the frame time and pixel index.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Scene {
    /// A static scene with a textured background (checker, gradient and fine pattern, luma
    /// about 50..=200), noise of ±3 levels, and rows padded to a multiple of 32 bytes.
    pub fn new(width: usize, height: usize) -> Self {
        let mut background = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let checker = ((x / 24 + y / 24) % 2) as u32 * 50;
                let gradient = (x * 60 / width.max(1)) as u32;
                let fine = ((x * 7 + y * 13) % 32) as u32;
                background.push((50 + checker + gradient + fine).min(255) as u8);
            }
        }
        Self {
            width,
            height,
            stride: width.div_ceil(32) * 32,
            noise: 3,
            objects: Vec::new(),
            brightness: Vec::new(),
            background,
        }
    }

    /// Renders the frame at `ts_us` into `out` (resized to `stride * height`).
    pub fn render(&self, ts_us: i64, out: &mut Vec<u8>) {
        out.clear();
        out.resize(self.stride * self.height, 0xEE);
        let step = self
            .brightness
            .iter()
            .rev()
            .find(|s| s.at_us <= ts_us)
            .map_or((1.0, 0.0), |s| (s.gain, s.offset));
        let rects: Vec<(usize, usize, usize, usize, u8)> = self
            .objects
            .iter()
            .filter(|o| (o.enter_us..o.leave_us).contains(&ts_us))
            .map(|o| {
                let t = (ts_us - o.enter_us) as f32 / 1e6;
                let x = o.pos.0 + o.velocity.0 * t;
                let y = o.pos.1 + o.velocity.1 * t;
                let px = |v: f32, n: usize| ((v.clamp(0.0, 1.0)) * n as f32) as usize;
                (
                    px(x, self.width),
                    px(y, self.height),
                    px(x + o.size.0, self.width),
                    px(y + o.size.1, self.height),
                    o.luma,
                )
            })
            .collect();
        let amp = i32::from(self.noise);
        let seed = mix(ts_us as u64);
        for y in 0..self.height {
            let row = &mut out[y * self.stride..y * self.stride + self.width];
            for (x, px) in row.iter_mut().enumerate() {
                let mut v = self.background[y * self.width + x];
                for &(x0, y0, x1, y1, luma) in &rects {
                    if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
                        v = luma;
                    }
                }
                let lit = f32::from(v) * step.0 + step.1;
                let n = if amp > 0 {
                    let h = mix(seed ^ ((y * self.width + x) as u64));
                    (h % (2 * amp as u64 + 1)) as i32 - amp
                } else {
                    0
                };
                *px = (lit.round() as i32 + n).clamp(0, 255) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_deterministically_with_objects_and_steps() {
        let mut s = Scene::new(64, 36);
        s.noise = 0;
        s.objects.push(SceneObject {
            enter_us: 1_000_000,
            leave_us: 2_000_000,
            pos: (0.0, 0.0),
            size: (0.25, 0.5),
            velocity: (0.0, 0.0),
            luma: 7,
        });
        s.brightness.push(BrightnessStep {
            at_us: 3_000_000,
            gain: 1.0,
            offset: 10.0,
        });
        let (mut a, mut b) = (Vec::new(), Vec::new());
        s.render(0, &mut a);
        assert_eq!(a.len(), 64 * 36);
        assert_ne!(a[0], 7);
        s.render(1_000_000, &mut b);
        assert_eq!((b[0], b[15], b[16], b[17 * 64]), (7, 7, a[16], 7));
        assert_eq!(b[18 * 64], a[18 * 64]);
        s.render(3_000_000, &mut b);
        assert_eq!(b[0], a[0] + 10);
    }

    #[test]
    fn noise_is_bounded_and_varies_between_frames() {
        let s = Scene::new(48, 16);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        s.render(0, &mut a);
        s.render(200_000, &mut b);
        assert_ne!(a, b);
        assert!(a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= 6));
        assert!(a[48..s.stride].iter().all(|&p| p == 0xEE), "padding");
    }
}
