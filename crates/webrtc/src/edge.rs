//! The tokio edge: one UDP socket shared by every session, open only while a session
//! exists, and one driver task that owns the sessions. Thin by design: every protocol
//! decision is in [`Session`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vigil_hub::{Hub, Item};

use crate::session::{Poll, Session, SessionError};
use crate::stun::{self, TransactionId};
use crate::{Input, Protocol, Receive, SdpAnswer, SdpOffer};

/// How the edge binds and how many viewers it serves.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Address the shared UDP socket binds to (127.0.0.1 in tests, the unspecified address
    /// in production).
    pub bind: IpAddr,
    /// UDP port of the shared socket; 0 picks an ephemeral one each time it opens.
    pub udp_port: u16,
    /// Concurrent sessions at most; each costs a str0m `Rtc` (a few hundred KiB of send
    /// buffers) and one hub subscriber task.
    pub max_sessions: usize,
    /// A session whose ICE has not connected this long after the answer is dropped
    /// (normally [`crate::ICE_TIMEOUT`]): it holds a slot of `max_sessions` until then.
    pub ice_timeout: Duration,
}

/// Why an offer got no session.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// `max_sessions` are running (HTTP 503 with Retry-After).
    #[error("all {0} WebRTC sessions are in use")]
    Full(usize),
    /// The shared UDP socket could not be opened.
    #[error("cannot open the WebRTC UDP socket on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The driver task ended unexpectedly; the next offer starts a new one.
    #[error("the WebRTC driver stopped; try again")]
    Stopped,
    /// The session could not be set up.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// A session slot of an offer being answered; released on drop unless the session took it.
struct Slot<'a> {
    edge: &'a Edge,
    taken: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.taken {
            self.edge.release();
        }
    }
}

/// Identifies a session for [`Edge::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

enum Cmd {
    /// A session, its hub, and the host candidates it was answered with.
    Add(SessionId, Box<Session>, Hub, Vec<SocketAddr>),
    Close(SessionId),
}

/// How long the first offer after the socket opens waits for the STUN servers' answer:
/// one round trip to a server on the internet, with room to spare. A server that does not
/// answer costs only the offers of this first moment, which then go without a
/// server-reflexive candidate.
const STUN_WAIT: Duration = Duration::from_millis(500);

/// How often the server-reflexive address is asked again while the socket is open: below
/// the 30 s after which Linux conntrack (and most home routers) forget an unanswered UDP
/// mapping, so the address in the answers stays the one the NAT really uses.
const STUN_REFRESH: Duration = Duration::from_secs(25);

/// STUN transactions remembered (the latest requests; older answers are ignored).
const STUN_PENDING: usize = 8;

struct Shared {
    /// Sessions added and not yet ended, plus offers being answered; the driver exits
    /// (closing the socket) at zero.
    count: usize,
    /// Their ids (`count` of them).
    live: std::collections::HashSet<SessionId>,
    next_id: u64,
    running: Option<Running>,
}

struct Running {
    port: u16,
    cmd: mpsc::UnboundedSender<Cmd>,
    /// The server-reflexive address of the socket, once a STUN server has answered.
    reflexive: watch::Receiver<Option<SocketAddr>>,
    opened: Instant,
}

/// The WebRTC edge: hand it offers, it runs the sessions.
#[derive(Clone)]
pub struct Edge {
    config: EdgeConfig,
    shared: Arc<Mutex<Shared>>,
    /// UDP STUN servers (`host`, port) asked for the socket's server-reflexive address.
    stun: Arc<Vec<(String, u16)>>,
}

impl Edge {
    /// An edge with no socket open.
    pub fn new(config: EdgeConfig) -> Self {
        Edge {
            config,
            shared: Arc::new(Mutex::new(Shared {
                count: 0,
                live: std::collections::HashSet::new(),
                next_id: 0,
                running: None,
            })),
            stun: Arc::new(Vec::new()),
        }
    }

    /// Asks these STUN servers (see [`stun::udp_targets`]) for the socket's public address
    /// while it is open, and offers it as a server-reflexive candidate: what a viewer's TURN
    /// relay reaches when the recorder is behind a NAT.
    pub fn with_stun_servers(mut self, servers: Vec<(String, u16)>) -> Self {
        self.stun = Arc::new(servers);
        self
    }

