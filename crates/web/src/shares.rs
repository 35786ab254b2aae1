//! Share links: one recorded clip or a time-limited live view of one camera, opened by anyone
//! who holds the link, without an account (`docs/security.md`, "Share links").
//!
//! # Capabilities, not accounts
//! A share is found by its token: 256 random bits, given to its creator once, kept only as a
//! SHA-256 (a stolen `web.sqlite3` opens nothing). The link carries the token in its fragment
//! (`/s/#<token>`), which browsers never send: the viewer page posts it once to
//! `/api/share/open`, which answers with a **media session**: another 256-bit secret in a
//! cookie (named for the share, path `/api/share/`), valid [`MEDIA_SESSION_TTL`] at most and re-checked
//! against the share on every request. So the token appears in no URL, no access log, no
//! `Referer`; and the media session reaches nothing but its share's own routes, which take
//! their camera, stream and range from the share, never from the request.
//!
//! # Ends
//! A share ends when it expires, when its view limit is used up (for new viewers; open ones
//! continue), when it is revoked, or when retention deleted the footage it shows. Each end has
//! its own [`ShareState`], shown as a clear message on the viewer page. Revocation reaches open
//! viewers: the live socket re-checks every [`RECHECK`] and a clip download is cut at its next
//! chunk.
//!
//! Time is read through [`Shares::now_us`], which tests move forward
//! ([`Shares::advance_clock`]) to see links expire without waiting days.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, OptionalExtension as _, Row};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::accounts::{hash, now_us, random_id, random_secret, sanitize, Accounts, AccountsError};

/// Shortest lifetime of a share.
pub const MIN_EXPIRES: Duration = Duration::from_secs(3600);
/// Longest lifetime of a clip share.
pub const MAX_EXPIRES: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest lifetime of a live share: a standing window into someone's home is the riskier
/// thing to leave lying in a mailbox.
pub const MAX_LIVE_EXPIRES: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime of an offsite share: SigV4 presigned URLs live at most 7 days.
pub const MAX_OFFSITE_EXPIRES: Duration = Duration::from_secs(7 * 24 * 3600);
/// Lifetime of a share when none is asked for.
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(24 * 3600);
/// A media session lasts this long at most (and never past its share's expiry); the viewer
/// page opens a new one with its token when it runs out.
pub const MEDIA_SESSION_TTL: Duration = Duration::from_secs(3600);
/// How often open streams re-check their share (revocation reaches them within this).
pub const RECHECK: Duration = Duration::from_secs(1);
/// Longest label.
pub const MAX_LABEL: usize = 200;
/// Longest share password.
pub const MAX_PASSWORD: usize = 256;
/// Most shares kept (expired and revoked ones are kept for the Shares page, oldest dropped).
const KEEP_SHARES: i64 = 10_000;
/// Ended shares are kept this long for the Shares page, then deleted.
const KEEP_ENDED_US: i64 = 30 * 24 * 3600 * 1_000_000;

/// Migration 2 of `web.sqlite3` (`docs/schema.md`).
pub(crate) const SCHEMA_V2: &str = "
CREATE TABLE share (
    id TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('clip', 'live', 'offsite')),
    camera TEXT NOT NULL,
    stream TEXT NOT NULL,
    start_us INTEGER,
    end_us INTEGER,
    label TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    password_hash TEXT,
    max_views INTEGER,
    views INTEGER NOT NULL DEFAULT 0,
    allow_download INTEGER NOT NULL,
    revoked_us INTEGER,
    footage_deleted_us INTEGER,
    last_used_us INTEGER,
    last_used_address TEXT,
    offsite_id TEXT,
    footage_start_us INTEGER
);
CREATE INDEX share_creator ON share(created_by);
CREATE TABLE share_session (
    secret_hash BLOB PRIMARY KEY,
    share_id TEXT NOT NULL,
    expires_us INTEGER NOT NULL
);
CREATE INDEX share_session_share ON share_session(share_id);
";

