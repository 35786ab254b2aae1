//! Which access units a viewer's session sends, and with which RTP time: sans-IO.

use std::time::{Duration, Instant};

use str0m::media::{Frequency, MediaTime};

/// Decides per access unit whether a session sends it.
///
/// A decoder can only start on a key frame, so the gate starts closed and opens on one.
/// The hub's subscriber already skips to the next key frame when a viewer lags; the gate
/// adds the two cases the hub cannot see:
///
/// - A PLI or FIR from the browser (RFC 4585 §6.3.1, RFC 5104 §4.3.1): the decoder lost
///   its reference chain. The gate closes until the next key frame *from the hub*; the
///   camera is never asked. Re-sending the cached key frame instead would hand the decoder
///   a picture up to one GOP old whose successors it does not have (every P-frame since
///   refers to them), so it would either show a frozen old picture until the next key
///   frame anyway or need the whole GOP re-sent with rewritten timestamps; waiting costs
///   at most one GOP (1-2 s on typical cameras) and no burst on the viewer's link.
/// - A write str0m could not accept (see [`crate::Session::write`]): the reference
///   chain of what reached the wire is broken, same as after a PLI.
#[derive(Debug)]
pub struct Gate {
    open: bool,
    /// pts of the first access unit sent: RTP time counts from there.
    origin: Option<i64>,
    keyframe_requests: u64,
    last_request: Option<Instant>,
}

/// Browsers repeat a PLI every few hundred ms until a key frame arrives; those repeats
/// are the same request.
const REQUEST_DEBOUNCE: Duration = Duration::from_millis(250);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate: it opens on the first key frame.
    pub fn new() -> Self {
        Gate {
            open: false,
            origin: None,
            keyframe_requests: 0,
            last_request: None,
        }
    }

    /// Whether to send an access unit with this key flag; opens on a key frame.
    pub fn admit(&mut self, key: bool) -> bool {
        if key {
            self.open = true;
        }
        self.open
    }

    /// The decoder needs a key frame: drop everything up to the hub's next one.
    pub fn keyframe_requested(&mut self, now: Instant) {
        if self
            .last_request
            .is_some_and(|t| now.saturating_duration_since(t) < REQUEST_DEBOUNCE)
        {
            return;
        }
        self.last_request = Some(now);
        self.keyframe_requests += 1;
        self.open = false;
    }

    /// Key-frame requests counted (after debouncing), for the session's statistics.
    pub fn keyframe_requests(&self) -> u64 {
        self.keyframe_requests
    }

    /// The RTP time of an access unit: the hub's 90 kHz pts, counted from the first one
    /// sent. The hub's pts is monotonic within a stream (it re-bases across the source's
    /// jumps), so this never runs backwards; str0m adds the random RTP offset of
    /// RFC 3550 §5.1 itself.
    pub fn rtp_time(&mut self, pts: i64) -> MediaTime {
        let origin = *self.origin.get_or_insert(pts);
        let ticks = u64::try_from(pts.saturating_sub(origin)).unwrap_or(0);
        MediaTime::new(ticks, Frequency::NINETY_KHZ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_key_closes_on_request_until_next_key() {
        let t0 = Instant::now();
        let mut g = Gate::new();
        assert!(!g.admit(false));
        assert!(g.admit(true));
        assert!(g.admit(false));
        g.keyframe_requested(t0);
        assert!(!g.admit(false));
        // A repeat within the debounce window counts once.
        g.keyframe_requested(t0 + Duration::from_millis(100));
        assert_eq!(g.keyframe_requests(), 1);
        assert!(g.admit(true));
        g.keyframe_requested(t0 + Duration::from_millis(400));
        assert_eq!(g.keyframe_requests(), 2);
    }

    #[test]
    fn rtp_time_counts_from_first_pts() {
        let mut g = Gate::new();
        assert_eq!(g.rtp_time(-9000).numer(), 0);
        assert_eq!(g.rtp_time(-6000).numer(), 3000);
        assert_eq!(g.rtp_time(0).numer(), 9000);
    }
}
