//! The `Transport` header (RFC 2326 §12.39): what a client asks for in SETUP, and the reply.

/// A transport the server can serve, as requested by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestedTransport {
    /// `RTP/AVP/TCP;unicast;interleaved=a-b`: RTP and RTCP on the RTSP connection.
    /// `None` when the client let the server choose the channels.
    Tcp {
        /// RTP and RTCP channel numbers.
        interleaved: Option<(u8, u8)>,
    },
    /// `RTP/AVP[/UDP];unicast;client_port=a-b`: RTP and RTCP over UDP to the client.
    Udp {
        /// Client RTP port.
        rtp_port: u16,
        /// Client RTCP port.
        rtcp_port: u16,
    },
}

/// Why no transport in the header can be served: answered with 461 Unsupported Transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Header missing.
    #[error("no Transport header")]
    Missing,
    /// Every listed transport is multicast, not RTP/AVP, for RECORD, or malformed.
    #[error("no supported transport offered")]
    Unsupported,
}

/// Picks the first transport spec in `header` this server supports (RFC 2326 §12.39: the
/// client lists them in order of preference, comma-separated).
///
/// A `destination` parameter is ignored on purpose: media only ever goes to the address
/// the RTSP request came from, so the server cannot be used to flood a third party.
pub fn choose(header: Option<&str>) -> Result<RequestedTransport, TransportError> {
    let header = header.ok_or(TransportError::Missing)?;
    header
        .split(',')
        .find_map(|spec| parse_spec(spec.trim()))
        .ok_or(TransportError::Unsupported)
}

/// How RTP travels under a transport spec: RFC 2326 §12.39
/// `transport-protocol/profile[/lower-transport]`, of which we serve `RTP/AVP` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowerTransport {
    /// `RTP/AVP` or `RTP/AVP/UDP` (UDP is the default lower transport).
    Udp,
    /// `RTP/AVP/TCP`: interleaved on the RTSP connection.
    Tcp,
}

impl LowerTransport {
    /// Parses the first field of a transport spec (case-insensitively); `None` for
    /// anything we do not serve (`RTP/SAVP`, `RAW/RAW/UDP`, ...).
    pub fn from_protocol(protocol: &str) -> Option<Self> {
        let mut parts = protocol.split('/');
        let (Some(proto), Some(profile), lower, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if !proto.eq_ignore_ascii_case("RTP") || !profile.eq_ignore_ascii_case("AVP") {
            return None;
        }
        match lower {
            None => Some(LowerTransport::Udp),
            Some(l) if l.eq_ignore_ascii_case("UDP") => Some(LowerTransport::Udp),
            Some(l) if l.eq_ignore_ascii_case("TCP") => Some(LowerTransport::Tcp),
            Some(_) => None,
        }
    }
}

fn parse_spec(spec: &str) -> Option<RequestedTransport> {
    let mut params = spec.split(';').map(str::trim);
    let lower = LowerTransport::from_protocol(params.next()?)?;
    let mut interleaved = None;
    let mut client_port = None;
    for p in params {
        let (name, value) = p
            .split_once('=')
            .map_or((p, None), |(n, v)| (n.trim(), Some(v.trim())));
        match (name.to_ascii_lowercase().as_str(), value) {
            ("multicast", _) => return None,
            ("interleaved", Some(v)) => interleaved = Some(range::<u8>(v)?),
            ("client_port", Some(v)) => client_port = Some(range::<u16>(v)?),
            // Only PLAY is served; RECORD (a client pushing media) is not.
            ("mode", Some(v)) if !v.trim_matches('"').eq_ignore_ascii_case("PLAY") => return None,
            // ssrc, ttl, layers, destination, source, append…: not needed to serve PLAY.
            _ => {}
        }
    }
    // RFC 2326 §12.39: multicast is the default, but every client in practice says unicast;
    // a spec without either is served as unicast (as live555 does) rather than refused.
    if lower == LowerTransport::Tcp {
        return Some(RequestedTransport::Tcp { interleaved });
    }
    let (rtp_port, rtcp_port) = client_port?;
    if rtp_port == 0 {
        return None;
    }
    Some(RequestedTransport::Udp {
        rtp_port,
        rtcp_port,
    })
}

/// `a-b` or `a` (then `b = a + 1`).
fn range<T: std::str::FromStr + Copy + TryFrom<u32> + Into<u32>>(v: &str) -> Option<(T, T)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = v.parse().ok()?;
            let b = T::try_from(a.into() + 1).ok()?;
            Some((a, b))
        }
    }
}

