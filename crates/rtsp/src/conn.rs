//! The tokio edge of one RTSP connection: reads requests and drives [`ConnState`] (the
//! sessions) and [`MediaCore`] (what they send), then does the I/O the two ask for —
//! interleaved or UDP writes, hub forwarders, timers. No protocol decision is made here.

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vigil_auth::{AuthDecision, AuthRequest};
use vigil_media::{AccessUnit, StreamParams};

use crate::media::{Destination, EndReason, Input, MediaCore, Output, Seed, Transmit};
use crate::message::{self, Method, Parsed, Response};
use crate::session::{ConnState, Effect, Env, Session, SessionTransport};
use crate::udp::UdpPair;
use crate::{Mounts, RtspAuth, ServerOptions};

/// What one connection task knows about its surroundings.
pub(crate) struct ConnCtx {
    pub mounts: Arc<Mounts>,
    pub auth: Arc<dyn RtspAuth>,
    pub options: Arc<ServerOptions>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub shutdown: watch::Receiver<bool>,
}

/// Inputs that reach the connection task from its helper tasks.
pub(crate) enum Event {
    /// An access unit for a playing session.
    Au {
        session: String,
        /// Which PLAY's forwarder sent it ([`Output::Subscribe`]'s generation).
        generation: u64,
        au: AccessUnit,
    },
    /// The session's stream ended (source gone).
    Ended { session: String },
    /// A datagram from the client arrived over UDP for a session: an RTCP packet (`rtcp`),
    /// or an RTP-port packet (NAT keep-alive, `None`). Either shows the client is alive.
    Udp {
        session: String,
        rtcp: Option<Vec<u8>>,
    },
}

/// The I/O resources of one session, owned by the connection task; dropping them stops
/// the forwarder and closes the UDP sockets.
#[derive(Default)]
struct SessionIo {
    forwarder: Option<JoinHandle<()>>,
    udp: Option<UdpPair>,
}

impl Drop for SessionIo {
    fn drop(&mut self) {
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
    }
}

struct ConnEnv<'a> {
    ctx: &'a ConnCtx,
    /// This connection's random id (the `connection` of [`RtspAuth::check`]).
    connection: u64,
    secure: bool,
    media: &'a mut MediaCore,
    io: &'a mut HashMap<String, SessionIo>,
    events: &'a mpsc::Sender<Event>,
}

impl Env for ConnEnv<'_> {
    fn authorize(
        &mut self,
        method: &Method,
        uri: &str,
        authorization: Option<&str>,
    ) -> AuthDecision {
        self.ctx.auth.check(
            &AuthRequest {
                method: method.as_str(),
                uri,
                authorization,
                peer: self.ctx.peer.ip(),
                secure: self.secure,
                now: SystemTime::now(),
            },
            self.connection,
        )
    }

    fn params(&self, mount: &str) -> Option<Option<Arc<StreamParams>>> {
        self.ctx.mounts.get(mount).map(|h| h.params())
    }

    fn bind_udp(&mut self, session_id: &str) -> std::io::Result<(u16, u16)> {
        let pair = UdpPair::bind(
            self.ctx.local.ip(),
            self.ctx.peer.ip(),
            session_id.to_owned(),
            self.events.clone(),
        )?;
        let ports = pair.ports();
        self.io.entry(session_id.to_owned()).or_default().udp = Some(pair);
        Ok(ports)
    }

    fn play_position(&mut self, session: &Session) -> (u16, u32) {
        let first_pts = self
            .ctx
            .mounts
            .get(&session.mount)
            .and_then(|h| h.gop().first().map(|au| au.pts))
            .unwrap_or(0);
        let seed = Seed {
            seq: rand::random(),
            ts_offset: rand::random(),
        };
        self.media
            .play_position(&session.id, session.ssrc, first_pts, seed)
    }

    fn random_u32(&mut self) -> u32 {
        rand::random()
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn base_url(&self) -> String {
        let scheme = if self.secure { "rtsps" } else { "rtsp" };
        format!("{scheme}://{}", self.ctx.local)
    }
}

