//! Video sources and the H.264 encoder that feed Vigil's stream hubs.

pub mod convert;
pub mod decoder;
pub mod encoder;
mod error;
pub mod frame;
mod nal;
pub mod snapshot;
pub mod testsrc;

pub use decoder::H264Decoder;
pub use encoder::{EncoderConfig, H264Encoder};
pub use error::CameraError;
pub use frame::I420Frame;
pub use snapshot::snapshot_jpeg;
