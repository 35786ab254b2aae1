//! Sans-IO policy for batching the reads of an RTSP/TCP socket while nobody watches live.
//!
//! With RTP interleaved in the RTSP connection (RFC 2326 §10.12) a camera writes each
//! RTP packet as it is ready, and the kernel wakes the reader for each few of them: ~90
//! `readv` calls per stream-second for a 4 Mbit/s 30 fps camera, each with an `epoll`
//! event, a task switch and a TCP window update that makes the sender transmit again
//! from inside our syscall. A recorder does not need frames within milliseconds, so while
//! no live subscriber waits (see [`vigil_hub::Hub::live_subscribers`]) the ingest raises
//! the socket's low-water mark (`SO_RCVLOWAT`, socket(7)) to about `budget` worth of the
//! stream's bytes: the kernel then wakes it once per batch. On the record bench this cut
//! the recorder's CPU per stream by about a third (docs/benchmarks.md).
//!
//! What keeps it safe:
//! - The mark follows the measured bit rate, re-estimated every second, so a batch stays
//!   near `budget` of media; it is never set before a first second of the session was
//!   measured, nor below [`MIN_BATCH`] (not worth a syscall).
//! - A live subscriber turns it off at its next frame.
//! - If no frame came for [`ReadBatching::idle_after`] (a camera that pauses, stalls
//!   without closing, or whose bit rate fell), it is turned off so that whatever sits in
//!   the socket is read at once; it comes back after the next measured second.
//! - On stop, the supervisor turns it off and reads what is already there
//!   ([`ReadBatching::on_idle`]), so no frame that reached the host is lost.

use std::time::Duration;

/// How often the bit rate is re-estimated.
const WINDOW: Duration = Duration::from_secs(1);
/// Below this many bytes per batch, batching saves too little to be worth it.
pub const MIN_BATCH: usize = 4 * 1024;
/// Upper bound of a batch: well below the default TCP receive buffer the kernel grows to,
/// so the sender is never window-limited by our mark.
pub const MAX_BATCH: usize = 256 * 1024;
/// A mark change smaller than this fraction of the current one is not applied.
const HYSTERESIS: f64 = 0.25;
/// The socket's default low-water mark: wake for every byte.
pub const OFF: usize = 1;

/// The low-water mark of one session's socket.
#[derive(Debug)]
pub struct ReadBatching {
    budget: Duration,
    window_start: Option<Duration>,
    window_bytes: u64,
    current: usize,
}

impl ReadBatching {
    /// A policy holding frames back by about `budget` at most; `Duration::ZERO` disables it.
    pub fn new(budget: Duration) -> Self {
        ReadBatching {
            budget,
            window_start: None,
            window_bytes: 0,
            current: OFF,
        }
    }

    /// The mark in force.
    pub fn current(&self) -> usize {
        self.current
    }

    /// How long without a frame before the mark is dropped (4 batches, at least 200 ms):
    /// `None` while batching is off.
    pub fn idle_after(&self) -> Option<Duration> {
        (self.current > OFF).then(|| (self.budget * 4).max(Duration::from_millis(200)))
    }

    /// A frame of `bytes` arrived at `now`; `live` says whether a live subscriber waits.
    /// Returns the mark to set on the socket if it changes.
    pub fn on_frame(&mut self, now: Duration, bytes: usize, live: bool) -> Option<usize> {
        if self.budget.is_zero() {
            return None;
        }
        if live {
            self.window_start = None;
            self.window_bytes = 0;
            return self.set(OFF);
        }
        let start = *self.window_start.get_or_insert(now);
        self.window_bytes = self.window_bytes.saturating_add(bytes as u64);
        let elapsed = now.saturating_sub(start);
        if elapsed < WINDOW {
            return None;
        }
        let per_s = self.window_bytes as f64 / elapsed.as_secs_f64();
        self.window_start = Some(now);
        self.window_bytes = 0;
        let target = (per_s * self.budget.as_secs_f64()) as usize;
        if target < MIN_BATCH {
            return self.set(OFF);
        }
        let target = target.min(MAX_BATCH);
        if self.current > OFF {
            let change = (target as f64 - self.current as f64).abs() / self.current as f64;
            if change < HYSTERESIS {
                return None;
            }
        }
        self.set(target)
    }

    /// No frame came for [`ReadBatching::idle_after`], or the ingest stops: read whatever
    /// is in the socket now. Returns the mark to set if it changes. The rate is measured
    /// afresh from the next frame.
    pub fn on_idle(&mut self) -> Option<usize> {
        self.window_start = None;
        self.window_bytes = 0;
        self.set(OFF)
    }

