//! Live fragmented MP4 for Media Source Extensions: an initialization segment per set of
//! codec parameters, then one movie fragment per access unit.
//!
//! MSE (W3C Media Source Extensions, ISO BMFF byte stream format §3) wants exactly what the
//! recorder writes, cut finer: `ftyp` + `moov` (one video track, empty sample tables,
//! `mvex`/`trex`) once, then `moof` + `mdat` pairs. Each fragment here holds a single access
//! unit so a browser can show a picture as soon as the camera produced it; its `tfdt` is the
//! access unit's pts in the stream's 90 kHz clock, so the browser's timeline is the camera's.
//!
//! The boxes come from the same writers as the recordings ([`write_init_segment`],
//! [`write_fragment_header`]): one place decides how Vigil's MP4 looks.

use std::fmt::Write as _;
use std::sync::Arc;

use super::{write_fragment_header, write_init_segment, Sample, Track, TrackRun, VideoTrack};
use crate::{h265, AccessUnit, Codec, StreamParams};

/// `track_ID` of the one video track of a live stream.
pub const LIVE_TRACK_ID: u32 = 1;

/// Ticks per second of the live track: the RTP video clock, as [`AccessUnit::pts`] counts.
pub const LIVE_TIMESCALE: u32 = 90_000;

/// The initialization segment (`ftyp` + `moov`) of a live stream with these parameters.
pub fn init_segment(params: &StreamParams) -> Vec<u8> {
    let track = Track::Video(VideoTrack {
        track_id: LIVE_TRACK_ID,
        timescale: LIVE_TIMESCALE,
        params: Arc::new(params.clone()),
    });
    let mut out = Vec::with_capacity(1024);
    write_init_segment(&mut out, &[track]);
    out
}

/// One movie fragment (`moof` + `mdat`) holding the access unit `au` as a single sample.
///
/// `seq` is the `mfhd` sequence number (ISO/IEC 14496-12 §8.8.5: increasing within a
/// stream). The decode time (`tfdt`) is `au.pts` (negative values, which no source
/// produces, are clamped to 0). `duration_90k` is the sample's duration; a live muxer
/// cannot know the next picture's time yet, so callers pass the last measured frame
/// interval: MSE places every fragment by its own `tfdt`, so an estimate only decides for
/// how long the last picture stays on screen if the stream stops.
pub fn fragment(seq: u32, au: &AccessUnit, duration_90k: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(au.data.len() + 128);
    write_fragment(&mut out, seq, au, duration_90k);
    out
}

/// [`fragment`], appended to `out` (so a caller can put its own header in front without
/// copying the picture twice).
pub fn write_fragment(out: &mut Vec<u8>, seq: u32, au: &AccessUnit, duration_90k: u32) {
    let size = u32::try_from(au.data.len()).unwrap_or(u32::MAX);
    let samples = [Sample {
        duration: duration_90k,
        size,
        is_sync: au.key,
    }];
    let run = TrackRun {
        track_id: LIVE_TRACK_ID,
        base_decode_time: u64::try_from(au.pts).unwrap_or(0),
        samples: &samples,
    };
    let header = write_fragment_header(out, seq, &[run]);
    // The header announced `size` bytes; a (theoretical) access unit above 4 GiB would be
    // cut to match rather than produce an inconsistent fragment.
    let take = usize::try_from(header.mdat_payload_len).unwrap_or(usize::MAX);
    out.extend_from_slice(au.data.get(..take).unwrap_or(&au.data));
}

/// The codec string of RFC 6381 §3.3 for the MSE `addSourceBuffer` / `isTypeSupported`
/// MIME type (`video/mp4; codecs="…"`).
///
/// - H.264 (ISO/IEC 14496-15 Annex A / RFC 6381 §3.3): `avc1.PPCCLL`, profile_idc,
///   constraint flags and level_idc in hex, i.e. bytes 1..4 of the SPS.
/// - H.265 (ISO/IEC 14496-15 Annex E.3): `hvc1.` then the profile space (`A`, `B`, `C` or
///   nothing) and general_profile_idc in decimal; the 32 compatibility flags in reverse bit
///   order, in hex without leading zeros; the tier (`L` or `H`) and general_level_idc in
///   decimal; then the six constraint bytes in hex, trailing zero bytes omitted.
pub fn codec_string(params: &StreamParams) -> String {
    match params.codec {
        Codec::H264 => {
            let [p, c, l] = params.profile_level_id();
            format!("avc1.{p:02X}{c:02X}{l:02X}")
        }
        Codec::H265 => {
            // An SPS that does not parse never reaches a hub (the ingest rejects it); should
            // one, Main profile level 3.1 is the likeliest truth and plays nearly anywhere.
            let profile =
                h265::parse_sps(&params.sps)
                    .map(|s| s.profile)
                    .unwrap_or(h265::GeneralProfile {
                        profile_space: 0,
                        tier: false,
                        profile_idc: 1,
                        compatibility_flags: 0x6000_0000,
                        constraint_flags: 0x9000_0000_0000,
                        level_idc: 93,
                    });
            hevc_codec_string(&profile)
        }
    }
}

