//! Per-stream counters of the writers, for monitoring (`vigil serve`'s `/metrics`): bytes
//! and fragments made durable, camera outages recorded, and how long each fragment's
//! append + fsync took.
//!
//! Written by the stream's writer on the blocking pool, read by whoever asks for a
//! [`StreamStats::snapshot`]. Only relaxed atomic adds, a handful per fragment (about one a
//! second per stream): no lock on the write path. Counters are monotonic for the life of the
//! [`Recorder`](crate::Recorder): a stream recorded again (camera restarted or edited) keeps
//! adding to the same ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds (seconds) of the write latency histogram's buckets. An fsync on an SSD takes
/// ~1 ms, on a busy HDD or SD card tens to hundreds; past a few seconds the writer is falling
/// behind (see `RecorderConfig::queue_len`).
pub const WRITE_LATENCY_BOUNDS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Counters of one recorded stream.
#[derive(Debug, Default)]
pub struct StreamStats {
    bytes_written: AtomicU64,
    fragments_written: AtomicU64,
    gaps: AtomicU64,
    /// Fragments per latency bucket, not cumulative; the last one is above every bound.
    latency: [AtomicU64; WRITE_LATENCY_BOUNDS_S.len() + 1],
    latency_sum_ns: AtomicU64,
}

impl StreamStats {
    /// A fragment of `bytes` was appended and fsynced, which took `took`.
    pub(crate) fn on_fragment(&self, bytes: u64, took: Duration) {
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        self.fragments_written.fetch_add(1, Ordering::Relaxed);
        let s = took.as_secs_f64();
        let i = WRITE_LATENCY_BOUNDS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(WRITE_LATENCY_BOUNDS_S.len());
        if let Some(bucket) = self.latency.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// A camera outage was recorded (a gap row).
    pub(crate) fn on_gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StreamStatsSnapshot {
        let buckets: Vec<u64> = self
            .latency
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        StreamStatsSnapshot {
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            fragments_written: self.fragments_written.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
            write_latency: LatencySnapshot {
                // From the buckets, not a counter of its own, so that the histogram's
                // `+Inf` bucket and its count always agree.
                count: buckets.iter().sum(),
                buckets,
                sum_seconds: self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            },
        }
    }
}

/// A copy of a stream's [`StreamStats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamStatsSnapshot {
    /// Media bytes appended and fsynced (fragment headers included).
    pub bytes_written: u64,
    /// Fragments appended and fsynced.
    pub fragments_written: u64,
    /// Camera outages recorded as gap rows.
    pub gaps: u64,
    /// Append + fsync time per fragment.
    pub write_latency: LatencySnapshot,
}

/// A latency histogram: counts per bucket of [`WRITE_LATENCY_BOUNDS_S`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Observations per bucket, not cumulative: `buckets[i]` counts those above
    /// `WRITE_LATENCY_BOUNDS_S[i - 1]` and at most `WRITE_LATENCY_BOUNDS_S[i]`; the last one
    /// those above every bound.
    pub buckets: Vec<u64>,
    /// Sum of the observations, seconds.
    pub sum_seconds: f64,
    /// Number of observations (the sum of `buckets`).
    pub count: u64,
}

/// Every stream's counters by (camera, stream), shared by the recorder and its writers.
#[derive(Debug, Default)]
pub(crate) struct StatsRegistry {
    streams: Mutex<BTreeMap<(String, String), Arc<StreamStats>>>,
}

impl StatsRegistry {
    /// The counters of `camera`/`stream`, created at its first recording.
    pub(crate) fn get(&self, camera: &str, stream: &str) -> Arc<StreamStats> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((camera.to_owned(), stream.to_owned()))
            .or_default()
            .clone()
    }

    /// Every stream recorded since the recorder opened, by (camera, stream).
    pub(crate) fn snapshot(&self) -> Vec<(String, String, StreamStatsSnapshot)> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((c, s), st)| (c.clone(), s.clone(), st.snapshot()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_fall_into_their_latency_bucket() {
        let s = StreamStats::default();
        s.on_fragment(100, Duration::from_micros(500));
        s.on_fragment(200, Duration::from_millis(1)); // on a bound: that bucket (le)
        s.on_fragment(300, Duration::from_millis(30));
        s.on_fragment(400, Duration::from_secs(9));
        s.on_gap();
        let snap = s.snapshot();
        assert_eq!(snap.bytes_written, 1000);
        assert_eq!(snap.fragments_written, 4);
        assert_eq!(snap.gaps, 1);
        let h = &snap.write_latency;
        assert_eq!(h.count, 4);
        assert_eq!(h.buckets.len(), WRITE_LATENCY_BOUNDS_S.len() + 1);
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[5], 1); // (0.025, 0.05]
        assert_eq!(h.buckets[12], 1); // above 5 s
        assert!((h.sum_seconds - 9.0315).abs() < 1e-9, "{}", h.sum_seconds);
    }

    #[test]
    fn a_stream_recorded_again_keeps_its_counters() {
        let r = StatsRegistry::default();
        r.get("a", "main").on_fragment(10, Duration::ZERO);
        r.get("a", "main").on_fragment(10, Duration::ZERO);
        r.get("b", "sub").on_gap();
        let snap = r.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!((snap[0].0.as_str(), snap[0].2.bytes_written), ("a", 20));
        assert_eq!((snap[1].1.as_str(), snap[1].2.gaps), ("sub", 1));
    }
}
