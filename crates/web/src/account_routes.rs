//! Account routes: setup, login, logout, session, password, sessions, users, audit, tokens.
//! The records they read and write live in [`crate::accounts`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use vigil_auth::{AuthError, Role};

use crate::accounts::{Accounts, AccountsError, AuditRow, SessionInfo, SetupCheck, TokenInfo};
use crate::auth::{
    clear_session_cookie, session_cookie, set_session_cookie, AdminUser, Identity, Peer,
};
use crate::error::ApiError;
use crate::json_body::ApiJson;
use crate::state::{AppState, CurrentUser};

/// Successful web logins, process-wide (one web app per process; for `/metrics`).
static LOGINS: AtomicU64 = AtomicU64::new(0);
/// Logins refused for a wrong user name or password.
static LOGIN_FAILURES: AtomicU64 = AtomicU64::new(0);
/// Requests answered 429 by the brute-force throttle (logins, password changes, share
/// passwords: every caller of [`too_many`]).
static THROTTLED: AtomicU64 = AtomicU64::new(0);

/// Login and throttling counters since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoginCounters {
    /// Successful logins.
    pub logins: u64,
    /// Logins refused for a wrong user name or password.
    pub failures: u64,
    /// Requests refused with 429 Too Many Requests.
    pub throttled: u64,
}

/// The counters now.
pub fn login_counters() -> LoginCounters {
    LoginCounters {
        logins: LOGINS.load(Ordering::Relaxed),
        failures: LOGIN_FAILURES.load(Ordering::Relaxed),
        throttled: THROTTLED.load(Ordering::Relaxed),
    }
}

