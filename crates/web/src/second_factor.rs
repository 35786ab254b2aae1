//! Second factors, so that a stolen password alone opens nothing: TOTP (RFC 6238), single-use
//! recovery codes, the login ticket between password and code, and the policy that requires a
//! second factor of admins or of everyone.
//!
//! TOTP is what every authenticator app speaks: HMAC-SHA-1, 30 s steps, 6 digits (RFC 6238
//! §4, §5.2; RFC 4226 §5.3), a 160-bit secret (RFC 4226 §4 R6), ±1 step of clock skew. A code
//! is accepted once: the last accepted step is stored and only a later one passes (RFC 6238
//! §5.2), so a code seen over a shoulder or replayed by a proxy is refused. The secret is
//! kept in `web.sqlite3` (0600) — the server must compute the codes, so it cannot hold only a
//! hash — and never shown again after enrolment.
//!
//! Recovery codes: ten at enrolment, 80 random bits each (`xxxx-xxxx-xxxx-xxxx` in base32),
//! stored as SHA-256 (80 bits leave nothing for a fast hash to guess), each usable once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::RngCore as _;
use rusqlite::{params, OptionalExtension as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use totp_rs::{Algorithm, TOTP};
use vigil_auth::Role;

use crate::accounts::{now_us, Accounts, AccountsError};

/// Seconds per TOTP step (RFC 6238 §5.2).
const STEP_S: u64 = 30;
/// Digits per code.
const DIGITS: usize = 6;
/// Steps of clock skew accepted either side.
const SKEW: u64 = 1;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// How long the password step's ticket waits for the code.
pub const TICKET_TTL: Duration = Duration::from_secs(300);
/// Codes tried on one ticket before it is spent (the throttle also counts each failure).
const TICKET_ATTEMPTS: u8 = 5;

/// Version 4 of `web.sqlite3`.
pub(crate) const SCHEMA_V4: &str = "
CREATE TABLE totp (
    username TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    confirmed INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE TABLE recovery_code (
    username TEXT NOT NULL,
    code_hash BLOB NOT NULL,
    used_us INTEGER,
    PRIMARY KEY (username, code_hash)
);
CREATE TABLE setting (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// Who must have a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Nobody (each user may still enrol).
    None,
    /// Admins.
    Admins,
    /// Everyone.
    Everyone,
}

impl Policy {
    /// Whether a user of `role` must have a second factor.
    pub fn covers(self, role: Role) -> bool {
        match self {
            Policy::None => false,
            Policy::Admins => role == Role::Admin,
            Policy::Everyone => true,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Admins => "admins",
            Policy::Everyone => "everyone",
        }
    }
}

/// A TOTP enrolment under way: what the authenticator app needs.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Enrolment {
    /// The secret in base32, for typing into an app.
    pub secret: String,
    /// The `otpauth://totp/...` URI the QR code holds.
    pub otpauth_uri: String,
    /// The QR code as an SVG document, rendered here (no third-party service sees the secret).
    pub qr_svg: String,
}

/// A user's second factors, as the Account page shows them.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Status {
    /// Whether a confirmed TOTP authenticator is set.
    pub totp: bool,
    /// Passkeys registered (each also serves as the second step after the password).
    pub passkeys: usize,
    /// Recovery codes not yet used.
    pub recovery_codes_left: usize,
    /// Whether the policy requires a second factor of this user.
    pub required: bool,
}

/// A password that was right, waiting for its second factor.
#[derive(Debug)]
pub struct Ticket {
    /// Whose.
    pub username: String,
    /// The password step's throttle slot: refunded only when the code is right too.
    pub reservation: Option<vigil_auth::Reservation>,
    expires: Instant,
    attempts: u8,
}

/// Tickets by the SHA-256 of their secret, in memory: a restart simply asks for the
/// password again.
#[derive(Debug, Default)]
pub struct Tickets(HashMap<[u8; 32], Ticket>);

