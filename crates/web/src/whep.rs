//! WebRTC live view over WHEP (RFC 9725): `POST /api/cameras/{name}/whep?stream=main|sub`
//! with an SDP offer (`application/sdp`) answers `201 Created`, a `Location` naming the
//! session's resource, and the SDP answer; `DELETE` of that resource ends the session
//! (`204`). Trickle ICE and ICE restarts (`PATCH`) are not offered: the router answers
//! `405` with `Allow: DELETE`. The answer carries every candidate at once (host, and the
//! server-reflexive address when STUN servers are configured). `OPTIONS` on the endpoint
//! answers the ICE servers (`Link` headers, with this user's TURN credentials) before the
//! offer, for clients that gather candidates only once.
//!
//! Authentication and authorization are the live WebSocket's: a session (with the CSRF
//! token, since this is a POST) or an API token with the `view` scope, and a viewer only of
//! the cameras they may view (403 otherwise). A resource id is 128 random bits, and only
//! the user who made it may delete it. Each session is re-checked every
//! [`RECHECK_INTERVAL`]: a logout, a revoked token or a removed camera right ends it.
//!
//! Answers: `400` for an offer that is not SDP or has no receivable H.264
//! (`packetization-mode=1`); `415` when the body is not `application/sdp`; `422`
//! ([`WhepDeclined`]) for a stream WebRTC cannot play as is (H.265, B-frames), so the UI
//! falls back to MSE; `503` with `Retry-After` when `max_sessions` are in use or the stream
//! has not started; `501` when `[webrtc]` is off. Media go out on the edge's single UDP port
//! ([`vigil_webrtc::Edge`]), open only while a session exists. See `docs/webrtc.md`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::Router;
use bytes::Bytes;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use vigil_webrtc::{Declined, Edge, EdgeError, SessionError, SessionId};

pub use vigil_webrtc::{EdgeConfig, IceServer, IceServerError, ICE_TIMEOUT};

use crate::auth::Identity;
use crate::{Access, ApiError, AppState, RouteDoc};

/// The WHEP routes.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "POST",
        path: "/api/cameras/{name}/whep",
        access: Access::User,
        summary: "WebRTC live view (WHEP): an SDP offer (application/sdp, query stream=main|sub) \
                  → 201, Location and the SDP answer",
    },
    RouteDoc {
        method: "OPTIONS",
        path: "/api/cameras/{name}/whep",
        access: Access::User,
        summary: "The STUN and TURN servers (Link headers, TURN credentials for this user) to \
                  gather candidates with before the offer",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/cameras/{name}/whep/{id}",
        access: Access::User,
        summary: "End a WebRTC live view session (its Location)",
    },
];

/// How often a session re-checks that its viewer is still logged in and allowed.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// How long an offer waits for a stream that has not yet produced a picture.
const PARAMS_WAIT: Duration = Duration::from_secs(5);

/// `[webrtc]` as the web app uses it.
#[derive(Clone, Debug)]
pub struct WhepConfig {
    /// The UDP edge: bind address, port, session limit, ICE timeout.
    pub edge: EdgeConfig,
    /// Host candidates advertised besides the local address of the HTTPS connection the
    /// offer came in on (a port-forwarded public address, another interface).
    pub host_addresses: Vec<IpAddr>,
    /// STUN and TURN servers given to clients in `Link` headers.
    pub ice_servers: Vec<IceServer>,
}

/// The local address of the HTTPS connection a request came in on (a request extension
/// set by the HTTPS edge); its IP is the host candidate browsers on that network reach.
#[derive(Clone, Copy, Debug)]
pub struct LocalAddr(pub SocketAddr);

/// The WHEP state: the edge and the resources it answered.
pub struct Whep {
    config: WhepConfig,
    edge: Edge,
    resources: Mutex<HashMap<String, Resource>>,
}

struct Resource {
    session: SessionId,
    user: String,
    camera: String,
}

