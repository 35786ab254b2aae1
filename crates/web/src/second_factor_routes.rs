//! Routes of the second factors (`crate::second_factor`): the login's second step, a user's
//! own enrolment and removal, and the admin's policy and reset.
//!
//! Every failure of a code counts in the login throttle like a wrong password (per address
//! and per user), so a stolen password does not buy unlimited guesses at six digits.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::account_routes::{blocking, logged_in, too_many};
use crate::auth::{AdminUser, Identity, Peer};
use crate::error::ApiError;
use crate::second_factor::{Enrolment, Policy, Status};
use crate::state::AppState;

/// Answer of `POST /api/login` (202) when the password was right and a second factor is due.
#[derive(Serialize, JsonSchema)]
pub struct SecondFactorDue {
    /// The first of `methods`.
    pub second_factor: String,
    /// What the account has: `totp`, `passkey` (a recovery code is always accepted too).
    pub methods: Vec<String>,
    /// Send it back with the code to `POST /api/login/second-factor` within 5 minutes.
    pub ticket: String,
}

/// Body of `POST /api/login/second-factor`: the ticket and a code or a recovery code.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondStepBody {
    /// The ticket of the password step.
    ticket: String,
    /// The authenticator app's 6-digit code.
    #[serde(default)]
    code: Option<String>,
    /// Or one of the recovery codes.
    #[serde(default)]
    recovery_code: Option<String>,
    /// Or the browser's passkey assertion (`PublicKeyCredential` as JSON, base64url
    /// fields) answering `POST /api/login/second-factor/passkey`.
    #[serde(default)]
    passkey: Option<serde_json::Value>,
}

/// `POST /api/login/second-factor`: the code completes the login (the session cookie).
pub async fn second_step(
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    crate::json_body::ApiJson(b): crate::json_body::ApiJson<SecondStepBody>,
) -> Result<Response, ApiError> {
    let acc = st.accounts.clone();
    let expired = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the sign-in expired; enter the password again",
        )
    };
    if b.ticket.len() > 128 {
        return Err(expired());
    }
    let Some(name) = acc
        .tickets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .attempt(&b.ticket)
    else {
        return Err(expired());
    };
    let reservation =
        match acc
            .throttle()
            .reserve(peer.0, Some(&name), std::time::SystemTime::now())
        {
            Ok(r) => r,
            Err(wait) => return Ok(too_many(wait)),
        };
    let (ok, how) = match (&b.code, &b.recovery_code, &b.passkey) {
        (Some(code), None, None) => (acc.totp_verify(&name, code)?, "totp".to_owned()),
        (None, Some(code), None) if code.len() <= 64 => match acc.recovery_use(&name, code)? {
            Some(left) => (true, format!("recovery code ({left} left)")),
            None => (false, "recovery code".to_owned()),
        },
        (None, None, Some(cred)) => {
            let origin = crate::passkey_routes::origin(&headers);
            match st
                .passkeys
                .second_factor_finish(&acc, origin, &name, &b.ticket, cred)
            {
                Ok(()) => (true, "passkey".to_owned()),
                Err(crate::passkeys::PasskeyError::Accounts(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::info!(error = %e, "passkey second step refused");
                    (false, "passkey".to_owned())
                }
            }
        }
        _ => {
            let _ = acc.throttle().fail(reservation);
            return Err(ApiError::bad_request(
                "send a code, a recovery code or a passkey",
            ));
        }
    };
    if !ok {
        let delay = acc.throttle().fail(reservation);
        acc.audit(&name, peer.0, "second_factor_failed", &how);
        tracing::warn!(peer = %peer.0, delay_ms = delay.as_millis() as u64, "web second factor failed");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong or already used code",
        ));
    }
    acc.throttle().succeed(reservation);
    let first = acc
        .tickets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .redeem(&b.ticket);
    if let Some(r) = first {
        acc.throttle().succeed(r);
    }
    let Some(user) = acc.users.get(&name)? else {
        return Err(expired());
    };
    // Session fixation, as at the password step: any earlier session of this browser ends.
    if let Some(old) =
        crate::auth::session_cookie(&headers).and_then(|c| acc.session(c).ok().flatten())
    {
        acc.revoke_session(&old.id)?;
    }
    acc.audit(&name, peer.0, "login", &format!("with {how}"));
    logged_in(&acc, &name, user.role, peer, &headers)
}

/// `GET /api/account/second-factor`: the caller's second factors.
pub async fn status(State(st): State<AppState>, id: Identity) -> Result<Json<Status>, ApiError> {
    Ok(Json(st.accounts.second_factor(&id.user.name)?))
}

/// `POST /api/account/second-factor/totp`: starts enrolling an authenticator app (the
/// secret and its QR code; nothing changes until a code confirms it).
pub async fn totp_begin(
    State(st): State<AppState>,
    id: Identity,
) -> Result<Json<Enrolment>, ApiError> {
    Ok(Json(st.accounts.totp_begin(&id.user.name)?))
}

