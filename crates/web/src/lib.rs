//! Vigil's web app: an HTTPS server (rustls) with accounts and sessions, a JSON API under
//! `/api/` described by `/api/openapi.json`, live view (fragmented MP4 over a WebSocket into
//! Media Source Extensions), playback and export of recordings, and the UI (plain ES modules
//! and CSS embedded in the binary).
//!
//! # Security model
//! - **Transport**: TLS 1.2+ only (rustls); a self-signed certificate is made on first run in
//!   `<data>/tls/` and kept (its SHA-256 fingerprint is printed), or the operator's own
//!   ([`tls`]). HTTP/1.1 only, request heads ≤ 16 KiB read within 10 s, JSON bodies ≤ 64 KiB,
//!   ≤ 256 connections per address and 1024 in all (fewer under a low descriptor limit),
//!   request bodies within 30 s and at ≥ 1 KiB/s after 5 s ([`edge`], shared with the
//!   camera's snapshot server).
//! - **First run**: no user and no default password; a single-use setup token (256 bits, kept
//!   only as a hash in memory, valid 1 h, renewed while no user exists) is printed as
//!   `setup-url …` and creates the first admin.
//! - **Accounts** ([`accounts`]): users in `users.json` (argon2id, shared with `vigil user`),
//!   admin and viewer roles, per-camera access for viewers. Sessions in `web.sqlite3` store
//!   only SHA-256 of a 256-bit id, with a per-session CSRF token, 7-day idle and 30-day
//!   absolute expiry; a new id at every login (the previous session of that browser ends); a
//!   password change ends the user's other sessions. API tokens are stored hashed and shown
//!   once. Logins are slowed per address and per user name (429 + Retry-After, never a
//!   lock-out). An audit log keeps logins, failures, setup and every change.
//! - **Requests** ([`auth`]): only the session cookie or a bearer API token identify a caller
//!   (never addresses or forwarded headers); every route but login, setup, a share link's open
//!   and the static UI answers 401 without one (a share's own routes take its media session,
//!   [`shares`], and nothing else); state changes and WebSocket upgrades need our own `Origin`, and
//!   with a session the `X-CSRF-Token`; every response carries a strict CSP, nosniff,
//!   no-referrer, HSTS, and API answers `Cache-Control: no-store`.
//! - **Files**: the UI is embedded at build time ([`assets`]) and looked up by exact path, so
//!   no request reaches the filesystem; camera passwords are write-only.
//!
//! The route table [`ROUTES`] is the single source for the router, the OpenAPI document and
//! the tests that walk every route; the document's bodies are the JSON Schemas of the
//! handlers' own request and answer types ([`openapi`]).
//!
//! Module owners: `state`/`auth`/`accounts`/`account_routes`/`json_body`/`assets`/`server`/
//! `tls`/`openapi` (web core), `live`/`playback`/`events_api` (media routes),
//! `shares`/`share_routes` (share links).

pub mod account_routes;
pub mod accounts;
pub mod api_cameras;
pub mod assets;
pub mod auth;
pub mod edge;
pub mod error;
pub mod events_api;
pub mod json_body;
pub mod live;
pub mod onvif_edge;
pub mod onvif_routes;
pub mod openapi;
pub mod passkey_routes;
pub mod passkeys;
pub mod playback;
pub mod router;
pub mod second_factor;
pub mod second_factor_routes;
pub mod server;
pub mod setup_file;
pub mod share_routes;
pub mod shares;
pub mod state;
pub mod tls;
pub mod token_scope;
pub mod whep;

pub use error::ApiError;
pub use router::{router, ROUTES};
pub use server::{start, WebConfig, WebHandle};
pub use state::{Access, AppState, CurrentUser, RouteDoc, StatusProvider};
