//! Zones and masks: polygons in normalized coordinates, rasterised once onto the working grid.
//!
//! Coordinates are fractions of the picture, `(0, 0)` top-left and `(1, 1)` bottom-right, so the
//! same zones work on the main and the sub stream and survive a resolution change. A cell
//! belongs to a polygon when its centre is inside by the even-odd rule (the crossing-number
//! test): a self-intersecting outline such as a pentagram leaves its inner pentagon out.

use std::sync::Arc;

use crate::error::{ConfigError, PolygonError};

/// Most zones per camera: each cell keeps its zones in a `u32` bitmask.
pub const MAX_ZONES: usize = 32;
/// Most vertices per polygon; rasterisation costs cells × vertices once.
pub const MAX_POLYGON_POINTS: usize = 256;

/// A point in normalized picture coordinates (`0.0..=1.0` on both axes, y down).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// Horizontal position, 0 = left edge, 1 = right edge.
    pub x: f32,
    /// Vertical position, 0 = top edge, 1 = bottom edge.
    pub y: f32,
}

/// A closed polygon in normalized coordinates; the last point connects back to the first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Polygon {
    /// Vertices in order (either winding).
    pub points: Vec<Point>,
}

impl Polygon {
    /// A polygon through `points` given as `(x, y)` pairs.
    pub fn new(points: impl IntoIterator<Item = (f32, f32)>) -> Self {
        Self {
            points: points.into_iter().map(|(x, y)| Point { x, y }).collect(),
        }
    }

