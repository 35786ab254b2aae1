//! End-to-end tests: files written from real x264 output, checked with the real ffprobe
//! and ffmpeg, scanned back, truncated and mangled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::h264::{self, AccessUnitSplitter, NAL_PPS, NAL_SPS};

const FRAME_TICKS: u32 = 3000; // 30 fps at 90 kHz

/// An access unit's AVC-form data and whether it is an IDR picture.
type Au = (Vec<u8>, bool);
/// A sample's bytes and its description.
pub(super) type SampleData = (Vec<u8>, Sample);
/// `(track_id, base decode time, samples)` of one run.
pub(super) type Run = (u32, u64, Vec<SampleData>);

/// Parameters and `(avcc data, is_idr)` access units of a real x264 clip.
fn clip() -> (Arc<StreamParams>, Vec<Au>) {
    let file = include_bytes!("../../testdata/x264-160x120-2slices.h264");
    let mut splitter = AccessUnitSplitter::new();
    let mut aus = splitter.push_annexb(file);
    aus.extend(splitter.flush());
    let nals: Vec<&Bytes> = aus.iter().flat_map(|a| &a.nals).collect();
    let sps = nals
        .iter()
        .find(|n| h264::nal_type(n) == Some(NAL_SPS))
        .unwrap();
    let pps = nals
        .iter()
        .find(|n| h264::nal_type(n) == Some(NAL_PPS))
        .unwrap();
    let params = Arc::new(h264::stream_params(sps, pps).unwrap());
    let aus = aus
        .iter()
        .filter(|a| a.has_picture())
        .map(|a| (a.to_avcc(), a.is_idr))
        .collect();
    (params, aus)
}

/// Three GOPs of the clip: the clip's two GOPs, then the first again.
fn three_gops(aus: &[Au]) -> Vec<Vec<Au>> {
    let idrs: Vec<usize> = (0..aus.len()).filter(|&i| aus[i].1).collect();
    assert_eq!(idrs.len(), 2, "the clip has two GOPs");
    let first = aus[..idrs[1]].to_vec();
    let second = aus[idrs[1]..].to_vec();
    vec![first.clone(), second, first]
}

fn video_track(params: Arc<StreamParams>) -> Track {
    Track::Video(VideoTrack {
        track_id: 1,
        timescale: 90_000,
        params,
    })
}

/// Appends one fragment of `(track_id, base time, samples and their data)` runs.
pub(super) fn append_fragment(out: &mut Vec<u8>, seq: u32, runs: &[Run]) {
    let samples: Vec<Vec<Sample>> = runs
        .iter()
        .map(|r| r.2.iter().map(|s| s.1).collect())
        .collect();
    let track_runs: Vec<TrackRun<'_>> = runs
        .iter()
        .zip(&samples)
        .map(|(r, s)| TrackRun {
            track_id: r.0,
            base_decode_time: r.1,
            samples: s,
        })
        .collect();
    let before = out.len();
    let h = write_fragment_header(out, seq, &track_runs);
    assert_eq!(out.len() - before, h.len);
    for r in runs {
        for (data, _) in &r.2 {
            out.extend_from_slice(data);
        }
    }
    assert_eq!((out.len() - before - h.len) as u64, h.mdat_payload_len);
}

fn video_samples(gop: &[Au]) -> Vec<SampleData> {
    gop.iter()
        .map(|(d, key)| {
            let s = Sample {
                duration: FRAME_TICKS,
                size: d.len() as u32,
                is_sync: *key,
            };
            (d.clone(), s)
        })
        .collect()
}

/// A fragmented file: init + one fragment per GOP. Returns the file and the samples' data.
fn fragmented_h264() -> (Vec<u8>, Track, Vec<Au>) {
    let (params, aus) = clip();
    let track = video_track(params);
    let mut out = Vec::new();
    write_init_segment(&mut out, std::slice::from_ref(&track));
    let mut t = 0u64;
    let mut all = Vec::new();
    for (i, gop) in three_gops(&aus).iter().enumerate() {
        append_fragment(&mut out, i as u32 + 1, &[(1, t, video_samples(gop))]);
        t += u64::from(FRAME_TICKS) * gop.len() as u64;
        all.extend(gop.iter().cloned());
    }
    (out, track, all)
}

pub(super) struct TempFile(pub(super) PathBuf);