/// Body of `POST /api/account/second-factor/totp/confirm`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// A code the app shows now.
    code: String,
}

/// The new recovery codes: shown in this answer and never again.
#[derive(Serialize, JsonSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes.
    pub recovery_codes: Vec<String>,
}

/// `POST /api/account/second-factor/totp/confirm`: a code from the app turns the
/// authenticator on and answers the recovery codes.
pub async fn totp_confirm(
    State(st): State<AppState>,
    peer: Peer,
    id: Identity,
    crate::json_body::ApiJson(b): crate::json_body::ApiJson<ConfirmBody>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let acc = &st.accounts;
    match acc.totp_confirm(&id.user.name, &b.code)? {
        Some(codes) => {
            acc.audit(&id.user.name, peer.0, "second_factor_enrolled", "totp");
            Ok(Json(RecoveryCodes {
                recovery_codes: codes,
            }))
        }
        None => Err(ApiError::bad_request(
            "that code is not the app's current one; check the phone's clock and try again",
        )),
    }
}

/// Body of the routes that need the password again.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordAgain {
    /// The caller's password.
    pub(crate) password: String,
}

/// Checks the caller's password again (throttled like a login).
pub(crate) async fn reauthenticate(
    st: &AppState,
    peer: Peer,
    name: &str,
    password: String,
) -> Result<Option<Response>, ApiError> {
    let acc = st.accounts.clone();
    let reservation = match acc
        .throttle()
        .reserve(peer.0, Some(name), std::time::SystemTime::now())
    {
        Ok(r) => r,
        Err(wait) => return Ok(Some(too_many(wait))),
    };
    let (a, n) = (acc.clone(), name.to_owned());
    if password.len() > 1024
        || blocking(move || a.users.verify_password(&n, &password))
            .await?
            .is_none()
    {
        let _ = acc.throttle().fail(reservation);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the password is wrong",
        ));
    }
    acc.throttle().succeed(reservation);
    Ok(None)
}

/// `POST /api/account/second-factor/remove`: turns the caller's second factor off (with the
/// password). If the policy requires one, the next request asks to enrol again.
pub async fn remove(
    State(st): State<AppState>,
    peer: Peer,
    id: Identity,
    crate::json_body::ApiJson(b): crate::json_body::ApiJson<PasswordAgain>,
) -> Result<Response, ApiError> {
    if let Some(r) = reauthenticate(&st, peer, &id.user.name, b.password).await? {
        return Ok(r);
    }
    st.accounts.totp_remove(&id.user.name)?;
    st.accounts.audit(
        &id.user.name,
        peer.0,
        "second_factor_removed",
        "authenticator app, by the user",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/account/second-factor/recovery-codes`: ten new recovery codes (the old ones
/// stop working), with the password and an authenticator set.
pub async fn new_recovery_codes(
    State(st): State<AppState>,
    peer: Peer,
    id: Identity,
    crate::json_body::ApiJson(b): crate::json_body::ApiJson<PasswordAgain>,
) -> Result<Response, ApiError> {
    if let Some(r) = reauthenticate(&st, peer, &id.user.name, b.password).await? {
        return Ok(r);
    }
    let codes = st.accounts.recovery_renew(&id.user.name)?;
    st.accounts
        .audit(&id.user.name, peer.0, "recovery_codes_renewed", "");
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    })
    .into_response())
}

/// The second-factor policy.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// Who must have a second factor: `none`, `admins` or `everyone`.
    pub require: Policy,
}

/// `GET /api/settings/second-factor`.
pub async fn get_policy(
    State(st): State<AppState>,
    _a: AdminUser,
) -> Result<Json<PolicyBody>, ApiError> {
    Ok(Json(PolicyBody {
        require: st.accounts.policy()?,
    }))
}

/// `PUT /api/settings/second-factor`: users it now covers without a second factor are sent to
/// enrol at their next request.
pub async fn put_policy(
    State(st): State<AppState>,
    peer: Peer,
    AdminUser(admin): AdminUser,
    crate::json_body::ApiJson(b): crate::json_body::ApiJson<PolicyBody>,
) -> Result<Json<PolicyBody>, ApiError> {
    st.accounts.set_policy(b.require)?;
    st.accounts.audit(
        &admin.name,
        peer.0,
        "second_factor_policy",
        &format!("{:?}", b.require).to_lowercase(),
    );
    Ok(Json(b))
}

/// `POST /api/users/{name}/reset-second-factor`: an admin removes a locked-out user's
/// authenticator and recovery codes (they enrol again if the policy requires it).
pub async fn admin_reset(
    State(st): State<AppState>,
    peer: Peer,
    AdminUser(admin): AdminUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if st.accounts.users.get(&name)?.is_none() {
        return Err(ApiError::not_found("no such user"));
    }
    st.accounts.second_factor_remove(&name)?;
    st.accounts.audit(
        &admin.name,
        peer.0,
        "second_factor_removed",
        &format!("{name}, by an admin"),
    );
    Ok(StatusCode::NO_CONTENT)
}
