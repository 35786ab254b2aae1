//! The share-link routes ([`crate::shares`] holds the model and its reasons).
//!
//! - Owners (any logged-in user, or an API token — a Home Assistant automation sending the
//!   clip of a motion event): `GET/POST /api/shares`, `DELETE /api/shares/{id}`. A user shares
//!   only cameras they may view; viewers see and revoke their own shares, admins all.
//! - Recipients (no account): the page `/s/` reads the token from its URL fragment and posts it
//!   to `POST /api/share/open` (public, same-origin, throttled per address like logins), which
//!   sets the media session cookie `vigil_share_<id>` scoped to `/api/share/`. With it,
//!   `GET /api/share/<id>/info`, `/clip.mp4` and `/live` serve that share's scope and nothing
//!   else; every other route of the API answers them 401.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::StreamExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::account_routes::{blocking, too_many};
use crate::auth::{Identity, Peer};
use crate::json_body::ApiJson;
use crate::live::Lookup;
use crate::playback::{serve_export, ExportAsk, StillAllowed, MAX_SPAN_US};
use crate::shares::{
    NewShare, Share, ShareInfo, ShareKind, ShareState, DEFAULT_EXPIRES, MAX_EXPIRES, MAX_LABEL,
    MAX_LIVE_EXPIRES, MAX_OFFSITE_EXPIRES, MAX_PASSWORD, MIN_EXPIRES, RECHECK,
};
use crate::{Access, ApiError, AppState, CurrentUser, RouteDoc};

/// Longest offsite clip: the recipient's browser holds it whole in memory to decrypt it.
pub const MAX_OFFSITE_SPAN_US: i64 = 30 * 60 * 1_000_000;
/// Largest view limit.
const MAX_VIEWS: i64 = 1_000_000;
/// Prefix of the media session cookie's name; the share id follows.
pub const COOKIE_PREFIX: &str = "vigil_share_";
/// WebSocket close code of a live share that ended (revoked, expired).
pub const CLOSE_SHARE_ENDED: u16 = 4410;

/// The share routes.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/s/",
        access: Access::Public,
        summary: "The share viewer page; the link's token is in its URL fragment",
    },
    RouteDoc {
        method: "GET",
        path: "/api/shares",
        access: Access::User,
        summary: "Share links (own; an admin's: all), whether offsite shares are available, and the limits",
    },
    RouteDoc {
        method: "POST",
        path: "/api/shares",
        access: Access::User,
        summary: "Create a share link of a clip, a live view or an offsite clip; the URL is shown once",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/shares/{id}",
        access: Access::User,
        summary: "Revoke a share link at once (open viewers stop; offsite objects are deleted)",
    },
    RouteDoc {
        method: "POST",
        path: "/api/share/open",
        access: Access::Public,
        summary: "Open a share link with its token (and password): sets the share's media session cookie",
    },
    RouteDoc {
        method: "GET",
        path: "/api/share/{id}/info",
        access: Access::Share,
        summary: "What the share shows (with its media session)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/share/{id}/clip.mp4",
        access: Access::Share,
        summary: "The shared clip as MP4 (HTTP Range; download=1 when the share allows it)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/share/{id}/live",
        access: Access::Share,
        summary: "The shared live view: the live WebSocket protocol; closed with 4410 when the share ends",
    },
];

/// The share routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/s/", get(page))
        .route("/api/shares", get(list).post(create))
        .route("/api/shares/{id}", delete(revoke))
        .route("/api/share/open", post(open))
        .route("/api/share/{id}/info", get(info))
        .route("/api/share/{id}/clip.mp4", get(clip))
        .route("/api/share/{id}/live", get(live))
}

/// `GET /s/`: the viewer page, kept out of search engines.
async fn page(headers: HeaderMap) -> Response {
    let mut resp = crate::assets::serve_path("share.html", &headers);
    resp.headers_mut().insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow"),
    );
    resp
}

