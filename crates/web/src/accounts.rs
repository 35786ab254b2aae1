//! Sessions, API tokens and the audit log in `<data>/web.sqlite3`, plus the first-run setup
//! token and the login throttle. Users themselves live in `users.json` ([`UserStore`], shared
//! with `vigil user …`).
//!
//! Secrets are never stored: a session id and an API token are 256 random bits given to the
//! client once; the database keeps their SHA-256. A stolen database therefore opens nothing.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::RngCore as _;
use rusqlite::{params, Connection, OptionalExtension as _};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use vigil_auth::{LoginThrottle, UserStore};
use vigil_datadir::{Migration, Schema};

/// A session unused for this long is over.
pub const SESSION_IDLE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A session is over this long after login, used or not.
pub const SESSION_MAX: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long the first-run setup token is valid.
pub const SETUP_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// `last_seen` is written at most this often per session (one write per request is waste).
const TOUCH_EVERY_US: i64 = 60_000_000;
/// Audit rows kept (oldest deleted beyond).
const AUDIT_KEEP: i64 = 100_000;
/// Longest user agent stored.
const MAX_UA: usize = 256;

/// Errors of the account database.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// SQLite failed.
    #[error("web database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The user database failed.
    #[error(transparent)]
    Users(#[from] vigil_auth::AuthError),
    /// `web.sqlite3` has a schema this Vigil cannot use (written by a newer one).
    #[error(transparent)]
    Schema(#[from] vigil_datadir::SchemaError),
    /// A second-factor operation that cannot be done now (the message says why).
    #[error("{0}")]
    SecondFactor(String),
    /// A stored value could not be encoded (a bug, not bad input).
    #[error("encoding {0}")]
    Encode(String),
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub(crate) fn random_id() -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub(crate) fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Text fit for the audit log and the session list: printable, bounded.
pub fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A live session, as found from its cookie.
#[derive(Clone, Debug)]
pub struct Session {
    /// Public id (shown in lists, used to revoke); not the secret.
    pub id: String,
    /// Owner.
    pub username: String,
    /// The CSRF token state-changing requests must carry in `X-CSRF-Token`.
    pub csrf: String,
}

/// A newly created session: the cookie value is only here, once.
#[derive(Debug)]
pub struct NewSession {
    /// Value of the `vigil_session` cookie.
    pub secret: String,
    /// The stored session.
    pub session: Session,
}

/// One row of `GET /api/sessions`.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SessionInfo {
    /// Public id.
    pub id: String,
    /// Owner.
    pub username: String,
    /// Login time.
    pub created_us: i64,
    /// Last request.
    pub last_seen_us: i64,
    /// Source address at login.
    pub address: String,
    /// Browser at login.
    pub user_agent: String,
    /// Whether it is the session of the request.
    pub current: bool,
}

/// One row of `GET /api/tokens` (never the token).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TokenInfo {
    /// Id (to delete it).
    pub id: String,
    /// Label given at creation.
    pub name: String,
    /// The user it acts as.
    pub username: String,
    /// Creation time.
    pub created_us: i64,
    /// Last use.
    pub last_used_us: Option<i64>,
    /// What it may do (`crate::token_scope`).
    pub scopes: Vec<crate::token_scope::Scope>,
    /// The cameras it is limited to (`None`: all its user may view).
    pub cameras: Option<Vec<String>>,
    /// When it stops working (`None`: never; only tokens from before scopes existed).
    pub expires_us: Option<i64>,
    /// Who made it (empty for tokens from before this was kept).
    pub created_by: String,
}

/// What a new API token may do and for how long.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// The user it acts as.
    pub username: String,
    /// A label.
    pub name: String,
    /// Its grant, already checked against the user's rights.
    pub grant: crate::token_scope::Grant,
    /// Expiry (µs since the epoch).
    pub expires_us: i64,
    /// Who makes it.
    pub created_by: String,
}

/// The token of a request, resolved.
#[derive(Clone, Debug)]
pub struct TokenUse {
    /// Its id.
    pub id: String,
    /// The user it acts as.
    pub username: String,
    /// Its grant.
    pub grant: crate::token_scope::Grant,
}

/// One row of the audit log.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct AuditRow {
    /// When.
    pub time_us: i64,
    /// Who (the name tried, for failed logins).
    pub username: String,
    /// From where.
    pub address: String,
    /// What (`login`, `login_failed`, `setup`, `user_added`, …).
    pub action: String,
    /// Details (never secrets).
    pub detail: String,
}