/// Everything the connection task owns besides its read buffer.
struct Conn<'a, S> {
    stream: S,
    ctx: &'a ConnCtx,
    state: ConnState,
    media: MediaCore,
    io: HashMap<String, SessionIo>,
    events: mpsc::Sender<Event>,
    /// Reused buffers: response bytes, coalesced frames, one UDP datagram.
    out: Vec<u8>,
    dgram: Vec<u8>,
}

impl<S: AsyncWrite + Unpin> Conn<'_, S> {
    /// Carries out everything the media core asks for; returns when to wake it next.
    async fn drain_media(&mut self) -> Result<Instant, String> {
        loop {
            match self.media.poll_output() {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(t) => self.transmit(t).await?,
                Output::Subscribe {
                    session,
                    generation,
                } => {
                    let Some(s) = self.state.session(&session) else {
                        continue;
                    };
                    let Some(hub) = self.ctx.mounts.get(&s.mount) else {
                        continue;
                    };
                    tracing::info!(peer = %self.ctx.peer, session = %session, user = %s.user, mount = %s.mount, "RTSP PLAY");
                    let forwarder =
                        spawn_forwarder(hub, session.clone(), generation, self.events.clone());
                    let io = self.io.entry(session).or_default();
                    // Its access units would be dropped anyway (older generation).
                    if let Some(old) = io.forwarder.replace(forwarder) {
                        old.abort();
                    }
                }
                Output::Unsubscribe { session } => {
                    if let Some(f) = self.io.get_mut(&session).and_then(|io| io.forwarder.take()) {
                        f.abort();
                    }
                }
                Output::Ended { session, reason } => {
                    if reason == EndReason::Bye {
                        tracing::debug!(peer = %self.ctx.peer, %session, "RTCP BYE: ending session");
                    }
                    self.state.remove(&session);
                    self.io.remove(&session);
                }
            }
        }
    }

    async fn transmit(&mut self, t: Transmit) -> Result<(), String> {
        let limit = self.ctx.options.write_timeout;
        match t.to {
            Destination::Interleaved if self.state.secure => {
                // TLS: one buffer, so the access unit becomes few full-size TLS records
                // rather than a record per 16-byte header.
                self.out.clear();
                for p in &t.packets {
                    self.out.extend_from_slice(&p.head);
                    self.out.extend_from_slice(&p.payload);
                }
                write_all(&mut self.stream, &self.out, limit).await
            }
            Destination::Interleaved => {
                // Plain TCP: headers and the shared access unit's slices, no copy.
                let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(t.packets.len() * 2);
                for p in &t.packets {
                    slices.push(IoSlice::new(&p.head));
                    if !p.payload.is_empty() {
                        slices.push(IoSlice::new(&p.payload));
                    }
                }
                write_vectored_all(&mut self.stream, &mut slices, limit).await
            }
            Destination::UdpRtp { port } | Destination::UdpRtcp { port } => {
                let Some(udp) = self.io.get(&t.session).and_then(|io| io.udp.as_ref()) else {
                    return Ok(());
                };
                let socket = match t.to {
                    Destination::UdpRtcp { .. } => &udp.rtcp,
                    _ => &udp.rtp,
                };
                let to = SocketAddr::new(self.ctx.peer.ip(), port);
                for p in &t.packets {
                    self.dgram.clear();
                    self.dgram.extend_from_slice(&p.head);
                    self.dgram.extend_from_slice(&p.payload);
                    // UDP is lossy anyway; a failed send must not end the connection.
                    if let Err(e) = socket.send_to(&self.dgram, to).await {
                        tracing::debug!(%to, error = %e, "RTP/RTCP send failed");
                    }
                }
                Ok(())
            }
        }
    }
}

/// Moves the session's stream from its hub into the connection's events, tagged with
/// `generation`. The only code here that knows the hub's subscriber API.
fn spawn_forwarder(
    hub: &vigil_hub::Hub,
    session: String,
    generation: u64,
    tx: mpsc::Sender<Event>,
) -> JoinHandle<()> {
    let mut sub = hub.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = match sub.recv_video().await {
                Ok(au) => Event::Au {
                    session: session.clone(),
                    generation,
                    au,
                },
                Err(_) => Event::Ended {
                    session: session.clone(),
                },
            };
            let ended = matches!(ev, Event::Ended { .. });
            if tx.send(ev).await.is_err() || ended {
                return;
            }
        }
    })
}

