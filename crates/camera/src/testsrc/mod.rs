//! A synthetic camera: moving colour bars, a bouncing box, a burned-in clock a person can
//! read and a code a test can read back from decoded pictures (see [`read_code`]).
//!
//! Layout, top to bottom: the code band (rows of black/white blocks), the clock
//! (`HH:MM:SS.mmm #counter`, UTC), then the scene. Everything moves every frame so that
//! the encoder has real work to do and a frozen stream is visible at a glance.
//!
//! [`TestPattern::scene`] renders the scripted motion scene of [`scene`] instead of the bars
//! (the code and the clock stay).

mod code;
mod font;
pub mod scene;

pub use code::{read_code, BurnedCode};
pub use scene::SceneScript;

use crate::frame::{check_size, I420Frame};
use crate::CameraError;

/// 75 % colour bars in BT.601 limited range (Y, Cb, Cr): white, yellow, cyan, green,
/// magenta, red, blue, black.
const BARS: [(u8, u8, u8); 8] = [
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
    (16, 128, 128),
];

/// Renders test-pattern frames of one size, reusing one frame buffer.
pub struct TestPattern {
    frame: I420Frame,
    /// Scratch rows for the bars (luma and chroma), computed once per frame.
    row_y: Vec<u8>,
    row_u: Vec<u8>,
    row_v: Vec<u8>,
    /// The scripted scene instead of the bars.
    scene: Option<SceneScript>,
}

/// Bottom row (exclusive) of the code band and clock text at `width`.
pub(crate) fn overlay_bottom(width: u32) -> usize {
    let s = (width as usize / 160).max(1);
    code::band_height(width) + 2 * s + (font::GLYPH_H + 2) * s
}

impl TestPattern {
    /// A renderer for `width` x `height` frames (even, at least 160x120).
    pub fn new(width: u32, height: u32) -> Result<Self, CameraError> {
        check_size(width, height)?;
        if width < 160 || height < 120 {
            return Err(CameraError::InvalidConfig(format!(
                "test pattern needs at least 160x120, got {width}x{height}"
            )));
        }
        Ok(TestPattern {
            frame: I420Frame::black(width, height)?,
            row_y: vec![0; width as usize],
            row_u: vec![0; width as usize / 2],
            row_v: vec![0; width as usize / 2],
            scene: None,
        })
    }

    /// A renderer of the scripted motion scene (see [`scene`]), looping on the wall clock.
    pub fn scene(width: u32, height: u32, script: SceneScript) -> Result<Self, CameraError> {
        let mut tp = Self::new(width, height)?;
        tp.scene = Some(script);
        Ok(tp)
    }

    /// Text scale (font pixel size) at this width: about 1/8 of the width for the clock line.
    fn text_scale(&self) -> usize {
        (self.frame.width as usize / 160).max(1)
    }

    /// Top-left corner of the clock text.
    fn text_origin(&self) -> (usize, usize) {
        let s = self.text_scale();
        (2 * s, code::band_height(self.frame.width) + 2 * s)
    }

    /// Renders frame `counter`, captured at `capture_us` (µs since the Unix epoch).
    pub fn render(&mut self, counter: u32, capture_us: i64) -> &I420Frame {
        let (w, h) = (self.frame.width as usize, self.frame.height as usize);
        let n = counter as usize;
        if let Some(script) = &self.scene {
            let f = &mut self.frame;
            scene::draw(script, capture_us, w, h, &mut f.y, &mut f.u, &mut f.v);
        } else {
            self.draw_bars(n);
            self.draw_ramp(n);
            self.draw_box(n);
        }
        let text = clock_text(counter, capture_us);
        let (tx, ty) = self.text_origin();
        let scale = self.text_scale();
        font::draw_text(&mut self.frame.y, w, h, tx, ty, scale, &text, (235, 16));
        // The text box is drawn in luma only; make its chroma neutral so it stays grey.
        let box_h = (font::GLYPH_H + 2) * scale;
        let box_w = ((text.len() * font::ADVANCE + 1) * scale).min(w);
        for row in (ty.saturating_sub(scale) / 2)..((ty + box_h) / 2 + 1).min(h / 2) {
            let start = row * (w / 2) + tx.saturating_sub(scale) / 2;
            let end = row * (w / 2) + ((tx + box_w) / 2).min(w / 2);
            if let (Some(u), Some(v)) = (
                self.frame.u.get_mut(start..end),
                self.frame.v.get_mut(start..end),
            ) {
                u.fill(128);
                v.fill(128);
            }
        }
        code::draw_code(
            &mut self.frame.y,
            self.frame.width,
            self.frame.height,
            BurnedCode {
                capture_us,
                counter,
            },
        );
        // Chroma under the code band is neutral so the blocks are pure black and white.
        let band = code::band_height(self.frame.width).min(h) / 2;
        self.frame.u[..band * w / 2].fill(128);
        self.frame.v[..band * w / 2].fill(128);
        &self.frame
    }

