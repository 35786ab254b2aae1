//! Live view: `GET /api/cameras/{name}/live?stream=main|sub`, a WebSocket carrying
//! fragmented MP4 for Media Source Extensions.
//!
//! Protocol (server → client only; client messages are ignored except close):
//! 1. text `{"type":"init","codec":"avc1.42C01E","width":640,"height":360,"server_time_us":…}`
//!    (codec per RFC 6381, for `MediaSource.isTypeSupported`), then a binary message of kind 0
//!    holding the initialization segment (`ftyp` + `moov`);
//! 2. binary messages of kind 1, each one `moof` + `mdat` holding ONE access unit, its `tfdt`
//!    being the access unit's pts. The first is the newest key frame in the hub's GOP cache,
//!    then the rest of that GOP, then live pictures: play starts at once;
//! 3. text `{"type":"ping","server_time_us":…}` every 2 s, for the client's clock offset.
//!
//! Every binary message starts with a 17-byte header: byte 0 the kind (0 init segment,
//! 1 media fragment), bytes 1..9 the capture time (µs since the epoch, i64 big-endian, the
//! camera side's wall clock), bytes 9..17 the pts (90 kHz, i64 big-endian).
//!
//! A change of codec parameters (codec, size) or a break in the timeline (pts going back, or
//! jumping ahead by more than [`MAX_PTS_JUMP`], as after a camera reconnect) starts over
//! with a new init message and init segment, on a key frame.
//!
//! Isolation: each viewer has its own bounded queue of [`QUEUE_LEN`] messages between the hub
//! and its socket (the cached GOP at the start waits for room in it; live pictures do not). A viewer whose network cannot keep up fills its queue; what does not fit
//! is dropped and the viewer resumes at the next key frame (the same happens when it lags
//! behind the hub itself). The camera, the recorder and the other viewers never wait for it.
//! A viewer that takes nothing for [`SEND_TIMEOUT`] is disconnected.
//!
//! A camera that goes offline keeps the socket open (pings continue); pictures resume when the
//! hub publishes again. If the camera's hub is replaced (the camera was edited), the new one is
//! picked up; if the camera was removed, the socket is closed with code 4404.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use vigil_hub::Hub;
use vigil_media::fmp4::live::{codec_string, init_segment, write_fragment};
use vigil_media::{AccessUnit, StreamParams};

use crate::auth::Identity;
use crate::{Access, ApiError, AppState, RouteDoc};

/// Live view sockets open now, process-wide (one web app per process; for `/metrics`).
static VIEWERS: AtomicU64 = AtomicU64::new(0);

/// Live view sockets being served now (every camera and stream).
pub fn viewers_now() -> u64 {
    VIEWERS.load(Ordering::Relaxed)
}

/// Counts a viewer for as long as it lives, however its socket ends.
struct ViewerGuard;

impl ViewerGuard {
    fn new() -> Self {
        VIEWERS.fetch_add(1, Ordering::Relaxed);
        ViewerGuard
    }
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        VIEWERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The live route.
pub const ROUTES: &[RouteDoc] = &[RouteDoc {
    method: "GET",
    path: "/api/cameras/{name}/live",
    access: Access::User,
    summary: "Live view: fragmented MP4 over a WebSocket (query stream=main|sub)",
}];

/// Messages a viewer may have queued before it is skipped to the next key frame: about 1 s
/// of video at 30 fps, so a viewer is never more than that behind because of its queue.
pub const QUEUE_LEN: usize = 32;

/// Interval of the `ping` text messages.
pub const PING_INTERVAL: Duration = Duration::from_secs(2);

/// A forward pts jump larger than this (10 s at 90 kHz) is a new timeline, not a gap.
pub const MAX_PTS_JUMP: i64 = 10 * 90_000;

/// Bytes of the header in front of every binary message.
pub const HEADER_LEN: usize = 17;

/// Binary message kind: initialization segment.
pub const KIND_INIT: u8 = 0;
/// Binary message kind: one media fragment.
pub const KIND_FRAGMENT: u8 = 1;

/// Longest time one message may take to go out before the viewer is disconnected.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a viewer waiting for a camera's hub (not started yet, being restarted) asks again.
const HUB_RETRY: Duration = Duration::from_millis(500);
/// How often an open stream re-checks that its viewer is still logged in and allowed.
const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The live routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/cameras/{name}/live", get(live))
}