impl From<AccountsError> for ApiError {
    fn from(e: AccountsError) -> Self {
        match e {
            AccountsError::Users(a) => a.into(),
            AccountsError::Db(d) => ApiError::internal(d),
            AccountsError::Schema(e) => ApiError::internal(e),
            AccountsError::SecondFactor(m) => ApiError::new(StatusCode::CONFLICT, m),
            AccountsError::Encode(m) => ApiError::internal(m),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::WeakPassword(_)
            | AuthError::InvalidName(_)
            | AuthError::InvalidRole(_)
            | AuthError::InvalidCameras(_) => ApiError::bad_request(e.to_string()),
            AuthError::DuplicateUser(_) | AuthError::LastAdmin => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            AuthError::NoSuchUser(_) => ApiError::not_found(e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

/// Runs blocking work (argon2) off the async workers, under the process-wide password-hashing
/// bound of the HTTPS edge ([`crate::edge::hashing_permit`], shared with the camera's snapshot
/// server): a flood of logins from many addresses queues there instead of exhausting memory
/// and CPU. The permit moves into the blocking task, so a client that leaves mid-hash does not
/// free it early.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = crate::edge::hashing_permit()
        .await
        .map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::from)
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub(crate) fn too_many(wait: std::time::Duration) -> Response {
    THROTTLED.fetch_add(1, Ordering::Relaxed);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed attempts; try again later",
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

/// Answer of `GET /api/setup`.
#[derive(Serialize, JsonSchema)]
pub struct SetupStatus {
    /// Whether no user exists yet, so the setup link creates the first admin.
    pub needed: bool,
}

/// Answer of a login or setup (with the session cookie).
#[derive(Serialize, JsonSchema)]
pub struct LoggedIn {
    /// The user now logged in.
    pub username: String,
    /// Their role.
    pub role: Role,
}

/// Answer of `GET /api/session`.
#[derive(Serialize, JsonSchema)]
pub struct SessionView {
    /// The caller.
    pub username: String,
    /// Their role.
    pub role: Role,
    /// Cameras a viewer may see (`null`: all).
    pub cameras: Option<Vec<String>>,
    /// The CSRF token to send as `X-CSRF-Token` (`null` for an API token).
    pub csrf_token: Option<String>,
    /// The policy requires a second factor this user has not set: every other route answers
    /// 403 until they enrol (`POST /api/account/second-factor/totp`).
    pub must_enrol: bool,
}

/// A user as the API shows it (never the password hash).
#[derive(Serialize, JsonSchema)]
pub struct UserView {
    /// User name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Cameras a viewer may see (`null`: all).
    pub cameras: Option<Vec<String>>,
}

impl From<&vigil_auth::User> for UserView {
    fn from(u: &vigil_auth::User) -> Self {
        Self {
            username: u.name.clone(),
            role: u.role,
            cameras: u.cameras.clone(),
        }
    }
}

/// Answer of `POST /api/tokens`: the token's record and, this once, the token itself.
#[derive(Serialize, JsonSchema)]
pub struct NewToken {
    /// The stored record.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token; shown only in this answer.
    pub token: String,
}

/// A session answer: [`LoggedIn`] plus the cookie.
pub(crate) fn logged_in(
    acc: &Accounts,
    user: &str,
    role: Role,
    peer: Peer,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let new = acc.create_session(user, peer.0, user_agent(headers))?;
    Ok((
        StatusCode::OK,
        [(header::SET_COOKIE, set_session_cookie(&new.secret))],
        Json(LoggedIn {
            username: user.to_owned(),
            role,
        }),
    )
        .into_response())
}

/// `GET /api/setup`.
pub async fn setup_status(State(st): State<AppState>) -> Result<Json<SetupStatus>, ApiError> {
    Ok(Json(SetupStatus {
        needed: st.accounts.users.is_empty()?,
    }))
}

/// Body of `POST /api/setup`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    /// The token of the setup link.
    token: String,
    /// The first admin's name.
    username: String,
    /// Their password.
    password: String,
}

/// `POST /api/setup`: creates the first admin with the one-time token.
pub async fn setup(
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SetupBody>,
) -> Result<Response, ApiError> {
    let acc = st.accounts.clone();
    // One setup at a time: check, create and use up the token as one step.
    let _one = acc.setup_lock.lock().await;
    if !acc.users.is_empty()? {
        return Err(ApiError::new(StatusCode::CONFLICT, "setup is already done"));
    }
    if acc.check_setup_token(&body.token) != SetupCheck::Valid {
        acc.audit(
            &body.username,
            peer.0,
            "setup_failed",
            "invalid, used or expired setup token",
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid, used or expired setup link",
        ));
    }
    let (a, name, pw) = (acc.clone(), body.username.clone(), body.password);
    blocking(move || a.users.add(&name, &pw, Role::Admin)).await?;
    acc.consume_setup_token();
    acc.audit(&body.username, peer.0, "setup", "first admin created");
    logged_in(&acc, &body.username, Role::Admin, peer, &headers)
}

/// Body of `POST /api/login`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// User name.
    username: String,
    /// Password.
    password: String,
}

/// `POST /api/login`.
pub async fn login(
    State(st): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let acc = st.accounts.clone();
    let now = std::time::SystemTime::now();
    // The attempt takes its throttle slot (a provisional failure of the address and the
    // account) before argon2 runs, so concurrent guesses see each other; inside a penalty it
    // is refused without looking at the password.
    let reservation = match acc.throttle().reserve(peer.0, Some(&body.username), now) {
        Ok(r) => r,
        Err(wait) => return Ok(too_many(wait)),
    };
    let (a, name, pw) = (acc.clone(), body.username.clone(), body.password);
    let verified = if name.chars().count() > 64 || pw.len() > 1024 {
        None
    } else {
        blocking(move || a.users.verify_password(&name, &pw)).await?
    };
    let Some(user) = verified else {
        LOGIN_FAILURES.fetch_add(1, Ordering::Relaxed);
        let delay = acc.throttle().fail(reservation);
        acc.audit(
            &body.username,
            peer.0,
            "login_failed",
            "wrong user name or password",
        );
        tracing::warn!(peer = %peer.0, delay_ms = delay.as_millis() as u64, "web login failed");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        ));
    };
    // A second factor is due: the password's throttle slot stays open until the code settles
    // it, so alternating right passwords and wrong codes never clears the account's count.
    let factors = acc.second_factor(&user.name)?;
    if factors.totp || factors.passkeys > 0 {
        let ticket = acc
            .tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .issue(&user.name, reservation);
        let methods: Vec<String> = [("totp", factors.totp), ("passkey", factors.passkeys > 0)]
            .into_iter()
            .filter(|(_, has)| *has)
            .map(|(m, _)| m.to_owned())
            .collect();
        return Ok((
            StatusCode::ACCEPTED,
            Json(crate::second_factor_routes::SecondFactorDue {
                second_factor: methods[0].clone(),
                methods,
                ticket,
            }),
        )
            .into_response());
    }
    acc.throttle().succeed(reservation);
    // Session fixation: whatever session the browser had before is ended, the new one is fresh.
    if let Some(old) = session_cookie(&headers).and_then(|c| acc.session(c).ok().flatten()) {
        acc.revoke_session(&old.id)?;
    }
    LOGINS.fetch_add(1, Ordering::Relaxed);
    acc.audit(&user.name, peer.0, "login", "");
    logged_in(&acc, &user.name, user.role, peer, &headers)
}

