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

/// Which Digest responses the server accepts (`vigil camera --digest`); see
/// `docs/security.md`. Whatever the policy, a SHA-256 response must carry `qop=auth`
/// (RFC 7616 §3.4 makes qop mandatory; only RFC 2069 MD5 predates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestPolicy {
    /// SHA-256 with `qop=auth` only; only a SHA-256 challenge is offered. A man in the middle
    /// cannot downgrade the exchange to MD5. Clients: retina, curl; not ffmpeg or GStreamer,
    /// which implement MD5 only.
    Sha256,
    /// SHA-256 or MD5, both with `qop=auth` (ffmpeg).
    Md5,
    /// SHA-256, MD5, and RFC 2069 MD5 responses without `qop` (GStreamer rtspsrc up to at
    /// least 1.22, live555/VLC). The default, so that every common client connects.
    #[default]
    Legacy,
}

impl DigestPolicy {
    /// The option value (`sha256`, `md5`, `legacy`).
    pub fn as_str(self) -> &'static str {
        match self {
            DigestPolicy::Sha256 => "sha256",
            DigestPolicy::Md5 => "md5",
            DigestPolicy::Legacy => "legacy",
        }
    }

    /// Why this policy refuses a response of this algorithm and qop, if it does.
    pub fn refuses(self, alg: Algorithm, qop: Option<digest::Qop>) -> Option<&'static str> {
        match (alg, qop, self) {
            (Algorithm::Sha256, Some(_), _)
            | (Algorithm::Md5, Some(_), Self::Md5 | Self::Legacy) => None,
            (Algorithm::Md5, None, Self::Legacy) => None,
            (Algorithm::Md5, _, Self::Sha256) => Some("MD5 refused (--digest sha256)"),
            (_, None, _) => Some("Digest response without qop=auth refused"),
        }
    }
}

impl std::fmt::Display for DigestPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--digest` value that is none of `sha256`, `md5`, `legacy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown digest policy {0:?}: expected sha256, md5 or legacy")]
pub struct UnknownDigestPolicy(String);

impl std::str::FromStr for DigestPolicy {
    type Err = UnknownDigestPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(DigestPolicy::Sha256),
            "md5" => Ok(DigestPolicy::Md5),
            "legacy" => Ok(DigestPolicy::Legacy),
            _ => Err(UnknownDigestPolicy(s.chars().take(32).collect())),
        }
    }
}

/// How credentials checked outside the authenticator turned out ([`Authenticator::throttled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalOutcome {
    /// Right credentials: the slot is refunded.
    Succeeded,
    /// Wrong, malformed or replayed credentials: a failure of the address.
    Failed,
    /// None were presented (a pre-authentication request): the slot is refunded.
    NoCredentials,
}

/// Checks credentials against a [`UserStore`]; `Send + Sync`, share it as `Arc<Authenticator>`.
pub struct Authenticator {
    store: UserStore,
    nonces: NonceKey,
    throttle: Mutex<LoginThrottle>,
    policy: DigestPolicy,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The nonce secret stays out of debug output.
        f.debug_struct("Authenticator")
            .field("store", &self.store)
            .field("policy", &self.policy)
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
    /// Right response, but the nonce is expired or not ours (or not this connection's):
    /// re-challenge with stale=true. Proves nothing (a replayed capture gets here too), so the
    /// attempt is neither a failure nor a success.
    Stale,
}

/// What an `Authorization` header claims, parsed before any throttle slot is taken.
enum Attempt {
    Digest(digest::DigestCredentials),
    Basic {
        user: String,
        password: String,
    },
    /// Unusable without verifying anything; counted as a failure of the address.
    Invalid(&'static str),
}

impl Attempt {
    fn parse(header: &str, secure: bool) -> Self {
        if digest::strip_scheme(header, "Digest").is_some() {
            match digest::parse_authorization(header) {
                Ok(c) => Attempt::Digest(c),
                Err(_) => Attempt::Invalid("malformed Digest header"),
            }
        } else if let Some(rest) = digest::strip_scheme(header, "Basic") {
            if !secure {
                // RFC 7617 §4: Basic sends the password in clear; only accepted over TLS.
                return Attempt::Invalid("Basic authentication refused on a plain connection");
            }
            parse_basic(rest).map_or(
                Attempt::Invalid("malformed Basic credentials"),
                |(user, password)| Attempt::Basic { user, password },
            )
        } else {
            Attempt::Invalid("unsupported authentication scheme")
        }
    }