/// The stream a live request names (`main` by default, or `sub`), once the caller may view
/// camera `name` and it exists: the checks the MSE and WHEP live routes share, in one order
/// (400, 403, 404).
pub(crate) fn live_stream(
    state: &AppState,
    identity: &Identity,
    name: &str,
    stream: Option<String>,
) -> Result<String, ApiError> {
    let stream = stream.unwrap_or_else(|| "main".to_owned());
    if stream != "main" && stream != "sub" {
        return Err(ApiError::bad_request("stream must be main or sub"));
    }
    if !identity.user.can_view(name) {
        return Err(ApiError::forbidden());
    }
    if state.nvr.camera(name).is_none() {
        return Err(ApiError::not_found(format!("no camera named {name:?}")));
    }
    Ok(stream)
}

#[derive(Deserialize)]
struct LiveQuery {
    stream: Option<String>,
}

async fn live(
    identity: Identity,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<LiveQuery>, QueryRejection>,
    // Taken as a Result so that authorization and the camera's existence are answered (403,
    // 404) before a request that is no WebSocket upgrade is refused.
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let stream = live_stream(&state, &identity, &name, crate::playback::query(q)?.stream)?;
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let until = session_end(state.clone(), identity, name.clone());
    let nvr = state.nvr.clone();
    let lookup = move || match nvr.hub(&name, &stream) {
        Some(hub) => Lookup::Hub(hub),
        None if nvr.camera(&name).is_some() => Lookup::NotYet,
        None => Lookup::Gone,
    };
    Ok(ws
        // The client sends nothing but close: no reason to accept large messages.
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve_socket_until(socket, lookup, until)))
}

/// Ends a viewer's stream when the server shuts down ("going away", 1001: the client
/// reconnects to the restarted server) or when its caller is no longer allowed to watch
/// (logout, revoked session or token, removed user or camera access: 4401), re-checked
/// every [`RECHECK_INTERVAL`].
async fn session_end(state: AppState, identity: Identity, camera: String) -> CloseFrame {
    let st = state.clone();
    let still_ok = move || identity.still_valid(&st, Some(&camera));
    let refused = CloseFrame {
        code: 4401,
        reason: "session ended".into(),
    };
    end_when_refused(&state, RECHECK_INTERVAL, still_ok, refused).await
}

/// Completes with `refused` once `still_ok` (asked every `every`, on the blocking pool: it
/// reads a database) says no, or with "going away" (1001) when the server shuts down.
pub(crate) async fn end_when_refused(
    state: &AppState,
    every: Duration,
    still_ok: impl Fn() -> bool + Clone + Send + 'static,
    refused: CloseFrame,
) -> CloseFrame {
    let mut closing = state.closing.subscribe();
    let mut recheck = tokio::time::interval(every);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // A dropped sender also means the server is gone.
            _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
                return CloseFrame { code: 1001, reason: "server shutting down".into() };
            }
            _ = recheck.tick() => {
                let ok = tokio::task::spawn_blocking(still_ok.clone()).await.unwrap_or(false);
                if !ok {
                    return refused;
                }
            }
        }
    }
}

/// What the viewer's stream currently is.
pub enum Lookup {
    /// The stream's hub.
    Hub(Hub),
    /// The camera exists but its stream has no hub right now: ask again later.
    NotYet,
    /// The camera no longer exists: close the socket.
    Gone,
}

/// Serves one viewer on an upgraded socket until the client closes it or `lookup` says the
/// camera is gone. `lookup` is asked for the hub at the start and whenever the hub ends.
/// Public so that tests can serve a hub of their own.
pub async fn serve_socket(socket: WebSocket, lookup: impl Fn() -> Lookup + Send + 'static) {
    serve_socket_until(socket, lookup, std::future::pending()).await
}

