//! Passkeys (W3C Web Authentication Level 2, <https://www.w3.org/TR/webauthn-2/>): register
//! several per user, sign in with one alone (user verification required, §6.2.3), or use one
//! as the second factor after the password.
//!
//! The ceremonies' checks (challenge, origin, RP ID hash, flags, signature, counter) are
//! webauthn-rs's; this module keeps its state between the two requests of each ceremony,
//! stores the credentials in `web.sqlite3`, and ties the relying party to the recorder's
//! public URL:
//!
//! - **RP ID and origin** come from `[web] public_url` (default `https://localhost:PORT`,
//!   the address the setup link names). A browser on another address is refused with a
//!   message naming the right one, before any ceremony starts (§5.1.3 step 7 would
//!   otherwise fail inside the browser with an opaque `SecurityError`).
//! - **Sign-in without a name** uses discoverable credentials (§6.1, "client-side
//!   discoverable"): registration asks for a resident key, and the assertion's user handle
//!   (a random UUID per user, never the name) says whose passkey it is.
//! - **Ceremony state** lives in memory for two minutes and is used once: a restart only
//!   asks the browser to start again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyAuthentication, PasskeyRegistration, RequestChallengeResponse, Url, Uuid, Webauthn,
    WebauthnBuilder,
};

use crate::accounts::{now_us, Accounts, AccountsError};

/// Version 5 of `web.sqlite3`.
pub(crate) const SCHEMA_V5: &str = "
CREATE TABLE passkey (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    name TEXT NOT NULL,
    credential_id BLOB NOT NULL UNIQUE,
    credential TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    last_used_us INTEGER
);
CREATE INDEX passkey_user ON passkey (username);
CREATE TABLE passkey_handle (
    username TEXT PRIMARY KEY,
    handle BLOB NOT NULL UNIQUE
);
";

/// How long a ceremony waits for the browser (the options carry the same timeout).
const CEREMONY_TTL: Duration = Duration::from_secs(120);
/// Ceremonies under way at once; sign-in options are public, so this bounds their memory.
const MAX_CEREMONIES: usize = 512;
/// Passkeys one user may register.
pub const MAX_PER_USER: usize = 20;
/// Longest passkey label.
pub const MAX_NAME_CHARS: usize = 64;

/// `[web] public_url` checked: an `https` URL with a host name (an IP address cannot be an
/// RP ID, WebAuthn §5.1.3 step 8 / HTML's "registrable domain"), and nothing after the
/// authority but `/`. Returns the origin it names.
pub fn check_public_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim())
        .map_err(|e| format!("web.public_url must be a URL like https://nvr.example:8443 ({e})"))?;
    if url.scheme() != "https" {
        return Err(format!(
            "web.public_url must start with https:// (got {:?}): browsers allow passkeys only \
             on secure origins",
            url.scheme()
        ));
    }
    if url.domain().is_none() {
        return Err(format!(
            "web.public_url needs a host name, not an IP address ({s}): WebAuthn ties \
             passkeys to a domain"
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "web.public_url is an origin, without a path, query or fragment: {s}"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("web.public_url must not carry credentials".into());
    }
    Ok(url)
}

/// The public URL when none is configured: `https://localhost:PORT` for a listener on
/// loopback or every interface (what the setup link names), else none (an IP address
/// cannot be a relying party).
pub fn default_public_url(listen: SocketAddr) -> Option<Url> {
    let ip = listen.ip();
    (ip.is_loopback() || ip.is_unspecified())
        .then(|| Url::parse(&format!("https://localhost:{}/", listen.port())).ok())
        .flatten()
}

/// The origin string of `url` (`https://host[:port]`), as browsers send it in `Origin`.
fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// One ceremony waiting for the browser's answer.
enum Pending {
    /// Adding a passkey to `username`.
    Register {
        username: String,
        state: PasskeyRegistration,
    },
    /// Signing in without a name.
    SignIn { state: DiscoverableAuthentication },
    /// The second step of a password login (its ticket's user).
    SecondFactor {
        username: String,
        state: PasskeyAuthentication,
    },
}

/// Why a passkey request was refused; each is shown to the user as it is.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// No relying party can be built (no public URL with a host name).
    #[error("{0}")]
    Unavailable(String),
    /// The browser is on another address than the public URL.
    #[error(
        "passkeys on this recorder belong to {expected}, its public URL, but this page is \
         {got}: open Vigil at {expected}, or set [web] public_url to the address you use"
    )]
    WrongOrigin {
        /// The configured origin.
        expected: String,
        /// What the browser sent.
        got: String,
    },
    /// Too many ceremonies are under way.
    #[error("too many passkey requests under way; try again in a minute")]
    Busy,
    /// The ceremony is unknown, used or expired.
    #[error("the passkey request expired; try again")]
    Expired,
    /// The browser's answer did not verify.
    #[error("the passkey was not accepted: {0}")]
    Rejected(String),
    /// The web database failed.
    #[error(transparent)]
    Accounts(#[from] AccountsError),
}

