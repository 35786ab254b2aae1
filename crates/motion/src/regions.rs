//! Connected regions of changed cells (8-connected), by two-pass labelling with union-find.
//!
//! All working memory is sized to the grid once, in [`Labeler::new`]: memory is bounded by the
//! grid, not by what the picture shows.

use std::sync::Arc;

/// An axis-aligned box in normalized picture coordinates (fractions of width and height).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BBox {
    /// Left edge, 0..=1.
    pub x: f32,
    /// Top edge, 0..=1.
    pub y: f32,
    /// Width, 0..=1.
    pub width: f32,
    /// Height, 0..=1.
    pub height: f32,
}

impl BBox {
    /// The smallest box holding both.
    pub fn union(&self, other: &BBox) -> BBox {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let right = (self.x + self.width).max(other.x + other.width);
        let bottom = (self.y + self.height).max(other.y + other.height);
        BBox {
            x,
            y,
            width: right - x,
            height: bottom - y,
        }
    }
}

/// A connected region of changed cells that passed the minimum-area filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Bounding box, normalized.
    pub bbox: BBox,
    /// Area as a fraction of the frame (cells / all grid cells).
    pub area: f32,
    /// Changed cells in the region.
    pub cells: u32,
    /// Detection zones the region overlaps, in configuration order.
    pub zones: Vec<Arc<str>>,
}

/// One component found by [`Labeler::label`], in grid cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// Index of the component's root cell (its first cell in raster order).
    pub root: u32,
    /// Number of cells.
    pub cells: u32,
    /// Inclusive bounds in cells.
    pub x0: u32,
    /// Top row.
    pub y0: u32,
    /// Right column, inclusive.
    pub x1: u32,
    /// Bottom row, inclusive.
    pub y1: u32,
    /// OR of the zone bits of its cells.
    pub zones: u32,
}

/// Two-pass connected-component labelling with union-find over a fixed grid.
#[derive(Debug, Clone)]
pub struct Labeler {
    width: usize,
    height: usize,
    /// Union-find parent per cell; after [`Labeler::label`], the root of each changed cell.
    parent: Vec<u32>,
    /// Per root: index into `components`, or `u32::MAX`.
    slot: Vec<u32>,
    components: Vec<Component>,
}

impl Labeler {
    /// Working memory for a `width` x `height` grid.
    pub fn new(width: usize, height: usize) -> Self {
        let n = width * height;
        Self {
            width,
            height,
            parent: (0..n as u32).collect(),
            slot: vec![u32::MAX; n],
            components: Vec::new(),
        }
    }

    fn find(&mut self, mut i: u32) -> u32 {
        // Path halving: every visited node skips to its grandparent.
        loop {
            let p = self.parent[i as usize];
            if p == i {
                return i;
            }
            let gp = self.parent[p as usize];
            self.parent[i as usize] = gp;
            i = gp;
        }
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The smaller index wins, so a root is always the component's first cell in raster order.
        if ra < rb {
            self.parent[rb as usize] = ra;
        } else if rb < ra {
            self.parent[ra as usize] = rb;
        }
    }