impl Whep {
    /// No socket is opened until the first offer.
    pub fn new(config: WhepConfig) -> Self {
        Whep {
            edge: Edge::new(config.edge.clone())
                .with_stun_servers(vigil_webrtc::stun::udp_targets(&config.ice_servers)),
            config,
            resources: Mutex::new(HashMap::new()),
        }
    }

    /// The edge (its UDP port while sessions exist, their count).
    pub fn edge(&self) -> &Edge {
        &self.edge
    }

    fn resources(&self) -> std::sync::MutexGuard<'_, HashMap<String, Resource>> {
        // Every update is a single insert or remove: a poisoned map is consistent.
        self.resources.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The 422 answer: why the stream cannot be played over WebRTC (the UI uses MSE then).
#[derive(Serialize, schemars::JsonSchema)]
pub struct WhepDeclined {
    /// For people.
    pub error: String,
    /// For programs: `h265`, `b_frames`, `may_reorder`, `bad_sps` or `no_matching_codec`.
    pub reason: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
/// The WHEP query.
pub struct WhepQuery {
    /// `main` (default) or `sub`.
    pub stream: Option<String>,
}

/// The host IP of the request's connection, if the edge knew it.
struct HostIp(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for HostIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(HostIp(
            parts
                .extensions
                .get::<LocalAddr>()
                .map(|l| l.0.ip().to_canonical()),
        ))
    }
}

/// The WHEP routes (`PATCH` gets the router's 405).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/cameras/{name}/whep", post(offer).options(ice_servers))
        .route("/api/cameras/{name}/whep/{id}", delete(end))
}

fn declined(reason: &str, error: String) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(WhepDeclined {
            error,
            reason: reason.to_owned(),
        }),
    )
        .into_response()
}

fn declined_stream(d: &Declined) -> Response {
    let reason = match d {
        Declined::H265 => "h265",
        Declined::BFrames(_) => "b_frames",
        Declined::MayReorder(_) => "may_reorder",
        Declined::BadSps(_) => "bad_sps",
    };
    declined(reason, d.to_string())
}

fn unavailable(message: impl Into<String>, retry_s: u32) -> Response {
    let mut r = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_s));
    r
}

