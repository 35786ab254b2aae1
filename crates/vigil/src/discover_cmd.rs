//! `vigil discover`: the recorder side of WS-Discovery. Sends one Probe for ONVIF devices
//! (`dn:NetworkVideoTransmitter`) to the multicast group 239.255.255.250:3702 (TTL 1: this
//! link only), or unicast with `--to`, and lists what answers until the timeout.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

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
    // The web app's "Discover" and this command send the same Probe and read the answers the
    // same way: one implementation, `vigil_web::onvif_edge::probe`.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let found = rt
        .block_on(vigil_web::onvif_edge::probe(
            args.to,
            Duration::from_secs_f64(args.timeout),
        ))
        .context("sending the WS-Discovery Probe")?;
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    for (m, _) in &found {
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