/// A refused share, answered `{"error", "reason"}`: the viewer page shows a message per reason.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ShareRefusal {
    /// What went wrong, for the viewer.
    pub error: String,
    /// `invalid`, `password_required`, `wrong_password`, `expired`, `revoked`, `used_up`,
    /// `footage_deleted`.
    pub reason: String,
}

fn refuse(status: StatusCode, reason: &str, error: &str) -> Response {
    (
        status,
        Json(ShareRefusal {
            error: error.to_owned(),
            reason: reason.to_owned(),
        }),
    )
        .into_response()
}

fn ended(state: ShareState) -> Response {
    let (reason, message) = state.refusal();
    refuse(StatusCode::GONE, reason, message)
}

/// The limits the Share dialog offers.
#[derive(Serialize, JsonSchema)]
pub struct ShareLimits {
    /// Shortest lifetime, seconds.
    pub min_expires_s: u64,
    /// Longest lifetime of a clip share.
    pub max_expires_s: u64,
    /// Longest lifetime of a live share.
    pub max_live_expires_s: u64,
    /// Longest lifetime of an offsite share (SigV4 presigned URLs: 7 days).
    pub max_offsite_expires_s: u64,
    /// The default lifetime.
    pub default_expires_s: u64,
    /// Longest offsite clip, seconds.
    pub max_offsite_span_s: u64,
}

/// Answer of `GET /api/shares`.
#[derive(Serialize, JsonSchema)]
pub struct SharesAnswer {
    /// Shares, newest first.
    pub shares: Vec<ShareInfo>,
    /// Whether "Share offsite" works (the cloud tier is configured).
    pub offsite_available: bool,
    /// Lifetimes the server accepts.
    pub limits: ShareLimits,
}

async fn list(
    user: CurrentUser,
    State(st): State<AppState>,
) -> Result<Json<SharesAnswer>, ApiError> {
    let (st2, by) = (st.clone(), (!user.is_admin()).then(|| user.name.clone()));
    let shares = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for mut s in st2.shares.list(by.as_deref())? {
            // Retention may have reached a clip since it was shared: the page says so
            // before anyone tries the link.
            if s.info.kind == ShareKind::Clip
                && s.info.state == ShareState::Active
                && !footage_present(&st2, &s)
            {
                st2.shares.footage_deleted(&s.info.id)?;
                s.info.state = ShareState::FootageDeleted;
            }
            out.push(s.info);
        }
        Ok::<_, crate::accounts::AccountsError>(out)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(SharesAnswer {
        shares,
        offsite_available: st.offsite.is_some(),
        limits: ShareLimits {
            min_expires_s: MIN_EXPIRES.as_secs(),
            max_expires_s: MAX_EXPIRES.as_secs(),
            max_live_expires_s: MAX_LIVE_EXPIRES.as_secs(),
            max_offsite_expires_s: MAX_OFFSITE_EXPIRES.as_secs(),
            default_expires_s: DEFAULT_EXPIRES.as_secs(),
            max_offsite_span_s: (MAX_OFFSITE_SPAN_US / 1_000_000) as u64,
        },
    }))
}

/// Body of `POST /api/shares`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateShareBody {
    /// `clip`, `live` or `offsite`.
    kind: ShareKind,
    /// Camera name.
    camera: String,
    /// `main` (default) or `sub`.
    stream: Option<String>,
    /// Clip start, µs since the epoch (clip, offsite).
    start_us: Option<i64>,
    /// Clip end (exclusive).
    end_us: Option<i64>,
    /// Lifetime in seconds: 3600 to 30 days (live: 24 h, offsite: 7 days); default 24 h.
    expires_s: Option<u64>,
    /// A password the recipient must type (empty or null: none).
    password: Option<String>,
    /// How many times the link may be opened (null: no limit).
    max_views: Option<i64>,
    /// Whether the recipient may download the clip (default true).
    allow_download: Option<bool>,
    /// A label for the Shares page and the viewer page.
    label: Option<String>,
}

/// Answer of `POST /api/shares`.
#[derive(Serialize, JsonSchema)]
pub struct CreatedShare {
    /// The share.
    pub share: ShareInfo,
    /// The link to send: shown once, never stored.
    pub url: String,
}

