//! [`Authenticator`]: the policy that turns an `Authorization` header into a decision.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rand::RngCore as _;

use crate::digest::{self, Algorithm, NonceKey, NonceStatus};
use crate::throttle::LoginThrottle;
use crate::{Role, UserStore, REALM};

/// How long a nonce stays valid.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// One request to authenticate, as seen by the RTSP or HTTP server.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    /// Request method (`DESCRIBE`, `GET`, ...); part of the Digest response.
    pub method: &'a str,
    /// Request-target exactly as on the request line; Digest `uri` must equal it.
    pub uri: &'a str,
    /// The `Authorization` header value, if any.
    pub authorization: Option<&'a str>,
    /// Source address, for throttling and logs.
    pub peer: IpAddr,
    /// True on TLS connections: only then is Basic offered and accepted.
    pub secure: bool,
    /// Current time (injected for tests).
    pub now: SystemTime,
}

/// The outcome of [`Authenticator::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Authenticated.
    Allowed {
        /// User name.
        user: String,
        /// The user's role.
        role: Role,
    },
    /// 401 with one `WWW-Authenticate` header per entry (SHA-256 digest first, then MD5; plus
    /// `Basic realm="vigil"` only when secure), after the caller sleeps `delay`.
    Denied {
        /// `WWW-Authenticate` header values.
        challenges: Vec<String>,
        /// How long to wait before answering (brute-force throttling).
        delay: Duration,
    },
    /// No user exists yet: answer 401 with `challenges`, and show `hint` (the command that
    /// creates the first user) to the operator, e.g. in the server log.
    NoUsers {
        /// `WWW-Authenticate` header values.
        challenges: Vec<String>,
        /// What the operator should do.
        hint: String,
    },
}

/// Checks credentials against a [`UserStore`]; `Send + Sync`, share it as `Arc<Authenticator>`.
pub struct Authenticator {
    store: UserStore,
    nonces: NonceKey,
    throttle: Mutex<LoginThrottle>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The nonce secret stays out of debug output.
        f.debug_struct("Authenticator")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A user name fit for a log line: printable, at most 64 characters.
fn sanitize(name: &str) -> String {
    name.chars().take(64).flat_map(char::escape_debug).collect()
}

enum Failure {
    /// Wrong or malformed credentials: counted by the throttle.
    Bad(String, &'static str),
    /// Right response, but the nonce is expired or not ours: re-challenge with stale=true.
    Stale,
}

impl Authenticator {
    /// An authenticator with a random per-process nonce secret.
    pub fn new(store: UserStore) -> Self {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Self::with_secret(store, secret, NONCE_LIFETIME)
    }

    /// An authenticator with a chosen nonce secret and lifetime (tests, or several processes
    /// that must accept each other's nonces).
    pub fn with_secret(store: UserStore, secret: [u8; 32], nonce_lifetime: Duration) -> Self {
        Self {
            store,
            nonces: NonceKey::new(secret, nonce_lifetime),
            throttle: Mutex::new(LoginThrottle::new()),
        }
    }

    /// The user database.
    pub fn store(&self) -> &UserStore {
        &self.store
    }

