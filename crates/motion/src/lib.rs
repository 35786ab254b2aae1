//! Sans-IO motion detection for Vigil: pure functions over luma planes.
//!
//! The detector never decodes, sleeps, reads a clock or touches a socket. The caller decodes
//! the sub stream (at about 5 fps), and feeds each luma plane with its timestamp:
//!
//! ```
//! use vigil_motion::{MotionConfig, MotionDetector, MotionEvent, Polygon, Zone};
//!
//! let mut config = MotionConfig::new(640, 360);
//! config.zones.push(Zone::new("driveway", Polygon::rect(0.0, 0.5, 0.5, 1.0)));
//! config.masks.push(Polygon::rect(0.8, 0.0, 1.0, 0.2)); // the neighbour's tree
//! let mut detector = MotionDetector::new(config)?;
//!
//! let luma = vec![128u8; 640 * 360];
//! for i in 0..10 {
//!     let result = detector.process(&luma, 640, i * 200_000)?;
//!     for event in result.events {
//!         match event {
//!             MotionEvent::Start { scope, ts_us, .. } => println!("{scope:?} started at {ts_us}"),
//!             MotionEvent::End { scope, peak_score, .. } => println!("{scope:?} ended, {peak_score}"),
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Per frame: [`downscale`] to a ~160-cell-wide grid (box filter) → [`background`] model
//! (running average, global brightness compensation, noise-adaptive threshold, re-learn on
//! global changes) → changed cells outside the masks → [`regions`] (8-connected components,
//! minimum area) → camera and per-[`zones`] scores → [`events`] hysteresis (minimum duration,
//! cooldown) → [`MotionEvent`]s.

pub mod background;
pub mod config;
pub mod detector;
pub mod downscale;
pub mod error;
pub mod events;
pub mod regions;
pub mod zones;

#[doc(hidden)]
pub mod scene;

pub use background::FrameStats;
pub use config::MotionConfig;
pub use detector::{FrameResult, MotionDetector, MotionEvent, Scope, ZoneScore};
pub use error::{ConfigError, FrameError, PolygonError};
pub use regions::{BBox, Region};
pub use zones::{Point, Polygon, Zone};
