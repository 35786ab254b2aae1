//! Hysteresis that turns per-frame motion into event start and end transitions.
//!
//! ```text
//!            motion                 motion for >= min_duration
//!   Idle ─────────────► Pending ───────────────────────────────► Active ──┐ motion
//!    ▲                    │ quiet                                  │  ▲───┘
//!    └────────────────────┘                                        │ quiet for >= cooldown
//!    ▲─────────────────────────────────────────────────────────────┘ (End)
//! ```
//!
//! A start is *reported* when it is confirmed (after `min_duration`) but *dated* at the first
//! frame of the motion that confirmed it; an end is reported after `cooldown` but dated at the
//! first quiet frame. So stored events match what happened, and the pre-roll needed by a motion
//! recorder is `min_duration` plus a margin.

use crate::regions::BBox;

/// A transition of one [`Track`].
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Motion persisted for `min_duration`.
    Started {
        /// When the motion began, µs.
        start_us: i64,
        /// Zone bits seen from the first motion frame to confirmation.
        zones: u32,
    },
    /// No motion for `cooldown`.
    Ended {
        /// When the event's motion began, µs.
        start_us: i64,
        /// The first quiet frame, µs.
        end_us: i64,
        /// Highest score during the event.
        peak: f32,
        /// Union of the event's region boxes.
        bbox: BBox,
        /// Zone bits seen during the event.
        zones: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Pending,
    Active,
}

/// One motion observation fed to [`Track::step`].
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Frame time, µs.
    pub ts_us: i64,
    /// Whether this frame has motion for the track.
    pub motion: bool,
    /// The track's score in this frame.
    pub score: f32,
    /// Union of this frame's region boxes for the track, if any.
    pub bbox: Option<BBox>,
    /// Zone bits of this frame's regions.
    pub zones: u32,
}

/// Hysteresis state of the camera or of one zone.
#[derive(Debug, Clone)]
pub struct Track {
    min_duration_us: i64,
    cooldown_us: i64,
    phase: Phase,
    since_us: i64,
    quiet_since: Option<i64>,
    peak: f32,
    bbox: Option<BBox>,
    zones: u32,
}

impl Track {
    /// A track that starts events after `min_duration_us` of motion and ends them after
    /// `cooldown_us` without.
    pub fn new(min_duration_us: i64, cooldown_us: i64) -> Self {
        Self {
            min_duration_us,
            cooldown_us,
            phase: Phase::Idle,
            since_us: 0,
            quiet_since: None,
            peak: 0.0,
            bbox: None,
            zones: 0,
        }
    }

    /// Whether an event is open (started and not ended).
    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    fn accumulate(&mut self, o: &Observation) {
        self.peak = self.peak.max(o.score);
        self.zones |= o.zones;
        if let Some(b) = o.bbox {
            self.bbox = Some(self.bbox.map_or(b, |a| a.union(&b)));
        }
    }

    /// Feeds one frame. Timestamps should not go backwards; if they do, the elapsed time counts
    /// as zero (saturating arithmetic), so nothing panics and no event starts or ends early.
    pub fn step(&mut self, o: Observation) -> Option<Transition> {
        match (self.phase, o.motion) {
            (Phase::Idle, false) => None,
            (Phase::Idle, true) => {
                self.phase = Phase::Pending;
                self.since_us = o.ts_us;
                self.peak = 0.0;
                self.bbox = None;
                self.zones = 0;
                self.accumulate(&o);
                self.confirm(o.ts_us)
            }
            (Phase::Pending, true) => {
                self.accumulate(&o);
                self.confirm(o.ts_us)
            }
            (Phase::Pending, false) => {
                self.phase = Phase::Idle;
                None
            }
            (Phase::Active, true) => {
                self.quiet_since = None;
                self.accumulate(&o);
                None
            }
            (Phase::Active, false) => {
                let quiet = *self.quiet_since.get_or_insert(o.ts_us);
                (o.ts_us.saturating_sub(quiet) >= self.cooldown_us).then(|| self.end(quiet))
            }
        }
    }

    fn confirm(&mut self, ts_us: i64) -> Option<Transition> {
        if ts_us.saturating_sub(self.since_us) < self.min_duration_us {
            return None;
        }
        self.phase = Phase::Active;
        self.quiet_since = None;
        Some(Transition::Started {
            start_us: self.since_us,
            zones: self.zones,
        })
    }

