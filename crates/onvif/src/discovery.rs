//! WS-Discovery (2005/04, as ONVIF Core §7.3 uses it), sans-IO: parsing a Probe, deciding
//! whether it matches, and building ProbeMatches, Hello and Bye. The edge owns the UDP socket
//! (port 3702, multicast group 239.255.255.250) and hands datagrams in and out.
//!
//! A Probe goes through the same hardened SOAP parser as the services ([`crate::envelope`]):
//! no DOCTYPE, no entities, bounded size, depth and element count. A reply is larger than a
//! Probe, so the edge answers only Probes that match what we are (types and scopes) and
//! rate-limits replies; that policy is [`Probe::matches`] plus the edge's limiter.

use quick_xml::events::Event;
use quick_xml::name::{Namespace, QName as XmlQName, ResolveResult};
use quick_xml::NsReader;

use crate::envelope::{self, Envelope, Limits, ParseError};
use crate::xml::escape as e;

/// WS-Discovery 2005/04 namespace.
pub const NS_WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
/// WS-Addressing 2004/08 namespace (the one WS-Discovery 2005/04 uses).
pub const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// ONVIF network namespace (`dn:NetworkVideoTransmitter`, ONVIF Core §7.3.1).
pub const NS_DN: &str = "http://www.onvif.org/ver10/network/wsdl";
/// The discovery multicast group (WS-Discovery §2.4) on UDP port [`PORT`].
pub const MULTICAST_V4: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 255, 250);
/// The discovery port (WS-Discovery §2.4).
pub const PORT: u16 = 3702;
/// `To` of multicast messages (WS-Discovery §2.4).
const TO_DISCOVERY: &str = "urn:schemas-xmlsoap-org:ws:2005:04:discovery";
/// `To` of replies (WS-Addressing 2004/08 anonymous role).
const TO_ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
/// Default `Scopes/@MatchBy` (WS-Discovery §5.1).
const MATCH_RFC3986: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986";
/// Exact string comparison `Scopes/@MatchBy` (WS-Discovery §5.1).
const MATCH_STRCMP0: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0";
/// Longest MessageID we echo back in RelatesTo.
const MAX_MESSAGE_ID: usize = 256;

/// Limits for a discovery datagram: a UDP payload is at most 64 KiB anyway; a Probe is a few
/// hundred bytes.
pub fn limits() -> Limits {
    Limits {
        max_body: 8 * 1024,
        max_depth: 16,
        max_elements: 128,
        max_text: 2048,
    }
}

/// Why a datagram is not a Probe we can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    /// Not a well-formed, bounded SOAP 1.2 envelope.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A SOAP envelope, but its body is not `wsd:Probe` (e.g. someone's Hello or our own
    /// multicast coming back).
    #[error("not a Probe")]
    NotProbe,
    /// A QName in `Types` uses a prefix that is not declared (XML Namespaces §5).
    #[error("unbound prefix in Types")]
    UnboundType,
    /// No usable MessageID to relate the reply to.
    #[error("missing or oversized MessageID")]
    MessageId,
}

/// A Probe (WS-Discovery §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `wsa:MessageID`, echoed in `wsa:RelatesTo`.
    pub message_id: String,
    /// `Types`: (namespace, local name) of each QName listed.
    pub types: Vec<(String, String)>,
    /// `Scopes`, whitespace-separated URIs.
    pub scopes: Vec<String>,
    /// `Scopes/@MatchBy`, if given.
    pub match_by: Option<String>,
}

/// Parses one datagram as a Probe.
pub fn parse_probe(data: &[u8]) -> Result<Probe, ProbeError> {
    let limits = limits();
    let env = envelope::parse(data, &limits)?;
    if !env.operation.is(NS_WSD, "Probe") {
        return Err(ProbeError::NotProbe);
    }
    let message_id = header_text(&env, NS_WSA, "MessageID")
        .filter(|m| !m.is_empty() && m.len() <= MAX_MESSAGE_ID)
        .ok_or(ProbeError::MessageId)?
        .to_owned();
    let scopes_field = env
        .body
        .iter()
        .find(|f| f.path.len() == 1 && f.path[0].is(NS_WSD, "Scopes"));
    let scopes = scopes_field
        .map(|f| f.text.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let match_by = scopes_field.and_then(|f| {
        f.attrs
            .iter()
            .find(|(ns, local, _)| ns.is_empty() && local == "MatchBy")
            .map(|(_, _, v)| v.trim().to_owned())
    });
    let has_types = env
        .body
        .iter()
        .any(|f| f.path.len() == 1 && f.path[0].is(NS_WSD, "Types"));
    let types = if has_types {
        probe_types(data)?
    } else {
        Vec::new()
    };
    Ok(Probe {
        message_id,
        types,
        scopes,
        match_by,
    })
}

fn header_text<'a>(env: &'a Envelope, ns: &str, local: &str) -> Option<&'a str> {
    env.header
        .iter()
        .find(|f| f.path.len() == 1 && f.path[0].is(ns, local))
        .map(|f| f.text.trim())
}

