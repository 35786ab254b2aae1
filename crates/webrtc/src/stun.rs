//! The recorder's own server-reflexive address (RFC 8445 §5.1.1.2), sans-IO: a STUN Binding
//! request (RFC 8489 §6) sent from the shared WebRTC socket to the STUN or TURN servers of
//! `[webrtc] ice_servers`, and the parser of their answers.
//!
//! Why the recorder asks at all: behind a NAT its host candidate is a private address that
//! a viewer's TURN relay cannot reach, and a TURN client only lets the relay forward packets
//! from addresses the remote candidates name (RFC 8656 §9, permissions). With its
//! server-reflexive address in the answer, the viewer's relay gets a permission for the
//! recorder's public address, and the recorder's own connectivity checks towards the relay
//! open its NAT for the relay's packets: the picture flows through the relay without a
//! port forward for media.
//!
//! str0m's STUN parser is not used for the answers: it only accepts ICE's authenticated
//! Binding responses (MESSAGE-INTEGRITY is required), and a STUN server's answer to an
//! unauthenticated request carries none.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::ice_servers::IceServer;

/// The magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Binding request, message type 0x0001 (RFC 8489 §5, §18.2).
const BINDING_REQUEST: u16 = 0x0001;
/// Binding success response, 0x0101.
const BINDING_SUCCESS: u16 = 0x0101;
/// Binding error response, 0x0111.
const BINDING_ERROR: u16 = 0x0111;
/// Attributes (RFC 8489 §18.3).
const MAPPED_ADDRESS: u16 = 0x0001;
const ERROR_CODE: u16 = 0x0009;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// The default port of `stun:` and `turn:` URLs (RFC 7064 §3.2, RFC 7065 §3).
pub const DEFAULT_PORT: u16 = 3478;

/// A STUN transaction id (RFC 8489 §5): 96 random bits, so that an off-path host cannot
/// forge the answer.
pub type TransactionId = [u8; 12];

/// Why a datagram is not the answer to our Binding request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StunError {
    /// Shorter than the header, a length that disagrees with the datagram, or no magic
    /// cookie: not STUN (RFC 8489 §5, RFC 7983 §7).
    #[error("not a STUN message")]
    NotStun,
    /// A STUN message of another transaction (another request, or ICE's own checks).
    #[error("a STUN message of another transaction")]
    OtherTransaction,
    /// Neither a Binding success nor a Binding error response.
    #[error("STUN message type {0:#06x} is not a Binding response")]
    NotBindingResponse(u16),
    /// The server refused (RFC 8489 §14.8): code and reason.
    #[error("the STUN server answered error {0}")]
    Refused(u16),
    /// An attribute runs past the message, or an address attribute is malformed.
    #[error("malformed STUN attribute {0:#06x}")]
    Attribute(u16),
    /// A success response without (XOR-)MAPPED-ADDRESS.
    #[error("the STUN answer names no mapped address")]
    NoAddress,
}

/// A Binding request without attributes (RFC 8489 §6: no authentication is needed to learn
/// one's reflexive address).
pub fn binding_request(id: &TransactionId) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Message length 0: no attributes.
    m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m[8..20].copy_from_slice(id);
    m
}

/// Whether `datagram` looks like STUN at all (RFC 7983 §7: first byte 0–3) and carries the
/// magic cookie, so that the edge tries it as an answer before handing it to the sessions.
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= 20 && datagram[0] < 4 && datagram[4..8] == MAGIC_COOKIE.to_be_bytes()
}

/// The mapped address in `datagram` if it is the success response to the request `id`
/// (RFC 8489 §6.3.1). XOR-MAPPED-ADDRESS (§14.2) wins over MAPPED-ADDRESS (§14.1, which only
/// servers of RFC 3489's era send).
pub fn parse_binding_response(
    datagram: &[u8],
    id: &TransactionId,
) -> Result<SocketAddr, StunError> {
    if !is_stun(datagram) {
        return Err(StunError::NotStun);
    }
    let typ = u16::from_be_bytes([datagram[0], datagram[1]]);
    let len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if len % 4 != 0 || 20 + len != datagram.len() {
        return Err(StunError::NotStun);
    }
    if &datagram[8..20] != id {
        return Err(StunError::OtherTransaction);
    }
    if typ != BINDING_SUCCESS && typ != BINDING_ERROR {
        return Err(StunError::NotBindingResponse(typ));
    }
    let mut xor = None;
    let mut plain = None;
    let mut rest = &datagram[20..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(StunError::Attribute(0));
        }
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        // Values are padded to 4 bytes (RFC 8489 §14).
        let padded = n.div_ceil(4) * 4;
        if rest.len() < 4 + padded {
            return Err(StunError::Attribute(kind));
        }
        let value = &rest[4..4 + n];
        match kind {
            XOR_MAPPED_ADDRESS => {
                xor = Some(address(value, Some(id)).ok_or(StunError::Attribute(kind))?)
            }
            MAPPED_ADDRESS => plain = Some(address(value, None).ok_or(StunError::Attribute(kind))?),
            ERROR_CODE if typ == BINDING_ERROR => {
                // §14.8: class (hundreds) in byte 2's low 3 bits, number in byte 3.
                let code = match value {
                    [_, _, class, number, ..] => u16::from(class & 7) * 100 + u16::from(*number),
                    _ => return Err(StunError::Attribute(kind)),
                };
                return Err(StunError::Refused(code));
            }
            // Everything else (SOFTWARE, FINGERPRINT, RESPONSE-ORIGIN …) is not needed.
            _ => {}
        }
        rest = &rest[4 + padded..];
    }
    if typ == BINDING_ERROR {
        return Err(StunError::Refused(0));
    }
    xor.or(plain).ok_or(StunError::NoAddress)
}

