//! Shared state of the handlers and the authenticated-user extractor's result.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use vigil_auth::Role;
use vigil_nvr::Nvr;

use crate::accounts::Accounts;

/// Extra status for the system page (the alerts' state), as JSON.
pub type StatusProvider = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The NVR (cameras, hubs, recorder, events).
    pub nvr: Arc<Nvr>,
    /// Extra status for `/api/system` (e.g. `{"alerts": {...}}`), merged into its answer.
    pub status_extra: StatusProvider,
    /// Users, sessions, API tokens, audit log, setup token, login throttle.
    pub accounts: Arc<Accounts>,
    /// The data directory (users.json, web.sqlite3, tls/).
    pub data_dir: PathBuf,
    /// When the web app started (`uptime_s`).
    pub started: Instant,
    /// Becomes `true` when the server shuts down: long-lived answers (live WebSockets)
    /// `subscribe()` to it and end with "going away" (WebSocket close 1001) rather than as if
    /// their camera had been removed.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Cloud-only footage for the timeline and `export.mp4` (only when the owner keeps an
    /// identity on the recorder, docs/cloud.md).
    pub cloud: Option<Arc<vigil_cloud::playback::CloudPlayback>>,
    /// Share links (in `web.sqlite3`, beside the accounts).
    pub shares: Arc<crate::shares::Shares>,
    /// Where offsite shares go (the cloud tier's bucket), when configured.
    pub offsite: Option<Arc<vigil_cloud::share::OffsitePublisher>>,
    /// WebRTC live view (WHEP), when `[webrtc]` is on.
    pub whep: Option<Arc<crate::whep::Whep>>,
    /// The passkeys' relying party (from the public URL) and their ceremonies under way.
    pub passkeys: Arc<crate::passkeys::Passkeys>,
}

impl AppState {
    /// State over `data_dir` (opens users.json and web.sqlite3 there).
    pub fn new(
        nvr: Arc<Nvr>,
        status_extra: StatusProvider,
        data_dir: &Path,
    ) -> Result<Self, crate::accounts::AccountsError> {
        let accounts = Arc::new(Accounts::open(data_dir)?);
        Ok(Self {
            nvr,
            status_extra,
            shares: Arc::new(crate::shares::Shares::new(accounts.clone())),
            offsite: None,
            whep: None,
            passkeys: Arc::new(crate::passkeys::Passkeys::new(
                None,
                "passkeys are off: the web app has no public URL",
            )),
            accounts,
            data_dir: data_dir.to_owned(),
            started: Instant::now(),
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
            cloud: None,
        })
    }
}

/// The user behind a request: from a session cookie or an API token. Extracted with
/// `CurrentUser` as a handler argument (rejects with 401 when there is none).
#[derive(Clone, Debug)]
pub struct CurrentUser {
    /// User name.
    pub name: String,
    /// Admin or viewer.
    pub role: Role,
    /// Cameras a viewer may see (`None`: all).
    pub cameras: Option<Vec<String>>,
}

impl CurrentUser {
    /// The request's user from a stored user record.
    pub fn from_user(u: vigil_auth::User) -> Self {
        Self {
            name: u.name,
            role: u.role,
            cameras: u.cameras,
        }
    }

    /// Whether the user may watch this camera (live, recordings, events).
    pub fn can_view(&self, camera: &str) -> bool {
        matches!(self.role, Role::Admin)
            || self
                .cameras
                .as_ref()
                .is_none_or(|c| c.iter().any(|n| n == camera))
    }

    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin)
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, setup, static assets).
    Public,
    /// Any logged-in user (session or API token).
    User,
    /// Admins only.
    Admin,
    /// The holder of a share link's media session (cookie from `POST /api/share/open`), for
    /// that share's own routes only.
    Share,
}

/// One route, as listed in the route table that the router, the OpenAPI document and the
/// "every route answers 401" test are all checked against.
#[derive(Clone, Copy, Debug)]
pub struct RouteDoc {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: &'static str,
    /// Axum path syntax, e.g. `/api/cameras/{name}/live`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
}
