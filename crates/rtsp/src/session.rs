//! The sans-IO RTSP state machine of one connection and the sessions it created.
//!
//! [`ConnState::handle`] turns a parsed request into a [`Reply`]: the response to send,
//! how long to wait before sending it (failed-login slowdown), and an [`Effect`] the edge
//! carries out (start, pause or stop streaming a session). Everything that needs the
//! outside world — credentials, stream parameters, UDP sockets, randomness, the clock —
//! comes through the [`Env`] trait, so the whole protocol is testable without sockets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_media::StreamParams;

use crate::message::{Method, Request, Response};
use crate::transport::{self, RequestedTransport, TransportError};
use vigil_auth::AuthDecision;

/// A session with neither a request nor (UDP) RTCP for this long is torn down.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Sessions one connection may hold at once.
pub const MAX_SESSIONS_PER_CONN: usize = 4;
/// The media-level control attribute in our SDP (`a=control:trackID=0`).
pub const TRACK_CONTROL: &str = "trackID=0";
/// RFC 2326 §10.1: methods this server implements.
pub const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER";

/// What the state machine needs from the outside world.
pub trait Env {
    /// Checks the request's credentials (called for every method but OPTIONS).
    fn authorize(
        &mut self,
        method: &Method,
        uri: &str,
        authorization: Option<&str>,
    ) -> AuthDecision;
    /// `None` when no stream is mounted at `mount`; `Some(None)` while it has no parameters yet.
    fn params(&self, mount: &str) -> Option<Option<Arc<StreamParams>>>;
    /// Binds the session's server RTP/RTCP UDP pair; returns its ports.
    fn bind_udp(&mut self, session_id: &str) -> std::io::Result<(u16, u16)>;
    /// The sequence number and RTP timestamp of the first packet PLAY will send (RTP-Info).
    fn play_position(&mut self, session: &Session) -> (u16, u32);
    /// A random number (session ids, SSRCs).
    fn random_u32(&mut self) -> u32;
    /// The current time.
    fn now(&self) -> Instant;
    /// Base of absolute URIs in replies, e.g. `rtsp://192.0.2.1:8554`.
    fn base_url(&self) -> String;
}

/// RFC 2326 Appendix A server states (Init is "no session").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Set up, not sending.
    Ready,
    /// Sending media.
    Playing,
}

/// How a session's media travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionTransport {
    /// Interleaved on the RTSP connection: (RTP channel, RTCP channel).
    Tcp {
        /// RTP and RTCP channels.
        channels: (u8, u8),
    },
    /// UDP to the peer's address.
    Udp {
        /// Client RTP and RTCP ports.
        client: (u16, u16),
        /// Our RTP and RTCP ports.
        server: (u16, u16),
    },
}

/// One RTSP session (RFC 2326 §3: created by SETUP, ended by TEARDOWN or timeout).
#[derive(Clone, Debug)]
pub struct Session {
    /// Session identifier sent in the `Session` header.
    pub id: String,
    /// Mount path (`main`, `sub`).
    pub mount: String,
    /// Ready or Playing.
    pub state: State,
    /// Negotiated transport.
    pub transport: SessionTransport,
    /// RTP SSRC of our stream.
    pub ssrc: u32,
    /// Authenticated user that created it.
    pub user: String,
    /// Last request or RTCP packet seen for it.
    pub last_seen: Instant,
}

impl Session {
    /// Whether the session times out when idle: all but a playing TCP-interleaved one.
    fn can_expire(&self) -> bool {
        !(self.state == State::Playing && matches!(self.transport, SessionTransport::Tcp { .. }))
    }
}

/// What the edge must do after sending the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// Start sending the session's media.
    Play(String),
    /// Stop sending, keep the session.
    Pause(String),
    /// Stop sending and forget the session (and close its UDP sockets).
    Teardown(String),
}

/// The state machine's answer to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Response to send (CSeq/Server/Date are added at serialization).
    pub response: Response,
    /// Wait this long before sending (failed-login slowdown; only this connection waits).
    pub delay: Duration,
    /// What to do once the response is sent.
    pub effect: Effect,
    /// A hint to log once (e.g. "no user exists yet: run `vigil user add`").
    pub log_hint: Option<String>,
}

impl Reply {
    fn new(response: Response) -> Self {
        Reply {
            response,
            delay: Duration::ZERO,
            effect: Effect::None,
            log_hint: None,
        }
    }
}

