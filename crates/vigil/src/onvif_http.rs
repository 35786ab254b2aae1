//! The camera's ONVIF listener: plain HTTP/1.1 (onvif-zeep and most VMSs build
//! `http://HOST:PORT/onvif/device_service` themselves, see docs/onvif.md) serving
//! `/onvif/device_service` and `/onvif/media_service` through the sans-IO [`vigil_onvif`]
//! service.
//!
//! The edge holds what the web edge holds for HTTPS: connection caps in all and per address
//! (checked at accept), a head size limit and head read timeout (which also closes idle
//! keep-alive connections), a deadline for the body and a 64 KiB body cap checked on
//! `Content-Length` before anything is read. HTTP Digest (RFC 7616) is checked by the shared
//! [`Authenticator`] with its throttle; WS-UsernameToken by the service, inside a slot of the
//! same throttle ([`Authenticator::throttled`]).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use vigil_auth::admission::{Admission, Caps};
use vigil_auth::{AuthDecision, AuthRequest, Authenticator, ExternalOutcome, Role, UserStore};
use vigil_onvif::{DeviceInfo, Endpoint, Fault, Interface, Limits, Profile, Service};

/// Largest request head (request line + headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A request head must arrive within this time; idle keep-alive connections close after it.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A body (at most [`Limits::max_body`], 64 KiB) must arrive whole within this time.
const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// Time open connections get after shutdown is requested.
const GRACE: Duration = Duration::from_secs(2);
/// `Content-Type` of SOAP 1.2 (RFC 3902).
const SOAP_CONTENT_TYPE: &str = "application/soap+xml; charset=utf-8";

/// One encoded stream as ONVIF describes it (a media profile).
#[derive(Debug, Clone)]
pub struct StreamDesc {
    /// Profile token and RTSP mount (`main`, `sub`).
    pub token: String,
    /// Encoded size.
    pub width: u32,
    /// Encoded size.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bit rate, kbit/s.
    pub bitrate_kbps: u32,
    /// Frames from one key frame to the next.
    pub gop: u32,
}

/// What the device reports, before the host part of its addresses is known: requests arriving
/// on different interfaces get addresses on the interface they arrived on.
#[derive(Debug, Clone)]
pub struct Template {
    /// GetHostname and the `name` scope.
    pub hostname: String,
    /// GetDeviceInformation/SerialNumber: stable per machine, reveals nothing.
    pub serial: String,
    /// The ONVIF HTTP port.
    pub onvif_port: u16,
    /// The RTSP port, if plain RTSP listens.
    pub rtsp_port: Option<u16>,
    /// The RTSPS port, if RTSPS listens.
    pub rtsps_port: Option<u16>,
    /// The HTTPS snapshot port, if it listens.
    pub https_port: Option<u16>,
    /// Main stream first.
    pub streams: Vec<StreamDesc>,
    /// Whether WS-Discovery answers.
    pub discoverable: bool,
}

