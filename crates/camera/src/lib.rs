//! Video sources and the H.264 encoder that feed Vigil's stream hubs.

mod clock;
pub mod convert;
pub mod decoder;
pub mod encoder;
mod error;
pub mod file;
pub mod frame;
mod nal;
pub mod negotiate;
mod passthrough;
pub mod pipeline;
pub mod snapshot;
pub mod source;
pub mod testsrc;
#[cfg(feature = "v4l2")]
pub mod v4l2;

pub use decoder::H264Decoder;
pub use encoder::{EncoderConfig, H264Encoder};
pub use error::CameraError;
pub use file::FileSource;
pub use frame::I420Frame;
pub use pipeline::{Camera, CameraConfig, CameraStats, CameraStatus, StreamConfig};
pub use snapshot::snapshot_jpeg;
pub use source::SourceSpec;
