//! `vigil discover`: the recorder side of WS-Discovery. Sends one Probe for ONVIF devices
//! (`dn:NetworkVideoTransmitter`) to the multicast group 239.255.255.250:3702 (TTL 1: this
//! link only), or unicast with `--to`, and lists what answers until the timeout.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use vigil_onvif::discovery;

/// Options of `vigil discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// Send the Probe to this address only (unicast), instead of the multicast group.
    #[arg(long, value_name = "ADDR:PORT")]
    to: Option<SocketAddr>,
    /// Seconds to wait for answers.
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
}

/// Runs `vigil discover`, printing one line per device:
/// `ENDPOINT<TAB>XADDRS<TAB>SCOPES` (XAddrs and scopes space-separated).
pub fn run(args: DiscoverArgs) -> anyhow::Result<()> {
    if !(0.1..=60.0).contains(&args.timeout) {
        anyhow::bail!("--timeout must be between 0.1 and 60 seconds");
    }
    let dest = args.to.unwrap_or(SocketAddr::V4(SocketAddrV4::new(
        discovery::MULTICAST_V4,
        discovery::PORT,
    )));
    // A loopback destination needs a loopback source; anything else the kernel's choice.
    let bind_ip = if dest.ip().is_loopback() {
        dest.ip()
    } else if dest.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    let socket = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).context("binding a UDP socket")?;
    if dest.ip().is_multicast() {
        socket
            .set_multicast_ttl_v4(1)
            .context("setting the multicast TTL")?;
    }
    let id = message_id();
    socket
        .send_to(discovery::probe(&id).as_bytes(), dest)
        .with_context(|| format!("sending the WS-Discovery Probe to {dest}"))?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let mut found: Vec<discovery::ProbeMatch> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left))?;
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => {
                tracing::debug!(error = %e, "WS-Discovery receive failed");
                continue;
            }
        };
        match discovery::parse_probe_matches(&buf[..n], &id) {
            Ok(matches) => {
                for m in matches {
                    if !found.iter().any(|f| f.endpoint == m.endpoint) {
                        found.push(m);
                    }
                }
            }
            Err(e) => tracing::debug!(%peer, error = %e, "not an answer to our Probe"),
        }
    }
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    for m in &found {
        writeln!(
            out,
            "{}\t{}\t{}",
            m.endpoint.escape_debug(),
            m.xaddrs.join(" ").escape_debug(),
            m.scopes.join(" ").escape_debug()
        )?;
    }
    crate::logging::note(
        crate::logging::Severity::Info,
        &format!("{} ONVIF device(s) answered", found.len()),
    );
    Ok(())
}

/// A fresh `urn:uuid:` for the Probe, from the clock and the process id.
fn message_id() -> String {
    use sha2::Digest as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let h = sha2::Sha256::digest(format!(
        "vigil discover {} {}",
        now.as_nanos(),
        std::process::id()
    ));
    crate::onvif_discovery::uuid_from(&h[..16])
}