/// Serves one connection until the peer leaves, an error, a timeout or shutdown.
pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin>(stream: S, secure: bool, ctx: ConnCtx) {
    let peer = ctx.peer;
    let opts = ctx.options.clone();
    let mut shutdown = ctx.shutdown.clone();
    let ctx = &ctx;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    // Random rather than a counter: unique among connections even for authenticators that
    // share a nonce secret across processes.
    let connection: u64 = rand::random();
    // Small and bounded: a slow connection makes its forwarders wait, so their hub
    // subscribers lag and skip ahead, instead of queueing frames here.
    let (tx, mut rx) = mpsc::channel::<Event>(8);
    let started = Instant::now();
    let mut conn = Conn {
        stream,
        ctx,
        state: ConnState::new(secure),
        media: MediaCore::new(started, opts.max_payload, opts.rtcp_interval),
        io: HashMap::new(),
        events: tx,
        out: Vec::new(),
        dgram: Vec::with_capacity(1500),
    };
    let mut last_request: Option<Instant> = None;
    // The media core's next wake-up ([`Output::Timeout`]), refreshed after every input.
    let mut report_due = started;
    let result: Result<(), String> = 'conn: loop {
        // Handle every complete item already buffered.
        loop {
            let parsed = message::parse(&buf, &opts.limits);
            match parsed {
                Ok(Parsed::NeedMore) => break,
                Ok(Parsed::Interleaved { channel, payload }) => {
                    // Only the RTCP channel of one of our sessions carries anything for us.
                    let id = conn
                        .state
                        .session_by_channel(channel)
                        .filter(|s| matches!(s.transport, SessionTransport::Tcp { channels } if channels.1 == channel))
                        .map(|s| s.id.clone());
                    if let Some(id) = id {
                        conn.state.touch(&id, Instant::now());
                        conn.media.handle_input(Input::Rtcp {
                            session: &id,
                            data: buf.get(payload.clone()).unwrap_or_default(),
                        });
                    }
                    buf.drain(..payload.end);
                    match conn.drain_media().await {
                        Ok(at) => report_due = at,
                        Err(e) => break 'conn Err(e),
                    }
                }
                Ok(Parsed::Request(req, n)) => {
                    buf.drain(..n);
                    last_request = Some(Instant::now());
                    if req.method == Method::Describe {
                        wait_for_params(ctx, &req.uri).await;
                    }
                    let reply = {
                        let mut env = ConnEnv {
                            ctx,
                            connection,
                            secure,
                            media: &mut conn.media,
                            io: &mut conn.io,
                            events: &conn.events,
                        };
                        conn.state.handle(&req, &mut env)
                    };
                    if let Some(hint) = &reply.log_hint {
                        tracing::warn!(%peer, "{hint}");
                    }
                    if reply.response.status == 401 && req.headers.get("Authorization").is_some() {
                        tracing::info!(%peer, method = %req.method, "RTSP authentication failed");
                    }
                    if !reply.delay.is_zero() {
                        tokio::time::sleep(reply.delay).await;
                    }
                    conn.out.clear();
                    reply
                        .response
                        .write_to(req.cseq(), SystemTime::now(), &mut conn.out);
                    if let Err(e) = write_all(&mut conn.stream, &conn.out, opts.write_timeout).await
                    {
                        break 'conn Err(e);
                    }
                    apply(&reply.effect, &mut conn);
                    match conn.drain_media().await {
                        Ok(at) => report_due = at,
                        Err(e) => break 'conn Err(e),
                    }
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "bad RTSP request; closing");
                    conn.out.clear();
                    Response::new(e.status()).write_to(None, SystemTime::now(), &mut conn.out);
                    let _ = write_all(&mut conn.stream, &conn.out, opts.write_timeout).await;
                    break 'conn Ok(());
                }
            }
        }
        let deadline = match last_request {
            None => started + opts.first_request_timeout,
            Some(t) if conn.state.sessions().next().is_none() => t + opts.idle_timeout,
            Some(_) => conn
                .state
                .next_expiry()
                .unwrap_or_else(|| Instant::now() + opts.idle_timeout),
        };
        buf.reserve(4096);
        tokio::select! {
            r = conn.stream.read_buf(&mut buf) => match r {
                Ok(0) => break 'conn Ok(()),
                Ok(_) => {}
                Err(e) => {
                    // Peers often reset instead of closing (ffmpeg does): not worth a warning.
                    tracing::debug!(%peer, error = %e, "RTSP read failed");
                    break 'conn Ok(());
                }
            },
            Some(ev) = rx.recv() => {
                on_event(ev, &mut conn);
                match conn.drain_media().await {
                    Ok(at) => report_due = at,
                    Err(e) => break 'conn Err(e),
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                if last_request.is_none() {
                    break 'conn Err("no request before timeout".into());
                }
                if conn.state.sessions().next().is_none() {
                    break 'conn Ok(());
                }
                for id in conn.state.expire(Instant::now()) {
                    tracing::info!(%peer, session = %id, "RTSP session timed out");
                    conn.media.handle_input(Input::Teardown { session: &id });
                }
                match conn.drain_media().await {
                    Ok(at) => report_due = at,
                    Err(e) => break 'conn Err(e),
                }
            }
            _ = tokio::time::sleep_until(report_due.into()) => {
                conn.media.handle_input(Input::Timeout(Instant::now()));
                match conn.drain_media().await {
                    Ok(at) => report_due = at,
                    Err(e) => break 'conn Err(e),
                }
            }
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break 'conn Ok(());
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::info!(%peer, "RTSP connection dropped: {e}");
    }
}