/// The first recorded moment of `[start, end)` on disk or in the cloud, if any.
fn first_footage(st: &AppState, camera: &str, stream: &str, start: i64, end: i64) -> Option<i64> {
    let local = st
        .nvr
        .recorder()
        .ranges(camera, stream, start, end)
        .ok()
        .and_then(|r| r.first().map(|r| r.start_wall_us.max(start)));
    let cloud = st.cloud.as_ref().and_then(|c| {
        c.ranges(camera, stream, start, end)
            .ok()
            .and_then(|r| r.first().map(|r| r.0.max(start)))
    });
    match (local, cloud) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a clip share still has its footage: nothing of it deleted since it was shared
/// (files are deleted whole and oldest first, so the first recorded moment moving later
/// means retention reached the share; a second of slack for rounding).
fn footage_present(st: &AppState, share: &Share) -> bool {
    let (Some(start), Some(end), Some(first)) = (
        share.info.start_us,
        share.info.end_us,
        share.footage_start_us,
    ) else {
        return true;
    };
    first_footage(st, &share.info.camera, &share.info.stream, start, end)
        .is_some_and(|now| now <= first + 1_000_000)
}

fn base_url(headers: &HeaderMap) -> Result<String, ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| ApiError::bad_request("missing or malformed Host header"))?;
    Ok(format!("https://{host}"))
}

