//! The file-descriptor budget: raise the soft `RLIMIT_NOFILE` to the hard limit at start, and
//! derive every listener's connection caps from the limit actually in force, so that a flood of
//! connections runs into our caps (and is refused politely) long before the process runs out of
//! descriptors — which would make the recorder fail to open files and the RTSP server fail to
//! accept the NVR's own ingest connections ("Too many open files").
//!
//! Budget = limit − reserve, where the reserve covers what is not a client connection: the
//! process itself (stdio, epoll, eventfds, listeners, TLS and config files), the SQLite
//! databases (each connection keeps the database, its WAL and its shared-memory file open) and
//! per camera stream its ingest sockets (RTSP TCP + RTP/RTCP UDP) and recording files. The
//! budget is split evenly between the listeners of the command; each listener's share is
//! divided by what one of its connections can hold open.

use vigil_auth::admission::Caps;

/// Descriptors the process keeps whatever its load (stdio, epoll, eventfds, listeners, TLS,
/// config and log files, the data directory's lock).
const RESERVE_BASE: u64 = 64;
/// SQLite: the recordings index and the web database, each a few connections with database,
/// WAL and shared-memory files.
const RESERVE_SQLITE: u64 = 32;
/// Per camera stream: ingest (RTSP TCP, RTP and RTCP UDP), the open recording file, its
/// directory, and a little room for export or retention.
const RESERVE_PER_STREAM: u64 = 8;
/// The smallest cap any listener gets, however low the limit: it must still serve someone.
const MIN_TOTAL: usize = 8;

/// One of the listeners whose caps are derived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// An RTSP(S) server.
    Rtsp,
    /// The web app.
    Web,
    /// The camera's HTTPS snapshot server.
    Snapshot,
    /// The camera's ONVIF HTTP server.
    Onvif,
}

impl Listener {
    /// Descriptors one connection may hold: RTSP over UDP binds an RTP and an RTCP socket per
    /// session; a web connection may have a recording open for playback or export.
    fn cost(self) -> u64 {
        match self {
            Listener::Rtsp => 3,
            Listener::Web => 2,
            Listener::Snapshot | Listener::Onvif => 1,
        }
    }

    /// The caps with descriptors to spare (what each listener had before caps were derived).
    fn default_caps(self) -> Caps {
        match self {
            Listener::Rtsp => {
                let o = vigil_rtsp::ServerOptions::default();
                Caps::new(o.max_connections, o.max_connections_per_address)
            }
            Listener::Web | Listener::Snapshot => vigil_web::edge::Limits::default().caps,
            // A handful of VMSs and phone apps poll a camera: few, short connections.
            Listener::Onvif => Caps::new(64, 16),
        }
    }
}

/// The outcome of [`derive_caps`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    /// The soft limit the caps were derived from.
    pub nofile: u64,
    /// Descriptors kept back for everything but client connections.
    pub reserved: u64,
    /// One entry per listener given, in order.
    pub caps: Vec<(Listener, Caps)>,
}

impl Derived {
    /// The caps of the first listener of that kind (every one of a kind gets the same).
    pub fn of(&self, l: Listener) -> Caps {
        self.caps
            .iter()
            .find(|(k, _)| *k == l)
            .map_or_else(|| l.default_caps(), |(_, c)| *c)
    }

    /// Logs the caps once, at start.
    pub fn log(&self) {
        for (l, c) in &self.caps {
            tracing::info!(
                listener = ?l,
                max_connections = c.total,
                max_connections_per_address = c.per_source,
                nofile = self.nofile,
                reserved = self.reserved,
                "connection caps derived from the open-file limit"
            );
        }
    }
}