    fn set(&mut self, mark: usize) -> Option<usize> {
        (mark != self.current).then(|| {
            self.current = mark;
            mark
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `secs` seconds of `fps` frames of `bytes` each, starting at `t0`; returns the
    /// marks set, and the time after the last frame.
    fn feed(
        b: &mut ReadBatching,
        t0: Duration,
        secs: u32,
        fps: u32,
        bytes: usize,
        live: bool,
    ) -> (Vec<usize>, Duration) {
        let mut marks = Vec::new();
        let step = Duration::from_secs(1) / fps;
        let mut t = t0;
        for _ in 0..secs * fps {
            marks.extend(b.on_frame(t, bytes, live));
            t += step;
        }
        (marks, t)
    }

    #[test]
    fn a_4_mbit_stream_is_batched_by_its_budget_after_one_measured_second() {
        let mut b = ReadBatching::new(50 * MS);
        let t0 = Duration::from_secs(100);
        // 30 fps x 16 667 bytes = 500 000 bytes/s = 4 Mbit/s; 50 ms of it is 25 000 bytes.
        let (marks, _) = feed(&mut b, t0, 1, 30, 16_667, false);
        assert!(
            marks.is_empty(),
            "set before a second was measured: {marks:?}"
        );
        let (marks, _) = feed(&mut b, t0 + Duration::from_secs(1), 3, 30, 16_667, false);
        assert_eq!(marks.len(), 1, "{marks:?}");
        assert!((24_000..=26_500).contains(&marks[0]), "{marks:?}");
        assert_eq!(b.idle_after(), Some(200 * MS));
    }

    #[test]
    fn small_changes_of_rate_keep_the_mark_and_large_ones_move_it() {
        let mut b = ReadBatching::new(50 * MS);
        let t0 = Duration::from_secs(100);
        let (_, t) = feed(&mut b, t0, 2, 30, 16_667, false);
        let set = b.current();
        assert!(set > OFF);
        // 10 % more: kept.
        let (marks, t) = feed(&mut b, t, 3, 30, 18_300, false);
        assert!(marks.is_empty(), "{marks:?}");
        assert_eq!(b.current(), set);
        // Twice the rate: follows.
        let (marks, _) = feed(&mut b, t, 2, 30, 33_333, false);
        assert_eq!(marks.len(), 1, "{marks:?}");
        assert!(marks[0] > set * 3 / 2, "{marks:?} after {set}");
    }

    #[test]
    fn a_live_subscriber_turns_it_off_at_once_and_it_returns_when_they_leave() {
        let mut b = ReadBatching::new(50 * MS);
        let t0 = Duration::from_secs(100);
        let (_, t) = feed(&mut b, t0, 2, 30, 16_667, false);
        assert!(b.current() > OFF);
        assert_eq!(b.on_frame(t, 16_667, true), Some(OFF));
        assert_eq!(b.idle_after(), None);
        let (marks, t) = feed(&mut b, t, 2, 30, 16_667, true);
        assert!(marks.is_empty(), "{marks:?}");
        // The viewer left: measured for a second, then on again.
        let (marks, _) = feed(&mut b, t, 2, 30, 16_667, false);
        assert_eq!(marks.len(), 1);
        assert!(marks[0] > OFF);
    }

    #[test]
    fn slow_streams_are_not_batched_and_fast_ones_are_capped() {
        // 256 kbit/s sub stream: 1 600 bytes in 50 ms, under MIN_BATCH.
        let mut b = ReadBatching::new(50 * MS);
        let (marks, _) = feed(&mut b, Duration::from_secs(100), 3, 15, 2_133, false);
        assert!(marks.is_empty(), "{marks:?}");
        assert_eq!(b.current(), OFF);
        // 100 Mbit/s: capped.
        let mut b = ReadBatching::new(50 * MS);
        let (marks, _) = feed(&mut b, Duration::from_secs(100), 3, 30, 416_667, false);
        assert_eq!(marks, vec![MAX_BATCH]);
    }

    #[test]
    fn idle_or_stop_drops_the_mark_and_the_rate_is_measured_again() {
        let mut b = ReadBatching::new(50 * MS);
        let (_, t) = feed(&mut b, Duration::from_secs(100), 2, 30, 16_667, false);
        assert!(b.current() > OFF);
        assert_eq!(b.on_idle(), Some(OFF));
        assert_eq!(b.on_idle(), None);
        // Not set again within the first second after.
        let (marks, t) = feed(&mut b, t, 1, 30, 16_667, false);
        assert!(marks.is_empty(), "{marks:?}");
        let (marks, _) = feed(&mut b, t, 1, 30, 16_667, false);
        assert_eq!(marks.len(), 1);
    }

    #[test]
    fn a_zero_budget_never_batches() {
        let mut b = ReadBatching::new(Duration::ZERO);
        let (marks, _) = feed(&mut b, Duration::from_secs(100), 5, 30, 100_000, false);
        assert!(marks.is_empty());
        assert_eq!(b.idle_after(), None);
        assert_eq!(b.on_idle(), None);
    }
}
