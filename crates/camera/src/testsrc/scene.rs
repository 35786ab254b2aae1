//! The scripted motion scene (`--source testsrc:scene`): a still yard on which things happen
//! at known times, for motion-detection tests and the `yard` camera of `vigil demo`.
//!
//! The script loops with a period (30 s by default) on the *wall clock*: a picture captured
//! at `capture_us` shows the script at `capture_us mod period`. A test therefore knows when
//! each thing happens without talking to the camera process, and so does a person watching
//! the demo (the object walks in at :04 and :34 of every minute).
//!
//! ```text
//!  phase  0 s        4 s            11 s    15 s      21 s   24 s    28.5 s   30 s
//!         │ still    │ object walks │ still │ lights  │ still │ masked │ still │
//!         │          │ left → right │       │ +40 lum │       │ motion │       │
//! ```
//!
//! Only the walk must raise a motion event. The brightness step changes the whole picture
//! (lights on, then off: a detector must not report it) and the masked motion happens only
//! inside [`SceneScript::masked_area`], which a test configures as a mask. The burned-in
//! code and clock at the top change every frame: mask [`SceneScript::overlay_mask`] too.

/// Times of one loop of the scene, µs from the start of the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SceneScript {
    /// Length of one loop.
    pub period_us: i64,
    /// The object is visible from `.0` (inclusive) to `.1` (exclusive).
    pub object_us: (i64, i64),
    /// The picture is brighter from `.0` to `.1`.
    pub bright_us: (i64, i64),
    /// Something moves inside the masked area from `.0` to `.1`.
    pub masked_us: (i64, i64),
}

/// Luma added during the brightness step.
pub const BRIGHTNESS_STEP: u8 = 40;

/// The object: top-left corner at the start of its walk, size, speed (fractions of the
/// picture, per second).
const OBJECT_X0: f32 = 0.08;
const OBJECT_Y: f32 = 0.42;
const OBJECT_W: f32 = 0.12;
const OBJECT_H: f32 = 0.36;
const OBJECT_SPEED: f32 = 0.09;

/// The masked area (normalized x0, y0, x1, y1): upper right, clear of the object's path.
const MASKED: (f32, f32, f32, f32) = (0.70, 0.14, 0.96, 0.38);

impl Default for SceneScript {
    fn default() -> Self {
        SceneScript {
            period_us: 30_000_000,
            object_us: (4_000_000, 11_000_000),
            bright_us: (15_000_000, 21_000_000),
            masked_us: (24_000_000, 28_500_000),
        }
    }
}

impl SceneScript {
    /// Where in the loop a picture captured at `capture_us` is.
    pub fn phase(&self, capture_us: i64) -> i64 {
        capture_us.rem_euclid(self.period_us.max(1))
    }

    /// The wall-clock intervals `[enter, leave)` during which the object is visible, for
    /// every loop overlapping `[from_us, to_us)`: the motion events a detector must report.
    pub fn object_intervals(&self, from_us: i64, to_us: i64) -> Vec<(i64, i64)> {
        let p = self.period_us.max(1);
        let mut out = Vec::new();
        let mut base = from_us.div_euclid(p) * p - p;
        while base < to_us {
            let (a, b) = (base + self.object_us.0, base + self.object_us.1);
            if a < to_us && b > from_us {
                out.push((a, b));
            }
            base += p;
        }
        out
    }

    /// The area where the masked motion happens, normalized `(x0, y0, x1, y1)`.
    pub fn masked_area(&self) -> (f32, f32, f32, f32) {
        MASKED
    }

    /// The area of the burned-in code and clock for `width` x `height` pictures, normalized
    /// `(x0, y0, x1, y1)` (full width, with a margin).
    pub fn overlay_mask(&self, width: u32, height: u32) -> (f32, f32, f32, f32) {
        let bottom = super::overlay_bottom(width) as f32 / height.max(1) as f32;
        (0.0, 0.0, 1.0, (bottom + 0.02).min(1.0))
    }
}

