//! Connection admission for Vigil's listeners (RTSP, web, snapshots): a cap on connections in
//! all and a lower cap per source, plus a count-limited warning for refusals.
//!
//! It lives here, beside [`LoginThrottle`](crate::LoginThrottle), because both answer the same
//! question — what one source may cost us — and use the same notion of a source (an IPv4
//! address, an IPv6 /64); and because this crate is the small common dependency of both the
//! RTSP server and the web edge. It is plain `std` (a mutex and counters), so the async servers
//! use it at accept time without any runtime coupling.
//!
//! A per-source cap keeps one address from taking every slot; it does not stop many addresses
//! (a botnet) from filling the global cap, which is what the global cap is for: a bound on the
//! descriptors and memory the listener can use.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Normalizes a peer address into the unit one source is counted by: IPv4 as is (also when
/// IPv4-mapped), IPv6 by /64, since one host typically owns a whole /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
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

/// The two caps of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Connections open at once, from everybody.
    pub total: usize,
    /// Connections open at once from one source ([`source_key`]); at most `total`.
    pub per_source: usize,
}

impl Caps {
    /// Caps with `per_source` clamped to `1..=total` (and `total` to at least 1).
    pub fn new(total: usize, per_source: usize) -> Self {
        let total = total.max(1);
        Caps {
            total,
            per_source: per_source.clamp(1, total),
        }
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Every slot of the listener is taken.
    #[error("connection limit reached")]
    Total,
    /// The source already holds its share.
    #[error("per-address connection limit reached")]
    PerSource,
}

/// Lets at most `burst` messages through per `window`, and counts the rest so the next message
/// that goes through can say how many were suppressed. Time is passed in.
#[derive(Clone, Debug)]
pub struct LogLimiter {
    window: Duration,
    burst: u32,
    window_start: Option<Instant>,
    emitted: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// At most `burst` messages per `window`.
    pub fn new(window: Duration, burst: u32) -> Self {
        LogLimiter {
            window,
            burst,
            window_start: None,
            emitted: 0,
            suppressed: 0,
        }
    }

    /// Whether to log an event at `now`: `Some(n)` with the number of events suppressed since
    /// the last logged one, or `None` to stay quiet.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let expired = self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= self.window);
        if expired {
            self.window_start = Some(now);
            self.emitted = 0;
        }
        if self.emitted < self.burst {
            self.emitted += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// Refusal warnings: a handful per minute per listener, whatever the flood.
const WARN_WINDOW: Duration = Duration::from_secs(60);
const WARN_BURST: u32 = 3;

struct State {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
    warn: LogLimiter,
}

struct Inner {
    /// Names the listener in log lines (`"RTSP"`, `"web"`, `"snapshot"`).
    name: &'static str,
    caps: Caps,
    state: Mutex<State>,
}

/// Counts the open connections of one listener against its [`Caps`]. Cheap to clone (shared).
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("name", &self.inner.name)
            .field("caps", &self.inner.caps)
            .field("open", &self.open())
            .finish()
    }
}

impl Admission {
    /// An admission for the listener called `name` (used in its log lines).
    pub fn new(name: &'static str, caps: Caps) -> Self {
        Admission {
            inner: Arc::new(Inner {
                name,
                caps,
                state: Mutex::new(State {
                    total: 0,
                    per_source: HashMap::new(),
                    warn: LogLimiter::new(WARN_WINDOW, WARN_BURST),
                }),
            }),
        }
    }

    /// The caps in force.
    pub fn caps(&self) -> Caps {
        self.inner.caps
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The counters stay consistent under any panic (plain integer updates).
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `peer`, or refuses it (and logs the refusal, a few times a
    /// minute at most). The slot is given back when the [`Ticket`] is dropped.
    pub fn admit(&self, peer: IpAddr) -> Result<Ticket, Refused> {
        let key = source_key(peer);
        let mut st = self.lock();
        let held = st.per_source.get(&key).copied().unwrap_or(0);
        let refused = if held >= self.inner.caps.per_source {
            Some(Refused::PerSource)
        } else if st.total >= self.inner.caps.total {
            Some(Refused::Total)
        } else {
            None
        };
        if let Some(why) = refused {
            if let Some(suppressed) = st.warn.allow(Instant::now()) {
                tracing::warn!(
                    listener = self.inner.name,
                    peer = %key,
                    open = st.total,
                    caps = ?self.inner.caps,
                    suppressed,
                    "{why}; closing a new connection (further refusals are counted, not logged, for a minute)"
                );
            }
            return Err(why);
        }
        st.total += 1;
        *st.per_source.entry(key).or_insert(0) += 1;
        Ok(Ticket {
            inner: self.inner.clone(),
            key,
        })
    }
}

/// One admitted connection's slot; dropping it frees the slot.
pub struct Ticket {
    inner: Arc<Inner>,
    key: IpAddr,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("source", &self.key).finish()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.per_source.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.per_source.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_cap_leaves_room_for_others() {
        let a = Admission::new("test", Caps::new(4, 2));
        let t1 = a.admit(ip("127.0.0.2")).unwrap();
        let _t2 = a.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(a.admit(ip("127.0.0.2")).unwrap_err(), Refused::PerSource);
        let _t3 = a.admit(ip("127.0.0.1")).unwrap();
        let _t4 = a.admit(ip("127.0.0.3")).unwrap();
        assert_eq!(a.admit(ip("127.0.0.4")).unwrap_err(), Refused::Total);
        drop(t1);
        assert_eq!(a.open(), 3);
        let _t5 = a.admit(ip("127.0.0.2")).unwrap();
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_as_ipv4() {
        let a = Admission::new("test", Caps::new(10, 1));
        let _t = a.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8:1:2::ffff")).unwrap_err(),
            Refused::PerSource
        );
        let _u = a.admit(ip("2001:db8:1:3::1")).unwrap();
        let _v = a.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.1")).unwrap_err(),
            Refused::PerSource
        );
    }

    #[test]
    fn caps_are_clamped() {
        assert_eq!(
            Caps::new(0, 0),
            Caps {
                total: 1,
                per_source: 1
            }
        );
        assert_eq!(
            Caps::new(8, 100),
            Caps {
                total: 8,
                per_source: 8
            }
        );
    }

    #[test]
    fn refusal_warnings_are_rate_limited() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(60), 3);
        // A burst of 3, then silence for the rest of the window however many events come.
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0), Some(0));
        assert_eq!(l.allow(t0 + Duration::from_secs(1)), Some(0));
        for s in 0..500 {
            assert_eq!(l.allow(t0 + Duration::from_millis(1000 + s)), None);
        }
        // Next window: the first line reports what was suppressed, once.
        assert_eq!(l.allow(t0 + Duration::from_secs(60)), Some(500));
        assert_eq!(l.allow(t0 + Duration::from_secs(61)), Some(0));
    }
}
