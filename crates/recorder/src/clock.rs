//! Injected time: wall clock (which the host may step) and monotonic time (which it may not).
//!
//! Recording, rotation and retention read time only through [`Clock`], so tests drive
//! them with [`SimClock`] — stepping the host clock by an hour is one call, no sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time, microseconds since the Unix epoch. May jump in either direction.
    fn wall_us(&self) -> i64;
    /// Time since an arbitrary fixed point; never goes backwards.
    fn monotonic(&self) -> Duration;
}

/// The host's clocks.
#[derive(Clone, Debug)]
pub struct RealClock {
    start: Instant,
}

impl RealClock {
    /// A real clock whose monotonic time counts from now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for RealClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for RealClock {
    fn wall_us(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            // A host clock before 1970 is nonsense but must not panic.
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        }
    }

    fn monotonic(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A simulated clock for tests: time moves only when told to.
#[derive(Clone, Debug)]
pub struct SimClock {
    inner: Arc<Mutex<SimState>>,
}

#[derive(Debug)]
struct SimState {
    wall_us: i64,
    mono: Duration,
}

impl SimClock {
    /// A simulated clock whose wall time starts at `wall_us`.
    pub fn new(wall_us: i64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(SimState {
                wall_us,
                mono: Duration::ZERO,
            })),
        }
    }

    /// Lets `d` pass on both clocks.
    pub fn advance(&self, d: Duration) {
        let mut s = lock(&self.inner);
        s.mono += d;
        s.wall_us = s
            .wall_us
            .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    }

    /// Steps the wall clock only (an NTP correction or an administrator), by `delta_us`.
    pub fn step_wall(&self, delta_us: i64) {
        let mut s = lock(&self.inner);
        s.wall_us = s.wall_us.saturating_add(delta_us);
    }
}

fn lock(m: &Mutex<SimState>) -> std::sync::MutexGuard<'_, SimState> {
    // A panic while holding this lock cannot leave the two integers inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Clock for SimClock {
    fn wall_us(&self) -> i64 {
        lock(&self.inner).wall_us
    }

    fn monotonic(&self) -> Duration {
        lock(&self.inner).mono
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_clock_steps_wall_but_not_monotonic() {
        let c = SimClock::new(1_000_000);
        c.advance(Duration::from_secs(2));
        c.step_wall(-3_600_000_000);
        assert_eq!(c.wall_us(), 3_000_000 - 3_600_000_000);
        assert_eq!(c.monotonic(), Duration::from_secs(2));
    }

    #[test]
    fn real_clock_is_after_2020() {
        assert!(RealClock::new().wall_us() > 1_577_836_800_000_000);
    }
}
