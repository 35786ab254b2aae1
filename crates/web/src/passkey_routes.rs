//! Routes of passkeys (`crate::passkeys`): sign in with one alone, use one as the login's
//! second step, and a user's own list, registration and removal.
//!
//! Each ceremony is two requests: `…/options` answers the options for the browser's
//! `navigator.credentials.create()` or `.get()` (as webauthn-rs serializes them: binary
//! fields in base64url) with a ticket, and the second request sends the ticket and the
//! browser's credential back. A failed sign-in counts in the login throttle like a wrong
//! password, per address.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::account_routes::{logged_in, too_many};
use crate::auth::{Identity, Peer};
use crate::error::ApiError;
use crate::json_body::ApiJson;
use crate::passkeys::{PasskeyError, PasskeyRow, MAX_NAME_CHARS};
use crate::state::AppState;

/// The request's `Origin` header (browsers send it on every `POST`, RFC 6454 §7.3).
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::Accounts(a) => a.into(),
            PasskeyError::Unavailable(_) | PasskeyError::WrongOrigin { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            PasskeyError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            PasskeyError::Expired | PasskeyError::Rejected(_) => {
                ApiError::bad_request(e.to_string())
            }
        }
    }
}

/// The options of a ceremony, for the browser.
#[derive(Serialize, JsonSchema)]
pub struct Options {
    /// Send it back with the browser's answer (valid 2 minutes, once).
    pub ticket: String,
    /// `{publicKey: …}` for `navigator.credentials.create()` or `.get()`; binary fields
    /// (challenge, user id, credential ids) in base64url.
    pub options: serde_json::Value,
}

fn options(ticket: String, o: impl Serialize) -> Result<Json<Options>, ApiError> {
    Ok(Json(Options {
        ticket,
        options: serde_json::to_value(o).map_err(ApiError::internal)?,
    }))
}

/// `POST /api/login/passkey/options`: starts a sign-in with a passkey alone.
pub async fn sign_in_options(
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Inside a penalty of this address nothing starts (the finish would be refused anyway).
    let acc = &st.accounts;
    // The guard must be gone before `succeed` locks the throttle again.
    let reserved = acc
        .throttle()
        .reserve(peer.0, None, std::time::SystemTime::now());
    match reserved {
        Ok(r) => acc.throttle().succeed(r),
        Err(wait) => return Ok(too_many(wait)),
    }
    let (rcr, ticket) = st.passkeys.sign_in_start(origin(&headers))?;
    Ok(options(ticket, rcr)?.into_response())
}

/// Body of `POST /api/login/passkey`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    /// The ticket of `POST /api/login/passkey/options`.
    ticket: String,
    /// The browser's `PublicKeyCredential` (assertion) as JSON, binary fields in base64url.
    credential: serde_json::Value,
}

/// `POST /api/login/passkey`: the passkey signs in (the session cookie); no password, no
/// second step (the authenticator verified its user, WebAuthn §6.2.3).
pub async fn sign_in(
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(b): ApiJson<SignInBody>,
) -> Result<Response, ApiError> {
    let acc = st.accounts.clone();
    let reservation = match acc
        .throttle()
        .reserve(peer.0, None, std::time::SystemTime::now())
    {
        Ok(r) => r,
        Err(wait) => return Ok(too_many(wait)),
    };
    let result = if b.ticket.len() > 128 {
        Err(PasskeyError::Expired)
    } else {
        st.passkeys
            .sign_in_finish(&acc, origin(&headers), &b.ticket, &b.credential)
    };
    let name = match result {
        Ok(name) => name,
        Err(PasskeyError::Accounts(e)) => {
            let _ = acc.throttle().fail(reservation);
            return Err(e.into());
        }
        Err(e) => {
            let delay = acc.throttle().fail(reservation);
            acc.audit("", peer.0, "login_failed", &format!("passkey: {e}"));
            tracing::warn!(peer = %peer.0, delay_ms = delay.as_millis() as u64, error = %e, "web passkey sign-in failed");
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()));
        }
    };
    acc.throttle().succeed(reservation);
    let Some(user) = acc.users.get(&name)? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this passkey belongs to no user of this recorder",
        ));
    };
    // Session fixation, as at the password login.
    if let Some(old) =
        crate::auth::session_cookie(&headers).and_then(|c| acc.session(c).ok().flatten())
    {
        acc.revoke_session(&old.id)?;
    }
    acc.audit(&name, peer.0, "login", "with a passkey");
    logged_in(&acc, &name, user.role, peer, &headers)
}

