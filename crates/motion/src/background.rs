//! Running-average background model with a noise-adaptive threshold and global brightness
//! compensation.
//!
//! # Method
//! Per working-grid cell the model keeps a running average `B` of luma in fixed point (Q8 in a
//! `u16`). For each new frame `F`:
//!
//! 1. **Global shift.** `m` = median over unmasked cells of `F - B`. The median ignores anything
//!    covering less than half of the frame, so a walking person does not move it, while lights
//!    switching on, a cloud or auto-exposure shift every cell and do.
//! 2. **Noise.** `mad` = median of `|F - B - m|`, the median absolute deviation: on a static scene
//!    it measures sensor noise (and compression noise) of this frame, whatever the gain.
//! 3. **Threshold.** `T = max(base, noise_factor * max(mad, noise))`, where `base` comes from the
//!    sensitivity and `noise` is a slow running average of past `mad`s. A cell is *changed* when
//!    `|F - B - m| > T`: differences are taken relative to the global shift.
//! 4. **Re-learn.** The frame is taken as a global change, not motion, when
//!    - `|m| > max(base, noise_factor * noise)`: a uniform shift larger than what counts as
//!      motion (lights on, IR switch), judged against the usual noise, not this frame's, or
//!    - `mad > 2 * noise + 2`: the whole
//!      scene changed non-uniformly (a gain step that stretches contrast, an IR-cut filter
//!      flipping, the camera moved) — real noise does not double from one frame to the next, or
//!    - more than `relearn_fraction` of the cells changed even after compensation.
//!
//!    Then the background is replaced by `F` and no cell is changed in this frame.
//! 5. **Update.** `B += rate * (F - B)`, with a slower rate on changed cells so that a moving
//!    object is not learned into the background (no ghost when it leaves) while an object that
//!    stops for good (a parked car) is absorbed after a while.
//!
//! # Limits
//! - Motion covering half of the frame or more moves the median and is taken for an illumination
//!   change: it re-learns instead of reporting motion. Cameras so close that people fill the
//!   frame need another method.
//! - Local light changes (a lamp lighting one corner, headlights sweeping a wall, moving shadows)
//!   are not global and are reported as motion; mask such areas.
//! - The noise estimate is global: a patch much noisier than the rest (leaves, water, a TV) can
//!   still trigger; mask it.
//! - A global change while an object is in view learns the object into the background; when it
//!   leaves, its "ghost" is reported as motion until it is learned away.

/// Background model parameters, already validated (see [`crate::MotionConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackgroundParams {
    /// Smallest difference (luma levels, 0..=255) that counts as change.
    pub base_threshold: u8,
    /// Multiple of the frame's median absolute deviation that the threshold never goes below.
    pub noise_factor: f32,
    /// Learning rate per frame for unchanged cells, 0 < rate <= 1.
    pub learning_rate: f32,
    /// Learning rate per frame for changed cells (usually much smaller).
    pub foreground_rate: f32,
    /// Fraction of unmasked cells that, when changed after compensation, means a global change.
    pub relearn_fraction: f32,
}

/// What the model saw in one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameStats {
    /// Median luma difference frame − background over unmasked cells (the global shift).
    pub offset: i32,
    /// Median absolute deviation of the compensated difference (noise estimate, luma levels).
    pub noise: u32,
    /// Threshold used for this frame, luma levels.
    pub threshold: u32,
    /// Cells marked changed (0 when re-learned).
    pub changed: u32,
    /// Unmasked cells considered.
    pub active: u32,
    /// The frame was taken as a global change and the background re-learned from it.
    pub relearned: bool,
    /// The frame initialised the model (the first frame after creation or reset).
    pub initialised: bool,
}

/// Running-average background over the working grid. Allocates only in [`BackgroundModel::new`].
#[derive(Debug, Clone)]
pub struct BackgroundModel {
    /// Background luma per cell, Q8 fixed point (value * 256).
    bg: Vec<u16>,
    ready: bool,
    /// Learning rates, Q16.
    rate: i64,
    fg_rate: i64,
    params: BackgroundParams,
    /// Running average of the per-frame median absolute deviation. It starts at 0, so a very
    /// noisy camera re-learns for its first two or three frames while the average catches up.
    noise_avg: f32,
    /// Histogram of `F - B` over -255..=255, index `d + 255`.
    hist: Vec<u32>,
    /// Per-cell base thresholds replacing `params.base_threshold` (zones with their own
    /// sensitivity); empty: the same base everywhere.
    cell_base: Vec<u8>,
}

