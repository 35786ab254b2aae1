//! The route table ([`ROUTES`]) and the router built from it.
//!
//! Core routes are registered by walking [`CORE_ROUTES`] and looking each one's handler up in
//! `core_handler`, so no core route can exist without its table entry (which the OpenAPI
//! document and the "every route answers 401" test are generated from). The media modules'
//! routers are merged, with their own tables appended to [`ROUTES`].

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;

use crate::state::{Access, AppState, RouteDoc};
use crate::{account_routes, api_cameras, assets, openapi, passkey_routes, second_factor_routes};

/// Largest request body (every body is small JSON).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    summary: &'static str,
) -> RouteDoc {
    RouteDoc {
        method,
        path,
        access,
        summary,
    }
}

use Access::{Admin, Public, User};

/// The web core's routes.
pub const CORE_ROUTES: &[RouteDoc] = &[
    r("GET", "/", Public, "The web app (index.html)"),
    r("GET", "/index.html", Public, "The web app (index.html)"),
    r("GET", "/manifest.webmanifest", Public, "PWA manifest"),
    r(
        "GET",
        "/assets/{*path}",
        Public,
        "Embedded UI files (scripts, styles, icons)",
    ),
    r(
        "GET",
        "/api/setup",
        Public,
        "Whether first-run setup is needed: {needed}",
    ),
    r(
        "POST",
        "/api/setup",
        Public,
        "Create the first admin with the one-time setup token: {token, username, password}",
    ),
    r(
        "POST",
        "/api/login",
        Public,
        "Log in: {username, password}; sets the session cookie",
    ),
    r("POST", "/api/logout", User, "End the current session"),
    r(
        "GET",
        "/api/session",
        User,
        "The current user and the session's CSRF token",
    ),
    r(
        "POST",
        "/api/account/password",
        User,
        "Change the own password: {current, new}; ends the other sessions",
    ),
    r(
        "GET",
        "/api/sessions",
        User,
        "Sessions (own; an admin's: all)",
    ),
    r("DELETE", "/api/sessions/{id}", User, "End a session"),
    r(
        "GET",
        "/api/cameras",
        User,
        "Cameras the user may view, with status (never passwords)",
    ),
    r("POST", "/api/cameras", Admin, "Add a camera (CameraSpec)"),
    r(
        "POST",
        "/api/cameras/test",
        Admin,
        "Test a camera spec without adding it: codec, size, audio",
    ),
    r("GET", "/api/cameras/{name}", User, "One camera with status"),
    r(
        "PUT",
        "/api/cameras/{name}",
        Admin,
        "Replace a camera's spec (an absent password keeps the stored one)",
    ),
    r(
        "DELETE",
        "/api/cameras/{name}",
        Admin,
        "Remove a camera (recordings stay until retention)",
    ),
    r(
        "GET",
        "/api/cameras/{name}/snapshot.jpg",
        User,
        "JPEG of the camera's newest key frame",
    ),
    r(
        "GET",
        "/api/system",
        User,
        "Version, uptime, storage, camera status, alerts",
    ),
    r("GET", "/api/openapi.json", User, "This document"),
    r("GET", "/api/users", Admin, "Users"),
    r(
        "POST",
        "/api/users",
        Admin,
        "Add a user: {username, password, role, cameras|null}",
    ),
    r(
        "PUT",
        "/api/users/{name}",
        Admin,
        "Change a user: {role?, cameras?, password?}",
    ),
    r(
        "DELETE",
        "/api/users/{name}",
        Admin,
        "Remove a user (ends their sessions, deletes their tokens)",
    ),
    r(
        "GET",
        "/api/audit",
        Admin,
        "Audit log, newest first (?limit=N)",
    ),
    r(
        "GET",
        "/api/tokens",
        User,
        "API tokens: an admin's all, a viewer's own (never the tokens themselves)",
    ),
    r(
        "POST",
        "/api/tokens",
        User,
        "Create an API token: {name, username?, scopes?, cameras?, expires_in_days?}; \
         the token is shown once",
    ),
    r(
        "DELETE",
        "/api/tokens/{id}",
        User,
        "Delete an API token (a viewer: their own)",
    ),
    r(
        "POST",
        "/api/login/second-factor",
        Public,
        "The login's second step: {ticket, code | recovery_code} → the session",
    ),
    r(
        "GET",
        "/api/account/second-factor",
        User,
        "The caller's second factors: {totp, recovery_codes_left, required}",
    ),
    r(
        "POST",
        "/api/account/second-factor/totp",
        User,
        "Start enrolling an authenticator app: {secret, otpauth_uri, qr_svg}",
    ),
    r(
        "POST",
        "/api/account/second-factor/totp/confirm",
        User,
        "Confirm with a code {code}: turns it on, answers ten recovery codes once",
    ),
    r(
        "POST",
        "/api/account/second-factor/remove",
        User,
        "Turn the second factor off: {password}",
    ),
    r(
        "POST",
        "/api/account/second-factor/recovery-codes",
        User,
        "Ten new recovery codes (the old ones stop working): {password}",
    ),
    r(
        "GET",
        "/api/settings/second-factor",
        Admin,
        "Who must have a second factor: {require: none | admins | everyone}",
    ),
    r(
        "PUT",
        "/api/settings/second-factor",
        Admin,
        "Set who must have a second factor: {require}",
    ),
    r(
        "POST",
        "/api/users/{name}/reset-second-factor",
        Admin,
        "Remove a locked-out user's authenticator, passkeys and recovery codes",
    ),
    r(
        "POST",
        "/api/login/passkey/options",
        Public,
        "Start a sign-in with a passkey alone: {ticket, options}",
    ),
    r(
        "POST",
        "/api/login/passkey",
        Public,
        "Sign in with a passkey: {ticket, credential} → the session",
    ),
    r(
        "POST",
        "/api/login/second-factor/passkey",
        Public,
        "Options for a passkey as the login's second step: {ticket} → {ticket, options}",
    ),
    r(
        "GET",
        "/api/account/passkeys",
        User,
        "The caller's passkeys: [{id, name, created_us, last_used_us}]",
    ),
    r(
        "POST",
        "/api/account/passkeys/options",
        User,
        "Start adding a passkey: {password} → {ticket, options}",
    ),
    r(
        "POST",
        "/api/account/passkeys",
        User,
        "Add the passkey the browser made: {ticket, name, credential}",
    ),
    r(
        "DELETE",
        "/api/account/passkeys/{id}",
        User,
        "Remove one of the caller's passkeys",
    ),
];

