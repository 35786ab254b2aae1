//! Sans-IO RTSP 1.0 message parsing and serialization.
//!
//! [`parse`] looks at the bytes a connection has buffered so far and returns the first
//! complete item: a request (RFC 2326 §6), an interleaved binary frame (RFC 2326 §10.12),
//! or [`Parsed::NeedMore`]. It keeps no state, so the caller only keeps a byte buffer and
//! drops the `consumed` prefix after each item.
//!
//! Limits are checked by the byte position at which a violation becomes visible, so the
//! outcome never depends on how the input was split into reads: a prefix that already
//! shows a violation reports the same error the whole input would.

use std::fmt::Write as _;
use std::ops::Range;

/// Size limits applied while parsing, to keep hostile peers from growing memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line or header line in bytes (without its LF).
    pub max_line: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Longest head (request line, headers and the blank line) in bytes.
    pub max_head: usize,
    /// Largest body (Content-Length) in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 4096,
            max_headers: 64,
            max_head: 8192,
            max_body: 64 * 1024,
        }
    }
}

/// Why a request could not be parsed. The connection answers with [`ParseError::status`]
/// and closes, since the stream can no longer be framed reliably.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The request line is longer than [`Limits::max_line`].
    #[error("request line too long")]
    RequestLineTooLong,
    /// A header line is longer than [`Limits::max_line`].
    #[error("header line too long")]
    HeaderLineTooLong,
    /// More header fields than [`Limits::max_headers`].
    #[error("too many header fields")]
    TooManyHeaders,
    /// The head is longer than [`Limits::max_head`].
    #[error("request head too large")]
    HeadTooLarge,
    /// Content-Length is larger than [`Limits::max_body`].
    #[error("request body too large")]
    BodyTooLarge,
    /// The protocol version is not RTSP/1.0.
    #[error("unsupported RTSP version")]
    BadVersion,
    /// The request does not follow the grammar.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

impl ParseError {
    /// The RTSP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::RequestLineTooLong => 414,
            ParseError::HeaderLineTooLong
            | ParseError::TooManyHeaders
            | ParseError::HeadTooLarge => 431,
            ParseError::BodyTooLarge => 413,
            ParseError::BadVersion => 505,
            ParseError::Malformed(_) => 400,
        }
    }
}

/// Header fields in arrival order; names compare case-insensitively (RFC 2326 §4.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// The first value of header `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends a header field.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// All fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An RTSP method (RFC 2326 §6.1, §10). Tokens are case-sensitive: `play` is
/// [`Method::Other`], not [`Method::Play`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `OPTIONS` (§10.1).
    Options,
    /// `DESCRIBE` (§10.2).
    Describe,
    /// `ANNOUNCE` (§10.3).
    Announce,
    /// `SETUP` (§10.4).
    Setup,
    /// `PLAY` (§10.5).
    Play,
    /// `PAUSE` (§10.6).
    Pause,
    /// `TEARDOWN` (§10.7).
    Teardown,
    /// `GET_PARAMETER` (§10.8).
    GetParameter,
    /// `SET_PARAMETER` (§10.9).
    SetParameter,
    /// `REDIRECT` (§10.10).
    Redirect,
    /// `RECORD` (§10.11).
    Record,
    /// Any other token (an extension method), as sent.
    Other(String),
}

impl Method {
    /// The method token as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Announce => "ANNOUNCE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Redirect => "REDIRECT",
            Method::Record => "RECORD",
            Method::Other(token) => token,
        }
    }
}