/// Renders the scene's luma and chroma for one picture. `y`, `u`, `v` are tightly packed
/// planes of a `w` x `h` I420 frame.
pub(super) fn draw(
    script: &SceneScript,
    capture_us: i64,
    w: usize,
    h: usize,
    y: &mut [u8],
    u: &mut [u8],
    v: &mut [u8],
) {
    let t = script.phase(capture_us);
    let within = |(a, b): (i64, i64)| (a..b).contains(&t);
    let lift = if within(script.bright_us) {
        BRIGHTNESS_STEP
    } else {
        0
    };
    // Background: a still yard, textured so that the detector has something to compare
    // (fence boards up top, a lawn with a checker below), luma 60..=150 so the brightness
    // step never clips.
    for (row, line) in y.chunks_exact_mut(w).take(h).enumerate() {
        for (col, px) in line.iter_mut().enumerate() {
            let board = if row < h / 2 {
                ((col * 16 / w.max(1)) % 2) as u8 * 25
            } else {
                (((col / 40) + (row / 40)) % 2) as u8 * 30
            };
            let ramp = (col * 30 / w.max(1)) as u8;
            *px = (60 + board + ramp).saturating_add(lift);
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    for (row, (lu, lv)) in u
        .chunks_exact_mut(cw)
        .zip(v.chunks_exact_mut(cw))
        .take(ch)
        .enumerate()
    {
        // Brown fence, green lawn.
        let (cu, cv) = if row < ch / 2 { (110, 140) } else { (100, 110) };
        lu.fill(cu);
        lv.fill(cv);
    }
    let rect = |x0: f32, y0: f32, x1: f32, y1: f32| {
        let px = |f: f32, n: usize| ((f.clamp(0.0, 1.0) * n as f32) as usize) & !1;
        (px(x0, w), px(y0, h), px(x1, w), px(y1, h))
    };
    let mut fill = |(x0, y0, x1, y1): (usize, usize, usize, usize), luma: u8, cu: u8, cv: u8| {
        for row in y0..y1.min(h) {
            if let Some(s) = y.get_mut(row * w + x0..row * w + x1.min(w)) {
                s.fill(luma.saturating_add(lift));
            }
        }
        for row in y0 / 2..(y1 / 2).min(ch) {
            let (a, b) = (row * cw + x0 / 2, row * cw + (x1 / 2).min(cw));
            if let (Some(su), Some(sv)) = (u.get_mut(a..b), v.get_mut(a..b)) {
                su.fill(cu);
                sv.fill(cv);
            }
        }
    };
    if within(script.object_us) {
        let secs = (t - script.object_us.0) as f32 / 1e6;
        let x = OBJECT_X0 + OBJECT_SPEED * secs;
        // A dark red figure.
        fill(
            rect(x, OBJECT_Y, x + OBJECT_W, OBJECT_Y + OBJECT_H),
            30,
            110,
            170,
        );
    }
    if within(script.masked_us) {
        // A bright square swinging left and right inside the masked area (a branch, a flag).
        let (mx0, my0, mx1, my1) = MASKED;
        let secs = (t - script.masked_us.0) as f32 / 1e6;
        let swing = (secs * 3.0).sin() * 0.5 + 0.5;
        let size = 0.08;
        let x = mx0 + 0.02 + swing * (mx1 - mx0 - size - 0.04);
        fill(rect(x, my0 + 0.04, x + size, my1 - 0.04), 220, 128, 128);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_and_object_intervals_follow_the_wall_clock() {
        let s = SceneScript::default();
        assert_eq!(s.phase(61_000_000), 1_000_000);
        assert_eq!(s.phase(-1), 29_999_999);
        assert_eq!(
            s.object_intervals(0, 60_000_000),
            vec![(4_000_000, 11_000_000), (34_000_000, 41_000_000)]
        );
        // A window starting in the middle of a walk includes it.
        assert_eq!(
            s.object_intervals(35_000_000, 36_000_000),
            vec![(34_000_000, 41_000_000)]
        );
        assert!(s.object_intervals(12_000_000, 33_000_000).is_empty());
    }
}