/// Per-connection protocol state: the sessions created over this connection.
#[derive(Debug, Default)]
pub struct ConnState {
    sessions: HashMap<String, Session>,
    hint_logged: bool,
    /// Whether the connection is TLS (then plain UDP media is refused).
    pub secure: bool,
}

/// Which resource a request URI names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// `*` (OPTIONS, GET_PARAMETER keep-alive).
    Any,
    /// `/mount` or `/mount/` (aggregate control).
    Mount(String),
    /// `/mount/trackID=0`.
    Track(String),
    /// Anything else.
    Unknown,
}

/// Splits an absolute (`rtsp://host:port/path`, any host) or relative request URI.
fn target(uri: &str) -> Target {
    if uri == "*" {
        return Target::Any;
    }
    let path = match uri.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("rtsp") || scheme.eq_ignore_ascii_case("rtsps") =>
        {
            rest.find('/').map_or("", |i| &rest[i..])
        }
        Some(_) => return Target::Unknown,
        None => uri,
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut segs = path.split('/').filter(|s| !s.is_empty());
    match (segs.next(), segs.next(), segs.next()) {
        (Some(m), None, None) => Target::Mount(m.to_owned()),
        (Some(m), Some(t), None) if t == TRACK_CONTROL => Target::Track(m.to_owned()),
        _ => Target::Unknown,
    }
}

fn session_header(id: &str) -> String {
    format!("{id};timeout={}", SESSION_TIMEOUT.as_secs())
}

impl ConnState {
    /// A fresh connection state.
    pub fn new(secure: bool) -> Self {
        ConnState {
            secure,
            ..ConnState::default()
        }
    }