/// The relying party and the ceremonies under way.
pub struct Passkeys {
    rp: Result<(Webauthn, String), String>,
    pending: Mutex<HashMap<[u8; 32], (Instant, Pending)>>,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys")
            .field("origin", &self.rp.as_ref().map(|(_, o)| o))
            .finish_non_exhaustive()
    }
}

impl Passkeys {
    /// The relying party of `public_url`; `None` leaves passkeys off, with `why` as the
    /// message every passkey request gets.
    pub fn new(public_url: Option<&Url>, why: &str) -> Passkeys {
        let rp = match public_url {
            None => Err(why.to_owned()),
            Some(url) => Self::relying_party(url),
        };
        if let Err(e) = &rp {
            tracing::info!(reason = %e, "passkeys are off");
        }
        Passkeys {
            rp,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn relying_party(url: &Url) -> Result<(Webauthn, String), String> {
        let host = url.host_str().ok_or("the public URL has no host")?;
        let webauthn = WebauthnBuilder::new(host, url)
            .and_then(|b| b.rp_name("Vigil").timeout(CEREMONY_TTL).build())
            .map_err(|e| format!("passkeys cannot use {url}: {e}"))?;
        Ok((webauthn, origin_of(url)))
    }

    /// The origin passkeys belong to, if they are on.
    pub fn origin(&self) -> Option<&str> {
        self.rp.as_ref().ok().map(|(_, o)| o.as_str())
    }

    /// The relying party, if the request comes from its origin.
    fn checked(&self, origin: Option<&str>) -> Result<&Webauthn, PasskeyError> {
        let (w, expected) = self
            .rp
            .as_ref()
            .map_err(|e| PasskeyError::Unavailable(e.clone()))?;
        match origin {
            Some(o) if o == expected => Ok(w),
            got => Err(PasskeyError::WrongOrigin {
                expected: expected.clone(),
                got: got.unwrap_or("(no Origin header)").to_owned(),
            }),
        }
    }

    /// Keeps a ceremony under `key` (the SHA-256 of its ticket).
    fn keep(&self, key: [u8; 32], p: Pending) -> Result<(), PasskeyError> {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, (t, _)| *t > now);
        if map.len() >= MAX_CEREMONIES {
            return Err(PasskeyError::Busy);
        }
        map.insert(key, (now + CEREMONY_TTL, p));
        Ok(())
    }

    /// Takes a live ceremony (each is used once, right or wrong).
    fn take(&self, key: &[u8; 32]) -> Option<Pending> {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (expires, p) = map.remove(key)?;
        (expires > Instant::now()).then_some(p)
    }

    /// Starts adding a passkey to `username`: the options for
    /// `navigator.credentials.create()` and the ticket to finish with.
    pub fn register_start(
        &self,
        acc: &Accounts,
        origin: Option<&str>,
        username: &str,
    ) -> Result<(CreationChallengeResponse, String), PasskeyError> {
        let w = self.checked(origin)?;
        let existing = acc.passkeys_of(username)?;
        if existing.len() >= MAX_PER_USER {
            return Err(PasskeyError::Rejected(format!(
                "at most {MAX_PER_USER} passkeys per user; remove one first"
            )));
        }
        let handle = acc.passkey_handle(username)?;
        let exclude = existing.iter().map(|(_, p)| p.cred_id().clone()).collect();
        let (mut ccr, state) = w
            .start_passkey_registration(handle, username, username, Some(exclude))
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        // A resident (discoverable) key, so that the passkey alone signs in without typing a
        // name (§5.4.4 residentKey "preferred": authenticators that cannot still register).
        if let Some(sel) = ccr.public_key.authenticator_selection.as_mut() {
            sel.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Preferred);
        }
        let ticket = crate::accounts::random_secret();
        self.keep(
            sha256(&ticket),
            Pending::Register {
                username: username.to_owned(),
                state,
            },
        )?;
        Ok((ccr, ticket))
    }

