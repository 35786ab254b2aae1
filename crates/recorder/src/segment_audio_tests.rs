//! Audio beside video: the segmenter's placement (sans-IO) and a recording exported and
//! checked by the real ffprobe and ffmpeg.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use vigil_media::fmp4::{self, Track};

use crate::retention::RetentionConfig;
use crate::segment::{EndReason, FileOp, FragmentOut, Segmenter, SegmenterConfig};
use crate::storage::{DirStorage, Storage};
use crate::testutil::{AuGen, FRAME_90K};
use crate::writer::tests::{store_with, T0};
use crate::writer::StreamWriter;
use vigil_media::audio::{AudioCodec, AudioFrame, AudioParams};

fn aac_params() -> Arc<AudioParams> {
    Arc::new(AudioParams {
        // AudioSpecificConfig: AAC LC, 48 kHz, stereo (ISO/IEC 14496-3 §1.6.2.1).
        codec: AudioCodec::Aac {
            config: Bytes::from_static(&[0x11, 0x90]),
        },
        sample_rate: 48_000,
        channels: 2,
    })
}

fn g711(codec: AudioCodec) -> Arc<AudioParams> {
    Arc::new(AudioParams {
        codec,
        sample_rate: 8000,
        channels: 1,
    })
}

/// Audio frames of `samples` each, their capture times `delay_us` after the media time.
struct AudioGen {
    params: Arc<AudioParams>,
    samples: u32,
    pts: i64,
    capture0: i64,
    delay_us: i64,
    n: u8,
}

impl AudioGen {
    fn new(params: Arc<AudioParams>, samples: u32, capture0: i64, delay_us: i64) -> Self {
        Self {
            params,
            samples,
            pts: 777_000, // the audio clock has its own origin
            capture0,
            delay_us,
            n: 0,
        }
    }

    fn capture_us(&self) -> i64 {
        let rate = i64::from(self.params.sample_rate);
        self.capture0 + (self.pts - 777_000) * 1_000_000 / rate + self.delay_us
    }

    fn next(&mut self) -> AudioFrame {
        let len = if matches!(self.params.codec, AudioCodec::Aac { .. }) {
            200 + usize::from(self.n % 7)
        } else {
            self.samples as usize
        };
        self.n = self.n.wrapping_add(1);
        let f = AudioFrame {
            params: self.params.clone(),
            pts: self.pts,
            capture_us: self.capture_us(),
            duration: self.samples,
            data: Bytes::from(vec![0x55 ^ self.n; len]),
        };
        self.pts += i64::from(self.samples);
        f
    }
}

/// Feeds `seconds` of video and audio in capture order (audio may lead the first key
/// frame by `audio_lead_us`).
fn feed(
    seg: &mut Segmenter,
    g: &mut AuGen,
    a: &mut Option<AudioGen>,
    seconds: i64,
    out: &mut Vec<FileOp>,
) {
    for _ in 0..seconds * 30 {
        let au = g.next_au();
        if let Some(a) = a.as_mut() {
            while a.capture_us() <= au.capture_us {
                seg.push_audio(a.next(), out);
            }
        }
        seg.push(au, out);
    }
}

fn init_tracks(ev: &FileOp) -> Vec<Track> {
    match ev {
        FileOp::StartFile { init, .. } => fmp4::scan(init).unwrap().init.unwrap().tracks,
        other => panic!("not a file start: {other:?}"),
    }
}

fn fragments(out: &[FileOp]) -> Vec<&FragmentOut> {
    out.iter()
        .filter_map(|e| match e {
            FileOp::Fragment(f) => Some(f),
            _ => None,
        })
        .collect()
}

#[test]
fn aac_frames_fall_in_their_fragments_with_monotonic_decode_times() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    seg.expect_audio(true);
    let mut g = AuGen::new(T0);
    // Audio starts 0.2 s before the first picture: those frames are dropped.
    let mut a = Some(AudioGen::new(aac_params(), 1024, T0 - 200_000, 5_000));
    let mut out = Vec::new();
    feed(&mut seg, &mut g, &mut a, 6, &mut out);
    seg.finish(&mut out);
    assert!(seg.audio_dropped() >= 9, "{}", seg.audio_dropped());

    let tracks = init_tracks(&out[0]);
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    match &tracks[1] {
        Track::Audio(t) => {
            assert_eq!((t.track_id, t.timescale, t.channels), (2, 48_000, 2));
            assert!(matches!(&t.codec, AudioCodec::Aac { config } if config[..] == [0x11, 0x90]));
        }
        other => panic!("{other:?}"),
    }
    let frags = fragments(&out);
    assert!(frags.len() >= 5);
    let mut next = 0u64;
    let mut count = 0;
    for f in &frags {
        let run = f.audio.as_ref().expect("every fragment has audio");
        assert!(run.base_decode_time >= next, "decode time went back");
        let start = f.base_decode_time as f64 / 90_000.0;
        let end = (f.base_decode_time + f.duration_90k()) as f64 / 90_000.0;
        let mut t = run.base_decode_time;
        for s in &run.samples {
            let secs = t as f64 / 48_000.0;
            // Within the fragment's video span (one audio frame of slack for placement
            // by capture time: the audio frames arrive 5 ms late).
            assert!(
                secs >= start - 0.03 && secs < end,
                "{secs} not in [{start}, {end})"
            );
            assert_eq!(s.duration, 1024);
            t += u64::from(s.duration);
            count += 1;
        }
        next = t;
        // The bytes: video then audio, as many as the header says.
        assert_eq!(f.data.len(), f.samples.len() + run.samples.len());
    }
    // 6 s of 48 kHz in 1024-sample frames, about all of it recorded.
    assert!((275..=282).contains(&count), "{count} audio frames");
    // The audio starts with the first picture (one frame of slack).
    let first = frags[0].audio.as_ref().unwrap().base_decode_time;
    assert!(first <= 1024, "audio starts {first} ticks late");
}