async fn offer(
    identity: Identity,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<WhepQuery>, QueryRejection>,
    HostIp(local): HostIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let stream =
        crate::live::live_stream(&state, &identity, &name, crate::playback::query(q)?.stream)?;
    let Some(whep) = state.whep.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "WebRTC live view is off on this recorder ([webrtc] enabled = false)",
        ));
    };
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"));
    if !sdp_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the offer must be sent as application/sdp",
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the offer is not UTF-8 text"))?;
    let sdp = vigil_webrtc::check_offer(text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Some(hub) = state.nvr.hub(&name, &stream) else {
        return Ok(unavailable(
            format!("{name}/{stream} is not streaming now"),
            2,
        ));
    };
    let params = match hub.params() {
        Some(p) => p,
        None => match tokio::time::timeout(PARAMS_WAIT, hub.wait_params()).await {
            Ok(p) => p,
            Err(_) => {
                return Ok(unavailable(
                    format!("{name}/{stream} has not sent a picture yet"),
                    2,
                ))
            }
        },
    };
    if let Err(d) = vigil_webrtc::check_stream(&params) {
        return Ok(declined_stream(&d));
    }
    let mut ips: Vec<IpAddr> = local.into_iter().collect();
    let bind = whep.config.edge.bind;
    if ips.is_empty() && !bind.is_unspecified() {
        ips.push(bind);
    }
    for ip in &whep.config.host_addresses {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    // A socket bound to one address is reached on that address only.
    if !bind.is_unspecified() {
        ips.retain(|ip| *ip == bind || whep.config.host_addresses.contains(ip));
    }
    if ips.is_empty() {
        return Err(ApiError::internal(
            "WHEP: no host address (set [webrtc] host_addresses)",
        ));
    }
    // Forget sessions that ended by themselves (ICE timeout, closed by the peer).
    whep.resources().retain(|_, r| whep.edge.is_live(r.session));
    let (session, answer) = match whep.edge.offer(sdp, &hub, &params, &ips).await {
        Ok(a) => a,
        Err(EdgeError::Full(n)) => {
            return Ok(unavailable(
                format!("all {n} WebRTC sessions are in use; try again later or use MSE"),
                5,
            ))
        }
        Err(EdgeError::Session(SessionError::Declined(d))) => return Ok(declined_stream(&d)),
        Err(EdgeError::Session(e @ SessionError::NoMatchingCodec(_))) => {
            return Ok(declined("no_matching_codec", e.to_string()))
        }
        Err(e @ (EdgeError::Bind(..) | EdgeError::Stopped)) => {
            tracing::warn!(error = %e, "WHEP offer refused");
            return Ok(unavailable(e.to_string(), 5));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let mut raw = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut raw);
    let id = hex::encode(raw);
    whep.resources().insert(
        id.clone(),
        Resource {
            session,
            user: identity.user.name.clone(),
            camera: name.clone(),
        },
    );
    tracing::info!(camera = %name, stream = %stream, user = %identity.user.name, "WHEP session started");
    spawn_recheck(
        state.clone(),
        whep.clone(),
        identity.clone(),
        name.clone(),
        session,
    );
    let location = format!("/api/cameras/{name}/whep/{id}");
    let mut resp = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/sdp")],
        answer.to_sdp_string(),
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    ice_server_links(h, &whep, &identity.user.name);
    Ok(resp)
}

/// The `Link: <…>; rel="ice-server"` headers (RFC 9725 §4.6) for `user`.
fn ice_server_links(h: &mut HeaderMap, whep: &Whep, user: &str) {
    let now = SystemTime::now();
    for server in &whep.config.ice_servers {
        for link in server.link_headers(user, now) {
            if let Ok(v) = HeaderValue::from_str(&link) {
                h.append(header::LINK, v);
            }
        }
    }
}

/// `OPTIONS` of the WHEP endpoint: the ICE servers before any offer. A client that gathers
/// candidates once, before it sends its offer (no trickle ICE here), needs its TURN
/// credentials then; the 201's Link headers come too late for it. Checked like the offer
/// (the camera right, `[webrtc]` on), so that credentials go only to viewers who may play.
async fn ice_servers(
    identity: Identity,
    State(state): State<AppState>,
    Path(name): Path<String>,
    q: Result<Query<WhepQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    crate::live::live_stream(&state, &identity, &name, crate::playback::query(q)?.stream)?;
    let Some(whep) = state.whep.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "WebRTC live view is off on this recorder ([webrtc] enabled = false)",
        ));
    };
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static("OPTIONS, POST"));
    ice_server_links(h, &whep, &identity.user.name);
    Ok(resp)
}

/// Ends `session` when its viewer may no longer watch `camera` or the server shuts down;
/// returns by itself once the session has ended (so these tasks are bounded by the
/// sessions).
fn spawn_recheck(
    state: AppState,
    whep: Arc<Whep>,
    identity: Identity,
    camera: String,
    session: SessionId,
) {
    tokio::spawn(async move {
        let st = state.clone();
        let w = whep.clone();
        let still_ok = move || w.edge.is_live(session) && identity.still_valid(&st, Some(&camera));
        let frame = axum::extract::ws::CloseFrame {
            code: 4401,
            reason: "session ended".into(),
        };
        crate::live::end_when_refused(&state, RECHECK_INTERVAL, still_ok, frame).await;
        whep.edge.close(session);
    });
}

async fn end(
    identity: Identity,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let gone = || ApiError::not_found("no such WHEP session");
    let whep = state.whep.clone().ok_or_else(gone)?;
    let session = {
        let mut resources = whep.resources();
        let mine = resources
            .get(&id)
            .is_some_and(|r| r.user == identity.user.name && r.camera == name);
        if !mine {
            return Err(gone());
        }
        resources.remove(&id).map(|r| r.session).ok_or_else(gone)?
    };
    whep.edge.close(session);
    Ok(StatusCode::NO_CONTENT)
}