    /// The socket's server-reflexive address, if a STUN server has told it.
    pub fn reflexive_address(&self) -> Option<SocketAddr> {
        self.lock()
            .running
            .as_ref()
            .and_then(|r| *r.reflexive.borrow())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Every update under this lock is a single assignment: a poisoned lock is consistent.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The UDP port while a session exists, `None` while the edge is idle.
    pub fn udp_port(&self) -> Option<u16> {
        self.lock().running.as_ref().map(|r| r.port)
    }

    /// Sessions running (or connecting).
    pub fn sessions(&self) -> usize {
        self.lock().count
    }

    /// Whether session `id` is still running (not closed, timed out or failed).
    pub fn is_live(&self, id: SessionId) -> bool {
        self.lock().live.contains(&id)
    }

    /// Answers `offer` for `hub`'s stream, advertising the shared socket's port on each of
    /// `host_ips`. Opens the socket if this is the first session.
    ///
    /// With STUN servers, the answer also carries the socket's server-reflexive address;
    /// the first offer after the socket opens waits up to [`STUN_WAIT`] for it.
    ///
    /// Must run inside a tokio runtime (the first session spawns the driver task there).
    pub async fn offer(
        &self,
        offer: SdpOffer,
        hub: &Hub,
        params: &vigil_media::StreamParams,
        host_ips: &[IpAddr],
    ) -> Result<(SessionId, SdpAnswer), EdgeError> {
        // The slot is taken before any wait, so that `max_sessions` bounds offers in flight
        // too, and the socket stays open meanwhile.
        let (port, mut reflexive, opened) = self.reserve()?;
        // Given back if the answer fails or the request goes away during the wait.
        let mut slot = Slot {
            edge: self,
            taken: true,
        };
        let mapped = if self.stun.is_empty() {
            None
        } else {
            let wait = STUN_WAIT.saturating_sub(opened.elapsed());
            // Whatever is known when the wait ends (nothing if no server answered in time).
            let _ = tokio::time::timeout(wait, reflexive.wait_for(Option::is_some)).await;
            let known = *reflexive.borrow();
            known
        };
        let answered = self.answer(offer, hub, params, host_ips, port, mapped)?;
        slot.taken = false;
        Ok(answered)
    }

    /// Gives back a slot taken by [`Edge::reserve`] that got no session.
    fn release(&self) {
        let mut shared = self.lock();
        shared.count = shared.count.saturating_sub(1);
        if shared.count == 0 {
            // Opened for this offer alone: dropping the sender ends the driver, which
            // closes the socket.
            shared.running = None;
        }
    }

    /// Takes a session slot, opening the socket (and starting the driver) if it is closed.
    fn reserve(&self) -> Result<(u16, watch::Receiver<Option<SocketAddr>>, Instant), EdgeError> {
        let mut shared = self.lock();
        if shared.count >= self.config.max_sessions {
            return Err(EdgeError::Full(self.config.max_sessions));
        }
        if let Some(r) = &shared.running {
            let out = (r.port, r.reflexive.clone(), r.opened);
            shared.count += 1;
            return Ok(out);
        }
        let addr = SocketAddr::new(self.config.bind, self.config.udp_port);
        let socket = std::net::UdpSocket::bind(addr)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .and_then(UdpSocket::from_std)
            .map_err(|e| EdgeError::Bind(addr, e))?;
        let port = socket
            .local_addr()
            .map_err(|e| EdgeError::Bind(addr, e))?
            .port();
        let (cmd, rx) = mpsc::unbounded_channel();
        let (reflexive_tx, reflexive) = watch::channel(None);
        tokio::spawn(drive(
            Arc::new(socket),
            rx,
            self.shared.clone(),
            self.stun.clone(),
            reflexive_tx,
        ));
        let opened = Instant::now();
        shared.running = Some(Running {
            port,
            cmd,
            reflexive: reflexive.clone(),
            opened,
        });
        shared.count += 1;
        Ok((port, reflexive, opened))
    }

    /// Answers an offer in a reserved slot; on error the caller gives the slot back.
    fn answer(
        &self,
        offer: SdpOffer,
        hub: &Hub,
        params: &vigil_media::StreamParams,
        host_ips: &[IpAddr],
        port: u16,
        mapped: Option<SocketAddr>,
    ) -> Result<(SessionId, SdpAnswer), EdgeError> {
        let candidates: Vec<SocketAddr> = host_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        // The mapping was learnt from the socket; its base is the host candidate of the same
        // family. No NAT (the mapped address is a host candidate): nothing to add.
        let reflexive: Vec<(SocketAddr, SocketAddr)> = mapped
            .filter(|m| !candidates.contains(m))
            .and_then(|m| {
                candidates
                    .iter()
                    .find(|c| c.is_ipv4() == m.is_ipv4())
                    .map(|base| (m, *base))
            })
            .into_iter()
            .collect();
        let now = Instant::now();
        // The latest audio frame's codec: a hub with audio has one within a frame time
        // (20-60 ms for G.711) of its first picture, so only an offer in the first moment
        // after the camera connects goes without sound.
        let audio = hub.audio_params();
        let (mut session, answer) = Session::accept_with_audio(
            offer,
            params,
            audio.as_deref(),
            &candidates,
            &reflexive,
            now,
        )?;
        session.set_connect_timeout(self.config.ice_timeout, now);
        let mut shared = self.lock();
        let id = SessionId(shared.next_id);
        shared.next_id += 1;
        let sent = shared.running.as_ref().is_some_and(|r| {
            r.cmd
                .send(Cmd::Add(id, Box::new(session), hub.clone(), candidates))
                .is_ok()
        });
        if !sent {
            // The driver only exits under this lock with `count == 0`; it can only be gone
            // if it panicked. Start afresh with the next offer.
            shared.running = None;
            return Err(EdgeError::Stopped);
        }
        // The slot reserved for this offer is now the session's.
        shared.live.insert(id);
        Ok((id, answer))
    }

    /// Ends a session (WHEP DELETE). Unknown or ended ids are ignored.
    pub fn close(&self, id: SessionId) {
        if let Some(r) = &self.lock().running {
            let _ = r.cmd.send(Cmd::Close(id));
        }
    }
}

struct Live {
    session: Box<Session>,
    hub: Hub,
    /// Its host candidates: with a wildcard bind, the addresses a datagram may have been
    /// sent to.
    candidates: Vec<SocketAddr>,
    wake: Option<Instant>,
    feeder: Option<JoinHandle<()>>,
}

/// Access units and audio frames queued from the feeders to the driver, per edge. A feeder
/// that cannot queue waits, its hub subscriber lags and skips to the next key frame: a
/// slow driver costs that viewer frames, never the source.
const AU_QUEUE: usize = 256;

/// Aborts a task when dropped: the STUN task ends with the driver, whichever way it exits.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The transactions of the latest Binding requests, newest last.
type Pending = Arc<Mutex<Vec<TransactionId>>>;

/// Asks each STUN server for the socket's mapped address now and every [`STUN_REFRESH`];
/// the driver reads the answers (they arrive on the shared socket).
async fn ask_stun(socket: Arc<UdpSocket>, servers: Arc<Vec<(String, u16)>>, pending: Pending) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    loop {
        for (host, port) in servers.iter() {
            // A name that does not resolve in time is tried again at the next round.
            let resolved = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host((host.as_str(), *port)),
            )
            .await;
            let Ok(Ok(addrs)) = resolved else {
                tracing::debug!(server = %host, "STUN server did not resolve");
                continue;
            };
            // A socket bound to an IPv4 address cannot send to IPv6, nor the reverse.
            let Some(to) = addrs
                .into_iter()
                .find(|a| local.ip().is_unspecified() || a.is_ipv4() == local.is_ipv4())
            else {
                continue;
            };
            // RFC 8489 §5: random, so that an off-path host cannot answer in the server's name.
            let id: TransactionId = rand::random();
            {
                let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
                if p.len() >= STUN_PENDING {
                    p.remove(0);
                }
                p.push(id);
            }
            let _ = socket.send_to(&stun::binding_request(&id), to).await;
        }
        tokio::time::sleep(STUN_REFRESH).await;
    }
}

