//! Fuzz the ONVIF client's answer parsers (GetDeviceInformation, GetCapabilities,
//! GetProfiles, GetStreamUri, faults): no panics, and what they accept is usable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vigil_onvif::fuzzing::soap_response(data);
});
