//! The HTTPS edge shared by the web app and the camera's snapshot server: connection caps (in all
//! and per address, checked before TLS so a flood costs no handshakes), a TLS handshake timeout,
//! HTTP/1.1 with a head size limit and a head read timeout (which also closes idle keep-alive
//! connections), a deadline and a minimum rate for request bodies, and a bound on concurrent
//! password hashing.
//!
//! Every timeout here frees the connection's slot: a slow or silent client holds one slot for at
//! most [`Limits::handshake_timeout`] + [`Limits::header_read_timeout`] +
//! [`Limits::body_deadline`], and only up to [`Caps::per_source`] of them per address.

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use vigil_auth::admission::{Admission, Caps, Ticket};

/// The edge's tunables. [`Default`] is what the web app used before caps were derived from the
/// descriptor limit; `vigil` derives `caps` per listener at start.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections at once, in all and per address (IPv4, IPv6 /64).
    pub caps: Caps,
    /// A TLS handshake must finish within this time.
    pub handshake_timeout: Duration,
    /// A whole request head must arrive within this time; an idle keep-alive connection is
    /// closed after it too.
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers).
    pub max_head_bytes: usize,
    /// A request body must arrive whole within this time of its head.
    pub body_deadline: Duration,
    /// After [`Limits::body_grace`], a body must keep arriving at this many bytes per second
    /// on average, or it is cut (0: no rate check).
    pub min_body_rate: u64,
    /// Time a body gets before the rate check starts (client think time, TCP slow start).
    pub body_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            caps: Caps::new(
                crate::server::MAX_CONNECTIONS,
                crate::server::MAX_CONNECTIONS_PER_ADDRESS,
            ),
            handshake_timeout: crate::server::HANDSHAKE_TIMEOUT,
            header_read_timeout: crate::server::HEADER_READ_TIMEOUT,
            max_head_bytes: crate::server::MAX_HEAD_BYTES,
            // Bodies are small JSON (≤ 64 KiB): 30 s is plenty even on a poor link, and
            // 1 KiB/s after 5 s cuts a byte-a-second sender at ~5 s.
            body_deadline: Duration::from_secs(30),
            min_body_rate: 1024,
            body_grace: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// How long after its head a body may take to deliver `received` bytes (and the next one):
    /// `grace + received / min_rate`, at most `body_deadline`. Pure, so it is tested without a
    /// clock.
    pub fn body_allowance(&self, received: u64) -> Duration {
        let by_rate = if self.min_body_rate == 0 {
            self.body_deadline
        } else {
            self.body_grace.saturating_add(Duration::from_secs_f64(
                received as f64 / self.min_body_rate as f64,
            ))
        };
        by_rate.min(self.body_deadline)
    }
}

/// A running edge listener.
#[derive(Debug)]
pub struct Edge {
    addr: SocketAddr,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<()>,
    admission: Admission,
}

impl Edge {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections open now (admitted, not yet closed).
    pub fn open_connections(&self) -> usize {
        self.admission.open()
    }

    /// Stops accepting, gives open requests `grace`, and waits for the server to end.
    pub async fn shutdown(self, grace: Duration) {
        self.handle.graceful_shutdown(Some(grace));
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "HTTPS server task ended abnormally");
        }
    }
}

/// Serves `app` over HTTPS on an already bound listener, under `limits`, until
/// [`Edge::shutdown`]. `name` labels the listener in log lines (`"web"`, `"snapshot"`).
pub fn serve(
    listener: std::net::TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    app: Router,
    name: &'static str,
    limits: Limits,
) -> anyhow::Result<Edge> {
    listener
        .set_nonblocking(true)
        .context("listener non-blocking")?;
    let addr = listener.local_addr().context("listener address")?;
    let handle = axum_server::Handle::new();
    let admission = Admission::new(name, limits.caps);
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
        axum_server::tls_rustls::RustlsConfig::from_config(tls_config),
    )
    .handshake_timeout(limits.handshake_timeout)
    .acceptor(LimitAcceptor {
        admission: admission.clone(),
    });
    let mut server = axum_server::from_tcp(listener)
        .acceptor(acceptor)
        .handle(handle.clone());
    let builder = server.http_builder();
    *builder = std::mem::take(builder).http1_only();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_head_bytes);
    let app = app.layer(axum::middleware::from_fn_with_state(limits, body_deadline));
    let task = tokio::spawn(async move {
        if let Err(e) = server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::error!(listener = name, error = %e, "HTTPS server failed");
        }
    });
    Ok(Edge {
        addr,
        handle,
        task,
        admission,
    })
}