/// If `datagram` answers one of our Binding requests, publishes the mapped address.
fn stun_answer(
    datagram: &[u8],
    pending: &Pending,
    reflexive: &watch::Sender<Option<SocketAddr>>,
) -> bool {
    if !stun::is_stun(datagram) {
        return false;
    }
    let ids: Vec<TransactionId> = pending.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for id in &ids {
        match stun::parse_binding_response(datagram, id) {
            Ok(mapped) => {
                reflexive.send_if_modified(|old| {
                    let changed = *old != Some(mapped);
                    if changed {
                        tracing::info!(%mapped, "WebRTC server-reflexive address");
                    }
                    *old = Some(mapped);
                    changed
                });
                return true;
            }
            Err(stun::StunError::OtherTransaction) => {}
            Err(e) => {
                tracing::warn!(error = %e, "STUN server answer ignored");
                return true;
            }
        }
    }
    false
}

async fn drive(
    socket: Arc<UdpSocket>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    shared: Arc<Mutex<Shared>>,
    stun_servers: Arc<Vec<(String, u16)>>,
    reflexive: watch::Sender<Option<SocketAddr>>,
) {
    let local = socket.local_addr().ok();
    let pending: Pending = Arc::new(Mutex::new(Vec::new()));
    let _stun = (!stun_servers.is_empty()).then(|| {
        AbortOnDrop(tokio::spawn(ask_stun(
            socket.clone(),
            stun_servers,
            pending.clone(),
        )))
    });
    let (au_tx, mut au_rx) = mpsc::channel::<(SessionId, Item)>(AU_QUEUE);
    let mut sessions: HashMap<SessionId, Live> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let wake = sessions.values().filter_map(|s| s.wake).min();
        let sleep = async {
            match wake {
                Some(w) => tokio::time::sleep_until(w.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut touched: Vec<SessionId> = Vec::new();
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Add(id, session, hub, candidates)) => {
                    sessions.insert(id, Live { session, hub, candidates, wake: None, feeder: None });
                    touched.push(id);
                }
                Some(Cmd::Close(id)) => {
                    if let Some(s) = sessions.get_mut(&id) {
                        s.session.close();
                        touched.push(id);
                    }
                }
                None => return,
            },
            r = socket.recv_from(&mut buf) => {
                if let (Ok((n, source)), Some(local)) = (r, local) {
                    if stun_answer(&buf[..n], &pending, &reflexive) {
                        // Our own STUN transaction: for no session.
                    } else if let Some(id) = deliver(&mut sessions, local, source, &buf[..n]) {
                        touched.push(id);
                    }
                }
            },
            Some((id, item)) = au_rx.recv() => {
                if let Some(s) = sessions.get_mut(&id) {
                    let written = match &item {
                        Item::Video(au) => s.session.write(au, Instant::now(), wall_clock_us()),
                        Item::Audio(frame) => s.session.write_audio(frame, Instant::now()),
                        _ => Ok(false),
                    };
                    if written.is_err() {
                        s.session.close();
                    }
                    touched.push(id);
                }
            },
            () = sleep => {
                let now = Instant::now();
                for (id, s) in sessions.iter_mut() {
                    if s.wake.is_some_and(|w| w <= now) {
                        if s.session.handle_timeout(now).is_err() {
                            s.session.close();
                        }
                        touched.push(*id);
                    }
                }
            },
        }
        for id in touched {
            let Some(s) = sessions.get_mut(&id) else {
                continue;
            };
            if !poll_session(id, s, &socket, &au_tx) {
                if let Some(s) = sessions.remove(&id) {
                    if let Some(f) = s.feeder {
                        f.abort();
                    }
                }
                let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
                shared.count = shared.count.saturating_sub(1);
                shared.live.remove(&id);
            }
        }
        if sessions.is_empty() {
            let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
            if shared.count == 0 {
                // Under the lock no offer can be adding a session: close the port.
                shared.running = None;
                return;
            }
        }
    }
}

