//! The detector: one luma plane in, scores, regions and event transitions out.

use std::sync::Arc;

use crate::background::{BackgroundModel, BackgroundParams, FrameStats};
use crate::config::{micros, threshold_of, MotionConfig};
use crate::downscale::Downscaler;
use crate::error::{ConfigError, FrameError};
use crate::events::{Observation, Track, Transition};
use crate::regions::{BBox, Labeler, Region};
use crate::zones::ZoneMap;

/// What an event is about: the whole camera view, or one named zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Motion anywhere outside the masks.
    Camera,
    /// Motion in the named detection zone.
    Zone(Arc<str>),
}

/// An event transition. Each `Start` is followed by exactly one `End` with the same `id` (the
/// last one possibly from [`MotionDetector::finish`]).
#[derive(Debug, Clone, PartialEq)]
pub enum MotionEvent {
    /// Motion persisted for `min_duration`; reported then, dated at the motion's first frame.
    Start {
        /// Identifier shared with the matching `End`, unique within this detector.
        id: u64,
        /// Camera or zone.
        scope: Scope,
        /// Zones with motion between the first frame and confirmation.
        zones: Vec<Arc<str>>,
        /// When the motion began, µs (the `ts_us` of its first frame).
        ts_us: i64,
    },
    /// No motion for `cooldown`; reported then, dated at the first quiet frame.
    End {
        /// Identifier of the matching `Start`.
        id: u64,
        /// Camera or zone.
        scope: Scope,
        /// Zones with motion during the whole event.
        zones: Vec<Arc<str>>,
        /// When the event began, µs (same as the `Start`'s `ts_us`).
        start_us: i64,
        /// When the motion stopped, µs (the first frame without motion).
        ts_us: i64,
        /// Highest per-frame score during the event (camera score or zone score).
        peak_score: f32,
        /// Union of the event's region boxes, normalized.
        bbox: BBox,
    },
}

/// The score of one detection zone in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneScore {
    /// Zone name.
    pub name: Arc<str>,
    /// Changed cells in the zone that belong to regions of at least the zone's minimum area,
    /// divided by the zone's unmasked cells: 0.0..=1.0.
    pub score: f32,
    /// The zone has motion in this frame (score > 0).
    pub motion: bool,
}

/// Everything one frame produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameResult {
    /// Changed cells in regions of at least `min_area`, divided by unmasked cells: 0.0..=1.0.
    pub score: f32,
    /// The camera has motion in this frame (score > 0).
    pub motion: bool,
    /// One entry per configured zone, in configuration order.
    pub zone_scores: Vec<ZoneScore>,
    /// Regions that count for the camera or for a zone, largest first, at most `max_regions`.
    pub regions: Vec<Region>,
    /// Event transitions reported by this frame.
    pub events: Vec<MotionEvent>,
    /// Background model statistics (offset, noise, threshold, re-learn).
    pub stats: FrameStats,
}

/// Event bookkeeping of one scope.
#[derive(Debug, Clone)]
struct Scoped {
    scope: Scope,
    track: Track,
    open_id: Option<u64>,
}

/// Motion detector for one camera stream. Sans-IO: feed decoded luma planes with their
/// timestamps to [`MotionDetector::process`]; it never blocks, spawns or reads a clock.
///
/// All buffers are allocated in [`MotionDetector::new`]; per frame only the result's small
/// vectors (zone scores, regions, events) are allocated.
#[derive(Debug, Clone)]
pub struct MotionDetector {
    config: MotionConfig,
    down: Downscaler,
    grid: Vec<u8>,
    changed: Vec<u8>,
    background: BackgroundModel,
    zones: ZoneMap,
    labeler: Labeler,
    /// Smallest region in cells for the camera, and per zone.
    min_cells: u32,
    zone_min_cells: Vec<u32>,
    zone_counts: Vec<u32>,
    /// Camera-scope motion only inside zones ([`MotionConfig::zones_only`] with zones).
    zones_only: bool,
    /// Cells the camera score is a fraction of.
    camera_cells: u32,
    camera: Scoped,
    zone_tracks: Vec<Scoped>,
    next_id: u64,
}

