//! Sans-IO reconnection policy: jittered exponential back-off, reset after a session that
//! recorded something, slow retries for failures a retry will not fix soon — and
//! [`ComeBack`], which decides when a liveness probe may cut a back-off short.
//!
//! No clock, no socket and no sleeping here: the supervisor reports how a session ended
//! and for how long it streamed, and gets back how long to wait; it reports what each probe
//! saw and learns whether to reconnect now. Randomness is a seeded RNG, so tests are
//! deterministic.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Back-off timings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// Delay after the first failure (before jitter).
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// A session that delivered frames (after a key frame) for at least this long resets
    /// the back-off to its initial step, so a camera that comes back after a restart or a
    /// hang is reconnected at once, not after the 8-30 s an earlier outage grew it to.
    /// Zero (the default): any session that recorded a frame counts. A larger value damps
    /// a camera that keeps dying seconds after each connect.
    pub healthy_after: Duration,
    /// Fraction of each delay that is randomized (0 = none, 0.5 = delay in [d/2, d]), so
    /// that many cameras behind one failed switch do not reconnect in lock-step.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            healthy_after: Duration::ZERO,
            jitter: 0.5,
        }
    }
}

/// How a connection attempt or session ended, as far as the policy cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Network trouble, a stalled or closed stream, a server error: retry with back-off.
    Transient,
    /// A retry will not help until someone changes the camera or the configuration
    /// (unsupported codec, no video stream, credentials rejected): retry at the slowest
    /// pace, which also keeps us from locking the camera's account.
    Permanent,
}

/// The reconnection policy of one stream.
pub struct ReconnectPolicy {
    cfg: BackoffConfig,
    /// Consecutive failures since the last healthy session.
    failures: u32,
    rng: StdRng,
}

impl ReconnectPolicy {
    /// A policy with the given timings; `seed` fixes the jitter (tests), `None` seeds from
    /// the OS.
    pub fn new(cfg: BackoffConfig, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        };
        ReconnectPolicy {
            cfg,
            failures: 0,
            rng,
        }
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A session (or connection attempt) ended; `streamed` is `Some(how long it delivered
    /// frames)` if it published at least one frame, `None` if it published none. Returns
    /// how long to wait before the next attempt.
    pub fn on_failure(&mut self, failure: Failure, streamed: Option<Duration>) -> Duration {
        if streamed.is_some_and(|d| d >= self.cfg.healthy_after) {
            self.failures = 0;
        }
        if failure == Failure::Permanent {
            self.failures = self.failures.saturating_add(1);
            return self.cfg.max;
        }
        // initial * 2^failures, capped; the exponent is bounded so the multiplication
        // cannot overflow whatever the failure count.
        let exp = self.failures.min(20);
        let base = self
            .cfg
            .initial
            .saturating_mul(1u32 << exp)
            .min(self.cfg.max);
        self.failures = self.failures.saturating_add(1);
        let jitter = self.cfg.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter * self.rng.gen::<f64>();
        base.mul_f64(factor)
    }
}

/// What a liveness probe of the camera's RTSP port saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Nothing accepted a connection (camera off, rebooting, unreachable).
    Closed,
    /// A connection was accepted but no RTSP status line came back in time: a camera that
    /// hangs (the kernel still accepts connections for a stopped process), or something
    /// that is not an RTSP server.
    Silent,
    /// An RTSP status line came back, whatever the status (200, 401, 404 …): the camera's
    /// RTSP server is running.
    Answering,
}

/// Decides whether liveness probes may cut a back-off short.
///
/// Only a camera that was *not* answering when the back-off started and answers later has
/// come back: reconnect at once. A camera that answers while its sessions fail (server
/// errors, a stream that closes at once) is left to the back-off, so it is not hammered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComeBack {
    probing: bool,
}

impl ComeBack {
    /// Starts deciding, given what a probe saw when the back-off started.
    pub fn new(at_start: Liveness) -> Self {
        ComeBack {
            probing: at_start != Liveness::Answering,
        }
    }

    /// Whether probing during this back-off can help at all.
    pub fn probing(&self) -> bool {
        self.probing
    }

    /// A probe saw `seen`; returns true if the camera is back and the ingest should
    /// reconnect now.
    pub fn on_probe(&mut self, seen: Liveness) -> bool {
        self.probing && seen == Liveness::Answering
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy::new(BackoffConfig::default(), Some(7))
    }

