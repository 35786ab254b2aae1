//! Vigil's web app: an HTTPS server (rustls) with accounts and sessions, a JSON API under
//! `/api/` described by `/api/openapi.json`, live view (fragmented MP4 over a WebSocket into
//! Media Source Extensions), playback and export of recordings, and the UI (plain ES modules
//! and CSS embedded in the binary).
//!
//! Module owners: `state`/`auth`/`accounts`/`api`/`assets`/`server`/`tls` (web core),
//! `live`/`playback`/`events_api` (media routes).

pub mod accounts;
pub mod api;
pub mod api_cameras;
pub mod assets;
pub mod auth;
pub mod error;
pub mod events_api;
pub mod live;
pub mod openapi;
pub mod playback;
pub mod router;
pub mod server;
pub mod state;
pub mod tls;

pub use error::ApiError;
pub use router::{router, ROUTES};
pub use server::{start, WebConfig, WebHandle};
pub use state::{Access, AppState, CurrentUser, RouteDoc, StatusProvider};
