//! Packetizes fuzzer-derived access units (RFC 6184), depacketizes them again and checks
//! the invariants in `vigil_media::fuzzing::rtp_packetizer_roundtrip`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vigil_media::fuzzing::rtp_packetizer_roundtrip(data));
