//! The camera's HTTPS listener: `GET /snapshot.jpg[?stream=main|sub]`, and the ONVIF services
//! on `/onvif/device_service` and `/onvif/media_service` when ONVIF is on.
//!
//! Every snapshot request is authenticated first (Digest, or Basic since this is always TLS) —
//! even requests for paths that do not exist get 401 before 404, so the route table is not
//! disclosed to strangers. The ONVIF paths are the exception ONVIF itself makes: their
//! pre-authentication operations answer without credentials, and the rest are authenticated
//! by the ONVIF service (WS-UsernameToken or Digest, ONVIF Core §5.12). Nothing is trusted
//! because of its source address or forwarded headers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use vigil_auth::{AuthDecision, AuthRequest, Authenticator};
use vigil_web::edge;

use crate::onvif_http::OnvifOverHttps;

/// Produces a JPEG of the named stream (`"main"` or `"sub"`); called on a blocking thread.
pub type SnapshotFn = Arc<dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync>;

/// Time in-flight requests get to finish after shutdown is requested.
const GRACE: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct AppState {
    auth: Arc<Authenticator>,
    snapshot: SnapshotFn,
    no_users_logged: Arc<AtomicBool>,
    /// The ONVIF services, set once the ONVIF listener is up (never with `--onvif off`).
    onvif: Arc<OnceLock<OnvifOverHttps>>,
}

/// Serves snapshots over HTTPS on `listener` until `shutdown` completes, through the same
/// HTTPS edge as the web app (`vigil_web::edge`): connection caps in all and per address,
/// TLS handshake, head and body deadlines, and the process-wide bound on password hashing.
pub async fn serve_snapshots(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    auth: Arc<Authenticator>,
    snapshot: SnapshotFn,
    onvif: Arc<OnceLock<OnvifOverHttps>>,
    limits: edge::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState {
        auth,
        snapshot,
        no_users_logged: Arc::new(AtomicBool::new(false)),
        onvif,
    };
    let app = Router::new().fallback(handle).with_state(state);
    let server = edge::serve(listener, tls, app, "snapshot", limits).context("HTTPS server")?;
    tracing::info!(addr = %server.local_addr(), "HTTPS snapshot server listening");
    shutdown.await;
    server.shutdown(GRACE).await;
    Ok(())
}

/// Whether the authenticator will run argon2 for this `Authorization` header: decided by the
/// authenticator's own scheme parser, so that `Basic<TAB>…` (RFC 7235 allows any whitespace
/// there) cannot reach argon2 without a permit.
fn needs_hashing_permit(authorization: Option<&str>) -> bool {
    authorization.is_some_and(|a| vigil_auth::digest::strip_scheme(a, "Basic").is_some())
}

/// A password-hashing permit if the request carries Basic credentials (argon2id, ~19 MiB and
/// tens of ms each); Digest and no credentials are cheap and need none.
async fn hashing_permit_for(
    authorization: Option<&str>,
) -> Result<Option<edge::HashingPermit>, Response> {
    if !needs_hashing_permit(authorization) {
        return Ok(None);
    }
    match edge::hashing_permit().await {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            tracing::error!(error = %e, "password hashing unavailable");
            Err(text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"))
        }
    }
}

/// Headers every response carries: no caching of camera images, no sniffing, no framing.
fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response {
    harden(
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

fn unauthorized(challenges: &[String]) -> Response {
    let mut resp = text(StatusCode::UNAUTHORIZED, "authentication required\n");
    for c in challenges {
        if let Ok(v) = HeaderValue::from_str(c) {
            resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    resp
}

/// Which stream a `/snapshot.jpg` query selects; `None` for anything unexpected.
fn stream_of(query: Option<&str>) -> Option<&'static str> {
    match query {
        None | Some("") | Some("stream=main") => Some("main"),
        Some("stream=sub") => Some("sub"),
        Some(_) => None,
    }
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

async fn handle(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    if let Some(onvif) = st.onvif.get() {
        if matches!(
            req.uri().path(),
            "/onvif/device_service" | "/onvif/media_service"
        ) {
            // The HTTPS edge tells each request the address its connection arrived on.
            let local = req
                .extensions()
                .get::<vigil_web::whep::LocalAddr>()
                .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |l| l.0);
            return harden(onvif.handle(peer, local, req).await);
        }
    }
    let method = req.method().clone();
    let uri = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    // A non-UTF-8 header cannot be valid credentials; pass something that fails to parse.
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid").to_owned());

    let auth = st.auth.clone();
    let m = method.as_str().to_owned();
    let u = uri.clone();
    // At most edge::HASHING_CONCURRENCY argon2 runs at once, process-wide; the permit moves
    // into the blocking task so a client leaving mid-hash does not free it early.
    let hashing = match hashing_permit_for(authorization.as_deref()).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    // Basic verification runs argon2 (tens of ms of CPU): keep it off the async workers.
    let decision = tokio::task::spawn_blocking(move || {
        let _hashing = hashing;
        auth.check(&AuthRequest {
            method: &m,
            uri: &u,
            authorization: authorization.as_deref(),
            peer: peer.ip(),
            secure: true,
            now: SystemTime::now(),
        })
    })
    .await;
    let decision = match decision {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "authentication task failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
        }
    };
    match decision {
        AuthDecision::Allowed { user, .. } => {
            tracing::debug!(user = %user.escape_debug(), %peer, %method, "snapshot request");
        }
        AuthDecision::Denied { challenges, delay } => {
            tokio::time::sleep(delay).await;
            return unauthorized(&challenges);
        }
        AuthDecision::NoUsers { challenges, hint } => {
            if !st.no_users_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!("{hint}");
            }
            return unauthorized(&challenges);
        }
    }

    if has_body(req.headers()) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request bodies are not accepted\n",
        );
    }
    if req.uri().path() != "/snapshot.jpg" {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if method != Method::GET {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let Some(stream) = stream_of(req.uri().query()) else {
        return text(StatusCode::NOT_FOUND, "unknown stream\n");
    };
    let snapshot = st.snapshot.clone();
    match tokio::task::spawn_blocking(move || snapshot(stream)).await {
        Ok(Ok(jpeg)) => harden(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "image/jpeg")],
                Body::from(jpeg),
            )
                .into_response(),
        ),
        Ok(Err(msg)) => {
            tracing::warn!(stream, error = %msg, "snapshot unavailable");
            text(StatusCode::SERVICE_UNAVAILABLE, "snapshot unavailable\n")
        }
        Err(e) => {
            tracing::error!(error = %e, "snapshot task failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

#[cfg(test)]
mod tests;
