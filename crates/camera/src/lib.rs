//! Video sources and the H.264 encoder that feed Vigil's stream hubs.

mod error;
pub mod frame;
pub mod testsrc;

pub use error::CameraError;
pub use frame::I420Frame;
