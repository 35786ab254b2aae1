//! A minimal RTSP/1.0 client (RFC 2326) over a blocking `TcpStream`, with Digest
//! authentication (RFC 7616), for the requests no well-behaved peer would send.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest as _, Sha256};

use super::{PASSWORD, USER};

/// One RTSP response (RFC 2326 §7).
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code, e.g. 401.
    pub status: u16,
    /// Header lines as (name, value), in order.
    pub headers: Vec<(String, String)>,
    /// Message body (Content-Length bytes).
    pub body: Vec<u8>,
    /// The status line and headers as received, for failure messages.
    pub head: String,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of header `name`.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The session id of a `Session:` header, without `;timeout=`.
    pub fn session_id(&self) -> Option<String> {
        self.header("Session")
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
    }
}

/// Parses a response head (status line + headers, without the blank line).
pub fn parse_head(head: &str) -> Option<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    if version != "RTSP/1.0" {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line.split_once(':')?;
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    Some((status, headers))
}

/// A Digest challenge from `WWW-Authenticate` (RFC 7616 §3.3).
#[derive(Clone, Debug)]
pub struct Challenge {
    /// `MD5` or `SHA-256` (as given; `MD5` if absent).
    pub algorithm: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back if present.
    pub opaque: Option<String>,
    /// Whether `qop` offers `auth`.
    pub qop_auth: bool,
}

/// Splits `a=b, c="d, e"` into pairs, honouring quoted strings (RFC 7235 §2.1 auth-param).
fn auth_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = r.char_indices();
            let mut end = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, c2)) = chars.next() {
                            v.push(c2);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            rest = r[end.min(r.len())..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            rest = &rest[end..];
        }
        rest = rest.trim_start_matches(',').trim_start();
        out.insert(name, value);
    }
    out
}

/// Every Digest challenge of a 401 response.
pub fn digest_challenges(resp: &Response) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in resp.headers_all("WWW-Authenticate") {
        // A header may hold several challenges; split at each scheme token.
        for part in value.split("Digest ").skip(1) {
            let p = auth_params(part);
            let (Some(realm), Some(nonce)) = (p.get("realm"), p.get("nonce")) else {
                continue;
            };
            out.push(Challenge {
                algorithm: p.get("algorithm").cloned().unwrap_or_else(|| "MD5".into()),
                realm: realm.clone(),
                nonce: nonce.clone(),
                opaque: p.get("opaque").cloned(),
                qop_auth: p
                    .get("qop")
                    .is_some_and(|q| q.split(',').any(|x| x.trim() == "auth")),
            });
        }
    }
    out
}

fn hash_hex(algorithm: &str, data: &str) -> String {
    if algorithm.eq_ignore_ascii_case("SHA-256") {
        hex::encode(Sha256::digest(data.as_bytes()))
    } else {
        hex::encode(Md5::digest(data.as_bytes()))
    }
}

/// The `Authorization: Digest ...` value answering `ch` (RFC 7616 §3.4.1).
pub fn digest_authorization(
    ch: &Challenge,
    user: &str,
    pass: &str,
    method: &str,
    uri: &str,
) -> String {
    let alg = ch.algorithm.as_str();
    let ha1 = hash_hex(alg, &format!("{user}:{}:{pass}", ch.realm));
    let ha2 = hash_hex(alg, &format!("{method}:{uri}"));
    let mut v = format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={alg}",
        ch.realm, ch.nonce
    );
    if ch.qop_auth {
        let cnonce = "0a4f113b9e2c";
        let nc = "00000001";
        let resp = hash_hex(alg, &format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", ch.nonce));
        v.push_str(&format!(
            ", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{resp}\""
        ));
    } else {
        let resp = hash_hex(alg, &format!("{ha1}:{}:{ha2}", ch.nonce));
        v.push_str(&format!(", response=\"{resp}\""));
    }
    if let Some(o) = &ch.opaque {
        v.push_str(&format!(", opaque=\"{o}\""));
    }
    v
}

/// A blocking RTSP connection that reads responses and skips interleaved `$` frames.
pub struct RtspConn {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
}

