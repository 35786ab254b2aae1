//! Who is calling, and whether the request may do what it asks.
//!
//! [`guard`] runs before every handler: for `/api/` paths it resolves the caller (session
//! cookie `vigil_session`, or `Authorization: Bearer <api token>`; nothing else — no trust in
//! source addresses or forwarded headers) into an [`Identity`] request extension, and refuses
//! cross-site state changes:
//! - every request other than GET/HEAD, and every WebSocket upgrade, must come from our own
//!   origin (`Origin`, else `Referer`, equal to `https://` + `Host`), unless it carries an API
//!   token (browsers never attach those by themselves);
//! - with a session, every request other than GET/HEAD must also carry the session's CSRF
//!   token in `X-CSRF-Token`.
//!
//! It also adds the security headers (CSP, HSTS, nosniff, …) to every response and
//! `Cache-Control: no-store` to API answers. Handlers then take [`CurrentUser`] (401 without a
//! caller) or [`AdminUser`] (403 for viewers).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::accounts::Session;
use crate::error::ApiError;
use crate::state::{Access, AppState, CurrentUser};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "vigil_session";
/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// How the caller proved who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A browser session (cookie).
    Session(Session),
    /// An API token (bearer), by id, with what it was granted.
    Token {
        /// The token's id.
        id: String,
        /// Its scopes and cameras (`crate::token_scope`).
        grant: crate::token_scope::Grant,
    },
}

/// The resolved caller of a request (a request extension set by [`guard`]).
#[derive(Clone, Debug)]
pub struct Identity {
    /// The user, as stored now (role and cameras are re-read on every request).
    pub user: CurrentUser,
    /// Session or token.
    pub credential: Credential,
}

impl Identity {
    /// Whether this caller is still logged in: the session not ended or expired (or the API
    /// token not deleted) and the user still there with access to `camera` (if given). For
    /// long-lived answers such as the live WebSocket, to re-check now and then (e.g. at every
    /// ping) so that a logout, a revocation or a removed user also ends open streams.
    pub fn still_valid(&self, st: &AppState, camera: Option<&str>) -> bool {
        let acc = &st.accounts;
        let cred_ok = match &self.credential {
            Credential::Session(s) => acc.session_alive(&s.id),
            Credential::Token { id, .. } => acc.token_alive(id),
        };
        if !matches!(cred_ok, Ok(true)) {
            return false;
        }
        let Ok(Some(u)) = acc.users.get(&self.user.name) else {
            return false;
        };
        let now = match &self.credential {
            Credential::Token { grant, .. } => grant.narrow(CurrentUser::from_user(u)),
            Credential::Session(_) => CurrentUser::from_user(u),
        };
        camera.is_none_or(|c| now.can_view(c))
    }

    /// The session, if the caller used one.
    pub fn session(&self) -> Option<&Session> {
        match &self.credential {
            Credential::Session(s) => Some(s),
            Credential::Token { .. } => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Identity>()
            .map(|i| i.user.clone())
            .ok_or_else(ApiError::unauthorized)
    }
}

/// A logged-in admin: 401 without a caller, 403 for a viewer.
#[derive(Clone, Debug)]
pub struct AdminUser(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for AdminUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, ApiError> {
        let user = CurrentUser::from_request_parts(parts, s).await?;
        if user.is_admin() {
            Ok(AdminUser(user))
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// The TCP peer's address (never a forwarded header); `0.0.0.0` when unknown (in-process tests).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

fn peer_of(ext: &axum::http::Extensions) -> IpAddr {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(peer_of(&parts.extensions)))
    }
}

/// The value of the `vigil_session` cookie, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// The value of the cookie `wanted`, if any (RFC 6265 §5.4 `Cookie` syntax; the first one
/// wins).
pub fn cookie<'a>(headers: &'a HeaderMap, wanted: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == wanted).then_some(value)
        })
}

