use std::cmp::Ordering;

use time::OffsetDateTime;

use super::*;
use crate::tests_support::{info, Creds, ADMIN_SECRET};
use crate::{Endpoint, Fault, Request, Service};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_796_679_000).unwrap()
}

fn admin() -> Login {
    Login {
        username: "admin".into(),
        password: ADMIN_SECRET.into(),
    }
}

/// Sends `call` to the crate's own service (what `vigil camera` answers) and returns the
/// status and body.
fn ask(svc: &mut Service, call: &Call, login: Option<&Login>, nonce: &[u8]) -> (u16, String) {
    let body = request(call, login, nonce, now());
    let endpoint = match call.service() {
        ServiceKind::Device => Endpoint::Device,
        ServiceKind::Media => Endpoint::Media,
    };
    let r = svc.handle(
        &Request {
            endpoint,
            body: body.as_bytes(),
            http_user: None,
            tls: false,
            now: now(),
        },
        &Creds,
    );
    (r.status, r.body)
}

fn testdata(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/thirdparty")
        .join(name);
    std::fs::read(p).unwrap()
}

#[test]
fn reads_our_own_camera() {
    let mut svc = Service::new(info(), crate::Limits::default());
    let login = admin();
    let (s, b) = ask(&mut svc, &Call::GetDeviceInformation, Some(&login), b"n1");
    let di = parse_device_information(s, b.as_bytes()).unwrap();
    assert_eq!(di.manufacturer, "Vigil");
    assert_eq!(di.model, "vigil camera");
    assert_eq!(di.firmware, "0.1.0");
    // Escaped on the way out, unescaped on the way in.
    assert_eq!(di.serial, "0123<&>");

    let (s, b) = ask(&mut svc, &Call::GetMediaCapabilities, Some(&login), b"n2");
    assert_eq!(
        parse_media_xaddr(s, b.as_bytes()).unwrap(),
        "http://127.0.0.1:8000/onvif/media_service"
    );

    let (s, b) = ask(&mut svc, &Call::GetProfiles, Some(&login), b"n3");
    let profiles = parse_profiles(s, b.as_bytes()).unwrap();
    assert_eq!(profiles.len(), 2);
    assert_eq!(profiles[0].token, "main");
    assert_eq!(profiles[0].encoding.as_deref(), Some("H264"));
    assert_eq!(
        (profiles[0].width, profiles[0].height),
        (Some(1280), Some(720))
    );
    assert_eq!(
        (profiles[1].width, profiles[1].height),
        (Some(640), Some(360))
    );
    let (main, sub) = main_and_sub(&profiles);
    assert_eq!(main.unwrap().token, "main");
    assert_eq!(sub.unwrap().token, "sub");

    let (s, b) = ask(
        &mut svc,
        &Call::GetStreamUri("sub".into()),
        Some(&login),
        b"n4",
    );
    assert_eq!(
        parse_stream_uri(s, b.as_bytes()).unwrap(),
        "rtsp://127.0.0.1:8554/sub"
    );
}

#[test]
fn wrong_password_is_not_authorized() {
    let mut svc = Service::new(info(), crate::Limits::default());
    let bad = Login {
        username: "admin".into(),
        password: "wrong".into(),
    };
    let (s, b) = ask(&mut svc, &Call::GetProfiles, Some(&bad), b"n1");
    assert_eq!(s, 400);
    assert_eq!(
        parse_profiles(s, b.as_bytes()),
        Err(ClientError::NotAuthorized)
    );
    // No credentials at all: the same.
    let (s, b) = ask(&mut svc, &Call::GetDeviceInformation, None, b"n2");
    assert_eq!(
        parse_device_information(s, b.as_bytes()),
        Err(ClientError::NotAuthorized)
    );
    // The error names the subcode the user can search for.
    assert!(ClientError::NotAuthorized
        .to_string()
        .contains("NotAuthorized"));
}

#[test]
fn other_faults_are_typed() {
    let mut svc = Service::new(info(), crate::Limits::default());
    let (s, b) = ask(
        &mut svc,
        &Call::GetStreamUri("nope".into()),
        Some(&admin()),
        b"n1",
    );
    match parse_stream_uri(s, b.as_bytes()) {
        Err(ClientError::Fault { code, subcode, .. }) => {
            assert_eq!(code, "Sender");
            assert_eq!(
                subcode.as_deref(),
                Some(local_part(Fault::NoProfile.subcode()))
            );
        }
        other => panic!("{other:?}"),
    }
    for f in [
        Fault::ActionNotSupported,
        Fault::OutofMemory,
        Fault::WellFormed,
    ] {
        let e = parse_response(f.http_status(), f.to_xml().as_bytes()).unwrap_err();
        assert!(
            matches!(&e, ClientError::Fault { subcode: Some(s), .. } if s == local_part(f.subcode())),
            "{e:?}"
        );
    }
}

#[test]
fn replayed_request_is_refused() {
    // The nonce is the caller's: reusing one is a replay the device refuses (§3.2).
    let mut svc = Service::new(info(), crate::Limits::default());
    let (s, _) = ask(&mut svc, &Call::GetProfiles, Some(&admin()), b"same");
    assert_eq!(s, 200);
    let (s, b) = ask(&mut svc, &Call::GetProfiles, Some(&admin()), b"same");
    assert_eq!(
        parse_profiles(s, b.as_bytes()),
        Err(ClientError::NotAuthorized)
    );
}

