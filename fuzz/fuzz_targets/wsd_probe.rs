//! Fuzz the WS-Discovery Probe and ProbeMatches parsers: no panics, and every Probe that
//! parses gets a ProbeMatches that parses back and relates to it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vigil_onvif::fuzzing::wsd_probe(data);
});
