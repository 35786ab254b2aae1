//! Scans fuzzer-provided bytes as a fragmented MP4 and checks the invariants in
//! `vigil_media::fmp4::check_scan_invariants`: samples inside their mdat, decode times
//! monotonic per track, valid_len within the input, the valid prefix scanning the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vigil_media::fmp4::check_scan_invariants(data));