    fn user(&self) -> Option<&str> {
        match self {
            Attempt::Digest(c) => Some(&c.username),
            Attempt::Basic { user, .. } => Some(user),
            Attempt::Invalid(_) => None,
        }
    }
}

/// RFC 7617 §2: token68 of base64(user-id ":" password).
fn parse_basic(rest: &str) -> Option<(String, String)> {
    let b64 = rest.trim_matches([' ', '\t']);
    if b64.len() > 4 * 1024 {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl Authenticator {
    /// An authenticator with a random per-process nonce secret and the default
    /// [`DigestPolicy`].
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
            policy: DigestPolicy::default(),
        }
    }

    /// The same authenticator accepting only the Digest responses `policy` allows.
    pub fn with_digest_policy(mut self, policy: DigestPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The Digest policy in force.
    pub fn digest_policy(&self) -> DigestPolicy {
        self.policy
    }

    /// The user database.
    pub fn store(&self) -> &UserStore {
        &self.store
    }

    /// The challenges for a 401: SHA-256 then (unless the policy is [`DigestPolicy::Sha256`])
    /// MD5 Digest with one fresh nonce, then Basic if `secure`. Clients that take the last
    /// Digest challenge (ffmpeg) get MD5, which they support.
    pub fn challenges(&self, secure: bool, stale: bool, now: SystemTime) -> Vec<String> {
        self.challenges_for(secure, stale, now, None)
    }

    fn challenges_for(
        &self,
        secure: bool,
        stale: bool,
        now: SystemTime,
        connection: Option<u64>,
    ) -> Vec<String> {
        let nonce = self.nonces.mint(now, connection);
        let mut v = vec![digest::challenge(REALM, Algorithm::Sha256, &nonce, stale)];
        if self.policy != DigestPolicy::Sha256 {
            v.push(digest::challenge(REALM, Algorithm::Md5, &nonce, stale));
        }
        if secure {
            v.push(format!("Basic realm={}", digest::quote(REALM)));
        }
        v
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, LoginThrottle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `verify`, a check of credentials this authenticator does not parse itself (an
    /// ONVIF WS-UsernameToken inside a SOAP body), in a slot of the same login throttle as
    /// Digest and Basic, so that a guesser cannot switch schemes to escape its penalty.
    ///
    /// While `peer` is in a penalty window `verify` is not run and the wait is returned
    /// (`Err`). Otherwise the slot is taken before `verify` runs (concurrent attempts see each
    /// other, as in [`Self::check`]) and settled by its [`ExternalOutcome`]; the answer carries
    /// the delay a failure earned, to be waited before replying. `verify` runs under the
    /// throttle's lock: it must be cheap (a hash, not argon2).
    pub fn throttled<R>(
        &self,
        peer: IpAddr,
        now: SystemTime,
        verify: impl FnOnce() -> (R, ExternalOutcome),
    ) -> Result<(R, Duration), Duration> {
        let mut throttle = self.throttle();
        let reservation = match throttle.reserve(peer, None, now) {
            Ok(r) => r,
            Err(wait) => {
                tracing::warn!(%peer, "login attempt during throttle delay refused");
                return Err(wait);
            }
        };
        let (r, outcome) = verify();
        let delay = match outcome {
            ExternalOutcome::Succeeded => {
                throttle.succeed(reservation);
                Duration::ZERO
            }
            ExternalOutcome::NoCredentials => {
                throttle.refund(reservation);
                Duration::ZERO
            }
            ExternalOutcome::Failed => throttle.fail(reservation),
        };
        Ok((r, delay))
    }

    /// Decides whether `req` is authenticated. Never panics on hostile input. Nonces are not
    /// bound to a connection: use [`Self::check_on_connection`] where the client keeps one.
    pub fn check(&self, req: &AuthRequest<'_>) -> AuthDecision {
        self.check_inner(req, None)
    }

    /// [`Self::check`] for a request that arrived on the long-lived connection `connection`
    /// (an id unique among the process's connections, e.g. random): the nonces in its
    /// challenges are valid on this connection only, so an `Authorization` header captured
    /// from it cannot be replayed from another (it gets `stale=true`, which only the password
    /// holder can answer).
    pub fn check_on_connection(&self, req: &AuthRequest<'_>, connection: u64) -> AuthDecision {
        self.check_inner(req, Some(connection))
    }

    fn check_inner(&self, req: &AuthRequest<'_>, connection: Option<u64>) -> AuthDecision {
        let denied = |stale: bool, delay: Duration| AuthDecision::Denied {
            challenges: self.challenges_for(req.secure, stale, req.now, connection),
            delay,
        };
        match self.store.is_empty() {
            Ok(true) => {
                return AuthDecision::NoUsers {
                    challenges: self.challenges_for(req.secure, false, req.now, connection),
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
        let attempt = Attempt::parse(header, req.secure);
        if let Attempt::Digest(c) = &attempt {
            // Refused by policy before anything is verified, so not a guess and not counted: a
            // misconfigured old client must not keep its owner's account throttled.
            if let Some(why) = self.policy.refuses(c.algorithm, c.qop) {
                tracing::warn!(user = %sanitize(&c.username), peer = %req.peer, "login refused: {why}");
                return denied(false, Duration::ZERO);
            }
        }
        // Take the throttle slot before verifying (see the throttle's module docs): the
        // attempt counts as a failure until it is settled below.
        let mut throttle = self.throttle();
        let reservation = match throttle.reserve(req.peer, attempt.user(), req.now) {
            Ok(r) => r,
            Err(wait) => {
                // Inside the penalty of earlier failures: do not even look at the guess.
                tracing::warn!(peer = %req.peer, "login attempt during throttle delay refused");
                return denied(false, wait);
            }
        };
        let result = match attempt {
            // Digest costs one hash: verified under the throttle lock, so reservation,
            // verification and settlement are one step for concurrent requests.
            Attempt::Digest(creds) => self.check_digest(req, creds, connection),
            Attempt::Basic { user, password } => {
                // argon2 takes tens of milliseconds: not under the lock. Concurrent attempts
                // still see this one, as a provisional failure.
                drop(throttle);
                let r = self.check_basic(user, &password);
                throttle = self.throttle();
                r
            }
            Attempt::Invalid(why) => Err(Failure::Bad(String::new(), why)),
        };
        match result {
            Ok((user, role)) => {
                throttle.succeed(reservation);
                drop(throttle);
                tracing::debug!(user = %sanitize(&user), peer = %req.peer, "authenticated");
                AuthDecision::Allowed { user, role }
            }
            Err(Failure::Stale) => {
                throttle.refund(reservation);
                drop(throttle);
                denied(true, Duration::ZERO)
            }
            Err(Failure::Bad(user, why)) => {
                let delay = throttle.fail(reservation);
                drop(throttle);
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

    fn check_digest(
        &self,
        req: &AuthRequest<'_>,
        creds: digest::DigestCredentials,
        connection: Option<u64>,
    ) -> Result<(String, Role), Failure> {
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
        match self.nonces.check(&creds.nonce, req.now, connection) {
            NonceStatus::Valid => Ok((creds.username, role)),
            NonceStatus::Expired | NonceStatus::Invalid => Err(Failure::Stale),
        }
    }

    fn check_basic(&self, user: String, password: &str) -> Result<(String, Role), Failure> {
        match self.store.verify_password(&user, password) {
            Ok(Some(u)) => Ok((u.name, u.role)),
            Ok(None) => Err(Failure::Bad(user, "wrong user name or password")),
            Err(_) => Err(Failure::Bad(user, "user database unreadable")),
        }
    }
}

#[cfg(test)]
mod tests;