impl Tickets {
    /// Issues a ticket; returns its secret (to send to the browser, once).
    pub fn issue(&mut self, username: &str, reservation: vigil_auth::Reservation) -> String {
        let now = Instant::now();
        self.0.retain(|_, t| t.expires > now);
        let secret = crate::accounts::random_secret();
        self.0.insert(
            sha256(secret.as_bytes()),
            Ticket {
                username: username.to_owned(),
                reservation: Some(reservation),
                expires: now + TICKET_TTL,
                attempts: 0,
            },
        );
        secret
    }

    /// The user of a live ticket, counting one attempt; `None` when unknown, expired or
    /// out of attempts (it is then removed).
    pub fn attempt(&mut self, secret: &str) -> Option<String> {
        let key = sha256(secret.as_bytes());
        let t = self.0.get_mut(&key)?;
        if t.expires <= Instant::now() || t.attempts >= TICKET_ATTEMPTS {
            self.0.remove(&key);
            return None;
        }
        t.attempts += 1;
        Some(t.username.clone())
    }

    /// Ends a ticket (its code was right); returns its password-step reservation.
    pub fn redeem(&mut self, secret: &str) -> Option<vigil_auth::Reservation> {
        self.0
            .remove(&sha256(secret.as_bytes()))
            .and_then(|t| t.reservation)
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn totp(secret: Vec<u8>, account: &str) -> Result<TOTP, AccountsError> {
    // `:` separates issuer and account in the otpauth label; user names never hold one
    // (vigil_auth::validate_name), so this only guards a future change.
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        SKEW as u8,
        STEP_S,
        secret,
        Some("Vigil".to_owned()),
        account.replace(':', "_"),
    )
    .map_err(|e| AccountsError::SecondFactor(format!("TOTP: {e:?}")))
}

/// The step whose code is `code` within ±[`SKEW`] of `now_s`, later than `after`.
fn matching_step(t: &TOTP, code: &str, now_s: u64, after: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = now_s / STEP_S;
    (now.saturating_sub(SKEW)..=now + SKEW)
        .filter(|&s| s > after)
        .find(|&s| bool::from(t.generate(s * STEP_S).as_bytes().ct_eq(code.as_bytes())))
}

/// `xxxx-xxxx-xxxx-xxxx`: 80 random bits in lowercase base32 (no 0/1/8/9 to misread).
fn new_recovery_code() -> String {
    let mut b = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let s = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &b).to_lowercase();
    s.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A typed recovery code as stored: lowercase, without separators or spaces.
fn recovery_hash(code: &str) -> [u8; 32] {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    sha256(norm.as_bytes())
}

/// Replaces a user's recovery codes with [`RECOVERY_CODES`] new ones inside `tx`; returns
/// them (the only time they exist outside their hashes).
fn replace_recovery_codes(
    tx: &rusqlite::Transaction<'_>,
    username: &str,
) -> Result<Vec<String>, AccountsError> {
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    tx.execute(
        "DELETE FROM recovery_code WHERE username = ?1",
        params![username],
    )?;
    for c in &codes {
        tx.execute(
            "INSERT INTO recovery_code (username, code_hash) VALUES (?1, ?2)",
            params![username, recovery_hash(c).to_vec()],
        )?;
    }
    Ok(codes)
}

fn now_s() -> u64 {
    u64::try_from(now_us() / 1_000_000).unwrap_or(0)
}

impl Accounts {
    /// Starts (or restarts) a TOTP enrolment; refused while one is confirmed (remove it
    /// first, with the password).
    pub fn totp_begin(&self, username: &str) -> Result<Enrolment, AccountsError> {
        if self.second_factor(username)?.totp {
            return Err(AccountsError::SecondFactor(
                "an authenticator is already set; remove it first".into(),
            ));
        }
        let mut secret = vec![0u8; 20];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let t = totp(secret.clone(), username)?;
        let uri = t.get_url();
        let qr = qrcode::QrCode::new(uri.as_bytes())
            .map_err(|e| AccountsError::SecondFactor(format!("QR code: {e}")))?;
        let svg = qr
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        self.db().execute(
            "INSERT OR REPLACE INTO totp (username, secret, confirmed, last_step, created_us) \
             VALUES (?1, ?2, 0, 0, ?3)",
            params![username, secret, now_us()],
        )?;
        Ok(Enrolment {
            secret: t.get_secret_base32(),
            otpauth_uri: uri,
            qr_svg: svg,
        })
    }