    /// The challenges for a 401: SHA-256 then MD5 Digest with one fresh nonce, then Basic if
    /// `secure`. Clients that take the last Digest challenge (ffmpeg) get MD5, which they support.
    pub fn challenges(&self, secure: bool, stale: bool, now: SystemTime) -> Vec<String> {
        let nonce = self.nonces.mint(now);
        let mut v = vec![
            digest::challenge(REALM, Algorithm::Sha256, &nonce, stale),
            digest::challenge(REALM, Algorithm::Md5, &nonce, stale),
        ];
        if secure {
            v.push(format!("Basic realm={}", digest::quote(REALM)));
        }
        v
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides whether `req` is authenticated. Never panics on hostile input.
    pub fn check(&self, req: &AuthRequest<'_>) -> AuthDecision {
        let denied = |stale: bool, delay: Duration| AuthDecision::Denied {
            challenges: self.challenges(req.secure, stale, req.now),
            delay,
        };
        match self.store.is_empty() {
            Ok(true) => {
                return AuthDecision::NoUsers {
                    challenges: self.challenges(req.secure, false, req.now),
                    hint: format!(
                        "no user exists yet: create one with `vigil user add NAME --data {}`",
                        self.store.data_dir().display()
                    ),
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot read the user database; refusing all logins");
                return denied(false, Duration::ZERO);
            }
        }
        let Some(header) = req.authorization else {
            // A missing header is the normal first leg of the handshake, not a failure.
            return denied(false, Duration::ZERO);
        };
        if let Some(wait) = self.throttle().blocked(req.peer, req.now) {
            // Still inside the penalty of a previous failure: do not even look at the guess.
            tracing::warn!(peer = %req.peer, "login attempt during throttle delay refused");
            return denied(false, wait);
        }
        let result = if digest::strip_scheme(header, "Digest").is_some() {
            self.check_digest(req, header)
        } else if let Some(rest) = digest::strip_scheme(header, "Basic") {
            if req.secure {
                self.check_basic(rest)
            } else {
                // RFC 7617 §4: Basic sends the password in clear; only accepted over TLS.
                Err(Failure::Bad(
                    String::new(),
                    "Basic authentication refused on a plain connection",
                ))
            }
        } else {
            Err(Failure::Bad(
                String::new(),
                "unsupported authentication scheme",
            ))
        };
        match result {
            Ok((user, role)) => {
                self.throttle().record_success(req.peer);
                tracing::debug!(user = %sanitize(&user), peer = %req.peer, "authenticated");
                AuthDecision::Allowed { user, role }
            }
            Err(Failure::Stale) => {
                self.throttle().record_success(req.peer);
                denied(true, Duration::ZERO)
            }
            Err(Failure::Bad(user, why)) => {
                let delay = self.throttle().record_failure(req.peer, req.now);
                tracing::warn!(
                    user = %sanitize(&user),
                    peer = %req.peer,
                    delay_ms = delay.as_millis() as u64,
                    "login failed: {why}"
                );
                denied(false, delay)
            }
        }
    }

    fn check_digest(&self, req: &AuthRequest<'_>, header: &str) -> Result<(String, Role), Failure> {
        let creds = digest::parse_authorization(header)
            .map_err(|_| Failure::Bad(String::new(), "malformed Digest header"))?;
        let bad = |why| Failure::Bad(creds.username.clone(), why);
        if creds.realm != REALM {
            return Err(bad("wrong realm"));
        }
        // RFC 7616 §3.4: the uri must identify the requested resource, or a response captured
        // for one resource would open another.
        if creds.uri != req.uri {
            return Err(bad("digest uri does not match the request"));
        }
        let found = self
            .store
            .digest_ha1(&creds.username, creds.algorithm)
            .map_err(|_| bad("user database unreadable"))?;
        // Unknown users are checked against a throw-away HA1 so timing does not reveal names.
        let (ha1, role) = found
            .clone()
            .unwrap_or_else(|| (creds.algorithm.hex(b"no such user"), Role::Viewer));
        let expected = digest::expected_response(&ha1, req.method, &creds);
        if !digest::ct_eq(&expected, &creds.response) || found.is_none() {
            return Err(bad("wrong user name or password"));
        }
        match self.nonces.check(&creds.nonce, req.now) {
            NonceStatus::Valid => Ok((creds.username, role)),
            NonceStatus::Expired | NonceStatus::Invalid => Err(Failure::Stale),
        }
    }

    fn check_basic(&self, rest: &str) -> Result<(String, Role), Failure> {
        let malformed = || Failure::Bad(String::new(), "malformed Basic credentials");
        // RFC 7617 §2: token68 of base64(user-id ":" password).
        let b64 = rest.trim_matches([' ', '\t']);
        if b64.len() > 4 * 1024 {
            return Err(malformed());
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| malformed())?;
        let text = String::from_utf8(raw).map_err(|_| malformed())?;
        let (user, password) = text.split_once(':').ok_or_else(malformed)?;
        match self.store.verify_password(user, password) {
            Ok(Some(u)) => Ok((u.name, u.role)),
            Ok(None) => Err(Failure::Bad(user.to_owned(), "wrong user name or password")),
            Err(_) => Err(Failure::Bad(user.to_owned(), "user database unreadable")),
        }
    }
}

#[cfg(test)]
mod tests;