    /// Colour bars over the whole frame, scrolling left by a few pixels per frame.
    fn draw_bars(&mut self, n: usize) {
        let w = self.frame.width as usize;
        let shift = n * (w / 160).max(1) * 2;
        for (x, px) in self.row_y.iter_mut().enumerate() {
            *px = BARS[((x + shift) % w) * 8 / w].0;
        }
        for (cx, (u, v)) in self.row_u.iter_mut().zip(self.row_v.iter_mut()).enumerate() {
            let bar = BARS[((2 * cx + shift) % w) * 8 / w];
            *u = bar.1;
            *v = bar.2;
        }
        for row in self.frame.y.chunks_exact_mut(w) {
            row.copy_from_slice(&self.row_y);
        }
        for row in self.frame.u.chunks_exact_mut(w / 2) {
            row.copy_from_slice(&self.row_u);
        }
        for row in self.frame.v.chunks_exact_mut(w / 2) {
            row.copy_from_slice(&self.row_v);
        }
    }

    /// A grey ramp in the bottom sixth, scrolling right.
    fn draw_ramp(&mut self, n: usize) {
        let (w, h) = (self.frame.width as usize, self.frame.height as usize);
        let top = (h - h / 6) & !1;
        let shift = n * 3;
        for (x, px) in self.row_y.iter_mut().enumerate() {
            *px = (16 + ((x + w - shift % w) % w) * 219 / w) as u8;
        }
        for row in self.frame.y.chunks_exact_mut(w).skip(top) {
            row.copy_from_slice(&self.row_y);
        }
        let chroma_top = top / 2 * (w / 2);
        self.frame.u[chroma_top..].fill(128);
        self.frame.v[chroma_top..].fill(128);
    }

    /// An orange box bouncing across the middle of the frame.
    fn draw_box(&mut self, n: usize) {
        let (w, h) = (self.frame.width as usize, self.frame.height as usize);
        let size = (h / 6) & !1;
        let top = code::band_height(self.frame.width) + (font::GLYPH_H + 6) * self.text_scale();
        let bottom = (h - h / 6).saturating_sub(size);
        let travel_x = w - size;
        let travel_y = bottom.saturating_sub(top).max(1);
        let speed = (w / 160).max(1) * 4;
        let bounce = |pos: usize, travel: usize| {
            let p = pos % (2 * travel);
            if p < travel {
                p
            } else {
                2 * travel - p
            }
        };
        let x = bounce(n * speed, travel_x) & !1;
        let y = (top + bounce(n * speed / 2, travel_y)) & !1;
        for row in y..(y + size).min(h) {
            self.frame.y[row * w + x..row * w + x + size].fill(150);
        }
        for row in y / 2..((y + size) / 2).min(h / 2) {
            let (s, e) = (row * (w / 2) + x / 2, row * (w / 2) + (x + size) / 2);
            self.frame.u[s..e].fill(54);
            self.frame.v[s..e].fill(186);
        }
    }
}