impl TempFile {
    pub(super) fn new(name: &str, data: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("vigil-fmp4-{}-{name}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // VIGIL_KEEP_TEST_FILES=1 keeps the files for a look with other players.
        if std::env::var_os("VIGIL_KEEP_TEST_FILES").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `key=value` lines of ffprobe for one stream (`v:0`, `a:0`), frames counted.
pub(super) fn ffprobe(path: &Path, stream: &str) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_streams",
            "-count_frames",
        ])
        .args(["-of", "default=nw=1"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "ffprobe: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(super) fn assert_probe(probe: &str, expected: &[&str]) {
    for e in expected {
        assert!(
            probe.lines().any(|l| l == *e),
            "{e} missing in ffprobe output:\n{probe}"
        );
    }
}

#[test]
fn fragmented_h264_plays_in_ffmpeg() {
    let (file, _, aus) = fragmented_h264();
    let f = TempFile::new("frag.mp4", &file);
    let probe = ffprobe(&f.0, "v:0");
    let frames = format!("nb_read_frames={}", aus.len());
    assert_probe(
        &probe,
        &["codec_name=h264", "width=160", "height=120", &frames],
    );
    assert_probe(&probe, &["pix_fmt=yuv420p", "r_frame_rate=30/1"]);
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
}

#[test]
fn scan_round_trips_written_fragments() {
    let (file, track, aus) = fragmented_h264();
    let r = scan(&file).unwrap();
    assert_eq!(r.end, ScanEnd::Complete);
    assert_eq!(r.valid_len, file.len() as u64);
    let init = r.init.unwrap();
    assert_eq!(init.tracks, vec![track]);
    assert_eq!(r.fragments.len(), 3);
    assert_eq!(init.len, r.fragments[0].offset);
    let samples: Vec<&ScannedSample> = r
        .fragments
        .iter()
        .flat_map(|f| {
            assert_eq!(f.runs.len(), 1);
            &f.runs[0].samples
        })
        .collect();
    assert_eq!(samples.len(), aus.len());
    for (i, (s, (data, key))) in samples.iter().zip(&aus).enumerate() {
        let at = s.offset as usize;
        assert_eq!(
            &file[at..at + s.size as usize],
            &data[..],
            "sample {i} bytes"
        );
        assert_eq!(s.decode_time, i as u64 * u64::from(FRAME_TICKS));
        assert_eq!((s.duration, s.is_sync), (FRAME_TICKS, *key));
    }
    let seqs: Vec<u32> = r.fragments.iter().map(|f| f.sequence_number).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(
        r.fragments[2].runs[0].base_decode_time,
        6 * u64::from(FRAME_TICKS)
    );
}

#[test]
fn truncated_last_fragment_leaves_the_previous_ones() {
    let (file, _, _) = fragmented_h264();
    let full = scan(&file).unwrap();
    let last = full.fragments[2].offset as usize;
    for cut in last..file.len() {
        let r = scan(&file[..cut]).unwrap();
        assert_eq!(r.fragments, full.fragments[..2], "cut at {cut}");
        assert_eq!(r.valid_len, last as u64, "cut at {cut}");
        assert_eq!(
            r.end,
            if cut == last {
                ScanEnd::Complete
            } else {
                ScanEnd::Truncated
            }
        );
        assert_eq!(r.init, full.init);
    }
    // Inside the init segment nothing is recoverable, and nothing is a reason to refuse.
    for cut in 0..full.fragments[0].offset as usize {
        let r = scan(&file[..cut]).unwrap();
        assert!(r.init.is_none() || cut == full.init.as_ref().unwrap().len as usize);
        assert!(r.fragments.is_empty());
    }
}

#[test]
fn zeroed_tail_after_a_crash_is_cut_off() {
    // Filesystems may leave zero-filled blocks past the last write after a power cut.
    let (mut file, _, _) = fragmented_h264();
    let len = file.len() as u64;
    file.extend_from_slice(&[0; 4096]);
    let r = scan(&file).unwrap();
    assert_eq!(r.fragments.len(), 3);
    assert_eq!(r.valid_len, len);
    assert!(matches!(r.end, ScanEnd::Corrupt { .. }));
}

#[test]
fn other_files_are_refused() {
    assert_eq!(
        scan(b"\x1aE\xdf\xa3 matroska..."),
        Err(Mp4Error::NotMp4 { found: *b" mat" })
    );
    let r = scan(b"\0\0\0").unwrap();
    assert_eq!((r.valid_len, r.end), (0, ScanEnd::Truncated));
    assert_eq!(scan(b"").unwrap().end, ScanEnd::Complete);
}

#[test]
fn mangled_files_keep_the_invariants() {
    let (file, _, _) = fragmented_h264();
    check_scan_invariants(&file);
    let mut data = file.clone();
    for i in 0..file.len() {
        for bit in [0x01, 0x80] {
            data[i] ^= bit;
            check_scan_invariants(&data);
            data[i] ^= bit;
        }
        check_scan_invariants(&file[..i]);
    }
}

#[test]
fn huge_sample_counts_are_rejected_without_allocating() {
    let (file, _, _) = fragmented_h264();
    let r = scan(&file).unwrap();
    let moof = r.fragments[0].offset as usize;
    // Find the first trun's sample_count and make it enormous; clear its per-sample fields
    // so a naive parser would believe the table fits.
    let trun = file[moof..].windows(4).position(|w| w == b"trun").unwrap() + moof;
    let mut bad = file.clone();
    bad[trun + 4..trun + 8].copy_from_slice(&[0, 0, 0, 1]); // flags: data offset only
    bad[trun + 8..trun + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    let r = scan(&bad).unwrap();
    assert!(r.fragments.is_empty());
    assert_eq!(r.valid_len, moof as u64);
    assert!(matches!(r.end, ScanEnd::Corrupt { .. }));
}

/// The frames of an AAC ADTS stream (ISO/IEC 14496-3 §1.A.2) and its AudioSpecificConfig.
fn adts_frames(data: &[u8]) -> (Bytes, Vec<Vec<u8>>) {
    let mut frames = Vec::new();
    let mut rest = data;
    let mut asc = Bytes::new();
    while rest.len() >= 7 {
        assert_eq!(rest[0], 0xff, "ADTS sync");
        let header_len = if rest[1] & 1 == 1 { 7 } else { 9 };
        let profile = rest[2] >> 6;
        let freq = (rest[2] >> 2) & 0xf;
        let channels = ((rest[2] & 1) << 2) | (rest[3] >> 6);
        let len = (usize::from(rest[3] & 3) << 11)
            | (usize::from(rest[4]) << 3)
            | usize::from(rest[5] >> 5);
        let object_type = profile + 1;
        asc = Bytes::from(vec![
            object_type << 3 | freq >> 1,
            (freq & 1) << 7 | channels << 3,
        ]);
        frames.push(rest[header_len..len].to_vec());
        rest = &rest[len..];
    }
    (asc, frames)
}

/// One second of a 440 Hz tone encoded by ffmpeg's AAC encoder, 16 kHz mono.
fn real_aac() -> (Bytes, Vec<Vec<u8>>) {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=16000",
        ])
        .args(["-t", "1", "-c:a", "aac", "-f", "adts", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(out.status.success());
    adts_frames(&out.stdout)
}

fn audio_samples(frames: &[Vec<u8>], duration: u32) -> Vec<SampleData> {
    frames
        .iter()
        .map(|f| {
            let s = Sample {
                duration,
                size: f.len() as u32,
                is_sync: true,
            };
            (f.clone(), s)
        })
        .collect()
}

/// Video plus an audio track of `codec` with `frames` of `frame_ticks` each, in fragments
/// of one GOP each.
fn with_audio(
    codec: AudioCodec,
    rate: u32,
    frames: &[Vec<u8>],
    frame_ticks: u32,
) -> (Vec<u8>, Vec<Track>) {
    let (params, aus) = clip();
    let tracks = vec![
        video_track(params),
        Track::Audio(AudioTrack {
            track_id: 2,
            timescale: rate,
            channels: 1,
            codec,
        }),
    ];
    let mut out = Vec::new();
    write_init_segment(&mut out, &tracks);
    let gops = three_gops(&aus);
    let per_gop = frames.len() / gops.len();
    let (mut vt, mut at) = (0u64, 0u64);
    for (i, gop) in gops.iter().enumerate() {
        let chunk = &frames[i * per_gop..(i + 1) * per_gop];
        append_fragment(
            &mut out,
            i as u32 + 1,
            &[
                (1, vt, video_samples(gop)),
                (2, at, audio_samples(chunk, frame_ticks)),
            ],
        );
        vt += u64::from(FRAME_TICKS) * gop.len() as u64;
        at += u64::from(frame_ticks) * per_gop as u64;
    }
    (out, tracks)
}

#[test]
fn g711_tracks_play_in_ffmpeg() {
    for (codec, name) in [
        (AudioCodec::Pcmu, "pcm_mulaw"),
        (AudioCodec::Pcma, "pcm_alaw"),
    ] {
        // 20 ms packets of 160 samples (bytes) at 8 kHz, as cameras send them.
        let frames: Vec<Vec<u8>> = (0..15).map(|i| vec![0x55 ^ i as u8; 160]).collect();
        let (file, tracks) = with_audio(codec, 8000, &frames, 160);
        let f = TempFile::new(&format!("{name}.mp4"), &file);
        let probe = ffprobe(&f.0, "a:0");
        assert_probe(
            &probe,
            &[
                &format!("codec_name={name}"),
                "sample_rate=8000",
                "channels=1",
            ],
        );
        assert_probe(&probe, &["nb_read_frames=15"]);
        assert_probe(
            &ffprobe(&f.0, "v:0"),
            &["codec_name=h264", "nb_read_frames=9"],
        );
        assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
        assert_eq!(scan(&file).unwrap().init.unwrap().tracks, tracks);
    }
}

#[test]
fn aac_track_plays_in_ffmpeg() {
    let (asc, frames) = real_aac();
    assert_eq!(&asc[..], [0x14, 0x08], "AAC LC, 16 kHz, mono");
    let (file, tracks) = with_audio(AudioCodec::Aac { config: asc }, 16000, &frames, 1024);
    let f = TempFile::new("aac.mp4", &file);
    let per_gop = frames.len() / 3;
    let probe = ffprobe(&f.0, "a:0");
    assert_probe(
        &probe,
        &[
            "codec_name=aac",
            "profile=LC",
            "sample_rate=16000",
            "channels=1",
        ],
    );
    assert_probe(&probe, &[&format!("nb_read_frames={}", per_gop * 3)]);
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
    let r = scan(&file).unwrap();
    assert_eq!(r.init.unwrap().tracks, tracks);
    assert_eq!(
        r.fragments[1].runs[1].base_decode_time,
        1024 * per_gop as u64
    );
}

/// Builds an export of every sample of a scanned fragmented file, as the recorder would
/// from its index, and copies the bytes.
pub(super) fn export(file: &[u8]) -> Vec<u8> {
    let r = scan(file).unwrap();
    let mut b = ExportBuilder::new(&r.init.unwrap().tracks);
    let mut order = Vec::new();
    for f in &r.fragments {
        for run in &f.runs {
            for s in &run.samples {
                b.push_sample(run.track_id, s.decode_time, s.duration, s.size, s.is_sync)
                    .unwrap();
                order.push(*s);
            }
        }
    }
    let layout = b.finish();
    let mut out = layout.header.clone();
    for s in order {
        out.extend_from_slice(&file[s.offset as usize..(s.offset + u64::from(s.size)) as usize]);
    }
    assert_eq!(out.len() as u64, layout.total_len);
    out
}

#[test]
fn export_of_video_plays_in_ffmpeg() {
    let (file, _, aus) = fragmented_h264();
    let out = export(&file);
    assert_eq!(&out[4..8], b"ftyp");
    let moov = u32::from_be_bytes(out[0..4].try_into().unwrap()) as usize;
    assert_eq!(
        &out[moov + 4..moov + 8],
        b"moov",
        "moov right after ftyp: fast start"
    );
    let f = TempFile::new("export.mp4", &out);
    let probe = ffprobe(&f.0, "v:0");
    let frames = format!("nb_read_frames={}", aus.len());
    assert_probe(
        &probe,
        &["codec_name=h264", "width=160", "height=120", &frames],
    );
    assert_probe(&probe, &["duration=0.300000"]);
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
    // A progressive file is not a recording: scan says so instead of guessing.
    let r = scan(&out).unwrap();
    assert!(r.init.is_none());
}

#[test]
fn export_of_video_and_audio_plays_in_ffmpeg() {
    let (asc, frames) = real_aac();
    let (file, _) = with_audio(AudioCodec::Aac { config: asc }, 16000, &frames, 1024);
    let out = export(&file);
    let f = TempFile::new("export-av.mp4", &out);
    assert_probe(
        &ffprobe(&f.0, "v:0"),
        &["codec_name=h264", "nb_read_frames=9"],
    );
    let per_gop = frames.len() / 3;
    let probe = ffprobe(&f.0, "a:0");
    assert_probe(
        &probe,
        &["codec_name=aac", &format!("nb_read_frames={}", per_gop * 3)],
    );
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
}

#[test]
fn export_stretches_samples_over_gaps_and_rejects_bad_input() {
    let (params, _) = clip();
    let mut b = ExportBuilder::new(&[video_track(params)]);
    b.push_sample(1, 1000, 3000, 10, true).unwrap();
    b.push_sample(1, 4000, 3000, 10, false).unwrap();
    // A 10 s gap: the previous picture lasts until the next one.
    b.push_sample(1, 904_000, 3000, 10, true).unwrap();
    assert_eq!(
        b.push_sample(7, 0, 1, 1, true),
        Err(Mp4Error::UnknownTrack(7))
    );
    assert_eq!(
        b.push_sample(1, 5, 1, 1, true),
        Err(Mp4Error::DecodeTimeBackwards {
            track_id: 1,
            decode_time: 5,
            previous: 904_000
        })
    );
    assert_eq!(b.payload_len(), 30);
    let layout = b.finish();
    assert_eq!(layout.total_len, layout.header.len() as u64 + 30);
    let h = &layout.header;
    let find = |t: &[u8]| h.windows(4).position(|w| w == t).unwrap();
    // stts: (1 × 3000), (1 × 900000), (1 × 3000).
    let stts = find(b"stts");
    let expect: Vec<u8> = [0u32, 3, 1, 3000, 1, 900_000, 1, 3000]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    assert_eq!(&h[stts + 4..stts + 4 + expect.len()], &expect[..]);
    // stss lists samples 1 and 3; co64 points just past the header.
    let stss = find(b"stss");
    assert_eq!(
        &h[stss + 8..stss + 20],
        [0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3]
    );
    let co64 = find(b"co64");
    let offset = u64::from_be_bytes(h[co64 + 12..co64 + 20].try_into().unwrap());
    assert_eq!(offset, h.len() as u64);
}

/// A small file (video + G.711, tiny fake samples, one fragment without samples for
/// audio) for the fuzzer's seed corpus: `VIGIL_FUZZ_SEEDS_DIR=fuzz/corpus/fmp4_scan`
/// writes it there.
#[test]
fn small_synthetic_file_scans() {
    let (params, _) = clip();
    let tracks = [
        video_track(params),
        Track::Audio(AudioTrack {
            track_id: 2,
            timescale: 8000,
            channels: 1,
            codec: AudioCodec::Pcmu,
        }),
    ];
    let mut out = Vec::new();
    write_init_segment(&mut out, &tracks);
    let v = |n: u8, key| {
        let s = Sample {
            duration: FRAME_TICKS,
            size: 3,
            is_sync: key,
        };
        (vec![n; 3], s)
    };
    let a = |n: u8| {
        (
            vec![n; 2],
            Sample {
                duration: 2,
                size: 2,
                is_sync: true,
            },
        )
    };
    append_fragment(
        &mut out,
        1,
        &[(1, 0, vec![v(1, true), v(2, false)]), (2, 0, vec![a(3)])],
    );
    append_fragment(&mut out, 2, &[(1, 6000, vec![v(4, true)]), (2, 2, vec![])]);
    let r = scan(&out).unwrap();
    assert_eq!(r.end, ScanEnd::Complete);
    let runs: Vec<(u32, u64, usize)> = r
        .fragments
        .iter()
        .flat_map(|f| {
            f.runs
                .iter()
                .map(|r| (r.track_id, r.base_decode_time, r.samples.len()))
        })
        .collect();
    assert_eq!(runs, [(1, 0, 2), (2, 0, 1), (1, 6000, 1)]);
    let bytes: Vec<u8> = r
        .fragments
        .iter()
        .flat_map(|f| &f.runs)
        .flat_map(|r| &r.samples)
        .map(|s| out[s.offset as usize])
        .collect();
    assert_eq!(bytes, [1, 2, 3, 4]);
    check_scan_invariants(&out);
    if let Some(dir) = std::env::var_os("VIGIL_FUZZ_SEEDS_DIR") {
        std::fs::write(Path::new(&dir).join("video_ulaw_small.mp4"), &out).unwrap();
    }
}

/// ffmpeg's own fragmented MP4s use the defaults this module's writer never does
/// (tfhd default duration and flags, trun first-sample-flags, and without
/// `default_base_moof` an implicit or explicit base data offset): scan reads them too.
#[test]
fn scans_fragmented_files_written_by_ffmpeg() {
    let (_, aus) = clip();
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/x264-160x120-2slices.h264");
    for flags in [
        "+frag_keyframe+empty_moov+default_base_moof",
        "+frag_keyframe+empty_moov",
    ] {
        let f = TempFile::new("ffmpeg-frag.mp4", b"");
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-r", "30", "-i"])
            .arg(&input)
            .args(["-c", "copy", "-movflags", flags])
            .arg(&f.0)
            .status()
            .unwrap();
        assert!(status.success());
        let file = std::fs::read(&f.0).unwrap();
        let r = scan(&file).unwrap();
        assert_eq!(r.end, ScanEnd::Complete, "{flags}");
        let tracks = r.init.unwrap().tracks;
        assert!(
            matches!(&tracks[..], [Track::Video(v)] if v.params.width == 160),
            "{flags}"
        );
        let samples: Vec<&ScannedSample> = r
            .fragments
            .iter()
            .flat_map(|f| &f.runs)
            .flat_map(|r| &r.samples)
            .collect();
        assert_eq!(samples.len(), aus.len(), "{flags}");
        for (s, (data, key)) in samples.iter().zip(&aus) {
            // ffmpeg drops the parameter sets and SEI the access units carry in-band,
            // so compare the tails: the slices.
            let got = &file[s.offset as usize..(s.offset + u64::from(s.size)) as usize];
            assert!(data.ends_with(got), "{flags}: sample bytes differ");
            assert_eq!(s.is_sync, *key, "{flags}");
        }
        let times: Vec<u64> = samples.iter().map(|s| s.decode_time).collect();
        assert!(times.windows(2).all(|w| w[1] > w[0]), "{flags}: {times:?}");
    }
}

/// A High-profile stream (whose avcC carries chroma format and bit depths,
/// ISO/IEC 14496-15 §5.3.3.1.2) encoded by ffmpeg's libx264 right now.
#[test]
fn high_profile_stream_round_trips() {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-frames:v",
            "20",
            "-c:v",
            "libx264",
            "-profile:v",
            "high",
            "-bf",
            "0",
        ])
        .args(["-g", "10", "-pix_fmt", "yuv420p", "-f", "h264", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut splitter = AccessUnitSplitter::new();
    let mut aus = splitter.push_annexb(&out.stdout);
    aus.extend(splitter.flush());
    let nals: Vec<&Bytes> = aus.iter().flat_map(|a| &a.nals).collect();
    let sps = nals
        .iter()
        .find(|n| h264::nal_type(n) == Some(NAL_SPS))
        .unwrap();
    let pps = nals
        .iter()
        .find(|n| h264::nal_type(n) == Some(NAL_PPS))
        .unwrap();
    let params = Arc::new(h264::stream_params(sps, pps).unwrap());
    let track = Track::Video(VideoTrack {
        track_id: 1,
        timescale: 90_000,
        params,
    });
    let mut file = Vec::new();
    write_init_segment(&mut file, std::slice::from_ref(&track));
    let pics: Vec<Au> = aus
        .iter()
        .filter(|a| a.has_picture())
        .map(|a| (a.to_avcc(), a.is_idr))
        .collect();
    assert_eq!(pics.len(), 20);
    for (i, gop) in pics.chunks(10).enumerate() {
        let t = i as u64 * 10 * u64::from(FRAME_TICKS);
        append_fragment(&mut file, i as u32 + 1, &[(1, t, video_samples(gop))]);
    }
    let f = TempFile::new("high.mp4", &file);
    let probe = ffprobe(&f.0, "v:0");
    assert_probe(
        &probe,
        &[
            "profile=High",
            "width=320",
            "height=240",
            "nb_read_frames=20",
        ],
    );
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
    assert_eq!(scan(&file).unwrap().init.unwrap().tracks, vec![track]);
    let avcc = file.windows(4).position(|w| w == b"avcC").unwrap() + 4;
    let len = u32::from_be_bytes(file[avcc - 8..avcc - 4].try_into().unwrap()) as usize - 8;
    // chroma_format_idc 1, 8-bit luma and chroma, no SPS extensions.
    assert_eq!(file[avcc + len - 4..avcc + len], [0xfd, 0xf8, 0xf8, 0]);
}
