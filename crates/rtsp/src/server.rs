//! The accept loop: connection caps (in all and per address), optional TLS, graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use vigil_auth::admission::{Admission, Caps, LogLimiter};

use crate::conn::{self, ConnCtx};
use crate::{Mounts, RtspAuth, ServerOptions};

/// An RTSP server: mounts, authenticator, optional TLS and options.
pub struct RtspServer {
    mounts: Arc<Mounts>,
    auth: Arc<dyn RtspAuth>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    options: ServerOptions,
}

impl RtspServer {
    /// A plain-TCP server with default options serving `mounts` (e.g. `"main"`, `"sub"`).
    pub fn new(mounts: Mounts, auth: Arc<dyn RtspAuth>) -> Self {
        RtspServer {
            mounts: Arc::new(mounts),
            auth,
            tls: None,
            options: ServerOptions::default(),
        }
    }

    /// Serves RTSPS: a TLS handshake on every accepted connection.
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Accepts connections on `listener` until `shutdown` becomes `true` (or its sender is
    /// dropped), then closes every connection and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let admission = Admission::new(
            "RTSP",
            Caps::new(
                self.options.max_connections,
                self.options.max_connections_per_address,
            ),
        );
        // Accept errors (EMFILE under a flood) repeat every 100 ms: log a few, count the rest.
        let mut accept_warn = LogLimiter::new(Duration::from_secs(60), 3);
        let mut tasks = JoinSet::new();
        let options = Arc::new(self.options);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        if let Some(suppressed) = accept_warn.allow(Instant::now()) {
                            tracing::warn!(error = %e, suppressed, "RTSP accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                r = shutdown.changed() => {
                    if r.is_err() { break; }
                    continue;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            };
            // Refused connections are closed at once (dropped here); the admission logs them,
            // a few times a minute at most.
            let Ok(permit) = admission.admit(peer.ip()) else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().unwrap_or(peer);
            let ctx = ConnCtx {
                mounts: self.mounts.clone(),
                auth: self.auth.clone(),
                options: options.clone(),
                peer,
                local,
                shutdown: shutdown.clone(),
            };
            let tls = self.tls.clone();
            tasks.spawn(async move {
                let _permit = permit;
                match tls {
                    None => conn::run(tcp, false, ctx).await,
                    Some(acceptor) => {
                        let timeout = ctx.options.first_request_timeout;
                        match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => conn::run(stream, true, ctx).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "RTSPS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "RTSPS handshake timed out"),
                        }
                    }
                }
            });
        }
        // Connections watch the same signal; give them a moment to close, then abort.
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(2), drain)
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        Ok(())
    }
}
