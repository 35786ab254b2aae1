//! Fuzz the RFC 7616 `Authorization: Digest` parser: no panics, limits enforced, canonical round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vigil_auth::fuzzing::digest_header(data);
});