/// Hands a datagram to the session it is for (RFC 8445 §7.3 and the ICE credentials:
/// str0m knows); answers that session's id.
///
/// str0m drops a STUN request whose destination is none of its host candidates. A socket
/// bound to the wildcard address does not say which of the host's addresses a datagram
/// came to, so each session's own candidates are tried as the destination.
fn deliver(
    sessions: &mut HashMap<SessionId, Live>,
    local: SocketAddr,
    source: SocketAddr,
    datagram: &[u8],
) -> Option<SessionId> {
    let now = Instant::now();
    for (id, s) in sessions.iter_mut() {
        let destinations: &[SocketAddr] = if local.ip().is_unspecified() {
            &s.candidates
        } else {
            std::slice::from_ref(&local)
        };
        for destination in destinations {
            let Ok(r) = Receive::new(Protocol::Udp, source, *destination, datagram) else {
                return None;
            };
            let input = Input::Receive(now, r);
            if s.session.accepts(&input) {
                if s.session.handle_input(input).is_err() {
                    s.session.close();
                }
                return Some(*id);
            }
        }
    }
    None
}

/// Polls a session until it waits; false once it is over.
fn poll_session(
    id: SessionId,
    s: &mut Live,
    socket: &UdpSocket,
    au_tx: &mpsc::Sender<(SessionId, Item)>,
) -> bool {
    loop {
        match s.session.poll() {
            Ok(Poll::Transmit(t)) => {
                // A full socket buffer loses the datagram, as the network could; RTX and
                // PLI repair it. Never wait here: it would stall every other session.
                let _ = socket.try_send_to(&t.contents, t.destination);
            }
            Ok(Poll::Wait(w)) => {
                s.wake = Some(w);
                return true;
            }
            Ok(Poll::Connected) => {
                let mut sub = s.hub.subscribe();
                let tx = au_tx.clone();
                let audio = s.session.has_audio();
                // One subscriber for both, so audio and video reach the session in the
                // order the camera sent them; without an audio section, video only.
                s.feeder = Some(tokio::spawn(async move {
                    loop {
                        let item = match audio {
                            true => sub.recv().await,
                            false => sub.recv_video().await.map(Item::Video),
                        };
                        let Ok(item) = item else {
                            return;
                        };
                        if matches!(item, Item::Video(_) | Item::Audio(_))
                            && tx.send((id, item)).await.is_err()
                        {
                            return;
                        }
                    }
                }));
            }
            Ok(Poll::Closed) | Err(_) => return false,
        }
    }
}