    #[test]
    fn delays_grow_exponentially_with_jitter_and_cap_at_30_s() {
        let mut p = policy();
        let mut prev_base = Duration::ZERO;
        for i in 0..12u32 {
            let d = p.on_failure(Failure::Transient, None);
            let base = (Duration::from_millis(500) * 2u32.pow(i)).min(Duration::from_secs(30));
            assert!(
                d <= base && d >= base / 2,
                "failure {i}: {d:?} not in [{:?}, {base:?}]",
                base / 2
            );
            assert!(base >= prev_base);
            prev_base = base;
        }
        assert_eq!(prev_base, Duration::from_secs(30));
    }

    #[test]
    fn first_delay_is_about_half_a_second() {
        let d = policy().on_failure(Failure::Transient, None);
        assert!(
            d >= Duration::from_millis(250) && d <= Duration::from_millis(500),
            "{d:?}"
        );
    }

    #[test]
    fn any_session_that_recorded_frames_resets_the_back_off_by_default() {
        let mut p = policy();
        for _ in 0..8 {
            p.on_failure(Failure::Transient, None);
        }
        assert!(p.on_failure(Failure::Transient, None) >= Duration::from_secs(15));
        // The camera came back for a moment (one GOP), then restarted or hung again: the
        // next attempt is at the initial step, not after the grown back-off.
        let d = p.on_failure(Failure::Transient, Some(Duration::from_millis(900)));
        assert!(d <= Duration::from_millis(500), "{d:?}");
        // A single frame (streamed for zero time) counts too.
        for _ in 0..6 {
            p.on_failure(Failure::Transient, None);
        }
        let d = p.on_failure(Failure::Transient, Some(Duration::ZERO));
        assert!(d <= Duration::from_millis(500), "{d:?}");
    }

    #[test]
    fn failed_attempts_without_frames_keep_growing_the_back_off() {
        let mut p = policy();
        p.on_failure(Failure::Transient, Some(Duration::from_secs(3)));
        for _ in 0..4 {
            p.on_failure(Failure::Transient, None);
        }
        let d = p.on_failure(Failure::Transient, None);
        assert!(d >= Duration::from_secs(8), "{d:?}");
    }

    #[test]
    fn with_healthy_after_set_a_short_session_does_not_reset_the_back_off() {
        let cfg = BackoffConfig {
            healthy_after: Duration::from_secs(10),
            ..BackoffConfig::default()
        };
        let mut p = ReconnectPolicy::new(cfg, Some(7));
        for _ in 0..4 {
            p.on_failure(Failure::Transient, Some(Duration::from_secs(2)));
        }
        let d = p.on_failure(Failure::Transient, Some(Duration::from_secs(2)));
        assert!(d >= Duration::from_secs(4), "{d:?}");
        let d = p.on_failure(Failure::Transient, Some(Duration::from_secs(60)));
        assert!(d <= Duration::from_millis(500), "{d:?}");
    }

    #[test]
    fn permanent_failures_retry_at_the_cap() {
        let mut p = policy();
        assert_eq!(
            p.on_failure(Failure::Permanent, None),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn jitter_spreads_delays_between_streams() {
        let delays: Vec<_> = (0..16)
            .map(|seed| {
                let mut p = ReconnectPolicy::new(BackoffConfig::default(), Some(seed));
                p.on_failure(Failure::Transient, None)
            })
            .collect();
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 8, "{delays:?}");
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let mut p = policy();
        for _ in 0..10_000 {
            let d = p.on_failure(Failure::Transient, None);
            assert!(d <= Duration::from_secs(30));
        }
    }

    #[test]
    fn a_camera_that_was_down_or_hung_and_answers_again_is_reconnected_at_once() {
        for down in [Liveness::Closed, Liveness::Silent] {
            let mut c = ComeBack::new(down);
            assert!(c.probing());
            assert!(!c.on_probe(Liveness::Closed));
            // The port opened but the RTSP server is not up yet (booting) or still hangs.
            assert!(!c.on_probe(Liveness::Silent));
            assert!(c.on_probe(Liveness::Answering));
        }
    }

    #[test]
    fn a_camera_answering_while_its_sessions_fail_is_left_to_the_back_off() {
        let mut c = ComeBack::new(Liveness::Answering);
        assert!(!c.probing());
        assert!(!c.on_probe(Liveness::Answering));
    }
}
