//! Sans-IO media code for Vigil: the encoded access unit every part passes around,
//! H.264 and H.265 bitstream handling, RTP packetization and SDP.
//!
//! Nothing here touches a socket, a file or a clock; callers feed bytes and timestamps
//! in and get bytes and events out, so every function is unit-testable and fuzzable.

pub mod access_unit;
pub mod audio;
pub mod fmp4;
pub mod h264;
pub mod h265;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod time;

pub use access_unit::{AccessUnit, Codec, StreamParams};

#[doc(hidden)]
pub mod fuzzing;
