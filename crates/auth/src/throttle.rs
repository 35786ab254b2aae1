//! Login throttling per source address and per account name (sans-IO: time is passed in).
//!
//! Failures accumulate in leaky buckets, one per source address and one per account name: one
//! failure leaks away every [`LoginThrottle::LEAK_INTERVAL`]. The first
//! [`LoginThrottle::FREE_FAILURES`] failures cost nothing (typos); after that each failure
//! imposes a delay of 250 ms doubling up to 5 s, during which further attempts are refused
//! without checking the password. There is no permanent lock-out.
//!
//! # Reserve, then verify
//! An attempt first takes a [`Reservation`] ([`LoginThrottle::reserve`]), which counts it as a
//! failure of its address *and* of the account name right away; only then is the password
//! verified, and the caller settles the reservation: [`LoginThrottle::fail`] keeps the failure,
//! [`LoginThrottle::succeed`] refunds it. "Check, then verify, then record" would let any number
//! of concurrent guesses pass the check while the first ones are still being hashed (argon2
//! takes tens of milliseconds), and a right guess among them slip through; with a reservation
//! the fourth concurrent wrong attempt already closes the window for the fifth.
//!
//! # Who may clear a count
//! A success refunds its own reservation and clears the count of the account it logged in to,
//! nothing else: an attacker who owns some account (a viewer) and logs in with it between
//! guesses at another account's password no longer resets the throttle of his address, and the
//! target account's count keeps growing whatever address the guesses come from.
//!
//! # The per-name trade-off
//! Anyone can keep an account's name throttle closed by failing logins to it. While it is
//! closed, an address that has logged in to this account before (the last
//! [`LoginThrottle::KNOWN_SOURCES`] are remembered per account) is let through, so the owner
//! at home or at work gets in however long an attack lasts; every other address is refused
//! until the window ends (at most [`LoginThrottle::MAX_DELAY`]). Guesses at one account from
//! any number of addresses thus stay at about one per window, as if they all came from one
//! address. The price: the owner at an address new to the account competes with the attacker
//! for that one attempt per window while an attack lasts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use crate::admission::source_key;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// When `failures` was last decayed.
    last: SystemTime,
    /// Attempts before this instant are refused unchecked.
    blocked_until: SystemTime,
}

impl Entry {
    fn new(now: SystemTime) -> Self {
        Entry {
            failures: 0,
            last: now,
            // No window: not `now`, or a concurrent attempt whose time was read a moment
            // earlier would find itself "blocked" by that moment.
            blocked_until: SystemTime::UNIX_EPOCH,
        }
    }
}

/// Tracks login failures per source address and per account name; see the module docs.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    entries: HashMap<IpAddr, Entry>,
    names: HashMap<String, Entry>,
    /// Per account name, the sources that logged in to it, newest last.
    known: HashMap<String, Vec<IpAddr>>,
}

/// One bump of one bucket, remembered so that a success can undo exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bump {
    /// `blocked_until` before the bump.
    before: SystemTime,
    /// `blocked_until` the bump set; only undone if nobody has moved it since.
    set: SystemTime,
    /// When the bump happened.
    at: SystemTime,
}

/// An attempt admitted by [`LoginThrottle::reserve`], provisionally counted as a failure.
///
/// Settle it with [`LoginThrottle::fail`] or [`LoginThrottle::succeed`]; one that is dropped
/// unsettled (the request was abandoned) stays a failure, which errs on the safe side.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "settle the reservation with LoginThrottle::fail or LoginThrottle::succeed"]
pub struct Reservation {
    source: IpAddr,
    source_bump: Bump,
    name: Option<(String, Bump)>,
}