impl MotionDetector {
    /// Validates `config` and allocates every buffer.
    pub fn new(config: MotionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let (gw, gh) = config.grid_size();
        let cells = gw * gh;
        let zones = ZoneMap::build(&config.zones, &config.masks, gw, gh)?;
        let to_cells = |area: f32| ((area * cells as f32).ceil() as u32).max(1);
        let min_cells = to_cells(config.min_area);
        let zones_only = config.zones_only && !config.zones.is_empty();
        let camera_cells = if zones_only {
            zones.cell_zones.iter().filter(|&&b| b != 0).count() as u32
        } else {
            zones.active_cells
        };
        let zone_min_cells = config
            .zones
            .iter()
            .map(|z| to_cells(z.min_area.unwrap_or(config.min_area)))
            .collect();
        let track = |min: std::time::Duration, cool: std::time::Duration| {
            Track::new(micros(min), micros(cool))
        };
        let zone_tracks = config
            .zones
            .iter()
            .zip(&zones.names)
            .map(|(z, name)| Scoped {
                scope: Scope::Zone(name.clone()),
                track: track(
                    z.min_duration.unwrap_or(config.min_duration),
                    z.cooldown.unwrap_or(config.cooldown),
                ),
                open_id: None,
            })
            .collect();
        let params = BackgroundParams {
            base_threshold: config.base_threshold(),
            noise_factor: config.noise_factor,
            learning_rate: config.learning_rate,
            foreground_rate: config.foreground_learning_rate,
            relearn_fraction: config.relearn_fraction,
        };
        let mut background = BackgroundModel::new(cells, params);
        if config.zones.iter().any(|z| z.sensitivity.is_some()) {
            // Per cell: the lowest threshold of the zones covering it (the most sensitive
            // wins), else the camera's.
            let base = config.base_threshold();
            let zone_t: Vec<u8> = config
                .zones
                .iter()
                .map(|z| z.sensitivity.map_or(base, threshold_of))
                .collect();
            let bases = zones
                .cell_zones
                .iter()
                .map(|&bits| {
                    (0..zone_t.len())
                        .filter(|z| bits & (1 << z) != 0)
                        .filter_map(|z| zone_t.get(z).copied())
                        .min()
                        .unwrap_or(base)
                })
                .collect();
            background.set_cell_base(bases);
        }
        Ok(Self {
            down: Downscaler::new(config.width as usize, config.height as usize, gw, gh),
            grid: vec![0; cells],
            changed: vec![0; cells],
            background,
            labeler: Labeler::new(gw, gh),
            min_cells,
            zone_min_cells,
            zone_counts: vec![0; config.zones.len()],
            zones_only,
            camera_cells,
            camera: Scoped {
                scope: Scope::Camera,
                track: track(config.min_duration, config.cooldown),
                open_id: None,
            },
            zone_tracks,
            zones,
            next_id: 0,
            config,
        })
    }

    /// The configuration this detector was built with.
    pub fn config(&self) -> &MotionConfig {
        &self.config
    }

    /// Working grid size `(width, height)` in cells.
    pub fn grid_size(&self) -> (usize, usize) {
        (self.down.grid_width(), self.down.grid_height())
    }

    /// Forgets the background (after a PTZ move or a stream discontinuity); the next frame
    /// initialises it. Open events stay open and end by cooldown.
    pub fn reset_background(&mut self) {
        self.background.reset();
    }