async fn create(
    identity: Identity,
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateShareBody>,
) -> Result<Response, ApiError> {
    let user = identity.user.clone();
    if !user.can_view(&body.camera) {
        return Err(ApiError::forbidden());
    }
    vigil_recorder::check_name(&body.camera).map_err(|_| ApiError::not_found("no such camera"))?;
    let stream = body.stream.clone().unwrap_or_else(|| "main".to_owned());
    if stream != "main" && stream != "sub" {
        return Err(ApiError::bad_request("stream must be main or sub"));
    }
    let kind = body.kind;
    let expires = Duration::from_secs(body.expires_s.unwrap_or(DEFAULT_EXPIRES.as_secs()));
    if expires < MIN_EXPIRES || expires > kind.max_expires() {
        return Err(ApiError::bad_request(format!(
            "a {} share lasts {} to {} hours",
            match kind {
                ShareKind::Clip => "clip",
                ShareKind::Live => "live",
                ShareKind::Offsite => "offsite",
            },
            MIN_EXPIRES.as_secs() / 3600,
            kind.max_expires().as_secs() / 3600
        )));
    }
    if let Some(m) = body.max_views {
        if !(1..=MAX_VIEWS).contains(&m) {
            return Err(ApiError::bad_request("max_views must be 1 or more"));
        }
    }
    let label = body.label.clone().unwrap_or_default();
    if label.chars().count() > MAX_LABEL {
        return Err(ApiError::bad_request("the label is too long"));
    }
    let password = body.password.clone().filter(|p| !p.is_empty());
    if password.as_ref().is_some_and(|p| p.len() > MAX_PASSWORD) {
        return Err(ApiError::bad_request("the password is too long"));
    }
    if kind == ShareKind::Offsite && st.offsite.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "offsite shares need the cloud tier ([cloud] in vigil.toml)",
        ));
    }
    let range = match kind {
        ShareKind::Live => {
            if body.start_us.is_some() || body.end_us.is_some() {
                return Err(ApiError::bad_request("a live share has no time range"));
            }
            if st.nvr.camera(&body.camera).is_none() {
                return Err(ApiError::not_found(format!(
                    "no camera named {:?}",
                    body.camera
                )));
            }
            None
        }
        ShareKind::Clip | ShareKind::Offsite => {
            let (Some(a), Some(b)) = (body.start_us, body.end_us) else {
                return Err(ApiError::bad_request("start_us and end_us are required"));
            };
            if a >= b {
                return Err(ApiError::bad_request("start_us must be before end_us"));
            }
            let max = if kind == ShareKind::Offsite {
                MAX_OFFSITE_SPAN_US
            } else {
                MAX_SPAN_US
            };
            if b - a > max {
                return Err(ApiError::bad_request(format!(
                    "a {} clip spans at most {} minutes",
                    if kind == ShareKind::Offsite {
                        "offsite"
                    } else {
                        "shared"
                    },
                    max / 60_000_000
                )));
            }
            Some((a, b))
        }
    };
    let footage_start_us = match range {
        Some((a, b)) => {
            let (st2, cam, s) = (st.clone(), body.camera.clone(), stream.clone());
            let first = tokio::task::spawn_blocking(move || first_footage(&st2, &cam, &s, a, b))
                .await
                .map_err(ApiError::internal)?;
            Some(first.ok_or_else(|| ApiError::not_found("nothing recorded in this range"))?)
        }
        None => None,
    };
    let password_hash = match password {
        Some(p) => Some(blocking(move || vigil_auth::hash_secret(&p)).await?),
        None => None,
    };
    let allow_download = body.allow_download.unwrap_or(true);
    let mut offsite = None;
    if let (ShareKind::Offsite, Some(publisher), Some((a, b))) = (kind, &st.offsite, range) {
        offsite = Some(
            publish_offsite(
                &st,
                publisher,
                &body,
                &stream,
                a,
                b,
                expires,
                allow_download,
                &label,
            )
            .await?,
        );
    }
    let new = NewShare {
        kind,
        camera: body.camera.clone(),
        stream,
        range,
        label,
        created_by: user.name.clone(),
        expires,
        password_hash,
        max_views: body.max_views,
        allow_download,
        offsite_id: offsite.as_ref().map(|o| o.id.clone()),
        footage_start_us,
    };
    let shares = st.shares.clone();
    let (share, token) = tokio::task::spawn_blocking(move || shares.create(new))
        .await
        .map_err(ApiError::internal)??;
    let url = match offsite {
        Some(o) => o.url,
        None => format!("{}/s/#{token}", base_url(&headers)?),
    };
    let what = match share.info.kind {
        ShareKind::Live => format!("live {} {}", share.info.camera, share.info.stream),
        k => format!(
            "{} {} {} {}..{}",
            if k == ShareKind::Clip {
                "clip"
            } else {
                "offsite clip"
            },
            share.info.camera,
            share.info.stream,
            share.info.start_us.unwrap_or(0),
            share.info.end_us.unwrap_or(0)
        ),
    };
    st.accounts.audit(
        &user.name,
        peer.0,
        "share_create",
        &format!(
            "share {} ({what}), expires {}, password {}, views {}",
            share.info.id,
            share.info.expires_us,
            share.info.password,
            share
                .info
                .max_views
                .map_or_else(|| "unlimited".to_owned(), |m| m.to_string())
        ),
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedShare {
            share: share.info,
            url,
        }),
    )
        .into_response())
}

/// Encrypts the clip into the bucket with its viewer page (`vigil_cloud::share`).
#[allow(clippy::too_many_arguments)]
async fn publish_offsite(
    st: &AppState,
    publisher: &Arc<vigil_cloud::share::OffsitePublisher>,
    body: &CreateShareBody,
    stream: &str,
    start_us: i64,
    end_us: i64,
    expires: Duration,
    allow_download: bool,
    label: &str,
) -> Result<vigil_cloud::share::OffsiteShare, ApiError> {
    let resp = serve_export(
        st,
        &Method::GET,
        &HeaderMap::new(),
        ExportAsk {
            camera: body.camera.clone(),
            stream: stream.to_owned(),
            start_us,
            end_us,
            download: false,
        },
        None,
    )
    .await?;
    let clip = resp
        .into_body()
        .into_data_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let meta = vigil_cloud::share::OffsiteMeta {
        camera: body.camera.clone(),
        start_us,
        end_us,
        label: label.to_owned(),
        allow_download,
        file_name: crate::playback::download_name(&body.camera, start_us),
    };
    publisher
        .publish(Box::pin(clip), &meta, expires)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "offsite share upload failed");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("the upload to the cloud bucket failed: {e}"),
            )
        })
}