    /// Confirms an enrolment with a code from the app; returns the new recovery codes (shown
    /// once), or `None` if the code is wrong.
    pub fn totp_confirm(
        &self,
        username: &str,
        code: &str,
    ) -> Result<Option<Vec<String>>, AccountsError> {
        self.totp_confirm_at(username, code, now_s())
    }

    fn totp_confirm_at(
        &self,
        username: &str,
        code: &str,
        now_s: u64,
    ) -> Result<Option<Vec<String>>, AccountsError> {
        let mut db = self.db();
        let row: Option<(Vec<u8>, i64)> = db
            .query_row(
                "SELECT secret, last_step FROM totp WHERE username = ?1 AND confirmed = 0",
                params![username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((secret, last)) = row else {
            return Err(AccountsError::SecondFactor(
                "no enrolment under way: start again".into(),
            ));
        };
        let t = totp(secret, username)?;
        let Some(step) = matching_step(&t, code, now_s, u64::try_from(last).unwrap_or(0)) else {
            return Ok(None);
        };
        let tx = db.transaction()?;
        tx.execute(
            "UPDATE totp SET confirmed = 1, last_step = ?2 WHERE username = ?1",
            params![username, i64::try_from(step).unwrap_or(i64::MAX)],
        )?;
        let codes = replace_recovery_codes(&tx, username)?;
        tx.commit()?;
        Ok(Some(codes))
    }

    /// Replaces a user's recovery codes with ten new ones (an authenticator must be set).
    pub fn recovery_renew(&self, username: &str) -> Result<Vec<String>, AccountsError> {
        let s = self.second_factor(username)?;
        if !s.totp && s.passkeys == 0 {
            return Err(AccountsError::SecondFactor(
                "set up an authenticator app or a passkey first".into(),
            ));
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        let codes = replace_recovery_codes(&tx, username)?;
        tx.commit()?;
        Ok(codes)
    }

    /// Checks a TOTP code at login; a code (step) already used is refused.
    pub fn totp_verify(&self, username: &str, code: &str) -> Result<bool, AccountsError> {
        self.totp_verify_at(username, code, now_s())
    }

    fn totp_verify_at(
        &self,
        username: &str,
        code: &str,
        now_s: u64,
    ) -> Result<bool, AccountsError> {
        let db = self.db();
        let row: Option<(Vec<u8>, i64)> = db
            .query_row(
                "SELECT secret, last_step FROM totp WHERE username = ?1 AND confirmed = 1",
                params![username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((secret, last)) = row else {
            return Ok(false);
        };
        let t = totp(secret, username)?;
        let Some(step) = matching_step(&t, code, now_s, u64::try_from(last).unwrap_or(0)) else {
            return Ok(false);
        };
        // Conditional on the step still being newer: two requests racing with one code
        // cannot both pass.
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        Ok(db.execute(
            "UPDATE totp SET last_step = ?2 WHERE username = ?1 AND last_step < ?2",
            params![username, step],
        )? == 1)
    }

    /// Uses a recovery code; returns how many are left, or `None` if it is not an unused
    /// code of this user.
    pub fn recovery_use(&self, username: &str, code: &str) -> Result<Option<usize>, AccountsError> {
        let db = self.db();
        let n = db.execute(
            "UPDATE recovery_code SET used_us = ?3 \
             WHERE username = ?1 AND code_hash = ?2 AND used_us IS NULL",
            params![username, recovery_hash(code).to_vec(), now_us()],
        )?;
        if n != 1 {
            return Ok(None);
        }
        let left: i64 = db.query_row(
            "SELECT COUNT(*) FROM recovery_code WHERE username = ?1 AND used_us IS NULL",
            params![username],
            |r| r.get(0),
        )?;
        Ok(Some(usize::try_from(left).unwrap_or(0)))
    }

    /// A user's second factors (and whether the policy requires one of them).
    pub fn second_factor(&self, username: &str) -> Result<Status, AccountsError> {
        let role = self.users.get(username)?.map(|u| u.role);
        let db = self.db();
        let totp: bool = db
            .query_row(
                "SELECT confirmed FROM totp WHERE username = ?1",
                params![username],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .is_some_and(|c| c == 1);
        let left: i64 = db.query_row(
            "SELECT COUNT(*) FROM recovery_code WHERE username = ?1 AND used_us IS NULL",
            params![username],
            |r| r.get(0),
        )?;
        drop(db);
        Ok(Status {
            totp,
            passkeys: self.passkey_count(username)?,
            recovery_codes_left: usize::try_from(left).unwrap_or(0),
            required: role.is_some_and(|r| self.policy().is_ok_and(|p| p.covers(r))),
        })
    }

    /// Whether the user must enrol before anything else: the policy covers them and they
    /// have no second factor (an authenticator app or a passkey).
    pub fn must_enrol(&self, username: &str, role: Role) -> Result<bool, AccountsError> {
        if !self.policy()?.covers(role) {
            return Ok(false);
        }
        let s = self.second_factor(username)?;
        Ok(!s.totp && s.passkeys == 0)
    }

    /// Removes every second factor of a user: authenticator app, recovery codes, passkeys
    /// and their WebAuthn user handle (an admin's reset, `vigil user reset-2fa`, or the
    /// user's removal); true if there was any.
    pub fn second_factor_remove(&self, username: &str) -> Result<bool, AccountsError> {
        let db = self.db();
        let mut n = db.execute("DELETE FROM totp WHERE username = ?1", params![username])?;
        n += db.execute(
            "DELETE FROM recovery_code WHERE username = ?1",
            params![username],
        )?;
        n += db.execute("DELETE FROM passkey WHERE username = ?1", params![username])?;
        db.execute(
            "DELETE FROM passkey_handle WHERE username = ?1",
            params![username],
        )?;
        Ok(n > 0)
    }

    /// Turns the authenticator app off (the user's choice, with the password). The recovery
    /// codes go with it unless passkeys remain, for which they are the fallback too.
    pub fn totp_remove(&self, username: &str) -> Result<bool, AccountsError> {
        let passkeys = self.passkey_count(username)?;
        let db = self.db();
        let n = db.execute("DELETE FROM totp WHERE username = ?1", params![username])?;
        if passkeys == 0 {
            db.execute(
                "DELETE FROM recovery_code WHERE username = ?1",
                params![username],
            )?;
        }
        Ok(n > 0)
    }

    /// Ten new recovery codes for a user who has none left and has just set up a passkey
    /// (shown once); `None` if some remain.
    pub fn recovery_codes_if_none(
        &self,
        username: &str,
    ) -> Result<Option<Vec<String>>, AccountsError> {
        if self.second_factor(username)?.recovery_codes_left > 0 {
            return Ok(None);
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        let codes = replace_recovery_codes(&tx, username)?;
        tx.commit()?;
        Ok(Some(codes))
    }

    /// Who must have a second factor.
    pub fn policy(&self) -> Result<Policy, AccountsError> {
        let v: Option<String> = self
            .db()
            .query_row(
                "SELECT value FROM setting WHERE key = 'second_factor'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match v.as_deref() {
            Some("admins") => Policy::Admins,
            Some("everyone") => Policy::Everyone,
            _ => Policy::None,
        })
    }

    /// Sets who must have a second factor.
    pub fn set_policy(&self, p: Policy) -> Result<(), AccountsError> {
        self.db().execute(
            "INSERT INTO setting (key, value) VALUES ('second_factor', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![p.as_str()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits there; the last 6 are the 6-digit code,
    /// since the code is the truncated value mod 10^digits).
    #[test]
    fn codes_match_the_rfc_6238_vectors() {
        let t = totp(b"12345678901234567890".to_vec(), "alice").unwrap();
        for (time, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(t.generate(time), code[2..], "T = {time}");
        }
    }

    #[test]
    fn enrol_verify_once_within_one_step_and_recovery_codes_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(dir.path()).unwrap();
        a.users
            .add("alice", "a long pass phrase", Role::Admin)
            .unwrap();
        let e = a.totp_begin("alice").unwrap();
        assert!(
            e.otpauth_uri.starts_with("otpauth://totp/Vigil:alice?"),
            "{}",
            e.otpauth_uri
        );
        assert!(e.qr_svg.contains("<svg"));
        let secret =
            base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &e.secret).unwrap();
        let t = totp(secret, "alice").unwrap();
        let now = 1_800_000_000u64;
        assert_eq!(a.totp_confirm_at("alice", "000000", now).unwrap(), None);
        let codes = a
            .totp_confirm_at("alice", &t.generate(now), now)
            .unwrap()
            .unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(a.second_factor("alice").unwrap().totp);
        assert!(a.totp_begin("alice").is_err(), "enrolled twice");
        // The confirming code cannot log in; the next step's can, once; ±1 step, not 2.
        assert!(!a.totp_verify_at("alice", &t.generate(now), now).unwrap());
        let next = now + STEP_S;
        assert!(a.totp_verify_at("alice", &t.generate(next), next).unwrap());
        assert!(!a.totp_verify_at("alice", &t.generate(next), next).unwrap());
        let later = now + 10 * STEP_S;
        assert!(a
            .totp_verify_at("alice", &t.generate(later - STEP_S), later)
            .unwrap());
        assert!(!a
            .totp_verify_at("alice", &t.generate(later + 2 * STEP_S), later)
            .unwrap());
        assert!(!a.totp_verify_at("alice", "12345", later).unwrap());
        // Recovery codes: typed loosely, used once.
        let typed = codes[3].to_uppercase().replace('-', " ");
        assert_eq!(a.recovery_use("alice", &typed).unwrap(), Some(9));
        assert_eq!(a.recovery_use("alice", &codes[3]).unwrap(), None);
        assert_eq!(a.recovery_use("bob", &codes[4]).unwrap(), None);
        assert_eq!(a.second_factor("alice").unwrap().recovery_codes_left, 9);
        // Policy.
        assert!(!a.must_enrol("bob", Role::Viewer).unwrap());
        a.set_policy(Policy::Everyone).unwrap();
        assert!(a.must_enrol("bob", Role::Viewer).unwrap());
        assert!(!a.must_enrol("alice", Role::Admin).unwrap());
        assert!(a.second_factor_remove("alice").unwrap());
        assert!(a.must_enrol("alice", Role::Admin).unwrap());
    }

    #[test]
    fn tickets_expire_and_run_out_of_attempts() {
        let mut t = Tickets::default();
        let mut th = vigil_auth::LoginThrottle::default();
        let ip = std::net::IpAddr::from([192, 0, 2, 1]);
        let r = th
            .reserve(ip, Some("alice"), std::time::SystemTime::now())
            .unwrap();
        let s = t.issue("alice", r);
        for _ in 0..TICKET_ATTEMPTS {
            assert_eq!(t.attempt(&s).as_deref(), Some("alice"));
        }
        assert_eq!(t.attempt(&s), None);
        assert_eq!(t.attempt("forged"), None);
    }
}
