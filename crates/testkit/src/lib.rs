//! Test harnesses shared by Vigil's crates (a dev-dependency only): real peers started for a
//! test and torn down with it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;
pub mod chromedriver;
pub mod ffmpeg;
pub mod mqtt;
pub mod rtsp;
pub mod s3;
pub mod tls;
pub mod totp;