#[test]
fn g711_parameter_change_starts_a_new_file_at_the_next_key_frame() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    seg.expect_audio(true);
    let mut g = AuGen::new(T0);
    let mut a = Some(AudioGen::new(g711(AudioCodec::Pcmu), 160, T0, 0));
    let mut out = Vec::new();
    feed(&mut seg, &mut g, &mut a, 3, &mut out);
    let before = out.len();
    if let Some(a) = a.as_mut() {
        a.params = g711(AudioCodec::Pcma);
    }
    feed(&mut seg, &mut g, &mut a, 3, &mut out);
    seg.finish(&mut out);
    let starts: Vec<usize> = (0..out.len())
        .filter(|&i| matches!(out[i], FileOp::StartFile { .. }))
        .collect();
    assert_eq!(starts.len(), 2, "{out:?}");
    assert!(starts[1] > before);
    assert!(matches!(
        out[starts[1] - 1],
        FileOp::EndFile(EndReason::ParamsChanged)
    ));
    let codec = |i: usize| match &init_tracks(&out[i])[1] {
        Track::Audio(t) => t.codec.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(codec(starts[0]), AudioCodec::Pcmu);
    assert_eq!(codec(starts[1]), AudioCodec::Pcma);
    // Until the cut, A-law frames had no track: dropped, at most one GOP's worth.
    assert!(seg.audio_dropped() > 0 && seg.audio_dropped() <= 60);
    // The new file's audio starts where its video does.
    let second: Vec<&FragmentOut> = fragments(&out[starts[1]..]);
    assert!(second[0].audio.as_ref().unwrap().base_decode_time <= 160);
}

#[test]
fn a_camera_without_audio_is_recorded_after_one_fragment_of_waiting() {
    let mut seg = Segmenter::new(SegmenterConfig::default());
    seg.expect_audio(true);
    let mut g = AuGen::new(T0);
    let mut out = Vec::new();
    feed(&mut seg, &mut g, &mut None, 4, &mut out);
    seg.finish(&mut out);
    assert_eq!(init_tracks(&out[0]).len(), 1);
    let frames: usize = fragments(&out).iter().map(|f| f.samples.len()).sum();
    assert_eq!(frames, 120, "no picture lost while waiting");
    assert!(fragments(&out).iter().all(|f| f.audio.is_none()));
    assert_eq!(seg.dropped(), 0);
    let _ = FRAME_90K;
}

fn ffprobe(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_name,duration,start_time")
        .args(["-of", "csv=p=0"])
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

#[test]
fn g711_recording_is_indexed_recovered_and_exported_with_both_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> =
        Arc::new(DirStorage::new(dir.path().join("recordings")).unwrap());
    let store = store_with(dir.path(), storage, RetentionConfig::default());
    let config = SegmenterConfig {
        file_duration_90k: 4 * 90_000,
        ..SegmenterConfig::default()
    };
    let mut w = StreamWriter::new(store.clone(), "door", "main", config).unwrap();
    w.expect_audio(true);
    let mut g = AuGen::new(T0);
    let mut a = AudioGen::new(g711(AudioCodec::Pcmu), 160, T0, 3_000);
    for _ in 0..10 * 30 {
        let au = g.next_au();
        while a.capture_us() <= au.capture_us {
            w.push_audio(a.next()).unwrap();
        }
        w.push(au).unwrap();
    }
    w.finish().unwrap();
    let files = store.index().all_files().unwrap();
    assert!(files.len() >= 2, "rotation at 4 s");
    // What recovery and reindex rebuild from the files equals what the writer indexed.
    for f in &files {
        let data = store.storage.read(Path::new(&f.path)).unwrap();
        let scan = fmp4::scan(&data).unwrap();
        let rebuilt: Vec<_> = scan
            .fragments
            .iter()
            .filter_map(|s| crate::recovery::fragment_row(f.id, f.start_wall_us, s))
            .collect();
        let indexed = store.index().fragments_of_file(f.id).unwrap();
        assert_eq!(indexed, rebuilt, "{}", f.path);
        assert!(indexed.iter().all(|r| r.audio.is_some()));
    }

    // Across the file boundary at 4 s, starting mid-GOP.
    let plan = crate::export::plan(&store, w.stream_id(), T0 + 1_500_000, T0 + 7_000_000).unwrap();
    let out = dir.path().join("export.mp4");
    let mut file = std::fs::File::create(&out).unwrap();
    plan.write_to(&mut file).unwrap();
    drop(file);
    let video_s = (plan.end_wall_us - plan.start_wall_us) as f64 / 1e6;
    // 20 ms frames covering the video's span.
    let expect = (video_s / 0.02).round() as u64;
    assert!(
        plan.audio_frames.abs_diff(expect) <= 2,
        "{} audio frames for {video_s} s",
        plan.audio_frames
    );
    let probe = ffprobe(&out);
    let lines: Vec<&str> = probe.lines().collect();
    assert_eq!(lines.len(), 2, "{probe}");
    assert!(lines[0].starts_with("h264,"), "{probe}");
    assert!(lines[1].starts_with("pcm_mulaw,"), "{probe}");
    let dur = |l: &str| l.rsplit(',').next().unwrap().parse::<f64>().unwrap();
    assert!((dur(lines[0]) - dur(lines[1])).abs() < 0.05, "{probe}");
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&out), "");
}
