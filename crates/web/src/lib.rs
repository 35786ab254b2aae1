//! Vigil's web app: an HTTPS server (rustls) with accounts and sessions, a JSON API under
//! `/api/` described by `/api/openapi.json`, live view (fragmented MP4 over a WebSocket into
//! Media Source Extensions), playback and export of recordings, and the UI (plain ES modules
//! and CSS embedded in the binary).
//!
//! Module owners: `state`/`auth`/`accounts`/`api`/`assets`/`server`/`tls` (web core),
//! `live`/`playback`/`events_api` (media routes).

pub mod error;
pub mod state;

pub use error::ApiError;
pub use state::{Access, AppState, CurrentUser, RouteDoc};
