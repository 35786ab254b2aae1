//! Vigil's cloud tier: an offsite copy of the footage on S3-compatible object storage,
//! encrypted on the recorder to the owner's age recipients, so that the storage provider
//! (and whoever steals the bucket credentials) sees only opaque names and ciphertext.
//! `docs/cloud.md` has the threat model and the object layout.
//!
//! - [`keys`]: age identities and recipients, `vigil cloud keygen`, whole-object
//!   encryption.
//! - [`layout`]: object names and the manifest format (sans-IO).
//! - [`cut`]: which fragments go into which part (sans-IO).
//! - [`uploader`]: the local-first upload task: the queue is in the recorder's index, so
//!   recording never waits on the network and nothing is lost across restarts.
//! - [`restore`]: `vigil cloud ls` and `vigil cloud restore`, from the bucket and an
//!   identity alone, fetching only the byte ranges a clip needs.
//! - [`playback`]: cloud-only footage in the web timeline, when the owner keeps an identity
//!   on the recorder.

pub mod config;
pub mod cut;
pub mod keys;
pub mod layout;
pub mod playback;
pub mod restore;
pub mod share;
pub mod store;
pub mod uploader;

pub use config::CloudConfig;
pub use uploader::{CloudStatus, Uploader};

/// Errors of the cloud tier.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object store refused or failed a request.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The configuration cannot be used.
    #[error("cloud configuration: {0}")]
    Config(String),
    /// A key, recipient or identity is malformed, or no identity opens an object.
    #[error("{0}")]
    Key(String),
    /// Encryption or decryption failed (a wrong key, or a corrupt or truncated object).
    #[error("{context}: {message}")]
    Crypto {
        /// Which object or file.
        context: String,
        /// What went wrong.
        message: String,
    },
    /// A manifest or key object does not parse.
    #[error("{0}")]
    Corrupt(String),
    /// The recorder's index or files.
    #[error(transparent)]
    Recorder(#[from] vigil_recorder::Error),
    /// A local file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bucket holds nothing for the request.
    #[error("{0}")]
    NotFound(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
