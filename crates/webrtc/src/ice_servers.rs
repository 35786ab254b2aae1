//! STUN and TURN servers handed to WHEP clients (RFC 9725 §4.6: `Link: <turn:…>;
//! rel="ice-server"` headers on the 201), with time-limited TURN credentials made from a
//! shared secret, the "TURN REST API" scheme coturn implements (`use-auth-secret`,
//! `static-auth-secret`): username `<expiry unix time>:<user>`, password
//! `base64(HMAC-SHA1(secret, username))`. The recorder never talks to the TURN server; the
//! client relays through it to the recorder's host candidate.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// How long a TURN credential made from a shared secret is valid. A TURN allocation is
/// refreshed with the same credential, so a viewer watching longer than this loses the
/// relay and reconnects with a fresh offer.
pub const TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why an ICE server entry is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IceServerError {
    /// A URL that is not `stun:`, `stuns:`, `turn:` or `turns:`.
    #[error("ice server URL {0:?} must start with stun:, stuns:, turn: or turns:")]
    Scheme(String),
    /// A character that would break the `Link` header (`<`, `>`, `"`, `,`, `;`, space or a
    /// control character), in the URL or the credential.
    #[error("ice server {0:?} holds a character not allowed in a Link header")]
    Character(String),
    /// `secret` together with a fixed `username`/`credential`, or one of those without the other.
    #[error("an ice server takes either secret or username + credential (or none, for STUN)")]
    Credentials,
    /// No URL.
    #[error("an ice server needs at least one URL")]
    NoUrl,
}

/// How a client authenticates to a TURN server.
#[derive(Clone, PartialEq, Eq)]
pub enum TurnAuth {
    /// None (STUN servers).
    None,
    /// A fixed username and password, given to every viewer as is.
    Fixed {
        /// TURN username.
        username: String,
        /// TURN password.
        credential: String,
    },
    /// coturn's `static-auth-secret`: each answer carries a credential valid
    /// [`TURN_CREDENTIAL_TTL`], made for the viewer's user name.
    SharedSecret(String),
}

/// One STUN or TURN server as offered to clients.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp|tcp`, `turns:host:port`.
    pub urls: Vec<String>,
    /// How clients authenticate.
    pub auth: TurnAuth,
}

impl fmt::Debug for IceServer {
    /// Never shows a password or the shared secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            TurnAuth::None => "none",
            TurnAuth::Fixed { .. } => "fixed (redacted)",
            TurnAuth::SharedSecret(_) => "shared secret (redacted)",
        };
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("auth", &auth)
            .finish()
    }
}

fn link_safe(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';' | ' ' | '\\'))
}

impl IceServer {
    /// Checks and builds an entry from the configuration's fields.
    pub fn new(
        urls: Vec<String>,
        username: Option<String>,
        credential: Option<String>,
        secret: Option<String>,
    ) -> Result<IceServer, IceServerError> {
        if urls.is_empty() {
            return Err(IceServerError::NoUrl);
        }
        for u in &urls {
            if !["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|s| u.starts_with(s))
            {
                return Err(IceServerError::Scheme(u.clone()));
            }
            if !link_safe(u) {
                return Err(IceServerError::Character(u.clone()));
            }
        }
        let auth = match (username, credential, secret) {
            (None, None, None) => TurnAuth::None,
            (Some(username), Some(credential), None) => {
                for s in [&username, &credential] {
                    if !link_safe(s) {
                        return Err(IceServerError::Character("username/credential".into()));
                    }
                }
                TurnAuth::Fixed {
                    username,
                    credential,
                }
            }
            (None, None, Some(secret)) if !secret.is_empty() => TurnAuth::SharedSecret(secret),
            _ => return Err(IceServerError::Credentials),
        };
        Ok(IceServer { urls, auth })
    }

    /// The `Link` header values (one per URL) for a viewer logged in as `user` at `now`.
    pub fn link_headers(&self, user: &str, now: SystemTime) -> Vec<String> {
        let creds = match &self.auth {
            TurnAuth::None => None,
            TurnAuth::Fixed {
                username,
                credential,
            } => Some((username.clone(), credential.clone())),
            TurnAuth::SharedSecret(secret) => Some(turn_rest_credential(secret, user, now)),
        };
        self.urls
            .iter()
            .map(|u| {
                let mut h = format!("<{u}>; rel=\"ice-server\"");
                // Credentials only mean something to TURN; a STUN URL in the same entry
                // gets none.
                if let (Some((name, pass)), true) = (&creds, u.starts_with("turn")) {
                    h.push_str(&format!(
                        "; username=\"{name}\"; credential=\"{pass}\"; credential-type=\"password\""
                    ));
                }
                h
            })
            .collect()
    }
}

/// A TURN REST API credential (coturn `use-auth-secret`): username `<expiry>:<user>`,
/// password `base64(HMAC-SHA1(secret, username))`. Characters of `user` that would break
/// the username's form or a Link header are replaced by `_`.
pub fn turn_rest_credential(secret: &str, user: &str, now: SystemTime) -> (String, String) {
    let expiry = now
        .checked_add(TURN_CREDENTIAL_TTL)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let user: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let username = format!("{expiry}:{user}");
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_rest_credential_matches_coturn() {
        // Computed with Python: base64(hmac.new(b"north", b"1700086400:alice", sha1)).
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (u, p) = turn_rest_credential("north", "alice", now);
        assert_eq!(u, "1700086400:alice");
        assert_eq!(p, "SXua5ne/+mDhiHTp0pQJzRO4ESg=");
        let (u, _) = turn_rest_credential("north", "a:b \"c\"", now);
        assert_eq!(u, "1700086400:a_b__c_");
    }

    #[test]
    fn entries_are_checked_and_secrets_never_debug_printed() {
        let stun =
            IceServer::new(vec!["stun:stun.example.net".into()], None, None, None).expect("stun");
        assert_eq!(
            stun.link_headers("u", SystemTime::now()),
            ["<stun:stun.example.net>; rel=\"ice-server\""]
        );
        let turn = IceServer::new(
            vec![
                "turn:turn.example.net:3478?transport=udp".into(),
                "stun:turn.example.net".into(),
            ],
            None,
            None,
            Some("s3cret".into()),
        )
        .expect("turn");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = turn.link_headers("alice", now);
        assert!(
            h[0].starts_with("<turn:turn.example.net:3478?transport=udp>; rel=\"ice-server\"; username=\"1700086400:alice\"; credential=\""),
            "{h:?}"
        );
        assert!(!h[1].contains("credential"), "{h:?}");
        assert!(!format!("{turn:?}").contains("s3cret"));
        assert_eq!(
            IceServer::new(vec!["http://x".into()], None, None, None),
            Err(IceServerError::Scheme("http://x".into()))
        );
        assert!(matches!(
            IceServer::new(vec!["turn:x>; rel=evil".into()], None, None, None),
            Err(IceServerError::Character(_))
        ));
        assert_eq!(
            IceServer::new(vec!["turn:x".into()], Some("u".into()), None, None),
            Err(IceServerError::Credentials)
        );
        assert_eq!(
            IceServer::new(Vec::new(), None, None, None),
            Err(IceServerError::NoUrl)
        );
    }
}
