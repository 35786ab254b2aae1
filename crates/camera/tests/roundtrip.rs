//! The test pattern's burned-in code survives lossy H.264 coding: every frame of a 2 s
//! sequence reads back with its exact counter and capture time after OpenH264 encode and
//! decode, at the sizes the main and sub streams use.
#![allow(clippy::unwrap_used)]

use vigil_camera::testsrc::{read_code, BurnedCode, TestPattern};
use vigil_camera::{EncoderConfig, H264Decoder, H264Encoder, I420Frame};

const T0: i64 = 1_750_000_000_000_000;

fn round_trip(width: u32, height: u32, bitrate_bps: u32, scale_to: Option<(u32, u32)>) {
    let (ew, eh) = scale_to.unwrap_or((width, height));
    let mut enc = H264Encoder::new(EncoderConfig {
        width: ew,
        height: eh,
        fps: 30.0,
        bitrate_bps,
        keyint: 30,
    })
    .unwrap();
    let mut dec = H264Decoder::new().unwrap();
    let mut tp = TestPattern::new(width, height).unwrap();
    let mut scaled = I420Frame::black(ew, eh).unwrap();
    let mut keys = 0;
    for n in 0..60u32 {
        let capture_us = T0 + i64::from(n) * 33_333 + 17;
        let frame = tp.render(n, capture_us);
        let input = if scale_to.is_some() {
            frame.scale_into(&mut scaled);
            &scaled
        } else {
            frame
        };
        let au = enc
            .encode(input, i64::from(n) * 3000, capture_us)
            .unwrap()
            .unwrap();
        keys += usize::from(au.key);
        let pic = dec.decode(&au).unwrap().unwrap();
        assert_eq!((pic.width, pic.height), (ew, eh));
        let code = read_code(&pic.y, pic.width as usize, pic.width, pic.height);
        assert_eq!(
            code,
            Some(BurnedCode {
                capture_us,
                counter: n
            }),
            "{width}x{height} -> {ew}x{eh}, frame {n}"
        );
    }
    assert_eq!(keys, 2);
}

#[test]
fn code_survives_h264_at_1280x720() {
    round_trip(1280, 720, 2_000_000, None);
}

#[test]
fn code_survives_h264_at_640x360() {
    round_trip(640, 360, 512_000, None);
}

#[test]
fn code_survives_h264_at_320x240() {
    round_trip(320, 240, 256_000, None);
}

#[test]
fn code_of_the_main_stream_reads_from_the_downscaled_sub_stream() {
    round_trip(1280, 720, 512_000, Some((640, 360)));
}
