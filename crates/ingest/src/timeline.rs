//! Sans-IO mapping of RTP timestamps to one monotonic presentation timeline per stream.
//!
//! Within a session, pts follow the camera's RTP clock (RFC 3550 §5.1: the timestamp
//! reflects the sampling instant), rescaled to the output clock: frame durations stay
//! exactly what the camera encoded, whatever the network jitter. Across reconnects the RTP
//! clock restarts at an arbitrary value, so each new session is placed after the previous
//! one by the time that passed on the host's *monotonic* clock: a gap in the recording
//! is as long as the outage, and a step of the host's wall clock changes nothing.
//!
//! A camera whose timestamps jump backwards (or absurdly far forward) within a session
//! would produce negative or hour-long sample durations. Such a frame is re-based to
//! follow the previous one by one frame duration and reported as a discontinuity.

/// Why the timeline was re-based within a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jump {
    /// The timestamp did not increase; `by` is how far back it went, in output ticks.
    Backwards {
        /// Output ticks the timestamp went back (0 = repeated timestamp).
        by: i64,
    },
    /// The timestamp advanced much further than the host's monotonic clock did.
    Forward {
        /// Output ticks beyond what the monotonic clock accounts for.
        by: i64,
    },
}

/// Maps one stream's RTP timestamps (elapsed ticks since the session's first packet, as
/// retina reports them) to monotonic pts in `out_rate` Hz.
#[derive(Debug)]
pub struct Timeline {
    out_rate: i64,
    /// Largest forward step beyond the monotonic clock accepted as genuine, output ticks.
    max_forward: i64,
    /// `pts = offset + rescaled(elapsed)` in the current session; `None` until the first
    /// frame of a session.
    offset: Option<i64>,
    last: Option<Last>,
}

#[derive(Clone, Copy, Debug)]
struct Last {
    pts: i64,
    mono_us: i64,
    /// The last genuine frame duration, used to re-base after a jump.
    step: Option<i64>,
}

/// Forward jumps of more than this (beyond elapsed monotonic time) are discontinuities.
const MAX_FORWARD_SECS: i64 = 10;

impl Timeline {
    /// A timeline producing pts in `out_rate` Hz (90 000 for video, the sample rate for
    /// audio).
    pub fn new(out_rate: u32) -> Self {
        let out_rate = i64::from(out_rate.max(1));
        Timeline {
            out_rate,
            max_forward: MAX_FORWARD_SECS * out_rate,
            offset: None,
            last: None,
        }
    }

    /// A new session starts: its first frame is placed after the last one by the
    /// monotonic time between them.
    pub fn new_session(&mut self) {
        self.offset = None;
    }

    /// The pts of the last mapped frame.
    pub fn last_pts(&self) -> Option<i64> {
        self.last.map(|l| l.pts)
    }

    /// Maps a frame at `elapsed` ticks of a `in_rate` Hz RTP clock, received at `mono_us`
    /// (host monotonic clock, µs). Returns its pts and, if the camera's clock jumped, why
    /// the frame was re-based.
    pub fn map(&mut self, elapsed: i64, in_rate: u32, mono_us: i64) -> (i64, Option<Jump>) {
        let rescaled = rescale(elapsed, i64::from(in_rate.max(1)), self.out_rate);
        let Some(last) = self.last else {
            // The very first frame of the stream is at pts 0.
            self.offset = Some(rescaled.saturating_neg());
            self.last = Some(Last {
                pts: 0,
                mono_us,
                step: None,
            });
            return (0, None);
        };
        let mono_ticks = rescale(
            mono_us.saturating_sub(last.mono_us),
            1_000_000,
            self.out_rate,
        );
        let (pts, jump) = match self.offset {
            None => {
                // First frame of a new session: after the previous by the monotonic gap.
                (last.pts.saturating_add(mono_ticks.max(1)), None)
            }
            Some(offset) => {
                let pts = offset.saturating_add(rescaled);
                let delta = pts.saturating_sub(last.pts);
                if delta <= 0 {
                    let step = last.step.unwrap_or(mono_ticks).max(1);
                    (
                        last.pts.saturating_add(step),
                        Some(Jump::Backwards {
                            by: delta.saturating_neg(),
                        }),
                    )
                } else if delta.saturating_sub(mono_ticks) > self.max_forward {
                    let step = last.step.unwrap_or(mono_ticks).max(1);
                    let by = delta.saturating_sub(mono_ticks);
                    (last.pts.saturating_add(step), Some(Jump::Forward { by }))
                } else {
                    (pts, None)
                }
            }
        };
        let step = match (self.offset, jump) {
            (Some(_), None) => Some(pts.saturating_sub(last.pts)),
            _ => last.step,
        };
        self.offset = Some(pts.saturating_sub(rescaled));
        self.last = Some(Last { pts, mono_us, step });
        (pts, jump)
    }
}