struct SetupToken {
    hash: Vec<u8>,
    expires: Instant,
}

/// What the setup token check found.
#[derive(Debug, PartialEq, Eq)]
pub enum SetupCheck {
    /// The token is the current one and not expired.
    Valid,
    /// Wrong, used or expired.
    Invalid,
}

/// Accounts: users (users.json), sessions, tokens and audit (web.sqlite3), setup, throttle.
pub struct Accounts {
    /// The user database shared with the CLI.
    pub users: UserStore,
    db: Mutex<Connection>,
    /// Login failures per address and per user name.
    pub throttle: Mutex<LoginThrottle>,
    setup: Mutex<Option<SetupToken>>,
    /// Where `vigil setup-url` leaves the hash of its token ([`crate::setup_file`]).
    data_dir: PathBuf,
    /// Serializes first-run setup (token check, user creation, token use) across awaits.
    pub setup_lock: tokio::sync::Mutex<()>,
    /// Passwords that were right, waiting for their second factor.
    pub tickets: Mutex<crate::second_factor::Tickets>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

/// The web app's store (`web.sqlite3`, `docs/schema.md`): its migrations, oldest first.
/// Never edit a released one; add a step.
const SCHEMA: Schema = Schema {
    file: "web.sqlite3",
    migrations: &[
        Migration {
            description: "sessions, API tokens, audit log",
            sql: SCHEMA_V1,
        },
        Migration {
            description: "share links and their media sessions",
            sql: crate::shares::SCHEMA_V2,
        },
        Migration {
            description: "API token scopes, cameras and expiry",
            sql: SCHEMA_V3,
        },
        Migration {
            description: "second factors: TOTP, recovery codes, policy",
            sql: crate::second_factor::SCHEMA_V4,
        },
        Migration {
            description: "passkeys and their WebAuthn user handles",
            sql: crate::passkeys::SCHEMA_V5,
        },
    ],
};

/// Version 3: what a token may do (`crate::token_scope`). Tokens made before had their
/// user's full rights: they keep every scope, no camera limit and no expiry.
const SCHEMA_V3: &str = "
ALTER TABLE api_token ADD COLUMN scopes TEXT NOT NULL DEFAULT 'view,share,cameras,admin';
ALTER TABLE api_token ADD COLUMN cameras TEXT;
ALTER TABLE api_token ADD COLUMN expires_us INTEGER;
ALTER TABLE api_token ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
";

/// Version 1. `IF NOT EXISTS`: Vigil 0.1 created these tables without setting a version,
/// so such a file (version 0 with the tables) becomes version 1 unchanged.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS session (
    id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL UNIQUE,
    username TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    address TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS session_user ON session(username);
CREATE TABLE IF NOT EXISTS api_token (
    id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    username TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    last_used_us INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_us INTEGER NOT NULL,
    username TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

impl Accounts {
    /// Opens `users.json` and `web.sqlite3` (mode 0600) in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, AccountsError> {
        let users = UserStore::open(data_dir)?;
        let path = data_dir.join("web.sqlite3");
        // Created 0600 before SQLite opens it (SQLite gives its -wal/-shm files the same mode),
        // so the sessions table is never readable by others, not even briefly.
        if let Err(e) = vigil_datadir::private_fs::prepare_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot restrict the web database to its owner");
        }
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mut conn = conn;
        SCHEMA.upgrade(&mut conn)?;
        Ok(Self {
            users,
            db: Mutex::new(conn),
            throttle: Mutex::new(LoginThrottle::new()),
            setup: Mutex::new(None),
            data_dir: data_dir.to_path_buf(),
            setup_lock: tokio::sync::Mutex::new(()),
            tickets: Mutex::new(crate::second_factor::Tickets::default()),
        })
    }

    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The login throttle.
    pub fn throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- setup token ----

    /// Mints the single-use setup token (valid [`SETUP_TOKEN_TTL`]), replacing any previous
    /// one. Only its hash is kept.
    pub fn new_setup_token(&self) -> String {
        self.new_setup_token_with_ttl(SETUP_TOKEN_TTL)
    }

    /// [`Self::new_setup_token`] with a chosen lifetime (tests).
    pub fn new_setup_token_with_ttl(&self, ttl: Duration) -> String {
        let token = random_secret();
        let entry = SetupToken {
            hash: hash(&token),
            expires: Instant::now() + ttl,
        };
        *self.setup.lock().unwrap_or_else(|p| p.into_inner()) = Some(entry);
        token
    }