    /// Labels the 8-connected components of the cells where `changed` is non-zero, with
    /// `cell_zones` giving each cell's zone bits. `changed` and `cell_zones` have one entry per
    /// cell; shorter slices are treated as unchanged/zoneless for the missing cells.
    pub fn label(&mut self, changed: &[u8], cell_zones: &[u32]) -> &[Component] {
        let (w, h) = (self.width, self.height);
        let is = |x: usize, y: usize| changed.get(y * w + x).is_some_and(|&c| c != 0);
        // Pass 1: link each changed cell to its already visited neighbours (W, NW, N, NE).
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                self.parent[i] = i as u32;
                if !is(x, y) {
                    continue;
                }
                if x > 0 && is(x - 1, y) {
                    self.union(i as u32, (i - 1) as u32);
                }
                if y > 0 {
                    for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        if is(nx, y - 1) {
                            self.union(i as u32, ((y - 1) * w + nx) as u32);
                        }
                    }
                }
            }
        }
        // Pass 2: resolve roots and gather per-component statistics.
        for &c in &self.components {
            self.slot[c.root as usize] = u32::MAX;
        }
        self.components.clear();
        for y in 0..h {
            for x in 0..w {
                if !is(x, y) {
                    continue;
                }
                let i = y * w + x;
                let root = self.find(i as u32);
                self.parent[i] = root;
                let zones = cell_zones.get(i).copied().unwrap_or(0);
                let (x, y) = (x as u32, y as u32);
                let slot = self.slot[root as usize];
                if let Some(c) = self.components.get_mut(slot as usize) {
                    c.cells += 1;
                    c.x0 = c.x0.min(x);
                    c.x1 = c.x1.max(x);
                    c.y1 = c.y1.max(y);
                    c.zones |= zones;
                } else {
                    self.slot[root as usize] = self.components.len() as u32;
                    self.components.push(Component {
                        root,
                        cells: 1,
                        x0: x,
                        y0: y,
                        x1: x,
                        y1: y,
                        zones,
                    });
                }
            }
        }
        &self.components
    }

    /// The components found by the last [`Labeler::label`].
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The component of changed cell `i` after [`Labeler::label`], if any.
    pub fn component_of(&self, i: usize) -> Option<&Component> {
        let root = *self.parent.get(i)?;
        self.components.get(*self.slot.get(root as usize)? as usize)
    }

    /// The normalized bounding box of a component.
    pub fn bbox(&self, c: &Component) -> BBox {
        let (w, h) = (self.width as f32, self.height as f32);
        BBox {
            x: c.x0 as f32 / w,
            y: c.y0 as f32 / h,
            width: (c.x1 + 1 - c.x0) as f32 / w,
            height: (c.y1 + 1 - c.y0) as f32 / h,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&str]) -> (Vec<u8>, usize, usize) {
        let w = rows[0].len();
        let v = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| u8::from(b == b'#')))
            .collect();
        (v, w, rows.len())
    }

    #[test]
    fn separate_blobs_and_diagonal_links() {
        let (g, w, h) = grid(&[
            "##....#", //
            "##...#.", // diagonal link to the right blob
            ".......", //
            "..#....", //
            ".###...", //
        ]);
        let mut l = Labeler::new(w, h);
        let comps = l.label(&g, &[]).to_vec();
        assert_eq!(comps.len(), 3);
        assert_eq!(
            (
                comps[0].cells,
                comps[0].x0,
                comps[0].y0,
                comps[0].x1,
                comps[0].y1
            ),
            (4, 0, 0, 1, 1)
        );
        assert_eq!(
            (comps[1].cells, comps[1].x0, comps[1].x1, comps[1].y1),
            (2, 5, 6, 1)
        );
        assert_eq!(
            (
                comps[2].cells,
                comps[2].x0,
                comps[2].y0,
                comps[2].x1,
                comps[2].y1
            ),
            (4, 1, 3, 3, 4)
        );
        assert_eq!(l.component_of(4 * w + 3).map(|c| c.cells), Some(4));
        let b = l.bbox(&comps[2]);
        assert_eq!(
            (b.x, b.y, b.width, b.height),
            (1.0 / 7.0, 0.6, 3.0 / 7.0, 0.4)
        );
    }

    #[test]
    fn u_shape_merges_late_into_one_component() {
        // The two arms meet only on the last row: union-find must merge earlier labels.
        let (g, w, h) = grid(&["#...#", "#...#", "#...#", "#####"]);
        let mut l = Labeler::new(w, h);
        let comps = l.label(&g, &[]);
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].cells, 11);
    }

    #[test]
    fn zones_are_collected_and_state_does_not_leak_between_frames() {
        let (g, w, h) = grid(&["##..", "....", "..##"]);
        let zones: Vec<u32> = (0..12).map(|i| if i < 4 { 0b01 } else { 0b10 }).collect();
        let mut l = Labeler::new(w, h);
        let comps = l.label(&g, &zones).to_vec();
        assert_eq!(
            comps.iter().map(|c| c.zones).collect::<Vec<_>>(),
            [0b01, 0b10]
        );
        let (g2, _, _) = grid(&["....", "....", "...#"]);
        let comps = l.label(&g2, &zones);
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].cells, 1);
        assert!(l.component_of(0).is_none());
    }

    #[test]
    fn full_grid_is_one_component() {
        let mut l = Labeler::new(160, 90);
        let comps = l.label(&[1; 160 * 90], &[]);
        assert_eq!(comps.len(), 1);
        assert_eq!(comps[0].cells, 160 * 90);
    }

    #[test]
    fn checkerboard_is_one_component_by_diagonals() {
        let g: Vec<u8> = (0..64)
            .map(|i| u8::from((i % 8 + i / 8) % 2 == 0))
            .collect();
        let mut l = Labeler::new(8, 8);
        assert_eq!(l.label(&g, &[]).len(), 1);
    }
}
