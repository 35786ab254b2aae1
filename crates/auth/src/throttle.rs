//! Per-source login throttling (sans-IO: time is passed in).
//!
//! Failures from one source address accumulate in a leaky bucket: one failure leaks away every
//! [`LoginThrottle::LEAK_INTERVAL`]. The first [`LoginThrottle::FREE_FAILURES`] failures cost
//! nothing (typos); after that each failure imposes a delay of 250 ms doubling up to 5 s, during
//! which further attempts from that source are refused without checking the password. There is
//! no permanent lock-out: a legitimate user gets in after at most a few seconds, while an
//! attacker is held to about one guess per 5 s per source. A success resets the source.
//!
//! The web login also throttles per user name ([`LoginThrottle::check`],
//! [`LoginThrottle::record_failure_for`]), so guesses at one account spread over many source
//! addresses are slowed down the same way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// When `failures` was last decayed.
    last: SystemTime,
    /// Attempts before this instant are refused unchecked.
    blocked_until: SystemTime,
}

/// Tracks login failures per source address; see the module docs.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: HashMap<IpAddr, Entry>,
    names: HashMap<String, Entry>,
}

/// The unit a user name is throttled by: case-folded and bounded, so `Admin` and `admin` share
/// one bucket and a huge name cannot bloat the table.
fn name_key(name: &str) -> String {
    name.chars().take(64).collect::<String>().to_lowercase()
}

