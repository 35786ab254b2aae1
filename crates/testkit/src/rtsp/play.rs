//! An async client that plays the first video stream of a URL over TCP-interleaved RTP:
//! DESCRIBE, SETUP, PLAY with Digest authentication, then a stream of interleaved frames.
//!
//! It exists so a hundred clients cost the benchmark process almost nothing, and so the same
//! client measures Vigil and a peer server. It sends a GET_PARAMETER keep-alive every 20 s so
//! neither server times the session out during a run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::digest::{self, Algorithm, Auth, Credentials};
use super::{take_item, video_control_url, Item, Response};

/// How long a request may wait for its response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why playing failed or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// A socket error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The server said something the client could not use.
    #[error("RTSP: {0}")]
    Rtsp(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PlayError {
    let what = what.into();
    move |source| PlayError::Io { what, source }
}

/// Reads until one item is whole; `None` at end of stream.
async fn read_item(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<Option<Item>, PlayError> {
    loop {
        if let Some(item) = take_item(buf).map_err(PlayError::Rtsp)? {
            return Ok(Some(item));
        }
        buf.reserve(64 * 1024);
        let n = rd
            .read_buf(buf)
            .await
            .map_err(io_err("reading from server"))?;
        if n == 0 {
            return Ok(None);
        }
    }
}

struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: BytesMut,
    cseq: u32,
    auth: Auth,
    session: Option<String>,
}

impl Conn {
    /// Sends a request (answering the first 401's challenge once) and returns its 200 response.
    async fn request(
        &mut self,
        method: &str,
        url: &str,
        extra: &str,
    ) -> Result<Response, PlayError> {
        for _attempt in 0..2 {
            self.cseq += 1;
            let mut req = format!(
                "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: vigil-bench\r\n",
                self.cseq
            );
            if let Some(a) = self.auth.authorization(method, url) {
                req.push_str(&format!("Authorization: {a}\r\n"));
            }
            if let Some(s) = &self.session {
                req.push_str(&format!("Session: {s}\r\n"));
            }
            req.push_str(extra);
            req.push_str("\r\n");
            self.wr
                .write_all(req.as_bytes())
                .await
                .map_err(io_err("writing request"))?;
            let read = async {
                loop {
                    match read_item(&mut self.rd, &mut self.buf).await? {
                        None => {
                            return Err(PlayError::Rtsp(format!(
                                "connection closed during {method}"
                            )))
                        }
                        Some(Item::Frame(..)) => continue,
                        Some(Item::Response(r)) => return Ok(r),
                    }
                }
            };
            let resp = tokio::time::timeout(RESPONSE_TIMEOUT, read)
                .await
                .map_err(|_| {
                    PlayError::Rtsp(format!(
                        "no response to {method} within {RESPONSE_TIMEOUT:?}"
                    ))
                })??;
            if resp.status == 401 && self.auth.challenge.is_none() {
                let challenges = digest::challenges(&resp);
                // MD5 first: it is all GStreamer offers, so both servers do the same work.
                let chosen = challenges
                    .iter()
                    .find(|c| c.algorithm == Algorithm::Md5)
                    .or(challenges.first())
                    .cloned();
                if chosen.is_none() {
                    return Err(PlayError::Rtsp(
                        "401 without a usable Digest challenge".into(),
                    ));
                }
                self.auth.challenge = chosen;
                continue;
            }
            if resp.status != 200 {
                return Err(PlayError::Rtsp(format!(
                    "{method} {url}: status {}",
                    resp.status
                )));
            }
            return Ok(resp);
        }
        Err(PlayError::Rtsp(format!(
            "{method} {url}: authentication failed"
        )))
    }
}

/// A session in PLAY state, yielding interleaved frames.
pub struct Playing {
    rd: OwnedReadHalf,
    buf: BytesMut,
    /// The SDP from DESCRIBE.
    pub sdp: String,
    keepalive: JoinHandle<()>,
}

impl Drop for Playing {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

/// Connects to `url` (`rtsp://host:port/path`), authenticates, and plays the first video stream
/// over TCP-interleaved RTP on channels 0-1.
pub async fn play(url: &str, creds: &Credentials) -> Result<Playing, PlayError> {
    let authority = url
        .strip_prefix("rtsp://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| PlayError::Rtsp(format!("not an rtsp:// URL: {url}")))?;
    let tcp = TcpStream::connect(authority)
        .await
        .map_err(io_err(format!("connecting to {authority}")))?;
    tcp.set_nodelay(true).map_err(io_err("set_nodelay"))?;
    let (rd, wr) = tcp.into_split();
    let mut c = Conn {
        rd,
        wr,
        buf: BytesMut::new(),
        cseq: 0,
        auth: Auth::new(creds.clone()),
        session: None,
    };
    let desc = c
        .request("DESCRIBE", url, "Accept: application/sdp\r\n")
        .await?;
    let sdp = String::from_utf8_lossy(&desc.body).into_owned();
    let base = desc.header("Content-Base").unwrap_or(url).to_owned();
    let track = video_control_url(&sdp, &base);
    let setup = c
        .request(
            "SETUP",
            &track,
            "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
        )
        .await?;
    let session = setup
        .session_id()
        .ok_or_else(|| PlayError::Rtsp("SETUP response without Session".into()))?;
    c.session = Some(session);
    c.request("PLAY", &base, "Range: npt=0.000-\r\n").await?;

    let Conn {
        rd,
        mut wr,
        buf,
        mut cseq,
        mut auth,
        session,
        ..
    } = c;
    let session = session.unwrap_or_default();
    let ka_url = base.clone();
    let keepalive = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(20)).await;
            cseq += 1;
            let mut req = format!(
                "GET_PARAMETER {ka_url} RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {session}\r\n"
            );
            if let Some(a) = auth.authorization("GET_PARAMETER", &ka_url) {
                req.push_str(&format!("Authorization: {a}\r\n"));
            }
            req.push_str("\r\n");
            if wr.write_all(req.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    Ok(Playing {
        rd,
        buf,
        sdp,
        keepalive,
    })
}

impl Playing {
    /// The next interleaved frame `(channel, data)`; `None` when the server closed the connection.
    /// Responses to keep-alives are skipped.
    pub async fn next_frame(&mut self) -> Result<Option<(u8, Bytes)>, PlayError> {
        loop {
            match read_item(&mut self.rd, &mut self.buf).await? {
                None => return Ok(None),
                Some(Item::Response(_)) => continue,
                Some(Item::Frame(ch, data)) => return Ok(Some((ch, data))),
            }
        }
    }

    /// Reads until the connection ends, adding the size of every RTP packet on channel 0 to
    /// `counter` (RTP header included, interleave header not).
    pub async fn count_rtp_bytes(mut self, counter: &AtomicU64) -> Result<(), PlayError> {
        while let Some((ch, data)) = self.next_frame().await? {
            if ch == 0 {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