    /// Processes one luma plane: `luma` holds `height` rows of `width` bytes, `stride` bytes
    /// apart (the last row may be unpadded); `ts_us` is the frame's time in microseconds, not
    /// decreasing. A plane that does not fit the configuration is an error and changes nothing.
    pub fn process(
        &mut self,
        luma: &[u8],
        stride: usize,
        ts_us: i64,
    ) -> Result<FrameResult, FrameError> {
        self.down.run(luma, stride, &mut self.grid)?;
        let stats = self
            .background
            .update(&self.grid, &self.zones.active, &mut self.changed);
        self.labeler.label(&self.changed, &self.zones.cell_zones);

        // Count changed cells in regions large enough for the camera and for each zone.
        let mut camera_count = 0u32;
        self.zone_counts.fill(0);
        if stats.changed > 0 {
            for (i, (&c, &bits)) in self.changed.iter().zip(&self.zones.cell_zones).enumerate() {
                if c == 0 {
                    continue;
                }
                let Some(comp) = self.labeler.component_of(i) else {
                    continue;
                };
                let counts = comp.cells >= self.min_cells && (!self.zones_only || bits != 0);
                camera_count += u32::from(counts);
                let mut bits = bits;
                while bits != 0 {
                    let z = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let (Some(n), Some(&min)) =
                        (self.zone_counts.get_mut(z), self.zone_min_cells.get(z))
                    {
                        *n += u32::from(comp.cells >= min);
                    }
                }
            }
        }

        // Regions, and per scope the union of their boxes.
        let total = self.grid.len() as f32;
        let mut camera_box: Option<BBox> = None;
        let mut zone_boxes: Vec<Option<BBox>> = vec![None; self.zone_counts.len()];
        let mut regions = Vec::new();
        for comp in self.labeler.components() {
            let for_camera = comp.cells >= self.min_cells && (!self.zones_only || comp.zones != 0);
            let mut zone_bits = 0u32;
            for (z, &min) in self.zone_min_cells.iter().enumerate() {
                if comp.zones & (1 << z) != 0 && comp.cells >= min {
                    zone_bits |= 1 << z;
                }
            }
            if !for_camera && zone_bits == 0 {
                continue;
            }
            let bbox = self.labeler.bbox(comp);
            let merge = |acc: &mut Option<BBox>| *acc = Some(acc.map_or(bbox, |a| a.union(&bbox)));
            if for_camera {
                merge(&mut camera_box);
            }
            for (z, b) in zone_boxes.iter_mut().enumerate() {
                if zone_bits & (1 << z) != 0 {
                    merge(b);
                }
            }
            regions.push((comp.cells, bbox, zone_bits));
        }
        regions.sort_by_key(|r| std::cmp::Reverse(r.0));
        regions.truncate(self.config.max_regions);
        let regions: Vec<Region> = regions
            .into_iter()
            .map(|(cells, bbox, bits)| Region {
                bbox,
                area: cells as f32 / total,
                cells,
                zones: self.zones.names_of(bits),
            })
            .collect();

        let score = camera_count as f32 / self.camera_cells.max(1) as f32;
        let zone_scores: Vec<ZoneScore> = self
            .zones
            .names
            .iter()
            .zip(&self.zone_counts)
            .zip(&self.zones.zone_cells)
            .map(|((name, &n), &cells)| ZoneScore {
                name: name.clone(),
                score: n as f32 / cells.max(1) as f32,
                motion: n > 0,
            })
            .collect();
        let zone_motion_bits = zone_scores
            .iter()
            .enumerate()
            .filter(|(_, s)| s.motion)
            .fold(0u32, |acc, (z, _)| acc | (1 << z));

        // Hysteresis: starts camera-first, ends zone-first, so events nest like brackets.
        let mut events = Vec::new();
        let camera_obs = Observation {
            ts_us,
            motion: camera_count > 0,
            score,
            bbox: camera_box,
            zones: zone_motion_bits,
        };
        let camera_tr = self.camera.track.step(camera_obs);
        let mut camera_end = None;
        if let Some(tr) = camera_tr {
            match emit(&mut self.camera, &mut self.next_id, &self.zones, tr) {
                e @ MotionEvent::Start { .. } => events.push(e),
                e => camera_end = Some(e),
            }
        }
        for (z, scoped) in self.zone_tracks.iter_mut().enumerate() {
            let (score, bbox) = (
                zone_scores.get(z).map_or(0.0, |s| s.score),
                zone_boxes.get(z).copied().flatten(),
            );
            let obs = Observation {
                ts_us,
                motion: score > 0.0,
                score,
                bbox,
                zones: 1 << z,
            };
            if let Some(tr) = scoped.track.step(obs) {
                events.push(emit(scoped, &mut self.next_id, &self.zones, tr));
            }
        }
        events.extend(camera_end);

        Ok(FrameResult {
            score,
            motion: camera_count > 0,
            zone_scores,
            regions,
            events,
            stats,
        })
    }

    /// Ends every open event at `ts_us` (the stream stopped or the detector is being replaced),
    /// zone events first.
    pub fn finish(&mut self, ts_us: i64) -> Vec<MotionEvent> {
        let mut events = Vec::new();
        for scoped in &mut self.zone_tracks {
            if let Some(tr) = scoped.track.finish(ts_us) {
                events.push(emit(scoped, &mut self.next_id, &self.zones, tr));
            }
        }
        if let Some(tr) = self.camera.track.finish(ts_us) {
            events.push(emit(&mut self.camera, &mut self.next_id, &self.zones, tr));
        }
        events
    }
}

/// Turns a track transition into a public event, assigning or closing the scope's event id.
fn emit(scoped: &mut Scoped, next_id: &mut u64, zones: &ZoneMap, tr: Transition) -> MotionEvent {
    match tr {
        Transition::Started {
            start_us,
            zones: bits,
        } => {
            let id = *next_id;
            *next_id += 1;
            scoped.open_id = Some(id);
            MotionEvent::Start {
                id,
                scope: scoped.scope.clone(),
                zones: zones.names_of(bits),
                ts_us: start_us,
            }
        }
        Transition::Ended {
            start_us,
            end_us,
            peak,
            bbox,
            zones: bits,
        } => MotionEvent::End {
            // A track only ends what it started, so the id is always there.
            id: scoped.open_id.take().unwrap_or(u64::MAX),
            scope: scoped.scope.clone(),
            zones: zones.names_of(bits),
            start_us,
            ts_us: end_us,
            peak_score: peak,
            bbox,
        },
    }
}
