//! What the ingest reports beside the media: its current status (a `watch` value for the
//! UI and health checks). Gaps and discontinuities go into the hub, in order with the
//! access units ([`vigil_hub::Gap`], [`vigil_hub::Discontinuity`]).

use std::time::Duration;

/// The ingest's connection state.
#[derive(Clone, Debug, PartialEq)]
pub enum IngestState {
    /// Connecting: DESCRIBE/SETUP/PLAY in progress, or waiting for the first key frame.
    Connecting,
    /// Access units are flowing into the hub.
    Streaming,
    /// The last attempt failed; the next one starts at `until_wall_us` (µs since the Unix
    /// epoch).
    Backoff {
        /// When the next attempt starts, µs since the Unix epoch.
        until_wall_us: i64,
        /// Why the last attempt or session ended.
        reason: String,
    },
    /// A failure that retrying will not fix (unsupported codec, no video stream,
    /// credentials rejected). Retried slowly, in case the camera is reconfigured.
    Failed(String),
    /// The ingest was stopped.
    Stopped,
}

/// Snapshot of one stream's ingest, published on a `watch` channel: on every state
/// change and about once a second while streaming.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestStatus {
    /// Connection state.
    pub state: IngestState,
    /// Wall-clock time of the last access unit published, µs since the Unix epoch.
    pub last_frame_wall_us: Option<i64>,
    /// Video access units published since the ingest started.
    pub frames: u64,
    /// Video payload bytes published since the ingest started.
    pub bytes: u64,
    /// Sessions started after the first one.
    pub reconnects: u64,
    /// Video bit rate over about the last second, bits per second.
    pub bitrate_bps: u64,
    /// RTP packets the camera sent that never arrived (reported by retina), total.
    pub lost_packets: u64,
    /// The socket's read batch in force (its `SO_RCVLOWAT`, see
    /// [`super::batching`]); 0 while reading as data comes.
    pub read_batch_bytes: u64,
}

impl Default for IngestStatus {
    fn default() -> Self {
        IngestStatus {
            state: IngestState::Connecting,
            last_frame_wall_us: None,
            frames: 0,
            bytes: 0,
            reconnects: 0,
            bitrate_bps: 0,
            lost_packets: 0,
            read_batch_bytes: 0,
        }
    }
}

/// Sans-IO counters behind [`IngestStatus`]: frames, bytes, bit rate over ~1 s windows.
#[derive(Debug)]
pub(crate) struct Meter {
    /// On the ingest's monotonic clock.
    window_start: Option<Duration>,
    window_bytes: u64,
}

/// How long a bit-rate window lasts; also how often counters are published.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

impl Meter {
    pub(crate) fn new() -> Self {
        Meter {
            window_start: None,
            window_bytes: 0,
        }
    }

    /// Counts a frame of `bytes` at `now` into `status`. Returns true when a window closed
    /// and the status is worth publishing.
    pub(crate) fn on_frame(
        &mut self,
        status: &mut IngestStatus,
        now: Duration,
        bytes: usize,
        wall_us: i64,
    ) -> bool {
        let bytes = bytes as u64;
        status.frames += 1;
        status.bytes += bytes;
        status.last_frame_wall_us = Some(wall_us);
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes += bytes;
        let elapsed = now.saturating_sub(start);
        if elapsed < WINDOW {
            return false;
        }
        status.bitrate_bps = (self.window_bytes as f64 * 8.0 / elapsed.as_secs_f64()) as u64;
        self.window_start = Some(now);
        self.window_bytes = 0;
        true
    }

    /// A session ended: the next window starts afresh.
    pub(crate) fn reset_window(&mut self, status: &mut IngestStatus) {
        self.window_start = None;
        self.window_bytes = 0;
        status.bitrate_bps = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_counts_and_publishes_about_once_a_second() {
        let mut m = Meter::new();
        let mut s = IngestStatus::default();
        let t0 = Duration::from_secs(7);
        let mut published = 0;
        // 3 s at 10 fps of 12_500-byte frames = 1 Mbit/s.
        for i in 0..=30u32 {
            if m.on_frame(
                &mut s,
                t0 + Duration::from_millis(100) * i,
                12_500,
                i64::from(i),
            ) {
                published += 1;
            }
        }
        assert_eq!(published, 3);
        assert_eq!(s.frames, 31);
        assert_eq!(s.bytes, 31 * 12_500);
        assert_eq!(s.last_frame_wall_us, Some(30));
        // Each window holds 10 full frames plus the one closing it, over exactly 1 s.
        assert!(
            (1_000_000..=1_100_000).contains(&s.bitrate_bps),
            "{}",
            s.bitrate_bps
        );
        m.reset_window(&mut s);
        assert_eq!(s.bitrate_bps, 0);
        assert_eq!(s.frames, 31, "totals survive a reconnect");
    }
}
