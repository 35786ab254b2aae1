//! The crate's error type.

use std::path::PathBuf;

/// What went wrong in a source, the encoder, the decoder or a conversion.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// A configuration value is out of range (size, frame rate, bit rate …).
    #[error("invalid camera configuration: {0}")]
    InvalidConfig(String),
    /// A source specification string could not be understood.
    #[error("invalid source {spec:?}: {reason}")]
    InvalidSource {
        /// The string as given.
        spec: String,
        /// Why it was rejected and what is accepted.
        reason: String,
    },
    /// OpenH264 refused to encode.
    #[error("H.264 encoder: {0}")]
    Encoder(String),
    /// OpenH264 could not decode the bitstream.
    #[error("H.264 decoder: {0}")]
    Decoder(String),
    /// A file or device could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or device.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A media file is corrupt, truncated or of an unsupported kind.
    #[error("{}: {reason}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A raw picture buffer does not match its declared size or format.
    #[error("invalid picture: {0}")]
    InvalidPicture(String),
    /// JPEG decoding or encoding failed.
    #[error("JPEG: {0}")]
    Jpeg(String),
    /// A snapshot was asked of a stream that has no decodable picture yet.
    #[error("no decodable picture: {0}")]
    NoPicture(String),
    /// A capture device failed or offers nothing usable.
    #[error("capture device: {0}")]
    Device(String),
    /// A worker thread could not be started.
    #[error("could not start thread: {0}")]
    Thread(#[source] std::io::Error),
}