/// ISO/IEC 14496-15 Annex E.3 for `hvc1` sample entries.
fn hevc_codec_string(p: &h265::GeneralProfile) -> String {
    let space = match p.profile_space {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let tier = if p.tier { 'H' } else { 'L' };
    let mut s = format!(
        "hvc1.{space}{}.{:X}.{tier}{}",
        p.profile_idc,
        p.compatibility_flags.reverse_bits(),
        p.level_idc
    );
    let bytes = p.constraint_flags.to_be_bytes();
    let constraints = bytes.get(2..).unwrap_or_default();
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    for b in constraints.iter().take(used) {
        let _ = write!(s, ".{b:X}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fmp4::scan;
    use bytes::Bytes;

    fn h264_params() -> StreamParams {
        StreamParams {
            codec: Codec::H264,
            vps: None,
            // Constrained baseline, level 3.0 (what OpenH264 writes for 640x360).
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5]),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            width: 640,
            height: 360,
            fps: Some(30.0),
        }
    }

    fn au(params: &Arc<StreamParams>, pts: i64, key: bool, len: usize) -> AccessUnit {
        let mut data = (len as u32 - 4).to_be_bytes().to_vec();
        data.push(if key { 0x65 } else { 0x41 });
        data.resize(len, 0xab);
        AccessUnit {
            params: params.clone(),
            pts,
            capture_us: pts,
            key,
            data: Bytes::from(data),
        }
    }

    #[test]
    fn avc1_codec_string_from_sps() {
        assert_eq!(codec_string(&h264_params()), "avc1.42C01E");
        let mut high = h264_params();
        high.sps = Bytes::from_static(&[0x67, 0x64, 0x00, 0x28, 0xac]);
        assert_eq!(codec_string(&high), "avc1.640028");
    }

    #[test]
    fn hvc1_codec_string_per_annex_e() {
        // Main profile, Main tier, level 3.1, progressive + frame-only constraint flags:
        // the example of ISO/IEC 14496-15 E.3 is "hvc1.1.6.L93.B0".
        let main = h265::GeneralProfile {
            profile_space: 0,
            tier: false,
            profile_idc: 1,
            compatibility_flags: 0x6000_0000,
            constraint_flags: 0xb000_0000_0000,
            level_idc: 93,
        };
        assert_eq!(hevc_codec_string(&main), "hvc1.1.6.L93.B0");
        // Main 10, High tier, level 5.1, no constraint flags: no constraint bytes at all.
        let main10 = h265::GeneralProfile {
            profile_space: 0,
            tier: true,
            profile_idc: 2,
            compatibility_flags: 0x2000_0000,
            constraint_flags: 0,
            level_idc: 153,
        };
        assert_eq!(hevc_codec_string(&main10), "hvc1.2.4.H153");
        // A profile space is a letter; an inner zero byte is kept, trailing ones are not.
        let odd = h265::GeneralProfile {
            profile_space: 1,
            constraint_flags: 0x0000_0100_0000,
            ..main
        };
        assert_eq!(hevc_codec_string(&odd), "hvc1.A1.6.L93.0.0.1");
    }

    /// Parameters of a real x264 stream (the scanner keeps only tracks whose SPS parses).
    fn real_h264_params() -> StreamParams {
        use crate::h264::{nal_type, split_annexb};
        let clip = include_bytes!("../../testdata/x264-160x120-2slices.h264");
        let nals: Vec<&[u8]> = split_annexb(clip).collect();
        let find = |t| *nals.iter().find(|n| nal_type(n) == Some(t)).unwrap();
        crate::h264::stream_params(find(7), find(8)).unwrap()
    }

    #[test]
    fn scanner_reads_init_and_fragments() {
        let params = Arc::new(real_h264_params());
        let mut file = init_segment(&params);
        let init_len = file.len() as u64;
        let frames = [
            au(&params, 90_000, true, 5000),
            au(&params, 93_000, false, 700),
            au(&params, 96_000, false, 650),
        ];
        for (i, a) in frames.iter().enumerate() {
            file.extend_from_slice(&fragment(i as u32 + 1, a, 3000));
        }
        let result = scan(&file).unwrap();
        let init = result.init.expect("init segment parsed");
        assert_eq!(init.len, init_len);
        match init.tracks.as_slice() {
            [Track::Video(v)] => {
                assert_eq!(v.track_id, LIVE_TRACK_ID);
                assert_eq!(v.timescale, LIVE_TIMESCALE);
                assert_eq!(*v.params, *params);
            }
            other => panic!("unexpected tracks {other:?}"),
        }
        assert_eq!(result.valid_len, file.len() as u64);
        assert_eq!(result.fragments.len(), 3);
        for (i, (f, a)) in result.fragments.iter().zip(&frames).enumerate() {
            assert_eq!(f.sequence_number, i as u32 + 1);
            let [run] = f.runs.as_slice() else {
                panic!("one run per fragment")
            };
            assert_eq!(run.track_id, LIVE_TRACK_ID);
            assert_eq!(run.base_decode_time, a.pts as u64);
            let [s] = run.samples.as_slice() else {
                panic!("one sample per fragment")
            };
            assert_eq!(s.is_sync, a.key);
            assert_eq!(s.duration, 3000);
            let bytes = &file[s.offset as usize..s.offset as usize + s.size as usize];
            assert_eq!(bytes, &a.data[..]);
        }
    }

    #[test]
    fn negative_pts_is_clamped_not_wrapped() {
        let params = Arc::new(real_h264_params());
        let mut file = init_segment(&params);
        file.extend_from_slice(&fragment(1, &au(&params, -5, true, 100), 3000));
        let result = scan(&file).unwrap();
        assert_eq!(result.fragments[0].runs[0].base_decode_time, 0);
    }

    /// One fragment per access unit of the real x265 clip (IDR, CRA, CRA every 5 pictures):
    /// ffmpeg decodes every picture without an error, as a browser's demuxer would.
    #[test]
    fn hevc_live_stream_plays_in_ffmpeg() {
        use crate::fmp4::tests::{assert_probe, ffprobe, TempFile};
        use crate::h264::split_annexb;
        let clip = include_bytes!("../../testdata/x265-162x90.hevc");
        let nals: Vec<&[u8]> = split_annexb(clip).collect();
        let find = |t| *nals.iter().find(|n| h265::nal_type(n) == Some(t)).unwrap();
        let params = Arc::new(
            h265::stream_params(
                find(h265::NAL_VPS),
                find(h265::NAL_SPS),
                find(h265::NAL_PPS),
            )
            .unwrap(),
        );
        // Access units: a new one starts at a parameter set or at a first slice segment
        // once the current one has a picture (H.265 §7.4.2.4.4).
        let mut aus: Vec<Vec<u8>> = Vec::new();
        let mut cur = Vec::new();
        let mut has_vcl = false;
        for nal in nals {
            let t = h265::nal_type(nal).unwrap();
            let vcl = t < 32;
            if (matches!(t, 32..=35 | 39) || (vcl && nal[2] & 0x80 != 0)) && has_vcl {
                aus.push(std::mem::take(&mut cur));
                has_vcl = false;
            }
            has_vcl |= vcl;
            cur.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            cur.extend_from_slice(nal);
        }
        aus.push(cur);
        let mut file = init_segment(&params);
        for (i, data) in aus.iter().enumerate() {
            let a = AccessUnit {
                params: params.clone(),
                pts: 6000 * i as i64,
                capture_us: 0,
                key: h265::access_unit_is_irap(data),
                data: Bytes::from(data.clone()),
            };
            file.extend_from_slice(&fragment(i as u32 + 1, &a, 6000));
        }
        assert!(codec_string(&params).starts_with("hvc1.1.6.L"));
        let f = TempFile::new("live-hevc.mp4", &file);
        let frames = format!("nb_read_frames={}", aus.len());
        assert_probe(
            &ffprobe(&f.0, "v:0"),
            &[
                "codec_name=hevc",
                "codec_tag_string=hvc1",
                "width=162",
                &frames,
            ],
        );
        assert_eq!(vigil_testkit::ffmpeg::decode_errors(&f.0), "");
    }
}