    /// Finishes adding a passkey: verifies the attestation and stores the credential.
    pub fn register_finish(
        &self,
        acc: &Accounts,
        origin: Option<&str>,
        username: &str,
        ticket: &str,
        name: &str,
        credential: &serde_json::Value,
    ) -> Result<PasskeyRow, PasskeyError> {
        let w = self.checked(origin)?;
        let Some(Pending::Register {
            username: who,
            state,
        }) = self.take(&sha256(ticket))
        else {
            return Err(PasskeyError::Expired);
        };
        if who != username {
            return Err(PasskeyError::Expired);
        }
        let reg = serde_json::from_value(credential.clone())
            .map_err(|e| PasskeyError::Rejected(format!("not a WebAuthn credential: {e}")))?;
        let passkey = w
            .finish_passkey_registration(&reg, &state)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        Ok(acc.passkey_add(username, name, &passkey)?)
    }

    /// Starts a sign-in with a passkey alone: options for `navigator.credentials.get()`
    /// with no credential list (the authenticator offers its discoverable ones).
    pub fn sign_in_start(
        &self,
        origin: Option<&str>,
    ) -> Result<(RequestChallengeResponse, String), PasskeyError> {
        let w = self.checked(origin)?;
        let (mut rcr, state) = w
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        // webauthn-rs asks for conditional mediation (autofill); the page asks on a button.
        rcr.mediation = None;
        let ticket = crate::accounts::random_secret();
        self.keep(sha256(&ticket), Pending::SignIn { state })?;
        Ok((rcr, ticket))
    }

    /// Finishes a sign-in with a passkey alone; the user it signs in.
    pub fn sign_in_finish(
        &self,
        acc: &Accounts,
        origin: Option<&str>,
        ticket: &str,
        credential: &serde_json::Value,
    ) -> Result<String, PasskeyError> {
        let w = self.checked(origin)?;
        let Some(Pending::SignIn { state }) = self.take(&sha256(ticket)) else {
            return Err(PasskeyError::Expired);
        };
        let cred = assertion(credential)?;
        let (handle, _) = w
            .identify_discoverable_authentication(&cred)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let Some(username) = acc.passkey_user(handle)? else {
            return Err(PasskeyError::Rejected(
                "this passkey belongs to no user of this recorder".into(),
            ));
        };
        let keys = acc.passkeys_of(&username)?;
        let discoverable: Vec<DiscoverableKey> =
            keys.iter().map(|(_, p)| DiscoverableKey::from(p)).collect();
        let result = w
            .finish_discoverable_authentication(&cred, state, &discoverable)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        acc.passkey_used(&username, keys, &result)?;
        Ok(username)
    }

    /// Starts the passkey second step of the password login whose ticket is `ticket`.
    pub fn second_factor_start(
        &self,
        acc: &Accounts,
        origin: Option<&str>,
        username: &str,
        ticket: &str,
    ) -> Result<RequestChallengeResponse, PasskeyError> {
        let w = self.checked(origin)?;
        let keys: Vec<Passkey> = acc
            .passkeys_of(username)?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        if keys.is_empty() {
            return Err(PasskeyError::Rejected(
                "this account has no passkey; use a code".into(),
            ));
        }
        let (rcr, state) = w
            .start_passkey_authentication(&keys)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        self.keep(
            second_factor_key(ticket),
            Pending::SecondFactor {
                username: username.to_owned(),
                state,
            },
        )?;
        Ok(rcr)
    }