fn q16(rate: f32) -> i64 {
    // At least 1/65536 so that the model never freezes.
    ((f64::from(rate) * 65536.0).round() as i64).clamp(1, 65536)
}

impl BackgroundModel {
    /// A model for `cells` cells; the first frame given to [`BackgroundModel::update`] initialises it.
    pub fn new(cells: usize, params: BackgroundParams) -> Self {
        Self {
            bg: vec![0; cells],
            ready: false,
            rate: q16(params.learning_rate),
            fg_rate: q16(params.foreground_rate),
            params,
            noise_avg: 0.0,
            hist: vec![0; 511],
            cell_base: Vec::new(),
        }
    }

    /// Gives each cell its own base threshold (one entry per cell; any other length restores
    /// the common base). The noise-adaptive part still applies on top, and global changes are
    /// still judged with the common base.
    pub fn set_cell_base(&mut self, bases: Vec<u8>) {
        self.cell_base = if bases.len() == self.bg.len() {
            bases
        } else {
            Vec::new()
        };
    }

    /// Forgets the background; the next frame initialises it again.
    pub fn reset(&mut self) {
        self.ready = false;
        self.noise_avg = 0.0;
    }

    /// Background luma of cell `i`, rounded to a level (for tests and debugging views).
    pub fn level(&self, i: usize) -> Option<u8> {
        self.bg.get(i).map(|&b| ((u32::from(b) + 128) >> 8) as u8)
    }

