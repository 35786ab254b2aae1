//! RTSP request/interleaved-frame parser: same result however the bytes are split into
//! reads, consumption within bounds, limits respected, requests round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vigil_rtsp::fuzzing::rtsp_message(data);
});