impl From<&str> for Method {
    fn from(token: &str) -> Self {
        match token {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "ANNOUNCE" => Method::Announce,
            "SETUP" => Method::Setup,
            "PLAY" => Method::Play,
            "PAUSE" => Method::Pause,
            "TEARDOWN" => Method::Teardown,
            "GET_PARAMETER" => Method::GetParameter,
            "SET_PARAMETER" => Method::SetParameter,
            "REDIRECT" => Method::Redirect,
            "RECORD" => Method::Record,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A parsed RTSP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method (case-sensitive, RFC 2326 §6.1).
    pub method: Method,
    /// Request-URI as sent: `*`, an absolute `rtsp://` URI or a path.
    pub uri: String,
    /// Header fields.
    pub headers: Headers,
    /// Body, `Content-Length` bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// The CSeq header, which every response must echo (RFC 2326 §12.17).
    pub fn cseq(&self) -> Option<&str> {
        self.headers.get("CSeq")
    }

    /// Serializes the request as it would go on the wire (used by tests and the fuzzer).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.as_bytes());
        out.extend_from_slice(b" RTSP/1.0\r\n");
        for (n, v) in self.headers.iter() {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// What [`parse`] found at the start of the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete request, and how many bytes it took (including any blank lines before it).
    Request(Request, usize),
    /// An interleaved frame `$ channel len16 data` (RFC 2326 §10.12). `payload` indexes the
    /// buffer; the frame ends at `payload.end`, which is the number of bytes consumed.
    Interleaved {
        /// Channel number from the frame header.
        channel: u8,
        /// Where the frame's data lies in the buffer.
        payload: Range<usize>,
    },
    /// The buffer holds no complete item yet.
    NeedMore,
}

/// First byte of an interleaved frame (RFC 2326 §10.12, RFC 7826 §14).
pub const INTERLEAVED_MAGIC: u8 = b'$';
/// Length of an interleaved frame's header: `$`, channel, 16-bit length.
pub const INTERLEAVED_HEADER_LEN: usize = 4;

/// Error of [`interleaved_header`]: the data does not fit the 16-bit length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interleaved frame data of {0} bytes exceeds 65535")]
pub struct FrameTooLong(pub usize);

/// The header of an interleaved frame carrying `len` bytes on `channel`.
///
/// RFC 2326 §10.12 (RFC 7826 §14): `$`, a one-byte channel, a two-byte big-endian length,
/// then the data (one whole RTP or RTCP packet). This, [`write_interleaved`] and
/// [`decode_interleaved`] are the only places that know the layout; the server, the bench
/// client and tests all frame through them.
pub fn interleaved_header(
    channel: u8,
    len: usize,
) -> Result<[u8; INTERLEAVED_HEADER_LEN], FrameTooLong> {
    let n = u16::try_from(len).map_err(|_| FrameTooLong(len))?;
    let [hi, lo] = n.to_be_bytes();
    Ok([INTERLEAVED_MAGIC, channel, hi, lo])
}

/// Appends `data` to `out` as one interleaved frame on `channel` (see [`interleaved_header`]).
/// On error nothing is written.
pub fn write_interleaved(out: &mut Vec<u8>, channel: u8, data: &[u8]) -> Result<(), FrameTooLong> {
    out.extend_from_slice(&interleaved_header(channel, data.len())?);
    out.extend_from_slice(data);
    Ok(())
}

/// Decodes the interleaved frame at the start of `buf`: its channel and where its data lies
/// in `buf` (the frame ends at the range's end). `None` when `buf` does not start with `$`
/// or the frame is not complete yet.
pub fn decode_interleaved(buf: &[u8]) -> Option<(u8, Range<usize>)> {
    // RFC 2326 §10.12: '$', one-byte channel, two-byte big-endian length, data.
    let (&[magic, channel, hi, lo], _) = buf.split_first_chunk::<INTERLEAVED_HEADER_LEN>()?;
    if magic != INTERLEAVED_MAGIC {
        return None;
    }
    let end = INTERLEAVED_HEADER_LEN + usize::from(u16::from_be_bytes([hi, lo]));
    (buf.len() >= end).then_some((channel, INTERLEAVED_HEADER_LEN..end))
}

/// Parses the first item in `buf`. Never panics, whatever the bytes.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    // RFC 7826 §20.2.2 / RFC 2616 §4.1: ignore empty lines before a message. They count
    // towards the head limit so an endless stream of CRLFs cannot pin the buffer.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let head_trigger = limits.max_head; // first byte index that shows a too-large head
    if start > head_trigger {
        return Err(ParseError::HeadTooLarge);
    }
    let rest = &buf[start..];
    if rest.is_empty() {
        return Ok(Parsed::NeedMore);
    }
    if rest[0] == INTERLEAVED_MAGIC {
        return Ok(match decode_interleaved(rest) {
            Some((channel, payload)) => Parsed::Interleaved {
                channel,
                payload: start + payload.start..start + payload.end,
            },
            None => Parsed::NeedMore,
        });
    }
    parse_request(buf, start, limits)
}

/// A violation and the buffer index at which it becomes visible.
type Violation = (usize, ParseError);

fn earliest(a: Option<Violation>, b: Option<Violation>) -> Option<Violation> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn parse_request(buf: &[u8], start: usize, limits: &Limits) -> Result<Parsed, ParseError> {
    let head_trigger = limits.max_head;
    let head_violation = |scanned_to: usize| {
        (scanned_to > head_trigger).then_some((head_trigger, ParseError::HeadTooLarge))
    };
    let mut pos = start;
    let mut request_line: Option<(String, String)> = None;
    let mut headers = Headers::new();
    loop {
        let line_err = if request_line.is_none() {
            ParseError::RequestLineTooLong
        } else {
            ParseError::HeaderLineTooLong
        };
        let Some(lf) = buf[pos..].iter().position(|&b| b == b'\n').map(|i| pos + i) else {
            // Incomplete line: only size limits can be judged yet.
            let line_v =
                (buf.len() - pos > limits.max_line).then_some((pos + limits.max_line, line_err));
            return match earliest(head_violation(buf.len()), line_v) {
                Some((_, e)) => Err(e),
                None => Ok(Parsed::NeedMore),
            };
        };
        let raw = &buf[pos..lf];
        let line_v = (raw.len() > limits.max_line).then_some((pos + limits.max_line, line_err));
        let limit_v = earliest(head_violation(lf + 1), line_v);
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            if let Some((_, e)) = limit_v {
                return Err(e);
            }
            if request_line.is_none() {
                // Unreachable: leading blank lines were skipped. Kept total for safety.
                return Err(ParseError::Malformed("empty request line"));
            }
            return finish(buf, lf + 1, request_line, headers, limits);
        }
        // Grammar and count checks need the whole line: they become visible at its LF.
        let checked = if request_line.is_none() {
            parse_request_line(line).map(|rl| request_line = Some(rl))
        } else {
            add_header_line(&mut headers, line, limits)
        };
        if let Some((_, e)) = earliest(limit_v, checked.err().map(|e| (lf, e))) {
            return Err(e);
        }
        pos = lf + 1;
    }
}

fn finish(
    buf: &[u8],
    body_start: usize,
    request_line: Option<(String, String)>,
    headers: Headers,
    limits: &Limits,
) -> Result<Parsed, ParseError> {
    let Some((method, uri)) = request_line else {
        return Err(ParseError::Malformed("missing request line"));
    };
    let mut content_length: Option<usize> = None;
    for (n, v) in headers.iter() {
        // RFC 7826 §18.20: cseq-nr = 1*9DIGIT. A malformed one gets 400, not an echo.
        if n.eq_ignore_ascii_case("CSeq")
            && (v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ParseError::Malformed("bad CSeq"));
        }
        if n.eq_ignore_ascii_case("Content-Length") {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::Malformed("bad Content-Length"));
            }
            // Anything longer than the limit's digits is too large, without overflow.
            let len = v.parse::<usize>().unwrap_or(usize::MAX);
            if content_length.is_some_and(|c| c != len) {
                return Err(ParseError::Malformed("conflicting Content-Length"));
            }
            content_length = Some(len);
        }
    }
    let len = content_length.unwrap_or(0);
    if len > limits.max_body {
        return Err(ParseError::BodyTooLarge);
    }
    let Some(body) = buf.get(body_start..body_start + len) else {
        return Ok(Parsed::NeedMore);
    };
    Ok(Parsed::Request(
        Request {
            method: Method::from(method.as_str()),
            uri,
            headers,
            body: body.to_vec(),
        },
        body_start + len,
    ))
}