/// The handler of a core route.
fn core_handler(doc: &RouteDoc) -> Option<MethodRouter<AppState>> {
    Some(match (doc.method, doc.path) {
        ("GET", "/") | ("GET", "/index.html") => get(assets::index),
        ("GET", "/manifest.webmanifest") => get(assets::manifest),
        ("GET", "/assets/{*path}") => get(assets::file),
        ("GET", "/api/setup") => get(account_routes::setup_status),
        ("POST", "/api/setup") => post(account_routes::setup),
        ("POST", "/api/login") => post(account_routes::login),
        ("POST", "/api/logout") => post(account_routes::logout),
        ("GET", "/api/session") => get(account_routes::session),
        ("POST", "/api/account/password") => post(account_routes::change_password),
        ("GET", "/api/sessions") => get(account_routes::list_sessions),
        ("DELETE", "/api/sessions/{id}") => delete(account_routes::revoke_session),
        ("GET", "/api/cameras") => get(api_cameras::list),
        ("POST", "/api/cameras") => post(api_cameras::add),
        ("POST", "/api/cameras/test") => post(api_cameras::test),
        ("GET", "/api/cameras/{name}") => get(api_cameras::get_one),
        ("PUT", "/api/cameras/{name}") => put(api_cameras::update),
        ("DELETE", "/api/cameras/{name}") => delete(api_cameras::remove),
        ("GET", "/api/cameras/{name}/snapshot.jpg") => get(api_cameras::snapshot),
        ("GET", "/api/system") => get(api_cameras::system),
        ("GET", "/api/openapi.json") => get(openapi::handler),
        ("GET", "/api/users") => get(account_routes::list_users),
        ("POST", "/api/users") => post(account_routes::add_user),
        ("PUT", "/api/users/{name}") => put(account_routes::update_user),
        ("DELETE", "/api/users/{name}") => delete(account_routes::delete_user),
        ("GET", "/api/audit") => get(account_routes::audit),
        ("GET", "/api/tokens") => get(account_routes::list_tokens),
        ("POST", "/api/tokens") => post(account_routes::add_token),
        ("DELETE", "/api/tokens/{id}") => delete(account_routes::delete_token),
        ("POST", "/api/login/second-factor") => post(second_factor_routes::second_step),
        ("GET", "/api/account/second-factor") => get(second_factor_routes::status),
        ("POST", "/api/account/second-factor/totp") => post(second_factor_routes::totp_begin),
        ("POST", "/api/account/second-factor/totp/confirm") => {
            post(second_factor_routes::totp_confirm)
        }
        ("POST", "/api/account/second-factor/remove") => post(second_factor_routes::remove),
        ("POST", "/api/account/second-factor/recovery-codes") => {
            post(second_factor_routes::new_recovery_codes)
        }
        ("GET", "/api/settings/second-factor") => get(second_factor_routes::get_policy),
        ("PUT", "/api/settings/second-factor") => put(second_factor_routes::put_policy),
        ("POST", "/api/users/{name}/reset-second-factor") => {
            post(second_factor_routes::admin_reset)
        }
        ("POST", "/api/login/passkey/options") => post(passkey_routes::sign_in_options),
        ("POST", "/api/login/passkey") => post(passkey_routes::sign_in),
        ("POST", "/api/login/second-factor/passkey") => post(passkey_routes::second_step_options),
        ("GET", "/api/account/passkeys") => get(passkey_routes::list),
        ("POST", "/api/account/passkeys/options") => post(passkey_routes::register_options),
        ("POST", "/api/account/passkeys") => post(passkey_routes::register),
        ("DELETE", "/api/account/passkeys/{id}") => delete(passkey_routes::remove),
        _ => return None,
    })
}