/// A (XOR-)MAPPED-ADDRESS value (RFC 8489 §14.1, §14.2): reserved byte, family, port,
/// address; XORed with the magic cookie (and for IPv6 the transaction id) when `xor_id`.
fn address(value: &[u8], xor_id: Option<&TransactionId>) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let (family, port) = match value {
        [_, family, p0, p1, ..] => (*family, u16::from_be_bytes([*p0, *p1])),
        _ => return None,
    };
    let port = if xor_id.is_some() {
        port ^ (MAGIC_COOKIE >> 16) as u16
    } else {
        port
    };
    let ip = match (family, value.len()) {
        (0x01, 8) => {
            let mut a = [0u8; 4];
            a.copy_from_slice(&value[4..8]);
            if xor_id.is_some() {
                for (b, k) in a.iter_mut().zip(cookie) {
                    *b ^= k;
                }
            }
            IpAddr::V4(Ipv4Addr::from(a))
        }
        (0x02, 20) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&value[4..20]);
            if let Some(id) = xor_id {
                let key = cookie.iter().chain(id.iter());
                for (b, k) in a.iter_mut().zip(key) {
                    *b ^= k;
                }
            }
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The UDP STUN servers among `servers`, as `(host, port)`: every `stun:` URL, and every
/// `turn:` URL over UDP (a TURN server answers Binding requests too, RFC 8656 §2).
/// `stuns:`/`turns:` and `?transport=tcp` are skipped: the shared socket is UDP.
pub fn udp_targets(servers: &[IceServer]) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = Vec::new();
    for url in servers.iter().flat_map(|s| s.urls.iter()) {
        let Some(rest) = url
            .strip_prefix("stun:")
            .or_else(|| url.strip_prefix("turn:"))
        else {
            continue;
        };
        let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
        if query
            .split('&')
            .any(|kv| kv.eq_ignore_ascii_case("transport=tcp"))
        {
            continue;
        }
        if let Some(t) = host_port(hostport) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (RFC 7064 §3.1).
fn host_port(s: &str) -> Option<(String, u16)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, DEFAULT_PORT),
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// The fuzz target's body (`fuzz/fuzz_targets/stun_binding.rs`), also run on the checked-in
/// corpus by `cargo test`: the datagram is parsed as the answer to its own transaction id
/// (so that the parser gets past that check), and must not panic.
pub fn fuzz(data: &[u8]) {
    let mut id: TransactionId = [0; 12];
    if let Some(own) = data.get(8..20) {
        id.copy_from_slice(own);
    }
    if let Ok(a) = parse_binding_response(data, &id) {
        // A parsed answer came from a success response with an address attribute.
        assert!(data.len() >= 32, "{a} parsed from {} bytes", data.len());
    }
}

