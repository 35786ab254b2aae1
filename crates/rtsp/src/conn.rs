//! The tokio edge of one RTSP connection: reads requests, drives [`ConnState`], and sends
//! the media of its playing sessions (TCP interleaved or UDP) plus RTCP sender reports.

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vigil_media::rtp::H264Packetizer;
use vigil_media::{AccessUnit, StreamParams};

use crate::message::{self, Parsed, Response};
use crate::session::{ConnState, Effect, Env, Session, SessionTransport, State};
use crate::udp::UdpPair;
use crate::{AuthQuery, AuthVerdict, Mounts, RtspAuth, ServerOptions};

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
        /// Which PLAY's forwarder sent it ([`Media::generation`]).
        generation: u64,
        au: AccessUnit,
    },
    /// The session's stream ended (source gone).
    Ended { session: String },
    /// An RTCP packet (or NAT keep-alive) arrived over UDP for a session.
    Rtcp { session: String, bye: bool },
}

/// Per-session media state, owned by the connection task.
struct Media {
    packetizer: H264Packetizer,
    ts_offset: u32,
    forwarder: Option<JoinHandle<()>>,
    udp: Option<UdpPair>,
    /// (capture time µs, RTP timestamp) of the last access unit sent: the SR's NTP/RTP pair.
    last_pair: Option<(i64, u32)>,
    /// Presentation time of the last access unit sent.
    last_pts: Option<i64>,
    /// Bumped at each PLAY; frames queued by an earlier PLAY's forwarder are dropped.
    generation: u64,
    /// After PAUSE: resume only at a key frame later than this presentation time.
    resume_after: Option<i64>,
    sr_due: bool,
}

impl Drop for Media {
    fn drop(&mut self) {
        if let Some(f) = self.forwarder.take() {
            f.abort();
        }
    }
}

/// RFC 3550 §6.1: whether a compound RTCP packet contains a BYE (PT 203).
pub(crate) fn rtcp_has_bye(mut data: &[u8]) -> bool {
    while let (Some(&pt), Some(&hi), Some(&lo)) = (data.get(1), data.get(2), data.get(3)) {
        if pt == 203 {
            return true;
        }
        let len = (usize::from(u16::from_be_bytes([hi, lo])) + 1) * 4;
        let Some(rest) = data.get(len..) else { break };
        data = rest;
    }
    false
}

struct ConnEnv<'a> {
    ctx: &'a ConnCtx,
    /// This connection's random id ([`AuthQuery::connection`]).
    connection: u64,
    secure: bool,
    media: &'a mut HashMap<String, Media>,
    events: &'a mpsc::Sender<Event>,
}

impl Env for ConnEnv<'_> {
    fn authorize(&mut self, method: &str, uri: &str, authorization: Option<&str>) -> AuthVerdict {
        self.ctx.auth.check(&AuthQuery {
            method,
            uri,
            authorization,
            peer: self.ctx.peer.ip(),
            secure: self.secure,
            now: SystemTime::now(),
            connection: self.connection,
        })
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
        let m = self.media_for(session_id, 0);
        m.udp = Some(pair);
        Ok(ports)
    }

    fn play_position(&mut self, session: &Session) -> (u16, u32) {
        let first_pts = self
            .ctx
            .mounts
            .get(&session.mount)
            .and_then(|h| h.gop().first().map(|au| au.pts))
            .unwrap_or(0);
        let max_payload = self.ctx.options.max_payload;
        let m = self.media_for(&session.id, session.ssrc);
        // Keep the SSRC the SETUP reply announced.
        if m.packetizer.ssrc() != session.ssrc {
            m.packetizer = H264Packetizer::new(
                session.ssrc,
                crate::PAYLOAD_TYPE,
                rand::random(),
                max_payload,
            );
        }
        (
            m.packetizer.next_seq(),
            m.ts_offset.wrapping_add(first_pts as u32),
        )
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

impl ConnEnv<'_> {
    fn media_for(&mut self, id: &str, ssrc: u32) -> &mut Media {
        let max_payload = self.ctx.options.max_payload;
        self.media.entry(id.to_owned()).or_insert_with(|| Media {
            packetizer: H264Packetizer::new(ssrc, crate::PAYLOAD_TYPE, rand::random(), max_payload),
            ts_offset: rand::random(),
            forwarder: None,
            udp: None,
            last_pair: None,
            last_pts: None,
            resume_after: None,
            generation: 0,
            sr_due: true,
        })
    }
}

