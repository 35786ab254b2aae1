//! The web app's HTTPS listener, served through the shared [`edge`] (TLS 1.2+, connection
//! caps, handshake/head/body deadlines), graceful shutdown; and the machine-readable stdout
//! lines of the contract.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use vigil_nvr::Nvr;

use crate::edge::{self, Edge, Limits};

use crate::state::{AppState, StatusProvider};
use crate::tls;

/// Largest request head (request line + headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A client must send a whole request head within this time (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once by default; beyond, new ones are closed at accept. `vigil`
/// lowers it (and the per-address cap) to fit the descriptor limit in force.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections from one address at once (a browser opens ~6, plus one WebSocket per camera
/// and tab; benchmarks run 50+ viewers from loopback).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// Time in-flight requests get after shutdown is requested.
const GRACE: Duration = Duration::from_secs(5);

/// What the web app needs to run.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// Address to listen on (HTTPS).
    pub listen: SocketAddr,
    /// The operator's certificate chain (PEM); with `key`. Default: self-signed in `<data>/tls/`.
    pub cert: Option<PathBuf>,
    /// The operator's private key (PEM).
    pub key: Option<PathBuf>,
    /// Data directory: users.json, web.sqlite3, tls/.
    pub data_dir: PathBuf,
    /// Connection caps and deadlines of the HTTPS edge.
    pub limits: Limits,
    /// Cloud-only footage to show and play (None: the timeline shows the disk's).
    pub cloud: Option<Arc<vigil_cloud::playback::CloudPlayback>>,
    /// Where offsite share links go (the cloud tier's bucket); None: no offsite shares.
    pub offsite: Option<Arc<vigil_cloud::share::OffsitePublisher>>,
    /// WebRTC live view (`[webrtc]`); None: off, and no UDP port is ever opened.
    pub webrtc: Option<crate::whep::WhepConfig>,
    /// `[web] public_url`: the origin browsers use (passkeys belong to it). None:
    /// `https://localhost:PORT` when listening on loopback or every interface.
    pub public_url: Option<String>,
}

/// A running web app.
#[derive(Debug)]
pub struct WebHandle {
    edge: Edge,
    /// Renews the setup link while no user exists (see [`start`]).
    setup_task: Option<tokio::task::JoinHandle<()>>,
    /// Tells long-lived answers that the server is going away.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl WebHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.edge.local_addr()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.edge.open_connections()
    }

    /// Stops accepting, gives open requests a few seconds, and waits for the server to end.
    pub async fn shutdown(self) {
        if let Some(t) = &self.setup_task {
            t.abort();
        }
        // Upgraded connections (WebSockets) are not part of the graceful shutdown: tell them.
        self.closing.send_replace(true);
        self.edge.shutdown(GRACE).await;
    }
}

/// Serves `state` over HTTPS on an already bound listener with the default [`Limits`], until
/// the handle shuts it down.
pub fn serve(
    listener: std::net::TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    state: AppState,
) -> anyhow::Result<WebHandle> {
    serve_with(listener, tls_config, state, Limits::default())
}

/// [`serve`] under the given limits (connection caps derived from the descriptor limit, or a
/// test's short deadlines).
pub fn serve_with(
    listener: std::net::TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    state: AppState,
    limits: Limits,
) -> anyhow::Result<WebHandle> {
    let closing = state.closing.clone();
    let app = crate::router::router(state);
    let edge = edge::serve(listener, tls_config, app, "web", limits)?;
    Ok(WebHandle {
        edge,
        setup_task: None,
        closing,
    })
}

/// How often the setup link is checked for renewal.
const SETUP_CHECK: Duration = Duration::from_secs(30);

/// The setup link of a web app listening on `listen`: host `localhost` when it listens on
/// every interface or on loopback (the link is opened on the machine itself), else the
/// address it listens on.
pub fn setup_url(listen: SocketAddr, token: &str) -> String {
    let port = listen.port();
    let ip = listen.ip();
    if ip.is_unspecified() || ip.is_loopback() {
        format!("https://localhost:{port}/#/setup/{token}")
    } else {
        format!("https://{listen}/#/setup/{token}")
    }
}

/// Prints the `setup-url` line on stdout, and logs the link at INFO so that it reaches JSON
/// logs too. The link carries the one-time secret: writing it to the console or the journal
/// is acceptable only because access to those is the trust anchor of first-run setup (whoever
/// reads them runs the machine anyway); it is valid an hour, once, and only while no user
/// exists.
fn print_setup_url(listen: SocketAddr, token: &str) -> std::io::Result<()> {
    let url = setup_url(listen, token);
    tracing::info!(url = %url, "no user exists: open the one-time setup link to create the first admin");
    let mut out = std::io::stdout().lock();
    writeln!(out, "setup-url {url}")?;
    out.flush()
}

/// A new setup token if no user exists and no valid token does.
fn renew_setup_token(accounts: &crate::accounts::Accounts) -> Option<String> {
    (matches!(accounts.users.is_empty(), Ok(true)) && !accounts.setup_token_live())
        .then(|| accounts.new_setup_token())
}

