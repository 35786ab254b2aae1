//! WS-Security UsernameToken (OASIS WSS UsernameToken Profile 1.0).
//!
//! §3.1: `PasswordDigest = Base64(SHA-1(nonce + created + password))`, where `nonce` is the
//! decoded bytes of `wsse:Nonce` and `created` the text of `wsu:Created`. §3.2 (replay):
//! the receiver keeps nonces for the freshness window and rejects a token whose Created is
//! outside it or whose nonce it has seen. We use a ±5 minute window and a bounded cache.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;

use crate::envelope::Envelope;

/// WSS 1.0 secext namespace (`wsse:`).
pub const NS_WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// WSS 1.0 utility namespace (`wsu:`).
pub const NS_WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// `Password/@Type` for a digest (UsernameToken Profile 1.0 §3.1).
pub const TYPE_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
/// `Password/@Type` for clear text, also the default when the attribute is absent.
pub const TYPE_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";

/// Longest accepted nonce after Base64 decoding; WSS recommends 16 bytes.
const MAX_NONCE: usize = 64;

/// How the password was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordType {
    /// `Base64(SHA-1(nonce + created + password))`.
    Digest,
    /// The password itself.
    Text,
}

/// A `wsse:UsernameToken` from the Security header.
#[derive(Clone, PartialEq, Eq)]
pub struct UsernameToken {
    /// `wsse:Username`.
    pub username: String,
    /// `wsse:Password` text.
    pub password: String,
    /// `wsse:Password/@Type`.
    pub password_type: PasswordType,
    /// Decoded `wsse:Nonce`.
    pub nonce: Option<Vec<u8>>,
    /// `wsu:Created`, verbatim (the digest covers the exact text).
    pub created: Option<String>,
}

impl std::fmt::Debug for UsernameToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password or digest (it is a replayable credential inside the window).
        f.debug_struct("UsernameToken")
            .field("username", &self.username)
            .field("password_type", &self.password_type)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused; all map to the `ter:NotAuthorized` fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum TokenError {
    /// The header has a Security element but no usable UsernameToken.
    #[error("malformed UsernameToken")]
    Malformed,
    /// PasswordDigest without Nonce or Created.
    #[error("PasswordDigest needs Nonce and Created")]
    MissingNonceOrCreated,
    /// Created is not a valid timestamp or is outside the window.
    #[error("Created is outside the accepted window")]
    Stale,
    /// The nonce was seen within the window (§3.2).
    #[error("nonce replayed")]
    Replayed,
    /// Unknown user, no WS-Security credential, or wrong digest.
    #[error("wrong user name or password")]
    BadCredentials,
    /// The nonce cache is full of unexpired entries; fail closed.
    #[error("too many recent tokens")]
    Busy,
}

/// Finds the UsernameToken in an envelope's header: `Ok(None)` when there is none.
pub fn extract(env: &Envelope) -> Result<Option<UsernameToken>, TokenError> {
    let in_token = |f: &&crate::envelope::Field| {
        f.path.len() == 3
            && f.path[0].is(NS_WSSE, "Security")
            && f.path[1].is(NS_WSSE, "UsernameToken")
    };
    let fields: Vec<_> = env.header.iter().filter(in_token).collect();
    let has_security = env
        .header
        .iter()
        .any(|f| f.path.first().is_some_and(|n| n.is(NS_WSSE, "Security")));
    if fields.is_empty() {
        return if has_security {
            Err(TokenError::Malformed)
        } else {
            Ok(None)
        };
    }
    let get = |ns: &str, local: &str| fields.iter().find(|f| f.path[2].is(ns, local));
    let username = get(NS_WSSE, "Username").ok_or(TokenError::Malformed)?;
    let password = get(NS_WSSE, "Password").ok_or(TokenError::Malformed)?;
    let password_type = match password
        .attrs
        .iter()
        .find(|(ns, local, _)| ns.is_empty() && local == "Type")
        .map(|(_, _, v)| v.as_str())
    {
        None | Some(TYPE_TEXT) => PasswordType::Text,
        Some(TYPE_DIGEST) => PasswordType::Digest,
        Some(_) => return Err(TokenError::Malformed),
    };
    let nonce = match get(NS_WSSE, "Nonce") {
        Some(n) => {
            let b = base64::engine::general_purpose::STANDARD
                .decode(n.text.as_bytes())
                .map_err(|_| TokenError::Malformed)?;
            if b.is_empty() || b.len() > MAX_NONCE {
                return Err(TokenError::Malformed);
            }
            Some(b)
        }
        None => None,
    };
    Ok(Some(UsernameToken {
        username: username.text.clone(),
        password: password.text.clone(),
        password_type,
        nonce,
        created: get(NS_WSU, "Created").map(|f| f.text.clone()),
    }))
}

