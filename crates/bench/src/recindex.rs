//! Counting the frames `vigil serve` recorded, from its index (`<data>/index.sqlite3`), to show
//! that no frame was lost in a measured window.
//!
//! Read independently of `vigil-recorder`'s code (a bench that trusted the recorder's own reader
//! could not catch its bugs): the schema is `crates/recorder/src/db.rs`. Each `fragment` row has
//! the wall time of its first sample (`start_wall_us`) and a `samples` blob of 9 bytes per sample
//! (duration u32, size u32, flags u8; big-endian). A sample's wall time is the fragment's plus the
//! durations before it (90 kHz), which is how the recorder itself maps media time to wall time.

use std::collections::BTreeMap;
use std::path::Path;

use crate::BenchError;

/// Frames of one recorded stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamFrames {
    /// Frames whose wall time is inside the window.
    pub in_window: u64,
    /// Frames in the whole recording.
    pub total: u64,
    /// Media time of the whole recording, 90 kHz.
    pub total_90k: u64,
}

/// One fragment as far as counting goes: its first sample's wall time and each sample's duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentTimes {
    /// Wall time of the first sample, µs since the epoch.
    pub start_wall_us: i64,
    /// Sample durations, 90 kHz.
    pub durations: Vec<u32>,
}

/// Sample durations from a `samples` blob; a truncated trailing entry is ignored.
pub fn sample_durations(blob: &[u8]) -> Vec<u32> {
    blob.chunks_exact(9)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Counts the frames of one stream's fragments, and those whose wall time is in
/// `[w0_us, w1_us)`.
pub fn count_frames(fragments: &[FragmentTimes], w0_us: i64, w1_us: i64) -> StreamFrames {
    let mut out = StreamFrames::default();
    for f in fragments {
        let mut t90k: u64 = 0;
        for &d in &f.durations {
            let wall = f.start_wall_us + (t90k * 1_000_000 / 90_000) as i64;
            if (w0_us..w1_us).contains(&wall) {
                out.in_window += 1;
            }
            t90k += u64::from(d);
        }
        out.total += f.durations.len() as u64;
        out.total_90k += t90k;
    }
    out
}

/// Frames per `camera/stream` in the index at `db`, opened read-only (run it after the recorder
/// has stopped, so its last fragments are in).
pub fn frames_per_stream(
    db: &Path,
    w0_us: i64,
    w1_us: i64,
) -> Result<BTreeMap<String, StreamFrames>, BenchError> {
    let sql_err = |e: rusqlite::Error| BenchError::Server(format!("{}: {e}", db.display()));
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql_err)?;
    let mut stmt = conn
        .prepare(
            "SELECT c.name || '/' || s.name, f.start_wall_us, f.samples \
             FROM fragment f JOIN segment_file sf ON f.file_id = sf.id \
             JOIN stream s ON sf.stream_id = s.id JOIN camera c ON s.camera_id = c.id \
             ORDER BY c.name, s.name, f.start_wall_us",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                FragmentTimes {
                    start_wall_us: r.get(1)?,
                    durations: sample_durations(&r.get::<_, Vec<u8>>(2)?),
                },
            ))
        })
        .map_err(sql_err)?;
    let mut by_stream: BTreeMap<String, Vec<FragmentTimes>> = BTreeMap::new();
    for row in rows {
        let (name, f) = row.map_err(sql_err)?;
        by_stream.entry(name).or_default().push(f);
    }
    Ok(by_stream
        .into_iter()
        .map(|(name, frags)| (name, count_frames(&frags, w0_us, w1_us)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(durations: &[u32]) -> Vec<u8> {
        let mut b = Vec::new();
        for (i, d) in durations.iter().enumerate() {
            b.extend_from_slice(&d.to_be_bytes());
            b.extend_from_slice(&1000u32.to_be_bytes());
            b.push(u8::from(i == 0));
        }
        b
    }

    #[test]
    fn durations_from_blob() {
        let mut b = blob(&[3000, 3003, 2997]);
        b.extend_from_slice(&[0, 0, 1]); // truncated trailing entry
        assert_eq!(sample_durations(&b), [3000, 3003, 2997]);
        assert!(sample_durations(&[1, 2]).is_empty());
    }

    #[test]
    fn window_counts_samples_by_wall_time() {
        // Two 1 s fragments of 30 frames at 30 fps, back to back from t = 10 s.
        let frag = |start_s: i64| FragmentTimes {
            start_wall_us: start_s * 1_000_000,
            durations: vec![3000; 30],
        };
        let frags = [frag(10), frag(11)];
        let all = count_frames(&frags, 0, i64::MAX);
        assert_eq!((all.in_window, all.total, all.total_90k), (60, 60, 180_000));
        // [10.5 s, 11.5 s): frames 15..30 of the first and 0..15 of the second.
        let half = count_frames(&frags, 10_500_000, 11_500_000);
        assert_eq!(half.in_window, 30);
        // A lost frame inside the window (its duration folded into the previous sample) shows.
        let mut lossy = frags.to_vec();
        lossy[1].durations = vec![3000; 29];
        lossy[1].durations[5] = 6000;
        assert_eq!(count_frames(&lossy, 10_500_000, 11_500_000).in_window, 29);
        assert_eq!(count_frames(&lossy, 0, i64::MAX).total_90k, 180_000);
    }
}
