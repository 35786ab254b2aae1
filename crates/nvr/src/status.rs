//! A stream's live status for the UI: the ingest's state, the codec and size from the
//! hub's parameters, and frame and bit rates measured over the last few seconds.
//!
//! The ingest publishes cumulative counters (frames, bytes) about once a second; the
//! rates are the difference between the newest sample and the oldest one still inside
//! the window ([`RateWindow`], sans-IO: the caller passes the time).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use vigil_ingest::{IngestState, IngestStatus};
use vigil_media::Codec;

use crate::{StreamState, StreamStatus};

/// How far back the rates look.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Rates are reported as zero when the newest sample is older than this (the ingest
/// publishes about once a second while frames flow).
const STALE_AFTER: Duration = Duration::from_secs(3);

/// Cumulative counter samples of one stream over the last [`RATE_WINDOW`].
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    samples: VecDeque<(Instant, u64, u64)>,
}

impl RateWindow {
    /// Adds a sample of the cumulative `frames` and `bytes` taken at `now`. Counters that
    /// go backwards (a new ingest) restart the window.
    pub(crate) fn push(&mut self, now: Instant, frames: u64, bytes: u64) {
        if let Some(&(_, f, b)) = self.samples.back() {
            if frames < f || bytes < b {
                self.samples.clear();
            }
        }
        self.samples.push_back((now, frames, bytes));
        // Keep one sample at or before the window's start, so a full window is measured.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|&(t, _, _)| now.saturating_duration_since(t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Forgets everything (the stream went offline).
    pub(crate) fn clear(&mut self) {
        self.samples.clear();
    }

    /// Frames per second and bits per second at `now`: zero without two samples, or
    /// when the newest is stale.
    pub(crate) fn rates(&self, now: Instant) -> (f64, u64) {
        let (Some(&(t0, f0, b0)), Some(&(t1, f1, b1))) =
            (self.samples.front(), self.samples.back())
        else {
            return (0.0, 0);
        };
        let span = t1.saturating_duration_since(t0).as_secs_f64();
        if span <= 0.0 || now.saturating_duration_since(t1) > STALE_AFTER {
            return (0.0, 0);
        }
        let fps = (f1 - f0) as f64 / span;
        let bps = ((b1 - b0) as f64 * 8.0 / span) as u64;
        ((fps * 10.0).round() / 10.0, bps)
    }
}

/// The UI's state and reason for an ingest state.
pub(crate) fn stream_state(state: &IngestState) -> (StreamState, Option<String>) {
    match state {
        IngestState::Connecting => (StreamState::Connecting, None),
        IngestState::Streaming => (StreamState::Streaming, None),
        IngestState::Backoff { reason, .. } => (StreamState::Offline, Some(reason.clone())),
        IngestState::Failed(reason) => (StreamState::Failed, Some(reason.clone())),
        IngestState::Stopped => (StreamState::Offline, Some("stopped".to_owned())),
    }
}

/// Builds a stream's status from the ingest's status, the hub's parameters and the rates.
pub(crate) fn stream_status(
    stream: &str,
    ingest: &IngestStatus,
    params: Option<&vigil_media::StreamParams>,
    rates: (f64, u64),
) -> StreamStatus {
    let (state, reason) = stream_state(&ingest.state);
    let streaming = matches!(ingest.state, IngestState::Streaming);
    let (fps, bitrate_bps) = if streaming { rates } else { (0.0, 0) };
    StreamStatus {
        stream: stream.to_owned(),
        state,
        reason,
        codec: params.map(|p| p.codec),
        width: params.map(|p| p.width),
        height: params.map(|p| p.height),
        fps,
        bitrate_bps,
        last_frame_us: ingest.last_frame_wall_us,
    }
}

/// `h264` or `h265`.
pub(crate) fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::H264 => "h264",
        Codec::H265 => "h265",
    }
}