/// `POST /api/logout`.
pub async fn logout(
    State(st): State<AppState>,
    peer: Peer,
    id: Identity,
) -> Result<Response, ApiError> {
    if let Some(s) = id.session() {
        st.accounts.revoke_session(&s.id)?;
    }
    st.accounts.audit(&id.user.name, peer.0, "logout", "");
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, clear_session_cookie())],
    )
        .into_response())
}

/// `GET /api/session`.
pub async fn session(
    State(st): State<AppState>,
    id: Identity,
) -> Result<Json<SessionView>, ApiError> {
    let must_enrol =
        id.session().is_some() && st.accounts.must_enrol(&id.user.name, id.user.role)?;
    Ok(Json(SessionView {
        csrf_token: id.session().map(|s| s.csrf.clone()),
        username: id.user.name,
        role: id.user.role,
        cameras: id.user.cameras,
        must_enrol,
    }))
}

/// Body of `POST /api/account/password`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The current password.
    current: String,
    /// The new one.
    new: String,
}

/// `POST /api/account/password`: needs the current password; ends the user's other sessions.
pub async fn change_password(
    State(st): State<AppState>,
    peer: Peer,
    id: Identity,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<Response, ApiError> {
    let acc = st.accounts.clone();
    let name = id.user.name.clone();
    let now = std::time::SystemTime::now();
    let reservation = match acc.throttle().reserve(peer.0, Some(&name), now) {
        Ok(r) => r,
        Err(wait) => return Ok(too_many(wait)),
    };
    let (a, n, cur) = (acc.clone(), name.clone(), body.current);
    if blocking(move || a.users.verify_password(&n, &cur))
        .await?
        .is_none()
    {
        let _ = acc.throttle().fail(reservation);
        acc.audit(
            &name,
            peer.0,
            "password_change_failed",
            "wrong current password",
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the current password is wrong",
        ));
    }
    acc.throttle().succeed(reservation);
    let (a, n, new) = (acc.clone(), name.clone(), body.new);
    blocking(move || a.users.set_password(&n, &new)).await?;
    let ended = acc.revoke_user_sessions(&name, id.session().map(|s| s.id.as_str()))?;
    acc.audit(
        &name,
        peer.0,
        "password_changed",
        &format!("{ended} other sessions ended"),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/sessions`: the caller's sessions (an admin's: everyone's).
pub async fn list_sessions(
    State(st): State<AppState>,
    id: Identity,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let who = (!id.user.is_admin()).then_some(id.user.name.as_str());
    let list = st
        .accounts
        .sessions(who, id.session().map(|s| s.id.as_str()))?;
    Ok(Json(list))
}

/// `DELETE /api/sessions/{id}`.
pub async fn revoke_session(
    State(st): State<AppState>,
    peer: Peer,
    id: Identity,
    Path(sid): Path<String>,
) -> Result<StatusCode, ApiError> {
    let acc = &st.accounts;
    let owner = acc.session_owner(&sid)?;
    // Another user's session is "not found" for a viewer, not "forbidden": ids leak nothing.
    let Some(owner) = owner.filter(|o| *o == id.user.name || id.user.is_admin()) else {
        return Err(ApiError::not_found("no such session"));
    };
    acc.revoke_session(&sid)?;
    acc.audit(
        &id.user.name,
        peer.0,
        "session_revoked",
        &format!("session {sid} of {owner}"),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/users`.
pub async fn list_users(
    State(st): State<AppState>,
    _a: AdminUser,
) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(
        st.accounts
            .users
            .list()?
            .iter()
            .map(UserView::from)
            .collect(),
    ))
}

/// Body of `POST /api/users`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// User name (1-64 of `A-Z a-z 0-9 _ . -`).
    username: String,
    /// Password.
    password: String,
    /// Role.
    role: Role,
    /// Cameras a viewer may see (absent or `null`: all).
    #[serde(default)]
    cameras: Option<Vec<String>>,
}