/// DESCRIBE of a mounted stream that has not produced parameters yet waits a little for
/// them (e.g. right after start-up), instead of failing at once.
async fn wait_for_params(ctx: &ConnCtx, uri: &str) {
    let Some(hub) = crate::session::mount_of(uri).and_then(|m| ctx.mounts.get(&m)) else {
        return;
    };
    if hub.params().is_none() {
        let _ = tokio::time::timeout(ctx.options.params_wait, hub.wait_params()).await;
    }
}

/// Hands the session layer's decision to the media core.
fn apply<S>(effect: &Effect, conn: &mut Conn<'_, S>) {
    match effect {
        Effect::None => {}
        Effect::Play(id) => {
            if let Some(s) = conn.state.session(id) {
                conn.media.handle_input(Input::Play {
                    session: id,
                    transport: s.transport,
                });
            }
        }
        Effect::Pause(id) => conn.media.handle_input(Input::Pause { session: id }),
        Effect::Teardown(id) => conn.media.handle_input(Input::Teardown { session: id }),
    }
}

fn on_event<S>(ev: Event, conn: &mut Conn<'_, S>) {
    match ev {
        Event::Udp { session, rtcp } => {
            conn.state.touch(&session, Instant::now());
            if let Some(data) = rtcp {
                conn.media.handle_input(Input::Rtcp {
                    session: &session,
                    data: &data,
                });
            }
        }
        Event::Ended { session } => {
            tracing::info!(peer = %conn.ctx.peer, %session, "stream ended; ending RTSP session");
            conn.media
                .handle_input(Input::Teardown { session: &session });
        }
        Event::Au {
            session,
            generation,
            au,
        } => conn.media.handle_input(Input::AccessUnit {
            session: &session,
            generation,
            au: &au,
        }),
    }
}

async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    data: &[u8],
    limit: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(limit, async {
        stream.write_all(data).await?;
        stream.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err(format!(
            "client accepted no data for {limit:?} (slow client)"
        )),
    }
}

async fn write_vectored_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    mut slices: &mut [IoSlice<'_>],
    limit: Duration,
) -> Result<(), String> {
    let fut = async {
        while !slices.is_empty() {
            let n = stream.write_vectored(slices).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
            }
            IoSlice::advance_slices(&mut slices, n);
        }
        stream.flush().await
    };
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write: {e}")),
        Err(_) => Err(format!(
            "client accepted no data for {limit:?} (slow client)"
        )),
    }
}
