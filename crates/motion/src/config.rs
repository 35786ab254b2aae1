//! Detector configuration and its validation.

use std::time::Duration;

use crate::error::ConfigError;
use crate::zones::{Polygon, Zone};

/// Largest accepted width or height of the input plane (8K is 7680).
pub const MAX_DIMENSION: u32 = 16_384;
/// Largest working grid width: bounds the detector's memory and per-frame cost.
pub const MAX_GRID_WIDTH: u32 = 1024;

/// Everything a [`crate::MotionDetector`] needs; [`MotionConfig::new`] gives sensible defaults for
/// a sub stream decoded at about 5 fps.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionConfig {
    /// Width of the luma planes given to `process`, pixels.
    pub width: u32,
    /// Height of the luma planes, pixels.
    pub height: u32,
    /// Width of the working grid, cells (default 160; never more than `width`). The height
    /// follows the aspect ratio (640x360 → 160x90).
    pub grid_width: u32,
    /// 0.0 (least sensitive) ..= 1.0 (most). Sets the smallest luma difference that counts as
    /// change: `4 + (1 - sensitivity) * 56` levels of 255 (default 0.7 → 21). The threshold rises
    /// above that with the frame's measured noise, see [`crate::background`].
    pub sensitivity: f32,
    /// Smallest region that counts as motion, as a fraction of the frame area (default 0.001:
    /// 14 cells of 160x90, about 23x23 pixels at 640x360). Smaller regions are dropped as noise.
    pub min_area: f32,
    /// Motion must persist this long before an event starts (default 400 ms).
    pub min_duration: Duration,
    /// An event ends after this long without motion (default 2 s).
    pub cooldown: Duration,
    /// Background learning rate per frame for cells without motion, `0 < rate <= 1`
    /// (default 0.05: at 5 fps the background follows a change with a time constant of 4 s).
    pub learning_rate: f32,
    /// Learning rate per frame for cells with motion, `0 < rate <= 1` (default 0.005: an object
    /// that stops is absorbed in about a minute at 5 fps, a passing one leaves no ghost).
    pub foreground_learning_rate: f32,
    /// The threshold is at least this many times the frame's median absolute deviation
    /// (noise), `1..=100` (default 6, about 4 standard deviations of Gaussian noise).
    pub noise_factor: f32,
    /// If more than this fraction of unmasked cells change at once, the frame is taken as a
    /// global change and the background re-learned, `0 < f <= 1` (default 0.35).
    pub relearn_fraction: f32,
    /// Most regions reported per frame, largest first (default 16). Scores count all regions.
    pub max_regions: usize,
    /// Named detection zones; each gets its own score and its own events.
    pub zones: Vec<Zone>,
    /// Areas excluded everywhere: never motion, not in any zone, not in the statistics.
    pub masks: Vec<Polygon>,
    /// With zones configured, camera-scope motion counts only inside a zone (default false:
    /// anywhere outside the masks). Outside the zones the picture still feeds the background
    /// statistics, so a global change is still recognised as one.
    pub zones_only: bool,
}

impl MotionConfig {
    /// Defaults for `width` x `height` planes, no zones and no masks.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            grid_width: 160,
            sensitivity: 0.7,
            min_area: 0.001,
            min_duration: Duration::from_millis(400),
            cooldown: Duration::from_secs(2),
            learning_rate: 0.05,
            foreground_learning_rate: 0.005,
            noise_factor: 6.0,
            relearn_fraction: 0.35,
            max_regions: 16,
            zones: Vec::new(),
            masks: Vec::new(),
            zones_only: false,
        }
    }

    /// The sensitivity as a luma difference threshold, levels of 255.
    pub fn base_threshold(&self) -> u8 {
        threshold_of(self.sensitivity)
    }

    /// Working grid size `(width, height)` in cells.
    pub fn grid_size(&self) -> (usize, usize) {
        let (w, h) = (self.width.max(1) as usize, self.height.max(1) as usize);
        let gw = (self.grid_width.max(1) as usize).min(w);
        let gh = ((h * gw + w / 2) / w).clamp(1, h);
        (gw, gh)
    }

    /// Checks every scalar setting and every polygon. Zone coverage on the grid is checked
    /// when the detector rasterises them ([`crate::MotionDetector::new`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let dims_ok = |v: u32| (1..=MAX_DIMENSION).contains(&v);
        if !dims_ok(self.width) || !dims_ok(self.height) {
            return Err(ConfigError::Dimensions {
                width: self.width,
                height: self.height,
                max: MAX_DIMENSION,
            });
        }
        if self.grid_width == 0 || self.grid_width > MAX_GRID_WIDTH {
            return Err(ConfigError::GridWidth);
        }
        range("sensitivity", self.sensitivity, 0.0, 1.0, false, "0..=1")?;
        range("min_area", self.min_area, 0.0, 1.0, false, "0..=1")?;
        range(
            "learning_rate",
            self.learning_rate,
            0.0,
            1.0,
            true,
            "0 < r <= 1",
        )?;
        range(
            "foreground_learning_rate",
            self.foreground_learning_rate,
            0.0,
            1.0,
            true,
            "0 < r <= 1",
        )?;
        range(
            "noise_factor",
            self.noise_factor,
            1.0,
            100.0,
            false,
            "1..=100",
        )?;
        range(
            "relearn_fraction",
            self.relearn_fraction,
            0.0,
            1.0,
            true,
            "0 < f <= 1",
        )?;
        for z in &self.zones {
            if let Some(a) = z.min_area {
                range("zones.min_area", a, 0.0, 1.0, false, "0..=1")?;
            }
            if let Some(s) = z.sensitivity {
                range("zones.sensitivity", s, 0.0, 1.0, false, "0..=1")?;
            }
        }
        Ok(())
    }
}