/// `POST /api/users`.
pub async fn add_user(
    State(st): State<AppState>,
    peer: Peer,
    AdminUser(admin): AdminUser,
    ApiJson(b): ApiJson<NewUserBody>,
) -> Result<Response, ApiError> {
    let acc = st.accounts.clone();
    let (a, name, pw, cams) = (
        acc.clone(),
        b.username.clone(),
        b.password,
        b.cameras.clone(),
    );
    blocking(move || a.users.add_with_cameras(&name, &pw, b.role, cams)).await?;
    acc.audit(
        &admin.name,
        peer.0,
        "user_added",
        &format!("{} as {}", b.username, b.role),
    );
    let u = acc
        .users
        .get(&b.username)?
        .ok_or_else(|| ApiError::internal("user vanished"))?;
    Ok((StatusCode::CREATED, Json(UserView::from(&u))).into_response())
}

fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `PUT /api/users/{name}`: absent fields stay; `"cameras": null` means all cameras.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserBody {
    /// New role.
    #[serde(default)]
    role: Option<Role>,
    /// Cameras a viewer may see (`null`: all).
    #[serde(default, deserialize_with = "double_option")]
    #[schemars(with = "Option<Vec<String>>")]
    cameras: Option<Option<Vec<String>>>,
    /// New password (ends the user's sessions).
    #[serde(default)]
    password: Option<String>,
}

/// `PUT /api/users/{name}`.
pub async fn update_user(
    State(st): State<AppState>,
    peer: Peer,
    id: Identity,
    _a: AdminUser,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<UpdateUserBody>,
) -> Result<Json<UserView>, ApiError> {
    let acc = st.accounts.clone();
    if acc.users.get(&name)?.is_none() {
        return Err(ApiError::not_found("no such user"));
    }
    let mut changed = Vec::new();
    if let Some(pw) = b.password {
        let (a, n) = (acc.clone(), name.clone());
        blocking(move || a.users.set_password(&n, &pw)).await?;
        // A reset password ends the user's sessions (except the admin's own current one).
        let keep = if name == id.user.name {
            id.session().map(|s| s.id.as_str())
        } else {
            None
        };
        acc.revoke_user_sessions(&name, keep)?;
        changed.push("password".to_owned());
    }
    if let Some(r) = b.role {
        changed.push(format!("role={r}"));
    }
    if let Some(c) = &b.cameras {
        changed.push(match c {
            Some(list) => format!("cameras={}", list.join(",")),
            None => "cameras=all".to_owned(),
        });
    }
    let u = acc.users.update(&name, b.role, b.cameras)?;
    acc.audit(
        &id.user.name,
        peer.0,
        "user_changed",
        &format!("{name}: {}", changed.join(" ")),
    );
    Ok(Json(UserView::from(&u)))
}

