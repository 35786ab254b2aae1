//! Exports checked by the real ffprobe and ffmpeg.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::*;
use crate::retention::RetentionConfig;
use crate::segment::SegmenterConfig;
use crate::storage::{DirStorage, Storage};
use crate::testutil::AuGen;
use crate::writer::tests::{short_files, store_with, T0};
use crate::writer::StreamWriter;

fn record(dir: &Path, seconds: usize) -> (Arc<Archive>, i64) {
    let storage: Arc<dyn Storage> = Arc::new(DirStorage::new(dir.join("recordings")).unwrap());
    let store = store_with(dir, storage, RetentionConfig::default());
    let mut w = StreamWriter::new(store.clone(), "door", "main", short_files()).unwrap();
    let mut g = AuGen::new(T0);
    for _ in 0..seconds * 30 {
        w.push(g.next_au()).unwrap();
    }
    w.finish().unwrap();
    let id = w.stream_id();
    (store, id)
}

fn ffprobe(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("format=duration:stream=codec_name,width,height,nb_read_frames")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field<'a>(probe: &'a str, key: &str) -> &'a str {
    probe
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing in {probe}"))
}

#[test]
fn export_across_two_files_plays_with_the_requested_duration() {
    let dir = tempfile::tempdir().unwrap();
    let (store, stream) = record(dir.path(), 10); // files of 4 s: 0-4, 4-8, 8-10
                                                  // 2.0 s .. 7.0 s: starts on a key frame and crosses the file boundary at 4 s.
    let plan = plan(&store, stream, T0 + 2_000_000, T0 + 7_000_000).unwrap();
    assert_eq!(plan.start_wall_us, T0 + 2_000_000);
    assert_eq!(plan.frames, 150);
    // One range per fragment (0.5 s each with this clip's 0.1 s GOPs): 4 + 6.
    assert_eq!(plan.ranges.len(), 10);
    let out = dir.path().join("export.mp4");
    let mut f = std::fs::File::create(&out).unwrap();
    plan.write_to(&mut f).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), plan.total_len);
    let probe = ffprobe(&out);
    assert_eq!(field(&probe, "codec_name"), "h264");
    assert_eq!(field(&probe, "width"), "160");
    assert_eq!(field(&probe, "height"), "120");
    assert_eq!(field(&probe, "nb_read_frames"), "150");
    let duration: f64 = field(&probe, "duration").parse().unwrap();
    assert!((duration - 5.0).abs() <= 1.0 / 30.0, "duration {duration}");
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out), "");
}

#[test]
fn export_starts_at_the_key_frame_before_and_serves_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (store, stream) = record(dir.path(), 6);
    // Key frames every 3 pictures (0.1 s); 2.05 s is mid-GOP: the export starts at 2.0 s.
    let plan = plan(&store, stream, T0 + 2_050_000, T0 + 3_000_000).unwrap();
    assert_eq!(plan.start_wall_us, T0 + 2_000_000);
    assert_eq!(plan.frames, 30);
    // Byte ranges of the virtual file concatenate to the whole file.
    let mut whole = Vec::new();
    plan.write_to(&mut whole).unwrap();
    let mut pieces = Vec::new();
    let cuts = [
        0,
        7,
        plan.header.len() as u64 + 3,
        plan.total_len / 2,
        plan.total_len,
    ];
    for w in cuts.windows(2) {
        plan.write_range(w[0], w[1], &mut pieces).unwrap();
    }
    assert_eq!(pieces, whole);
    let out = dir.path().join("export.mp4");
    std::fs::write(&out, &whole).unwrap();
    let probe = ffprobe(&out);
    let duration: f64 = field(&probe, "duration").parse().unwrap();
    assert!((duration - 1.0).abs() <= 1.0 / 30.0, "duration {duration}");
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out), "");
}

#[test]
fn export_of_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, stream) = record(dir.path(), 2);
    assert!(matches!(
        plan(&store, stream, T0 + 100_000_000, T0 + 200_000_000),
        Err(Error::NothingRecorded)
    ));
}

/// Records `door/main` at 30 fps with a key frame every `gop` pictures and fragments of at
/// most 0.3 s (9 pictures), so a GOP spans `gop / 9` fragments: 3 s, then a 10 s gap (a
/// camera outage: a new file), then 2 s. Files rotate after 2 s, so a file also begins in
/// the middle of the first run.
fn record_gops(dir: &Path, gop: usize) -> (Arc<Archive>, i64) {
    let storage: Arc<dyn Storage> = Arc::new(DirStorage::new(dir.join("recordings")).unwrap());
    let store = store_with(dir, storage, RetentionConfig::default());
    let cfg = SegmenterConfig {
        file_duration_90k: 2 * 90_000,
        max_fragment_90k: 9 * 3000,
        ..SegmenterConfig::default()
    };
    let mut w = StreamWriter::new(store.clone(), "door", "main", cfg).unwrap();
    let mut g = AuGen::new(T0);
    for (run, frames) in [(0, 90), (1, 60)] {
        if run == 1 {
            g.align_to_key();
            g.pts += 10 * 90_000;
            g.capture_us += 10_000_000;
        }
        for i in 0..frames {
            let mut au = g.next_au();
            // The clip's own IDR pictures come every 3; keep only every `gop`-th as a key
            // frame (the others decode as well, they are just not marked).
            assert!(i % gop != 0 || au.key, "gop {gop} is not a multiple of 3");
            au.key = i % gop == 0;
            w.push(au).unwrap();
        }
    }
    w.finish().unwrap();
    let id = w.stream_id();
    (store, id)
}

