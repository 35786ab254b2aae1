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