    /// The axis-aligned rectangle from `(x0, y0)` to `(x1, y1)`.
    pub fn rect(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self::new([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    }

    /// Checks vertex count and that every coordinate is finite and within `0..=1`.
    pub fn validate(&self) -> Result<(), PolygonError> {
        let n = self.points.len();
        if n < 3 {
            return Err(PolygonError::TooFewPoints(n));
        }
        if n > MAX_POLYGON_POINTS {
            return Err(PolygonError::TooManyPoints {
                got: n,
                max: MAX_POLYGON_POINTS,
            });
        }
        let ok = |v: f32| (0.0..=1.0).contains(&v);
        match self.points.iter().position(|p| !ok(p.x) || !ok(p.y)) {
            Some(index) => Err(PolygonError::OutOfRange {
                index,
                x: self.points[index].x,
                y: self.points[index].y,
            }),
            None => Ok(()),
        }
    }

    /// Whether `(x, y)` is inside by the even-odd rule: a ray to the right crosses the outline an
    /// odd number of times. Edges are half-open in y so a vertex on the ray counts once.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let mut inside = false;
        let n = self.points.len();
        for (i, a) in self.points.iter().enumerate() {
            let b = self.points[(i + n - 1) % n];
            if (a.y > y) != (b.y > y) {
                let cross_x = a.x + (y - a.y) * (b.x - a.x) / (b.y - a.y);
                if x < cross_x {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// Cells of a `width` x `height` grid whose centres are inside, row-major.
    pub fn rasterize(&self, width: usize, height: usize) -> Vec<bool> {
        let mut out = Vec::with_capacity(width * height);
        for cy in 0..height {
            let y = (cy as f32 + 0.5) / height as f32;
            for cx in 0..width {
                out.push(self.contains((cx as f32 + 0.5) / width as f32, y));
            }
        }
        out
    }
}

/// A named detection zone with optional per-zone overrides of the camera's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Unique, non-empty name; events and scores carry it.
    pub name: String,
    /// Outline in normalized coordinates.
    pub polygon: Polygon,
    /// Smallest region (fraction of the frame area) that counts as motion in this zone;
    /// `None` uses [`crate::MotionConfig::min_area`].
    pub min_area: Option<f32>,
    /// Motion must persist this long before a zone event starts; `None` uses the camera's.
    pub min_duration: Option<std::time::Duration>,
    /// A zone event ends after this long without motion; `None` uses the camera's.
    pub cooldown: Option<std::time::Duration>,
    /// Sensitivity inside this zone, 0..=1 (see [`crate::MotionConfig::sensitivity`]); `None`
    /// uses the camera's. Where zones overlap, the most sensitive one applies.
    pub sensitivity: Option<f32>,
}

impl Zone {
    /// A zone with the camera's settings.
    pub fn new(name: impl Into<String>, polygon: Polygon) -> Self {
        Self {
            name: name.into(),
            polygon,
            min_area: None,
            min_duration: None,
            cooldown: None,
            sensitivity: None,
        }
    }
}

/// Zones and masks rasterised onto the working grid.
#[derive(Debug, Clone)]
pub struct ZoneMap {
    /// Per cell: not covered by any mask.
    pub active: Vec<bool>,
    /// Per cell: bit `z` set when the cell is in zone `z` (and not masked).
    pub cell_zones: Vec<u32>,
    /// Unmasked cells per zone.
    pub zone_cells: Vec<u32>,
    /// Zone names, in configuration order.
    pub names: Vec<Arc<str>>,
    /// Unmasked cells in the whole grid.
    pub active_cells: u32,
}

impl ZoneMap {
    /// Validates and rasterises `zones` and `masks` onto a `width` x `height` grid.
    pub fn build(
        zones: &[Zone],
        masks: &[Polygon],
        width: usize,
        height: usize,
    ) -> Result<Self, ConfigError> {
        if zones.len() > MAX_ZONES {
            return Err(ConfigError::TooManyZones {
                got: zones.len(),
                max: MAX_ZONES,
            });
        }
        let cells = width * height;
        let mut active = vec![true; cells];
        for (i, m) in masks.iter().enumerate() {
            m.validate().map_err(|source| ConfigError::Polygon {
                what: format!("mask {i}"),
                source,
            })?;
            for (a, inside) in active.iter_mut().zip(m.rasterize(width, height)) {
                *a &= !inside;
            }
        }
        let active_cells = active.iter().filter(|&&a| a).count() as u32;
        if active_cells == 0 {
            return Err(ConfigError::AllMasked);
        }
        let mut cell_zones = vec![0u32; cells];
        let mut zone_cells = Vec::with_capacity(zones.len());
        let mut names: Vec<Arc<str>> = Vec::with_capacity(zones.len());
        for (z, zone) in zones.iter().enumerate() {
            if zone.name.trim().is_empty() {
                return Err(ConfigError::EmptyName(z));
            }
            if names.iter().any(|n| **n == *zone.name) {
                return Err(ConfigError::DuplicateZone(zone.name.clone()));
            }
            zone.polygon
                .validate()
                .map_err(|source| ConfigError::Polygon {
                    what: format!("zone {:?}", zone.name),
                    source,
                })?;
            let mut count = 0u32;
            let raster = zone.polygon.rasterize(width, height);
            for ((bits, inside), &a) in cell_zones.iter_mut().zip(raster).zip(&active) {
                if inside && a {
                    *bits |= 1 << z;
                    count += 1;
                }
            }
            if count == 0 {
                return Err(ConfigError::EmptyZone(zone.name.clone()));
            }
            zone_cells.push(count);
            names.push(Arc::from(zone.name.as_str()));
        }
        Ok(Self {
            active,
            cell_zones,
            zone_cells,
            names,
            active_cells,
        })
    }

    /// Names of the zones whose bits are set in `mask`, in configuration order.
    pub fn names_of(&self, mask: u32) -> Vec<Arc<str>> {
        self.names
            .iter()
            .enumerate()
            .filter(|(z, _)| mask & (1 << z) != 0)
            .map(|(_, n)| n.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(r: &[bool]) -> usize {
        r.iter().filter(|&&b| b).count()
    }

    #[test]
    fn full_frame_covers_every_cell() {
        let p = Polygon::rect(0.0, 0.0, 1.0, 1.0);
        assert_eq!(count(&p.rasterize(160, 90)), 160 * 90);
    }

    #[test]
    fn left_half_covers_exactly_the_left_columns() {
        let r = Polygon::rect(0.0, 0.0, 0.5, 1.0).rasterize(160, 90);
        for cy in 0..90 {
            for cx in 0..160 {
                assert_eq!(r[cy * 160 + cx], cx < 80, "{cx},{cy}");
            }
        }
    }

    #[test]
    fn rectangle_on_cell_boundaries_is_exact() {
        // x 0.25..0.5 of 8 columns = columns 2, 3; y 0.5..1 of 4 rows = rows 2, 3.
        let r = Polygon::rect(0.25, 0.5, 0.5, 1.0).rasterize(8, 4);
        let want: Vec<bool> = (0..32)
            .map(|i| (2..4).contains(&(i % 8)) && (2..4).contains(&(i / 8)))
            .collect();
        assert_eq!(r, want);
    }

    #[test]
    fn triangle_has_the_expected_cells() {
        // Lower-left triangle of a 4x4 grid: centre (x, y) inside when x < y.
        let r = Polygon::new([(0.0, 0.0), (1.0, 1.0), (0.0, 1.0)]).rasterize(4, 4);
        let rows: Vec<String> = r
            .chunks(4)
            .map(|row| row.iter().map(|&b| if b { '#' } else { '.' }).collect())
            .collect();
        // Centres on the diagonal (x == y) are on the edge; the half-open rule puts them outside.
        assert_eq!(rows, ["....", "#...", "##..", "###."]);
    }

    #[test]
    fn concave_u_shape_leaves_its_notch_out() {
        let u = Polygon::new([
            (0.0, 0.0),
            (0.25, 0.0),
            (0.25, 0.75),
            (0.75, 0.75),
            (0.75, 0.0),
            (1.0, 0.0),
            (1.0, 1.0),
            (0.0, 1.0),
        ]);
        let r = u.rasterize(4, 4);
        let rows: Vec<String> = r
            .chunks(4)
            .map(|row| row.iter().map(|&b| if b { '#' } else { '.' }).collect())
            .collect();
        assert_eq!(rows, ["#..#", "#..#", "#..#", "####"]);
    }

    #[test]
    fn pentagram_centre_is_out_by_even_odd() {
        let star = Polygon::new([
            (0.5, 0.0),
            (0.79, 0.9),
            (0.02, 0.35),
            (0.98, 0.35),
            (0.21, 0.9),
        ]);
        assert!(!star.contains(0.5, 0.5), "centre pentagon crossed twice");
        assert!(star.contains(0.5, 0.15), "top spike");
        assert!(!star.contains(0.05, 0.05));
    }

    #[test]
    fn winding_direction_does_not_matter() {
        let cw = Polygon::new([(0.1, 0.1), (0.9, 0.1), (0.9, 0.6), (0.1, 0.6)]);
        let ccw = Polygon::new([(0.1, 0.1), (0.1, 0.6), (0.9, 0.6), (0.9, 0.1)]);
        assert_eq!(cw.rasterize(32, 18), ccw.rasterize(32, 18));
    }

    #[test]
    fn invalid_polygons_are_rejected() {
        assert_eq!(
            Polygon::new([(0.0, 0.0), (1.0, 1.0)]).validate(),
            Err(PolygonError::TooFewPoints(2))
        );
        assert!(matches!(
            Polygon::new([(0.0, 0.0), (1.5, 0.0), (0.0, 1.0)]).validate(),
            Err(PolygonError::OutOfRange { index: 1, .. })
        ));
        assert!(Polygon::new([(0.0, 0.0), (f32::NAN, 0.0), (0.0, 1.0)])
            .validate()
            .is_err());
        assert!(Polygon::new((0..300).map(|i| (i as f32 / 300.0, 0.5)))
            .validate()
            .is_err());
    }

    #[test]
    fn zone_map_masks_zones_and_counts() {
        let zones = [
            Zone::new("left", Polygon::rect(0.0, 0.0, 0.5, 1.0)),
            Zone::new("top", Polygon::rect(0.0, 0.0, 1.0, 0.5)),
        ];
        let masks = [Polygon::rect(0.0, 0.0, 0.25, 0.25)];
        let m = ZoneMap::build(&zones, &masks, 8, 8).unwrap();
        assert_eq!(m.active_cells, 64 - 4);
        assert_eq!(m.zone_cells, [32 - 4, 32 - 4]);
        assert_eq!(m.cell_zones[0], 0, "masked cell is in no zone");
        assert_eq!(m.cell_zones[2 * 8 + 2], 0b11);
        assert_eq!(m.cell_zones[7 * 8], 0b01);
        assert_eq!(m.cell_zones[7], 0b10);
        assert_eq!(&*m.names_of(0b10)[0], "top");
    }

    #[test]
    fn zone_map_rejects_bad_configurations() {
        let z = |n: &str| Zone::new(n, Polygon::rect(0.0, 0.0, 0.5, 0.5));
        assert_eq!(
            ZoneMap::build(&[z("a"), z("a")], &[], 8, 8).unwrap_err(),
            ConfigError::DuplicateZone("a".into())
        );
        assert_eq!(
            ZoneMap::build(&[z(" ")], &[], 8, 8).unwrap_err(),
            ConfigError::EmptyName(0)
        );
        assert_eq!(
            ZoneMap::build(&[], &[Polygon::rect(0.0, 0.0, 1.0, 1.0)], 8, 8).unwrap_err(),
            ConfigError::AllMasked
        );
        assert_eq!(
            ZoneMap::build(&[z("a")], &[Polygon::rect(0.0, 0.0, 0.6, 0.6)], 8, 8).unwrap_err(),
            ConfigError::EmptyZone("a".into())
        );
        let tiny = Zone::new("tiny", Polygon::rect(0.01, 0.01, 0.02, 0.02));
        assert_eq!(
            ZoneMap::build(&[tiny], &[], 8, 8).unwrap_err(),
            ConfigError::EmptyZone("tiny".into())
        );
        let many: Vec<Zone> = (0..33).map(|i| z(&i.to_string())).collect();
        assert!(matches!(
            ZoneMap::build(&many, &[], 8, 8),
            Err(ConfigError::TooManyZones { got: 33, .. })
        ));
    }
}