/// `HH:MM:SS.mmm #counter` in UTC: the clock burned into each frame.
fn clock_text(counter: u32, capture_us: i64) -> String {
    let ms_total = capture_us.div_euclid(1000);
    let ms = ms_total.rem_euclid(1000);
    let secs = ms_total.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}.{:03} #{counter}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000_000 + 45_296_789_000; // 12:34:56.789 UTC + offset

    #[test]
    fn clock_text_is_utc_time_of_day() {
        // 1_700_000_000 s is 2023-11-14 22:13:20 UTC.
        assert_eq!(clock_text(7, 1_700_000_000_000_000), "22:13:20.000 #7");
        assert_eq!(clock_text(12, 1_700_000_000_999_999), "22:13:20.999 #12");
    }

    #[test]
    fn rejects_too_small_or_odd_sizes() {
        assert!(TestPattern::new(158, 120).is_err());
        assert!(TestPattern::new(160, 118).is_err());
        assert!(TestPattern::new(161, 120).is_err());
    }

    #[test]
    fn clock_is_readable_and_code_round_trips_on_raw_frames() {
        for (w, h) in [(160, 120), (320, 240), (640, 360), (1280, 720)] {
            let mut tp = TestPattern::new(w, h).unwrap();
            let frame = tp.render(123, T0).clone();
            let code = read_code(&frame.y, w as usize, w, h).unwrap();
            assert_eq!(
                code,
                BurnedCode {
                    capture_us: T0,
                    counter: 123
                }
            );
            let (tx, ty) = tp.text_origin();
            let text = clock_text(123, T0);
            let read = font::read_text(&frame.y, w as usize, tx, ty, tp.text_scale(), text.len());
            assert_eq!(read, text, "{w}x{h}");
        }
    }

    #[test]
    fn consecutive_frames_differ_and_are_deterministic() {
        let mut tp = TestPattern::new(320, 240).unwrap();
        let a = tp.render(1, T0).clone();
        let b = tp.render(2, T0).clone();
        assert_ne!(a.y, b.y);
        assert_ne!(a.u, b.u);
        let a2 = tp.render(1, T0).clone();
        assert_eq!(a, a2);
        // The scene below the code band moves even when the time does not.
        let band = code::band_height(320) * 320 + 30 * 320;
        assert_ne!(a.y[band..], b.y[band..]);
    }

    #[test]
    fn scene_keeps_the_clock_and_code_and_changes_only_where_the_script_says() {
        let (w, h) = (640u32, 360u32);
        let script = SceneScript::default();
        let mut tp = TestPattern::scene(w, h, script).unwrap();
        let base = 1_800_000_000_000_000; // a multiple of the 30 s period
        let at = |tp: &mut TestPattern, s: f64| {
            let us = base + (s * 1e6) as i64;
            tp.render(7, us).clone()
        };
        let still = at(&mut tp, 1.0);
        let code = read_code(&still.y, w as usize, w, h).unwrap();
        assert_eq!(code.counter, 7);
        let (tx, ty) = tp.text_origin();
        let text = clock_text(7, base + 1_000_000);
        assert_eq!(
            font::read_text(&still.y, w as usize, tx, ty, tp.text_scale(), text.len()),
            text
        );
        let below = overlay_bottom(w) * w as usize;
        let (_, _, _, mask_bottom) = script.overlay_mask(w, h);
        assert!(mask_bottom * h as f32 >= overlay_bottom(w) as f32);
        // Still: the scene is identical from one picture to the next.
        assert_eq!(still.y[below..], at(&mut tp, 2.5).y[below..]);
        // Walking: a dark object where the background was.
        let walk = at(&mut tp, 6.0);
        let changed = |a: &I420Frame, b: &I420Frame| {
            a.y[below..]
                .iter()
                .zip(&b.y[below..])
                .filter(|(x, y)| x != y)
                .count()
        };
        let n = changed(&still, &walk);
        assert!(n > 5000 && n < 40_000, "{n} pixels changed");
        // Lights: every scene pixel brighter by the same step.
        let bright = at(&mut tp, 16.0);
        assert!(still.y[below..]
            .iter()
            .zip(&bright.y[below..])
            .all(|(a, b)| *b == a + scene::BRIGHTNESS_STEP));
        // Masked motion: changes only inside the masked area.
        let masked = at(&mut tp, 25.0);
        let (x0, y0, x1, y1) = script.masked_area();
        let mut inside = 0;
        for (i, (a, b)) in still.y.iter().zip(&masked.y).enumerate().skip(below) {
            if a != b {
                let (x, y) = (
                    (i % w as usize) as f32 / w as f32,
                    (i / w as usize) as f32 / h as f32,
                );
                assert!(x >= x0 && x < x1 && y >= y0 && y < y1, "change at {x},{y}");
                inside += 1;
            }
        }
        assert!(inside > 1000, "{inside}");
    }

    #[test]
    fn box_and_bars_stay_inside_the_frame_for_many_frames() {
        let mut tp = TestPattern::new(162, 120).unwrap();
        for n in (0..5000).step_by(7) {
            let f = tp.render(n, T0 + i64::from(n) * 33_333);
            assert_eq!(f.y.len(), 162 * 120);
        }
    }
}