/// `v * to / from`, rounded toward negative infinity, without intermediate overflow.
fn rescale(v: i64, from: i64, to: i64) -> i64 {
    let r = (i128::from(v) * i128::from(to)).div_euclid(i128::from(from.max(1)));
    i64::try_from(r).unwrap_or(if r < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: i64 = 3000; // 30 fps at 90 kHz
    const FRAME_US: i64 = 33_333;

    #[test]
    fn follows_the_rtp_clock_within_a_session_whatever_the_jitter() {
        let mut t = Timeline::new(90_000);
        let mut got = Vec::new();
        for i in 0..5i64 {
            // Arrival jitter of up to 20 ms must not leak into pts.
            let jitter = (i % 2) * 20_000;
            got.push(t.map(1_000_000 + i * FRAME, 90_000, i * FRAME_US + jitter));
        }
        let pts: Vec<i64> = got.iter().map(|g| g.0).collect();
        assert_eq!(pts, [0, 3000, 6000, 9000, 12000]);
        assert!(got.iter().all(|g| g.1.is_none()));
    }

    #[test]
    fn rescales_other_clock_rates() {
        let mut t = Timeline::new(90_000);
        t.map(0, 1000, 0);
        assert_eq!(t.map(40, 1000, 40_000).0, 3600);
        let mut a = Timeline::new(8000);
        a.map(0, 8000, 0);
        assert_eq!(a.map(160, 8000, 20_000).0, 160);
    }

    #[test]
    fn a_new_session_continues_after_the_outage_measured_on_the_monotonic_clock() {
        let mut t = Timeline::new(90_000);
        t.map(500, 90_000, 0);
        t.map(500 + FRAME, 90_000, FRAME_US);
        t.new_session();
        // The camera came back 7 s later with an unrelated RTP clock.
        let (pts, jump) = t.map(-123_456, 90_000, FRAME_US + 7_000_000);
        assert_eq!(jump, None);
        assert_eq!(pts, 3000 + 7 * 90_000);
        // And then follows its new clock.
        assert_eq!(
            t.map(-123_456 + FRAME, 90_000, FRAME_US + 7_033_333).0,
            pts + 3000
        );
    }

    #[test]
    fn a_backwards_jump_is_re_based_by_one_frame_and_reported() {
        let mut t = Timeline::new(90_000);
        for i in 0..3 {
            t.map(i * FRAME, 90_000, i * FRAME_US);
        }
        let (pts, jump) = t.map(-900_000, 90_000, 3 * FRAME_US);
        assert_eq!(pts, 9000);
        assert_eq!(jump, Some(Jump::Backwards { by: 900_000 + 6000 }));
        // Subsequent frames follow the camera's new clock from there.
        let (next, jump) = t.map(-900_000 + FRAME, 90_000, 4 * FRAME_US);
        assert_eq!((next, jump), (12_000, None));
    }

    #[test]
    fn a_repeated_timestamp_is_a_discontinuity_not_a_zero_duration_frame() {
        let mut t = Timeline::new(90_000);
        t.map(0, 90_000, 0);
        t.map(FRAME, 90_000, FRAME_US);
        let (pts, jump) = t.map(FRAME, 90_000, 2 * FRAME_US);
        assert_eq!(pts, 6000);
        assert_eq!(jump, Some(Jump::Backwards { by: 0 }));
    }

    #[test]
    fn a_forward_leap_beyond_elapsed_time_is_re_based() {
        let mut t = Timeline::new(90_000);
        t.map(0, 90_000, 0);
        t.map(FRAME, 90_000, FRAME_US);
        let hour = 3600 * 90_000;
        let (pts, jump) = t.map(FRAME * 2 + hour, 90_000, 2 * FRAME_US);
        assert_eq!(pts, 6000);
        assert!(matches!(jump, Some(Jump::Forward { by }) if by > hour - 10_000));
    }

    #[test]
    fn a_genuine_pause_with_matching_monotonic_time_is_kept() {
        let mut t = Timeline::new(90_000);
        t.map(0, 90_000, 0);
        // 30 s without frames, but the camera's clock and ours agree: not a jump.
        let (pts, jump) = t.map(30 * 90_000, 90_000, 30_000_000);
        assert_eq!((pts, jump), (30 * 90_000, None));
    }

    #[test]
    fn pts_stay_strictly_increasing_under_hostile_timestamps() {
        let mut t = Timeline::new(90_000);
        let mut last = i64::MIN;
        let values = [0, i64::MAX, i64::MIN, -1, 5, 5, i64::MAX / 2, 0, 1];
        for (i, v) in values.iter().enumerate() {
            if i == 4 {
                t.new_session();
            }
            let (pts, _) = t.map(*v, 90_000, i as i64 * 1000);
            assert!(pts > last, "frame {i}: {pts} after {last}");
            last = pts;
        }
    }
}
