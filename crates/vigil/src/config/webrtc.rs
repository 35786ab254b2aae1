//! `[webrtc]`: WebRTC live view (WHEP), see docs/webrtc.md.
//!
//! On by default: its one UDP port (8189) is opened only while an authenticated viewer
//! watches over WebRTC, and closed when the last one leaves. `enabled = false` answers every
//! WHEP offer 501 and never opens a port.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use vigil_web::whep::{EdgeConfig, IceServer, WhepConfig, ICE_TIMEOUT};

/// The default UDP port: the one other WebRTC servers (MediaMTX) use for the same purpose,
/// so firewall guides match.
pub const DEFAULT_UDP_PORT: u16 = 8189;

/// The default bound on concurrent WebRTC viewers.
pub const DEFAULT_MAX_SESSIONS: usize = 32;

/// The largest `max_sessions` accepted (each session costs send buffers and a task).
pub const MAX_MAX_SESSIONS: usize = 1024;

/// `[webrtc]` as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebrtcSection {
    /// Whether WHEP answers at all (default true).
    pub enabled: Option<bool>,
    /// The UDP port of all media (default 8189; 0: an ephemeral port each time it opens).
    pub udp_port: Option<u16>,
    /// Concurrent WebRTC viewers at most (default 32); more get 503.
    pub max_sessions: Option<usize>,
    /// Extra host candidates (e.g. the public address a router forwards `udp_port` from).
    #[serde(default)]
    pub host_addresses: Vec<String>,
    /// STUN and TURN servers handed to viewers.
    #[serde(default)]
    pub ice_servers: Vec<IceServerSection>,
}

/// One `[[webrtc.ice_servers]]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IceServerSection {
    /// `stun:`, `turn:` or `turns:` URLs of one server.
    pub urls: Vec<String>,
    /// A fixed TURN username (with `credential`).
    pub username: Option<String>,
    /// A fixed TURN password (with `username`).
    pub credential: Option<String>,
    /// coturn's `static-auth-secret`: each viewer gets a credential valid 24 hours.
    pub secret: Option<String>,
}

impl std::fmt::Debug for IceServerSection {
    /// Never shows the password or the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServerSection")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "(redacted)"),
            )
            .field("secret", &self.secret.as_ref().map(|_| "(redacted)"))
            .finish()
    }
}

/// `[webrtc]` checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebrtcSettings {
    /// UDP port (0: ephemeral).
    pub udp_port: u16,
    /// Concurrent sessions at most.
    pub max_sessions: usize,
    /// Extra host candidates.
    pub host_addresses: Vec<IpAddr>,
    /// STUN and TURN servers.
    pub ice_servers: Vec<IceServer>,
    /// How long a session may take to connect ICE.
    pub ice_timeout: Duration,
}

impl WebrtcSettings {
    /// The demo's: an ephemeral port, the default limits.
    pub fn demo() -> Self {
        WebrtcSettings {
            udp_port: 0,
            max_sessions: DEFAULT_MAX_SESSIONS,
            host_addresses: Vec::new(),
            ice_servers: Vec::new(),
            ice_timeout: ICE_TIMEOUT,
        }
    }

    /// The web app's WHEP configuration; the UDP socket binds to the web app's address
    /// (`web_ip`: loopback stays loopback, the wildcard stays the wildcard).
    pub fn whep_config(&self, web_ip: IpAddr) -> WhepConfig {
        WhepConfig {
            edge: EdgeConfig {
                bind: web_ip,
                udp_port: self.udp_port,
                max_sessions: self.max_sessions,
                ice_timeout: self.ice_timeout,
            },
            host_addresses: self.host_addresses.clone(),
            ice_servers: self.ice_servers.clone(),
        }
    }
}

/// `[webrtc]` checked; `None` when `enabled = false`.
pub fn webrtc_settings(w: &WebrtcSection) -> Result<Option<WebrtcSettings>, String> {
    if w.enabled == Some(false) {
        return Ok(None);
    }
    let max_sessions = w.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
    if !(1..=MAX_MAX_SESSIONS).contains(&max_sessions) {
        return Err(format!(
            "webrtc.max_sessions must be 1 to {MAX_MAX_SESSIONS}, got {max_sessions}"
        ));
    }
    let host_addresses = w
        .host_addresses
        .iter()
        .map(|a| {
            a.trim()
                .parse::<IpAddr>()
                .ok()
                .filter(|ip| !ip.is_unspecified())
                .ok_or_else(|| {
                    format!("webrtc.host_addresses: {a:?} is not an IP address of this host")
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ice_servers = w
        .ice_servers
        .iter()
        .map(|s| {
            IceServer::new(
                s.urls.clone(),
                s.username.clone(),
                s.credential.clone(),
                s.secret.clone(),
            )
            .map_err(|e| format!("webrtc.ice_servers: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(WebrtcSettings {
        udp_port: w.udp_port.unwrap_or(DEFAULT_UDP_PORT),
        max_sessions,
        host_addresses,
        ice_servers,
        ice_timeout: ICE_TIMEOUT,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(
            &format!("data_dir = \"d\"\n{text}"),
            Path::new("/etc/vigil/v.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn webrtc_defaults_are_on_port_8189_with_32_sessions() {
        let w = parse("").unwrap().webrtc.unwrap();
        assert_eq!((w.udp_port, w.max_sessions), (8189, 32));
        assert!(w.host_addresses.is_empty() && w.ice_servers.is_empty());
        let e = w.whep_config("127.0.0.1".parse().unwrap()).edge;
        assert_eq!(e.bind, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert!(parse("[webrtc]\nenabled = false\n")
            .unwrap()
            .webrtc
            .is_none());
    }

    #[test]
    fn webrtc_section_is_checked_and_secrets_make_the_file_private() {
        let c = parse(
            "[webrtc]\nudp_port = 0\nmax_sessions = 4\nhost_addresses = [\"203.0.113.7\"]\n\
             [[webrtc.ice_servers]]\nurls = [\"stun:stun.example.net:3478\"]\n\
             [[webrtc.ice_servers]]\nurls = [\"turn:turn.example.net:3478?transport=udp\"]\n\
             secret = \"north wind\"\n",
        )
        .unwrap();
        let w = c.webrtc.as_ref().unwrap();
        assert_eq!((w.udp_port, w.max_sessions), (0, 4));
        assert_eq!(w.host_addresses, ["203.0.113.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(w.ice_servers.len(), 2);
        assert!(c.has_secrets);
        assert!(!format!("{c:?}").contains("north wind"));
        for (bad, says) in [
            ("max_sessions = 0", "max_sessions"),
            ("max_sessions = 100000", "max_sessions"),
            ("host_addresses = [\"nvr.local\"]", "host_addresses"),
            ("host_addresses = [\"0.0.0.0\"]", "host_addresses"),
            ("udp_port = 70000", "udp_port"),
            ("ports = 1", "ports"),
            (
                "[[webrtc.ice_servers]]\nurls = [\"http://x\"]",
                "stun:, stuns:, turn: or turns:",
            ),
            (
                "[[webrtc.ice_servers]]\nurls = [\"turn:x\"]\nusername = \"u\"",
                "either secret or username",
            ),
        ] {
            let e = parse(&format!("[webrtc]\n{bad}\n")).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
