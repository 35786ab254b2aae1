//! The libavcodec decoder (feature `libav`): the scripted scene gives the same events as
//! through OpenH264, and an H.265 stream (encoded here by ffmpeg's libx265) is analysed.

use std::io::Write as _;
use std::process::{Command, Stdio};

use bytes::Bytes;
use vigil_camera::testsrc::{SceneScript, TestPattern};
use vigil_media::{Codec, StreamParams};
use vigil_motion::{MotionEvent, Scope};

use super::tests::{encode_scene, scene_settings, BASE, FPS};
use super::*;

/// (start, end) of every camera-wide event the analyzer reports over `aus`.
fn camera_events(a: &mut Analyzer, aus: &[AccessUnit]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut events = Vec::new();
    for au in aus {
        if let Some(r) = a.push(au).unwrap() {
            events.extend(r.result.events);
        }
    }
    events.extend(a.finish());
    for e in events {
        if let MotionEvent::End {
            scope: Scope::Camera,
            start_us,
            ts_us,
            ..
        } = e
        {
            out.push((start_us, ts_us));
        }
    }
    out
}

fn assert_walk(events: &[(i64, i64)], seconds: i64) {
    let walks = SceneScript::default().object_intervals(BASE, BASE + seconds * 1_000_000);
    let (enter, leave) = walks[0];
    assert_eq!(events.len(), 1, "{events:?} (walk {walks:?})");
    let (start, end) = events[0];
    assert!((start - enter).abs() <= 1_000_000, "start {}", start - BASE);
    assert!((end - leave).abs() <= 1_000_000, "end {}", end - BASE);
}

#[test]
fn libav_is_the_preferred_decoder_and_matches_openh264_on_the_scene() {
    assert_eq!(DecoderKind::preferred(), DecoderKind::Libav);
    let (w, h) = (320, 180);
    let aus = encode_scene(w, h, 31);
    let mut lib = Analyzer::new(scene_settings(w, h)).unwrap();
    assert_eq!(lib.decoder(), DecoderKind::Libav);
    let mut oh = Analyzer::with_decoder(scene_settings(w, h), DecoderKind::OpenH264).unwrap();
    let by_lib = camera_events(&mut lib, &aus);
    let by_oh = camera_events(&mut oh, &aus);
    assert_walk(&by_lib, 31);
    assert_walk(&by_oh, 31);
    let (sl, so) = (lib.stats(), oh.stats());
    assert_eq!((sl.errors, sl.decoded), (0, aus.len() as u64), "{sl:?}");
    // Same pictures analysed, and the same event to within one analysis period.
    assert_eq!(sl.analysed, so.analysed, "{sl:?} {so:?}");
    assert!(
        (by_lib[0].0 - by_oh[0].0).abs() <= 200_000,
        "{by_lib:?} {by_oh:?}"
    );
    assert!(
        (by_lib[0].1 - by_oh[0].1).abs() <= 200_000,
        "{by_lib:?} {by_oh:?}"
    );
}

