//! Parses fuzzer-provided bytes as a cloud manifest (the decrypted plaintext of an `m/`
//! object: the bucket is not trusted to be well-formed) and checks the invariants in
//! `vigil_cloud::layout::check_manifest_invariants`: no panic, and every entry that passes
//! its check converts to index rows whose byte ranges map inside the part.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vigil_cloud::layout::check_manifest_invariants(data));