/// A connection holding a slot of its listener's [`Admission`], given back on drop.
pub struct Limited<S> {
    inner: S,
    _ticket: Ticket,
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

/// Admits connections against the caps before TLS, so a flood costs no handshakes.
#[derive(Clone)]
struct LimitAcceptor {
    admission: Admission,
}

/// Admits connections against the caps before TLS, so a flood costs no handshakes; each
/// request then carries the connection's local address ([`crate::whep::LocalAddr`]).
impl<S: Send + 'static> axum_server::accept::Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Limited<TcpStream>;
    type Service = axum::middleware::AddExtension<S, crate::whep::LocalAddr>;
    type Future = std::future::Ready<std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let admitted = stream
            .peer_addr()
            .map_err(std::io::Error::other)
            .and_then(|peer| {
                self.admission
                    .admit(peer.ip())
                    .map_err(std::io::Error::other)
            })
            .and_then(|ticket| Ok((ticket, stream.local_addr()?)));
        std::future::ready(admitted.map(|(ticket, local)| {
            let _ = stream.set_nodelay(true);
            (
                Limited {
                    inner: stream,
                    _ticket: ticket,
                },
                tower_layer::Layer::layer(&axum::Extension(crate::whep::LocalAddr(local)), service),
            )
        }))
    }
}

/// Whether a request announces a body.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// The body did not arrive within its deadline or at the minimum rate.
#[derive(Debug, thiserror::Error)]
#[error("request body too slow")]
pub struct BodyTimeout;

/// A request body cut at [`Limits::body_allowance`]; `tripped` tells the middleware to answer 408.
struct DeadlineBody<S> {
    inner: S,
    limits: Limits,
    started: tokio::time::Instant,
    received: u64,
    sleep: Pin<Box<tokio::time::Sleep>>,
    tripped: Arc<AtomicBool>,
    done: bool,
}

impl<S> Stream for DeadlineBody<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, axum::BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received = this.received.saturating_add(chunk.len() as u64);
                let deadline = this.started + this.limits.body_allowance(this.received);
                this.sleep.as_mut().reset(deadline);
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.tripped.store(true, Ordering::Relaxed);
            this.done = true;
            return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
        }
        Poll::Pending
    }
}

/// Wraps a request's body in [`DeadlineBody`]; if the handler ran into the deadline, answers
/// 408 and closes the connection, whatever the handler made of the read error.
async fn body_deadline(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    if !has_body(req.headers()) {
        return next.run(req).await;
    }
    let tripped = Arc::new(AtomicBool::new(false));
    let started = tokio::time::Instant::now();
    let (parts, body) = req.into_parts();
    let body = Body::from_stream(DeadlineBody {
        inner: body.into_data_stream(),
        limits,
        started,
        received: 0,
        sleep: Box::pin(tokio::time::sleep_until(started + limits.body_allowance(0))),
        tripped: tripped.clone(),
        done: false,
    });
    let resp = next.run(Request::from_parts(parts, body)).await;
    if !tripped.load(Ordering::Relaxed) {
        return resp;
    }
    tracing::debug!("request body too slow; answering 408");
    let mut resp = (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "request body too slow\n",
    )
        .into_response();
    let h = resp.headers_mut();
    // The rest of the body may still be on its way: close rather than read it.
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    resp
}

/// Password hashes (argon2id) computed at once, process-wide: each takes ~19 MiB and tens of
/// ms of a core, so a flood of password logins — web or snapshot, from any number of
/// addresses — queues here instead of exhausting memory and CPU.
pub const HASHING_CONCURRENCY: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_CONCURRENCY);
static HASHING_NOW: AtomicUsize = AtomicUsize::new(0);
static HASHING_PEAK: AtomicUsize = AtomicUsize::new(0);

/// Permission to run one password verification; move it into the blocking task that hashes,
/// so the bound holds even when the client goes away mid-hash.
#[derive(Debug)]
pub struct HashingPermit {
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Drop for HashingPermit {
    fn drop(&mut self) {
        HASHING_NOW.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits for a [`HashingPermit`] (at most [`HASHING_CONCURRENCY`] are out at once). Fails
/// only if the semaphore were closed, which nothing does.
pub async fn hashing_permit() -> Result<HashingPermit, tokio::sync::AcquireError> {
    let permit = HASHING.acquire().await?;
    let now = HASHING_NOW.fetch_add(1, Ordering::Relaxed) + 1;
    HASHING_PEAK.fetch_max(now, Ordering::Relaxed);
    Ok(HashingPermit { _permit: permit })
}

/// The most password verifications that ever ran at once in this process (observability and
/// tests).
pub fn hashing_peak() -> usize {
    HASHING_PEAK.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_allowance_grows_with_the_bytes_and_is_capped() {
        let l = Limits {
            body_deadline: Duration::from_secs(30),
            min_body_rate: 1000,
            body_grace: Duration::from_secs(5),
            ..Limits::default()
        };
        assert_eq!(l.body_allowance(0), Duration::from_secs(5));
        // A byte a second earns a millisecond a byte: cut just after the grace.
        assert_eq!(l.body_allowance(6), Duration::from_millis(5006));
        assert_eq!(l.body_allowance(10_000), Duration::from_secs(15));
        assert_eq!(l.body_allowance(10_000_000), Duration::from_secs(30));
        let no_rate = Limits {
            min_body_rate: 0,
            ..l
        };
        assert_eq!(no_rate.body_allowance(0), Duration::from_secs(30));
    }
}