// The names `codec_name` gives, for the JSON Schema of `StreamStatus::codec` (which
// `vigil_media::Codec`, a crate without schemars, cannot describe itself). A codec added to
// `codec_name` is added here too; a test checks that they agree. Its doc comment is the
// schema's description.
/// A video codec.
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Only its schema is used.
pub(crate) enum CodecName {
    /// H.264 (AVC).
    H264,
    /// H.265 (HEVC).
    H265,
}

/// [`StreamStatus::codec`] on the wire: its [`codec_name`] or null.
pub(crate) fn serialize_codec<S: serde::Serializer>(
    codec: &Option<Codec>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match codec {
        Some(c) => s.serialize_str(codec_name(*c)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_measured_over_the_last_seconds() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        assert_eq!(w.rates(t0), (0.0, 0));
        // 15 fps, 2 Mbit/s (250 kB/s), sampled once a second for 10 s.
        for s in 0..=10u64 {
            w.push(t0 + Duration::from_secs(s), 15 * s, 250_000 * s);
        }
        let now = t0 + Duration::from_secs(10);
        let (fps, bps) = w.rates(now);
        assert!((fps - 15.0).abs() < 0.01, "{fps}");
        assert_eq!(bps, 2_000_000);
        // The window only holds the last ~5 s, so a rate change shows within it.
        for s in 11..=16u64 {
            w.push(t0 + Duration::from_secs(s), 150 + 5 * (s - 10), 2_500_000);
        }
        let (fps, bps) = w.rates(t0 + Duration::from_secs(16));
        assert!((fps - 5.0).abs() < 0.01, "{fps}");
        assert_eq!(bps, 0);
        assert!(w.samples.len() <= 7, "{}", w.samples.len());
    }

    #[test]
    fn a_silent_stream_reads_zero_and_a_new_ingest_restarts_the_window() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        w.push(t0, 0, 0);
        w.push(t0 + Duration::from_secs(1), 30, 100_000);
        assert_eq!(w.rates(t0 + Duration::from_secs(1)).1, 800_000);
        // No sample for 10 s: the camera is gone, not streaming at the old rate.
        assert_eq!(w.rates(t0 + Duration::from_secs(11)), (0.0, 0));
        // Counters restarted from zero (a restarted ingest): no negative rates.
        w.push(t0 + Duration::from_secs(12), 10, 5_000);
        assert_eq!(w.rates(t0 + Duration::from_secs(12)), (0.0, 0));
        w.push(t0 + Duration::from_secs(13), 20, 10_000);
        let (fps, bps) = w.rates(t0 + Duration::from_secs(13));
        assert!((fps - 10.0).abs() < 0.01);
        assert_eq!(bps, 40_000);
    }

    #[test]
    fn the_codec_schema_names_what_codec_name_writes() {
        let schema = schemars::schema_for!(CodecName).to_value();
        let names: Vec<String> = schema["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["const"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(names, [codec_name(Codec::H264), codec_name(Codec::H265)]);
    }

    #[test]
    fn status_reports_zero_rates_unless_streaming() {
        let st = IngestStatus {
            state: IngestState::Backoff {
                until_wall_us: 0,
                reason: "connection refused".into(),
            },
            last_frame_wall_us: Some(42),
            ..IngestStatus::default()
        };
        let s = stream_status("main", &st, None, (15.0, 1000));
        assert_eq!(s.state, StreamState::Offline);
        // The wire keeps the word the UI matches on.
        assert_eq!(serde_json::to_value(&s).unwrap()["state"], "offline");
        assert_eq!(s.reason.as_deref(), Some("connection refused"));
        assert_eq!((s.fps, s.bitrate_bps), (0.0, 0));
        assert_eq!(s.last_frame_us, Some(42));
        assert_eq!(s.codec, None);
        assert_eq!(
            serde_json::to_value(&s).unwrap()["codec"],
            serde_json::Value::Null
        );
        let p = vigil_media::StreamParams {
            codec: Codec::H265,
            vps: None,
            sps: Default::default(),
            pps: Default::default(),
            width: 8,
            height: 8,
            fps: None,
        };
        let s = stream_status("main", &st, Some(&p), (0.0, 0));
        assert_eq!(serde_json::to_value(&s).unwrap()["codec"], "h265");
    }
}