/// While no user exists, keeps a valid setup link: a new one is printed when the previous one
/// expired unused, or when every user was removed (`vigil user remove`) while running.
fn spawn_setup_renewal(
    accounts: Arc<crate::accounts::Accounts>,
    listen: SocketAddr,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SETUP_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(token) = renew_setup_token(&accounts) {
                if let Err(e) = print_setup_url(listen, &token) {
                    tracing::warn!(error = %e, "cannot print the setup link");
                }
            }
        }
    })
}

/// Starts the web app: TLS material, accounts, listener; prints `listening https ADDR`,
/// `tls-fingerprint sha256 HEX` and, when no user exists, `setup-url https://HOST:PORT/#/setup/TOKEN`
/// (see [`setup_url`]).
pub async fn start(
    cfg: WebConfig,
    nvr: Arc<Nvr>,
    status_extra: StatusProvider,
) -> anyhow::Result<WebHandle> {
    let material = match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => tls::load_files(c, k)?,
        (None, None) => tls::load_or_create(&cfg.data_dir, &[])?,
        _ => anyhow::bail!("[web] cert and key must be given together"),
    };
    let listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("binding the web app to {}", cfg.listen))?;
    let mut state = AppState::new(nvr, status_extra, &cfg.data_dir)
        .context("opening the web app's account database")?;
    state.passkeys = Arc::new(passkeys_for(&cfg, listener.local_addr()?)?);
    state.cloud = cfg.cloud.clone();
    state.offsite = cfg.offsite.clone();
    state.whep = cfg
        .webrtc
        .clone()
        .map(|c| Arc::new(crate::whep::Whep::new(c)));
    if state.offsite.is_some() {
        spawn_offsite_sweep(state.clone());
    }
    let setup_token = if state.accounts.users.is_empty()? {
        Some(state.accounts.new_setup_token())
    } else {
        None
    };
    let accounts = state.accounts.clone();
    let mut handle = serve_with(listener, material.server_config.clone(), state, cfg.limits)?;
    let addr = handle.local_addr();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening https {addr}")?;
        writeln!(
            out,
            "tls-fingerprint sha256 {}",
            material.fingerprint_sha256
        )?;
        out.flush()?;
    }
    if let Some(t) = setup_token {
        print_setup_url(addr, &t)?;
    }
    handle.setup_task = Some(spawn_setup_renewal(accounts, addr));
    Ok(handle)
}

/// The passkeys' relying party: the configured public URL, else `https://localhost:PORT`
/// for a loopback or wildcard listener, else none (passkeys off, saying why).
fn passkeys_for(cfg: &WebConfig, local: SocketAddr) -> anyhow::Result<crate::passkeys::Passkeys> {
    use crate::passkeys::{check_public_url, default_public_url, Passkeys};
    Ok(match &cfg.public_url {
        Some(u) => {
            let url = check_public_url(u).map_err(anyhow::Error::msg)?;
            Passkeys::new(Some(&url), "")
        }
        None => Passkeys::new(
            default_public_url(local).as_ref(),
            &format!(
                "passkeys are off: this recorder listens on {local}, and an IP address \
                 cannot hold passkeys; set [web] public_url to the https:// address with a \
                 host name that browsers use"
            ),
        ),
    })
}

/// Deletes expired offsite shares' objects every 10 minutes until the server closes.
fn spawn_offsite_sweep(state: AppState) {
    tokio::spawn(async move {
        let mut closing = state.closing.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => return,
                _ = tick.tick() => crate::share_routes::sweep_offsite(&state).await,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_link_is_renewed_only_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let acc = crate::accounts::Accounts::open(dir.path()).unwrap();
        // No user, no token: a new one.
        let t = renew_setup_token(&acc).unwrap();
        // A live token is kept.
        assert!(renew_setup_token(&acc).is_none());
        assert_eq!(
            acc.check_setup_token(&t),
            crate::accounts::SetupCheck::Valid
        );
        // Expired unused: renewed.
        acc.new_setup_token_with_ttl(Duration::ZERO);
        assert!(renew_setup_token(&acc).is_some());
        // Once a user exists, never.
        acc.consume_setup_token();
        acc.users
            .add("owner", "correct horse battery", vigil_auth::Role::Admin)
            .unwrap();
        assert!(renew_setup_token(&acc).is_none());
    }

    #[test]
    fn setup_url_names_localhost_for_wildcard_and_loopback() {
        let url = |a: &str| setup_url(a.parse().unwrap(), "T");
        assert_eq!(url("0.0.0.0:8443"), "https://localhost:8443/#/setup/T");
        assert_eq!(url("127.0.0.1:9"), "https://localhost:9/#/setup/T");
        assert_eq!(url("[::]:8443"), "https://localhost:8443/#/setup/T");
        assert_eq!(url("192.0.2.7:8443"), "https://192.0.2.7:8443/#/setup/T");
        assert_eq!(
            url("[2001:db8::1]:8443"),
            "https://[2001:db8::1]:8443/#/setup/T"
        );
    }
}
