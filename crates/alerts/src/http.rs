//! The webhook HTTP client: one HTTP/1.1 POST per connection (webhooks are rare, and a fresh
//! connection never trips over a half-closed keep-alive socket), plain TCP or rustls, with one
//! overall timeout. Redirects are not followed: a signed alert goes only where it was configured.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::AlertsError;

/// A parsed webhook URL, ready to connect.
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    /// `Host` header value (host, and port when not the scheme's default).
    authority: String,
    path_and_query: String,
    authorization: Option<String>,
    https: bool,
    /// Set for https when parsed with roots (`validate` parses without; it never connects).
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

use vigil_auth::secret::redact_url;

impl Endpoint {
    /// Parses and checks the URL (http/https with a host only); with `tls_roots`, prepares TLS.
    pub(crate) fn parse(
        raw: &str,
        tls_roots: Option<Arc<rustls::RootCertStore>>,
    ) -> Result<Endpoint, AlertsError> {
        let display = redact_url(raw);
        let bad = |why: &str| AlertsError::Config(format!("[[webhook]] url {display}: {why}"));
        let u = url::Url::parse(raw).map_err(|_| bad("not a valid URL"))?;
        let https = match u.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(bad("only http and https URLs are allowed")),
        };
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(bad("no host")),
        };
        let port = u
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let authority = match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(bad("no host")),
        };
        let mut path_and_query = u.path().to_owned();
        if let Some(q) = u.query() {
            path_and_query.push('?');
            path_and_query.push_str(q);
        }
        let authorization = if u.username().is_empty() && u.password().is_none() {
            None
        } else {
            let user = percent_decode(u.username());
            let pass = percent_decode(u.password().unwrap_or(""));
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            Some(format!("Basic {token}"))
        };
        let tls = match (https, tls_roots) {
            (true, Some(roots)) => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let cfg = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| AlertsError::Tls(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from(host.clone())
                    .map_err(|_| bad("host is not a valid TLS server name"))?;
                Some((TlsConnector::from(Arc::new(cfg)), name))
            }
            _ => None,
        };
        Ok(Endpoint {
            host,
            port,
            authority,
            path_and_query,
            authorization,
            https,
            tls,
        })
    }

    /// POSTs `body` with `headers`; returns the response status. `timeout` bounds the whole
    /// exchange up to the response head.
    pub(crate) async fn post(
        &self,
        headers: &[(&str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<u16, String> {
        match tokio::time::timeout(timeout, self.post_inner(headers, body)).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {} s", timeout.as_secs_f32())),
        }
    }

    async fn post_inner(&self, headers: &[(&str, String)], body: Bytes) -> Result<u16, String> {
        if self.https && self.tls.is_none() {
            return Err("https endpoint without a TLS configuration".to_owned());
        }
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect {}:{}: {e}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                self.exchange(TokioIo::new(tls), headers, body).await
            }
            None => self.exchange(TokioIo::new(tcp), headers, body).await,
        }
    }

    async fn exchange<IO>(
        &self,
        io: IO,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<u16, String>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let conn = tokio::spawn(conn);
        let mut req = hyper::Request::post(self.path_and_query.as_str())
            .header(hyper::header::HOST, self.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("vigil/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONNECTION, "close");
        if let Some(auth) = &self.authorization {
            req = req.header(hyper::header::AUTHORIZATION, auth.as_str());
        }
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"));
        let status = match resp {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Read (and drop) the body so the server sees a clean close, but at most
                // 64 KiB: only the status matters, and a hostile endpoint must not make us
                // buffer an endless body (the caller's timeout bounds the time).
                let _ = http_body_util::Limited::new(resp.into_body(), 64 * 1024)
                    .collect()
                    .await;
                Ok(status)
            }
            Err(e) => Err(e),
        };
        conn.abort();
        status
    }
}

/// Trust roots for https webhooks: the PEM file if given, else the system's store.
pub(crate) fn load_roots(
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::RootCertStore>, AlertsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| AlertsError::Tls(format!("{}: {e}", path.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| AlertsError::Tls(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(AlertsError::Tls(format!(
                    "{}: no certificate in the file",
                    path.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| AlertsError::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A few odd system certificates fail to parse; the others still count.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(AlertsError::Tls(
                    "no trusted CA certificates on this system (install ca-certificates)".into(),
                ));
            }
        }
    }
    Ok(Arc::new(roots))
}

/// Percent-decodes URL user info (RFC 3986 §2.1); invalid sequences are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint() {
        let e = Endpoint::parse("http://u%40x:p%3Aw@127.0.0.1:8080/hook?k=v", None).unwrap();
        assert_eq!(e.port, 8080);
        assert_eq!(e.authority, "127.0.0.1:8080");
        assert_eq!(e.path_and_query, "/hook?k=v");
        let expected = base64::engine::general_purpose::STANDARD.encode("u@x:p:w");
        assert_eq!(
            e.authorization.as_deref(),
            Some(format!("Basic {expected}").as_str())
        );
        let v6 = Endpoint::parse("https://[::1]/x", None).unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.port, v6.authority.as_str()),
            ("::1", 443, "[::1]")
        );
        assert!(v6.https && v6.tls.is_none());
        assert!(Endpoint::parse("gopher://h/", None).is_err());
        assert!(Endpoint::parse("unix:/run/x.sock", None).is_err());
    }

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode("a%20b%zz%4"), "a b%zz%4");
        assert_eq!(percent_decode("%"), "%");
    }
}