/// `DELETE /api/users/{name}`: also ends the user's sessions and deletes their tokens.
pub async fn delete_user(
    State(st): State<AppState>,
    peer: Peer,
    AdminUser(admin): AdminUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let acc = &st.accounts;
    acc.users.remove_keep_admin(&name)?;
    acc.revoke_user_sessions(&name, None)?;
    acc.delete_user_tokens(&name)?;
    // A user made again under this name must not inherit these.
    acc.second_factor_remove(&name)?;
    acc.audit(&admin.name, peer.0, "user_removed", &name);
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /api/audit`.
#[derive(Deserialize, JsonSchema)]
pub struct AuditQuery {
    /// Rows to return (default 100, at most 1000).
    limit: Option<u32>,
}

/// `GET /api/audit?limit=N` (default 100, at most 1000), newest first.
pub async fn audit(
    State(st): State<AppState>,
    _a: AdminUser,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(st.accounts.audit_log(limit)?))
}

/// `GET /api/tokens`: an admin sees every token, anyone else their own.
pub async fn list_tokens(
    State(st): State<AppState>,
    me: CurrentUser,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let only = (!me.is_admin()).then_some(me.name.as_str());
    Ok(Json(st.accounts.tokens(only)?))
}

/// Days a token lives when the request does not say.
const DEFAULT_TOKEN_DAYS: u32 = 90;
/// The longest a token may live: ten years, for a wall display nobody will revisit.
const MAX_TOKEN_DAYS: u32 = 3650;

/// Body of `POST /api/tokens`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// A name to recognize the token by (1-64 characters).
    name: String,
    /// The user the token acts as (default: the caller; another user: admins only).
    #[serde(default)]
    username: Option<String>,
    /// What it may do: `view`, `share`, `cameras`, `admin` (default `["view"]`). A viewer's
    /// token can hold only `view` and `share`.
    #[serde(default)]
    scopes: Option<Vec<crate::token_scope::Scope>>,
    /// The cameras it is limited to (default: all its user may view).
    #[serde(default)]
    cameras: Option<Vec<String>>,
    /// Days until it stops working (1-3650, default 90).
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// `POST /api/tokens`: the token is in this answer and nowhere else, ever. Anyone may make
/// tokens for themselves; admins for others. A token never holds more than its user.
pub async fn add_token(
    State(st): State<AppState>,
    peer: Peer,
    me: CurrentUser,
    ApiJson(b): ApiJson<NewTokenBody>,
) -> Result<Response, ApiError> {
    use crate::token_scope::{Grant, Scope};
    let acc: &Arc<Accounts> = &st.accounts;
    let owner_name = b.username.unwrap_or_else(|| me.name.clone());
    if owner_name != me.name && !me.is_admin() {
        return Err(ApiError::forbidden());
    }
    let Some(owner) = acc.users.get(&owner_name)? else {
        return Err(ApiError::bad_request("no such user"));
    };
    if b.name.trim().is_empty() || b.name.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "the token name must be 1-64 characters",
        ));
    }
    let mut scopes = b.scopes.unwrap_or_else(|| vec![Scope::View]);
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::bad_request("a token needs at least one scope"));
    }
    if let Some(s) = scopes.iter().find(|s| !s.allowed_for(owner.role)) {
        return Err(ApiError::bad_request(format!(
            "{owner_name} is not an admin: a token of theirs cannot have the \"{}\" scope",
            s.as_str()
        )));
    }
    if let Some(cams) = &b.cameras {
        if cams.is_empty() || cams.len() > 64 || cams.iter().any(|c| c.is_empty() || c.len() > 64) {
            return Err(ApiError::bad_request(
                "cameras: 1-64 camera names of 1-64 characters",
            ));
        }
        let user = CurrentUser::from_user(owner.clone());
        if let Some(c) = cams.iter().find(|c| !user.can_view(c)) {
            return Err(ApiError::bad_request(format!(
                "{owner_name} cannot view camera {c}"
            )));
        }
    }
    let days = b.expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if !(1..=MAX_TOKEN_DAYS).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "expires_in_days must be 1-{MAX_TOKEN_DAYS}"
        )));
    }
    let spec = crate::accounts::TokenSpec {
        username: owner_name.clone(),
        name: b.name,
        grant: Grant {
            scopes,
            cameras: b.cameras,
        },
        expires_us: crate::accounts::now_us() + i64::from(days) * 86_400_000_000,
        created_by: me.name.clone(),
    };
    let (info, token) = acc.create_token(&spec)?;
    acc.audit(
        &me.name,
        peer.0,
        "token_created",
        &format!(
            "{} ({}) for {owner_name}: {} cameras {} for {days} days",
            info.id,
            info.name,
            spec.grant.scopes_text(),
            info.cameras
                .as_ref()
                .map_or_else(|| "all".to_owned(), |c| c.join(",")),
        ),
    );
    Ok((StatusCode::CREATED, Json(NewToken { info, token })).into_response())
}

/// `DELETE /api/tokens/{id}`: an admin any token, anyone else their own (404 otherwise, so
/// that ids of others' tokens are not confirmed).
pub async fn delete_token(
    State(st): State<AppState>,
    peer: Peer,
    me: CurrentUser,
    Path(tid): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !me.is_admin()
        && !st
            .accounts
            .tokens(Some(&me.name))?
            .iter()
            .any(|t| t.id == tid)
    {
        return Err(ApiError::not_found("no such token"));
    }
    if !st.accounts.delete_token(&tid)? {
        return Err(ApiError::not_found("no such token"));
    }
    st.accounts.audit(&me.name, peer.0, "token_deleted", &tid);
    Ok(StatusCode::NO_CONTENT)
}