    /// Verifies the passkey second step of `username`'s login ticket.
    pub fn second_factor_finish(
        &self,
        acc: &Accounts,
        origin: Option<&str>,
        username: &str,
        ticket: &str,
        credential: &serde_json::Value,
    ) -> Result<(), PasskeyError> {
        let w = self.checked(origin)?;
        let Some(Pending::SecondFactor {
            username: who,
            state,
        }) = self.take(&second_factor_key(ticket))
        else {
            return Err(PasskeyError::Expired);
        };
        if who != username {
            return Err(PasskeyError::Expired);
        }
        let cred = assertion(credential)?;
        let result = w
            .finish_passkey_authentication(&cred, &state)
            .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
        let keys = acc.passkeys_of(username)?;
        acc.passkey_used(username, keys, &result)?;
        Ok(())
    }
}

/// The browser's assertion (`PublicKeyCredential` as JSON).
fn assertion(
    credential: &serde_json::Value,
) -> Result<webauthn_rs::prelude::PublicKeyCredential, PasskeyError> {
    serde_json::from_value(credential.clone())
        .map_err(|e| PasskeyError::Rejected(format!("not a WebAuthn assertion: {e}")))
}

fn sha256(s: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// The second-step ceremony's key: derived from the login ticket but distinct from any
/// ticket's own key.
fn second_factor_key(ticket: &str) -> [u8; 32] {
    sha256(&format!("second-factor:{ticket}"))
}

/// A registered passkey, as the Account page lists it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct PasskeyRow {
    /// Its id (for removal).
    pub id: i64,
    /// The label its owner gave it.
    pub name: String,
    /// When it was added (µs since the epoch).
    pub created_us: i64,
    /// When it last signed in.
    pub last_used_us: Option<i64>,
}

