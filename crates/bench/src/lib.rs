//! Whole-system benchmarks for Vigil, each printing Vigil's figure beside a peer's in one run.
//!
//! Binaries (run with `cargo run --release -p vigil-bench --bin NAME -- --help`):
//! - `fanout`: server CPU and memory per RTSP client, Vigil vs GStreamer's `gst-rtsp-server`,
//!   both serving the same H.264 file without re-encoding, to 1, 10 and 100 TCP clients.
//! - `latency`: glass-to-glass-ish latency of `vigil camera --source testsrc`, read from the
//!   capture time burned into each frame, after decoding on the client.
//! - `record`: recorder CPU per stream-hour and memory per stream, `vigil serve` vs one
//!   `ffmpeg -c copy -f segment` per camera (what Frigate runs), 1, 16 and 64 streams, with a
//!   check from the index that no frame was lost.
//! - `live`: server CPU per live viewer, in-process or of `vigil demo`, over the live WebSocket
//!   (MSE) or WebRTC (WHEP, [`whep_viewer`]).
//! - `soak`: memory, descriptors and threads of `vigil serve` (N cameras recording) or
//!   `vigil demo` over hours, with live viewers coming and going; the RSS slope after warm-up.
//!
//! The library holds the pieces they use (the RTSP client is `vigil_testkit::rtsp::play`): an
//! RTP H.264 depacketizer ([`depacketize`]), `/proc` sampling ([`procstat`]), guards that start
//! and always stop the servers ([`servers`]) and other children ([`children`]), a frame count
//! from the recorder's index ([`recindex`]) and a live viewer's side of the web app
//! ([`live_client`]). None of this runs in `cargo test` except unit tests of the pure parts.

pub mod browser;
pub mod children;
pub mod depacketize;
pub mod live_client;
pub mod procstat;
pub mod recindex;
pub mod servers;
pub mod whep_viewer;

/// Errors of the benchmark harness.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket or process I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A server process did not come up.
    #[error("server: {0}")]
    Server(String),
    /// A client request (TLS, WebSocket, setup) failed.
    #[error("client: {0}")]
    Client(String),
}

impl BenchError {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Io { context, source }
    }
}

/// Percentile (nearest-rank) of an ascending-sorted slice; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
