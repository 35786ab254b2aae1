//! ONVIF Profile S, camera side, sans-IO: the device and media services of `vigil camera`.
//!
//! The edge (an HTTP server) hands each POST body to [`Service::handle`] together with who the
//! HTTP layer already authenticated (HTTP Digest, if any), whether the connection is TLS, and
//! the current time; it gets back an HTTP status and a SOAP body. No sockets, no clock.
//!
//! Authentication (ONVIF Core §5.12): a request is authorized by HTTP Digest (checked by the
//! edge against the user store) or by a WS-Security UsernameToken in the SOAP header
//! ([`wsse`]). PasswordDigest is checked against a per-user WS-Security credential
//! ([`Credentials::wsse_secret`]); PasswordText only over TLS, against the argon2 hash.
//! Without either, only the PRE_AUTH operations ([`ops::PRE_AUTH`]) answer; everything else
//! gets `env:Sender/ter:NotAuthorized` (ONVIF Core §5.11.2.1).
//!
//! The recorder's side, an ONVIF client that builds requests and parses answers, is in
//! [`client`].

pub mod client;
pub mod device;
pub mod discovery;
pub mod envelope;
pub mod fault;
pub mod fuzzing;
pub mod ops;
#[doc(hidden)]
pub mod tests_support;
pub mod wsse;
mod xml;

use std::time::Duration;

use time::OffsetDateTime;

