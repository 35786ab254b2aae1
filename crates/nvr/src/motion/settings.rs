//! From the user's [`MotionSettings`] (percentages, seconds, 1-100 sensitivity, zone specs)
//! to the detector's [`MotionConfig`] (fractions, durations, polygons).

use std::time::Duration;

use vigil_motion::{MotionConfig, MotionDetector, Polygon, Zone};

use crate::{MotionSettings, NvrError, ZoneKind, ZoneSpec};

/// Largest analysis rate: above this every frame of a typical sub stream is analysed anyway.
pub const MAX_FPS: f32 = 30.0;

/// The user's 1-100 sensitivity as the detector's 0..=1: 50 (the default) is the detector's
/// tuned default 0.7 (a difference of 21 luma levels), 100 is 1.0 (4 levels), 1 is 0.2 (49
/// levels: only strong contrast). Piecewise linear so that the default sits in the middle.
pub fn detector_sensitivity(user: u8) -> f32 {
    let s = f32::from(user.clamp(1, 100));
    if s <= 50.0 {
        0.2 + (s - 1.0) / 49.0 * 0.5
    } else {
        0.7 + (s - 50.0) / 50.0 * 0.3
    }
}

fn seconds(field: &str, v: f32) -> Result<Duration, NvrError> {
    if !(0.0..=3600.0).contains(&v) {
        return Err(NvrError::Invalid(format!(
            "motion.{field} = {v} must be between 0 and 3600 seconds"
        )));
    }
    // Whole milliseconds: 0.4 in f32 is 0.4000000059604645.
    Ok(Duration::from_millis((f64::from(v) * 1000.0).round() as u64))
}

fn area(field: &str, pct: f32) -> Result<f32, NvrError> {
    if !(0.0..=100.0).contains(&pct) {
        return Err(NvrError::Invalid(format!(
            "{field} = {pct} must be a percentage between 0 and 100"
        )));
    }
    Ok(pct / 100.0)
}

fn polygon(z: &ZoneSpec) -> Polygon {
    Polygon::new(z.points.iter().map(|[x, y]| (*x, *y)))
}

/// The detector configuration for `width` x `height` pictures. With zones, camera events
/// count only motion inside a zone ([`MotionConfig::zones_only`]): drawing zones means
/// "watch these areas". Masks are removed everywhere.
pub fn motion_config(
    s: &MotionSettings,
    width: u32,
    height: u32,
) -> Result<MotionConfig, NvrError> {
    if !(s.fps > 0.0 && s.fps <= MAX_FPS) {
        return Err(NvrError::Invalid(format!(
            "motion.fps = {} must be above 0 and at most {MAX_FPS}",
            s.fps
        )));
    }
    if !(1..=100).contains(&s.sensitivity) {
        return Err(NvrError::Invalid(format!(
            "motion.sensitivity = {} must be 1-100",
            s.sensitivity
        )));
    }
    let mut c = MotionConfig::new(width, height);
    c.sensitivity = detector_sensitivity(s.sensitivity);
    c.min_area = area("motion.min_area_pct", s.min_area_pct)?;
    c.min_duration = seconds("min_duration_s", s.min_duration_s)?;
    c.cooldown = seconds("cooldown_s", s.cooldown_s)?;
    for z in &s.zones {
        match z.kind {
            ZoneKind::Mask => c.masks.push(polygon(z)),
            ZoneKind::Zone => {
                let mut zone = Zone::new(z.name.clone(), polygon(z));
                if let Some(pct) = z.min_area_pct {
                    zone.min_area = Some(area(&format!("zone {:?} min_area_pct", z.name), pct)?);
                }
                if let Some(sens) = z.sensitivity {
                    if !(1..=100).contains(&sens) {
                        return Err(NvrError::Invalid(format!(
                            "zone {:?} sensitivity = {sens} must be 1-100",
                            z.name
                        )));
                    }
                    zone.sensitivity = Some(detector_sensitivity(sens));
                }
                c.zones.push(zone);
            }
        }
    }
    c.zones_only = !c.zones.is_empty();
    Ok(c)
}

/// Checks settings the way the pipeline will use them (zone polygons rasterised on a 640x360
/// sub stream's grid), so a bad zone is refused when a camera is saved, not when it runs.
pub fn validate_settings(s: &MotionSettings) -> Result<(), NvrError> {
    let c = motion_config(s, 640, 360)?;
    MotionDetector::new(c)
        .map(drop)
        .map_err(|e| NvrError::Invalid(format!("motion: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, kind: ZoneKind, pts: Vec<[f32; 2]>) -> ZoneSpec {
        ZoneSpec {
            name: name.into(),
            kind,
            points: pts,
            sensitivity: Some(100),
            min_area_pct: Some(2.0),
        }
    }

    #[test]
    fn defaults_map_onto_the_detectors_defaults() {
        let c = motion_config(&MotionSettings::default(), 640, 360).unwrap();
        assert!((c.sensitivity - 0.7).abs() < 1e-6);
        assert_eq!(c.base_threshold(), 21);
        assert!((c.min_area - 0.005).abs() < 1e-6);
        assert_eq!(c.min_duration, Duration::from_millis(400));
        assert_eq!(c.cooldown, Duration::from_secs(2));
        assert!(!c.zones_only);
        assert!((detector_sensitivity(1) - 0.2).abs() < 1e-6);
        assert!((detector_sensitivity(100) - 1.0).abs() < 1e-6);
        assert!(detector_sensitivity(30) < detector_sensitivity(31));
    }

    #[test]
    fn zones_and_masks_are_split_and_zones_only_set() {
        let mut s = MotionSettings::default();
        let sq = vec![[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]];
        s.zones.push(zone("porch", ZoneKind::Zone, sq.clone()));
        s.zones.push(zone("tree", ZoneKind::Mask, sq));
        let c = motion_config(&s, 320, 180).unwrap();
        assert_eq!(c.zones.len(), 1);
        assert_eq!(c.masks.len(), 1);
        assert_eq!(c.zones[0].name, "porch");
        assert_eq!(c.zones[0].min_area, Some(0.02));
        assert_eq!(c.zones[0].sensitivity, Some(1.0));
        assert!(c.zones_only);
        // The zone is entirely masked: the detector refuses it, and so does validation.
        let err = validate_settings(&s).unwrap_err();
        assert!(err.to_string().contains("porch"), "{err}");
    }

    #[test]
    fn nonsense_values_are_refused_with_the_field_name() {
        let bad = |f: fn(&mut MotionSettings), field: &str| {
            let mut s = MotionSettings::default();
            f(&mut s);
            let e = validate_settings(&s).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        };
        bad(|s| s.fps = 0.0, "fps");
        bad(|s| s.fps = f32::NAN, "fps");
        bad(|s| s.sensitivity = 0, "sensitivity");
        bad(|s| s.min_area_pct = 101.0, "min_area_pct");
        bad(|s| s.cooldown_s = -1.0, "cooldown_s");
        bad(|s| s.min_duration_s = f32::INFINITY, "min_duration_s");
        bad(
            |s| {
                s.zones
                    .push(zone("x", ZoneKind::Zone, vec![[0.0, 0.0], [1.0, 1.0]]))
            },
            "x",
        );
    }
}