/// `host` as it goes into a URI authority (IPv6 in brackets).
pub fn uri_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// A scope value (ONVIF Core §7.3.2.2): only unreserved URI characters survive.
fn scope_value(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Template {
    /// The scopes WS-Discovery and GetScopes report (ONVIF Core §7.3.2.2).
    pub fn scopes(&self) -> Vec<String> {
        vec![
            "onvif://www.onvif.org/type/video_encoder".to_owned(),
            "onvif://www.onvif.org/Profile/Streaming".to_owned(),
            "onvif://www.onvif.org/hardware/vigil".to_owned(),
            format!("onvif://www.onvif.org/name/{}", scope_value(&self.hostname)),
        ]
    }

    /// The device service address on `ip`.
    pub fn device_xaddr(&self, ip: IpAddr) -> String {
        format!(
            "http://{}:{}/onvif/device_service",
            uri_host(ip),
            self.onvif_port
        )
    }

    /// Everything the services report, with addresses on `ip`: `http://` on the ONVIF port,
    /// or with `tls` (a request that came over HTTPS) `https://` on the HTTPS port, so that a
    /// client that started over TLS stays on it.
    pub fn info(&self, ip: IpAddr, tls: bool) -> DeviceInfo {
        let host = uri_host(ip);
        let (scheme, port) = match (tls, self.https_port) {
            (true, Some(p)) => ("https", p),
            _ => ("http", self.onvif_port),
        };
        let profiles = self
            .streams
            .iter()
            .map(|s| Profile {
                token: s.token.clone(),
                name: s.token.clone(),
                width: s.width,
                height: s.height,
                fps: s.fps,
                bitrate_kbps: s.bitrate_kbps,
                gop: s.gop,
                rtsp_uri: self
                    .rtsp_port
                    .map(|p| format!("rtsp://{host}:{p}/{}", s.token)),
                rtsps_uri: self
                    .rtsps_port
                    .map(|p| format!("rtsps://{host}:{p}/{}", s.token)),
                snapshot_uri: self
                    .https_port
                    .map(|p| format!("https://{host}:{p}/snapshot.jpg?stream={}", s.token)),
            })
            .collect::<Vec<_>>();
        let mut protocols = vec![("HTTP".to_owned(), self.onvif_port)];
        protocols.extend(self.https_port.map(|p| ("HTTPS".to_owned(), p)));
        protocols.extend(self.rtsp_port.map(|p| ("RTSP".to_owned(), p)));
        let (w, h, fps) = self
            .streams
            .first()
            .map_or((0, 0, 0), |s| (s.width, s.height, s.fps));
        DeviceInfo {
            manufacturer: "Vigil".to_owned(),
            model: "vigil camera".to_owned(),
            firmware: env!("CARGO_PKG_VERSION").to_owned(),
            serial: self.serial.clone(),
            hardware_id: "vigil".to_owned(),
            hostname: self.hostname.clone(),
            device_xaddr: format!("{scheme}://{host}:{port}/onvif/device_service"),
            media_xaddr: format!("{scheme}://{host}:{port}/onvif/media_service"),
            scopes: self.scopes(),
            // The interface the request arrived on; its prefix is not looked up.
            interfaces: match ip {
                IpAddr::V4(v4) => vec![Interface {
                    name: "net0".to_owned(),
                    ipv4: v4.to_string(),
                    prefix: if v4.is_loopback() { 8 } else { 24 },
                }],
                IpAddr::V6(_) => Vec::new(),
            },
            protocols,
            discoverable: self.discoverable,
            source_size: (w, h),
            source_fps: fps,
            profiles,
        }
    }
}

/// The user store as the ONVIF service sees it.
struct StoreCreds<'a>(&'a UserStore);

impl vigil_onvif::Credentials for StoreCreds<'_> {
    fn wsse_secret(&self, user: &str) -> Option<Vec<u8>> {
        match self.0.onvif_credential(user) {
            Ok(c) => c.map(|(c, _)| c.into_bytes()),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the user database");
                None
            }
        }
    }
    fn check_password(&self, _user: &str, _password: &str) -> bool {
        // PasswordText would be acceptable over TLS, but verifying it runs argon2 (tens of ms)
        // inside the login throttle's lock; every ONVIF client sends PasswordDigest anyway.
        false
    }
    fn is_admin(&self, user: &str) -> bool {
        matches!(self.0.get(user), Ok(Some(u)) if u.role == Role::Admin)
    }
    fn users(&self) -> Vec<(String, bool)> {
        self.0
            .list()
            .map(|v| {
                v.into_iter()
                    .map(|u| (u.name, u.role == Role::Admin))
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct State {
    template: Template,
    service: Mutex<(Option<IpAddr>, Service)>,
    auth: Arc<Authenticator>,
    /// Served inside the HTTPS listener (addresses in answers are `https://`).
    tls: bool,
}

/// The ONVIF services for the camera's HTTPS listener (`--http`): the same device and
/// media services on `/onvif/…` of the HTTPS port, for clients that can use TLS. Requests
/// answer `https://` addresses, so a client that started over TLS stays on it.
#[derive(Clone)]
pub struct OnvifOverHttps(Arc<State>);

impl OnvifOverHttps {
    /// The services of `template` (which must name the HTTPS port) checked by `auth`.
    pub fn new(template: Template, auth: Arc<Authenticator>) -> Self {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let service = Service::new(template.info(ip, true), Limits::default());
        OnvifOverHttps(Arc::new(State {
            template,
            service: Mutex::new((None, service)),
            auth,
            tls: true,
        }))
    }

    /// Answers one request of the HTTPS listener to `/onvif/device_service` or
    /// `/onvif/media_service`; `local` is the address it arrived on.
    pub async fn handle<B>(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
        req: Request<B>,
    ) -> Response<Body>
    where
        B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        handle(&self.0, peer, local, req).await
    }
}

/// Serves ONVIF on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    template: Template,
    auth: Arc<Authenticator>,
    caps: Caps,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let service = Service::new(template.info(local.ip(), false), Limits::default());
    let state = Arc::new(State {
        template,
        service: Mutex::new((None, service)),
        auth,
        tls: false,
    });
    let admission = Admission::new("onvif", caps);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = async { shutdown.wait_for(|v| *v).await.map(|_| ()) } => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "ONVIF accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(ticket) = admission.admit(peer.ip()) else {
            continue;
        };
        let local = stream.local_addr().unwrap_or(local);
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let svc = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(&state, peer, local, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), svc);
        conns.spawn(async move {
            let _ticket = ticket;
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "ONVIF connection ended");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(GRACE, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
    Ok(())
}

fn soap(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SOAP_CONTENT_TYPE),
    );
    r
}

fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// 401 with the Digest challenges and, for SOAP clients, the NotAuthorized fault.
fn unauthorized(challenges: &[String]) -> Response<Body> {
    let mut r = soap(StatusCode::UNAUTHORIZED, Fault::NotAuthorized.to_xml());
    for c in challenges {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    r
}

fn close(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn handle<B>(
    st: &State,
    peer: SocketAddr,
    local: SocketAddr,
    req: Request<B>,
) -> Response<Body>
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let endpoint = match req.uri().path() {
        "/onvif/device_service" => Some(Endpoint::Device),
        "/onvif/media_service" => Some(Endpoint::Media),
        _ => None,
    };
    let uri = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("invalid").to_owned());
    let now = SystemTime::now();
    // HTTP Digest (ONVIF Core §5.12.1), only when offered: a request without it may still
    // carry a UsernameToken, or be a PRE_AUTH operation.
    let mut http_user = None;
    if authorization.is_some() {
        let decision = st.auth.check(&AuthRequest {
            method: req.method().as_str(),
            uri: &uri,
            authorization: authorization.as_deref(),
            peer: peer.ip(),
            secure: st.tls,
            now,
        });
        match decision {
            AuthDecision::Allowed { user, .. } => http_user = Some(user),
            AuthDecision::Denied { challenges, delay } => {
                tokio::time::sleep(delay).await;
                return unauthorized(&challenges);
            }
            AuthDecision::NoUsers { challenges, .. } => return unauthorized(&challenges),
        }
    }
    let challenge = || unauthorized(&st.auth.challenges(st.tls, false, now));
    let Some(endpoint) = endpoint else {
        // 401 before 404: strangers do not learn the route table.
        return if http_user.is_some() {
            plain(StatusCode::NOT_FOUND, "not found\n")
        } else {
            challenge()
        };
    };
    if req.method() != Method::POST {
        if http_user.is_none() {
            return challenge();
        }
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let limits = Limits::default();
    let too_large = || {
        let f = Fault::OutofMemory;
        close(soap(
            StatusCode::from_u16(f.http_status()).unwrap_or(StatusCode::PAYLOAD_TOO_LARGE),
            f.to_xml(),
        ))
    };
    // Refused on its announced length before a byte of it is read.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body as u64) {
        tracing::debug!(%peer, "ONVIF request body over the limit");
        return too_large();
    }
    let body = match tokio::time::timeout(
        BODY_DEADLINE,
        axum::body::to_bytes(Body::new(req.into_body()), limits.max_body),
    )
    .await
    {
        Ok(Ok(b)) => b,
        // Over the limit (chunked), or the client went away mid-body.
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return close(plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body too slow\n",
            ))
        }
    };

    if body.is_empty() && http_user.is_none() {
        // curl --digest and other HTTP clients probe with an empty POST for the challenge.
        return challenge();
    }
    // The UsernameToken is verified in the login throttle that Digest (here and on RTSP)
    // uses: the same address cannot escape its penalty by switching schemes.
    let throttled = {
        let mut guard = st.service.lock().unwrap_or_else(|p| p.into_inner());
        let (host, service) = &mut *guard;
        if *host != Some(local.ip()) {
            service.set_info(st.template.info(local.ip(), st.tls));
            *host = Some(local.ip());
        }
        st.auth.throttled(peer.ip(), now, || {
            let resp = service.handle(
                &vigil_onvif::Request {
                    endpoint,
                    body: &body,
                    http_user: http_user.as_deref(),
                    tls: st.tls,
                    now: time::OffsetDateTime::now_utc(),
                },
                &StoreCreds(st.auth.store()),
            );
            let outcome = if resp.auth_failed {
                ExternalOutcome::Failed
            } else if resp.user.is_some() && http_user.is_none() {
                ExternalOutcome::Succeeded
            } else {
                ExternalOutcome::NoCredentials
            };
            (resp, outcome)
        })
    };
    let resp = match throttled {
        Ok((resp, delay)) => {
            if resp.auth_failed {
                let op = resp.operation.as_deref().unwrap_or("-");
                tracing::warn!(
                    %peer,
                    operation = %op.escape_debug(),
                    delay_ms = delay.as_millis() as u64,
                    "ONVIF UsernameToken refused"
                );
            }
            // The penalty a failure earned is waited before answering, as for Digest.
            tokio::time::sleep(delay).await;
            resp
        }
        Err(wait) => {
            // Inside the penalty of earlier failures: nothing was verified or answered.
            tokio::time::sleep(wait.min(Duration::from_secs(2))).await;
            return soap(StatusCode::UNAUTHORIZED, Fault::NotAuthorized.to_xml());
        }
    };
    let op = resp.operation.as_deref().unwrap_or("-");
    if resp.fault == Some(Fault::NotAuthorized) && !resp.credentials {
        return challenge();
    }
    tracing::debug!(
        %peer,
        operation = %op.escape_debug(),
        user = %resp.user.as_deref().unwrap_or("-").escape_debug(),
        status = resp.status,
        "ONVIF request"
    );
    soap(
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        resp.body,
    )
}

