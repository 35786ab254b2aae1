//! RTSP 1.0 server for Vigil (RFC 2326, with RFC 7826 where it is clearer).
//!
//! # Shape
//!
//! The protocol is sans-IO, in the style of str0m: nothing in [`message`], [`transport`],
//! [`session`] or [`media`] touches a socket or a clock. [`session::ConnState`] answers
//! requests; [`media::MediaCore`] decides what each session sends.
//!
//! ```text
//! loop {
//!     bytes from the socket ──► buf
//!     while let Parsed::Request(req, n) | Parsed::Interleaved{..} = message::parse(&buf, &limits)? {
//!         reply = conn_state.handle(&req, &mut env)      // env: auth, hub params, UDP bind, clock
//!         sleep(reply.delay); write(reply.response)
//!         media.handle_input(Play / Pause / Teardown from reply.effect, or Rtcp from a frame)
//!         buf.drain(..n)
//!     }
//!     access unit from a playing session's hub ──► media.handle_input(AccessUnit)
//!     deadline reached ──► media.handle_input(Timeout(now))             // sender reports due
//!     after each input: media.poll_output() until Output::Timeout(deadline), doing each
//!         Transmit (interleaved or UDP), Subscribe / Unsubscribe (hub forwarder), Ended
//!     conn_state.expire(now) tears down idle sessions
//! }
//! ```
//!
//! The tokio edge ([`RtspServer::serve`]) runs one task per connection doing exactly that,
//! plus one small forwarding task per playing session that moves access units from its hub
//! subscriber into a bounded channel: a slow client makes its subscriber lag (the hub then
//! skips it to the next key frame) and, past the write timeout, is dropped. Nothing a
//! client does can stall another client or grow memory without bound.
//!
//! # Use
//!
//! ```no_run
//! # async fn demo(hub: vigil_hub::Hub, auth: std::sync::Arc<vigil_auth::Authenticator>) -> std::io::Result<()> {
//! use std::collections::HashMap;
//! let mounts = HashMap::from([("main".to_owned(), hub)]); // rtsp://host:port/main
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8554").await?;
//! let (stop, stop_rx) = tokio::sync::watch::channel(false); // stop.send(true) to shut down
//! vigil_rtsp::RtspServer::new(mounts, auth) // + .with_tls(rustls config) for RTSPS
//!     .with_options(vigil_rtsp::ServerOptions::default())
//!     .serve(listener, stop_rx)
//!     .await
//! # }
//! ```
//!
//! URLs: `rtsp://any-host:port/<mount>` (aggregate) and `.../<mount>/trackID=0` (the video
//! track, `a=control:trackID=0` in the SDP). Transports: `RTP/AVP/TCP;interleaved` and
//! `RTP/AVP[/UDP];client_port` unicast; multicast and RECORD get 461.
//!
//! Sessions belong to the connection that created them (every client in practice keeps
//! its RTSP connection open while playing); closing the connection ends them. A session
//! with no request and, over UDP, no RTCP for 60 s ends; a playing TCP-interleaved session
//! lives as long as its connection.
//!
//! # Security
//!
//! Every method but OPTIONS is authenticated on every request through [`RtspAuth`]
//! (a session id alone grants nothing, and one from another connection is unknown here:
//! 454). Each connection has a random id (the `connection` of [`RtspAuth::check`]) to which the real
//! authenticator binds its Digest nonces, so an `Authorization` header captured on one
//! connection is refused on any other. Failed logins are answered after the delay the
//! authenticator asks for, on that connection only. Media only ever goes to the address
//! the request came from (`destination=` is ignored), and plain UDP media is refused on
//! RTSPS connections (461), since it would leak a TLS-protected stream.

use std::collections::HashMap;
use std::time::Duration;

pub mod media;
pub mod message;
pub mod session;
pub mod transport;

mod conn;
mod server;
mod udp;

#[doc(hidden)]
pub mod fuzzing;

pub use message::{Limits, Method};
pub use server::RtspServer;
pub use vigil_auth::{AuthDecision, AuthRequest};

/// RTP payload type of our H.264 stream (dynamic range, RFC 3551 §6).
pub const PAYLOAD_TYPE: u8 = 96;

/// Credential checking, implemented by the real authenticator (`vigil_auth`) and by tests.
///
/// The request and the decision are `vigil_auth`'s own types, so the RTSP server and the
/// authenticator cannot drift apart.
pub trait RtspAuth: Send + Sync {
    /// Checks one request that arrived on the RTSP connection with the random id
    /// `connection`: the real authenticator binds its Digest nonces to it, so an
    /// `Authorization` captured on one connection is refused on another.
    fn check(&self, request: &AuthRequest<'_>, connection: u64) -> AuthDecision;
}

/// Tunables of [`RtspServer`].
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Most simultaneous connections; further ones are closed at once.
    pub max_connections: usize,
    /// Most simultaneous connections from one address (IPv4, or IPv6 /64), so that one
    /// address cannot take every slot; clamped to `1..=max_connections`.
    pub max_connections_per_address: usize,
    /// A connection that has not completed a request within this time is closed, so
    /// half-open connections hold a slot only briefly (over RTSPS the TLS handshake gets
    /// the same time before that).
    pub first_request_timeout: Duration,
    /// A connection with no session and no request for this long is closed.
    pub idle_timeout: Duration,
    /// A client whose socket accepts no data for this long is dropped.
    pub write_timeout: Duration,
    /// Parser size limits.
    pub limits: Limits,
    /// Largest RTP payload per packet.
    pub max_payload: usize,
    /// Interval between RTCP sender reports.
    pub rtcp_interval: Duration,
    /// How long DESCRIBE waits for a stream that has not produced parameters yet.
    pub params_wait: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 512,
            // One NVR or restreamer may pull a stream many times (the fan-out bench runs 100
            // clients from loopback); a quarter of the total leaves the rest to others.
            max_connections_per_address: 128,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(5),
            limits: Limits::default(),
            max_payload: 1400,
            rtcp_interval: Duration::from_secs(5),
            params_wait: Duration::from_secs(5),
        }
    }
}

/// Mount table: path segment (`main`, `sub`) to the stream's hub.
pub type Mounts = HashMap<String, vigil_hub::Hub>;

/// The real authenticator: Digest (SHA-256, and MD5 unless its policy is `sha256`) with
/// nonces bound to the connection, Basic only over TLS, with its login throttle.
impl RtspAuth for vigil_auth::Authenticator {
    fn check(&self, request: &AuthRequest<'_>, connection: u64) -> AuthDecision {
        // Nonces bound to the connection: a captured header replayed elsewhere is stale.
        self.check_on_connection(request, connection)
    }
}