/// `Base64(SHA-1(nonce + created + password))` (UsernameToken Profile 1.0 §3.1).
pub fn password_digest(nonce: &[u8], created: &str, password: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Checks PasswordDigest tokens and remembers their nonces.
pub struct DigestVerifier {
    window: Duration,
    capacity: usize,
    /// Nonce → expiry (unix seconds); `order` holds insertion order for expiry sweeps.
    seen: HashMap<Vec<u8>, i64>,
    order: VecDeque<(i64, Vec<u8>)>,
}

impl DigestVerifier {
    /// A verifier accepting Created within `window` of now, remembering up to `capacity` nonces.
    pub fn new(window: Duration, capacity: usize) -> Self {
        DigestVerifier {
            window,
            capacity,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// How many nonces are remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Verifies a PasswordDigest token at `now`. `secret` returns the user's WS-Security
    /// credential (the bytes the client hashes as "password"), or `None` when the user has
    /// none. Returns the user name on success.
    pub fn verify(
        &mut self,
        token: &UsernameToken,
        now: OffsetDateTime,
        secret: impl FnOnce(&str) -> Option<Vec<u8>>,
    ) -> Result<String, TokenError> {
        if token.password_type != PasswordType::Digest {
            return Err(TokenError::Malformed);
        }
        let (Some(nonce), Some(created)) = (&token.nonce, &token.created) else {
            return Err(TokenError::MissingNonceOrCreated);
        };
        let created_at =
            OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
                .map_err(|_| TokenError::Stale)?;
        let window = time::Duration::try_from(self.window).map_err(|_| TokenError::Stale)?;
        if created_at < now - window || created_at > now + window {
            return Err(TokenError::Stale);
        }
        let now_s = now.unix_timestamp();
        self.sweep(now_s);
        if self.seen.contains_key(nonce) {
            return Err(TokenError::Replayed);
        }
        // Compute even for an unknown user so timing does not tell which names exist.
        let known = secret(&token.username);
        let pw = known.as_deref().unwrap_or(b"\0no-such-user\0");
        let expected = password_digest(nonce, created, pw);
        let ok: bool = expected.as_bytes().ct_eq(token.password.as_bytes()).into();
        if !ok || known.is_none() {
            return Err(TokenError::BadCredentials);
        }
        if self.seen.len() >= self.capacity {
            // Only verified tokens are remembered, so only a valid user can fill the cache;
            // refusing (rather than forgetting a live nonce) keeps replay protection sound.
            return Err(TokenError::Busy);
        }
        // A nonce must be remembered until its Created leaves the window.
        let expiry = created_at.unix_timestamp() + self.window.as_secs() as i64 + 1;
        self.seen.insert(nonce.clone(), expiry);
        self.order.push_back((expiry, nonce.clone()));
        Ok(token.username.clone())
    }

    fn sweep(&mut self, now_s: i64) {
        // Expiries are not strictly ordered (Created varies inside the window), so sweep the
        // front while expired and skip entries that were already removed.
        let mut kept = VecDeque::with_capacity(self.order.len());
        while let Some((exp, n)) = self.order.pop_front() {
            if exp < now_s {
                self.seen.remove(&n);
            } else {
                kept.push_back((exp, n));
            }
        }
        self.order = kept;
    }
}