/// [`serve_socket`], also closed with the frame `until` yields once it completes (server
/// shutdown, session ended).
pub async fn serve_socket_until(
    socket: WebSocket,
    lookup: impl Fn() -> Lookup + Send + 'static,
    until: impl Future<Output = CloseFrame> + Send + 'static,
) {
    let _viewer = ViewerGuard::new();
    let (mut sink, mut incoming) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE_LEN);
    let write = async move {
        while let Some(msg) = rx.recv().await {
            let closing = matches!(msg, Message::Close(_));
            // A client that takes no data at all for this long is gone (or hostile): its
            // connection is closed rather than kept forever with a full queue.
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(msg)).await {
                Ok(Ok(())) if !closing => {}
                _ => break,
            }
        }
    };
    // Reading is what notices the client's close (and answers its pings).
    let read = async move {
        while let Some(Ok(msg)) = incoming.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    tokio::select! {
        _ = forward(lookup, tx, until) => {}
        _ = write => {}
        _ = read => {}
    }
}

/// Feeds the viewer's queue from the hub (re-looked up whenever it ends) and the ping timer.
async fn forward(
    lookup: impl Fn() -> Lookup,
    tx: mpsc::Sender<Message>,
    until: impl Future<Output = CloseFrame>,
) {
    tokio::pin!(until);
    let mut muxer = LiveMuxer::default();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut sub = match lookup() {
            Lookup::Hub(hub) => hub.subscribe(),
            Lookup::NotYet => {
                tokio::select! {
                    _ = tokio::time::sleep(HUB_RETRY) => {}
                    _ = ping.tick() => send_ping(&tx, &muxer),
                    frame = &mut until => return close(&tx, frame).await,
                }
                continue;
            }
            Lookup::Gone => {
                let frame = CloseFrame {
                    code: 4404,
                    reason: "camera removed".into(),
                };
                return close(&tx, frame).await;
            }
        };
        // The cached GOP arrives all at once and may be longer than the queue (a 2 s GOP at
        // 30 fps is 60 pictures): those wait for room instead of being dropped, or a new
        // viewer would start at the next key frame instead of now. Only live pictures are
        // dropped when the viewer is behind.
        let mut catch_up = sub.pending();
        loop {
            tokio::select! {
                r = sub.recv_video() => match r {
                    Ok(au) => {
                        let out = muxer.push(&au, now_us());
                        if catch_up > 0 {
                            catch_up -= 1;
                            for m in out {
                                if tx.send(m).await.is_err() {
                                    return;
                                }
                            }
                        } else {
                            enqueue(&tx, &mut muxer, out);
                        }
                    }
                    // The hub was dropped: the camera was edited or removed.
                    Err(_) => break,
                },
                _ = ping.tick() => send_ping(&tx, &muxer),
                frame = &mut until => return close(&tx, frame).await,
            }
            if tx.is_closed() {
                return;
            }
        }
        // The next hub starts a new timeline.
        muxer.restart();
    }
}

/// Queues the close frame; the writer ends the session once it is out, so this never returns
/// (the caller's `select!` ends with the writer).
async fn close(tx: &mpsc::Sender<Message>, frame: CloseFrame) {
    let _ = tx.send(Message::Close(Some(frame))).await;
    std::future::pending().await
}

/// Queues one access unit's messages, all or nothing: if they do not fit, the viewer is
/// behind; it skips to the next key frame (with a new init if this one carried it).
fn enqueue(tx: &mpsc::Sender<Message>, muxer: &mut LiveMuxer, out: Vec<Message>) {
    if out.is_empty() {
        return;
    }
    if tx.capacity() < out.len() {
        muxer.dropped(out.len() > 1);
        return;
    }
    for m in out {
        // Only this task sends, so the capacity checked above is still there.
        if tx.try_send(m).is_err() {
            muxer.dropped(true);
            return;
        }
    }
}