/// RFC 2326 §15.1 token characters (as RFC 2616 `tchar`).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 2326 §6.1: `Method SP Request-URI SP RTSP-Version`.
fn parse_request_line(line: &[u8]) -> Result<(String, String), ParseError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed("request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(ParseError::Malformed("method"));
    }
    if uri.is_empty() || !uri.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(ParseError::Malformed("request URI"));
    }
    if !version.starts_with(b"RTSP/") {
        return Err(ParseError::Malformed("version"));
    }
    if version != b"RTSP/1.0" {
        return Err(ParseError::BadVersion);
    }
    // All checked bytes are ASCII, so these conversions cannot fail.
    let method = String::from_utf8_lossy(method).into_owned();
    let uri = String::from_utf8_lossy(uri).into_owned();
    Ok((method, uri))
}

/// RFC 2326 §4.2 / RFC 2616 §4.2: `name ":" LWS value`, with obsolete line folding.
fn add_header_line(headers: &mut Headers, line: &[u8], limits: &Limits) -> Result<(), ParseError> {
    // Control characters (other than tab) could split a header when echoed; refuse them.
    if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(ParseError::Malformed("control character in header"));
    }
    let text = std::str::from_utf8(line).map_err(|_| ParseError::Malformed("header not UTF-8"))?;
    if text.starts_with([' ', '\t']) {
        // Continuation of the previous field's value.
        let Some(last) = headers.0.last_mut() else {
            return Err(ParseError::Malformed("continuation without header"));
        };
        let more = text.trim_matches([' ', '\t']);
        if !more.is_empty() {
            if !last.1.is_empty() {
                last.1.push(' ');
            }
            last.1.push_str(more);
        }
        return Ok(());
    }
    let Some((name, value)) = text.split_once(':') else {
        return Err(ParseError::Malformed("header without colon"));
    };
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(ParseError::Malformed("header name"));
    }
    if headers.len() >= limits.max_headers {
        return Err(ParseError::TooManyHeaders);
    }
    headers.push(name, value.trim_matches([' ', '\t']));
    Ok(())
}

