//! Fuzz the ONVIF SOAP 1.2 request parser and service: no panics, limits enforced, every
//! answer (response or fault) is itself a well-formed envelope.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vigil_onvif::fuzzing::soap_request(data);
});