    /// Checks a setup token without using it up: this server's own (in memory) or the one
    /// `vigil setup-url` wrote to the data directory ([`crate::setup_file`]).
    pub fn check_setup_token(&self, token: &str) -> SetupCheck {
        let guard = self.setup.lock().unwrap_or_else(|p| p.into_inner());
        let own = guard
            .as_ref()
            .is_some_and(|t| Instant::now() < t.expires && bool::from(t.hash.ct_eq(&hash(token))));
        drop(guard);
        if own || crate::setup_file::check(&self.data_dir, token, now_us()) {
            SetupCheck::Valid
        } else {
            SetupCheck::Invalid
        }
    }

    /// Whether an unexpired setup token exists.
    pub fn setup_token_live(&self) -> bool {
        self.setup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|t| Instant::now() < t.expires)
    }

    /// Uses up the setup token (after the admin was created): both this server's and the
    /// file of `vigil setup-url`, so neither link works again.
    pub fn consume_setup_token(&self) {
        *self.setup.lock().unwrap_or_else(|p| p.into_inner()) = None;
        crate::setup_file::remove(&self.data_dir);
    }

    // ---- sessions ----

    /// Creates a session with a fresh random id and CSRF token.
    pub fn create_session(
        &self,
        username: &str,
        address: IpAddr,
        user_agent: &str,
    ) -> Result<NewSession, AccountsError> {
        let secret = random_secret();
        let session = Session {
            id: random_id(),
            username: username.to_owned(),
            csrf: random_secret(),
        };
        let now = now_us();
        let db = self.db();
        db.execute(
            "INSERT INTO session (id, secret_hash, username, csrf, created_us, last_seen_us, address, user_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7)",
            params![
                session.id,
                hash(&secret),
                username,
                session.csrf,
                now,
                address.to_string(),
                sanitize(user_agent, MAX_UA)
            ],
        )?;
        Self::purge_expired(&db, now)?;
        Ok(NewSession { secret, session })
    }

    fn purge_expired(db: &Connection, now: i64) -> Result<(), AccountsError> {
        db.execute(
            "DELETE FROM session WHERE last_seen_us < ?1 OR created_us < ?2",
            params![
                now.saturating_sub(dur_us(SESSION_IDLE)),
                now.saturating_sub(dur_us(SESSION_MAX))
            ],
        )?;
        Ok(())
    }

    /// The live session whose cookie value is `secret` (touching its last use).
    pub fn session(&self, secret: &str) -> Result<Option<Session>, AccountsError> {
        if secret.is_empty() || secret.len() > 128 {
            return Ok(None);
        }
        let now = now_us();
        let db = self.db();
        let row = db
            .query_row(
                "SELECT id, username, csrf, created_us, last_seen_us FROM session WHERE secret_hash = ?1",
                params![hash(secret)],
                |r| {
                    Ok((
                        Session {
                            id: r.get(0)?,
                            username: r.get(1)?,
                            csrf: r.get(2)?,
                        },
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((s, created, last_seen)) = row else {
            return Ok(None);
        };
        if now.saturating_sub(last_seen) > dur_us(SESSION_IDLE)
            || now.saturating_sub(created) > dur_us(SESSION_MAX)
        {
            db.execute("DELETE FROM session WHERE id = ?1", params![s.id])?;
            return Ok(None);
        }
        if now.saturating_sub(last_seen) > TOUCH_EVERY_US {
            db.execute(
                "UPDATE session SET last_seen_us = ?1 WHERE id = ?2",
                params![now, s.id],
            )?;
        }
        Ok(Some(s))
    }

    /// Whether session `id` (public id) still exists and has not expired.
    pub fn session_alive(&self, id: &str) -> Result<bool, AccountsError> {
        let now = now_us();
        let row: Option<(i64, i64)> = self
            .db()
            .query_row(
                "SELECT created_us, last_seen_us FROM session WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.is_some_and(|(created, last_seen)| {
            now.saturating_sub(last_seen) <= dur_us(SESSION_IDLE)
                && now.saturating_sub(created) <= dur_us(SESSION_MAX)
        }))
    }

    /// Whether API token `id` still exists.
    pub fn token_alive(&self, id: &str) -> Result<bool, AccountsError> {
        Ok(self
            .db()
            .query_row(
                "SELECT 1 FROM api_token WHERE id = ?1 AND (expires_us IS NULL OR expires_us > ?2)",
                params![id, now_us()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Sessions of `username`, or of everyone for `None`.
    pub fn sessions(
        &self,
        username: Option<&str>,
        current: Option<&str>,
    ) -> Result<Vec<SessionInfo>, AccountsError> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT id, username, created_us, last_seen_us, address, user_agent FROM session
             WHERE ?1 IS NULL OR username = ?1 ORDER BY last_seen_us DESC",
        )?;
        let rows = stmt.query_map(params![username], |r| {
            let id: String = r.get(0)?;
            Ok(SessionInfo {
                current: Some(id.as_str()) == current,
                id,
                username: r.get(1)?,
                created_us: r.get(2)?,
                last_seen_us: r.get(3)?,
                address: r.get(4)?,
                user_agent: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Owner of session `id`, if it exists.
    pub fn session_owner(&self, id: &str) -> Result<Option<String>, AccountsError> {
        Ok(self
            .db()
            .query_row(
                "SELECT username FROM session WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Ends session `id`; true if it existed.
    pub fn revoke_session(&self, id: &str) -> Result<bool, AccountsError> {
        Ok(self
            .db()
            .execute("DELETE FROM session WHERE id = ?1", params![id])?
            > 0)
    }

    /// Ends every session of `username` except `keep`; returns how many.
    pub fn revoke_user_sessions(
        &self,
        username: &str,
        keep: Option<&str>,
    ) -> Result<usize, AccountsError> {
        Ok(self.db().execute(
            "DELETE FROM session WHERE username = ?1 AND (?2 IS NULL OR id != ?2)",
            params![username, keep],
        )?)
    }

    // ---- API tokens ----

    /// Creates an API token; returns its row and the token (shown once).
    pub fn create_token(&self, t: &TokenSpec) -> Result<(TokenInfo, String), AccountsError> {
        // A recognizable prefix lets secret scanners find leaked tokens.
        let token = format!("vigil_{}", random_secret());
        let info = TokenInfo {
            id: random_id(),
            name: sanitize(&t.name, 64),
            username: t.username.clone(),
            created_us: now_us(),
            last_used_us: None,
            scopes: t.grant.scopes.clone(),
            cameras: t.grant.cameras.clone(),
            expires_us: Some(t.expires_us),
            created_by: t.created_by.clone(),
        };
        let cameras = cameras_json(&info.cameras);
        self.db().execute(
            "INSERT INTO api_token (id, secret_hash, name, username, created_us, scopes, cameras, \
             expires_us, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                info.id,
                hash(&token),
                info.name,
                info.username,
                info.created_us,
                t.grant.scopes_text(),
                cameras,
                t.expires_us,
                info.created_by
            ],
        )?;
        Ok((info, token))
    }

    /// The token of a request, if it exists and has not expired; notes its use.
    pub fn token(&self, token: &str) -> Result<Option<TokenUse>, AccountsError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let db = self.db();
        type Row = (
            String,
            String,
            Option<i64>,
            String,
            Option<String>,
            Option<i64>,
        );
        let found: Option<Row> = db
            .query_row(
                "SELECT id, username, last_used_us, scopes, cameras, expires_us FROM api_token \
                 WHERE secret_hash = ?1",
                params![hash(token)],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, username, last, scopes, cameras, expires)) = found else {
            return Ok(None);
        };
        let now = now_us();
        if expires.is_some_and(|e| now >= e) {
            return Ok(None);
        }
        if last.is_none_or(|l| now.saturating_sub(l) > TOUCH_EVERY_US) {
            db.execute(
                "UPDATE api_token SET last_used_us = ?1 WHERE id = ?2",
                params![now, id],
            )?;
        }
        Ok(Some(TokenUse {
            id,
            username,
            grant: crate::token_scope::Grant::from_stored(&scopes, parse_cameras(cameras)),
        }))
    }

    /// API tokens: every one, or those of `username`.
    pub fn tokens(&self, username: Option<&str>) -> Result<Vec<TokenInfo>, AccountsError> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT id, name, username, created_us, last_used_us, scopes, cameras, expires_us, \
             created_by FROM api_token WHERE ?1 IS NULL OR username = ?1 ORDER BY created_us",
        )?;
        let rows = stmt.query_map(params![username], |r| {
            let scopes: String = r.get(5)?;
            let grant = crate::token_scope::Grant::from_stored(&scopes, parse_cameras(r.get(6)?));
            Ok(TokenInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                username: r.get(2)?,
                created_us: r.get(3)?,
                last_used_us: r.get(4)?,
                scopes: grant.scopes,
                cameras: grant.cameras,
                expires_us: r.get(7)?,
                created_by: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes an API token; true if it existed.
    pub fn delete_token(&self, id: &str) -> Result<bool, AccountsError> {
        Ok(self
            .db()
            .execute("DELETE FROM api_token WHERE id = ?1", params![id])?
            > 0)
    }

    /// Deletes every API token of `username`.
    pub fn delete_user_tokens(&self, username: &str) -> Result<usize, AccountsError> {
        Ok(self.db().execute(
            "DELETE FROM api_token WHERE username = ?1",
            params![username],
        )?)
    }

    // ---- audit ----

    /// Appends to the audit log; failures are logged, never fatal to the request.
    pub fn audit(&self, username: &str, address: IpAddr, action: &str, detail: &str) {
        let db = self.db();
        let r = db
            .execute(
                "INSERT INTO audit (time_us, username, address, action, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    now_us(),
                    sanitize(username, 64),
                    address.to_string(),
                    action,
                    sanitize(detail, 512)
                ],
            )
            .and_then(|_| {
                db.execute(
                    "DELETE FROM audit WHERE seq <= (SELECT MAX(seq) FROM audit) - ?1",
                    params![AUDIT_KEEP],
                )
            });
        if let Err(e) = r {
            tracing::error!(error = %e, action, "cannot write the audit log");
        }
        tracing::info!(user = %sanitize(username, 64), %address, action, detail = %sanitize(detail, 512), "audit");
    }

    /// The newest `limit` audit rows, newest first.
    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditRow>, AccountsError> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT time_us, username, address, action, detail FROM audit ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit], |r| {
            Ok(AuditRow {
                time_us: r.get(0)?,
                username: r.get(1)?,
                address: r.get(2)?,
                action: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn dur_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A token's camera list as stored (JSON array, or NULL for no limit).
fn cameras_json(cameras: &Option<Vec<String>>) -> Option<String> {
    // Serializing strings cannot fail; were it to, "[]" limits the token to no camera.
    cameras
        .as_ref()
        .map(|c| serde_json::to_string(c).unwrap_or_else(|_| "[]".into()))
}

/// Reads a stored camera list; an unreadable one limits the token to no camera at all
/// (never to all of them).
fn parse_cameras(stored: Option<String>) -> Option<Vec<String>> {
    stored.map(|s| serde_json::from_str(&s).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }

    #[test]
    fn sessions_store_only_hashes_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        let s1 = a.create_session("alice", ip(), "ua\u{1b}[31m").unwrap();
        let s2 = a.create_session("alice", ip(), "ua2").unwrap();
        assert_ne!(s1.secret, s2.secret);
        assert_ne!(s1.session.csrf, s2.session.csrf);
        assert_eq!(a.session(&s1.secret).unwrap().unwrap().id, s1.session.id);
        assert!(a.session("forged").unwrap().is_none());
        assert!(
            a.session(&s1.session.id).unwrap().is_none(),
            "the public id is not a credential"
        );
        let list = a.sessions(Some("alice"), Some(&s2.session.id)).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list.iter().filter(|s| s.current).count(), 1);
        assert!(list.iter().all(|s| !s.user_agent.contains('\u{1b}')));
        // Revoking all but the current one.
        assert_eq!(
            a.revoke_user_sessions("alice", Some(&s2.session.id))
                .unwrap(),
            1
        );
        assert!(a.session(&s1.secret).unwrap().is_none());
        assert!(a.session(&s2.secret).unwrap().is_some());
        assert!(a.session_alive(&s2.session.id).unwrap());
        assert!(!a.session_alive(&s1.session.id).unwrap());
        assert!(a.revoke_session(&s2.session.id).unwrap());
        assert!(!a.session_alive(&s2.session.id).unwrap());
        assert!(a.session(&s2.secret).unwrap().is_none());
        // The database is the owner's only, and holds no secret.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let m = std::fs::metadata(dir.path().join("web.sqlite3")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
        drop(a);
        let mut raw = Vec::new();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().contains("web.sqlite3") {
                raw.extend(std::fs::read(p).unwrap());
            }
        }
        for secret in [&s1.secret, &s2.secret] {
            assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }

    #[test]
    fn idle_sessions_expire() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        let s = a.create_session("bob", ip(), "").unwrap();
        let old = now_us() - dur_us(SESSION_IDLE) - 1;
        a.db()
            .execute("UPDATE session SET last_seen_us = ?1", params![old])
            .unwrap();
        assert!(a.session(&s.secret).unwrap().is_none());
        let s = a.create_session("bob", ip(), "").unwrap();
        let old = now_us() - dur_us(SESSION_MAX) - 1;
        a.db()
            .execute("UPDATE session SET created_us = ?1", params![old])
            .unwrap();
        assert!(a.session(&s.secret).unwrap().is_none());
    }

    #[test]
    fn setup_token_is_checked_and_consumed() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        assert_eq!(a.check_setup_token("x"), SetupCheck::Invalid);
        let t = a.new_setup_token();
        assert_eq!(a.check_setup_token(&t), SetupCheck::Valid);
        assert!(a.setup_token_live());
        assert_eq!(a.check_setup_token(&format!("{t}x")), SetupCheck::Invalid);
        a.consume_setup_token();
        assert_eq!(a.check_setup_token(&t), SetupCheck::Invalid);
        assert!(!a.setup_token_live());
        let t = a.new_setup_token_with_ttl(Duration::ZERO);
        assert_eq!(a.check_setup_token(&t), SetupCheck::Invalid);
        assert!(!a.setup_token_live());
    }

    #[test]
    fn setup_token_of_the_cli_works_beside_the_own_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        let own = a.new_setup_token();
        // Minted by another process (`vigil setup-url`) while this server runs.
        let cli = crate::setup_file::mint(dir.path(), SETUP_TOKEN_TTL).unwrap();
        assert_eq!(a.check_setup_token(&own), SetupCheck::Valid);
        assert_eq!(a.check_setup_token(&cli), SetupCheck::Valid);
        a.consume_setup_token();
        assert_eq!(a.check_setup_token(&cli), SetupCheck::Invalid);
        assert_eq!(a.check_setup_token(&own), SetupCheck::Invalid);
        assert!(!crate::setup_file::path(dir.path()).exists());
    }

    #[test]
    fn tokens_and_audit() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        let new = |expires_us| TokenSpec {
            username: "alice".into(),
            name: "home assistant".into(),
            grant: crate::token_scope::Grant::from_stored("view", Some(vec!["front".into()])),
            expires_us,
            created_by: "admin".into(),
        };
        let (info, token) = a.create_token(&new(now_us() + 60_000_000)).unwrap();
        assert!(token.starts_with("vigil_"));
        let used = a.token(&token).unwrap().unwrap();
        assert_eq!(
            (used.id.as_str(), used.username.as_str()),
            (info.id.as_str(), "alice")
        );
        assert_eq!(used.grant.cameras, Some(vec!["front".to_owned()]));
        assert!(a.token("vigil_nope").unwrap().is_none());
        assert_eq!(a.tokens(None).unwrap().len(), 1);
        assert_eq!(a.tokens(Some("alice")).unwrap()[0].created_by, "admin");
        assert!(a.tokens(Some("bob")).unwrap().is_empty());
        // An expired token opens nothing and is no longer alive.
        let (old, old_token) = a.create_token(&new(now_us() - 1)).unwrap();
        assert!(a.token(&old_token).unwrap().is_none());
        assert!(!a.token_alive(&old.id).unwrap());
        assert!(a.delete_token(&old.id).unwrap());
        assert!(a.token_alive(&info.id).unwrap());
        assert!(a.delete_token(&info.id).unwrap());
        assert!(!a.token_alive(&info.id).unwrap());
        assert!(a.token(&token).unwrap().is_none());
        a.audit("alice", ip(), "login", "ok");
        a.audit("mallory\n", ip(), "login_failed", "wrong password");
        let log = a.audit_log(10).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].action, "login_failed");
        assert_eq!(log[0].username, "mallory?");
    }

    /// Vigil 0.1 created `web.sqlite3` without a schema version: such a file is taken as
    /// version 1 with its sessions and audit log kept (then upgraded), and a newer one is
    /// refused.
    #[test]
    fn an_unversioned_web_database_is_adopted_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute(
            "INSERT INTO audit (time_us, username, address, action, detail) \
             VALUES (5, 'alice', '192.0.2.1', 'login', '')",
            [],
        )
        .unwrap();
        drop(conn);
        let a = Accounts::open(dir.path()).unwrap();
        let log = a.audit_log(10).unwrap();
        assert_eq!((log.len(), log[0].action.as_str()), (1, "login"));
        let conn = Connection::open(&path).unwrap();
        assert_eq!(SCHEMA.stored_version(&conn).unwrap(), 5);
        drop(a);
        conn.pragma_update(None, "user_version", 6).unwrap();
        drop(conn);
        let err = Accounts::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("newer Vigil"), "{err}");
    }
}