impl Accounts {
    /// The WebAuthn user handle of `username` (a random UUID, made on first use): what the
    /// authenticator stores instead of the name (§14.6.1: the handle must not identify the
    /// user to anyone else).
    pub fn passkey_handle(&self, username: &str) -> Result<Uuid, AccountsError> {
        let db = self.db();
        let found: Option<Vec<u8>> = db
            .query_row(
                "SELECT handle FROM passkey_handle WHERE username = ?1",
                params![username],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(u) = found.and_then(|b| Uuid::from_slice(&b).ok()) {
            return Ok(u);
        }
        let u = Uuid::new_v4();
        db.execute(
            "INSERT OR REPLACE INTO passkey_handle (username, handle) VALUES (?1, ?2)",
            params![username, u.as_bytes().as_slice()],
        )?;
        Ok(u)
    }

    /// The user a handle belongs to, if that user still exists.
    fn passkey_user(&self, handle: Uuid) -> Result<Option<String>, AccountsError> {
        let name: Option<String> = self
            .db()
            .query_row(
                "SELECT username FROM passkey_handle WHERE handle = ?1",
                params![handle.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        match name {
            Some(n) if self.users.get(&n)?.is_some() => Ok(Some(n)),
            _ => Ok(None),
        }
    }

    /// `username`'s passkeys with their ids.
    fn passkeys_of(&self, username: &str) -> Result<Vec<(i64, Passkey)>, AccountsError> {
        let db = self.db();
        let mut stmt =
            db.prepare("SELECT id, credential FROM passkey WHERE username = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![username], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            match serde_json::from_str::<Passkey>(&json) {
                Ok(p) => out.push((id, p)),
                // A row this version cannot read is skipped (and says so), never fatal.
                Err(e) => tracing::warn!(id, error = %e, "unreadable passkey row skipped"),
            }
        }
        Ok(out)
    }

    /// How many passkeys `username` has.
    pub fn passkey_count(&self, username: &str) -> Result<usize, AccountsError> {
        let n: i64 = self.db().query_row(
            "SELECT COUNT(*) FROM passkey WHERE username = ?1",
            params![username],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// `username`'s passkeys, for the Account page.
    pub fn passkey_list(&self, username: &str) -> Result<Vec<PasskeyRow>, AccountsError> {
        let db = self.db();
        let mut stmt = db.prepare(
            "SELECT id, name, created_us, last_used_us FROM passkey WHERE username = ?1 \
             ORDER BY id",
        )?;
        let rows = stmt.query_map(params![username], |r| {
            Ok(PasskeyRow {
                id: r.get(0)?,
                name: r.get(1)?,
                created_us: r.get(2)?,
                last_used_us: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn passkey_add(
        &self,
        username: &str,
        name: &str,
        passkey: &Passkey,
    ) -> Result<PasskeyRow, AccountsError> {
        let json = serde_json::to_string(passkey)
            .map_err(|e| AccountsError::Encode(format!("a passkey as JSON: {e}")))?;
        let now = now_us();
        let db = self.db();
        db.execute(
            "INSERT INTO passkey (username, name, credential_id, credential, created_us) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![username, name, passkey.cred_id().as_ref(), json, now],
        )?;
        Ok(PasskeyRow {
            id: db.last_insert_rowid(),
            name: name.to_owned(),
            created_us: now,
            last_used_us: None,
        })
    }

    /// Removes one of `username`'s passkeys; its label if it existed.
    pub fn passkey_remove(&self, username: &str, id: i64) -> Result<Option<String>, AccountsError> {
        let db = self.db();
        let name: Option<String> = db
            .query_row(
                "SELECT name FROM passkey WHERE id = ?1 AND username = ?2",
                params![id, username],
                |r| r.get(0),
            )
            .optional()?;
        if name.is_some() {
            db.execute(
                "DELETE FROM passkey WHERE id = ?1 AND username = ?2",
                params![id, username],
            )?;
        }
        Ok(name)
    }

    /// Removes every passkey of `username` (with the user, or a console reset); how many.
    pub fn passkeys_remove_all(&self, username: &str) -> Result<usize, AccountsError> {
        Ok(self
            .db()
            .execute("DELETE FROM passkey WHERE username = ?1", params![username])?)
    }

    /// Records a sign-in: the last use, and the signature counter and backup state that
    /// webauthn-rs updates (§6.1.1: a counter that went backwards was refused already).
    fn passkey_used(
        &self,
        username: &str,
        keys: Vec<(i64, Passkey)>,
        result: &webauthn_rs::prelude::AuthenticationResult,
    ) -> Result<(), AccountsError> {
        let Some((id, mut key)) = keys
            .into_iter()
            .find(|(_, k)| k.cred_id() == result.cred_id())
        else {
            return Ok(());
        };
        key.update_credential(result);
        let json = serde_json::to_string(&key)
            .map_err(|e| AccountsError::Encode(format!("a passkey as JSON: {e}")))?;
        self.db().execute(
            "UPDATE passkey SET credential = ?1, last_used_us = ?2 WHERE id = ?3 AND username = ?4",
            params![json, now_us(), id, username],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://localhost:8443";

    fn passkeys() -> Passkeys {
        let url = check_public_url(ORIGIN).unwrap();
        Passkeys::new(Some(&url), "")
    }

    #[test]
    fn public_urls_must_be_https_origins_with_a_host_name() {
        let ok = |s: &str| origin_of(&check_public_url(s).unwrap());
        assert_eq!(ok("https://NVR.example:8443/"), "https://nvr.example:8443");
        assert_eq!(ok("https://nvr.example:443"), "https://nvr.example");
        let bad = |s: &str| check_public_url(s).unwrap_err();
        assert!(bad("http://nvr.example").contains("https://"));
        assert!(bad("https://192.0.2.1").contains("host name"));
        assert!(bad("https://[2001:db8::1]:8443").contains("host name"));
        assert!(bad("https://nvr.example/vigil").contains("without a path"));
        assert!(bad("https://nvr.example/?a=1").contains("without a path"));
        assert!(bad("https://u:p@nvr.example").contains("credentials"));
        assert!(bad("nvr.example").contains("URL"));
    }

    #[test]
    fn the_default_is_localhost_for_loopback_and_wildcard_listeners_only() {
        let d = |a: &str| default_public_url(a.parse().unwrap()).map(|u| origin_of(&u));
        assert_eq!(
            d("127.0.0.1:9443").as_deref(),
            Some("https://localhost:9443")
        );
        assert_eq!(d("0.0.0.0:8443").as_deref(), Some("https://localhost:8443"));
        assert_eq!(d("[::]:8443").as_deref(), Some("https://localhost:8443"));
        assert_eq!(d("192.0.2.7:8443"), None);
    }

    #[test]
    fn off_and_wrong_origins_say_what_to_do() {
        let off = Passkeys::new(None, "passkeys are off: set public_url");
        let e = off.sign_in_start(Some(ORIGIN)).unwrap_err();
        assert_eq!(e.to_string(), "passkeys are off: set public_url");
        let p = passkeys();
        assert_eq!(p.origin(), Some(ORIGIN));
        let e = p.sign_in_start(Some("https://127.0.0.1:8443")).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, PasskeyError::WrongOrigin { .. }), "{m}");
        assert!(
            m.contains(ORIGIN) && m.contains("https://127.0.0.1:8443"),
            "{m}"
        );
        assert!(m.contains("public_url"), "{m}");
        let e = p.sign_in_start(None).unwrap_err();
        assert!(e.to_string().contains("no Origin header"), "{e}");
    }

    #[test]
    fn sign_in_options_ask_for_user_verification_and_each_ticket_works_once() {
        let dir = tempfile::tempdir().unwrap();
        let acc = Accounts::open(dir.path()).unwrap();
        let p = passkeys();
        let (rcr, ticket) = p.sign_in_start(Some(ORIGIN)).unwrap();
        let json = serde_json::to_value(&rcr).unwrap();
        assert_eq!(json["publicKey"]["rpId"], "localhost");
        assert_eq!(json["publicKey"]["userVerification"], "required");
        assert!(json.get("mediation").is_none(), "{json}");
        // A malformed answer is refused, and spends the ticket.
        let garbage = serde_json::json!({"id": "x", "rawId": "!!", "type": "public-key"});
        let e = p
            .sign_in_finish(&acc, Some(ORIGIN), &ticket, &garbage)
            .unwrap_err();
        assert!(matches!(e, PasskeyError::Rejected(_)), "{e}");
        let e = p
            .sign_in_finish(&acc, Some(ORIGIN), &ticket, &garbage)
            .unwrap_err();
        assert!(matches!(e, PasskeyError::Expired), "{e}");
        // Nor can a sign-in ticket finish a registration.
        let (_, t2) = p.sign_in_start(Some(ORIGIN)).unwrap();
        let e = p
            .register_finish(&acc, Some(ORIGIN), "alice", &t2, "x", &garbage)
            .unwrap_err();
        assert!(matches!(e, PasskeyError::Expired), "{e}");
    }

    #[test]
    fn ceremonies_under_way_are_bounded() {
        let p = passkeys();
        for _ in 0..MAX_CEREMONIES {
            p.sign_in_start(Some(ORIGIN)).unwrap();
        }
        assert!(matches!(
            p.sign_in_start(Some(ORIGIN)),
            Err(PasskeyError::Busy)
        ));
    }

    #[test]
    fn registration_asks_for_a_discoverable_verified_key_under_a_random_handle() {
        let dir = tempfile::tempdir().unwrap();
        let acc = Accounts::open(dir.path()).unwrap();
        let p = passkeys();
        let (ccr, _) = p.register_start(&acc, Some(ORIGIN), "alice").unwrap();
        let json = serde_json::to_value(&ccr).unwrap();
        let sel = &json["publicKey"]["authenticatorSelection"];
        assert_eq!(sel["residentKey"], "preferred", "{json}");
        assert_eq!(sel["userVerification"], "required", "{json}");
        assert_eq!(json["publicKey"]["rp"]["id"], "localhost");
        // The user handle is a random UUID (16 bytes), the same on every registration, and
        // not the name.
        let handle = acc.passkey_handle("alice").unwrap();
        assert_ne!(handle, acc.passkey_handle("bob").unwrap());
        let id = json["publicKey"]["user"]["id"].as_str().unwrap();
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(id)
            .unwrap();
        assert_eq!(raw, handle.as_bytes());
        // A full reset forgets the handle, so an old passkey no longer names the user.
        acc.second_factor_remove("alice").unwrap();
        assert_ne!(acc.passkey_handle("alice").unwrap(), handle);
        assert!(acc.passkey_list("alice").unwrap().is_empty());
    }
}