/// A 0..=1 sensitivity as a luma difference threshold: `4 + (1 - s) * 56`.
pub(crate) fn threshold_of(sensitivity: f32) -> u8 {
    let s = sensitivity.clamp(0.0, 1.0);
    (4.0 + (1.0 - s) * 56.0).round() as u8
}

/// `v` in `lo..=hi` (or `lo < v <= hi` with `open_low`), and not NaN.
fn range(
    field: &'static str,
    v: f32,
    lo: f32,
    hi: f32,
    open_low: bool,
    text: &'static str,
) -> Result<(), ConfigError> {
    let ok = if open_low {
        v > lo && v <= hi
    } else {
        v >= lo && v <= hi
    };
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value: f64::from(v),
            range: text,
        })
    }
}

/// A duration in whole microseconds, saturating (a `Duration` can exceed `i64` µs).
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_give_a_160x90_grid_for_640x360() {
        let c = MotionConfig::new(640, 360);
        c.validate().unwrap();
        assert_eq!(c.grid_size(), (160, 90));
        assert_eq!(c.base_threshold(), 21);
        assert_eq!(MotionConfig::new(1920, 1080).grid_size(), (160, 90));
        assert_eq!(MotionConfig::new(704, 576).grid_size(), (160, 131));
        assert_eq!(MotionConfig::new(100, 1).grid_size(), (100, 1));
    }

    #[test]
    fn sensitivity_maps_to_thresholds() {
        let mut c = MotionConfig::new(640, 360);
        c.sensitivity = 1.0;
        assert_eq!(c.base_threshold(), 4);
        c.sensitivity = 0.0;
        assert_eq!(c.base_threshold(), 60);
    }

    #[test]
    fn bad_values_are_typed_errors_naming_the_field() {
        let base = MotionConfig::new(640, 360);
        let mut c = base.clone();
        c.width = 0;
        assert!(matches!(c.validate(), Err(ConfigError::Dimensions { .. })));
        let mut c = base.clone();
        c.height = MAX_DIMENSION + 1;
        assert!(matches!(c.validate(), Err(ConfigError::Dimensions { .. })));
        let mut c = base.clone();
        c.grid_width = 0;
        assert_eq!(c.validate(), Err(ConfigError::GridWidth));
        c.grid_width = MAX_GRID_WIDTH + 1;
        assert_eq!(c.validate(), Err(ConfigError::GridWidth));
        let mut c = base.clone();
        c.sensitivity = f32::NAN;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OutOfRange {
                field: "sensitivity",
                ..
            })
        ));
        let mut c = base.clone();
        c.learning_rate = 0.0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OutOfRange {
                field: "learning_rate",
                ..
            })
        ));
        let mut c = base.clone();
        c.min_area = 1.5;
        let e = c.validate().unwrap_err();
        assert_eq!(e.to_string(), "min_area = 1.5 is outside 0..=1");
        let mut c = base;
        c.zones.push(Zone {
            min_area: Some(-1.0),
            ..Zone::new("z", Polygon::rect(0.0, 0.0, 1.0, 1.0))
        });
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OutOfRange {
                field: "zones.min_area",
                ..
            })
        ));
    }

    #[test]
    fn huge_durations_saturate() {
        assert_eq!(micros(Duration::MAX), i64::MAX);
        assert_eq!(micros(Duration::from_millis(400)), 400_000);
    }
}
