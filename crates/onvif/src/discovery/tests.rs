//! Unit tests of WS-Discovery parsing, matching and message building.

use super::*;

fn target() -> Target {
    Target {
        endpoint: "urn:uuid:0b9e3c4a-0000-4000-8000-000000000001".into(),
        scopes: vec![
            "onvif://www.onvif.org/type/video_encoder".into(),
            "onvif://www.onvif.org/Profile/Streaming".into(),
            "onvif://www.onvif.org/name/cam<&>".into(),
        ],
        xaddrs: vec!["http://127.0.0.1:8000/onvif/device_service".into()],
        metadata_version: 1,
    }
}

fn testdata(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/wsdiscovery")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const SEQ: AppSequence = AppSequence {
    instance_id: 7,
    message_number: 1,
};

/// Probes exactly as the WSDiscovery 2.1.2 package (PyPI) builds them.
#[test]
fn wsdiscovery_probes() {
    let p = parse_probe(&testdata("wsdiscovery_probe_nvt.xml")).unwrap();
    assert_eq!(
        p.message_id,
        "urn:uuid:983254f7-aabc-45b0-8124-388aa14687ea"
    );
    assert_eq!(
        p.types,
        vec![(NS_DN.to_owned(), "NetworkVideoTransmitter".to_owned())]
    );
    assert!(p.matches(&target().scopes));

    let p = parse_probe(&testdata("wsdiscovery_probe_scope.xml")).unwrap();
    assert_eq!(p.scopes, vec!["onvif://www.onvif.org/Profile"]);
    assert!(p.types.is_empty());
    assert!(
        p.matches(&target().scopes),
        "Profile is a prefix of Profile/Streaming"
    );

    let p = parse_probe(&testdata("wsdiscovery_probe_printer.xml")).unwrap();
    assert!(
        !p.matches(&target().scopes),
        "a printer probe gets no answer"
    );
}

#[test]
fn scope_rules() {
    let ours = target().scopes;
    let probe = |scopes: &[&str], match_by: Option<&str>| Probe {
        message_id: "m".into(),
        types: vec![],
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        match_by: match_by.map(str::to_owned),
    };
    assert!(probe(&[], None).matches(&ours));
    assert!(probe(&["ONVIF://WWW.onvif.org/type"], None).matches(&ours));
    assert!(!probe(&["onvif://www.onvif.org/Prof"], None).matches(&ours));
    assert!(!probe(&["onvif://www.onvif.org/type/video_encoder/x"], None).matches(&ours));
    assert!(!probe(&["onvif://www.onvif.org/type?x"], None).matches(&ours));
    assert!(!probe(&["onvif://www.onvif.org/type", "onvif://x/y"], None).matches(&ours));
    let strcmp = Some("http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0");
    assert!(probe(&["onvif://www.onvif.org/Profile/Streaming"], strcmp).matches(&ours));
    assert!(!probe(&["onvif://www.onvif.org/Profile"], strcmp).matches(&ours));
    assert!(!probe(&["onvif://www.onvif.org/Profile"], Some("urn:other")).matches(&ours));
}

#[test]
fn types_resolve_by_namespace_not_prefix() {
    let probe = |decl: &str, types: &str| {
        format!(
            "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\" \
             xmlns:w=\"{NS_WSA}\" xmlns:d=\"{NS_WSD}\" {decl}><e:Header>\
             <w:MessageID>urn:uuid:1</w:MessageID></e:Header><e:Body><d:Probe>\
             <d:Types>{types}</d:Types></d:Probe></e:Body></e:Envelope>"
        )
    };
    let p = parse_probe(
        probe(
            "xmlns:zz=\"http://www.onvif.org/ver10/device/wsdl\"",
            "zz:Device",
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(p.matches(&[]));
    // The default namespace applies to an unprefixed QName.
    let p = parse_probe(
        probe(
            "xmlns=\"http://www.onvif.org/ver10/network/wsdl\"",
            "NetworkVideoTransmitter",
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(p.matches(&[]));
    // The right local name in the wrong namespace is not us.
    let p =
        parse_probe(probe("xmlns:dn=\"urn:x\"", "dn:NetworkVideoTransmitter").as_bytes()).unwrap();
    assert!(!p.matches(&[]));
    assert_eq!(
        parse_probe(probe("", "nope:Device").as_bytes()),
        Err(ProbeError::UnboundType)
    );
}

#[test]
fn refusals() {
    let t = target();
    // Our own Hello, looping back from the multicast group, is not a Probe.
    assert_eq!(
        parse_probe(hello(&t, "urn:uuid:2", SEQ).as_bytes()),
        Err(ProbeError::NotProbe)
    );
    let no_id = "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\" \
                 xmlns:d=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\">\
                 <e:Body><d:Probe/></e:Body></e:Envelope>";
    assert_eq!(parse_probe(no_id.as_bytes()), Err(ProbeError::MessageId));
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\">]><l>&a;</l>";
    assert_eq!(
        parse_probe(bomb.as_bytes()),
        Err(ProbeError::Parse(ParseError::Doctype))
    );
    assert!(matches!(
        parse_probe(&vec![b' '; 9000]),
        Err(ProbeError::Parse(ParseError::TooLarge(_)))
    ));
}

#[test]
fn replies_escape_and_parse_back() {
    let t = target();
    let p = parse_probe(&testdata("wsdiscovery_probe_nvt.xml")).unwrap();
    let reply = probe_matches(&t, &p, "urn:uuid:3", SEQ);
    assert!(reply.contains("name/cam&lt;&amp;&gt;"), "{reply}");
    assert!(reply
        .contains("<wsa:RelatesTo>urn:uuid:983254f7-aabc-45b0-8124-388aa14687ea</wsa:RelatesTo>"));
    let m = parse_probe_matches(reply.as_bytes(), &p.message_id).unwrap();
    assert_eq!(
        m,
        vec![ProbeMatch {
            endpoint: t.endpoint.clone(),
            scopes: t.scopes.clone(),
            xaddrs: t.xaddrs.clone(),
        }]
    );
    assert_eq!(
        parse_probe_matches(reply.as_bytes(), "urn:uuid:other"),
        Err(ProbeError::NotProbe)
    );
    // Our own Probe parses as one, and every message we build parses as SOAP.
    let ours = parse_probe(probe("urn:uuid:4").as_bytes()).unwrap();
    assert!(ours.matches(&t.scopes));
    for m in [hello(&t, "urn:uuid:5", SEQ), bye(&t, "urn:uuid:6", SEQ)] {
        envelope::parse(m.as_bytes(), &limits()).unwrap();
    }
}

#[test]
fn replay_fuzz_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut n = 0;
    for sub in ["corpus/wsd_probe", "regressions/wsd_probe"] {
        let Ok(rd) = std::fs::read_dir(root.join(sub)) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            crate::fuzzing::wsd_probe(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    assert!(n >= 5, "expected the seed corpus, found {n} files");
}