impl RtspConn {
    /// Connects with a 10 s read timeout.
    pub fn connect(addr: SocketAddr) -> RtspConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RtspConn::from_stream(stream)
    }

    /// Wraps an already connected socket.
    pub fn from_stream(stream: TcpStream) -> RtspConn {
        RtspConn {
            stream,
            buf: Vec::new(),
            cseq: 0,
        }
    }

    /// Sends `METHOD url RTSP/1.0` with CSeq and `headers`, returns the response.
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, String)]) -> Response {
        self.try_request(method, url, headers)
            .unwrap_or_else(|e| panic!("{method} {url}: no response: {e}"))
    }

    /// Like [`RtspConn::request`] but returns I/O errors.
    pub fn try_request(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
    ) -> io::Result<Response> {
        self.cseq += 1;
        let mut req = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("User-Agent: vigil-e2e\r\n\r\n");
        self.stream.write_all(req.as_bytes())?;
        self.read_response()
    }

    /// Sends a request and, on 401, answers the challenge of algorithm `alg` (or the first one)
    /// with `user`/`pass`.
    pub fn request_digest(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        user: &str,
        pass: &str,
        alg: Option<&str>,
    ) -> Response {
        let first = self.request(method, url, headers);
        if first.status != 401 {
            return first;
        }
        let challenges = digest_challenges(&first);
        let ch = match alg {
            Some(a) => challenges
                .iter()
                .find(|c| c.algorithm.eq_ignore_ascii_case(a))
                .unwrap_or_else(|| panic!("no {a} challenge in:\n{}", first.head)),
            None => challenges
                .first()
                .unwrap_or_else(|| panic!("no Digest challenge in:\n{}", first.head)),
        };
        let mut h = headers.to_vec();
        h.push((
            "Authorization",
            digest_authorization(ch, user, pass, method, url),
        ));
        self.request(method, url, &h)
    }

    /// Reads the next interleaved frame (RFC 2326 §10.12): (channel, payload). Fails on a
    /// response or anything else that is not `$`.
    pub fn read_interleaved(&mut self) -> io::Result<(u8, Vec<u8>)> {
        loop {
            if let Some(&first) = self.buf.first() {
                if first != b'$' {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "expected interleaved data, got {:?}",
                            String::from_utf8_lossy(&self.buf[..self.buf.len().min(100)])
                        ),
                    ));
                }
                if self.buf.len() >= 4 {
                    let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                    if self.buf.len() >= 4 + len {
                        let channel = self.buf[1];
                        let payload = self.buf[4..4 + len].to_vec();
                        self.buf.drain(..4 + len);
                        return Ok((channel, payload));
                    }
                }
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response, skipping interleaved binary data (RFC 2326 §10.12).
    pub fn read_response(&mut self) -> io::Result<Response> {
        loop {
            if self.buf.first() == Some(&b'$') {
                if self.buf.len() >= 4 {
                    let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                    if self.buf.len() >= 4 + len {
                        self.buf.drain(..4 + len);
                        continue;
                    }
                }
            } else if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                let (status, headers) = parse_head(&head).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad response head {head:?}"),
                    )
                })?;
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= pos + 4 + len {
                    let body = self.buf[pos + 4..pos + 4 + len].to_vec();
                    self.buf.drain(..pos + 4 + len);
                    return Ok(Response {
                        status,
                        headers,
                        body,
                        head,
                    });
                }
            }
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed; unparsed bytes: {:?}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
                    ),
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The URL to SETUP for the first video media of an SDP (RFC 2326 §C.1.1: media-level
/// `a=control`, relative to Content-Base or the request URL).
pub fn video_control_url(describe: &Response, request_url: &str) -> String {
    let sdp = String::from_utf8_lossy(&describe.body);
    let base = describe
        .header("Content-Base")
        .or(describe.header("Content-Location"))
        .unwrap_or(request_url)
        .to_owned();
    let mut in_video = false;
    for line in sdp.lines() {
        let line = line.trim();
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
        } else if in_video {
            if let Some(c) = line.strip_prefix("a=control:") {
                if c.starts_with("rtsp://") || c.starts_with("rtsps://") {
                    return c.to_owned();
                }
                if c == "*" {
                    return base;
                }
                return if base.ends_with('/') {
                    format!("{base}{c}")
                } else {
                    format!("{base}/{c}")
                };
            }
        }
    }
    base
}

/// A playing session over TCP interleaved: DESCRIBE, SETUP, PLAY with valid credentials.
/// Returns the connection (now receiving `$` frames) and the session id.
pub fn play_interleaved(conn: &mut RtspConn, url: &str) -> String {
    let d = conn.request_digest(
        "DESCRIBE",
        url,
        &[("Accept", "application/sdp".into())],
        USER,
        PASSWORD,
        None,
    );
    assert_eq!(d.status, 200, "DESCRIBE:\n{}", d.head);
    let control = video_control_url(&d, url);
    let s = conn.request_digest(
        "SETUP",
        &control,
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1".into())],
        USER,
        PASSWORD,
        None,
    );
    assert_eq!(s.status, 200, "SETUP {control}:\n{}", s.head);
    let session = s.session_id().expect("Session header");
    let p = conn.request_digest(
        "PLAY",
        url,
        &[("Session", session.clone()), ("Range", "npt=0.000-".into())],
        USER,
        PASSWORD,
        None,
    );
    assert_eq!(p.status, 200, "PLAY:\n{}", p.head);
    session
}