async fn revoke(
    user: CurrentUser,
    State(st): State<AppState>,
    peer: Peer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let shares = st.shares.clone();
    let id2 = id.clone();
    let share = tokio::task::spawn_blocking(move || shares.get(&id2))
        .await
        .map_err(ApiError::internal)??
        .ok_or_else(|| ApiError::not_found("no such share"))?;
    if !user.is_admin() && share.info.created_by != user.name {
        // Another user's share is none of a viewer's business: as if it did not exist.
        return Err(ApiError::not_found("no such share"));
    }
    let shares = st.shares.clone();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || shares.revoke(&id2))
        .await
        .map_err(ApiError::internal)??;
    if let (Some(object), Some(p)) = (&share.offsite_id, &st.offsite) {
        match p.delete(object).await {
            Ok(()) => st.shares.offsite_deleted(&id)?,
            // The link still dies when its presigned URLs expire; the sweep retries.
            Err(e) => {
                tracing::warn!(error = %e, share = %id, "cannot delete the offsite share's objects yet")
            }
        }
    }
    st.accounts
        .audit(&user.name, peer.0, "share_revoke", &format!("share {id}"));
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/share/open`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    /// The token from the link's fragment.
    token: String,
    /// The share's password, if it has one.
    password: Option<String>,
}

/// What a share shows, for its viewer page.
#[derive(Serialize, JsonSchema)]
pub struct ShareView {
    /// Share id (the media routes are under `/api/share/<id>/`).
    pub id: String,
    /// Clip or live.
    pub kind: ShareKind,
    /// Camera name.
    pub camera: String,
    /// `main` or `sub`.
    pub stream: String,
    /// Clip start, µs since the epoch.
    pub start_us: Option<i64>,
    /// Clip end.
    pub end_us: Option<i64>,
    /// The creator's label.
    pub label: String,
    /// Whether the clip may be downloaded.
    pub allow_download: bool,
    /// When the link stops opening.
    pub expires_us: i64,
}

impl From<&ShareInfo> for ShareView {
    fn from(i: &ShareInfo) -> Self {
        ShareView {
            id: i.id.clone(),
            kind: i.kind,
            camera: i.camera.clone(),
            stream: i.stream.clone(),
            start_us: i.start_us,
            end_us: i.end_us,
            label: i.label.clone(),
            allow_download: i.allow_download,
            expires_us: i.expires_us,
        }
    }
}

/// The media session cookie of share `id`, if the request has one.
fn media_cookie<'a>(headers: &'a HeaderMap, id: &str) -> Option<&'a str> {
    crate::auth::cookie(headers, &format!("{COOKIE_PREFIX}{id}"))
}

async fn open(
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<OpenBody>,
) -> Result<Response, ApiError> {
    let shares = st.shares.clone();
    let now = std::time::SystemTime::now();
    // Every attempt first takes a slot of the address's guess budget (as logins do): 256-bit
    // tokens cannot be guessed, but share passwords can.
    let reservation = match shares.throttle().reserve(peer.0, None, now) {
        Ok(r) => r,
        Err(wait) => return Ok(too_many(wait)),
    };
    let (s2, token) = (shares.clone(), body.token.clone());
    let found = tokio::task::spawn_blocking(move || s2.by_token(&token))
        .await
        .map_err(ApiError::internal)??;
    let Some(share) = found else {
        shares.throttle().fail(reservation);
        tracing::warn!(peer = %peer.0, "share link with an unknown token");
        return Ok(refuse(
            StatusCode::NOT_FOUND,
            "invalid",
            "This link is not valid. Check that it was copied whole.",
        ));
    };
    let id = share.info.id.clone();
    // The token was right: whatever follows is no guess at it.
    if !matches!(share.info.state, ShareState::Active | ShareState::UsedUp) {
        shares.throttle().refund(reservation);
        return Ok(ended(share.info.state));
    }
    // A browser that holds a live media session of this share (a reload) is no new view and
    // needs no password again. (The cookie's path is `/api/share/` so that it reaches this
    // route; its name carries the share id, and each route reads only its own share's.)
    let returning = match media_cookie(&headers, &id) {
        Some(secret) => {
            let (s2, id2, secret) = (shares.clone(), id.clone(), secret.to_owned());
            tokio::task::spawn_blocking(move || s2.playable(&id2, &secret))
                .await
                .map_err(ApiError::internal)?
        }
        None => false,
    };
    if let (Some(phc), false) = (share.password_hash.clone(), returning) {
        let Some(given) = body.password.clone().filter(|p| !p.is_empty()) else {
            shares.throttle().refund(reservation);
            return Ok(refuse(
                StatusCode::UNAUTHORIZED,
                "password_required",
                "This link is protected by a password.",
            ));
        };
        let ok = given.len() <= MAX_PASSWORD
            && blocking(move || Ok(vigil_auth::verify_secret(&phc, &given))).await?;
        if !ok {
            shares.throttle().fail(reservation);
            st.accounts.audit(
                "(share)",
                peer.0,
                "share_password_failed",
                &format!("share {id}"),
            );
            return Ok(refuse(
                StatusCode::UNAUTHORIZED,
                "wrong_password",
                "Wrong password.",
            ));
        }
    }
    shares.throttle().refund(reservation);
    if share.info.kind == ShareKind::Clip {
        let (st2, s) = (st.clone(), share.clone());
        if !tokio::task::spawn_blocking(move || footage_present(&st2, &s))
            .await
            .map_err(ApiError::internal)?
        {
            shares.footage_deleted(&id)?;
            return Ok(ended(ShareState::FootageDeleted));
        }
    }
    let (s2, sh) = (shares.clone(), share.clone());
    let addr: IpAddr = peer.0;
    let opened = tokio::task::spawn_blocking(move || s2.open(&sh, addr, !returning))
        .await
        .map_err(ApiError::internal)??;
    let (secret, session_expires_us) = match opened {
        Ok(s) => s,
        Err(state) => return Ok(ended(state)),
    };
    if !returning {
        st.accounts.audit(
            "(share)",
            peer.0,
            "share_open",
            &format!("share {id} of {}", share.info.created_by),
        );
    }
    let max_age = (session_expires_us - shares.now_us()).max(0) / 1_000_000;
    let cookie = format!(
        "{COOKIE_PREFIX}{id}={secret}; HttpOnly; Secure; SameSite=Strict; Path=/api/share/; Max-Age={max_age}"
    );
    let mut resp = Json(ShareView::from(&share.info)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(resp)
}

/// The share of a request's media session: 401 without a live one, 410 once the share ended.
async fn media_session(
    st: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Share, String), Response> {
    let Some(secret) = media_cookie(headers, id).map(str::to_owned) else {
        return Err(ApiError::unauthorized().into_response());
    };
    let (shares, id2, s2) = (st.shares.clone(), id.to_owned(), secret.clone());
    let found = tokio::task::spawn_blocking(move || shares.session(&id2, &s2))
        .await
        .map_err(|e| ApiError::internal(e).into_response())?
        .map_err(|e| ApiError::from(e).into_response())?;
    let Some(share) = found else {
        return Err(ApiError::unauthorized().into_response());
    };
    if !matches!(share.info.state, ShareState::Active | ShareState::UsedUp) {
        return Err(ended(share.info.state));
    }
    Ok((share, secret))
}

async fn info(State(st): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match media_session(&st, &headers, &id).await {
        Ok((share, _)) => Json(ShareView::from(&share.info)).into_response(),
        Err(r) => r,
    }
}

/// Query of `clip.mp4`: everything but `download` is optional and must repeat the share's own
/// scope — a media session never reaches another camera, stream or range.
#[derive(Deserialize, JsonSchema)]
pub(crate) struct ClipQuery {
    /// `1`: answer as an attachment (only when the share allows downloads).
    download: Option<String>,
    /// Must be the share's camera if given.
    camera: Option<String>,
    /// Must be the share's stream if given.
    stream: Option<String>,
    /// Must be the share's start if given.
    start_us: Option<i64>,
    /// Must be the share's end if given.
    end_us: Option<i64>,
}

async fn clip(
    State(st): State<AppState>,
    peer: Peer,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<ClipQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (share, secret) = match media_session(&st, &headers, &id).await {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    let q = crate::playback::query(q)?;
    let i = &share.info;
    let (Some(start_us), Some(end_us), ShareKind::Clip) = (i.start_us, i.end_us, i.kind) else {
        return Err(ApiError::forbidden());
    };
    let outside = q.camera.as_deref().is_some_and(|c| c != i.camera)
        || q.stream.as_deref().is_some_and(|s| s != i.stream)
        || q.start_us.is_some_and(|s| s != start_us)
        || q.end_us.is_some_and(|e| e != end_us);
    if outside {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "outside what this link shares",
        ));
    }
    let download = q.download.as_deref() == Some("1");
    if download && !i.allow_download {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this link does not allow downloads",
        ));
    }
    st.shares.touch(&id, peer.0);
    let (shares, id2) = (st.shares.clone(), id.clone());
    let allowed: StillAllowed = Arc::new(move || shares.playable(&id2, &secret));
    let resp = serve_export(
        &st,
        &method,
        &headers,
        ExportAsk {
            camera: i.camera.clone(),
            stream: i.stream.clone(),
            start_us,
            end_us,
            download,
        },
        Some(allowed),
    )
    .await;
    match resp {
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            // Shared, then deleted: say so for good.
            st.shares.footage_deleted(&id)?;
            Ok(ended(ShareState::FootageDeleted))
        }
        other => other,
    }
}

async fn live(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (share, secret) = match media_session(&st, &headers, &id).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if share.info.kind != ShareKind::Live {
        return ApiError::forbidden().into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let (camera, stream) = (share.info.camera.clone(), share.info.stream.clone());
    let nvr = st.nvr.clone();
    let lookup = move || match nvr.hub(&camera, &stream) {
        Some(hub) => Lookup::Hub(hub),
        None if nvr.camera(&camera).is_some() => Lookup::NotYet,
        None => Lookup::Gone,
    };
    let until = share_end(st, id, secret);
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| crate::live::serve_socket_until(socket, lookup, until))
}

/// Ends a shared live view within [`RECHECK`] of its share ending (revoked, expired), or at
/// server shutdown.
async fn share_end(st: AppState, id: String, secret: String) -> CloseFrame {
    let shares = st.shares.clone();
    let still_ok = move || shares.playable(&id, &secret);
    let refused = CloseFrame {
        code: CLOSE_SHARE_ENDED,
        reason: "share ended".into(),
    };
    crate::live::end_when_refused(&st, RECHECK, still_ok, refused).await
}

/// Deletes the bucket objects of offsite shares past their expiry (their presigned URLs
/// are dead by then; this frees the space). Run now and then by the server.
pub async fn sweep_offsite(st: &AppState) {
    let Some(p) = &st.offsite else { return };
    let shares = st.shares.clone();
    let due = match tokio::task::spawn_blocking(move || shares.expired_offsite()).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot list expired offsite shares");
            return;
        }
        Err(_) => return,
    };
    for (id, object) in due {
        match p.delete(&object).await {
            Ok(()) => {
                if let Err(e) = st.shares.offsite_deleted(&id) {
                    tracing::warn!(error = %e, "cannot note a deleted offsite share");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, share = %id, "cannot delete an expired offsite share")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_cookie_is_per_share() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("vigil_share_ab=1; vigil_share_abc=2; vigil_session=x"),
        );
        assert_eq!(media_cookie(&h, "abc"), Some("2"));
        assert_eq!(media_cookie(&h, "ab"), Some("1"));
        assert_eq!(media_cookie(&h, "a"), None);
        assert_eq!(media_cookie(&h, ""), None);
    }

    #[test]
    fn base_url_refuses_odd_hosts() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("cam.local:8443"));
        assert_eq!(base_url(&h).ok().as_deref(), Some("https://cam.local:8443"));
        h.insert(header::HOST, HeaderValue::from_static("evil/x#"));
        assert!(base_url(&h).is_err());
    }
}
