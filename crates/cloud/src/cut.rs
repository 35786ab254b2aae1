//! Cutting recorded fragments into parts, the unit of upload (sans-IO).
//!
//! A part is a run of whole fragments of one file. Cutting is local and never waits on the
//! network: the parts' rows (with their object names) go into the index first, so an
//! upload retried after a crash or an outage puts the same name, and a create-only put
//! makes a second copy impossible.
//!
//! Rules, applied to the fragments of a file that no part holds yet, in order:
//! - a part holds at most `part_bytes` of fragments (a larger fragment is a part by itself)
//!   and at most `max_part_us` of footage;
//! - the rest (a tail) becomes a part when the file is closed, or when its first fragment
//!   has waited `delay_us` since it ended: footage leaves the recorder about `delay` after
//!   it was recorded, in parts of about `delay` of video.

use std::ops::Range;

/// The cutter's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest part, plaintext bytes of fragments.
    pub part_bytes: u64,
    /// Longest part, µs of footage.
    pub max_part_us: i64,
    /// How long the oldest fragment of a tail waits for more, µs.
    pub delay_us: i64,
}

/// What the cutter needs of a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frag {
    /// Bytes (`moof` + `mdat`).
    pub byte_len: u64,
    /// Wall clock of its first sample.
    pub start_wall_us: i64,
    /// Wall clock after its last sample.
    pub end_wall_us: i64,
}

/// Splits `frags` (a file's fragments after the last one already in a part) into parts,
/// as index ranges. Fragments after the last range wait for a later call.
pub fn cut(frags: &[Frag], file_closed: bool, now_us: i64, limits: Limits) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, f) in frags.iter().enumerate() {
        // A fragment that would take the part past its size starts the next one (a part
        // holds at least one fragment, so one huge fragment is a part by itself).
        if i > start && bytes + f.byte_len > limits.part_bytes {
            parts.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += f.byte_len;
        let span = f.end_wall_us - frags[start].start_wall_us;
        if bytes >= limits.part_bytes || span >= limits.max_part_us {
            parts.push(start..i + 1);
            start = i + 1;
            bytes = 0;
        }
    }
    if let Some(first) = frags.get(start) {
        if file_closed || now_us.saturating_sub(first.end_wall_us) >= limits.delay_us {
            parts.push(start..frags.len());
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        part_bytes: 1000,
        max_part_us: 60_000_000,
        delay_us: 30_000_000,
    };

    /// One-second fragments of `size` bytes from t = 0.
    fn frags(n: usize, size: u64) -> Vec<Frag> {
        (0..n)
            .map(|i| Frag {
                byte_len: size,
                start_wall_us: i as i64 * 1_000_000,
                end_wall_us: (i as i64 + 1) * 1_000_000,
            })
            .collect()
    }

    #[test]
    fn tail_waits_for_the_delay() {
        let f = frags(10, 10);
        // The first fragment ended at 1 s: it has waited 29 s at 30 s.
        assert!(cut(&f, false, 30_000_000, L).is_empty());
        assert_eq!(cut(&f, false, 31_000_000, L), vec![0..10]);
        // A closed file goes at once.
        assert_eq!(cut(&f, true, 2_000_000, L), vec![0..10]);
        assert!(cut(&[], true, 0, L).is_empty());
    }

    #[test]
    fn parts_end_at_the_byte_and_time_limits() {
        // 400-byte fragments: two per part (a third would make 1200 > 1000), never over.
        let f = frags(7, 400);
        assert_eq!(cut(&f, false, 0, L), vec![0..2, 2..4, 4..6]);
        assert_eq!(cut(&f, true, 0, L), vec![0..2, 2..4, 4..6, 6..7]);
        // Exactly full: 500 + 500.
        assert_eq!(cut(&frags(4, 500), false, 0, L), vec![0..2, 2..4]);
        // Small fragments: a part every 60 s of footage.
        let f = frags(150, 1);
        assert_eq!(cut(&f, false, 0, L), vec![0..60, 60..120]);
        // Every fragment is in exactly one part, in order.
        let parts = cut(&f, true, 0, L);
        let flat: Vec<usize> = parts.into_iter().flatten().collect();
        assert_eq!(flat, (0..150).collect::<Vec<_>>());
    }

    #[test]
    fn a_huge_fragment_is_a_part_by_itself() {
        let mut f = frags(3, 10);
        f[1].byte_len = 5000;
        assert_eq!(cut(&f, false, 0, L), vec![0..1, 1..2]);
    }
}