/// Normalizes a peer address into the unit we throttle: IPv4 as is (also when IPv4-mapped),
/// IPv6 by /64, since one host typically owns a whole /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginThrottle {
    /// Failures that cost no delay.
    pub const FREE_FAILURES: u32 = 3;
    /// One failure is forgotten per interval.
    pub const LEAK_INTERVAL: Duration = Duration::from_secs(60);
    /// First non-zero delay.
    pub const BASE_DELAY: Duration = Duration::from_millis(250);
    /// Largest delay.
    pub const MAX_DELAY: Duration = Duration::from_secs(5);
    /// Sources tracked at once; beyond this the least-failed entries are evicted.
    pub const MAX_ENTRIES: usize = 10_000;

    /// An empty throttle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delay imposed after the `failures`-th failure.
    pub fn delay_for(failures: u32) -> Duration {
        if failures <= Self::FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (failures - Self::FREE_FAILURES - 1).min(16);
        Self::BASE_DELAY
            .saturating_mul(1u32 << doublings)
            .min(Self::MAX_DELAY)
    }

    fn decay(e: &mut Entry, now: SystemTime) {
        let elapsed = now.duration_since(e.last).unwrap_or_default();
        let leaked = elapsed.as_secs() / Self::LEAK_INTERVAL.as_secs();
        if leaked > 0 {
            e.failures = e
                .failures
                .saturating_sub(u32::try_from(leaked).unwrap_or(u32::MAX));
            e.last = now;
        } else if now < e.last {
            // The wall clock stepped back: restart the interval rather than freeze decay.
            e.last = now;
        }
    }

    fn wait_of(e: &Entry, now: SystemTime) -> Option<Duration> {
        e.blocked_until
            .duration_since(now)
            .ok()
            .filter(|d| !d.is_zero())
    }

    /// If the source is inside a penalty window, the time it still has to wait.
    pub fn blocked(&mut self, ip: IpAddr, now: SystemTime) -> Option<Duration> {
        Self::wait_of(self.entries.get(&source_key(ip))?, now)
    }

    /// If the source or the user name is inside a penalty window, the longer remaining wait.
    pub fn check(&mut self, ip: IpAddr, name: &str, now: SystemTime) -> Option<Duration> {
        let by_ip = self.blocked(ip, now);
        let by_name = self
            .names
            .get(&name_key(name))
            .and_then(|e| Self::wait_of(e, now));
        by_ip.max(by_name)
    }

    /// Records a failed login of `name` from `ip`; returns the longer of the two penalties.
    pub fn record_failure_for(&mut self, ip: IpAddr, name: &str, now: SystemTime) -> Duration {
        let by_ip = self.record_failure(ip, now);
        let key = name_key(name);
        if !self.names.contains_key(&key) && self.names.len() >= Self::MAX_ENTRIES {
            Self::evict_map(&mut self.names, now);
        }
        let by_name = Self::bump(
            self.names.entry(key).or_insert(Entry {
                failures: 0,
                last: now,
                blocked_until: now,
            }),
            now,
        );
        by_ip.max(by_name)
    }

    /// Records a successful login of `name` from `ip`: both start over.
    pub fn record_success_for(&mut self, ip: IpAddr, name: &str) {
        self.record_success(ip);
        self.names.remove(&name_key(name));
    }

    fn bump(e: &mut Entry, now: SystemTime) -> Duration {
        Self::decay(e, now);
        e.failures = e.failures.saturating_add(1);
        let d = Self::delay_for(e.failures);
        e.blocked_until = now + d;
        d
    }

    /// Current (decayed) failure count of a source.
    pub fn failures(&mut self, ip: IpAddr, now: SystemTime) -> u32 {
        match self.entries.get_mut(&source_key(ip)) {
            Some(e) => {
                Self::decay(e, now);
                e.failures
            }
            None => 0,
        }
    }

    /// Records a failure and returns the delay the caller must wait before answering.
    pub fn record_failure(&mut self, ip: IpAddr, now: SystemTime) -> Duration {
        let key = source_key(ip);
        if !self.entries.contains_key(&key) && self.entries.len() >= Self::MAX_ENTRIES {
            self.evict(now);
        }
        let e = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            last: now,
            blocked_until: now,
        });
        Self::bump(e, now)
    }

    /// Records a success: the source starts over.
    pub fn record_success(&mut self, ip: IpAddr) {
        self.entries.remove(&source_key(ip));
    }

    fn evict(&mut self, now: SystemTime) {
        Self::evict_map(&mut self.entries, now);
    }

    fn evict_map<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Entry>, now: SystemTime) {
        for e in map.values_mut() {
            Self::decay(e, now);
        }
        map.retain(|_, e| e.failures > 0);
        if map.len() >= Self::MAX_ENTRIES {
            let victim = map
                .iter()
                .min_by_key(|(_, e)| e.failures)
                .map(|(k, _)| k.clone());
            if let Some(k) = victim {
                map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn delay_grows_then_caps() {
        let mut t = LoginThrottle::new();
        let a = ip("192.0.2.1");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let delays: Vec<_> = (0..10)
            .map(|_| t.record_failure(a, now).as_millis())
            .collect();
        assert_eq!(delays, [0, 0, 0, 250, 500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(t.blocked(a, now), Some(Duration::from_secs(5)));
        assert_eq!(t.blocked(a, now + Duration::from_secs(5)), None);
        // Another address is unaffected.
        assert_eq!(t.blocked(ip("192.0.2.2"), now), None);
        assert_eq!(t.record_failure(ip("192.0.2.2"), now), Duration::ZERO);
    }

    #[test]
    fn failures_decay_and_success_resets() {
        let mut t = LoginThrottle::new();
        let a = ip("2001:db8::1");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        for _ in 0..6 {
            t.record_failure(a, now);
        }
        // Same /64 counts as the same source.
        assert_eq!(t.failures(ip("2001:db8::99"), now), 6);
        let later = now + LoginThrottle::LEAK_INTERVAL * 3;
        assert_eq!(t.failures(a, later), 3);
        // The 4th failure after decay costs the first non-zero delay again.
        assert_eq!(t.record_failure(a, later), Duration::from_millis(250));
        t.record_success(a);
        assert_eq!(t.failures(a, later), 0);
        assert_eq!(t.record_failure(a, later), Duration::ZERO);
    }

    #[test]
    fn per_name_throttle_spans_addresses() {
        let mut t = LoginThrottle::new();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        // Four different addresses guessing one account: the 4th failure delays the name.
        let mut last = Duration::ZERO;
        for i in 1..=4u8 {
            last = t.record_failure_for(IpAddr::from([198, 51, 100, i]), "Alice", now);
        }
        assert_eq!(last, Duration::from_millis(250));
        // A fifth address is refused for this name, case-insensitively, but not for another.
        let fresh = ip("198.51.100.9");
        assert_eq!(
            t.check(fresh, "alice", now),
            Some(Duration::from_millis(250))
        );
        assert_eq!(t.check(fresh, "bob", now), None);
        // No permanent lock-out: after the penalty the name may try again, and a success resets.
        assert_eq!(t.check(fresh, "alice", now + Duration::from_secs(1)), None);
        t.record_success_for(fresh, "alice");
        assert_eq!(t.record_failure_for(fresh, "alice", now), Duration::ZERO);
    }

    #[test]
    fn ipv4_mapped_is_ipv4() {
        let mut t = LoginThrottle::new();
        let now = UNIX_EPOCH;
        t.record_failure(ip("::ffff:192.0.2.7"), now);
        assert_eq!(t.failures(ip("192.0.2.7"), now), 1);
    }
}