/// `Set-Cookie` for a new session.
pub fn set_session_cookie(secret: &str) -> HeaderValue {
    let max_age = crate::accounts::SESSION_MAX.as_secs();
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={secret}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| clear_session_cookie())
}

/// `Set-Cookie` that deletes the session cookie.
pub fn clear_session_cookie() -> HeaderValue {
    HeaderValue::from_static("vigil_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

/// The bearer token of `Authorization: Bearer …` (RFC 6750 §2.1; scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<Option<&str>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let Ok(s) = v.to_str() else {
        return Some(None);
    };
    let (scheme, rest) = s.split_once(' ').unwrap_or((s, ""));
    Some(scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim()))
}

/// Resolves the caller. `Ok(None)`: anonymous. A present but wrong `Authorization` header
/// makes the request anonymous even if it also has a valid cookie.
fn resolve(st: &AppState, headers: &HeaderMap) -> Result<Option<Identity>, ApiError> {
    let acc = &st.accounts;
    let (username, credential) = match bearer(headers) {
        Some(None) => return Ok(None),
        Some(Some(token)) => match acc.token(token).map_err(ApiError::internal)? {
            Some(t) => (
                t.username,
                Credential::Token {
                    id: t.id,
                    grant: t.grant,
                },
            ),
            None => return Ok(None),
        },
        None => {
            let Some(secret) = session_cookie(headers) else {
                return Ok(None);
            };
            match acc.session(secret).map_err(ApiError::internal)? {
                Some(s) => (s.username.clone(), Credential::Session(s)),
                None => return Ok(None),
            }
        }
    };
    // Role and camera access as stored now; a deleted user's leftovers open nothing.
    let Some(user) = acc.users.get(&username).map_err(ApiError::internal)? else {
        return Ok(None);
    };
    let user = CurrentUser::from_user(user);
    // A token acts as its user narrowed to its grant, never more.
    let user = match &credential {
        Credential::Token { grant, .. } => grant.narrow(user),
        Credential::Session(_) => user,
    };
    Ok(Some(Identity { user, credential }))
}

/// Whether `Origin` (else `Referer`) names this server: `https://` + the `Host` header.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let expected = format!("https://{host}");
    if let Some(origin) = headers.get(header::ORIGIN) {
        // RFC 6454 §7: the serialized origin; "null" and anything else do not match.
        return origin
            .to_str()
            .is_ok_and(|o| o.eq_ignore_ascii_case(&expected));
    }
    headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .is_some_and(|r| {
            r.get(..expected.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(&expected))
                && matches!(r.as_bytes().get(expected.len()), None | Some(b'/'))
        })
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Checks the request against the caller; `Err` is the refusal.
fn check_request(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    identity: Option<&Identity>,
) -> Result<(), ApiError> {
    let safe = matches!(*method, Method::GET | Method::HEAD);
    if safe && !is_websocket(headers) {
        return Ok(());
    }
    if matches!(
        identity.map(|i| &i.credential),
        Some(Credential::Token { .. })
    ) {
        return Ok(());
    }
    if !same_origin(headers) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "cross-origin request refused",
        ));
    }
    // Login and setup are public: a browser may still hold an old session cookie when it
    // logs in again (which ends that session); the Origin check above is their CSRF defence.
    let public = crate::ROUTES
        .iter()
        .any(|d| d.access == Access::Public && d.path == path && d.method == method.as_str());
    if !safe && !public {
        if let Some(s) = identity.and_then(Identity::session) {
            let sent = headers
                .get(CSRF_HEADER)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            if !bool::from(sent.ct_eq(s.csrf.as_bytes())) {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token",
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a token the scope of the route it calls (`crate::token_scope`): 403 with the
/// scope it lacks. The route is the one the router matched (its declared path template).
fn check_scope(req: &Request, identity: Option<&Identity>) -> Result<(), ApiError> {
    let Some(Credential::Token { grant, .. }) = identity.map(|i| &i.credential) else {
        return Ok(());
    };
    // No matched route: the fallback answers 404 whoever asks.
    let Some(template) = req.extensions().get::<axum::extract::MatchedPath>() else {
        return Ok(());
    };
    let method = if req.method() == Method::HEAD {
        Method::GET
    } else {
        req.method().clone()
    };
    let Some(doc) = crate::ROUTES
        .iter()
        .find(|d| d.path == template.as_str() && d.method == method.as_str())
    else {
        return Ok(());
    };
    match crate::token_scope::required_scope(&method, doc.path, doc.access) {
        Some(scope) if grant.has(scope) => Ok(()),
        Some(scope) => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!("this API token lacks the \"{}\" scope", scope.as_str()),
        )),
        None => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "API tokens cannot use this route (sign in instead)",
        )),
    }
}