    /// Compares `frame` (one byte per cell) with the background, writes 1 into `changed` for changed
    /// cells and 0 elsewhere, and updates the background. Cells where `active` is false (masked)
    /// are never changed and take no part in the statistics. All slices have one entry per cell.
    pub fn update(&mut self, frame: &[u8], active: &[bool], changed: &mut [u8]) -> FrameStats {
        changed.fill(0);
        if !self.ready {
            for (b, &f) in self.bg.iter_mut().zip(frame) {
                *b = u16::from(f) << 8;
            }
            self.ready = true;
            return FrameStats {
                initialised: true,
                ..FrameStats::default()
            };
        }

        // 1. Histogram of signed differences → median (global shift).
        self.hist.fill(0);
        let mut n = 0u32;
        for ((&f, &b), &a) in frame.iter().zip(&self.bg).zip(active) {
            if a {
                let d = i32::from(f) - ((i32::from(b) + 128) >> 8);
                if let Some(h) = self.hist.get_mut((d + 255) as usize) {
                    *h += 1;
                }
                n += 1;
            }
        }
        if n == 0 {
            return FrameStats::default();
        }
        let half = n.div_ceil(2);
        let mut cum = 0u32;
        let mut median_idx = 0usize;
        for (i, &h) in self.hist.iter().enumerate() {
            cum += h;
            if cum >= half {
                median_idx = i;
                break;
            }
        }
        let offset = median_idx as i32 - 255;

        // 2. Median absolute deviation around the median, from the same histogram.
        let mut cum = self.hist.get(median_idx).copied().unwrap_or(0);
        let mut mad = 0u32;
        while cum < half && mad < 510 {
            mad += 1;
            let k = mad as usize;
            if let Some(i) = median_idx.checked_sub(k) {
                cum += self.hist.get(i).copied().unwrap_or(0);
            }
            cum += self.hist.get(median_idx + k).copied().unwrap_or(0);
        }

        // 3. Threshold and changed cells.
        let nf = self.params.noise_factor;
        let usual = u32::from(self.params.base_threshold).max((nf * self.noise_avg).ceil() as u32);
        let threshold = usual.max((nf * mad as f32).ceil() as u32);
        let t = threshold as i32;
        let mut count = 0u32;
        if self.cell_base.is_empty() {
            for (((&f, &b), &a), c) in frame
                .iter()
                .zip(&self.bg)
                .zip(active)
                .zip(changed.iter_mut())
            {
                let r = i32::from(f) - ((i32::from(b) + 128) >> 8) - offset;
                let hit = a && r.abs() > t;
                *c = u8::from(hit);
                count += u32::from(hit);
            }
        } else {
            // The noise-driven part of the threshold, without the common base.
            let noise_t =
                ((nf * self.noise_avg).ceil() as i32).max((nf * mad as f32).ceil() as i32);
            for ((((&f, &b), &a), c), &base) in frame
                .iter()
                .zip(&self.bg)
                .zip(active)
                .zip(changed.iter_mut())
                .zip(&self.cell_base)
            {
                let r = i32::from(f) - ((i32::from(b) + 128) >> 8) - offset;
                let hit = a && r.abs() > noise_t.max(i32::from(base));
                *c = u8::from(hit);
                count += u32::from(hit);
            }
        }

        // 4. Global change: re-learn instead of reporting motion.
        let noise_jump = mad as f32 > 2.0 * self.noise_avg + 2.0;
        // Slow average: a lasting change of noise moves it within a few frames, one global
        // change barely.
        self.noise_avg += 0.1 * (mad as f32 - self.noise_avg);
        let relearned = offset.unsigned_abs() > usual
            || noise_jump
            || count as f32 > self.params.relearn_fraction * n as f32;
        if relearned {
            changed.fill(0);
            for (b, &f) in self.bg.iter_mut().zip(frame) {
                *b = u16::from(f) << 8;
            }
            return FrameStats {
                offset,
                noise: mad,
                threshold,
                changed: 0,
                active: n,
                relearned: true,
                initialised: false,
            };
        }

        // 5. Selective running average, rounded, in Q8.
        for ((b, &f), &c) in self.bg.iter_mut().zip(frame).zip(changed.iter()) {
            let d = (i64::from(f) << 8) - i64::from(*b);
            let rate = if c != 0 { self.fg_rate } else { self.rate };
            let step = (d * rate + (1 << 15)) >> 16;
            *b = (i64::from(*b) + step).clamp(0, 255 << 8) as u16;
        }
        FrameStats {
            offset,
            noise: mad,
            threshold,
            changed: count,
            active: n,
            relearned: false,
            initialised: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BackgroundParams {
        BackgroundParams {
            base_threshold: 20,
            noise_factor: 6.0,
            learning_rate: 0.05,
            foreground_rate: 0.005,
            relearn_fraction: 0.35,
        }
    }

    fn texture(n: usize) -> Vec<u8> {
        (0..n).map(|i| (40 + (i * 37) % 160) as u8).collect()
    }

    #[test]
    fn first_frame_initialises_and_a_static_scene_has_no_change() {
        let f = texture(1000);
        let active = vec![true; 1000];
        let mut ch = vec![0; 1000];
        let mut m = BackgroundModel::new(1000, params());
        assert!(m.update(&f, &active, &mut ch).initialised);
        let s = m.update(&f, &active, &mut ch);
        assert_eq!(
            (s.offset, s.noise, s.changed, s.relearned),
            (0, 0, 0, false)
        );
        assert_eq!(s.threshold, 20);
    }

    #[test]
    fn a_small_object_changes_exactly_its_cells() {
        let bg = texture(1000);
        let active = vec![true; 1000];
        let mut ch = vec![0; 1000];
        let mut m = BackgroundModel::new(1000, params());
        m.update(&bg, &active, &mut ch);
        let mut f = bg.clone();
        for v in &mut f[100..150] {
            *v = v.wrapping_add(60) | 0x80;
        }
        let s = m.update(&f, &active, &mut ch);
        let want: Vec<u8> = (0..1000)
            .map(|i| u8::from((100..150).contains(&i) && f[i].abs_diff(bg[i]) > 20))
            .collect();
        assert_eq!(ch, want);
        assert!(s.changed >= 40, "{s:?}");
        assert!(!s.relearned);
    }

    #[test]
    fn a_uniform_brightness_step_relearns_and_changes_nothing() {
        let bg = texture(1000);
        let active = vec![true; 1000];
        let mut ch = vec![0; 1000];
        let mut m = BackgroundModel::new(1000, params());
        m.update(&bg, &active, &mut ch);
        let f: Vec<u8> = bg.iter().map(|&v| v + 50).collect();
        let s = m.update(&f, &active, &mut ch);
        assert_eq!(s.offset, 50);
        assert!(s.relearned);
        assert!(ch.iter().all(|&c| c == 0));
        // The new level is the background now.
        let s = m.update(&f, &active, &mut ch);
        assert_eq!((s.offset, s.changed, s.relearned), (0, 0, false));
    }

    #[test]
    fn a_small_shift_is_compensated_not_reported() {
        // Base threshold 10; noise of ±2 (mad 2, so the usual threshold is 12). A shift of 11
        // is below it (no re-learn), but raw differences reach 13: only compensation keeps
        // them from being motion.
        let p = BackgroundParams {
            base_threshold: 10,
            ..params()
        };
        let bg = texture(1000);
        let active = vec![true; 1000];
        let mut ch = vec![0; 1000];
        let mut m = BackgroundModel::new(1000, p);
        let noisy = |k: usize, shift: u8| -> Vec<u8> {
            bg.iter()
                .enumerate()
                .map(|(i, &v)| [v + 2, v, v - 2][(i * 7 + k) % 3] + shift)
                .collect()
        };
        for k in 0..60 {
            m.update(&noisy(k, 0), &active, &mut ch);
        }
        let s = m.update(&noisy(60, 11), &active, &mut ch);
        assert_eq!(s.offset, 11, "{s:?}");
        assert!(!s.relearned, "{s:?}");
        assert_eq!(s.changed, 0, "{s:?}");
    }

    #[test]
    fn a_contrast_change_over_most_cells_relearns() {
        let bg = texture(1000);
        let active = vec![true; 1000];
        let mut ch = vec![0; 1000];
        let mut m = BackgroundModel::new(1000, params());
        m.update(&bg, &active, &mut ch);
        // Gain 1.6: dark cells move little, bright ones a lot; the median cannot absorb it.
        let f: Vec<u8> = bg
            .iter()
            .map(|&v| (f32::from(v) * 1.6).min(255.0) as u8)
            .collect();
        let s = m.update(&f, &active, &mut ch);
        assert!(s.relearned, "{s:?}");
        assert!(ch.iter().all(|&c| c == 0));
    }

    #[test]
    fn a_contrast_inversion_with_no_shift_relearns() {
        let bg = texture(1000);
        let active = vec![true; 1000];
        let mut ch = vec![0; 1000];
        let mut m = BackgroundModel::new(1000, params());
        m.update(&bg, &active, &mut ch);
        assert!(!m.update(&bg, &active, &mut ch).relearned);
        // Median difference ~0, but every cell moved: the noise estimate jumps.
        let f: Vec<u8> = bg.iter().map(|&v| 239 - v).collect();
        let s = m.update(&f, &active, &mut ch);
        assert!(s.offset.abs() < 20, "{s:?}");
        assert!(s.relearned, "{s:?}");
        assert!(ch.iter().all(|&c| c == 0));
    }

    #[test]
    fn noise_raises_the_threshold() {
        let bg = texture(1000);
        let active = vec![true; 1000];
        let mut ch = vec![0; 1000];
        let mut m = BackgroundModel::new(1000, params());
        m.update(&bg, &active, &mut ch);
        // Deterministic "noise" of ±15 on every cell, moving from frame to frame: differences
        // reach 30, above the base threshold of 20. The first frames are a noise jump
        // (re-learned) until the running average catches up.
        let noisy = |k: usize| -> Vec<u8> {
            bg.iter()
                .enumerate()
                .map(|(i, &v)| [v + 15, v, v - 15][(i * 7 + k) % 3])
                .collect()
        };
        let mut relearned = 0;
        for k in 0..30 {
            relearned += usize::from(m.update(&noisy(k), &active, &mut ch).relearned);
        }
        assert!((1..=8).contains(&relearned), "{relearned}");
        for k in 30..40 {
            let s = m.update(&noisy(k), &active, &mut ch);
            assert!(!s.relearned, "{s:?}");
            assert!(s.noise >= 5 && s.threshold >= 6 * s.noise, "{s:?}");
            assert_eq!(s.changed, 0, "{s:?}");
        }
    }

    #[test]
    fn masked_cells_are_never_changed_nor_counted() {
        let bg = texture(100);
        let active: Vec<bool> = (0..100).map(|i| i >= 50).collect();
        let mut ch = vec![0; 100];
        let mut m = BackgroundModel::new(100, params());
        m.update(&bg, &active, &mut ch);
        let mut f = bg.clone();
        for v in &mut f[0..40] {
            *v = 255 - *v;
        }
        let s = m.update(&f, &active, &mut ch);
        assert_eq!((s.active, s.changed, s.relearned), (50, 0, false));
    }

    #[test]
    fn background_converges_to_a_new_static_level() {
        let active = vec![true; 4];
        let mut ch = vec![0; 4];
        let mut m = BackgroundModel::new(4, params());
        m.update(&[100; 4], &active, &mut ch);
        // A slow drift to 110, one level per frame, is compensated and learned.
        for v in 101..=110 {
            let s = m.update(&[v; 4], &active, &mut ch);
            assert_eq!(s.changed, 0);
        }
        for _ in 0..200 {
            m.update(&[110; 4], &active, &mut ch);
        }
        assert_eq!(m.level(0), Some(110));
    }
}
