//! Sans-IO reconnection policy: jittered exponential back-off, reset after a healthy
//! session, slow retries for failures a retry will not fix soon.
//!
//! No clock and no sleeping here: the supervisor reports how a session ended and for how
//! long it streamed, and gets back how long to wait. Randomness is a seeded RNG, so tests
//! are deterministic.

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
    /// A session that delivered frames for at least this long resets the back-off, so a
    /// camera that reboots once a day is reconnected at once, not after 30 s.
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
            healthy_after: Duration::from_secs(10),
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

    /// A session (or connection attempt) ended; `streamed` is how long it delivered
    /// frames (zero if none). Returns how long to wait before the next attempt.
    pub fn on_failure(&mut self, failure: Failure, streamed: Duration) -> Duration {
        if streamed >= self.cfg.healthy_after {
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
            let d = p.on_failure(Failure::Transient, Duration::ZERO);
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
        let d = policy().on_failure(Failure::Transient, Duration::ZERO);
        assert!(
            d >= Duration::from_millis(250) && d <= Duration::from_millis(500),
            "{d:?}"
        );
    }

    #[test]
    fn a_healthy_session_resets_the_back_off() {
        let mut p = policy();
        for _ in 0..8 {
            p.on_failure(Failure::Transient, Duration::from_secs(1));
        }
        assert!(p.on_failure(Failure::Transient, Duration::ZERO) >= Duration::from_secs(15));
        let d = p.on_failure(Failure::Transient, Duration::from_secs(60));
        assert!(d <= Duration::from_millis(500), "{d:?}");
    }

    #[test]
    fn a_short_session_does_not_reset_the_back_off() {
        let mut p = policy();
        for _ in 0..4 {
            p.on_failure(Failure::Transient, Duration::from_secs(2));
        }
        let d = p.on_failure(Failure::Transient, Duration::from_secs(2));
        assert!(d >= Duration::from_secs(4), "{d:?}");
    }

    #[test]
    fn permanent_failures_retry_at_the_cap() {
        let mut p = policy();
        assert_eq!(
            p.on_failure(Failure::Permanent, Duration::ZERO),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn jitter_spreads_delays_between_streams() {
        let delays: Vec<_> = (0..16)
            .map(|seed| {
                let mut p = ReconnectPolicy::new(BackoffConfig::default(), Some(seed));
                p.on_failure(Failure::Transient, Duration::ZERO)
            })
            .collect();
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 8, "{delays:?}");
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let mut p = policy();
        for _ in 0..10_000 {
            let d = p.on_failure(Failure::Transient, Duration::ZERO);
            assert!(d <= Duration::from_secs(30));
        }
    }
}