/// A `ping` text message once the stream is under way; a WebSocket ping before (the contract
/// makes the init message the first text message a client sees).
fn send_ping(tx: &mpsc::Sender<Message>, muxer: &LiveMuxer) {
    let msg = if muxer.params.is_some() {
        let body = serde_json::json!({ "type": "ping", "server_time_us": now_us() });
        Message::Text(body.to_string().into())
    } else {
        Message::Ping(Bytes::new())
    };
    // A full queue already means the client is busy; a lost ping does no harm.
    let _ = tx.try_send(msg);
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Sans-IO state of one viewer's stream: which init segment it has, the fragment sequence
/// number, the frame-interval estimate, and whether it must wait for a key frame.
#[derive(Default)]
struct LiveMuxer {
    /// Parameters of the init segment the viewer has; `None` before the first.
    params: Option<Arc<StreamParams>>,
    seq: u32,
    last_pts: Option<i64>,
    /// Duration given to the next fragment, in 90 kHz ticks.
    duration: u32,
    need_key: bool,
    /// Access units dropped because the viewer was behind.
    dropped: u64,
}

impl LiveMuxer {
    /// The messages for one access unit: nothing while waiting for a key frame; a new init
    /// message and segment first when the parameters or the timeline changed.
    fn push(&mut self, au: &AccessUnit, now_us: i64) -> Vec<Message> {
        let new_params = self
            .params
            .as_ref()
            .is_none_or(|p| !Arc::ptr_eq(p, &au.params) && **p != *au.params);
        let discontinuity = self
            .last_pts
            .is_some_and(|last| au.pts <= last || au.pts - last > MAX_PTS_JUMP);
        let restart = new_params || discontinuity;
        if (restart || self.need_key) && !au.key {
            self.need_key = true;
            return Vec::new();
        }
        self.need_key = false;
        let mut out = Vec::with_capacity(3);
        if restart {
            self.params = Some(au.params.clone());
            self.last_pts = None;
            self.duration = nominal_duration(&au.params);
            let init = serde_json::json!({
                "type": "init",
                "codec": codec_string(&au.params),
                "width": au.params.width,
                "height": au.params.height,
                "server_time_us": now_us,
            });
            out.push(Message::Text(init.to_string().into()));
            let segment = init_segment(&au.params);
            let mut msg = Vec::with_capacity(HEADER_LEN + segment.len());
            put_header(&mut msg, KIND_INIT, au);
            msg.extend_from_slice(&segment);
            out.push(Message::Binary(msg.into()));
        }
        if let Some(last) = self.last_pts {
            // Measured interval of the previous pair; MSE places each fragment by its tfdt,
            // so this only says how long the newest picture stays up if the next is late.
            if let Ok(d) = u32::try_from(au.pts - last) {
                if d > 0 && i64::from(d) <= 90_000 {
                    self.duration = d;
                }
            }
        }
        self.last_pts = Some(au.pts);
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(HEADER_LEN + au.data.len() + 128);
        put_header(&mut msg, KIND_FRAGMENT, au);
        write_fragment(&mut msg, self.seq, au, self.duration);
        out.push(Message::Binary(msg.into()));
        out
    }

    /// The viewer could not take the last access unit: resume at a key frame, with a new
    /// init segment if the dropped messages held it.
    fn dropped(&mut self, lost_init: bool) {
        self.dropped += 1;
        self.need_key = true;
        if lost_init {
            self.params = None;
        }
        tracing::debug!(
            dropped = self.dropped,
            "live viewer behind; skipping to the next key frame"
        );
    }

    /// A new hub: its first key frame gets a new init segment.
    fn restart(&mut self) {
        self.params = None;
        self.last_pts = None;
        self.need_key = true;
    }
}

/// One frame at the nominal frame rate, 30 fps if unknown.
fn nominal_duration(params: &StreamParams) -> u32 {
    params
        .fps
        .filter(|f| f.is_finite() && *f >= 1.0)
        .map_or(3000, |f| (90_000.0 / f).round() as u32)
}

/// The 17-byte header of a binary message.
fn put_header(out: &mut Vec<u8>, kind: u8, au: &AccessUnit) {
    out.push(kind);
    out.extend_from_slice(&au.capture_us.to_be_bytes());
    out.extend_from_slice(&au.pts.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_media::Codec;

    fn params(width: u32) -> Arc<StreamParams> {
        Arc::new(StreamParams {
            codec: Codec::H264,
            vps: None,
            sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e]),
            pps: Bytes::from_static(&[0x68, 0xce]),
            width,
            height: 360,
            fps: Some(15.0),
        })
    }

    fn au(p: &Arc<StreamParams>, pts: i64, key: bool) -> AccessUnit {
        AccessUnit {
            params: p.clone(),
            pts,
            capture_us: 1_000_000 + pts,
            key,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        }
    }

    fn kinds(out: &[Message]) -> Vec<String> {
        out.iter()
            .map(|m| match m {
                Message::Text(t) => {
                    let v: serde_json::Value = serde_json::from_str(t).unwrap();
                    v["type"].as_str().unwrap().to_owned()
                }
                Message::Binary(b) => format!("bin{}", b[0]),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn init_then_fragments_with_header() {
        let p = params(640);
        let mut m = LiveMuxer::default();
        // A delta frame before any key frame is useless to a decoder.
        assert!(m.push(&au(&p, 0, false), 5).is_empty());
        let out = m.push(&au(&p, 6000, true), 5);
        assert_eq!(kinds(&out), ["init", "bin0", "bin1"]);
        let Message::Text(t) = &out[0] else { panic!() };
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        assert_eq!(v["codec"], "avc1.42C01E");
        assert_eq!(v["width"], 640);
        assert_eq!(v["server_time_us"], 5);
        let Message::Binary(b) = &out[2] else {
            panic!()
        };
        assert_eq!(i64::from_be_bytes(b[1..9].try_into().unwrap()), 1_006_000);
        assert_eq!(i64::from_be_bytes(b[9..17].try_into().unwrap()), 6000);
        assert_eq!(&b[21..25], b"moof");
        // Next pictures: one fragment each, no init.
        assert_eq!(kinds(&m.push(&au(&p, 12000, false), 6)), ["bin1"]);
        assert_eq!(m.duration, 6000);
    }

    #[test]
    fn params_change_and_timeline_break_restart_on_a_key_frame() {
        let (p, q) = (params(640), params(1280));
        let mut m = LiveMuxer::default();
        m.push(&au(&p, 0, true), 0);
        // New size: wait for the key frame, then a new init.
        assert!(m.push(&au(&q, 6000, false), 0).is_empty());
        assert_eq!(
            kinds(&m.push(&au(&q, 12000, true), 0)),
            ["init", "bin0", "bin1"]
        );
        // Equal parameters in a new Arc are no change.
        assert_eq!(
            kinds(&m.push(&au(&params(1280), 18000, false), 0)),
            ["bin1"]
        );
        // pts going back (camera reconnected): new timeline.
        assert!(m.push(&au(&q, 100, false), 0).is_empty());
        assert_eq!(
            kinds(&m.push(&au(&q, 200, true), 0)),
            ["init", "bin0", "bin1"]
        );
        // A jump far ahead, too.
        assert_eq!(
            kinds(&m.push(&au(&q, 200 + MAX_PTS_JUMP + 1, true), 0)),
            ["init", "bin0", "bin1"]
        );
    }

    #[test]
    fn dropped_viewer_waits_for_key_frame() {
        let p = params(640);
        let mut m = LiveMuxer::default();
        m.push(&au(&p, 0, true), 0);
        m.dropped(false);
        assert!(m.push(&au(&p, 6000, false), 0).is_empty());
        assert_eq!(kinds(&m.push(&au(&p, 12000, true), 0)), ["bin1"]);
        m.dropped(true);
        assert_eq!(
            kinds(&m.push(&au(&p, 18000, true), 0)),
            ["init", "bin0", "bin1"]
        );
    }

    #[tokio::test]
    async fn full_queue_drops_whole_access_units() {
        let p = params(640);
        let (tx, mut rx) = mpsc::channel(4);
        let mut m = LiveMuxer::default();
        let first = m.push(&au(&p, 0, true), 0);
        enqueue(&tx, &mut m, first); // 3 queued
        let next = m.push(&au(&p, 6000, false), 0);
        enqueue(&tx, &mut m, next); // 4 queued: full
        let late = m.push(&au(&p, 12000, false), 0);
        enqueue(&tx, &mut m, late); // dropped
        assert!(m.need_key);
        assert_eq!(m.dropped, 1);
        for _ in 0..4 {
            rx.recv().await.unwrap();
        }
        assert!(rx.try_recv().is_err());
    }
}