/// ITU-T H.265 Annex B byte stream → access units (4-byte length prefixes), parameter sets
/// taken out into the stream parameters. A new access unit starts at a VPS/SPS/PPS/AUD/prefix
/// SEI or at a slice with `first_slice_segment_in_pic_flag` (§7.4.2.4.4) after a slice.
fn hevc_access_units(stream: &[u8], w: u32, h: u32) -> Vec<AccessUnit> {
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            if let Some(s) = start {
                let mut e = i;
                while e > s && stream[e - 1] == 0 {
                    e -= 1;
                }
                nals.push(&stream[s..e]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        nals.push(&stream[s..]);
    }
    let ty = |n: &[u8]| (n[0] >> 1) & 0x3f;
    let ps = |t: u8| Bytes::copy_from_slice(nals.iter().find(|n| ty(n) == t).unwrap());
    let params = Arc::new(StreamParams {
        codec: Codec::H265,
        vps: Some(ps(32)),
        sps: ps(33),
        pps: ps(34),
        width: w,
        height: h,
        fps: Some(FPS),
    });
    let mut aus: Vec<(bool, Vec<u8>)> = Vec::new();
    let mut has_slice = false;
    for n in nals {
        let t = ty(n);
        let vcl = t < 32;
        let new_au = has_slice && ((vcl && n[2] & 0x80 != 0) || (32..=39).contains(&t));
        if new_au || aus.is_empty() {
            aus.push((false, Vec::new()));
            has_slice = false;
        }
        let last = aus.last_mut().unwrap();
        if (32..=34).contains(&t) {
            continue; // in the stream parameters (and prepended to key frames)
        }
        if vcl {
            has_slice = true;
            last.0 |= (16..=23).contains(&t); // IRAP
        }
        last.1.extend_from_slice(&(n.len() as u32).to_be_bytes());
        last.1.extend_from_slice(n);
    }
    aus.into_iter()
        .filter(|(_, d)| !d.is_empty())
        .enumerate()
        .map(|(n, (key, data))| AccessUnit {
            params: params.clone(),
            pts: n as i64 * 9000,
            capture_us: BASE + (n as f64 * 1e6 / FPS) as i64,
            key,
            data: Bytes::from(data),
        })
        .collect()
}

#[test]
fn h265_streams_are_decoded_and_raise_the_walk_event() {
    let (w, h, seconds) = (320u32, 180u32, 31u32);
    let mut ff = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            &format!("{w}x{h}"),
        ])
        .args(["-r", &FPS.to_string(), "-i", "-"])
        .args(["-c:v", "libx265", "-preset", "ultrafast"])
        .args([
            "-x265-params",
            "keyint=10:min-keyint=10:bframes=0:log-level=error",
        ])
        .args(["-f", "hevc", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg with libx265 is needed (apt-get install ffmpeg)");
    let mut stdin = ff.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut tp = TestPattern::scene(w, h, SceneScript::default()).unwrap();
        for n in 0..seconds * FPS as u32 {
            let f = tp.render(n, BASE + (f64::from(n) * 1e6 / FPS) as i64);
            stdin.write_all(&f.y).unwrap();
            stdin.write_all(&f.u).unwrap();
            stdin.write_all(&f.v).unwrap();
        }
    });
    let out = ff.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "ffmpeg libx265 failed");
    let aus = hevc_access_units(&out.stdout, w, h);
    assert_eq!(aus.len(), (seconds * FPS as u32) as usize);
    assert!(aus[0].key && aus[10].key && !aus[1].key);

    let mut a = Analyzer::new(scene_settings(w, h)).unwrap();
    let events = camera_events(&mut a, &aus);
    let st = a.stats();
    assert_eq!((st.errors, st.decoded), (0, aus.len() as u64), "{st:?}");
    assert!(st.analysed >= 150, "{st:?}");
    assert_walk(&events, i64::from(seconds));

    // OpenH264 still refuses it rather than misdecoding.
    let mut oh = Analyzer::with_decoder(scene_settings(w, h), DecoderKind::OpenH264).unwrap();
    assert!(oh.push(&aus[0]).is_err());
}

#[test]
fn garbage_h265_never_panics_and_resumes_at_a_key_frame() {
    let params = Arc::new(StreamParams {
        codec: Codec::H265,
        vps: Some(Bytes::from_static(&[0x40, 0x01, 0xff])),
        sps: Bytes::from_static(&[0x42, 0x01, 0xff, 0xff]),
        pps: Bytes::new(),
        width: 64,
        height: 64,
        fps: None,
    });
    let mut a = Analyzer::new(MotionSettings::default()).unwrap();
    for (i, junk) in [&[0u8, 0, 0, 3, 0x26, 0x01, 0xff][..], &[0xff; 64], &[]]
        .iter()
        .enumerate()
    {
        let au = AccessUnit {
            params: params.clone(),
            pts: i as i64,
            capture_us: i as i64,
            key: true,
            data: Bytes::copy_from_slice(junk),
        };
        assert!(a.push(&au).unwrap().is_none());
    }
    // Then a real H.264 stream on the same analyzer: the decoder is reopened for it.
    let aus = encode_scene(320, 180, 2);
    let analysed = aus
        .iter()
        .filter(|au| a.push(au).unwrap().is_some())
        .count();
    assert!(analysed >= 5, "{analysed} {:?}", a.stats());
}

#[test]
fn ten_bit_h265_is_refused_not_misread() {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=10",
            "-frames:v",
            "3",
        ])
        .args([
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error",
        ])
        .args(["-pix_fmt", "yuv420p10le", "-f", "hevc", "-"])
        .output()
        .expect("ffmpeg with libx265 is needed (apt-get install ffmpeg)");
    assert!(out.status.success(), "ffmpeg libx265 (10-bit) failed");
    let aus = hevc_access_units(&out.stdout, 64, 64);
    assert!(aus[0].key);
    let mut a = Analyzer::new(MotionSettings::default()).unwrap();
    let err = aus
        .iter()
        .find_map(|au| a.push(au).err())
        .expect("10-bit pictures were analysed");
    assert!(err.to_string().contains("8-bit luma"), "{err}");
}
