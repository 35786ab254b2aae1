//! A WebRTC live viewer for the `live` bench: str0m in the browser's role, over real UDP on
//! loopback, signalling through the web app's WHEP route with the admin's session (cookie and
//! CSRF token). It receives and depacketizes the video, as a browser does before decoding, and
//! does not decode: the bench measures the server's cost per viewer (ICE, DTLS, SRTP,
//! packetization), and decoding 50 streams here would take the cores the server needs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, RtcConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UdpSocket;

use crate::live_client::{connect_tls, Target};
use crate::BenchError;

fn client_err(what: &'static str) -> impl Fn(String) -> BenchError {
    move |e| BenchError::Client(format!("{what}: {e}"))
}

/// An HTTP/1.1 answer: status, headers (names lower case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh TLS connection (`Connection: close`), with the target's headers
/// (origin, session cookie) and `extra`.
async fn request(
    t: &Target,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Result<Answer, BenchError> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        t.addr.port()
    );
    for (k, v) in &t.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    match body {
        Some((ctype, b)) => req.push_str(&format!(
            "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => req.push_str("Content-Length: 0\r\n\r\n"),
    }
    let mut tls = connect_tls(t).await?;
    tls.write_all(req.as_bytes())
        .await
        .map_err(BenchError::io(format!("sending {method} {path}")))?;
    let mut raw = Vec::new();
    // The server may close without close_notify; what was read is what counts.
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| BenchError::Client(format!("{method} {path}: no HTTP answer")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Client(format!("{method} {path}: bad status line")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// The session's CSRF token (`GET /api/session`), which a WHEP POST with a cookie needs.
pub async fn csrf_token(t: &Target) -> Result<String, BenchError> {
    let a = request(t, "GET", "/api/session", &[], None).await?;
    if a.status != 200 {
        return Err(BenchError::Client(format!(
            "GET /api/session: {}",
            a.status
        )));
    }
    let v: serde_json::Value = serde_json::from_str(&a.body)
        .map_err(|e| BenchError::Client(format!("GET /api/session: {e}")))?;
    v["csrf_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BenchError::Client("no csrf_token in the session".into()))
}

/// What all WebRTC viewers of a round received inside the measured window.
#[derive(Default)]
pub struct Received {
    /// Depacketized frames.
    pub frames: AtomicU64,
    /// Their bytes.
    pub bytes: AtomicU64,
}

/// Plays `whep_path` (`/api/cameras/NAME/whep?stream=main`) until `stop`, counting what
/// arrives while `window_open`; ends the session with `DELETE`.
pub async fn run(
    t: Target,
    whep_path: String,
    csrf: String,
    seen: Arc<Received>,
    window_open: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BenchError> {
    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(BenchError::io("binding the viewer's UDP socket"))?;
    let local = sock
        .local_addr()
        .map_err(BenchError::io("the viewer's address"))?;
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    let candidate =
        Candidate::host(local, "udp").map_err(|e| client_err("candidate")(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| BenchError::Client("str0m made no offer".into()))?;
    let a = request(
        &t,
        "POST",
        &whep_path,
        &[("x-csrf-token", &csrf)],
        Some(("application/sdp", &offer.to_sdp_string())),
    )
    .await?;
    if a.status != 201 {
        return Err(BenchError::Client(format!(
            "WHEP POST: {} {}",
            a.status, a.body
        )));
    }
    let location = a.header("location").unwrap_or_default().to_owned();
    let answer =
        SdpAnswer::from_sdp_string(&a.body).map_err(|e| client_err("SDP answer")(e.to_string()))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| client_err("accepting the answer")(e.to_string()))?;

    let mut buf = vec![0u8; 2048];
    'play: loop {
        let wake = loop {
            match rtc.poll_output() {
                Ok(Output::Transmit(tx)) => {
                    let _ = sock.send_to(&tx.contents, tx.destination).await;
                }
                Ok(Output::Timeout(w)) => break w,
                Ok(Output::Event(Event::MediaData(d))) => {
                    if window_open.load(Ordering::Relaxed) {
                        seen.frames.fetch_add(1, Ordering::Relaxed);
                        seen.bytes.fetch_add(d.data.len() as u64, Ordering::Relaxed);
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(e) => return Err(client_err("str0m")(e.to_string())),
            }
            if !rtc.is_alive() {
                break 'play;
            }
        };
        let input = tokio::select! {
            _ = stop.changed() => break 'play,
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, source)) => match Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                    Ok(r) => Input::Receive(Instant::now(), r),
                    Err(_) => continue,
                },
                Err(_) => continue,
            },
            () = tokio::time::sleep_until(wake.into()) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input)
            .map_err(|e| client_err("str0m input")(e.to_string()))?;
    }
    if !location.is_empty() {
        let _ = request(&t, "DELETE", &location, &[("x-csrf-token", &csrf)], None).await;
    }
    Ok(())
}