/// Serves one connection until the peer leaves, an error, a timeout or shutdown.
pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    secure: bool,
    mut ctx: ConnCtx,
) {
    let peer = ctx.peer;
    let opts = ctx.options.clone();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut state = ConnState::new(secure);
    // Random rather than a counter: unique among connections even for authenticators that
    // share a nonce secret across processes.
    let connection: u64 = rand::random();
    let mut media: HashMap<String, Media> = HashMap::new();
    // Small and bounded: a slow connection makes its forwarders wait, so their hub
    // subscribers lag and skip ahead, instead of queueing frames here.
    let (tx, mut rx) = mpsc::channel::<Event>(8);
    let mut out = Vec::new();
    let started = Instant::now();
    let mut last_request: Option<Instant> = None;
    let mut sr_tick = tokio::time::interval(opts.rtcp_interval);
    let result: Result<(), String> = 'conn: loop {
        // Handle every complete item already buffered.
        loop {
            let parsed = message::parse(&buf, &opts.limits);
            match parsed {
                Ok(Parsed::NeedMore) => break,
                Ok(Parsed::Interleaved { channel, payload }) => {
                    let id = state.session_by_channel(channel).filter(|s| matches!(s.transport, SessionTransport::Tcp { channels } if channels.1 == channel)).map(|s| s.id.clone());
                    if let Some(id) = id {
                        state.touch(&id, Instant::now());
                        if rtcp_has_bye(buf.get(payload.clone()).unwrap_or_default()) {
                            tracing::debug!(%peer, session = %id, "RTCP BYE: ending session");
                            state.remove(&id);
                            media.remove(&id);
                        }
                    }
                    buf.drain(..payload.end);
                }
                Ok(Parsed::Request(req, n)) => {
                    buf.drain(..n);
                    last_request = Some(Instant::now());
                    if req.method == "DESCRIBE" {
                        wait_for_params(&ctx, &req.uri).await;
                    }
                    let reply = {
                        let mut env = ConnEnv {
                            ctx: &ctx,
                            connection,
                            secure,
                            media: &mut media,
                            events: &tx,
                        };
                        state.handle(&req, &mut env)
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
                    out.clear();
                    reply
                        .response
                        .write_to(req.cseq(), SystemTime::now(), &mut out);
                    if let Err(e) = write_all(&mut stream, &out, opts.write_timeout).await {
                        break 'conn Err(e);
                    }
                    apply(&reply.effect, &state, &mut media, &ctx, &tx);
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "bad RTSP request; closing");
                    out.clear();
                    Response::new(e.status()).write_to(None, SystemTime::now(), &mut out);
                    let _ = write_all(&mut stream, &out, opts.write_timeout).await;
                    break 'conn Ok(());
                }
            }
        }
        let deadline = match last_request {
            None => started + opts.first_request_timeout,
            Some(t) if state.sessions().next().is_none() => t + opts.idle_timeout,
            Some(_) => state
                .next_expiry()
                .unwrap_or_else(|| Instant::now() + opts.idle_timeout),
        };
        buf.reserve(4096);
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) => break 'conn Ok(()),
                Ok(_) => {}
                Err(e) => {
                    // Peers often reset instead of closing (ffmpeg does): not worth a warning.
                    tracing::debug!(%peer, error = %e, "RTSP read failed");
                    break 'conn Ok(());
                }
            },
            Some(ev) = rx.recv() => {
                if let Err(e) = on_event(ev, &mut stream, &mut state, &mut media, &ctx, &mut out).await {
                    break 'conn Err(e);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                if last_request.is_none() {
                    break 'conn Err("no request before timeout".into());
                }
                if state.sessions().next().is_none() {
                    break 'conn Ok(());
                }
                for id in state.expire(Instant::now()) {
                    tracing::info!(%peer, session = %id, "RTSP session timed out");
                    media.remove(&id);
                }
            }
            _ = sr_tick.tick() => {
                for m in media.values_mut() {
                    m.sr_due = true;
                }
            }
            r = ctx.shutdown.changed() => {
                if r.is_err() || *ctx.shutdown.borrow() {
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

fn apply(
    effect: &Effect,
    state: &ConnState,
    media: &mut HashMap<String, Media>,
    ctx: &ConnCtx,
    tx: &mpsc::Sender<Event>,
) {
    match effect {
        Effect::None => {}
        Effect::Play(id) => {
            let (Some(s), Some(m)) = (state.session(id), media.get_mut(id)) else {
                return;
            };
            let Some(hub) = ctx.mounts.get(&s.mount) else {
                return;
            };
            let mut sub = hub.subscribe();
            let tx = tx.clone();
            let session = id.clone();
            m.sr_due = true;
            m.generation += 1;
            let generation = m.generation;
            m.forwarder = Some(tokio::spawn(async move {
                loop {
                    let ev = match sub.recv().await {
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
            }));
            tracing::info!(peer = %ctx.peer, session = %id, user = %s.user, mount = %s.mount, "RTSP PLAY");
        }
        Effect::Pause(id) => {
            if let Some(m) = media.get_mut(id) {
                if let Some(f) = m.forwarder.take() {
                    f.abort();
                }
                m.resume_after = m.last_pts;
            }
        }
        Effect::Teardown(id) => {
            media.remove(id);
        }
    }
}

async fn on_event<S: AsyncWrite + Unpin>(
    ev: Event,
    stream: &mut S,
    state: &mut ConnState,
    media: &mut HashMap<String, Media>,
    ctx: &ConnCtx,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match ev {
        Event::Rtcp { session, bye } => {
            if bye {
                tracing::debug!(peer = %ctx.peer, %session, "RTCP BYE over UDP: ending session");
                state.remove(&session);
                media.remove(&session);
            } else {
                state.touch(&session, Instant::now());
            }
            Ok(())
        }
        Event::Ended { session } => {
            tracing::info!(peer = %ctx.peer, %session, "stream ended; ending RTSP session");
            state.remove(&session);
            media.remove(&session);
            Ok(())
        }
        Event::Au {
            session,
            generation,
            au,
        } => {
            let Some(s) = state
                .session(&session)
                .filter(|s| s.state == State::Playing)
            else {
                return Ok(()); // Paused or gone: a stale frame from an aborted forwarder.
            };
            let transport = s.transport;
            let Some(m) = media
                .get_mut(&session)
                .filter(|m| m.generation == generation)
            else {
                return Ok(());
            };
            let coalesce = state.secure;
            send_au(&au, transport, m, stream, ctx, out, coalesce).await
        }
    }
}

/// Where a packet's payload lives: the access unit or one of the parameter sets.
fn locate<'a>(sources: &[&'a [u8]; 3], payload: &[u8]) -> Option<&'a [u8]> {
    let p = payload.as_ptr() as usize;
    sources.iter().find_map(|src| {
        let base = src.as_ptr() as usize;
        let off = p.checked_sub(base)?;
        src.get(off..off.checked_add(payload.len())?)
    })
}

async fn send_au<S: AsyncWrite + Unpin>(
    au: &AccessUnit,
    transport: SessionTransport,
    m: &mut Media,
    stream: &mut S,
    ctx: &ConnCtx,
    out: &mut Vec<u8>,
    coalesce: bool,
) -> Result<(), String> {
    // After PAUSE and PLAY the new subscriber starts again at the current GOP, which may
    // repeat what was already sent: skip to the first key frame past it, so RTP timestamps
    // never go backwards and the decoder never sees a broken reference chain.
    // (Only then: in decode order B-frames have non-increasing presentation times.)
    if let Some(after) = m.resume_after {
        if !(au.key && au.pts > after) {
            return Ok(());
        }
        m.resume_after = None;
    }
    m.last_pts = Some(au.pts);
    let ts = m.ts_offset.wrapping_add(au.pts as u32);
    let params = au.params.clone();
    // RFC 6184 §8.4: parameter sets in-band before each IDR so a receiver that missed the
    // SDP (or whose decoder reset) can start at any key frame.
    let has_ps = au
        .nal_units()
        .any(|n| matches!(n.first().map(|h| h & 0x1f), Some(7 | 8)));
    let in_band: Vec<&[u8]> = if au.key && !has_ps {
        vec![&params.sps[..], &params.pps[..]]
    } else {
        Vec::new()
    };
    let sources: [&[u8]; 3] = [&au.data[..], &params.sps[..], &params.pps[..]];
    // Headers go into `out`; payloads stay in the shared frame (no copy for plain TCP).
    out.clear();
    let mut packets: Vec<(std::ops::Range<usize>, &[u8])> = Vec::new();
    let tcp_channel = match transport {
        SessionTransport::Tcp { channels } => Some(channels.0),
        SessionTransport::Udp { .. } => None,
    };
    m.packetizer.packetize(
        ts,
        in_band.iter().copied().chain(au.nal_units()),
        |header, payload| {
            let start = out.len();
            if let Some(ch) = tcp_channel {
                // RFC 2326 §10.12 framing; packets are < 1500 bytes so the length fits.
                let len = (header.len() + payload.len()) as u16;
                out.push(b'$');
                out.push(ch);
                out.extend_from_slice(&len.to_be_bytes());
            }
            out.extend_from_slice(header);
            match locate(&sources, payload) {
                Some(p) => packets.push((start..out.len(), p)),
                None => {
                    out.extend_from_slice(payload);
                    packets.push((start..out.len(), &[]));
                }
            }
        },
    );
    m.last_pair = Some((au.capture_us, ts));
    match transport {
        SessionTransport::Tcp { channels } if coalesce => {
            // TLS: one buffer, so the access unit becomes few full-size TLS records rather
            // than a record per 16-byte header.
            let mut flat = Vec::with_capacity(au.data.len() + packets.len() * 18 + 64);
            for (h, p) in &packets {
                flat.extend_from_slice(out.get(h.clone()).unwrap_or_default());
                flat.extend_from_slice(p);
            }
            if m.sr_due {
                let sr = sender_report(m);
                flat.push(b'$');
                flat.push(channels.1);
                flat.extend_from_slice(&(sr.len() as u16).to_be_bytes());
                flat.extend_from_slice(&sr);
            }
            write_all(stream, &flat, ctx.options.write_timeout).await?;
        }
        SessionTransport::Tcp { channels } => {
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(packets.len() * 2);
            for (h, p) in &packets {
                slices.push(IoSlice::new(out.get(h.clone()).unwrap_or_default()));
                if !p.is_empty() {
                    slices.push(IoSlice::new(p));
                }
            }
            write_vectored_all(stream, &mut slices, ctx.options.write_timeout).await?;
            if m.sr_due {
                let sr = sender_report(m);
                let mut framed = vec![b'$', channels.1];
                framed.extend_from_slice(&(sr.len() as u16).to_be_bytes());
                framed.extend_from_slice(&sr);
                write_all(stream, &framed, ctx.options.write_timeout).await?;
            }
        }
        SessionTransport::Udp { client, .. } => {
            let Some(udp) = &m.udp else { return Ok(()) };
            let to = SocketAddr::new(ctx.peer.ip(), client.0);
            let mut dgram = Vec::with_capacity(1500);
            for (h, p) in &packets {
                dgram.clear();
                dgram.extend_from_slice(out.get(h.clone()).unwrap_or_default());
                dgram.extend_from_slice(p);
                if let Err(e) = udp.rtp.send_to(&dgram, to).await {
                    tracing::debug!(%to, error = %e, "RTP send failed");
                }
            }
            if m.sr_due {
                let sr = sender_report(m);
                let to = SocketAddr::new(ctx.peer.ip(), client.1);
                if let Some(udp) = &m.udp {
                    let _ = udp.rtcp.send_to(&sr, to).await;
                }
            }
        }
    }
    Ok(())
}

/// RFC 3550 §6.4.1 sender report mapping the last access unit's capture time to its RTP
/// timestamp, so receivers can place frames on the wall clock.
fn sender_report(m: &mut Media) -> Vec<u8> {
    m.sr_due = false;
    let (capture_us, rtp_ts) = m.last_pair.unwrap_or((0, 0));
    let mut pkt = Vec::with_capacity(64);
    vigil_media::rtcp::write_sender_report(
        &mut pkt,
        m.packetizer.ssrc(),
        vigil_media::rtcp::ntp_from_unix_micros(capture_us),
        rtp_ts,
        m.packetizer.packet_count(),
        m.packetizer.octet_count(),
        "vigil",
    );
    pkt
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
