//! Injected time for everything below and beside the hub (the ingest's supervision, the
//! recorder's writer and index commits): wall-clock time (which the host may step),
//! monotonic time (which it may not), and sleeping on the monotonic clock.
//!
//! It lives here because the hub is the lowest crate both the ingest and the recorder
//! depend on that may use tokio (`vigil-media` stays sans-IO and free of async).
//! Production code reads time only through [`Clock`]; tests drive it with [`SimClock`]:
//! stepping the host clock by an hour, or letting a minute pass, is one call, no sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A sleep on a [`Clock`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of wall-clock and monotonic time.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time, microseconds since the Unix epoch. May jump in either direction.
    fn wall_us(&self) -> i64;
    /// Time since an arbitrary fixed point; never goes backwards.
    fn monotonic(&self) -> Duration;
    /// Resolves once [`Clock::monotonic`] has reached `deadline`.
    fn sleep_until(&self, deadline: Duration) -> Sleep;
    /// Resolves once `d` has passed on the monotonic clock.
    fn sleep(&self, d: Duration) -> Sleep {
        self.sleep_until(self.monotonic().saturating_add(d))
    }
}

/// µs since the Unix epoch of a [`SystemTime`] (negative before it, saturating).
pub fn system_time_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        // A host clock before 1970 is nonsense but must not panic.
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |v| -v),
    }
}

/// The host's clocks. Monotonic time and sleeping are both tokio's, so that under paused
/// tokio time (`tokio::time::pause`) the two agree and a woken sleeper sees its deadline
/// passed.
#[derive(Clone, Debug)]
pub struct RealClock {
    start: tokio::time::Instant,
}

impl RealClock {
    /// A real clock whose monotonic time counts from now.
    pub fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
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
        system_time_us(SystemTime::now())
    }

    fn monotonic(&self) -> Duration {
        self.start.elapsed()
    }

    fn sleep_until(&self, deadline: Duration) -> Sleep {
        match self.start.checked_add(deadline) {
            Some(at) => Box::pin(tokio::time::sleep_until(at)),
            // Further away than the platform's clock can say: never.
            None => Box::pin(std::future::pending()),
        }
    }
}

/// A simulated clock for tests: time moves only when told to ([`SimClock::advance`],
/// [`SimClock::step_wall`]); sleepers wake when the monotonic time passes their deadline.
#[derive(Clone, Debug)]
pub struct SimClock {
    wall_us: Arc<Mutex<i64>>,
    mono: Arc<watch::Sender<Duration>>,
}

impl SimClock {
    /// A simulated clock whose wall time starts at `wall_us`, monotonic time at zero.
    pub fn new(wall_us: i64) -> Self {
        Self {
            wall_us: Arc::new(Mutex::new(wall_us)),
            mono: Arc::new(watch::Sender::new(Duration::ZERO)),
        }
    }

    /// Lets `d` pass on both clocks, waking the sleepers it passes.
    pub fn advance(&self, d: Duration) {
        {
            let mut w = self.wall();
            *w = w.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        }
        self.mono.send_modify(|m| *m = m.saturating_add(d));
    }

    /// Steps the wall clock only (an NTP correction or an administrator), by `delta_us`.
    pub fn step_wall(&self, delta_us: i64) {
        let mut w = self.wall();
        *w = w.saturating_add(delta_us);
    }

    fn wall(&self) -> std::sync::MutexGuard<'_, i64> {
        // A panic while holding this lock cannot leave one integer inconsistent.
        self.wall_us.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for SimClock {
    fn wall_us(&self) -> i64 {
        *self.wall()
    }

    fn monotonic(&self) -> Duration {
        *self.mono.borrow()
    }

    fn sleep_until(&self, deadline: Duration) -> Sleep {
        let mut rx = self.mono.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= deadline {
                    return;
                }
                if rx.changed().await.is_err() {
                    // Every handle of the clock is gone: time never moves again.
                    std::future::pending::<()>().await;
                }
            }
        })
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

    #[tokio::test]
    async fn sim_sleepers_wake_when_time_passes_their_deadline_and_not_before() {
        let c = SimClock::new(0);
        let mut short = tokio::spawn(c.sleep(Duration::from_secs(1)));
        let long = tokio::spawn(c.sleep(Duration::from_secs(5)));
        tokio::task::yield_now().await;
        c.advance(Duration::from_millis(999));
        tokio::task::yield_now().await;
        assert!(!short.is_finished());
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut short)
                .await
                .is_err(),
            "woke early"
        );
        c.advance(Duration::from_millis(1));
        short.await.unwrap();
        assert!(!long.is_finished());
        c.advance(Duration::from_secs(4));
        long.await.unwrap();
    }

    #[tokio::test]
    async fn real_clock_is_after_2020_and_sleeps() {
        let c = RealClock::new();
        assert!(c.wall_us() > 1_577_836_800_000_000);
        let before = c.monotonic();
        c.sleep(Duration::from_millis(5)).await;
        assert!(c.monotonic() >= before + Duration::from_millis(5));
    }

    #[test]
    fn system_time_before_the_epoch_is_negative() {
        let t = UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(system_time_us(t), -5);
    }
}
