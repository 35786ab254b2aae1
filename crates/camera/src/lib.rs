//! Video sources and the H.264 encoder that feed Vigil's stream hubs.

mod clock;
pub mod convert;
pub mod decoder;
pub mod encoder;
pub mod file;
mod error;
pub mod frame;
mod nal;
pub mod snapshot;
pub mod source;
pub mod testsrc;

pub use decoder::H264Decoder;
pub use encoder::{EncoderConfig, H264Encoder};
pub use error::CameraError;
pub use file::FileSource;
pub use frame::I420Frame;
pub use snapshot::snapshot_jpeg;
pub use source::SourceSpec;