/// The wall clock in µs since the epoch (0 if it is before 1970): the server time sent
/// beside each frame's capture time.
fn wall_clock_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use str0m::media::{Direction, MediaKind};
    use str0m::{Candidate, Event, Output, Rtc, RtcConfig};
    use vigil_media::{AccessUnit, Codec, StreamParams};

    use super::*;

    pub(super) fn params() -> Arc<StreamParams> {
        Arc::new(StreamParams {
            codec: Codec::H264,
            vps: None,
            sps: Bytes::from(crate::check::tests::sps(66, 0xe0, 2)),
            pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
            width: 320,
            height: 240,
            fps: Some(25.0),
        })
    }

    pub(super) fn client(addr: SocketAddr) -> (Rtc, SdpOffer, str0m::change::SdpPendingOffer) {
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("offer");
        (rtc, offer, pending)
    }

    /// A real offer (aiortc 1.16.0, recvonly video: VP8, and H.264 42001f and 42e01f in
    /// packetization mode 1) is answered with H.264 alone, in the camera's own profile.
    #[test]
    fn aiortc_offer_is_answered_with_the_cameras_h264() {
        let sdp = include_str!("../testdata/aiortc-1.16.0-recvonly-offer.sdp");
        let offer = crate::check_offer(sdp).expect("aiortc's offer passes the checks");
        let host = ["127.0.0.1:5000".parse().expect("addr")];
        let (_, answer) =
            Session::accept(offer, &params(), &host, Instant::now()).expect("answered");
        let answer = answer.to_sdp_string();
        assert!(answer.contains("H264/90000"), "{answer}");
        assert!(answer.contains("packetization-mode=1"), "{answer}");
        assert!(answer.contains("profile-level-id=42e0"), "{answer}");
        assert!(!answer.contains("VP8"), "{answer}");
        assert!(answer.contains("127.0.0.1 5000 typ host"), "{answer}");
    }

    /// A real str0m client over real UDP on 127.0.0.1 plays a hub through the edge; the
    /// session limit holds; after the last session the port is closed.
    #[tokio::test]
    async fn plays_over_udp_bounds_sessions_and_closes_the_port() {
        let edge = Edge::new(EdgeConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            udp_port: 0,
            max_sessions: 2,
            ice_timeout: crate::ICE_TIMEOUT,
        });
        assert_eq!(edge.udp_port(), None);
        let params = params();
        let hub = Hub::new("test", 64);
        let publisher = {
            let hub = hub.clone();
            let params = params.clone();
            tokio::spawn(async move {
                for n in 0i64.. {
                    let key = n % 10 == 0;
                    let nal: Vec<u8> = if key {
                        [&[0x65u8, 0x88][..], &[n as u8; 3000]].concat()
                    } else {
                        [&[0x41u8, 0x9a][..], &[n as u8; 400]].concat()
                    };
                    hub.publish(AccessUnit {
                        params: params.clone(),
                        pts: n * 3600,
                        capture_us: 0,
                        key,
                        data: vigil_media::h264::avcc_from_nals([nal.as_slice()]).into(),
                    });
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;

        // A declined stream opens the socket for the answer's candidate, then closes it.
        let mut h265 = (*params).clone();
        h265.codec = Codec::H265;
        let (_, offer0, _) = client("127.0.0.1:9".parse().expect("addr"));
        let loopback = [IpAddr::from([127, 0, 0, 1])];
        assert!(matches!(
            edge.offer(offer0, &hub, &h265, &loopback).await,
            Err(EdgeError::Session(SessionError::Declined(
                crate::Declined::H265
            )))
        ));
        assert_eq!(edge.udp_port(), None);

        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
        let client_addr = sock.local_addr().expect("addr");
        let (mut rtc, offer, pending) = client(client_addr);
        let (id1, answer) = edge
            .offer(offer, &hub, &params, &loopback)
            .await
            .expect("first session");
        let port = edge.udp_port().expect("socket open with a session");
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .expect("answer");

        let started = Instant::now();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; 2048];
        while frames.len() < 10 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no media in 10 s"
            );
            let wait = loop {
                match rtc.poll_output().expect("client runs") {
                    Output::Transmit(t) => {
                        sock.send_to(&t.contents, t.destination)
                            .await
                            .expect("send");
                    }
                    Output::Timeout(t) => break t,
                    Output::Event(Event::MediaData(d)) => frames.push(d.data.to_vec()),
                    Output::Event(_) => {}
                }
            };
            let wait = wait.saturating_duration_since(Instant::now());
            let input = tokio::time::timeout(wait, sock.recv_from(&mut buf)).await;
            match input {
                Ok(Ok((n, source))) => {
                    let r = Receive::new(Protocol::Udp, source, client_addr, &buf[..n])
                        .expect("datagram");
                    rtc.handle_input(Input::Receive(Instant::now(), r))
                        .expect("input");
                }
                _ => rtc
                    .handle_input(Input::Timeout(Instant::now()))
                    .expect("timeout"),
            }
        }
        let nal_types: Vec<u8> = vigil_media::h264::split_annexb(&frames[0])
            .filter_map(vigil_media::h264::nal_type)
            .collect();
        assert_eq!(
            nal_types,
            [7, 8, 5],
            "starts on the hub's key frame with SPS, PPS"
        );
        eprintln!("first 10 frames after {:?}", started.elapsed());

        // A second session (never connects) fits; a third does not.
        let (_, offer2, _) = client("127.0.0.1:9".parse().expect("addr"));
        let (id2, _) = edge
            .offer(offer2, &hub, &params, &loopback)
            .await
            .expect("second");
        assert_eq!(edge.udp_port(), Some(port), "one socket for all sessions");
        let (_, offer3, _) = client("127.0.0.1:9".parse().expect("addr"));
        assert!(matches!(
            edge.offer(offer3, &hub, &params, &loopback).await,
            Err(EdgeError::Full(2))
        ));

        edge.close(id1);
        edge.close(id2);
        for _ in 0..100 {
            if edge.udp_port().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(edge.udp_port(), None);
        assert_eq!(edge.sessions(), 0);
        assert!(!edge.is_live(id1) && !edge.is_live(id2));
        // The port is really free again.
        std::net::UdpSocket::bind(("127.0.0.1", port)).expect("port closed");
        publisher.abort();
    }
}

