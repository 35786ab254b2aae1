//! Typed media time: the 90 kHz video clock against microseconds, with one conversion each
//! way, instead of `* 9 / 100` and `* 100 / 9` written out wherever the two meet.
//!
//! Conversions truncate toward zero (what the hand-written ones did, so the recordings'
//! index does not change) and saturate instead of overflowing.

use std::time::Duration;

/// Ticks per second of the video clock: RTP video (RFC 6184 §5.1, RFC 7798 §4.1), the
/// pts of every [`crate::AccessUnit`], and the timescale of Vigil's recordings.
pub const VIDEO_HZ: u32 = 90_000;

/// Microseconds per second.
pub const MICROS_PER_SEC: u32 = 1_000_000;

/// `t` ticks of a `from_hz` clock in ticks of a `to_hz` clock, truncated toward zero.
/// A zero `from_hz` is taken as 1 (never a division by zero).
pub fn rescale(t: i128, from_hz: u32, to_hz: u32) -> i128 {
    t * i128::from(to_hz) / i128::from(from_hz.max(1))
}

/// A time or span on the 90 kHz video clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticks90k(pub i64);

impl Ticks90k {
    /// `us` microseconds, truncated toward zero.
    pub fn from_micros(us: i64) -> Self {
        Self(saturate(rescale(i128::from(us), MICROS_PER_SEC, VIDEO_HZ)))
    }

    /// A [`Duration`], truncated to whole ticks.
    pub fn from_duration(d: Duration) -> Self {
        Self(saturate(rescale(
            i128::try_from(d.as_micros()).unwrap_or(i128::MAX / i128::from(VIDEO_HZ)),
            MICROS_PER_SEC,
            VIDEO_HZ,
        )))
    }

    /// In microseconds, truncated toward zero.
    pub fn to_micros(self) -> i64 {
        saturate(rescale(i128::from(self.0), VIDEO_HZ, MICROS_PER_SEC))
    }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_truncate_toward_zero_like_the_index_always_did() {
        assert_eq!(Ticks90k::from_micros(1_000_000), Ticks90k(90_000));
        assert_eq!(Ticks90k::from_micros(33_333), Ticks90k(2_999));
        assert_eq!(Ticks90k::from_micros(-33_333), Ticks90k(-2_999));
        assert_eq!(Ticks90k(3_000).to_micros(), 33_333);
        assert_eq!(Ticks90k(1).to_micros(), 11);
        for x in [-7_777_777i64, -1, 0, 1, 11, 12, 1_704_067_200_000_000] {
            assert_eq!(Ticks90k::from_micros(x).0, x * 9 / 100);
            assert_eq!(Ticks90k(x).to_micros(), (i128::from(x) * 100 / 9) as i64);
        }
        assert_eq!(
            Ticks90k::from_duration(Duration::from_secs(300)),
            Ticks90k(300 * 90_000)
        );
    }

    #[test]
    fn rescaling_saturates_and_never_divides_by_zero() {
        assert_eq!(rescale(8_000, 8_000, VIDEO_HZ), 90_000);
        assert_eq!(rescale(5, 0, 10), 50);
        assert_eq!(Ticks90k(i64::MAX).to_micros(), i64::MAX);
        assert_eq!(Ticks90k(i64::MIN).to_micros(), i64::MIN);
        assert_eq!(Ticks90k::from_duration(Duration::MAX), Ticks90k(i64::MAX));
    }
}
