//! A blocking RTSP connection for end-to-end tests: requests as given (any method, any
//! headers, forged credentials), responses and interleaved frames read one at a time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;

use super::digest::{self, Algorithm};
use super::{take_item, video_control_url, Item, Response};

/// A blocking RTSP connection that reads responses and skips interleaved `$` frames.
pub struct RtspConn {
    /// The socket.
    pub stream: TcpStream,
    buf: BytesMut,
    cseq: u32,
}

impl RtspConn {
    /// Connects (5 s) with a 10 s read timeout; panics if it cannot.
    pub fn connect(addr: SocketAddr) -> RtspConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        RtspConn::from_stream(stream)
    }

    /// Wraps an already connected socket.
    pub fn from_stream(stream: TcpStream) -> RtspConn {
        RtspConn {
            stream,
            buf: BytesMut::new(),
            cseq: 0,
        }
    }

    /// Sends `METHOD url RTSP/1.0` with CSeq and `headers`, returns the response; panics
    /// without one.
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
        alg: Option<Algorithm>,
    ) -> Response {
        let first = self.request(method, url, headers);
        if first.status != 401 {
            return first;
        }
        let challenges = digest::challenges(&first);
        let ch = match alg {
            Some(a) => challenges
                .iter()
                .find(|c| c.algorithm == a)
                .unwrap_or_else(|| panic!("no {} challenge in:\n{}", a.name(), first.head)),
            None => challenges
                .first()
                .unwrap_or_else(|| panic!("no Digest challenge in:\n{}", first.head)),
        };
        let mut h = headers.to_vec();
        h.push((
            "Authorization",
            digest::authorization(ch, user, pass, method, url),
        ));
        self.request(method, url, &h)
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads the next interleaved frame (RFC 2326 §10.12): (channel, payload). Fails on a
    /// response or anything else that is not `$`.
    pub fn read_interleaved(&mut self) -> io::Result<(u8, Vec<u8>)> {
        loop {
            if self.buf.first().is_some_and(|&b| b != b'$') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "expected interleaved data, got {:?}",
                        String::from_utf8_lossy(&self.buf[..self.buf.len().min(100)])
                    ),
                ));
            }
            if let Some(Item::Frame(channel, payload)) = self.take()? {
                return Ok((channel, payload.to_vec()));
            }
            self.fill(false)?;
        }
    }

    /// Reads one response, skipping interleaved binary data (RFC 2326 §10.12).
    pub fn read_response(&mut self) -> io::Result<Response> {
        loop {
            match self.take()? {
                Some(Item::Response(r)) => return Ok(r),
                Some(Item::Frame(..)) => continue,
                None => self.fill(true)?,
            }
        }
    }

    fn take(&mut self) -> io::Result<Option<Item>> {
        take_item(&mut self.buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Reads more of the stream into the buffer; an error at end of stream (with what was left
    /// unparsed, when `show` says it may be text).
    fn fill(&mut self, show: bool) -> io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            let msg = if show {
                format!(
                    "connection closed; unparsed bytes: {:?}",
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
                )
            } else {
                "connection closed".to_owned()
            };
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// A playing session over TCP interleaved: DESCRIBE, SETUP, PLAY, each answering the Digest
/// challenge with `user`/`pass`; panics on any other status. The connection then receives `$`
/// frames; returns the session id.
pub fn play_interleaved(conn: &mut RtspConn, url: &str, user: &str, pass: &str) -> String {
    let d = conn.request_digest(
        "DESCRIBE",
        url,
        &[("Accept", "application/sdp".into())],
        user,
        pass,
        None,
    );
    assert_eq!(d.status, 200, "DESCRIBE:\n{}", d.head);
    let control = video_control_url(&String::from_utf8_lossy(&d.body), d.content_base(url));
    let s = conn.request_digest(
        "SETUP",
        &control,
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1".into())],
        user,
        pass,
        None,
    );
    assert_eq!(s.status, 200, "SETUP {control}:\n{}", s.head);
    let session = s.session_id().expect("Session header");
    let p = conn.request_digest(
        "PLAY",
        url,
        &[("Session", session.clone()), ("Range", "npt=0.000-".into())],
        user,
        pass,
        None,
    );
    assert_eq!(p.status, 200, "PLAY:\n{}", p.head);
    session
}