#[test]
fn request_escapes_and_hides_the_password() {
    let login = Login {
        username: "a<b>&\"".into(),
        password: "secret-pass".into(),
    };
    let r = request(
        &Call::GetStreamUri("t<&>".into()),
        Some(&login),
        b"n",
        now(),
    );
    assert!(!r.contains("secret-pass"));
    assert!(r.contains("a&lt;b&gt;&amp;&quot;"));
    assert!(r.contains("t&lt;&amp;&gt;"));
    assert!(!format!("{login:?}").contains("secret-pass"));
    // The request parses as a SOAP request with the right token.
    let env = crate::envelope::parse(r.as_bytes(), &crate::Limits::default()).unwrap();
    let t = crate::wsse::extract(&env).unwrap().unwrap();
    assert_eq!(t.username, "a<b>&\"");
    assert_eq!(t.created.as_deref(), Some("2026-12-07T21:30:00Z"));
}

/// Hikvision-shaped answers: other prefixes, whitespace between elements, PTZ and audio
/// configurations the client skips, a third profile, an entity in the URI.
#[test]
fn hikvision_shaped_answers() {
    let di =
        parse_device_information(200, &testdata("hikvision_GetDeviceInformation.xml")).unwrap();
    assert_eq!(di.manufacturer, "HIKVISION");
    assert_eq!(di.model, "DS-2CD2143G0-I");
    assert_eq!(di.firmware, "V5.5.82 build 190909");

    let p = parse_profiles(200, &testdata("hikvision_GetProfiles.xml")).unwrap();
    let tokens: Vec<_> = p.iter().map(|p| p.token.as_str()).collect();
    assert_eq!(tokens, ["Profile_1", "Profile_2", "Profile_3"]);
    assert_eq!(p[0].name, "mainStream");
    assert_eq!((p[0].width, p[0].height), (Some(2688), Some(1520)));
    // By resolution, not by order: the 1280x720 third stream is the sub stream.
    let (main, sub) = main_and_sub(&p);
    assert_eq!(main.unwrap().token, "Profile_1");
    assert_eq!(sub.unwrap().token, "Profile_3");

    assert_eq!(
        parse_stream_uri(200, &testdata("hikvision_GetStreamUri.xml")).unwrap(),
        "rtsp://192.168.1.64:554/Streaming/Channels/101?transportmode=unicast&profile=Profile_1"
    );
    assert_eq!(
        parse_profiles(400, &testdata("hikvision_NotAuthorized.xml")),
        Err(ClientError::NotAuthorized)
    );
}

/// Same names under other prefixes (`SOAP-ENV:`, `ns1:`/`ns2:` as gSOAP and Axis emit) and
/// under default namespaces: matching is by namespace URI only.
#[test]
fn prefixes_do_not_matter() {
    assert_eq!(
        parse_media_xaddr(200, &testdata("prefixes_GetCapabilities.xml")).unwrap(),
        "http://192.168.1.108/onvif/media_service"
    );
    let di =
        parse_device_information(200, &testdata("default_ns_GetDeviceInformation.xml")).unwrap();
    assert_eq!(di.model, "IPC-HDW2431T");
    // The right local names in the wrong namespace are not accepted.
    let wrong = String::from_utf8(testdata("default_ns_GetDeviceInformation.xml"))
        .unwrap()
        .replace("ver10/device/wsdl", "ver10/media/wsdl");
    assert!(matches!(
        parse_device_information(200, wrong.as_bytes()),
        Err(ClientError::Unexpected { .. })
    ));
}

#[test]
fn hostile_and_odd_answers() {
    // A DOCTYPE (entity expansion) is refused before anything is read.
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\">]>\
        <env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Body>&a;</env:Body></env:Envelope>";
    assert_eq!(
        parse_profiles(200, bomb.as_bytes()),
        Err(ClientError::Parse(ParseError::Doctype))
    );
    let huge = vec![b' '; 2 * 1024 * 1024];
    assert!(matches!(
        parse_profiles(200, &huge),
        Err(ClientError::Parse(ParseError::TooLarge(_)))
    ));
    // HTTP 401 with an HTML page (HTTP Digest-only devices) is NotAuthorized too.
    assert_eq!(
        parse_profiles(401, b"<html>401</html>"),
        Err(ClientError::NotAuthorized)
    );
    assert_eq!(
        parse_profiles(502, b"bad gateway"),
        Err(ClientError::Http(502))
    );
    // A stream URI that is not RTSP is not taken.
    let http = crate::xml::envelope(
        "<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>http://x/y</tt:Uri></trt:MediaUri></trt:GetStreamUriResponse>",
    );
    assert!(parse_stream_uri(200, http.as_bytes()).is_err());
    // A profile without a token is skipped, not invented.
    let no_token = crate::xml::envelope(
        "<trt:GetProfilesResponse><trt:Profiles><tt:Name>x</tt:Name></trt:Profiles></trt:GetProfilesResponse>",
    );
    assert_eq!(parse_profiles(200, no_token.as_bytes()).unwrap(), vec![]);
}

#[test]
fn firmware_versions_compare_numerically() {
    assert_eq!(compare_versions("5.10.2", "5.9"), Some(Ordering::Greater));
    assert_eq!(compare_versions("5.9", "5.9.0"), Some(Ordering::Equal));
    assert_eq!(
        compare_versions("V5.5.82 build 190909", "5.6"),
        Some(Ordering::Less)
    );
    assert_eq!(compare_versions("0.1.0", "0.1.1"), Some(Ordering::Less));
    assert_eq!(compare_versions("unknown", "1.0"), None);
    assert_eq!(compare_versions("", "1.0"), None);
}

/// Replays every checked-in seed and regression of the `onvif_response` fuzz target through
/// its invariants.
#[test]
fn replay_fuzz_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for sub in ["corpus/onvif_response", "regressions/onvif_response"] {
        let Ok(rd) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            crate::fuzzing::soap_response(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    assert!(n >= 10, "expected the seed corpus, found {n} files");
}
