//! Users and credentials for Vigil: the user database, HTTP/RTSP Digest (RFC 7616, with MD5 for
//! old clients) and Basic authentication, and login throttling.
//!
//! # How a request is checked
//! The caller (RTSP or HTTP server) builds an [`AuthRequest`] and calls [`Authenticator::check`]:
//! - no user exists yet → [`AuthDecision::NoUsers`] (401 and a hint for the operator);
//! - no `Authorization` header → [`AuthDecision::Denied`] with challenges and no delay;
//! - `Digest` → the [`DigestPolicy`] decides which algorithms and whether RFC 2069 style
//!   (no `qop`) are accepted; then user, realm, uri, nonce and response are checked;
//! - `Basic` only when the connection is TLS (`secure`), verified against the argon2id hash;
//! - before anything is verified the attempt takes a [`Reservation`] from [`LoginThrottle`]
//!   (per source address and per account name), counted as a failure until it is settled;
//!   the caller sleeps the delay of a failure before answering.
//!
//! # Stored secrets and their trade-off
//! Each user record in `<data_dir>/users.json` holds an argon2id hash (for Basic and web logins)
//! **and** the Digest HA1 values `H(user:vigil:password)` for SHA-256 and MD5 (RFC 7616 §3.4.2).
//! Digest verification needs HA1 itself and cannot use a slow salted hash, so HA1 is a
//! *password equivalent scoped to the realm "vigil"*: whoever reads the file can authenticate
//! via Digest as that user (though not recover the password without brute force, nor reuse it on
//! another realm). The file is therefore mode 0600 in a 0700 directory and written atomically.
//!
//! # Nonces
//! Nonces are stateless: base64url(timestamp ‖ HMAC-SHA256(secret, timestamp ‖ connection))
//! with a random 32-byte secret per process, valid 5 minutes. A correct response with an
//! expired (or pre-restart) nonce gets a fresh challenge with `stale=true`, so clients retry
//! without asking the user. Where the client keeps a connection (RTSP,
//! [`Authenticator::check_on_connection`]) the nonce is bound to it: a captured request
//! replayed from another connection gets only a stale challenge. Unbound nonces (HTTPS
//! snapshots, [`Authenticator::check`]) can be replayed verbatim (same method and uri) until
//! they expire, which TLS keeps from eavesdroppers.

pub mod admission;
mod argon_memory;
mod authenticator;
pub mod digest;
pub mod secret;
mod store;
mod throttle;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use authenticator::{
    AuthDecision, AuthRequest, Authenticator, DigestPolicy, ExternalOutcome, UnknownDigestPolicy,
};
pub use store::{
    hash_secret, validate_cameras, validate_name, validate_password, verify_secret, UserStore,
};
pub use throttle::{LoginThrottle, Reservation};

/// The fixed authentication realm of every Vigil endpoint.
pub const REALM: &str = "vigil";

/// What a user may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including configuration and user management.
    Admin,
    /// Watch live and recorded video.
    Viewer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        })
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            _ => Err(AuthError::InvalidRole(s.chars().take(32).collect())),
        }
    }
}

/// A user as seen outside the store (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// Cameras a viewer may see (`None`: all). Admins see every camera regardless.
    pub cameras: Option<Vec<String>>,
}

impl User {
    /// Whether this user may watch `camera` (live, recordings, events, snapshots).
    pub fn can_view(&self, camera: &str) -> bool {
        self.role == Role::Admin
            || self
                .cameras
                .as_ref()
                .is_none_or(|c| c.iter().any(|n| n == camera))
    }
}

/// Errors of the user store and authentication.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading or writing the user database failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The user database could not be parsed.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A user with this name already exists.
    #[error("user {0:?} already exists")]
    DuplicateUser(String),
    /// No user with this name.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// The user name is not acceptable.
    #[error("invalid user name: {0}")]
    InvalidName(String),
    /// The role is neither `admin` nor `viewer`.
    #[error("invalid role {0:?}: expected admin or viewer")]
    InvalidRole(String),
    /// The password is refused.
    #[error("password refused: {0}")]
    WeakPassword(String),
    /// A viewer's camera list is not acceptable.
    #[error("invalid camera list: {0}")]
    InvalidCameras(String),
    /// The change would leave no admin.
    #[error("the last admin cannot be removed or demoted")]
    LastAdmin,
    /// Hashing failed (should not happen with valid parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Fuzzing entry points (used by `fuzz/fuzz_targets`); not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::digest::{parse_authorization, DigestError, MAX_HEADER_LEN};

    /// Parses arbitrary bytes as an `Authorization` header and checks the invariants: never
    /// panics, rejects over-long input, and a parsed header re-serializes to a canonical form
    /// that parses to the identical value.
    pub fn digest_header(data: &[u8]) {
        let Ok(s) = std::str::from_utf8(data) else {
            return;
        };
        let parsed = parse_authorization(s);
        if s.len() > MAX_HEADER_LEN {
            assert_eq!(
                parsed,
                Err(DigestError::TooLong),
                "accepted an over-long header"
            );
        }
        let Ok(creds) = parsed else { return };
        let canon = creds.to_header();
        let again = parse_authorization(&canon);
        if canon.len() > MAX_HEADER_LEN {
            // Quoting and the explicit algorithm can lengthen a header that was near the limit.
            assert_eq!(again, Err(DigestError::TooLong));
            return;
        }
        assert_eq!(
            again.as_ref(),
            Ok(&creds),
            "round trip changed the value: {canon}"
        );
        let canon2 = again.map(|c| c.to_header()).unwrap_or_default();
        assert_eq!(canon, canon2, "canonical form is not stable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_text() {
        assert_eq!(Role::Admin.to_string(), "admin");
        assert_eq!("viewer".parse::<Role>().unwrap(), Role::Viewer);
        assert!("root".parse::<Role>().is_err());
        assert_eq!(serde_json::to_string(&Role::Viewer).unwrap(), "\"viewer\"");
    }

    /// Replays every checked-in fuzz seed and regression through the fuzz invariants.
    #[test]
    fn replay_fuzz_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut n = 0;
        for sub in ["corpus/digest_header", "regressions/digest_header"] {
            let Ok(rd) = std::fs::read_dir(root.join(sub)) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                fuzzing::digest_header(&std::fs::read(&p).unwrap());
                n += 1;
            }
        }
        assert!(n >= 10, "expected the seed corpus, found {n} files");
    }
}
