//! The camera's WS-Discovery responder (UDP, port 3702, group 239.255.255.250): the socket at
//! the edge of the sans-IO [`vigil_onvif::discovery`].
//!
//! Answers matching Probes (multicast and unicast) with a ProbeMatches sent unicast to the
//! prober, multicasts Hello at start and Bye at stop (TTL 1: never off-link). A reply is
//! larger than a Probe, so only Probes whose types and scopes match ours are answered, and
//! replies are rate-limited per source address and in all.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use vigil_onvif::discovery::{self, AppSequence, Target};

use crate::onvif_http::Template;

/// Replies per source address per second.
const PER_SOURCE_PER_SECOND: u32 = 4;
/// Replies in all per second.
const TOTAL_PER_SECOND: u32 = 64;
/// SOAP-over-UDP §3.2 (APP_MAX_DELAY): a reply to a Probe that may have been multicast waits
/// a random time up to this, so that every device on the link does not answer at once.
const APP_MAX_DELAY: Duration = Duration::from_millis(500);

/// A stable endpoint reference for this camera instance (WS-Discovery §2.6: the same across
/// restarts): a UUID from SHA-256 of the machine id and the data directory, so two cameras on
/// one machine differ.
pub fn endpoint_uuid(data: &Path) -> String {
    use sha2::Digest as _;
    let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let h = sha2::Sha256::digest(format!(
        "vigil ws-discovery endpoint\n{}\n{}",
        id.trim(),
        data.display()
    ));
    uuid_from(&h[..16])
}

/// Formats 16 bytes as a version 4 style UUID URN.
pub(crate) fn uuid_from(b: &[u8]) -> String {
    let mut b = <[u8; 16]>::try_from(b).unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Binds the discovery socket: address reuse (other ONVIF software on the host may listen
/// too), and on a wildcard IPv4 address the multicast group joined with TTL 1.
pub fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let what = || format!("cannot listen for WS-Discovery on {addr}");
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .with_context(what)?;
    s.set_reuse_address(true).with_context(what)?;
    s.bind(&addr.into()).with_context(what)?;
    if addr.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
        s.join_multicast_v4(&discovery::MULTICAST_V4, &Ipv4Addr::UNSPECIFIED)
            .with_context(|| format!("joining {} for WS-Discovery", discovery::MULTICAST_V4))?;
        s.set_multicast_ttl_v4(1).with_context(what)?;
        s.set_multicast_loop_v4(true).with_context(what)?;
    }
    s.set_nonblocking(true).with_context(what)?;
    UdpSocket::from_std(s.into()).with_context(what)
}

/// Counts replies per second, per source and in all.
struct Limiter {
    window: Instant,
    total: u32,
    per_source: HashMap<IpAddr, u32>,
}

impl Limiter {
    fn allow(&mut self, peer: IpAddr, now: Instant) -> bool {
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.total = 0;
            self.per_source.clear();
        }
        let n = self.per_source.entry(peer).or_insert(0);
        if *n >= PER_SOURCE_PER_SECOND || self.total >= TOTAL_PER_SECOND {
            return false;
        }
        *n += 1;
        self.total += 1;
        true
    }
}

/// The local address the kernel would use to reach `peer` (no packet is sent): the XAddr host
/// a prober on that network can reach.
fn local_ip_towards(bound: IpAddr, peer: SocketAddr) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    std::net::UdpSocket::bind(SocketAddr::new(bound, 0))
        .and_then(|s| {
            s.connect(peer)?;
            s.local_addr()
        })
        .map_or(bound, |a| a.ip())
}

struct Responder {
    socket: std::sync::Arc<UdpSocket>,
    template: Template,
    endpoint: String,
    instance: u64,
    sent: u64,
}

impl Responder {
    fn target(&self, ip: IpAddr) -> Target {
        Target {
            endpoint: self.endpoint.clone(),
            scopes: self.template.scopes(),
            xaddrs: vec![self.template.device_xaddr(ip)],
            metadata_version: 1,
        }
    }

    /// The next AppSequence and a fresh MessageID.
    fn next(&mut self) -> (AppSequence, String) {
        use sha2::Digest as _;
        self.sent += 1;
        let h = sha2::Sha256::digest(format!("{} {} {}", self.endpoint, self.instance, self.sent));
        (
            AppSequence {
                instance_id: self.instance,
                message_number: self.sent,
            },
            uuid_from(&h[..16]),
        )
    }