    /// The session with `id`, if this connection owns it.
    pub fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id)
    }

    /// All sessions.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Marks the session alive (an RTCP packet arrived for it).
    pub fn touch(&mut self, id: &str, now: Instant) {
        if let Some(s) = self.sessions.get_mut(id) {
            s.last_seen = now;
        }
    }

    /// Removes a session (RTCP BYE, write failure); returns whether it existed.
    pub fn remove(&mut self, id: &str) -> bool {
        self.sessions.remove(id).is_some()
    }

    /// The session whose interleaved channels include `channel`.
    pub fn session_by_channel(&self, channel: u8) -> Option<&Session> {
        self.sessions.values().find(|s| {
            matches!(s.transport, SessionTransport::Tcp { channels } if channels.0 == channel || channels.1 == channel)
        })
    }

    /// Removes and returns the ids of sessions idle past [`SESSION_TIMEOUT`]. A playing
    /// TCP-interleaved session lives as long as its connection: clients do not send
    /// keep-alives on it, and a dead peer is caught by the write timeout instead.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let dead: Vec<String> = self
            .sessions
            .values()
            .filter(|s| {
                s.can_expire() && now.saturating_duration_since(s.last_seen) >= SESSION_TIMEOUT
            })
            .map(|s| s.id.clone())
            .collect();
        for id in &dead {
            self.sessions.remove(id);
        }
        dead
    }

    /// When [`ConnState::expire`] should next be called.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter(|s| s.can_expire())
            .map(|s| s.last_seen + SESSION_TIMEOUT)
            .min()
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Request, env: &mut dyn Env) -> Reply {
        let method = &req.method;
        if *method == Method::Options {
            // RFC 2326 §10.1; answering OPTIONS reveals nothing, so no credentials needed.
            let mut r = Reply::new(Response::new(200).with("Public", PUBLIC));
            if let Some(id) = self.known_session(req) {
                r.response.headers.push("Session", session_header(&id));
                self.touch(&id, env.now());
            }
            return r;
        }
        // Credentials are checked on every request; a session id alone is never trusted.
        let user = match env.authorize(method, &req.uri, req.headers.get("Authorization")) {
            // Every role may watch live video; per-camera authorization can use `role` here.
            AuthDecision::Allowed { user, .. } => user,
            AuthDecision::Denied { challenges, delay } => {
                let mut r = Reply::new(unauthorized(challenges));
                r.delay = delay;
                return r;
            }
            AuthDecision::NoUsers { challenges, hint } => {
                let mut r = Reply::new(unauthorized(challenges));
                if !self.hint_logged {
                    self.hint_logged = true;
                    r.log_hint = Some(hint);
                }
                return r;
            }
        };
        // Only after authentication: without credentials every method but OPTIONS is a 401,
        // so an unauthenticated walk of the methods learns nothing (docs/security.md).
        if let Some(required) = req.headers.get("Require") {
            // RFC 2326 §12.32: we implement no option extensions.
            return Reply::new(Response::new(551).with("Unsupported", required));
        }
        let target = target(&req.uri);
        match method {
            Method::Describe => Reply::new(self.describe(req, &target, env)),
            Method::Setup => self.setup(req, &target, &user, env),
            Method::Play | Method::Pause | Method::Teardown | Method::GetParameter => {
                self.in_session(req, &target, env)
            }
            _ => Reply::new(Response::new(501).with("Public", PUBLIC)),
        }
    }

    fn known_session(&self, req: &Request) -> Option<String> {
        let id = req.headers.get("Session")?.split(';').next()?.trim();
        self.sessions.contains_key(id).then(|| id.to_owned())
    }

    fn describe(&self, req: &Request, target: &Target, env: &mut dyn Env) -> Response {
        let (Target::Mount(mount) | Target::Track(mount)) = target else {
            return Response::new(404);
        };
        let params = match env.params(mount) {
            None => return Response::new(404),
            // Mounted but the source has not produced a picture yet.
            Some(None) => return Response::new(503),
            Some(Some(p)) => p,
        };
        if let Some(accept) = req.headers.get("Accept") {
            if !accept.split(',').any(|a| {
                let a = a.split(';').next().unwrap_or("").trim();
                a.eq_ignore_ascii_case("application/sdp")
                    || a == "*/*"
                    || a.eq_ignore_ascii_case("application/*")
            }) {
                return Response::new(406);
            }
        }
        let base = format!("{}/{mount}/", env.base_url());
        let session_id = (u64::from(env.random_u32()) << 16) | u64::from(env.random_u32() & 0xffff);
        let sdp = vigil_media::sdp::h264_session(
            &params,
            &vigil_media::sdp::SdpOptions {
                session_id,
                origin_addr: "0.0.0.0",
                session_name: mount,
                control: TRACK_CONTROL,
                payload_type: crate::PAYLOAD_TYPE,
            },
        );
        Response::new(200)
            .with("Content-Base", base)
            .with_body("application/sdp", sdp.into_bytes())
    }

    fn setup(&mut self, req: &Request, target: &Target, user: &str, env: &mut dyn Env) -> Reply {
        let (Target::Mount(mount) | Target::Track(mount)) = target else {
            return Reply::new(Response::new(404));
        };
        if env.params(mount).is_none() {
            return Reply::new(Response::new(404));
        }
        let existing = req
            .headers
            .get("Session")
            .and_then(|h| h.split(';').next())
            .map(str::trim);
        if let Some(id) = existing {
            match self.sessions.get(id) {
                None => return Reply::new(Response::new(454)),
                // One track per stream: a second SETUP may only change the transport while Ready.
                Some(s) if s.state == State::Playing || s.mount != *mount => {
                    return Reply::new(
                        Response::new(455).with("Allow", "PLAY, PAUSE, TEARDOWN, GET_PARAMETER"),
                    )
                }
                Some(_) => {}
            }
        } else if self.sessions.len() >= MAX_SESSIONS_PER_CONN {
            return Reply::new(Response::new(453));
        }
        let requested = match transport::choose(req.headers.get("Transport")) {
            Ok(t) => t,
            Err(TransportError::Missing) => return Reply::new(Response::new(400)),
            Err(TransportError::Unsupported) => return Reply::new(unsupported_transport()),
        };
        let id = match existing {
            Some(id) => id.to_owned(),
            None => loop {
                let id = format!("{:08X}{:08X}", env.random_u32(), env.random_u32());
                if !self.sessions.contains_key(&id) {
                    break id;
                }
            },
        };
        let ssrc = match self.sessions.get(&id) {
            Some(s) => s.ssrc,
            None => env.random_u32(),
        };
        let (transport, header) = match requested {
            RequestedTransport::Tcp { interleaved } => {
                let channels = self.pick_channels(&id, interleaved);
                (
                    SessionTransport::Tcp { channels },
                    transport::reply_tcp(channels, ssrc),
                )
            }
            // Plain RTP would leak a TLS-protected stream; SRTP is not offered.
            RequestedTransport::Udp { .. } if self.secure => {
                return Reply::new(unsupported_transport())
            }
            RequestedTransport::Udp {
                rtp_port,
                rtcp_port,
            } => match env.bind_udp(&id) {
                Ok(server) => (
                    SessionTransport::Udp {
                        client: (rtp_port, rtcp_port),
                        server,
                    },
                    transport::reply_udp((rtp_port, rtcp_port), server, ssrc),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot bind UDP ports for RTP");
                    return Reply::new(Response::new(453));
                }
            },
        };
        self.sessions.insert(
            id.clone(),
            Session {
                id: id.clone(),
                mount: mount.clone(),
                state: State::Ready,
                transport,
                ssrc,
                user: user.to_owned(),
                last_seen: env.now(),
            },
        );
        Reply::new(
            Response::new(200)
                .with("Transport", header)
                .with("Session", session_header(&id)),
        )
    }

    /// Interleaved channel pair for a session: the client's choice when free, else the
    /// lowest free even pair.
    fn pick_channels(&self, id: &str, wanted: Option<(u8, u8)>) -> (u8, u8) {
        let used = |c: u8| {
            self.sessions.values().any(|s| {
                s.id != id && matches!(s.transport, SessionTransport::Tcp { channels } if channels.0 == c || channels.1 == c)
            })
        };
        if let Some((a, b)) = wanted {
            if !used(a) && !used(b) {
                return (a, b);
            }
        }
        (0..=127u8)
            .map(|i| (i * 2, i * 2 + 1))
            .find(|&(a, b)| !used(a) && !used(b))
            .unwrap_or((0, 1))
    }

    fn in_session(&mut self, req: &Request, target: &Target, env: &mut dyn Env) -> Reply {
        let method = &req.method;
        let Some(id) = req
            .headers
            .get("Session")
            .and_then(|h| h.split(';').next())
            .map(str::trim)
        else {
            // GET_PARAMETER without a session is a plain keep-alive/ping.
            if *method == Method::GetParameter {
                return Reply::new(Response::new(200));
            }
            return Reply::new(Response::new(454));
        };
        let now = env.now();
        let Some(session) = self.sessions.get_mut(id) else {
            return Reply::new(Response::new(454));
        };
        match target {
            Target::Any => {}
            Target::Mount(m) | Target::Track(m) if *m == session.mount => {}
            _ => return Reply::new(Response::new(404)),
        }
        session.last_seen = now;
        let id = session.id.clone();
        let with_session = |r: Response| r.with("Session", session_header(&id));
        match method {
            Method::Play => {
                // A live stream plays from "now" whatever Range asks (npt=0-, npt=0.000-,
                // clock=…): ffmpeg, GStreamer and VLC all send a start that means "now" here.
                let was_playing = session.state == State::Playing;
                session.state = State::Playing;
                let snapshot = session.clone();
                let (seq, rtptime) = env.play_position(&snapshot);
                let url = format!("{}/{}/{TRACK_CONTROL}", env.base_url(), snapshot.mount);
                let mut r = Reply::new(
                    with_session(Response::new(200))
                        .with("Range", "npt=now-")
                        .with("RTP-Info", format!("url={url};seq={seq};rtptime={rtptime}")),
                );
                if !was_playing {
                    r.effect = Effect::Play(id.clone());
                }
                r
            }
            Method::Pause => {
                let was_playing = session.state == State::Playing;
                session.state = State::Ready;
                let mut r = Reply::new(with_session(Response::new(200)));
                if was_playing {
                    r.effect = Effect::Pause(id.clone());
                }
                r
            }
            Method::Teardown => {
                self.sessions.remove(&id);
                let mut r = Reply::new(Response::new(200));
                r.effect = Effect::Teardown(id);
                r
            }
            // GET_PARAMETER with an empty body: keep-alive (RFC 2326 §10.8).
            _ => Reply::new(with_session(Response::new(200))),
        }
    }
}

fn unauthorized(challenges: Vec<String>) -> Response {
    let mut r = Response::new(401);
    for c in challenges {
        r.headers.push("WWW-Authenticate", c);
    }
    r
}

fn unsupported_transport() -> Response {
    Response::new(461)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

/// The mount path a request URI names, if any.
pub(crate) fn mount_of(uri: &str) -> Option<String> {
    match target(uri) {
        Target::Mount(m) | Target::Track(m) => Some(m),
        _ => None,
    }
}