/// The QNames of `Body/Probe/Types`, resolved against the namespace declarations in scope
/// where they appear (the Types value is a list of QNames, WS-Discovery §5.2). Runs only on
/// input [`envelope::parse`] has already accepted, so it is bounded by the same limits.
fn probe_types(data: &[u8]) -> Result<Vec<(String, String)>, ProbeError> {
    let mut reader = NsReader::from_reader(data);
    reader.config_mut().expand_empty_elements = true;
    let mut depth = 0usize;
    let mut in_types = false;
    let mut out = Vec::new();
    let bad = |e: &dyn std::fmt::Display| ProbeError::Parse(ParseError::Malformed(e.to_string()));
    loop {
        let (res, ev) = reader.read_resolved_event().map_err(|e| bad(&e))?;
        match ev {
            Event::Eof => break,
            Event::Start(s) => {
                depth += 1;
                // Envelope(1)/Body(2)/Probe(3)/Types(4).
                in_types = depth == 4
                    && matches!(res, ResolveResult::Bound(Namespace(ns)) if ns == NS_WSD.as_bytes())
                    && s.local_name().as_ref() == b"Types";
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_types = false;
            }
            Event::Text(t) if in_types => {
                let text = t.decode().map_err(|e| bad(&e))?;
                for q in text.split_whitespace() {
                    let (r, local) = reader.resolve(XmlQName(q.as_bytes()), false);
                    let ns = match r {
                        ResolveResult::Bound(Namespace(ns)) => {
                            String::from_utf8_lossy(ns).into_owned()
                        }
                        ResolveResult::Unbound => String::new(),
                        ResolveResult::Unknown(_) => return Err(ProbeError::UnboundType),
                    };
                    out.push((ns, String::from_utf8_lossy(local.as_ref()).into_owned()));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What the device announces: its endpoint reference, types, scopes and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Stable endpoint reference (`urn:uuid:…`), the same across restarts.
    pub endpoint: String,
    /// Scopes (ONVIF Core §7.3.2.2).
    pub scopes: Vec<String>,
    /// Device service addresses.
    pub xaddrs: Vec<String>,
    /// `MetadataVersion`: bumped when scopes or addresses change.
    pub metadata_version: u32,
}

/// The types a Vigil camera is: an ONVIF NetworkVideoTransmitter and a device (ONVIF Core
/// §7.3.1).
const TYPES: [(&str, &str); 2] = [
    (NS_DN, "NetworkVideoTransmitter"),
    (crate::ops::NS_DEVICE, "Device"),
];

impl Probe {
    /// Whether a target with `scopes` answers this Probe (WS-Discovery §5.3): every listed type
    /// is one of ours, and every listed scope matches one of ours under `MatchBy` (RFC 3986
    /// prefix match by default, or `strcmp0`; any other rule matches nothing).
    pub fn matches(&self, scopes: &[String]) -> bool {
        let types_ok = self
            .types
            .iter()
            .all(|(ns, local)| TYPES.iter().any(|(n, l)| n == ns && l == local));
        let rule = self.match_by.as_deref().unwrap_or(MATCH_RFC3986);
        let scope_ok = |probe: &str| {
            scopes.iter().any(|ours| match rule {
                MATCH_RFC3986 => rfc3986_match(probe, ours),
                MATCH_STRCMP0 => probe == ours,
                _ => false,
            })
        };
        types_ok && self.scopes.iter().all(|s| scope_ok(s))
    }
}

/// WS-Discovery §5.1 rfc3986 rule: scheme and authority equal (case-insensitive), and the
/// probe's path segments a prefix of ours; no query or fragment in the probe's scope.
fn rfc3986_match(probe: &str, ours: &str) -> bool {
    fn split(s: &str) -> Option<(String, String, Vec<&str>)> {
        let (scheme, rest) = s.split_once("://")?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let segs = path.split('/').filter(|p| !p.is_empty()).collect();
        Some((
            scheme.to_ascii_lowercase(),
            authority.to_ascii_lowercase(),
            segs,
        ))
    }
    if probe.contains(['?', '#']) {
        return false;
    }
    match (split(probe), split(ours)) {
        (Some((s1, a1, p1)), Some((s2, a2, p2))) => {
            s1 == s2 && a1 == a2 && p1.len() <= p2.len() && p1.iter().zip(&p2).all(|(a, b)| a == b)
        }
        _ => false,
    }
}

/// `AppSequence` (WS-Discovery §7): the instance (e.g. start time in seconds) and a counter of
/// messages sent by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSequence {
    /// Increases each time the device restarts.
    pub instance_id: u64,
    /// Increases with each message.
    pub message_number: u64,
}

const NAMESPACES: &str = concat!(
    " xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"",
    " xmlns:wsa=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"",
    " xmlns:wsd=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\"",
    " xmlns:dn=\"http://www.onvif.org/ver10/network/wsdl\"",
    " xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"",
);

fn message(
    action: &str,
    message_id: &str,
    relates_to: Option<&str>,
    to: &str,
    seq: AppSequence,
    body: &str,
) -> String {
    let relates = relates_to
        .map(|r| format!("<wsa:RelatesTo>{}</wsa:RelatesTo>", e(r)))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope{NAMESPACES}><env:Header>\
         <wsa:MessageID>{}</wsa:MessageID>{relates}<wsa:To>{to}</wsa:To>\
         <wsa:Action>{NS_WSD}/{action}</wsa:Action>\
         <wsd:AppSequence InstanceId=\"{}\" MessageNumber=\"{}\"/>\
         </env:Header><env:Body>{body}</env:Body></env:Envelope>",
        e(message_id),
        seq.instance_id,
        seq.message_number,
    )
}

fn epr(t: &Target) -> String {
    format!(
        "<wsa:EndpointReference><wsa:Address>{}</wsa:Address></wsa:EndpointReference>",
        e(&t.endpoint)
    )
}

fn description(t: &Target) -> String {
    let scopes: Vec<String> = t.scopes.iter().map(|s| e(s)).collect();
    let xaddrs: Vec<String> = t.xaddrs.iter().map(|s| e(s)).collect();
    format!(
        "{}<wsd:Types>dn:NetworkVideoTransmitter tds:Device</wsd:Types>\
         <wsd:Scopes>{}</wsd:Scopes><wsd:XAddrs>{}</wsd:XAddrs>\
         <wsd:MetadataVersion>{}</wsd:MetadataVersion>",
        epr(t),
        scopes.join(" "),
        xaddrs.join(" "),
        t.metadata_version
    )
}

/// The ProbeMatches answering `probe` (WS-Discovery §5.3), sent unicast to its source.
pub fn probe_matches(t: &Target, probe: &Probe, message_id: &str, seq: AppSequence) -> String {
    message(
        "ProbeMatches",
        message_id,
        Some(&probe.message_id),
        TO_ANONYMOUS,
        seq,
        &format!(
            "<wsd:ProbeMatches><wsd:ProbeMatch>{}</wsd:ProbeMatch></wsd:ProbeMatches>",
            description(t)
        ),
    )
}

/// Hello (WS-Discovery §4.1), multicast when the device starts.
pub fn hello(t: &Target, message_id: &str, seq: AppSequence) -> String {
    message(
        "Hello",
        message_id,
        None,
        TO_DISCOVERY,
        seq,
        &format!("<wsd:Hello>{}</wsd:Hello>", description(t)),
    )
}

/// Bye (WS-Discovery §4.2), multicast when the device stops.
pub fn bye(t: &Target, message_id: &str, seq: AppSequence) -> String {
    message(
        "Bye",
        message_id,
        None,
        TO_DISCOVERY,
        seq,
        &format!("<wsd:Bye>{}</wsd:Bye>", epr(t)),
    )
}

/// A Probe for ONVIF devices (`dn:NetworkVideoTransmitter`), as a recorder sends it.
pub fn probe(message_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope{NAMESPACES}><env:Header>\
         <wsa:MessageID>{}</wsa:MessageID><wsa:To>{TO_DISCOVERY}</wsa:To>\
         <wsa:Action>{NS_WSD}/Probe</wsa:Action></env:Header><env:Body><wsd:Probe>\
         <wsd:Types>dn:NetworkVideoTransmitter</wsd:Types></wsd:Probe></env:Body></env:Envelope>",
        e(message_id)
    )
}

/// One device that answered a Probe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeMatch {
    /// Endpoint reference address.
    pub endpoint: String,
    /// Scopes it announced.
    pub scopes: Vec<String>,
    /// Device service addresses.
    pub xaddrs: Vec<String>,
}

