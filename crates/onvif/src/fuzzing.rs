//! Fuzzing entry point (used by `fuzz/fuzz_targets/onvif_soap.rs` and the corpus test).

use crate::envelope::{parse, Limits};

/// Parses `data` as a SOAP request and checks the limits hold on whatever parsed; then runs it
/// through the whole service as an unauthenticated and as an authenticated request, checking
/// that every answer is a well-formed envelope that itself parses.
pub fn soap_request(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(env) = parse(data, &limits) {
        assert!(env.header.len() + env.body.len() < limits.max_elements);
        for f in env.header.iter().chain(&env.body) {
            assert!(f.text.len() <= limits.max_text);
            assert!(f.path.len() < limits.max_depth);
        }
        let _ = crate::wsse::extract(&env);
    }
    let mut svc = crate::Service::new(crate::tests_support::info(), limits);
    for (endpoint, user) in [
        (crate::Endpoint::Device, None),
        (crate::Endpoint::Media, Some("admin")),
    ] {
        let req = crate::Request {
            endpoint,
            body: data,
            http_user: user,
            tls: false,
            now: time::OffsetDateTime::UNIX_EPOCH,
        };
        let r = svc.handle(&req, &crate::tests_support::Creds);
        // Our own responses must pass our own parser (so escaping is right), except that a
        // response is not a request: it has no operation constraint beyond a Body element.
        let again = parse(
            r.body.as_bytes(),
            &Limits {
                max_body: 1 << 20,
                max_elements: 1 << 16,
                ..limits
            },
        );
        assert!(
            again.is_ok(),
            "response does not parse: {again:?}\n{}",
            r.body
        );
        assert!(r.status == 200 || r.fault.is_some());
    }
}

/// Parses `data` as a WS-Discovery Probe; whatever parses must be answerable: the
/// ProbeMatches built for it parses back, relates to the Probe's MessageID and carries the
/// target unchanged.
pub fn wsd_probe(data: &[u8]) {
    use crate::discovery::*;
    let _ = parse_probe_matches(data, "urn:uuid:fuzz");
    let Ok(p) = parse_probe(data) else { return };
    assert!(!p.message_id.is_empty() && p.message_id.len() <= 256);
    let t = Target {
        endpoint: "urn:uuid:00000000-0000-4000-8000-000000000000".into(),
        scopes: vec!["onvif://www.onvif.org/Profile/Streaming".into()],
        xaddrs: vec!["http://127.0.0.1:8000/onvif/device_service".into()],
        metadata_version: 1,
    };
    let _ = p.matches(&t.scopes);
    let seq = AppSequence {
        instance_id: 1,
        message_number: 1,
    };
    let reply = probe_matches(&t, &p, "urn:uuid:reply", seq);
    let back = parse_probe_matches(reply.as_bytes(), p.message_id.trim());
    // A MessageID with characters XML cannot carry is dropped in escaping; otherwise the
    // reply must relate to it and describe the target.
    if let Ok(m) = back {
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].xaddrs, t.xaddrs);
    }
}

/// Parses `data` as every answer the ONVIF client reads (with a 200 and a 400 status), and
/// checks what it accepts: profiles have tokens, a stream URI is RTSP(S), fields stay within
/// the response limits; firmware version comparison is antisymmetric.
pub fn soap_response(data: &[u8]) {
    use crate::client::*;
    let limits = response_limits();
    for status in [200, 400] {
        if let Ok(di) = parse_device_information(status, data) {
            assert!(di.model.len() <= limits.max_text);
            if let Some(o) = compare_versions(&di.firmware, "1.2.3") {
                assert_eq!(compare_versions("1.2.3", &di.firmware), Some(o.reverse()));
            }
        }
        if let Ok(x) = parse_media_xaddr(status, data) {
            assert!(!x.is_empty() && x.len() <= limits.max_text);
        }
        if let Ok(p) = parse_profiles(status, data) {
            assert!(p.iter().all(|p| !p.token.is_empty()));
            assert!(p.len() <= limits.max_elements);
            let (main, sub) = main_and_sub(&p);
            if let (Some(m), Some(s)) = (main, sub) {
                assert!(m.pixels() >= s.pixels());
            }
        }
        if let Ok(u) = parse_stream_uri(status, data) {
            let l = u.to_ascii_lowercase();
            assert!(l.starts_with("rtsp://") || l.starts_with("rtsps://"));
        }
    }
}