/// What a share shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShareKind {
    /// A recorded range, served by this recorder.
    Clip,
    /// The camera's live picture.
    Live,
    /// A recorded range, encrypted into the cloud bucket: plays with the recorder off.
    Offsite,
}

impl ShareKind {
    fn as_str(self) -> &'static str {
        match self {
            ShareKind::Clip => "clip",
            ShareKind::Live => "live",
            ShareKind::Offsite => "offsite",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "clip" => ShareKind::Clip,
            "live" => ShareKind::Live,
            "offsite" => ShareKind::Offsite,
            _ => return None,
        })
    }

    /// The longest lifetime of this kind.
    pub fn max_expires(self) -> Duration {
        match self {
            ShareKind::Clip => MAX_EXPIRES,
            ShareKind::Live => MAX_LIVE_EXPIRES,
            ShareKind::Offsite => MAX_OFFSITE_EXPIRES,
        }
    }
}

/// Where a share stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShareState {
    /// Opens.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked by its creator or an admin.
    Revoked,
    /// Its view limit is reached (viewers already in continue).
    UsedUp,
    /// Retention deleted (part of) the footage it shows.
    FootageDeleted,
}

impl ShareState {
    /// The `reason` of the refusal, and the message the viewer page shows.
    pub fn refusal(self) -> (&'static str, &'static str) {
        match self {
            ShareState::Active => ("active", "active"),
            ShareState::Expired => ("expired", "This link has expired."),
            ShareState::Revoked => ("revoked", "This link was withdrawn by its owner."),
            ShareState::UsedUp => (
                "used_up",
                "This link has been opened as many times as its owner allowed.",
            ),
            ShareState::FootageDeleted => (
                "footage_deleted",
                "The recording this link shared no longer exists: the recorder deleted it to make room.",
            ),
        }
    }
}

/// A share as the Shares page and `GET /api/shares` show it (never its token or password).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ShareInfo {
    /// Id (not secret: it names the share in URLs and the audit log).
    pub id: String,
    /// Clip, live or offsite.
    pub kind: ShareKind,
    /// Camera name.
    pub camera: String,
    /// `main` or `sub`.
    pub stream: String,
    /// Start of the clip, µs since the epoch (`null` for live).
    pub start_us: Option<i64>,
    /// End of the clip (exclusive).
    pub end_us: Option<i64>,
    /// The creator's label.
    pub label: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_us: i64,
    /// When it stops opening.
    pub expires_us: i64,
    /// Whether it asks for a password.
    pub password: bool,
    /// View limit (`null`: none).
    pub max_views: Option<i64>,
    /// Times opened.
    pub views: i64,
    /// Whether the viewer may download the clip.
    pub allow_download: bool,
    /// Last time it was opened or played.
    pub last_used_us: Option<i64>,
    /// From which address.
    pub last_used_address: Option<String>,
    /// Where it stands now.
    pub state: ShareState,
}

/// A stored share with what the server needs beyond [`ShareInfo`].
#[derive(Clone, Debug)]
pub struct Share {
    /// The public part.
    pub info: ShareInfo,
    /// argon2id PHC string of the password, if any.
    pub password_hash: Option<String>,
    /// The object id of an offsite share in the bucket.
    pub offsite_id: Option<String>,
    /// First recorded moment of the clip when it was shared: footage before it gone later
    /// means retention reached the share.
    pub footage_start_us: Option<i64>,
}

/// What a new share holds (validated by the caller).
#[derive(Clone, Debug)]
pub struct NewShare {
    /// Kind.
    pub kind: ShareKind,
    /// Camera.
    pub camera: String,
    /// Stream.
    pub stream: String,
    /// Clip range.
    pub range: Option<(i64, i64)>,
    /// Label.
    pub label: String,
    /// Creator.
    pub created_by: String,
    /// Lifetime.
    pub expires: Duration,
    /// Password hash.
    pub password_hash: Option<String>,
    /// View limit.
    pub max_views: Option<i64>,
    /// Download allowed.
    pub allow_download: bool,
    /// Offsite object id.
    pub offsite_id: Option<String>,
    /// First recorded moment of the clip.
    pub footage_start_us: Option<i64>,
}

