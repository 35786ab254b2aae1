//! The harness's HTTP side: a small HTTP/1.1 client (RFC 9112) over plain TCP or TLS pinned
//! to the demo's certificate fingerprint, and [`Api`], which calls the demo's JSON API with a
//! session cookie and CSRF token the way the web app does.

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// An HTTP/1.1 response, body complete.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked transfer coding removed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body, lossily, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `request` and reads one response (RFC 9112 §6: Content-Length or chunked, else to EOF).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &[u8],
) -> std::io::Result<HttpResponse> {
    s.write_all(request).await?;
    s.flush().await?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed before the head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut rest = buf.split_off(head_end);
    let chunked = find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length: Option<usize> = find("content-length").and_then(|v| v.parse().ok());
    // Reads until `done(rest)` or EOF (a server may close without TLS close_notify).
    loop {
        let complete = if chunked {
            decode_chunked(&rest).is_some()
        } else if let Some(len) = length {
            rest.len() >= len
        } else {
            false
        };
        if complete || status == 204 || status == 304 {
            break;
        }
        match s.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    let body = if chunked {
        decode_chunked(&rest).ok_or_else(|| std::io::Error::other("truncated chunked body"))?
    } else if let Some(len) = length {
        if rest.len() < len {
            return Err(std::io::Error::other(format!(
                "body truncated: {} of {len} bytes",
                rest.len()
            )));
        }
        rest.truncate(len);
        rest
    } else {
        rest
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// RFC 9112 §7.1: the body of a complete chunked message, `None` while incomplete.
pub fn decode_chunked(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if b.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// A client of the demo's JSON API over HTTPS (one connection per request), pinned to the demo's
/// certificate; sends the session cookie and CSRF token it holds like the web app does.
#[derive(Clone)]
pub struct Api {
    addr: SocketAddr,
    /// The pinned certificate's SHA-256; `None` speaks plain HTTP (a harness check only).
    fingerprint: Option<String>,
    /// `vigil_session` value sent as a cookie.
    pub cookie: Option<String>,
    /// Sent as `X-CSRF-Token` on state changes.
    pub csrf: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Api {
    /// An HTTPS client of `addr` accepting only the certificate with SHA-256 `fingerprint`
    /// (`AA:BB:…` as printed, or plain hex).
    pub fn https(addr: SocketAddr, fingerprint: &str) -> Api {
        Api {
            addr,
            fingerprint: Some(fingerprint.to_owned()),
            cookie: None,
            csrf: None,
            user_agent: "vigil-e2e".to_owned(),
        }
    }

    /// A plain-HTTP client of `addr` (for checking the harness against a stand-in server).
    pub fn plain(addr: SocketAddr) -> Api {
        Api {
            addr,
            fingerprint: None,
            cookie: None,
            csrf: None,
            user_agent: "vigil-e2e".to_owned(),
        }
    }

    /// `https://127.0.0.1:PORT`, the Origin the server expects on state changes.
    pub fn origin(&self) -> String {
        let scheme = if self.fingerprint.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// One request; `body` is sent as JSON. Non-GET requests carry `Origin` and the CSRF token.
    pub async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> HttpResponse {
        let body = body.map(Value::to_string);
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\n\
             Connection: close\r\n",
            self.addr, self.user_agent
        );
        if let Some(c) = &self.cookie {
            req.push_str(&format!("Cookie: vigil_session={c}\r\n"));
        }
        if method != "GET" && method != "HEAD" {
            req.push_str(&format!("Origin: {}\r\n", self.origin()));
            if let Some(t) = &self.csrf {
                req.push_str(&format!("X-CSRF-Token: {t}\r\n"));
            }
        }
        match &body {
            Some(b) => req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )),
            None if method == "GET" || method == "HEAD" => req.push_str("\r\n"),
            None => req.push_str("Content-Length: 0\r\n\r\n"),
        }
        let what = format!("{method} {path}");
        let io = async {
            let tcp = tokio::net::TcpStream::connect(self.addr).await?;
            let Some(fingerprint) = &self.fingerprint else {
                return exchange(tcp, req.as_bytes()).await;
            };
            let connector = tokio_rustls::TlsConnector::from(
                vigil_testkit::tls::pinned_client_config(fingerprint),
            );
            let name = ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await?;
            exchange(tls, req.as_bytes()).await
        };
        tokio::time::timeout(Duration::from_secs(60), io)
            .await
            .unwrap_or_else(|_| panic!("{what}: timeout"))
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Takes the `vigil_session` cookie from a response's `Set-Cookie` and the CSRF token from
    /// `GET /api/session`.
    pub async fn adopt_session(&mut self, resp: &HttpResponse) {
        let cookie = resp
            .headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .find_map(|(_, v)| v.strip_prefix("vigil_session="))
            .and_then(|v| v.split(';').next())
            .unwrap_or_else(|| panic!("no vigil_session cookie in {:?}", resp.headers));
        self.cookie = Some(cookie.to_owned());
        self.refresh_csrf().await;
    }

    /// Reads the CSRF token of the current session (`GET /api/session`).
    pub async fn refresh_csrf(&mut self) {
        let s = self.request("GET", "/api/session", None).await;
        assert_eq!(s.status, 200, "GET /api/session: {}", s.text());
        self.csrf = s.json()["csrf_token"].as_str().map(str::to_owned);
        assert!(self.csrf.is_some(), "no csrf_token in {}", s.text());
    }

    /// `POST /api/setup` with the demo's token: creates the admin and holds its session.
    pub async fn setup(&mut self, token: &str, username: &str, password: &str) {
        let body = json!({"token": token, "username": username, "password": password});
        let r = self.request("POST", "/api/setup", Some(&body)).await;
        assert_eq!(r.status, 200, "POST /api/setup: {}", r.text());
        self.adopt_session(&r).await;
    }

    /// `POST /api/login`; holds the new session.
    pub async fn login(&mut self, username: &str, password: &str) {
        let body = json!({"username": username, "password": password});
        let r = self.request("POST", "/api/login", Some(&body)).await;
        assert_eq!(r.status, 200, "POST /api/login: {}", r.text());
        self.adopt_session(&r).await;
    }
}