/// A Binding success response naming `mapped` (XOR-MAPPED-ADDRESS, IPv4 only): what a STUN
/// server answers, for the tests of this crate.
#[cfg(test)]
pub(crate) fn binding_success(id: &TransactionId, mapped: std::net::SocketAddrV4) -> Vec<u8> {
    let mut m = binding_request(id).to_vec();
    m[0..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
    m[2..4].copy_from_slice(&12u16.to_be_bytes());
    m.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    m.extend_from_slice(&8u16.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&(mapped.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    m.extend_from_slice(&(u32::from(*mapped.ip()) ^ MAGIC_COOKIE).to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_success_parses_back() {
        let id = [3; 12];
        let a: std::net::SocketAddrV4 = "198.51.100.7:40000".parse().expect("addr");
        assert_eq!(
            parse_binding_response(&binding_success(&id, a), &id),
            Ok(SocketAddr::V4(a))
        );
    }

    /// RFC 5769 §2.2: the sample IPv4 Binding response (its SOFTWARE, XOR-MAPPED-ADDRESS,
    /// MESSAGE-INTEGRITY and FINGERPRINT attributes), mapped address 192.0.2.1:32853.
    const RFC5769_V4: &str = "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96";
    /// RFC 5769 §2.3: the IPv6 one, [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    const RFC5769_V6: &str = "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn id_of(m: &[u8]) -> TransactionId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&m[8..20]);
        id
    }

    #[test]
    fn rfc5769_sample_responses_give_their_mapped_addresses() {
        let v4 = hex(RFC5769_V4);
        assert_eq!(
            parse_binding_response(&v4, &id_of(&v4)),
            Ok("192.0.2.1:32853".parse().expect("addr"))
        );
        let v6 = hex(RFC5769_V6);
        assert_eq!(
            parse_binding_response(&v6, &id_of(&v6)),
            Ok("[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .expect("addr"))
        );
    }

    #[test]
    fn answers_of_other_transactions_and_non_stun_are_refused() {
        let v4 = hex(RFC5769_V4);
        assert_eq!(
            parse_binding_response(&v4, &[0; 12]),
            Err(StunError::OtherTransaction)
        );
        // Truncated: the header's length no longer matches.
        assert_eq!(
            parse_binding_response(&v4[..v4.len() - 4], &id_of(&v4)),
            Err(StunError::NotStun)
        );
        // An RTP packet (first byte 0x80) and DTLS (20–63) are not STUN.
        assert!(!is_stun(&[0x80; 40]));
        assert!(!is_stun(&[22; 40]));
        // Our own request is not a response.
        let id = [7; 12];
        let req = binding_request(&id);
        assert!(is_stun(&req));
        assert_eq!(
            parse_binding_response(&req, &id),
            Err(StunError::NotBindingResponse(BINDING_REQUEST))
        );
    }

    #[test]
    fn error_responses_and_bad_attributes_are_typed() {
        let id = [1; 12];
        let mut m = binding_request(&id).to_vec();
        m[0..2].copy_from_slice(&BINDING_ERROR.to_be_bytes());
        // ERROR-CODE 401 Unauthorized ("x" + padding).
        m.extend_from_slice(&[0x00, 0x09, 0x00, 0x05, 0, 0, 4, 1, b'x', 0, 0, 0]);
        m[2..4].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(
            parse_binding_response(&m, &id),
            Err(StunError::Refused(401))
        );

        let mut m = binding_request(&id).to_vec();
        m[0..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        // An XOR-MAPPED-ADDRESS of length 8 but family 0x02 (IPv6 needs 20 bytes).
        m.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0, 2, 0, 0, 0, 0, 0, 0]);
        m[2..4].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(
            parse_binding_response(&m, &id),
            Err(StunError::Attribute(XOR_MAPPED_ADDRESS))
        );
        // A length running past the end.
        let last = m.len() - 9;
        m[last] = 0x40;
        assert_eq!(
            parse_binding_response(&m, &id),
            Err(StunError::Attribute(XOR_MAPPED_ADDRESS))
        );
        // A success with no address.
        let mut m = binding_request(&id).to_vec();
        m[0..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        assert_eq!(parse_binding_response(&m, &id), Err(StunError::NoAddress));
    }

    #[test]
    fn plain_mapped_address_of_old_servers_is_read() {
        let id = [9; 12];
        let mut m = binding_request(&id).to_vec();
        m[0..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        m.extend_from_slice(&[0x00, 0x01, 0x00, 0x08, 0, 1, 0x1f, 0x90, 198, 18, 0, 9]);
        m[2..4].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(
            parse_binding_response(&m, &id),
            Ok("198.18.0.9:8080".parse().expect("addr"))
        );
    }

    #[test]
    fn udp_targets_come_from_stun_and_udp_turn_urls() {
        let s = IceServer::new(
            vec![
                "stun:stun.example.net".into(),
                "turn:198.19.0.1:3479?transport=udp".into(),
                "turn:198.19.0.1:3479?transport=tcp".into(),
                "turns:turn.example.net:5349".into(),
                "stun:[2001:db8::1]:3480".into(),
                "stun:stun.example.net".into(),
            ],
            None,
            None,
            None,
        )
        .expect("valid");
        assert_eq!(
            udp_targets(&[s]),
            [
                ("stun.example.net".to_owned(), 3478),
                ("198.19.0.1".to_owned(), 3479),
                ("2001:db8::1".to_owned(), 3480),
            ]
        );
    }

    /// Replays the checked-in seeds and regressions of the fuzz target.
    #[test]
    fn replay_fuzz_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut n = 0;
        for sub in ["corpus/stun_binding", "regressions/stun_binding"] {
            let Ok(rd) = std::fs::read_dir(root.join(sub)) else {
                continue;
            };
            for e in rd {
                let p = e.expect("entry").path();
                fuzz(&std::fs::read(&p).expect("seed"));
                n += 1;
            }
        }
        assert!(n >= 5, "expected the seed corpus, found {n} files");
    }

    /// Arbitrary input never panics (the fuzz target's property, on a quick sweep).
    #[test]
    fn mutated_responses_never_panic() {
        let v6 = hex(RFC5769_V6);
        let id = id_of(&v6);
        for i in 0..v6.len() {
            for b in [0u8, 0x01, 0x7f, 0xff] {
                let mut m = v6.clone();
                m[i] = b;
                let _ = parse_binding_response(&m, &id);
                let _ = parse_binding_response(&m[..i], &id);
            }
        }
    }
}