/// A serial number stable for this machine that reveals nothing about it: SHA-256 of
/// `/etc/machine-id` (or the hostname) under a Vigil label, 8 bytes in hex.
pub fn serial() -> String {
    use sha2::Digest as _;
    let id = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    let h = sha2::Sha256::digest(format!("vigil onvif serial\n{}", id.trim()));
    hex::encode(&h[..8])
}

/// Binds the ONVIF listener.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for ONVIF on {addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_addresses_follow_the_interface() {
        let t = Template {
            hostname: "cam 1".into(),
            serial: "ab".into(),
            onvif_port: 8000,
            rtsp_port: Some(8554),
            rtsps_port: None,
            https_port: Some(8443),
            streams: vec![StreamDesc {
                token: "main".into(),
                width: 320,
                height: 240,
                fps: 15,
                bitrate_kbps: 500,
                gop: 30,
            }],
            discoverable: true,
        };
        let i = t.info("192.168.1.9".parse().unwrap(), false);
        assert_eq!(
            i.device_xaddr,
            "http://192.168.1.9:8000/onvif/device_service"
        );
        assert_eq!(
            i.profiles[0].rtsp_uri.as_deref(),
            Some("rtsp://192.168.1.9:8554/main")
        );
        assert_eq!(i.profiles[0].rtsps_uri, None);
        assert_eq!(
            i.profiles[0].snapshot_uri.as_deref(),
            Some("https://192.168.1.9:8443/snapshot.jpg?stream=main")
        );
        let v6 = t.info("::1".parse().unwrap(), false);
        assert_eq!(v6.media_xaddr, "http://[::1]:8000/onvif/media_service");
        assert!(t
            .scopes()
            .contains(&"onvif://www.onvif.org/name/cam_1".to_owned()));
    }
}