/// Body of `POST /api/login/second-factor/passkey`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondStepOptionsBody {
    /// The ticket of the password step.
    ticket: String,
}

/// `POST /api/login/second-factor/passkey`: the options for the passkey second step of a
/// password login; the assertion then goes to `POST /api/login/second-factor` as
/// `{ticket, passkey}`.
pub async fn second_step_options(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<SecondStepOptionsBody>,
) -> Result<Json<Options>, ApiError> {
    let acc = &st.accounts;
    let name = (b.ticket.len() <= 128)
        .then(|| {
            acc.tickets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .attempt(&b.ticket)
        })
        .flatten()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the sign-in expired; enter the password again",
            )
        })?;
    let rcr = st
        .passkeys
        .second_factor_start(acc, origin(&headers), &name, &b.ticket)?;
    options(b.ticket, rcr)
}

/// `GET /api/account/passkeys`: the caller's passkeys.
pub async fn list(
    State(st): State<AppState>,
    id: Identity,
) -> Result<Json<Vec<PasskeyRow>>, ApiError> {
    Ok(Json(st.accounts.passkey_list(&id.user.name)?))
}

/// `POST /api/account/passkeys/options`: starts adding a passkey (with the password: a
/// session left open must not be enough to plant a way in).
pub async fn register_options(
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    id: Identity,
    ApiJson(b): ApiJson<crate::second_factor_routes::PasswordAgain>,
) -> Result<Response, ApiError> {
    if let Some(r) =
        crate::second_factor_routes::reauthenticate(&st, peer, &id.user.name, b.password).await?
    {
        return Ok(r);
    }
    let (ccr, ticket) =
        st.passkeys
            .register_start(&st.accounts, origin(&headers), &id.user.name)?;
    Ok(options(ticket, ccr)?.into_response())
}

/// Body of `POST /api/account/passkeys`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// The ticket of `POST /api/account/passkeys/options`.
    ticket: String,
    /// A label (e.g. "phone", "laptop"), 1 to 64 characters.
    name: String,
    /// The browser's `PublicKeyCredential` (attestation) as JSON, binary fields in base64url.
    credential: serde_json::Value,
}

/// Answer of `POST /api/account/passkeys`.
#[derive(Serialize, JsonSchema)]
pub struct Registered {
    /// The new passkey.
    pub passkey: PasskeyRow,
    /// Ten recovery codes, shown once, when the account had none (its first second factor).
    pub recovery_codes: Option<Vec<String>>,
}

/// `POST /api/account/passkeys`: verifies the browser's new credential and keeps it.
pub async fn register(
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    id: Identity,
    ApiJson(b): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let name = b.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "name the passkey with 1 to {MAX_NAME_CHARS} printable characters"
        )));
    }
    let acc = &st.accounts;
    let user = &id.user.name;
    let passkey =
        st.passkeys
            .register_finish(acc, origin(&headers), user, &b.ticket, name, &b.credential)?;
    acc.audit(user, peer.0, "passkey_added", name);
    let recovery_codes = acc.recovery_codes_if_none(user)?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            passkey,
            recovery_codes,
        }),
    ))
}

/// `DELETE /api/account/passkeys/{id}`: removes one of the caller's passkeys.
pub async fn remove(
    State(st): State<AppState>,
    peer: Peer,
    id: Identity,
    Path(key): Path<i64>,
) -> Result<StatusCode, ApiError> {
    match st.accounts.passkey_remove(&id.user.name, key)? {
        Some(name) => {
            st.accounts
                .audit(&id.user.name, peer.0, "passkey_removed", &name);
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::not_found("no such passkey")),
    }
}
