//! H.265 end to end: `hvc1`/`hvcC` files written from real x265 output, checked with the
//! real ffprobe and ffmpeg, scanned back and exported.

use std::sync::Arc;

use super::tests::{append_fragment, assert_probe, export, ffprobe, SampleData, TempFile};
use super::*;
use crate::h264::split_annexb;
use crate::h265::{self, NAL_PPS, NAL_SPS, NAL_VPS};

/// 15 fps at 90 kHz.
const FRAME_TICKS: u32 = 6000;

/// Parameters and `(length-prefixed data, is_irap)` access units of a real x265 clip
/// (15 pictures, no B-frames, an IRAP every 5: IDR, CRA, CRA). Parameter sets stay in the key frames, as retina
/// delivers them.
fn x265_clip() -> (Arc<crate::StreamParams>, Vec<(Vec<u8>, bool)>) {
    let file = include_bytes!("../../testdata/x265-162x90.hevc");
    let nals: Vec<&[u8]> = split_annexb(file).collect();
    let find = |t| *nals.iter().find(|n| h265::nal_type(n) == Some(t)).unwrap();
    let params = h265::stream_params(find(NAL_VPS), find(NAL_SPS), find(NAL_PPS)).unwrap();
    // §7.4.2.4.4: an access unit starts at a parameter set, AUD or prefix SEI, or at a
    // slice with first_slice_segment_in_pic_flag, once the current one has a picture.
    let mut aus: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut has_vcl = false;
    for nal in nals {
        let t = h265::nal_type(nal).unwrap();
        let vcl = t < 32;
        let starts = matches!(t, 32..=35 | 39) || (vcl && nal[2] & 0x80 != 0);
        if starts && has_vcl {
            let key = h265::access_unit_is_irap(&cur);
            aus.push((std::mem::take(&mut cur), key));
            has_vcl = false;
        }
        has_vcl |= vcl;
        cur.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        cur.extend_from_slice(nal);
    }
    let key = h265::access_unit_is_irap(&cur);
    aus.push((cur, key));
    (Arc::new(params), aus)
}

/// Init segment and one fragment per GOP.
fn fragmented_h265() -> (Vec<u8>, Track, usize) {
    let (params, aus) = x265_clip();
    assert_eq!(aus.len(), 15);
    assert_eq!(
        aus.iter().filter(|a| a.1).count(),
        3,
        "an IRAP every 5 pictures"
    );
    let track = Track::Video(VideoTrack {
        track_id: 1,
        timescale: 90_000,
        params,
    });
    let mut out = Vec::new();
    write_init_segment(&mut out, std::slice::from_ref(&track));
    for (i, gop) in aus.chunks(5).enumerate() {
        assert!(gop[0].1);
        let samples: Vec<SampleData> = gop
            .iter()
            .map(|(d, key)| {
                let s = Sample {
                    duration: FRAME_TICKS,
                    size: d.len() as u32,
                    is_sync: *key,
                };
                (d.clone(), s)
            })
            .collect();
        let t = u64::from(FRAME_TICKS) * 5 * i as u64;
        append_fragment(&mut out, i as u32 + 1, &[(1, t, samples)]);
    }
    (out, track, aus.len())
}

#[test]
fn fragmented_h265_plays_in_ffmpeg() {
    let (file, _, n) = fragmented_h265();
    let f = TempFile::new("frag-hevc.mp4", &file);
    let probe = ffprobe(&f.0, "v:0");
    let frames = format!("nb_read_frames={n}");
    assert_probe(
        &probe,
        &[
            "codec_name=hevc",
            "codec_tag_string=hvc1",
            "profile=Main",
            "width=162",
            "height=90",
            "pix_fmt=yuv420p",
            &frames,
        ],
    );
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
}

#[test]
fn hvcc_matches_the_sps() {
    let (file, track, _) = fragmented_h265();
    let at = file.windows(4).position(|w| w == b"hvcC").unwrap() + 4;
    let hvcc = &file[at..];
    assert_eq!(hvcc[0], 1, "configurationVersion");
    assert_eq!(hvcc[1], 0x01, "profile space 0, main tier, Main profile");
    assert_eq!(
        &hvcc[2..6],
        [0x60, 0, 0, 0],
        "compatible with Main and Main 10"
    );
    assert_eq!(&hvcc[6..12], [0x90, 0, 0, 0, 0, 0]);
    assert_eq!(hvcc[12], 30, "general_level_idc");
    assert_eq!(hvcc[21] & 3, 3, "lengthSizeMinusOne");
    assert_eq!(hvcc[22], 3, "VPS, SPS and PPS arrays");
    let Track::Video(v) = track else {
        unreachable!()
    };
    assert_eq!(hvcc[23], 0x80 | NAL_VPS);
    assert_eq!(&hvcc[24..26], [0, 1]);
    let vps = v.params.vps.as_deref().unwrap();
    assert_eq!(
        usize::from(u16::from_be_bytes([hvcc[26], hvcc[27]])),
        vps.len()
    );
    assert_eq!(&hvcc[28..28 + vps.len()], vps);
}

#[test]
fn scan_reads_hvc1_back() {
    let (file, track, n) = fragmented_h265();
    let r = scan(&file).unwrap();
    assert_eq!(r.init.unwrap().tracks, vec![track]);
    assert_eq!(r.fragments.len(), 3);
    let samples: Vec<&ScannedSample> = r
        .fragments
        .iter()
        .flat_map(|f| f.runs.iter().flat_map(|r| &r.samples))
        .collect();
    assert_eq!(samples.len(), n);
    assert_eq!(samples.iter().filter(|s| s.is_sync).count(), 3);
    // hev1 (parameter sets also in-band) is the same record under another name.
    let mut hev1 = file.clone();
    let at = hev1.windows(4).position(|w| w == b"hvc1").unwrap();
    hev1[at..at + 4].copy_from_slice(b"hev1");
    assert_eq!(scan(&hev1).unwrap().init, scan(&file).unwrap().init);
    // Every truncation of the init segment is handled without a panic.
    let init_len = r_len(&file);
    for cut in 0..init_len {
        let _ = scan(&file[..cut]);
    }
}

fn r_len(file: &[u8]) -> usize {
    scan(file).unwrap().init.unwrap().len as usize
}

#[test]
fn export_of_h265_plays_in_ffmpeg() {
    let (file, _, n) = fragmented_h265();
    let out = export(&file);
    let f = TempFile::new("export-hevc.mp4", &out);
    let probe = ffprobe(&f.0, "v:0");
    let frames = format!("nb_read_frames={n}");
    assert_probe(
        &probe,
        &[
            "codec_name=hevc",
            "width=162",
            "height=90",
            "duration=1.000000",
            &frames,
        ],
    );
    assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
}