    fn end(&mut self, end_us: i64) -> Transition {
        self.phase = Phase::Idle;
        self.quiet_since = None;
        Transition::Ended {
            start_us: self.since_us,
            end_us,
            peak: self.peak,
            bbox: self.bbox.unwrap_or_default(),
            zones: self.zones,
        }
    }

    /// Ends an open event now (the stream stopped), dated at the first quiet frame if the
    /// cooldown had begun, else at `ts_us`. A pending start is dropped.
    pub fn finish(&mut self, ts_us: i64) -> Option<Transition> {
        match self.phase {
            Phase::Active => {
                let end = self.quiet_since.unwrap_or(ts_us);
                Some(self.end(end))
            }
            _ => {
                self.phase = Phase::Idle;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: i64 = 200_000; // 5 fps

    fn obs(i: i64, motion: bool) -> Observation {
        Observation {
            ts_us: i * FRAME,
            motion,
            score: if motion { 0.1 + i as f32 / 100.0 } else { 0.0 },
            bbox: motion.then_some(BBox {
                x: 0.1 * (i % 5) as f32,
                y: 0.2,
                width: 0.1,
                height: 0.1,
            }),
            zones: if motion { 1 << (i % 2) } else { 0 },
        }
    }

    /// Runs a motion pattern (`#` motion, `.` quiet, one char per frame) and returns transitions
    /// with the frame index at which each was reported.
    fn run(t: &mut Track, pattern: &str) -> Vec<(i64, Transition)> {
        pattern
            .chars()
            .enumerate()
            .filter_map(|(i, c)| t.step(obs(i as i64, c == '#')).map(|tr| (i as i64, tr)))
            .collect()
    }

    #[test]
    fn start_waits_for_min_duration_and_is_dated_at_first_motion() {
        let mut t = Track::new(400_000, 1_000_000);
        let out = run(&mut t, "..#.##.####");
        // "#." and "##." are too short; the run starting at frame 7 lasts 0.4 s at frame 9.
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 9);
        assert_eq!(
            out[0].1,
            Transition::Started {
                start_us: 7 * FRAME,
                zones: 0b11
            }
        );
        assert!(t.is_active());
    }

    #[test]
    fn end_waits_for_cooldown_and_is_dated_at_first_quiet_frame() {
        let mut t = Track::new(0, 1_000_000);
        // Starts at 0; short gaps (< 1 s) do not end it; ends after 5 quiet frames from frame 9.
        let out = run(&mut t, "###..###.#.......");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, 0);
        let (at, end) = &out[1];
        assert_eq!(*at, 15);
        match end {
            Transition::Ended {
                start_us,
                end_us,
                peak,
                bbox,
                zones,
            } => {
                assert_eq!((*start_us, *end_us), (0, 10 * FRAME));
                assert!((peak - 0.19).abs() < 1e-6);
                assert_eq!(*zones, 0b11);
                assert!((bbox.x - 0.0).abs() < 1e-6 && (bbox.width - 0.5).abs() < 1e-6);
            }
            other => panic!("{other:?}"),
        }
        assert!(!t.is_active());
    }

    #[test]
    fn a_second_event_resets_its_accumulators() {
        let mut t = Track::new(0, 200_000);
        let out = run(&mut t, "##...#..");
        assert_eq!(out.len(), 4);
        match &out[3].1 {
            Transition::Ended {
                start_us, zones, ..
            } => {
                assert_eq!(*start_us, 5 * FRAME);
                assert_eq!(*zones, 0b10);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backwards_time_neither_panics_nor_ends_early() {
        let mut t = Track::new(0, 1_000_000);
        assert!(t.step(obs(10, true)).is_some());
        assert!(t.step(obs(11, false)).is_none());
        assert!(t.step(obs(-1000, false)).is_none());
        assert!(t
            .step(Observation {
                ts_us: i64::MIN,
                ..obs(0, false)
            })
            .is_none());
        assert!(t
            .step(Observation {
                ts_us: i64::MAX,
                ..obs(0, false)
            })
            .is_some());
    }

    #[test]
    fn finish_closes_an_open_event_only() {
        let mut t = Track::new(0, 1_000_000);
        assert!(t.finish(0).is_none());
        run(&mut t, "##.");
        match t.finish(99) {
            Some(Transition::Ended { end_us, .. }) => assert_eq!(end_us, 2 * FRAME),
            other => panic!("{other:?}"),
        }
        assert!(t.finish(100).is_none());
    }
}