#[cfg(test)]
mod stun_tests {
    use super::*;

    /// With a STUN server configured, the first answer waits for its reply and carries the
    /// mapped address as a server-reflexive candidate beside the host candidate.
    #[tokio::test]
    async fn answer_carries_the_server_reflexive_address() {
        // A STUN server on loopback that maps every request to 198.51.100.7:40000, as a NAT
        // in front of the recorder would.
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("stun socket");
        let server_addr = server.local_addr().expect("addr");
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        let responder = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let m = &buf[..n];
                if n == 20 && m[0..2] == [0, 1] {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let mut id = [0u8; 12];
                    id.copy_from_slice(&m[8..20]);
                    let mapped = "198.51.100.7:40000".parse().expect("addr");
                    let _ = server
                        .send_to(&stun::binding_success(&id, mapped), from)
                        .await;
                }
            }
        });
        let edge = Edge::new(EdgeConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            udp_port: 0,
            max_sessions: 2,
            ice_timeout: Duration::from_millis(500),
        })
        .with_stun_servers(vec![("127.0.0.1".into(), server_addr.port())]);
        let hub = Hub::new("test", 8);
        let (_, offer, _) = tests::client("127.0.0.1:9".parse().expect("addr"));
        let (_, answer) = edge
            .offer(
                offer,
                &hub,
                &tests::params(),
                &[IpAddr::from([127, 0, 0, 1])],
            )
            .await
            .expect("session");
        let port = edge.udp_port().expect("open");
        let sdp = answer.to_sdp_string();
        assert!(
            // str0m hides the base (raddr 0.0.0.0), as browsers do.
            sdp.contains("198.51.100.7 40000 typ srflx"),
            "{sdp}"
        );
        assert!(sdp.contains(&format!("127.0.0.1 {port} typ host")), "{sdp}");
        assert_eq!(
            edge.reflexive_address(),
            Some("198.51.100.7:40000".parse().expect("addr"))
        );
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);
        responder.abort();
    }

    /// A STUN server that never answers delays the first answer by at most `STUN_WAIT`,
    /// which then has host candidates only; a request dropped while waiting gives its
    /// slot back.
    #[tokio::test]
    async fn silent_stun_server_costs_at_most_the_wait() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
        let port = silent.local_addr().expect("addr").port();
        let edge = Edge::new(EdgeConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            udp_port: 0,
            max_sessions: 1,
            ice_timeout: Duration::from_millis(300),
        })
        .with_stun_servers(vec![("127.0.0.1".into(), port)]);
        let hub = Hub::new("test", 8);
        let host = [IpAddr::from([127, 0, 0, 1])];

        // Given up during the wait (the HTTP request went away): the slot comes back.
        let (_, offer, _) = tests::client("127.0.0.1:9".parse().expect("addr"));
        let dropped = tokio::time::timeout(
            Duration::from_millis(50),
            edge.offer(offer, &hub, &tests::params(), &host),
        )
        .await;
        assert!(dropped.is_err(), "still waiting for STUN at 50 ms");
        assert_eq!(edge.sessions(), 0);
        assert_eq!(edge.udp_port(), None, "the socket opened for it is closed");

        let started = Instant::now();
        let (_, offer, _) = tests::client("127.0.0.1:9".parse().expect("addr"));
        let (_, answer) = edge
            .offer(offer, &hub, &tests::params(), &host)
            .await
            .expect("session");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let sdp = answer.to_sdp_string();
        assert!(!sdp.contains("srflx"), "{sdp}");
        assert!(sdp.contains("typ host"), "{sdp}");
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    /// An offer whose client never sends a datagram frees its slot and, being the last
    /// session, the port once the ICE timeout passes.
    #[tokio::test]
    async fn unconnected_session_times_out_and_closes_the_port() {
        let edge = Edge::new(EdgeConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            udp_port: 0,
            max_sessions: 1,
            ice_timeout: Duration::from_millis(300),
        });
        let params = tests::params();
        let hub = Hub::new("test", 8);
        let (_, offer, _) = tests::client("127.0.0.1:9".parse().expect("addr"));
        let started = Instant::now();
        let (id, _) = edge
            .offer(offer, &hub, &params, &[IpAddr::from([127, 0, 0, 1])])
            .await
            .expect("session");
        assert_eq!(edge.sessions(), 1);
        assert!(edge.is_live(id));
        while edge.udp_port().is_some() {
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "session never timed out"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(edge.sessions(), 0);
        assert!(!edge.is_live(id));
    }
}
