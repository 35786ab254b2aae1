//! The network edge of the recorder's ONVIF client: a WS-Discovery Probe over UDP and SOAP
//! POSTs over HTTP/1.1. The protocol (requests, answer parsing, faults) is the sans-IO
//! [`vigil_onvif::client`]; this file only moves bytes, with a timeout on every exchange, a
//! cap on every body, and no redirects (a SOAP answer is read where it was asked, so a
//! camera cannot bounce the recorder's signed request elsewhere).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rand::RngCore as _;
use tokio::net::{TcpStream, UdpSocket};
use vigil_onvif::client::{self, Call, ClientError, Login};
use vigil_onvif::discovery;

/// Largest SOAP answer read (the parser's own limit is the same).
const MAX_ANSWER: usize = 1024 * 1024;

/// Why talking to a device failed.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The XAddr is not an `http://host[:port]/path` URL.
    #[error("not an http:// device address: {0}")]
    BadXaddr(String),
    /// Connecting or the HTTP exchange failed.
    #[error("cannot reach the device: {0}")]
    Io(String),
    /// No answer in time.
    #[error("the device did not answer within {0} s")]
    Timeout(u64),
    /// The device answered, but not usably (including NotAuthorized).
    #[error(transparent)]
    Onvif(#[from] ClientError),
}

/// A fresh `urn:uuid:` (RFC 4122 §4.4 random UUID).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Sends one WS-Discovery Probe for `dn:NetworkVideoTransmitter` to `to` (or the multicast
/// group 239.255.255.250:3702 with TTL 1, this link only) and collects the distinct answers
/// (by endpoint) until `wait` has passed. Returns each match with the address it came from.
pub async fn probe(
    to: Option<SocketAddr>,
    wait: Duration,
) -> std::io::Result<Vec<(discovery::ProbeMatch, SocketAddr)>> {
    let dest = to.unwrap_or(SocketAddr::V4(SocketAddrV4::new(
        discovery::MULTICAST_V4,
        discovery::PORT,
    )));
    // A loopback destination needs a loopback source; anything else the kernel's choice.
    let bind_ip = if dest.ip().is_loopback() {
        dest.ip()
    } else if dest.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    let socket = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
    if dest.ip().is_multicast() {
        socket.set_multicast_ttl_v4(1)?;
    }
    let id = random_uuid();
    socket
        .send_to(discovery::probe(&id).as_bytes(), dest)
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut found: Vec<(discovery::ProbeMatch, SocketAddr)> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // Bounded: a flood of answers cannot grow the list without end.
    while found.len() < 256 {
        let Ok(r) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await else {
            break;
        };
        let (n, peer) = match r {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "WS-Discovery receive failed");
                continue;
            }
        };
        match discovery::parse_probe_matches(&buf[..n], &id) {
            Ok(matches) => {
                for m in matches {
                    if !found.iter().any(|(f, _)| f.endpoint == m.endpoint) {
                        found.push((m, peer));
                    }
                }
            }
            Err(e) => tracing::debug!(%peer, error = %e, "not an answer to our Probe"),
        }
    }
    Ok(found)
}

/// POSTs one ONVIF call to `xaddr` and returns the answer's status and body (at most
/// [`MAX_ANSWER`] bytes), all within `timeout`.
async fn post(
    xaddr: &str,
    call: &Call,
    login: &Login,
    timeout: Duration,
) -> Result<(u16, Bytes), EdgeError> {
    let uri: hyper::Uri = xaddr
        .parse()
        .map_err(|_| EdgeError::BadXaddr(xaddr.chars().take(200).collect()))?;
    if uri.scheme_str() != Some("http") {
        return Err(EdgeError::BadXaddr(xaddr.chars().take(200).collect()));
    }
    let host = uri
        .host()
        .ok_or_else(|| EdgeError::BadXaddr(xaddr.chars().take(200).collect()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut nonce = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut nonce);
    let body = client::request(call, Some(login), &nonce, time::OffsetDateTime::now_utc());
    let exchange = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| EdgeError::Io(format!("connect {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp))
                .await
                .map_err(|e| EdgeError::Io(format!("HTTP: {e}")))?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::post(path.as_str())
            .header(hyper::header::HOST, authority.as_str())
            // SOAP 1.2 Part 2 §7.1.4: the media type, with the action as a parameter.
            .header(
                hyper::header::CONTENT_TYPE,
                "application/soap+xml; charset=utf-8",
            )
            .header(
                hyper::header::USER_AGENT,
                concat!("vigil/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| EdgeError::Io(format!("request: {e}")))?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| EdgeError::Io(format!("HTTP: {e}")))?;
            // A 3xx is just a status here: never followed.
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| EdgeError::Io(format!("answer body: {e}")))?
                .to_bytes();
            Ok((status, body))
        }
        .await;
        conn.abort();
        result
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(EdgeError::Timeout(timeout.as_secs())),
    }
}

/// What a device told about itself and its streams.
#[derive(Debug, Clone)]
pub struct DeviceReport {
    /// GetDeviceInformation.
    pub info: client::DeviceInformation,
    /// The media service XAddr.
    pub media_xaddr: String,
    /// The profiles, in the device's order.
    pub profiles: Vec<client::ProfileInfo>,
    /// (profile token, RTSP URI) of the main stream (the largest resolution).
    pub main: Option<(String, String)>,
    /// (profile token, RTSP URI) of the sub stream (the next largest).
    pub sub: Option<(String, String)>,
}

/// Reads a device's identity, profiles and main and sub stream URIs (the loop in
/// [`vigil_onvif::client`]), each exchange bounded by `timeout`.
pub async fn read_device(
    xaddr: &str,
    login: &Login,
    timeout: Duration,
) -> Result<DeviceReport, EdgeError> {
    let (s, b) = post(xaddr, &Call::GetDeviceInformation, login, timeout).await?;
    let info = client::parse_device_information(s, &b)?;
    // Some devices answer media calls on the device XAddr too, but the spec's way is the
    // XAddr GetCapabilities reports; fall back to the device XAddr if it reports none.
    let media_xaddr = match post(xaddr, &Call::GetMediaCapabilities, login, timeout).await {
        Ok((s, b)) => match client::parse_media_xaddr(s, &b) {
            Ok(x) => x,
            Err(ClientError::NotAuthorized) => return Err(ClientError::NotAuthorized.into()),
            Err(_) => xaddr.to_owned(),
        },
        Err(e) => return Err(e),
    };
    let (s, b) = post(&media_xaddr, &Call::GetProfiles, login, timeout).await?;
    let profiles = client::parse_profiles(s, &b)?;
    let (main, sub) = client::main_and_sub(&profiles);
    let mut uris = Vec::new();
    for p in [main, sub].into_iter().flatten() {
        let call = Call::GetStreamUri(p.token.clone());
        let (s, b) = post(&media_xaddr, &call, login, timeout).await?;
        uris.push((p.token.clone(), client::parse_stream_uri(s, &b)?));
    }
    let mut uris = uris.into_iter();
    Ok(DeviceReport {
        info,
        media_xaddr,
        main: uris.next(),
        sub: uris.next(),
        profiles,
    })
}