/// While the policy requires a second factor this session's user has not set, only what
/// enrolling needs answers; everything else is 403 with a message the UI acts on.
fn check_enrolled(
    st: &AppState,
    req: &Request,
    identity: Option<&Identity>,
) -> Result<(), ApiError> {
    let Some(i) = identity else {
        return Ok(());
    };
    if i.session().is_none() {
        return Ok(());
    }
    let path = req.uri().path();
    let allowed = path == "/api/session"
        || path == "/api/logout"
        || path.starts_with("/api/account/second-factor")
        || path.starts_with("/api/account/passkeys");
    if allowed
        || !st
            .accounts
            .must_enrol(&i.user.name, i.user.role)
            .map_err(ApiError::internal)?
    {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "a second factor is required: set one up on the Account page first",
    ))
}

/// Adds the headers every response carries.
pub fn harden(resp: &mut Response, api: bool) {
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// API errors are always `{"error": "..."}`: the framework's own rejections (bad query or
/// path parameters, 405, 413) come as plain text and are rewrapped here.
async fn json_error(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let msg = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut out = ApiError::new(status, msg).into_response();
    // Keep the other headers (Allow on a 405, Content-Range on a 416, …).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// The middleware of every request; see the module docs.
pub async fn guard(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path == "/api" || path.starts_with("/api/");
    let mut resp = if api {
        match resolve(&st, req.headers()) {
            Err(e) => e.into_response(),
            Ok(identity) => match check_request(
                req.method(),
                req.uri().path(),
                req.headers(),
                identity.as_ref(),
            )
            .and_then(|()| check_scope(&req, identity.as_ref()))
            .and_then(|()| check_enrolled(&st, &req, identity.as_ref()))
            {
                Err(e) => e.into_response(),
                Ok(()) => {
                    if let Some(i) = identity {
                        req.extensions_mut().insert(i);
                    }
                    json_error(next.run(req).await).await
                }
            },
        }
    } else {
        next.run(req).await
    };
    harden(&mut resp, api);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_rules() {
        let host = ("host", "cam.local:8443");
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://cam.local:8443")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://cam.local:8443")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("referer", "https://cam.local:8443/#/x")
        ])));
        // A prefix that is a different host does not pass.
        assert!(!same_origin(&headers(&[
            host,
            ("referer", "https://cam.local:84430/")
        ])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "https://cam.local:8443"
        )])));
        // Origin wins over a matching Referer.
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "https://evil.example"),
            ("referer", "https://cam.local:8443/")
        ])));
    }

    #[test]
    fn cookie_parsing() {
        let h = headers(&[("cookie", "a=1; vigil_session=abc; vigil_session=def")]);
        assert_eq!(session_cookie(&h), Some("abc"));
        assert_eq!(
            session_cookie(&headers(&[("cookie", "xvigil_session=1")])),
            None
        );
        let c = set_session_cookie("s3");
        let c = c.to_str().unwrap();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(attr), "{c}");
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc")])),
            Some(Some("abc"))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer  abc ")])),
            Some(Some("abc"))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "Basic abc")])),
            Some(None)
        );
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
