//! Exports checked by the real ffprobe and ffmpeg.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::*;
use crate::retention::RetentionConfig;
use crate::storage::{DirStorage, Storage};
use crate::testutil::AuGen;
use crate::writer::tests::{short_files, store_with, T0};
use crate::writer::StreamWriter;

fn record(dir: &Path, seconds: usize) -> (Arc<Store>, i64) {
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