    /// Hello or Bye to the multicast group, unless bound to loopback (nothing to announce to).
    async fn announce(&mut self, bye: bool) {
        let Ok(local) = self.socket.local_addr() else {
            return;
        };
        if local.ip().is_loopback() || !local.is_ipv4() {
            return;
        }
        let group = SocketAddr::V4(SocketAddrV4::new(discovery::MULTICAST_V4, discovery::PORT));
        let ip = local_ip_towards(local.ip(), group);
        let t = self.target(ip);
        let (seq, id) = self.next();
        let msg = if bye {
            discovery::bye(&t, &id, seq)
        } else {
            discovery::hello(&t, &id, seq)
        };
        match self.socket.send_to(msg.as_bytes(), group).await {
            Ok(_) => tracing::debug!(bye, "WS-Discovery announcement sent"),
            Err(e) => tracing::info!(error = %e, bye, "WS-Discovery announcement not sent"),
        }
    }
}

/// Answers Probes on `socket` until `shutdown` turns true; Hello first, Bye last.
pub async fn serve(
    socket: UdpSocket,
    template: Template,
    endpoint: String,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let bound = socket.local_addr()?.ip();
    let instance = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let mut r = Responder {
        socket: std::sync::Arc::new(socket),
        template,
        endpoint,
        instance,
        sent: 0,
    };
    r.announce(false).await;
    let mut limiter = Limiter {
        window: Instant::now(),
        total: 0,
        per_source: HashMap::new(),
    };
    let mut buf = vec![0u8; 9 * 1024];
    loop {
        let (n, peer) = tokio::select! {
            _ = async { shutdown.wait_for(|v| *v).await.map(|_| ()) } => break,
            x = r.socket.recv_from(&mut buf) => match x {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on Linux: not fatal.
                    tracing::debug!(error = %e, "WS-Discovery receive failed");
                    continue;
                }
            },
        };
        let probe = match discovery::parse_probe(&buf[..n]) {
            Ok(p) => p,
            Err(e) => {
                tracing::trace!(%peer, error = %e, "WS-Discovery datagram ignored");
                continue;
            }
        };
        let scopes = r.template.scopes();
        if !probe.matches(&scopes) || !limiter.allow(peer.ip(), Instant::now()) {
            continue;
        }
        let t = r.target(local_ip_towards(bound, peer));
        let (seq, id) = r.next();
        let reply = discovery::probe_matches(&t, &probe, &id, seq);
        // The socket does not tell whether the Probe came to the group or to us: on a socket
        // that joined the group (wildcard bind) every reply waits, off the receive loop. The
        // limiter bounds these tasks (at most TOTAL_PER_SECOND × APP_MAX_DELAY in flight).
        let delay = if bound.is_unspecified() {
            // Jitter, not a secret: the message id is a fresh hash per reply.
            let n = id
                .get(9..13)
                .and_then(|h| u16::from_str_radix(h, 16).ok())
                .unwrap_or(0);
            APP_MAX_DELAY.mul_f64(f64::from(n) / f64::from(u16::MAX))
        } else {
            Duration::ZERO
        };
        let socket = r.socket.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(e) = socket.send_to(reply.as_bytes(), peer).await {
                tracing::debug!(%peer, error = %e, "WS-Discovery reply not sent");
            } else {
                tracing::debug!(%peer, delay_ms = delay.as_millis() as u64, "WS-Discovery ProbeMatches sent");
            }
        });
    }
    r.announce(true).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_caps_per_source_and_resets_each_second() {
        let t0 = Instant::now();
        let mut l = Limiter {
            window: t0,
            total: 0,
            per_source: HashMap::new(),
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..PER_SOURCE_PER_SECOND {
            assert!(l.allow(a, t0));
        }
        assert!(!l.allow(a, t0));
        assert!(l.allow(b, t0));
        assert!(l.allow(a, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn endpoint_is_a_uuid_urn_stable_per_data_dir() {
        let a = endpoint_uuid(Path::new("/var/lib/vigil/camera-front"));
        assert_eq!(a, endpoint_uuid(Path::new("/var/lib/vigil/camera-front")));
        assert_ne!(a, endpoint_uuid(Path::new("/var/lib/vigil/camera-back")));
        assert_eq!(a.len(), "urn:uuid:".len() + 36);
        assert_eq!(&a[9 + 14..9 + 15], "4");
    }
}