/// The tables of the media modules, in the order they are merged.
const MEDIA_TABLES: &[&[RouteDoc]] = &[
    crate::live::ROUTES,
    crate::playback::ROUTES,
    crate::events_api::ROUTES,
    crate::share_routes::ROUTES,
    crate::whep::ROUTES,
    crate::onvif_routes::ROUTES,
];

/// The media modules' routers.
fn media_routes() -> Router<AppState> {
    Router::new()
        .merge(crate::live::routes())
        .merge(crate::playback::routes())
        .merge(crate::events_api::routes())
        .merge(crate::share_routes::routes())
        .merge(crate::whep::routes())
        .merge(crate::onvif_routes::routes())
}

const PARTS: &[&[RouteDoc]] = &[CORE_ROUTES];

const fn count(groups: &[&[&[RouteDoc]]]) -> usize {
    let mut n = 0;
    let mut g = 0;
    while g < groups.len() {
        let mut i = 0;
        while i < groups[g].len() {
            n += groups[g][i].len();
            i += 1;
        }
        g += 1;
    }
    n
}

const N_ROUTES: usize = count(&[PARTS, MEDIA_TABLES]);

const fn concat() -> [RouteDoc; N_ROUTES] {
    let mut out = [r("", "", Public, ""); N_ROUTES];
    let groups: [&[&[RouteDoc]]; 2] = [PARTS, MEDIA_TABLES];
    let mut k = 0;
    let mut g = 0;
    while g < groups.len() {
        let mut i = 0;
        while i < groups[g].len() {
            let t = groups[g][i];
            let mut j = 0;
            while j < t.len() {
                out[k] = t[j];
                k += 1;
                j += 1;
            }
            i += 1;
        }
        g += 1;
    }
    out
}

const ALL_ROUTES: [RouteDoc; N_ROUTES] = concat();

/// Every route: the core's and the media modules'.
pub const ROUTES: &[RouteDoc] = &ALL_ROUTES;

async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        crate::ApiError::not_found("no such route").into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "not found\n",
        )
            .into_response()
    }
}

/// The whole app: every route of [`ROUTES`], the middleware ([`crate::auth::guard`]), the body
/// limit, and a 404 fallback.
pub fn router(state: AppState) -> Router {
    let mut core = Router::new();
    for doc in CORE_ROUTES {
        match core_handler(doc) {
            Some(h) => core = core.route(doc.path, h),
            // A table entry without a handler is a bug caught by the tests; never serve it.
            None => tracing::error!(
                path = doc.path,
                method = doc.method,
                "route without handler"
            ),
        }
    }
    core.merge(media_routes())
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_route_has_a_handler_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for d in ROUTES {
            assert!(
                seen.insert((d.method, d.path)),
                "duplicate {} {}",
                d.method,
                d.path
            );
            assert!(d.path.starts_with('/') && !d.summary.is_empty(), "{d:?}");
        }
        for d in CORE_ROUTES {
            assert!(
                core_handler(d).is_some(),
                "{} {} has no handler",
                d.method,
                d.path
            );
        }
        assert_eq!(
            ROUTES.len(),
            CORE_ROUTES.len() + MEDIA_TABLES.iter().map(|t| t.len()).sum::<usize>()
        );
    }

    #[test]
    fn only_login_setup_share_open_and_static_are_public() {
        for d in ROUTES.iter().filter(|d| d.access == Access::Public) {
            assert!(
                [
                    "/api/login",
                    "/api/login/second-factor",
                    "/api/login/passkey/options",
                    "/api/login/passkey",
                    "/api/login/second-factor/passkey",
                    "/api/setup",
                    "/api/share/open",
                ]
                .contains(&d.path)
                    || !d.path.starts_with("/api/"),
                "{} {} is public",
                d.method,
                d.path
            );
        }
    }
}
