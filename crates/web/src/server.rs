//! The HTTPS listener: TLS (rustls, TLS 1.2+), HTTP/1.1 with a header read timeout and a head
//! size limit, a cap on concurrent connections, graceful shutdown; and the machine-readable
//! stdout lines of the contract.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vigil_nvr::Nvr;

use crate::state::{AppState, StatusProvider};
use crate::tls;

/// Largest request head (request line + headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A client must send a whole request head within this time (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; beyond, new ones are closed at accept.
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
}

/// A running web app.
#[derive(Debug)]
pub struct WebHandle {
    addr: SocketAddr,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<()>,
    /// Renews the setup link while no user exists (see [`start`]).
    setup_task: Option<tokio::task::JoinHandle<()>>,
    /// Tells long-lived answers that the server is going away.
    closing: Arc<tokio::sync::watch::Sender<bool>>,
}

impl WebHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, gives open requests a few seconds, and waits for the server to end.
    pub async fn shutdown(self) {
        if let Some(t) = &self.setup_task {
            t.abort();
        }
        // Upgraded connections (WebSockets) are not part of the graceful shutdown: tell them.
        self.closing.send_replace(true);
        self.handle.graceful_shutdown(Some(GRACE));
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "web server task ended abnormally");
        }
    }
}

/// Open connections per source address.
type PerAddress = Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>;

/// One connection's slot in the per-address count, given back on drop.
struct AddressSlot {
    map: PerAddress,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A connection counted against [`MAX_CONNECTIONS`] and [`MAX_CONNECTIONS_PER_ADDRESS`]; both
/// are given back when it is dropped.
struct Limited<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
    _slot: AddressSlot,
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Caps concurrent connections, in all and per address (runs before TLS, so a flood costs no
/// handshakes).
#[derive(Clone)]
struct LimitAcceptor {
    all: Arc<Semaphore>,
    per_address: PerAddress,
}

impl LimitAcceptor {
    fn new() -> Self {
        Self {
            all: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            per_address: Arc::default(),
        }
    }

    fn admit(&self, stream: &TcpStream) -> Option<(OwnedSemaphorePermit, AddressSlot)> {
        let ip = stream.peer_addr().ok()?.ip();
        let slot = {
            let mut m = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(ip).or_insert(0);
            if *n >= MAX_CONNECTIONS_PER_ADDRESS {
                tracing::warn!(peer = %ip, "too many connections from one address; closing a new one");
                return None;
            }
            *n += 1;
            AddressSlot {
                map: self.per_address.clone(),
                ip,
            }
        };
        match self.all.clone().try_acquire_owned() {
            Ok(permit) => Some((permit, slot)),
            Err(_) => {
                tracing::warn!("too many connections; closing a new one");
                None
            }
        }
    }
}

impl<S: Send + 'static> axum_server::accept::Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Limited<TcpStream>;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(match self.admit(&stream) {
            Some((permit, slot)) => {
                let _ = stream.set_nodelay(true);
                Ok((
                    Limited {
                        inner: stream,
                        _permit: permit,
                        _slot: slot,
                    },
                    service,
                ))
            }
            None => Err(std::io::Error::other("connection limit")),
        })
    }
}

/// Serves `state` over HTTPS on an already bound listener until the handle shuts it down.
pub fn serve(
    listener: std::net::TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    state: AppState,
) -> anyhow::Result<WebHandle> {
    listener
        .set_nonblocking(true)
        .context("listener non-blocking")?;
    let addr = listener.local_addr().context("listener address")?;
    let handle = axum_server::Handle::new();
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
        axum_server::tls_rustls::RustlsConfig::from_config(tls_config),
    )
    .handshake_timeout(HANDSHAKE_TIMEOUT)
    .acceptor(LimitAcceptor::new());
    let mut server = axum_server::from_tcp(listener)
        .acceptor(acceptor)
        .handle(handle.clone());
    let builder = server.http_builder();
    *builder = std::mem::take(builder).http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let closing = state.closing.clone();
    let app = crate::router::router(state);
    let task = tokio::spawn(async move {
        if let Err(e) = server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::error!(error = %e, "web server failed");
        }
    });
    Ok(WebHandle {
        addr,
        handle,
        task,
        setup_task: None,
        closing,
    })
}

/// How often the setup link is checked for renewal.
const SETUP_CHECK: Duration = Duration::from_secs(30);

/// Prints the `setup-url` line.
fn print_setup_url(port: u16, token: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "setup-url https://localhost:{port}/#/setup/{token}")?;
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
    port: u16,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SETUP_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(token) = renew_setup_token(&accounts) {
                tracing::info!("no user exists: a new one-time setup link was printed");
                if let Err(e) = print_setup_url(port, &token) {
                    tracing::warn!(error = %e, "cannot print the setup link");
                }
            }
        }
    })
}

/// Starts the web app: TLS material, accounts, listener; prints `listening https ADDR`,
/// `tls-fingerprint sha256 HEX` and, when no user exists, `setup-url https://localhost:PORT/#/setup/TOKEN`.
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
    let state = AppState::new(nvr, status_extra, &cfg.data_dir)
        .context("opening the web app's account database")?;
    let setup_token = if state.accounts.users.is_empty()? {
        Some(state.accounts.new_setup_token())
    } else {
        None
    };
    let listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("binding the web app to {}", cfg.listen))?;
    let accounts = state.accounts.clone();
    let mut handle = serve(listener, material.server_config.clone(), state)?;
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
        print_setup_url(addr.port(), &t)?;
    }
    handle.setup_task = Some(spawn_setup_renewal(accounts, addr.port()));
    Ok(handle)
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
}
