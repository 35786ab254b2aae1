//! Ingest from any RTSP camera into a [`vigil_hub::Hub`], without re-encoding.
//!
//! The RTSP/RTP client is [`retina`]'s. What this module adds is supervision, so that a
//! recorder never has to care about the network:
//!
//! - H.264 and H.265 access units go into the hub untouched (4-byte length-prefixed NAL
//!   units, SPS/PPS (and VPS) repeated in IDR pictures; an H.265 key frame is any IRAP
//!   picture, CRA and BLA included), with [`vigil_media::StreamParams`] shared by `Arc`
//!   while unchanged, pts on one monotonic 90 kHz timeline across reconnects
//!   ([`timeline`]), and the wall-clock time of reception as `capture_us`.
//! - Audio (AAC, G.711) frames go into the same hub, in order with the video, if the hub
//!   was made with [`vigil_hub::Hub::with_audio`] (and are dropped otherwise).
//! - A session with no video frame for `stall_timeout` (4 s) is dropped; reconnects use
//!   jittered exponential back-off from 0.5 s to 30 s, reset to its initial step by any
//!   session that published frames ([`backoff`]). While backing off from a camera that
//!   does not answer RTSP (port closed, or hung), an `OPTIONS` probe every 0.5 s notices
//!   when it answers again and reconnects at once. After a reconnect nothing is published
//!   before a key frame.
//! - With TCP transport, while no live subscriber watches (see
//!   [`vigil_hub::Hub::live_subscribers`]), the kernel gathers about 50 ms of the stream
//!   before waking the reader (`SO_RCVLOWAT`, [`batching`]): far fewer reads and wake-ups.
//! - The state is a [`watch`] value ([`IngestStatus`]). Outages and timestamp jumps go
//!   into the hub as [`Gap`] and [`Discontinuity`] items, just before the access unit
//!   where they take effect, so a recorder sees them in order with the media.
//!
//! ```no_run
//! # async fn example() {
//! use vigil_ingest::{Ingest, IngestConfig};
//! let url = url::Url::parse("rtsp://192.0.2.10/stream1").unwrap();
//! let cfg = IngestConfig::new("porch/main", url).with_credentials("viewer", "secret");
//! let hub = vigil_hub::Hub::with_audio("porch/main", 256);
//! let ingest = Ingest::spawn(cfg, hub.clone());
//! let mut sub = hub.subscribe_bulk();
//! # let _ = &mut sub;
//! // ... record `sub.recv().await`: video, audio, gaps and discontinuities in order ...
//! ingest.stop().await;
//! # }
//! ```

mod audio;
pub mod backoff;
pub mod batching;
pub mod config;
mod probe;
mod session;
pub mod socket;
pub mod status;
mod supervisor;
pub mod timeline;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vigil_hub::clock::{Clock, RealClock};
use vigil_hub::Hub;

pub use backoff::{BackoffConfig, Liveness};
pub use config::{camera_url, CameraStream, CameraUrlError, IngestConfig, Transport};
pub use session::IngestError;
pub use status::{IngestState, IngestStatus};
pub use vigil_hub::{Discontinuity, Gap};
pub use vigil_media::audio::{AudioCodec, AudioFrame, AudioParams};

/// A running ingest of one camera stream. Dropping it stops the ingest (in the
/// background); [`Ingest::stop`] stops it and waits.
pub struct Ingest {
    status: watch::Receiver<IngestStatus>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Ingest {
    /// Starts ingesting `config`'s camera into `hub`. Must be called within a tokio runtime.
    pub fn spawn(config: IngestConfig, hub: Hub) -> Ingest {
        Self::spawn_with_clock(config, hub, Arc::new(RealClock::new()))
    }

    /// [`spawn`](Self::spawn) on an injected clock: every "now" and every wait of the
    /// supervision (stall timeout, back-off, probes' spacing) reads it, so tests drive
    /// it with a [`vigil_hub::clock::SimClock`].
    pub fn spawn_with_clock(config: IngestConfig, hub: Hub, clock: Arc<dyn Clock>) -> Ingest {
        let (status_tx, status) = watch::channel(IngestStatus::default());
        let (stop, stop_rx) = watch::channel(false);
        let out = supervisor::Outputs { status: status_tx };
        let task =
            tokio::spawn(supervisor::Supervisor::new(config, hub, out, stop_rx, clock).run());
        Ingest {
            status,
            stop,
            task: Some(task),
        }
    }

    /// The status, updated on every state change and about once a second while streaming.
    pub fn status(&self) -> watch::Receiver<IngestStatus> {
        self.status.clone()
    }

    /// Stops the ingest (tearing the RTSP session down) and waits up to 5 s for it.
    /// Publishes an outage in progress as a final [`Gap`] without `resume_pts`.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("ingest did not stop within 5 s");
            }
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