/// Parses a ProbeMatches datagram (WS-Discovery §5.3) answering the Probe `message_id`;
/// anything else (another kind of message, a reply to someone else's Probe) is `NotProbe`.
pub fn parse_probe_matches(data: &[u8], message_id: &str) -> Result<Vec<ProbeMatch>, ProbeError> {
    let env = envelope::parse(data, &limits())?;
    if !env.operation.is(NS_WSD, "ProbeMatches")
        || header_text(&env, NS_WSA, "RelatesTo") != Some(message_id)
    {
        return Err(ProbeError::NotProbe);
    }
    let mut out: Vec<ProbeMatch> = Vec::new();
    for f in &env.body {
        if f.path.first().is_none_or(|p| !p.is(NS_WSD, "ProbeMatch")) {
            continue;
        }
        let Some(name) = f.name() else { continue };
        let words = || f.text.split_whitespace().map(str::to_owned).collect();
        if name.is(NS_WSA, "Address") {
            // A new ProbeMatch starts with its endpoint reference.
            out.push(ProbeMatch {
                endpoint: f.text.clone(),
                ..ProbeMatch::default()
            });
        } else if let Some(m) = out.last_mut() {
            if name.is(NS_WSD, "Scopes") {
                m.scopes = words();
            } else if name.is(NS_WSD, "XAddrs") {
                m.xaddrs = words();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