/// The Transport header of a SETUP reply for TCP interleaving.
pub fn reply_tcp(channels: (u8, u8), ssrc: u32) -> String {
    format!(
        "RTP/AVP/TCP;unicast;interleaved={}-{};ssrc={ssrc:08X};mode=\"PLAY\"",
        channels.0, channels.1
    )
}

/// The Transport header of a SETUP reply for UDP.
pub fn reply_udp(client: (u16, u16), server: (u16, u16), ssrc: u32) -> String {
    format!(
        "RTP/AVP;unicast;client_port={}-{};server_port={}-{};ssrc={ssrc:08X};mode=\"PLAY\"",
        client.0, client.1, server.0, server.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffmpeg_tcp_and_udp() {
        assert_eq!(
            choose(Some("RTP/AVP/TCP;unicast;interleaved=0-1")),
            Ok(RequestedTransport::Tcp {
                interleaved: Some((0, 1))
            })
        );
        assert_eq!(
            choose(Some("RTP/AVP/UDP;unicast;client_port=17822-17823")),
            Ok(RequestedTransport::Udp {
                rtp_port: 17822,
                rtcp_port: 17823
            })
        );
    }

    #[test]
    fn gstreamer_and_vlc_forms() {
        // GStreamer offers several, in preference order; the first supported one wins.
        assert_eq!(
            choose(Some(
                "RTP/AVP;multicast;port=5000-5001, RTP/AVP;unicast;client_port=50002-50003;mode=\"PLAY\""
            )),
            Ok(RequestedTransport::Udp { rtp_port: 50002, rtcp_port: 50003 })
        );
        assert_eq!(
            choose(Some("RTP/AVP/TCP;unicast;interleaved=2")),
            Ok(RequestedTransport::Tcp {
                interleaved: Some((2, 3))
            })
        );
        assert_eq!(
            choose(Some("RTP/AVP/TCP;unicast")),
            Ok(RequestedTransport::Tcp { interleaved: None })
        );
    }

    #[test]
    fn unsupported_transports_are_refused() {
        for h in [
            "RTP/AVP;multicast;destination=224.2.0.1;port=3456-3457",
            "RTP/SAVP;unicast;client_port=1-2",
            "RTP/AVP;unicast",
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=RECORD",
            "RTP/AVP/TCP;unicast;interleaved=300-301",
            "RTP/AVP;unicast;client_port=70000-70001",
            "",
        ] {
            assert_eq!(choose(Some(h)), Err(TransportError::Unsupported), "{h}");
        }
        assert_eq!(choose(None), Err(TransportError::Missing));
    }

    #[test]
    fn lower_transports() {
        use LowerTransport::{Tcp, Udp};
        for (p, want) in [
            ("RTP/AVP", Some(Udp)),
            ("rtp/avp/udp", Some(Udp)),
            ("RTP/AVP/TCP", Some(Tcp)),
            ("RTP/SAVP", None),
            ("RTP/AVP/SCTP", None),
            ("RTP/AVP/TCP/X", None),
            ("RTP", None),
            ("", None),
        ] {
            assert_eq!(LowerTransport::from_protocol(p), want, "{p}");
        }
    }

    #[test]
    fn replies() {
        assert_eq!(
            reply_tcp((0, 1), 0xdead_beef),
            "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=DEADBEEF;mode=\"PLAY\""
        );
        assert_eq!(
            reply_udp((5000, 5001), (6970, 6971), 1),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=00000001;mode=\"PLAY\""
        );
    }
}