/// The share store and its guess throttle.
pub struct Shares {
    accounts: Arc<Accounts>,
    skew_us: AtomicI64,
    /// Wrong tokens and passwords per address.
    pub throttle: Mutex<vigil_auth::LoginThrottle>,
}

impl std::fmt::Debug for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shares").finish_non_exhaustive()
    }
}

const COLS: &str = "id, kind, camera, stream, start_us, end_us, label, created_by, created_us, \
    expires_us, password_hash, max_views, views, allow_download, revoked_us, footage_deleted_us, \
    last_used_us, last_used_address, offsite_id, footage_start_us";

fn dur_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Shares {
    /// Shares in the accounts' database (`web.sqlite3`).
    pub fn new(accounts: Arc<Accounts>) -> Self {
        Self {
            accounts,
            skew_us: AtomicI64::new(0),
            throttle: Mutex::new(vigil_auth::LoginThrottle::new()),
        }
    }

    /// Now, µs since the epoch, as shares see it.
    pub fn now_us(&self) -> i64 {
        now_us().saturating_add(self.skew_us.load(Ordering::Relaxed))
    }

    /// Moves the shares' clock forward (tests: expiry without waiting).
    pub fn advance_clock(&self, by: Duration) {
        self.skew_us.fetch_add(dur_us(by), Ordering::Relaxed);
    }

    /// The guess throttle.
    pub fn throttle(&self) -> std::sync::MutexGuard<'_, vigil_auth::LoginThrottle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn row(&self, r: &Row<'_>) -> rusqlite::Result<Share> {
        let kind: String = r.get(1)?;
        let kind = ShareKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                1,
                rusqlite::types::Type::Text,
                format!("unknown share kind {kind:?}").into(),
            )
        })?;
        let expires_us: i64 = r.get(9)?;
        let max_views: Option<i64> = r.get(11)?;
        let views: i64 = r.get(12)?;
        let revoked: Option<i64> = r.get(14)?;
        let deleted: Option<i64> = r.get(15)?;
        let created_by: String = r.get(7)?;
        let camera: String = r.get(2)?;
        // A share never grants more than its creator has now: a removed user, or one who
        // lost access to the camera, takes their shares along.
        let creator_may = matches!(
            self.accounts.users.get(&created_by),
            Ok(Some(u)) if u.can_view(&camera)
        );
        let state = if revoked.is_some() || !creator_may {
            ShareState::Revoked
        } else if deleted.is_some() {
            ShareState::FootageDeleted
        } else if self.now_us() >= expires_us {
            ShareState::Expired
        } else if max_views.is_some_and(|m| views >= m) {
            ShareState::UsedUp
        } else {
            ShareState::Active
        };
        let password_hash: Option<String> = r.get(10)?;
        Ok(Share {
            info: ShareInfo {
                id: r.get(0)?,
                kind,
                camera,
                stream: r.get(3)?,
                start_us: r.get(4)?,
                end_us: r.get(5)?,
                label: r.get(6)?,
                created_by,
                created_us: r.get(8)?,
                expires_us,
                password: password_hash.is_some(),
                max_views,
                views,
                allow_download: r.get::<_, i64>(13)? != 0,
                last_used_us: r.get(16)?,
                last_used_address: r.get(17)?,
                state,
            },
            password_hash,
            offsite_id: r.get(18)?,
            footage_start_us: r.get(19)?,
        })
    }

    /// Stores a new share; returns it and its token (shown once).
    pub fn create(&self, n: NewShare) -> Result<(Share, String), AccountsError> {
        let token = random_secret();
        let id = random_id();
        let now = self.now_us();
        let expires_us = now.saturating_add(dur_us(n.expires));
        let (start_us, end_us) = n.range.unzip();
        {
            let db = self.accounts.db();
            db.execute(
                "INSERT INTO share (id, token_hash, kind, camera, stream, start_us, end_us, label,
                     created_by, created_us, expires_us, password_hash, max_views, allow_download,
                     offsite_id, footage_start_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                params![
                    id,
                    hash(&token),
                    n.kind.as_str(),
                    n.camera,
                    n.stream,
                    start_us,
                    end_us,
                    sanitize(&n.label, MAX_LABEL),
                    n.created_by,
                    now,
                    expires_us,
                    n.password_hash,
                    n.max_views,
                    i64::from(n.allow_download),
                    n.offsite_id,
                    n.footage_start_us,
                ],
            )?;
            Self::purge(&db, now)?;
        }
        let share = self
            .get(&id)?
            .ok_or(AccountsError::Db(rusqlite::Error::QueryReturnedNoRows))?;
        Ok((share, token))
    }

    /// Drops media sessions that ran out and shares long over.
    fn purge(db: &rusqlite::Connection, now: i64) -> Result<(), AccountsError> {
        db.execute(
            "DELETE FROM share_session WHERE expires_us <= ?1",
            params![now],
        )?;
        db.execute(
            "DELETE FROM share WHERE expires_us < ?1 AND offsite_id IS NULL",
            params![now.saturating_sub(KEEP_ENDED_US)],
        )?;
        db.execute(
            "DELETE FROM share WHERE rowid <= (SELECT MAX(rowid) FROM share) - ?1 AND offsite_id IS NULL",
            params![KEEP_SHARES],
        )?;
        Ok(())
    }

    /// The share with this id.
    pub fn get(&self, id: &str) -> Result<Option<Share>, AccountsError> {
        let db = self.accounts.db();
        Ok(db
            .query_row(
                &format!("SELECT {COLS} FROM share WHERE id = ?1"),
                params![id],
                |r| self.row(r),
            )
            .optional()?)
    }

    /// The share whose token this is.
    pub fn by_token(&self, token: &str) -> Result<Option<Share>, AccountsError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let db = self.accounts.db();
        Ok(db
            .query_row(
                &format!("SELECT {COLS} FROM share WHERE token_hash = ?1"),
                params![hash(token)],
                |r| self.row(r),
            )
            .optional()?)
    }

    /// Shares, newest first: all of them, or those `created_by` made.
    pub fn list(&self, created_by: Option<&str>) -> Result<Vec<Share>, AccountsError> {
        let db = self.accounts.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {COLS} FROM share WHERE ?1 IS NULL OR created_by = ?1 ORDER BY created_us DESC"
        ))?;
        let rows = stmt.query_map(params![created_by], |r| self.row(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Offsite shares past their expiry whose objects are still in the bucket.
    pub fn expired_offsite(&self) -> Result<Vec<(String, String)>, AccountsError> {
        let db = self.accounts.db();
        let mut stmt = db.prepare(
            "SELECT id, offsite_id FROM share WHERE offsite_id IS NOT NULL AND expires_us <= ?1",
        )?;
        let rows = stmt.query_map(params![self.now_us()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that the bucket objects of an offsite share are gone.
    pub fn offsite_deleted(&self, id: &str) -> Result<(), AccountsError> {
        self.accounts.db().execute(
            "UPDATE share SET offsite_id = NULL WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    /// Revokes a share and ends its media sessions; false if it was not active.
    pub fn revoke(&self, id: &str) -> Result<bool, AccountsError> {
        let db = self.accounts.db();
        let n = db.execute(
            "UPDATE share SET revoked_us = ?1 WHERE id = ?2 AND revoked_us IS NULL",
            params![self.now_us(), id],
        )?;
        db.execute("DELETE FROM share_session WHERE share_id = ?1", params![id])?;
        Ok(n > 0)
    }

    /// Marks a share's footage as deleted by retention and ends its media sessions.
    pub fn footage_deleted(&self, id: &str) -> Result<(), AccountsError> {
        let db = self.accounts.db();
        db.execute(
            "UPDATE share SET footage_deleted_us = ?1 WHERE id = ?2 AND footage_deleted_us IS NULL",
            params![self.now_us(), id],
        )?;
        db.execute("DELETE FROM share_session WHERE share_id = ?1", params![id])?;
        Ok(())
    }

    /// Counts a view (if `new_view`), notes the last use, and opens a media session; returns
    /// its secret. Fails with the share's state when it does not open (a view limit reached
    /// by a concurrent viewer included: the count is checked in the same statement).
    pub fn open(
        &self,
        share: &Share,
        address: IpAddr,
        new_view: bool,
    ) -> Result<Result<(String, i64), ShareState>, AccountsError> {
        let now = self.now_us();
        let db = self.accounts.db();
        let n = db.execute(
            "UPDATE share SET views = views + ?1, last_used_us = ?2, last_used_address = ?3
             WHERE id = ?4 AND revoked_us IS NULL AND footage_deleted_us IS NULL
               AND expires_us > ?2 AND (?1 = 0 OR max_views IS NULL OR views < max_views)",
            params![i64::from(new_view), now, address.to_string(), share.info.id],
        )?;
        if n == 0 {
            drop(db);
            let state = self
                .get(&share.info.id)?
                .map_or(ShareState::Revoked, |s| s.info.state);
            return Ok(Err(if state == ShareState::Active {
                ShareState::UsedUp
            } else {
                state
            }));
        }
        let secret = random_secret();
        let expires = now
            .saturating_add(dur_us(MEDIA_SESSION_TTL))
            .min(share.info.expires_us);
        db.execute(
            "INSERT INTO share_session (secret_hash, share_id, expires_us) VALUES (?1, ?2, ?3)",
            params![hash(&secret), share.info.id, expires],
        )?;
        Ok(Ok((secret, expires)))
    }

    /// The share of a media session cookie, if that session is alive and belongs to `id`.
    /// The share may have ended since (its state says).
    pub fn session(&self, id: &str, secret: &str) -> Result<Option<Share>, AccountsError> {
        if secret.is_empty() || secret.len() > 128 {
            return Ok(None);
        }
        let found: Option<String> = {
            let db = self.accounts.db();
            db.query_row(
                "SELECT share_id FROM share_session WHERE secret_hash = ?1 AND expires_us > ?2",
                params![hash(secret), self.now_us()],
                |r| r.get(0),
            )
            .optional()?
        };
        match found {
            Some(share_id) if share_id == id => self.get(id),
            _ => Ok(None),
        }
    }

    /// Whether a media session still plays: alive, and its share not revoked, expired or
    /// without footage (a used-up view limit does not stop viewers already in).
    pub fn playable(&self, id: &str, secret: &str) -> bool {
        matches!(
            self.session(id, secret),
            Ok(Some(s)) if matches!(s.info.state, ShareState::Active | ShareState::UsedUp)
        )
    }

    /// Notes a use of the share (a clip request), at most once a minute.
    pub fn touch(&self, id: &str, address: IpAddr) {
        let now = self.now_us();
        let r = self.accounts.db().execute(
            "UPDATE share SET last_used_us = ?1, last_used_address = ?2
             WHERE id = ?3 AND (last_used_us IS NULL OR last_used_us < ?1 - 60000000)",
            params![now, address.to_string(), id],
        );
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot note the use of a share");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn store() -> (tempfile::TempDir, Shares) {
        let dir = tempfile::tempdir().unwrap();
        let acc = Arc::new(Accounts::open(dir.path()).unwrap());
        acc.users
            .add("admin", "correct horse battery", vigil_auth::Role::Admin)
            .unwrap();
        acc.users
            .add_with_cameras(
                "viewer",
                "correct horse battery",
                vigil_auth::Role::Viewer,
                Some(vec!["front".into()]),
            )
            .unwrap();
        (dir, Shares::new(acc))
    }

    fn clip(max_views: Option<i64>) -> NewShare {
        NewShare {
            kind: ShareKind::Clip,
            camera: "front".into(),
            stream: "main".into(),
            range: Some((1_000, 2_000)),
            label: "parcel\u{7}thief".into(),
            created_by: "admin".into(),
            expires: DEFAULT_EXPIRES,
            password_hash: None,
            max_views,
            allow_download: true,
            offsite_id: None,
            footage_start_us: Some(1_000),
        }
    }

    const ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn token_is_stored_hashed_and_finds_its_share() {
        let (dir, s) = store();
        let (share, token) = s.create(clip(None)).unwrap();
        assert_eq!(token.len(), 43, "256 bits in base64url");
        assert_eq!(share.info.label, "parcel?thief");
        assert_eq!(s.by_token(&token).unwrap().unwrap().info.id, share.info.id);
        assert!(s.by_token("wrong").unwrap().is_none());
        assert!(s.by_token("").unwrap().is_none());
        drop(s);
        let db = std::fs::read(dir.path().join("web.sqlite3")).unwrap();
        assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
    }

    #[test]
    fn view_limit_counts_new_views_only() {
        let (_d, s) = store();
        let (share, _) = s.create(clip(Some(1))).unwrap();
        let (secret, _) = s.open(&share, ADDR, true).unwrap().unwrap();
        assert_eq!(
            s.open(&share, ADDR, true).unwrap().unwrap_err(),
            ShareState::UsedUp
        );
        // The viewer already in goes on, and may renew its session.
        assert!(s.playable(&share.info.id, &secret));
        assert!(s.open(&share, ADDR, false).unwrap().is_ok());
        let info = s.get(&share.info.id).unwrap().unwrap().info;
        assert_eq!((info.views, info.state), (1, ShareState::UsedUp));
    }

    #[test]
    fn expiry_revocation_and_deleted_footage_end_sessions() {
        let (_d, s) = store();
        let (share, _) = s.create(clip(None)).unwrap();
        let (secret, exp) = s.open(&share, ADDR, true).unwrap().unwrap();
        assert!(exp <= share.info.expires_us);
        assert!(s.playable(&share.info.id, &secret));
        // A session opens only its own share.
        assert!(!s.playable("another", &secret));
        s.advance_clock(DEFAULT_EXPIRES);
        assert!(!s.playable(&share.info.id, &secret));
        assert_eq!(
            s.open(&share, ADDR, true).unwrap().unwrap_err(),
            ShareState::Expired
        );

        let (share, _) = s.create(clip(None)).unwrap();
        let (secret, _) = s.open(&share, ADDR, true).unwrap().unwrap();
        assert!(s.revoke(&share.info.id).unwrap());
        assert!(!s.revoke(&share.info.id).unwrap());
        assert!(!s.playable(&share.info.id, &secret));
        assert_eq!(
            s.get(&share.info.id).unwrap().unwrap().info.state,
            ShareState::Revoked
        );

        let (share, _) = s.create(clip(None)).unwrap();
        let (secret, _) = s.open(&share, ADDR, true).unwrap().unwrap();
        s.footage_deleted(&share.info.id).unwrap();
        assert!(!s.playable(&share.info.id, &secret));
        assert_eq!(
            s.open(&share, ADDR, true).unwrap().unwrap_err(),
            ShareState::FootageDeleted
        );
    }

    #[test]
    fn list_is_per_creator() {
        let (_d, s) = store();
        s.create(clip(None)).unwrap();
        s.create(NewShare {
            created_by: "viewer".into(),
            ..clip(None)
        })
        .unwrap();
        assert_eq!(s.list(None).unwrap().len(), 2);
        let own = s.list(Some("viewer")).unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].info.created_by, "viewer");
    }

    #[test]
    fn a_share_dies_with_its_creators_access() {
        let (_d, s) = store();
        let (share, _) = s
            .create(NewShare {
                created_by: "viewer".into(),
                ..clip(None)
            })
            .unwrap();
        let (secret, _) = s.open(&share, ADDR, true).unwrap().unwrap();
        assert!(s.playable(&share.info.id, &secret));
        s.accounts
            .users
            .update("viewer", None, Some(Some(vec!["yard".into()])))
            .unwrap();
        assert!(!s.playable(&share.info.id, &secret));
        assert_eq!(
            s.get(&share.info.id).unwrap().unwrap().info.state,
            ShareState::Revoked
        );
    }
}