/// The unit a user name is throttled by: case-folded and bounded, so `Admin` and `admin` share
/// one bucket and a huge name cannot bloat the table.
fn name_key(name: &str) -> String {
    name.chars().take(64).collect::<String>().to_lowercase()
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
    /// Sources (and names) tracked at once; beyond this the least-failed entries are evicted.
    pub const MAX_ENTRIES: usize = 10_000;
    /// Sources remembered per account as having logged in to it.
    pub const KNOWN_SOURCES: usize = 8;

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
    pub fn blocked(&self, ip: IpAddr, now: SystemTime) -> Option<Duration> {
        Self::wait_of(self.entries.get(&source_key(ip))?, now)
    }

    /// Admits one login attempt of `name` (if the caller knows it yet) from `ip` at `now`, or
    /// says how long the caller must wait first.
    ///
    /// Refused (`Err(wait)`, without looking at the password) while the address is in a
    /// penalty window, or while the name is and this address has failures on record. An
    /// admitted attempt is counted as a failure of both at once — before the caller verifies
    /// anything — so concurrent attempts see each other; settle it with [`Self::fail`] or
    /// [`Self::succeed`].
    pub fn reserve(
        &mut self,
        ip: IpAddr,
        name: Option<&str>,
        now: SystemTime,
    ) -> Result<Reservation, Duration> {
        let source = source_key(ip);
        if let Some(wait) = self.blocked(source, now) {
            return Err(wait);
        }
        let key = name.map(name_key);
        let name_wait = key
            .as_ref()
            .and_then(|k| self.names.get(k))
            .and_then(|e| Self::wait_of(e, now));
        if let (Some(wait), Some(k)) = (name_wait, key.as_ref()) {
            // Only an address that has logged in to this account before passes a closed
            // name window (see the module docs).
            if !self.known.get(k).is_some_and(|v| v.contains(&source)) {
                return Err(wait);
            }
        }
        let source_bump = Self::bump_in(&mut self.entries, source, now);
        let name = key.map(|k| {
            let b = Self::bump_in(&mut self.names, k.clone(), now);
            (k, b)
        });
        Ok(Reservation {
            source,
            source_bump,
            name,
        })
    }

    /// Settles a failed attempt: its provisional failure stands. Returns how long the caller
    /// should wait before answering (the penalty the failure earned its address or name).
    pub fn fail(&mut self, r: Reservation) -> Duration {
        let gap = |b: &Bump| b.set.duration_since(b.at).unwrap_or_default();
        let mut d = gap(&r.source_bump);
        if let Some((_, b)) = &r.name {
            d = d.max(gap(b));
        }
        d
    }

    /// Settles a successful login of the account the reservation named: the reservation's
    /// failure on the address is refunded and the account's count is cleared. Other failures of
    /// the address stay: only the account's own success clears anything, so logging in to one
    /// account never resets the throttle on guesses at another.
    pub fn succeed(&mut self, r: Reservation) {
        Self::undo(self.entries.get_mut(&r.source), &r.source_bump);
        if let Some((k, _)) = r.name {
            self.names.remove(&k);
            if !self.known.contains_key(&k) && self.known.len() >= Self::MAX_ENTRIES {
                // Forget some account's list rather than grow without bound.
                if let Some(victim) = self.known.keys().next().cloned() {
                    self.known.remove(&victim);
                }
            }
            let known = self.known.entry(k).or_default();
            known.retain(|s| *s != r.source);
            if known.len() >= Self::KNOWN_SOURCES {
                known.remove(0);
            }
            known.push(r.source);
        }
    }

    /// Settles an attempt that proved nothing either way (e.g. a right Digest response on an
    /// expired nonce, which a replayed capture also produces): its provisional failure is
    /// refunded on the address and the name, but no earlier count is cleared.
    pub fn refund(&mut self, r: Reservation) {
        Self::undo(self.entries.get_mut(&r.source), &r.source_bump);
        if let Some((k, b)) = &r.name {
            Self::undo(self.names.get_mut(k), b);
        }
    }

    /// Takes back one bump: one failure less, and its window closed unless another attempt
    /// has moved it since.
    fn undo(e: Option<&mut Entry>, b: &Bump) {
        if let Some(e) = e {
            e.failures = e.failures.saturating_sub(1);
            if e.blocked_until == b.set {
                e.blocked_until = b.before;
            }
        }
    }

    fn bump_in<K: std::hash::Hash + Eq + Clone>(
        map: &mut HashMap<K, Entry>,
        key: K,
        now: SystemTime,
    ) -> Bump {
        if !map.contains_key(&key) && map.len() >= Self::MAX_ENTRIES {
            Self::evict_map(map, now);
        }
        let e = map.entry(key).or_insert_with(|| Entry::new(now));
        Self::decay(e, now);
        e.failures = e.failures.saturating_add(1);
        let before = e.blocked_until;
        // Never shorten a window another attempt opened. A free failure opens none: were it
        // to set the window to `now`, a concurrent attempt whose time was read a moment
        // before (then waited for the lock) would be refused as "throttled".
        let delay = Self::delay_for(e.failures);
        let set = match delay.is_zero() {
            true => before,
            false => (now + delay).max(before),
        };
        e.blocked_until = set;
        Bump {
            before,
            set,
            at: now,
        }
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

    /// Current (decayed) failure count of an account name.
    pub fn name_failures(&mut self, name: &str, now: SystemTime) -> u32 {
        match self.names.get_mut(&name_key(name)) {
            Some(e) => {
                Self::decay(e, now);
                e.failures
            }
            None => 0,
        }
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

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn a_login_whose_time_was_read_just_before_a_concurrent_one_is_not_throttled() {
        // Two right passwords at once: B read the clock first, A took the lock first. A's
        // free provisional failure must not open a window that B's earlier time falls in
        // (it did: 1 in 15 runs of 32 concurrent logins had one refused).
        let mut t = LoginThrottle::new();
        let a = t.reserve(ip("10.0.0.1"), Some("alice"), t0()).unwrap();
        let earlier = t0() - Duration::from_millis(3);
        let b = t
            .reserve(ip("10.0.0.2"), Some("alice"), earlier)
            .expect("no window is open after one free failure");
        t.succeed(a);
        t.succeed(b);
        assert_eq!(t.name_failures("alice", t0()), 0);
    }

    /// One failed attempt: reserve, then fail; the delay it earned.
    fn fail_once(
        t: &mut LoginThrottle,
        a: IpAddr,
        name: Option<&str>,
        now: SystemTime,
    ) -> Duration {
        let r = t.reserve(a, name, now).expect("admitted");
        t.fail(r)
    }

    #[test]
    fn delay_grows_then_caps() {
        let mut t = LoginThrottle::new();
        let a = ip("192.0.2.1");
        let mut now = t0();
        let mut delays = Vec::new();
        for _ in 0..10 {
            let d = fail_once(&mut t, a, None, now);
            delays.push(d.as_millis());
            // Inside the window the next attempt is refused with what is left of it.
            if !d.is_zero() {
                assert_eq!(t.reserve(a, None, now), Err(d));
            }
            now += d;
        }
        assert_eq!(delays, [0, 0, 0, 250, 500, 1000, 2000, 4000, 5000, 5000]);
        // Another address is unaffected.
        assert_eq!(t.blocked(ip("192.0.2.2"), now), None);
        assert_eq!(
            fail_once(&mut t, ip("192.0.2.2"), None, now),
            Duration::ZERO
        );
    }

    /// Issue 17 item 5: reservations taken before verification are counted at once, so
    /// attempts in flight together are held to the free ones plus the one that opens the window.
    #[test]
    fn concurrent_reservations_are_counted_before_settling() {
        let mut t = LoginThrottle::new();
        let a = ip("192.0.2.1");
        let admitted: Vec<Reservation> = (0..10)
            .filter_map(|_| t.reserve(a, Some("alice"), t0()).ok())
            .collect();
        assert_eq!(admitted.len(), LoginThrottle::FREE_FAILURES as usize + 1);
        // The right password, sent while those are still being verified, waits too.
        assert_eq!(
            t.reserve(a, Some("alice"), t0()),
            Err(LoginThrottle::BASE_DELAY)
        );
        let delays: Vec<u128> = admitted
            .into_iter()
            .map(|r| t.fail(r).as_millis())
            .collect();
        assert_eq!(delays, [0, 0, 0, 250]);
    }

    /// A success refunds exactly its own provisional failure, including the window it opened.
    #[test]
    fn success_refunds_its_own_reservation_only() {
        let mut t = LoginThrottle::new();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            fail_once(&mut t, a, Some("alice"), t0());
        }
        // The 4th attempt opens a window provisionally; it succeeds, so the window closes.
        let r = t.reserve(a, Some("alice"), t0()).unwrap();
        assert!(t.blocked(a, t0()).is_some());
        t.succeed(r);
        assert_eq!(t.blocked(a, t0()), None);
        assert_eq!(t.failures(a, t0()), 3);
        assert_eq!(t.name_failures("alice", t0()), 0);
    }

    /// Issue 17 item 6: successes of another account do not clear the address or the target.
    #[test]
    fn other_accounts_success_clears_nothing_of_the_target() {
        let mut t = LoginThrottle::new();
        let a = ip("192.0.2.1");
        let mut now = t0();
        let mut delays = Vec::new();
        for _ in 0..6 {
            let d = fail_once(&mut t, a, Some("alice"), now);
            delays.push(d.as_millis());
            now += d;
            let own = t.reserve(a, Some("bob"), now).unwrap();
            t.succeed(own);
        }
        assert_eq!(delays, [0, 0, 0, 250, 500, 1000]);
        assert_eq!(t.name_failures("alice", now), 6);
        // Only alice's own success clears alice.
        let r = t.reserve(
            ip("198.51.100.7"),
            Some("ALICE"),
            now + Duration::from_secs(5),
        );
        t.succeed(r.unwrap());
        assert_eq!(t.name_failures("alice", now), 0);
    }

    #[test]
    fn name_throttle_blocks_all_but_the_accounts_known_addresses() {
        let mut t = LoginThrottle::new();
        let now = t0();
        // The owner logged in from home once.
        let home = ip("198.51.100.9");
        let r = t.reserve(home, Some("alice"), now).unwrap();
        t.succeed(r);
        // Four different addresses guessing one account: the 4th failure closes the name.
        let mut last = Duration::ZERO;
        for i in 1..=4u8 {
            last = fail_once(&mut t, IpAddr::from([198, 51, 100, i]), Some("Alice"), now);
        }
        assert_eq!(last, Duration::from_millis(250));
        // An address that has failed is refused for this name, case-insensitively...
        let failed = IpAddr::from([198, 51, 100, 1]);
        assert_eq!(
            t.reserve(failed, Some("alice"), now),
            Err(Duration::from_millis(250))
        );
        // ...but not for another name.
        let r = t.reserve(failed, Some("bob"), now).unwrap();
        t.succeed(r);
        // A fresh address is refused too (a botnet gets nothing from new addresses)...
        assert!(t.reserve(ip("198.51.100.10"), Some("alice"), now).is_err());
        // ...while the owner's known address is let through, its failure penalized as usual.
        let r = t.reserve(home, Some("alice"), now).unwrap();
        assert!(t.fail(r) >= Duration::from_millis(250));
        // No permanent lock-out: after the penalty the name may try again, and a success clears.
        let later = now + LoginThrottle::MAX_DELAY;
        let r = t.reserve(failed, Some("alice"), later).unwrap();
        t.succeed(r);
        assert_eq!(t.name_failures("alice", later), 0);
    }

    #[test]
    fn refund_is_neutral() {
        let mut t = LoginThrottle::new();
        let a = ip("192.0.2.1");
        fail_once(&mut t, a, Some("alice"), t0());
        let r = t.reserve(a, Some("alice"), t0()).unwrap();
        t.refund(r);
        assert_eq!(t.failures(a, t0()), 1);
        assert_eq!(t.name_failures("alice", t0()), 1);
    }

    #[test]
    fn failures_decay_and_ipv6_is_throttled_by_64() {
        let mut t = LoginThrottle::new();
        let a = ip("2001:db8::1");
        let mut now = t0();
        for _ in 0..6 {
            now += fail_once(&mut t, a, None, now);
        }
        // Same /64 counts as the same source.
        assert_eq!(t.failures(ip("2001:db8::99"), now), 6);
        let later = now + LoginThrottle::LEAK_INTERVAL * 3;
        assert_eq!(t.failures(a, later), 3);
        // The 4th failure after decay costs the first non-zero delay again.
        assert_eq!(
            fail_once(&mut t, a, None, later),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn ipv4_mapped_is_ipv4() {
        let mut t = LoginThrottle::new();
        fail_once(&mut t, ip("::ffff:192.0.2.7"), None, t0());
        assert_eq!(t.failures(ip("192.0.2.7"), t0()), 1);
    }

    /// Issue 17 review: any number of fresh addresses (a botnet) get one guess per window at a
    /// closed account between them, while the owner's known address always gets in.
    #[test]
    fn a_botnet_gets_one_guess_per_window_and_the_owner_still_gets_in() {
        let mut t = LoginThrottle::new();
        let mut now = t0();
        let home = ip("203.0.113.5");
        let r = t.reserve(home, Some("alice"), now).unwrap();
        t.succeed(r);
        let mut bot = 0u32;
        let mut next_bot = || {
            bot += 1;
            IpAddr::from([10, (bot >> 16) as u8, (bot >> 8) as u8, bot as u8])
        };
        for _ in 0..4 {
            fail_once(&mut t, next_bot(), Some("alice"), now);
        }
        // 60 s of a 1000-address-a-second attack: guesses admitted per window only.
        let mut admitted = 0;
        for _ in 0..600 {
            for _ in 0..100 {
                if let Ok(r) = t.reserve(next_bot(), Some("alice"), now) {
                    admitted += 1;
                    t.fail(r);
                }
            }
            // The owner at home is let in at any moment of the attack.
            let r = t.reserve(home, Some("alice"), now).expect("owner admitted");
            t.refund(r);
            now += Duration::from_millis(100);
        }
        // Windows grow to 5 s: at most one guess per 5 s, plus the first short windows.
        assert!(
            admitted <= 60 / 5 + 4,
            "{admitted} guesses admitted in 60 s"
        );
        assert!(admitted >= 1);
    }
}