pub use device::{DeviceInfo, Interface, Profile};
pub use envelope::{Envelope, Limits, ParseError};
pub use fault::Fault;
pub use xml::escape;

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/onvif/device_service` (namespace [`ops::NS_DEVICE`]).
    Device,
    /// `/onvif/media_service` (namespace [`ops::NS_MEDIA`]).
    Media,
}

/// What the service needs from the user store.
pub trait Credentials {
    /// The user's WS-Security PasswordDigest credential, if they have one.
    fn wsse_secret(&self, user: &str) -> Option<Vec<u8>>;
    /// Checks a clear-text password (PasswordText over TLS) against the argon2 hash.
    fn check_password(&self, user: &str, password: &str) -> bool;
    /// Whether the user is an administrator.
    fn is_admin(&self, user: &str) -> bool;
    /// Every user name and whether it is an administrator (GetUsers).
    fn users(&self) -> Vec<(String, bool)>;
}

/// One request as the edge saw it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The endpoint path.
    pub endpoint: Endpoint,
    /// The POST body.
    pub body: &'a [u8],
    /// The user HTTP Digest authenticated, if any.
    pub http_user: Option<&'a str>,
    /// Whether the connection is TLS (PasswordText is refused otherwise).
    pub tls: bool,
    /// Now.
    pub now: OffsetDateTime,
}

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// SOAP envelope.
    pub body: String,
    /// The operation's local name, when the body parsed.
    pub operation: Option<String>,
    /// The fault, if this is one.
    pub fault: Option<Fault>,
    /// Who was authenticated (for the audit log).
    pub user: Option<String>,
    /// Whether a UsernameToken was presented and refused (counts as a failed login), even
    /// when a PRE_AUTH operation answered anyway.
    pub auth_failed: bool,
    /// Whether the request carried credentials (a UsernameToken, or a user HTTP Digest
    /// authenticated). A `NotAuthorized` fault without them is the first leg of a login: the
    /// edge answers it with HTTP 401 and its Digest challenges (ONVIF Core §5.12.1).
    pub credentials: bool,
}

impl Response {
    fn fault(f: Fault, operation: Option<String>) -> Self {
        Response {
            status: f.http_status(),
            body: f.to_xml(),
            operation,
            fault: Some(f),
            user: None,
            auth_failed: false,
            credentials: false,
        }
    }
}

/// The ONVIF device and media services.
pub struct Service {
    info: DeviceInfo,
    limits: Limits,
    verifier: wsse::DigestVerifier,
}

impl Service {
    /// A service describing `info`, parsing with `limits`. Tokens are accepted within ±5
    /// minutes of now (the usual WS-Security skew) and up to 4096 nonces are remembered.
    pub fn new(info: DeviceInfo, limits: Limits) -> Self {
        Service {
            info,
            limits,
            verifier: wsse::DigestVerifier::new(Duration::from_secs(300), 4096),
        }
    }

    /// What the service reports.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Replaces what the service reports (e.g. the addresses, for the interface a request
    /// arrived on), keeping the replay cache.
    pub fn set_info(&mut self, info: DeviceInfo) {
        self.info = info;
    }

    /// Answers one request.
    pub fn handle(&mut self, req: &Request<'_>, creds: &dyn Credentials) -> Response {
        let env = match envelope::parse(req.body, &self.limits) {
            Ok(env) => env,
            Err(e) => {
                let f = match e {
                    ParseError::TooLarge(_)
                    | ParseError::TooDeep
                    | ParseError::TooManyElements
                    | ParseError::TextTooLong => Fault::OutofMemory,
                    ParseError::VersionMismatch => Fault::VersionMismatch,
                    _ => Fault::WellFormed,
                };
                return Response::fault(f, None);
            }
        };
        let (ns, implemented) = match req.endpoint {
            Endpoint::Device => (ops::NS_DEVICE, ops::DEVICE_OPS),
            Endpoint::Media => (ops::NS_MEDIA, ops::MEDIA_OPS),
        };
        let op = env.operation.local.clone();
        let known = env.operation.ns == ns && implemented.contains(&op.as_str());

        // Authentication comes before "not supported" so an unauthenticated peer cannot
        // enumerate what is implemented.
        let mut auth_failed = false;
        let token = wsse::extract(&env);
        let credentials = !matches!(token, Ok(None)) || req.http_user.is_some();
        let user = match token {
            Ok(Some(token)) => match self.check_token(&token, req, creds) {
                Ok(u) => Some(u),
                Err(_) => {
                    auth_failed = true;
                    None
                }
            },
            Ok(None) => req.http_user.map(str::to_owned),
            Err(_) => {
                auth_failed = true;
                None
            }
        };
        let pre_auth = known && ops::PRE_AUTH.contains(&op.as_str());
        if user.is_none() && !pre_auth {
            let mut r = Response::fault(Fault::NotAuthorized, Some(op));
            r.auth_failed = auth_failed;
            r.credentials = credentials;
            return r;
        }
        if !known {
            let mut r = Response::fault(Fault::ActionNotSupported, Some(op));
            r.credentials = credentials;
            return r;
        }
        if ops::ADMIN_ONLY.contains(&op.as_str())
            && !user.as_deref().is_some_and(|u| creds.is_admin(u))
        {
            let mut r = Response::fault(Fault::NotAuthorized, Some(op));
            r.credentials = credentials;
            return r;
        }
        let result = match req.endpoint {
            Endpoint::Device => {
                let users = if op == "GetUsers" {
                    creds.users()
                } else {
                    Vec::new()
                };
                ops::device(&op, &env, &self.info, req.now, &users)
            }
            Endpoint::Media => ops::media(&op, &env, &self.info),
        };
        match result {
            Ok(body) => Response {
                status: 200,
                body: xml::envelope(&body),
                operation: Some(op),
                fault: None,
                user,
                auth_failed,
                credentials,
            },
            Err(f) => {
                let mut r = Response::fault(f, Some(op));
                r.user = user;
                r.auth_failed = auth_failed;
                r.credentials = credentials;
                r
            }
        }
    }

    fn check_token(
        &mut self,
        token: &wsse::UsernameToken,
        req: &Request<'_>,
        creds: &dyn Credentials,
    ) -> Result<String, wsse::TokenError> {
        match token.password_type {
            wsse::PasswordType::Digest => self
                .verifier
                .verify(token, req.now, |u| creds.wsse_secret(u)),
            // UsernameToken Profile §3.1 leaves PasswordText to transport security: the
            // password would cross the network in clear otherwise.
            wsse::PasswordType::Text if req.tls => {
                if creds.check_password(&token.username, &token.password) {
                    Ok(token.username.clone())
                } else {
                    Err(wsse::TokenError::BadCredentials)
                }
            }
            wsse::PasswordType::Text => Err(wsse::TokenError::BadCredentials),
        }
    }
}

#[cfg(test)]
mod tests;
