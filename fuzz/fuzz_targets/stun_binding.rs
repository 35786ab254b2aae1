//! Fuzz the STUN Binding response parser of the WebRTC edge (`vigil_webrtc::stun`): any
//! datagram on the shared UDP socket reaches it. No panics, and what parses names an address.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vigil_webrtc::stun::fuzz(data);
});