/// An RTSP response under construction (RFC 2326 §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields, besides CSeq, Server, Date and Content-Length which [`Response::write_to`] adds.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status` and no headers.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn with_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers.push("Content-Type", content_type);
        self.body = body;
        self
    }

    /// Serializes the response: status line, `CSeq` (echoed when the request had one),
    /// `Server`, `Date` (from `now`), the headers, `Content-Length` when there is a body.
    pub fn write_to(&self, cseq: Option<&str>, now: std::time::SystemTime, out: &mut Vec<u8>) {
        let _ = write!(
            StrBuf(out),
            "RTSP/1.0 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        let mut line = |n: &str, v: &str| {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        if let Some(c) = cseq {
            line("CSeq", c);
        }
        line("Server", concat!("Vigil/", env!("CARGO_PKG_VERSION")));
        line("Date", &http_date(now));
        for (n, v) in self.headers.iter() {
            line(n, v);
        }
        if !self.body.is_empty() {
            line("Content-Length", &self.body.len().to_string());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

struct StrBuf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StrBuf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// RFC 2326 §7.1.1 reason phrases.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        431 => "Request Header Fields Too Large",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        457 => "Invalid Range",
        459 => "Aggregate Operation Not Allowed",
        460 => "Only Aggregate Operation Allowed",
        461 => "Unsupported Transport",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "RTSP Version Not Supported",
        551 => "Option not supported",
        _ => "Unknown",
    }
}

/// RFC 2326 §3.7 / RFC 1123 date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    // Howard Hinnant's civil-from-days algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD.get(days.rem_euclid(7) as usize)
            .copied()
            .unwrap_or("Thu"),
        day,
        MON.get((month - 1) as usize).copied().unwrap_or("Jan"),
        year,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