/// Every video sample of a stream as the index describes it: (file row, wall time, key).
fn indexed_samples(store: &Archive, stream: i64) -> Vec<(FileRow, i64, bool)> {
    let db = store.index();
    let frags = db
        .fragments_overlapping(stream, i64::MIN, i64::MAX)
        .unwrap();
    let mut out = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        let file = db.file(f.file_id).unwrap().unwrap();
        let mut located = Vec::new();
        locate(i, f, &file, &mut located);
        out.extend(located.iter().map(|s| (file.clone(), s.wall_us, s.is_sync)));
    }
    out
}

/// Issue 10: an export begins at the last key frame at or before the start, whatever the
/// alignment of the start with fragments, samples, files, gaps and GOPs — or, when the
/// start lies in a gap or before the recording, at the first key frame after it. Checked
/// for every alignment against the index (and the frame count against the samples).
#[test]
fn export_starts_at_the_last_key_frame_at_or_before_any_start() {
    for gop in [9, 18, 36] {
        let dir = tempfile::tempdir().unwrap();
        let (store, stream) = record_gops(dir.path(), gop);
        let samples = indexed_samples(&store, stream);
        let frags = store
            .index()
            .fragments_overlapping(stream, i64::MIN, i64::MAX)
            .unwrap();
        let files = store.index().all_files().unwrap();
        assert_eq!(files.len(), 3, "two files, a gap, one file: {files:?}");
        let keyless = frags.iter().filter(|f| !f.samples[0].is_sync).count();
        assert_eq!(
            keyless > 0,
            gop > 9,
            "gop {gop}: fragments without a key frame"
        );

        // Every alignment: each sample's time and 1 µs either side, the middle between
        // samples, fragment and file boundaries, inside the gap, before and after it all.
        let mut starts: Vec<i64> = Vec::new();
        for w in samples.windows(2) {
            starts.extend([w[0].1 - 1, w[0].1, w[0].1 + 1, (w[0].1 + w[1].1) / 2]);
        }
        starts.extend(frags.iter().flat_map(|f| [f.start_wall_us, f.end_wall_us]));
        starts.extend(files.iter().flat_map(|f| [f.start_wall_us, f.end_wall_us]));
        starts.push((files[1].end_wall_us + files[2].start_wall_us) / 2);
        starts.push(T0 - 1_000_000);
        starts.sort_unstable();
        starts.dedup();

        for &start in &starts {
            for len in [100_000, 1_000_000] {
                let end = start + len;
                let in_file = files
                    .iter()
                    .find(|f| f.start_wall_us <= start && start < f.end_wall_us);
                let want = match in_file {
                    Some(file) => samples
                        .iter()
                        .filter(|(f, w, key)| f.id == file.id && *key && *w <= start)
                        .map(|s| s.1)
                        .next_back(),
                    None => samples.iter().find(|s| s.2 && s.1 >= start).map(|s| s.1),
                }
                .filter(|&w| w < end);
                let got = plan(&store, stream, start, end);
                let ctx = format!("gop {gop}, start {} µs, end +{len} µs", start - T0);
                match (want, got) {
                    (None, Err(Error::NothingRecorded)) => {}
                    (Some(w), Ok(p)) => {
                        assert_eq!(p.start_wall_us - T0, w - T0, "{ctx}");
                        let frames = samples.iter().filter(|s| s.1 >= w && s.1 < end).count();
                        assert_eq!(p.frames, frames as u64, "{ctx}");
                    }
                    (want, got) => panic!("{ctx}: want {want:?}, got {got:?}"),
                }
            }
        }
    }
}

/// The case of the report, decoded: a start exactly on a fragment without a key frame
/// gives a file whose first picture is the key frame before it, which ffmpeg decodes.
#[test]
fn export_from_a_keyless_fragment_boundary_begins_at_the_key_frame_before() {
    let dir = tempfile::tempdir().unwrap();
    let (store, stream) = record_gops(dir.path(), 18);
    let frags = store
        .index()
        .fragments_overlapping(stream, i64::MIN, i64::MAX)
        .unwrap();
    let keyless = frags.iter().find(|f| !f.samples[0].is_sync).unwrap();
    let start = keyless.start_wall_us;
    let plan = plan(&store, stream, start, start + 900_000).unwrap();
    // The GOP began one fragment (9 pictures, 0.3 s) earlier.
    assert_eq!(plan.start_wall_us, start - 300_000);
    assert_eq!(plan.frames, 9 + 27);
    let out = dir.path().join("export.mp4");
    let mut f = std::fs::File::create(&out).unwrap();
    plan.write_to(&mut f).unwrap();
    drop(f);
    assert_eq!(field(&ffprobe(&out), "nb_read_frames"), "36");
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out), "");
}
