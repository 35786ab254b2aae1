//! Typed errors: configuration problems are found once, in [`crate::MotionDetector::new`];
//! frame problems (a plane that does not match the configuration) per call.

use thiserror::Error;

/// Why a [`crate::Polygon`] cannot be used as a zone or mask.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PolygonError {
    /// Fewer than three vertices enclose no area.
    #[error("a polygon needs at least 3 points, got {0}")]
    TooFewPoints(usize),
    /// More vertices than we rasterise (a bound on configuration cost).
    #[error("a polygon may have at most {max} points, got {got}")]
    TooManyPoints {
        /// Points given.
        got: usize,
        /// The limit, [`crate::zones::MAX_POLYGON_POINTS`].
        max: usize,
    },
    /// A coordinate is NaN, infinite or outside the normalized range 0..=1.
    #[error("point {index} ({x}, {y}) is outside the normalized range 0..=1")]
    OutOfRange {
        /// Index of the offending vertex.
        index: usize,
        /// Its x coordinate.
        x: f32,
        /// Its y coordinate.
        y: f32,
    },
}

/// A [`crate::MotionConfig`] that cannot be used; the message says which field and why.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// Width or height is zero or larger than [`crate::config::MAX_DIMENSION`].
    #[error("frame size {width}x{height} is not supported (1..={max} per side)")]
    Dimensions {
        /// Configured width.
        width: u32,
        /// Configured height.
        height: u32,
        /// Largest accepted side.
        max: u32,
    },
    /// The working grid width is zero or above [`crate::config::MAX_GRID_WIDTH`].
    #[error("grid_width must be within 1..=1024")]
    GridWidth,
    /// A numeric setting is NaN or outside its range.
    #[error("{field} = {value} is outside {range}")]
    OutOfRange {
        /// Name of the field, as in [`crate::MotionConfig`].
        field: &'static str,
        /// The value given.
        value: f64,
        /// The accepted range, for the message.
        range: &'static str,
    },
    /// A zone has an empty name.
    #[error("zone {0} has an empty name")]
    EmptyName(usize),
    /// Two zones share a name; events name zones, so names must be unique.
    #[error("zone name {0:?} is used twice")]
    DuplicateZone(String),
    /// More zones than the per-cell zone bitmask holds.
    #[error("at most {max} zones are supported, got {got}")]
    TooManyZones {
        /// Zones given.
        got: usize,
        /// The limit, [`crate::zones::MAX_ZONES`].
        max: usize,
    },
    /// A zone or mask polygon is malformed.
    #[error("{what}: {source}")]
    Polygon {
        /// `zone "name"` or `mask N`.
        what: String,
        /// What is wrong with it.
        #[source]
        source: PolygonError,
    },
    /// A zone covers no cell of the working grid once masks are removed (too small, or fully masked).
    #[error(
        "zone {0:?} covers no unmasked cell of the working grid; make it larger or remove a mask"
    )]
    EmptyZone(String),
    /// The masks cover the whole frame, so nothing could ever be detected.
    #[error("masks cover the whole frame")]
    AllMasked,
}

/// A luma plane that does not match the detector's configuration. Nothing is updated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The stride is smaller than the configured width.
    #[error("stride {stride} is smaller than the width {width}")]
    Stride {
        /// Stride given.
        stride: usize,
        /// Configured width.
        width: usize,
    },
    /// The buffer is too short for `stride * (height - 1) + width` bytes.
    #[error("luma plane has {got} bytes, {needed} needed")]
    TooShort {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        needed: usize,
    },
}
