//! WebRTC live view (issue 14): a browser or any WHEP client (RFC 9725) receives a camera
//! stream's H.264 passed through untouched.
//!
//! The protocol part is sans-IO, like str0m under it: [`check_offer`] and [`check_stream`] decide
//! whether a WHEP request can be served, and a [`Session`] holds one viewer's `Rtc` and
//! [`Gate`]. The loop an edge runs per session:
//!
//! 1. `Session::accept(offer, params, host_candidates, now)` → the answer SDP for the 201.
//! 2. Each datagram on the shared UDP socket goes to the session whose
//!    [`Session::accepts`] returns true, via [`Session::handle_input`].
//! 3. [`Session::poll`] until [`Poll::Wait`]: send each [`Poll::Transmit`]; on
//!    [`Poll::Connected`] subscribe to the hub (the subscriber starts on the current key
//!    frame and skips to the next one when the viewer lags); on [`Poll::Closed`] drop it.
//! 4. Each access unit from the hub goes to [`Session::write`], each audio frame (if
//!    [`Session::has_audio`]) to [`Session::write_audio`], in the hub's order; then poll again.
//!
//! [`Edge`] is that loop on tokio: one shared UDP socket, open only while a session exists,
//! and a bound on sessions; with STUN servers it also learns the socket's public address
//! ([`stun`]) and offers it as a server-reflexive candidate, so that a viewer's TURN relay
//! reaches a recorder behind a NAT. G.711 audio from the hub passes through too
//! ([`audio`], [`Session::write_audio`]); AAC is not transcoded. Not here yet: ICE-TCP.
//! See `docs/webrtc.md`.

pub mod audio;
mod check;
mod edge;
mod gate;
mod ice_servers;
mod session;
pub mod stun;

pub use check::{check_offer, check_stream, Declined, OfferError, MAX_OFFER_BYTES};
pub use edge::{Edge, EdgeConfig, EdgeError, SessionId};
pub use gate::Gate;
pub use ice_servers::{
    turn_rest_credential, IceServer, IceServerError, TurnAuth, TURN_CREDENTIAL_TTL,
};
pub use session::{Poll, Session, SessionError, ICE_TIMEOUT};
pub use str0m::change::{SdpAnswer, SdpOffer};
pub use str0m::net::{Protocol, Receive, Transmit};
pub use str0m::Input;

/// Installs the DTLS/SRTP crypto backend chosen by str0m's features (OpenSSL) as the
/// process default; idempotent.
fn install_crypto() {
    str0m::crypto::from_feature_flags().install_process_default();
}
