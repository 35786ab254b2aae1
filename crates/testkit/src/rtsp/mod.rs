//! Hand-written RTSP/1.0 clients (RFC 2326) with Digest authentication (RFC 7616), for tests
//! and benchmarks: the parts a well-behaved library client would hide (raw requests, replayed
//! or forged `Authorization` headers, interleaved frames read one by one).
//!
//! - [`digest`]: `WWW-Authenticate` challenges and the `Authorization` answering them;
//! - [`blocking`]: a blocking connection for end-to-end tests that send what no peer would;
//! - [`play`]: an async client that plays one stream over TCP-interleaved RTP, cheap enough
//!   for a hundred at once (the fan-out and latency benchmarks).
//!
//! Both clients read through [`take_item`], so a response is parsed one way everywhere.

pub mod blocking;
pub mod digest;
pub mod play;

use bytes::{Buf, Bytes, BytesMut};

/// Largest response head or body taken; test servers are local, so more is a bug.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// One RTSP response (RFC 2326 §7).
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code, e.g. 401.
    pub status: u16,
    /// Header lines as (name, value), in order, names as received.
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

    /// All values of header `name` (case-insensitive).
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The session id of a `Session:` header, without `;timeout=` (RFC 2326 §12.37).
    pub fn session_id(&self) -> Option<String> {
        self.header("Session")
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
    }

    /// The base URL of a DESCRIBE response's SDP (RFC 2326 §C.1.1): Content-Base, else
    /// Content-Location, else the request URL.
    pub fn content_base<'a>(&'a self, request_url: &'a str) -> &'a str {
        self.header("Content-Base")
            .or(self.header("Content-Location"))
            .unwrap_or(request_url)
    }
}

/// Parses a response head (status line + headers, without the blank line); `None` unless it is
/// `RTSP/1.0 <status> ...` followed by `name: value` lines.
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

/// What came next on a connection.
#[derive(Clone, Debug)]
pub enum Item {
    /// A response.
    Response(Response),
    /// An interleaved frame (RFC 2326 §10.12): channel and payload.
    Frame(u8, Bytes),
}

/// Takes one complete response or interleaved frame off the front of `buf`; `Ok(None)` until
/// `buf` holds a whole one. An error says what is wrong with the bytes (the connection is then
/// of no further use). A frame's payload is split off `buf` without a copy, so a hundred
/// benchmark clients cost little.
pub fn take_item(buf: &mut BytesMut) -> Result<Option<Item>, String> {
    if buf.first() == Some(&b'$') {
        // RFC 2326 §10.12: `$`, channel, 16-bit length, data.
        let Some(&[_, channel, hi, lo]) = buf.get(..4) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if buf.len() < 4 + len {
            return Ok(None);
        }
        buf.advance(4);
        return Ok(Some(Item::Frame(channel, buf.split_to(len).freeze())));
    }
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_MESSAGE {
            return Err(format!("response head longer than {MAX_MESSAGE} bytes"));
        }
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let (status, headers) =
        parse_head(&head).ok_or_else(|| format!("bad response head {head:?}"))?;
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if len > MAX_MESSAGE {
        return Err(format!("response body of {len} bytes"));
    }
    if buf.len() < head_end + 4 + len {
        return Ok(None);
    }
    buf.advance(head_end + 4);
    let body = buf.split_to(len).to_vec();
    Ok(Some(Item::Response(Response {
        status,
        headers,
        body,
        head,
    })))
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The URL to SETUP for the first video media of `sdp` (RFC 2326 §C.1.1: the media-level
/// `a=control`, absolute or relative to `base`; `*` or none means `base` itself).
pub fn video_control_url(sdp: &str, base: &str) -> String {
    let mut in_video = false;
    let mut control = None;
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("m=") {
            if in_video {
                break;
            }
            in_video = m.starts_with("video");
        } else if in_video {
            if let Some(c) = line.strip_prefix("a=control:") {
                control = Some(c);
            }
        }
    }
    match control {
        None | Some("*") => base.to_owned(),
        Some(c) if c.starts_with("rtsp://") || c.starts_with("rtsps://") => c.to_owned(),
        Some(c) => format!("{}/{c}", base.trim_end_matches('/')),
    }
}

/// The SPS/PPS of `sprop-parameter-sets` (RFC 6184 §8.1), for priming a decoder.
pub fn sprop_parameter_sets(sdp: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    sdp.lines()
        .filter_map(|l| l.split_once("sprop-parameter-sets="))
        .flat_map(|(_, v)| v.split(';').next().unwrap_or_default().split(','))
        .filter_map(|p| {
            base64::engine::general_purpose::STANDARD
                .decode(p.trim())
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_responses_split_from_one_buffer() {
        let mut buf = BytesMut::from(
            &b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 3\r\n\r\nabc$\x00\x00\x02hi$\x01"[..],
        );
        match take_item(&mut buf).unwrap() {
            Some(Item::Response(r)) => {
                assert_eq!(r.status, 200);
                assert_eq!(&r.body[..], b"abc");
                assert_eq!(r.header("cseq"), Some("1"));
            }
            other => panic!("expected a response, got {other:?}"),
        }
        match take_item(&mut buf).unwrap() {
            Some(Item::Frame(0, d)) => assert_eq!(&d[..], b"hi"),
            other => panic!("expected a frame, got {other:?}"),
        }
        assert!(take_item(&mut buf).unwrap().is_none()); // incomplete frame header waits
        let mut bad = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\n"[..]);
        assert!(take_item(&mut bad).is_err());
        let mut no_colon = BytesMut::from(&b"RTSP/1.0 200 OK\r\nCSeq 1\r\n\r\n"[..]);
        assert!(take_item(&mut no_colon).is_err());
    }

    #[test]
    fn control_urls_and_sprops() {
        let sdp = "v=0\r\na=control:*\r\nm=audio 0 RTP/AVP 0\r\na=control:a\r\nm=video 0 RTP/AVP 96\r\n\
                   a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0IAHg==,aM4G4g==;profile-level-id=42001e\r\n\
                   a=control:stream=0\r\n";
        assert_eq!(
            video_control_url(sdp, "rtsp://h/main/"),
            "rtsp://h/main/stream=0"
        );
        assert_eq!(
            video_control_url("m=video 0 RTP/AVP 96\r\na=control:rtsp://x/t", "rtsp://h/"),
            "rtsp://x/t"
        );
        assert_eq!(
            video_control_url("m=video 0 RTP/AVP 96\r\n", "rtsp://h/m"),
            "rtsp://h/m"
        );
        let ps = sprop_parameter_sets(sdp);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0][0] & 0x1f, 7);
        assert_eq!(ps[1][0] & 0x1f, 8);
    }
}