/// Caps for `listeners` under a soft descriptor limit of `nofile` with `streams` camera
/// streams ingested or recorded. Pure: tested with given limits.
pub fn derive_caps(nofile: u64, streams: usize, listeners: &[Listener]) -> Derived {
    let reserved = RESERVE_BASE + RESERVE_SQLITE + RESERVE_PER_STREAM * streams as u64;
    let budget = nofile.saturating_sub(reserved);
    let share = budget / (listeners.len().max(1) as u64);
    let caps = listeners
        .iter()
        .map(|&l| {
            let d = l.default_caps();
            let fit = usize::try_from(share / l.cost()).unwrap_or(usize::MAX);
            let total = d.total.min(fit).max(MIN_TOTAL);
            // With descriptors to spare, the defaults (a quarter per address). Squeezed by the
            // limit, an eighth: it then takes eight addresses, not four, to fill the listener,
            // and a browser (~6 connections + a WebSocket per camera) or an NVR still fits.
            let per_source = if total < d.total {
                (total / 8).max(1)
            } else {
                d.per_source
            };
            (l, Caps::new(total, per_source))
        })
        .collect();
    Derived {
        nofile,
        reserved,
        caps,
    }
}

/// `None` (RLIM_INFINITY) counted as this many: no descriptor table is that large anyway.
const UNLIMITED: u64 = 1 << 20;

/// [`derive_caps`] under the soft limit in force now, logged once.
pub fn derive_now(streams: usize, listeners: &[Listener]) -> Derived {
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(UNLIMITED);
    let d = derive_caps(nofile, streams, listeners);
    d.log();
    d
}

/// What [`raise_nofile`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// Soft limit found at start.
    pub before: u64,
    /// Soft limit in force now.
    pub now: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the soft limit of 1024 common on Linux
/// is a select(2)-era default; we use epoll). Returns the limits before and after; a failure
/// to raise keeps the old limit and is logged, since the caps then simply come out lower.
pub fn raise_nofile() -> NofileLimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let old = getrlimit(Resource::Nofile);
    let before = old.current.unwrap_or(UNLIMITED);
    if old.current == old.maximum {
        return NofileLimit {
            before,
            now: before,
        };
    }
    // Linux refuses more than fs.nr_open even when the hard limit is infinity.
    let target = old.maximum.unwrap_or(UNLIMITED);
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: old.maximum,
        },
    ) {
        Ok(()) => NofileLimit {
            before,
            now: target,
        },
        Err(e) => {
            tracing::warn!(error = %e, soft = before, hard = ?old.maximum, "cannot raise the open-file limit; connection caps will be lower");
            NofileLimit {
                before,
                now: before,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn caps_fit_under_a_soft_limit_of_1024() {
        // `vigil demo`: two test cameras (main + sub each), RTSP for their ingest and the web.
        let d = derive_caps(1024, 4, &[Listener::Rtsp, Listener::Web]);
        assert_eq!(d.reserved, 64 + 32 + 32);
        let rtsp = d.of(Listener::Rtsp);
        let web = d.of(Listener::Web);
        // Every connection at its cap, at its cost, plus the reserve, stays under the limit.
        let worst = d.reserved
            + rtsp.total as u64 * Listener::Rtsp.cost()
            + web.total as u64 * Listener::Web.cost();
        assert!(worst <= 1024, "{worst}");
        assert_eq!(web, Caps::new(224, 28));
        assert_eq!(rtsp, Caps::new(149, 18));
        // Today's fixed caps did not fit: four addresses' worth of web connections alone.
        assert!(4 * 256 > 1024 - d.reserved);
        // Four flooding addresses leave room for a fifth.
        assert!(4 * web.per_source < web.total && 4 * rtsp.per_source < rtsp.total);
    }

    #[test]
    fn a_high_limit_keeps_the_default_caps() {
        let d = derive_caps(
            1 << 20,
            2,
            &[Listener::Rtsp, Listener::Rtsp, Listener::Snapshot],
        );
        assert_eq!(d.of(Listener::Rtsp), Caps::new(512, 128));
        assert_eq!(d.of(Listener::Snapshot), Caps::new(1024, 256));
        assert_eq!(d.caps.len(), 3);
    }

    #[test]
    fn a_tiny_limit_still_serves_someone() {
        let d = derive_caps(64, 100, &[Listener::Web]);
        assert_eq!(d.of(Listener::Web), Caps::new(MIN_TOTAL, 1));
    }
}
