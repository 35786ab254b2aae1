//! A live viewer's side of Vigil's web app, shared by the `live` and `soak` benches: the TLS
//! connection pinned to the certificate the server printed, the first admin created through
//! the one-time setup link, and the WebSocket of `/api/cameras/NAME/live`.
//!
//! `vigil serve` and `vigil demo` both print `listening https ADDR`,
//! `tls-fingerprint sha256 HEX` and, while no user exists, `setup-url …/#/setup/TOKEN` on
//! stdout; [`WebAnnounce`] collects those lines ([`await_web_app`] waits for them),
//! [`Target::web_app`] and [`create_admin`] turn them into a logged-in viewer target, and
//! [`open_live`] opens a viewer's socket. [`start_demo`] does all of it for `vigil demo`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::WebSocketStream;

use crate::children::ChildGuard;
use crate::BenchError;

/// A TLS connection to the web app.
pub type TlsTcp = TlsStream<tokio::net::TcpStream>;

/// The client end of a live WebSocket.
pub type LiveSocket = WebSocketStream<TlsTcp>;

/// A client-side failure, with what we were doing.
fn client_err<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> BenchError {
    move |e| BenchError::Client(format!("{what}: {e}"))
}

/// SHA-256 of a certificate as `AB:CD:…`, the form `vigil` prints on `tls-fingerprint`.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Where viewers connect and what they send.
#[derive(Clone)]
pub struct Target {
    /// The server's HTTPS address.
    pub addr: SocketAddr,
    /// Client TLS configuration (pinned to the server's certificate).
    pub tls: Arc<rustls::ClientConfig>,
    /// Path and query of the live WebSocket.
    pub path: String,
    /// Extra request headers (cookie, origin).
    pub headers: Vec<(&'static str, String)>,
}

impl Target {
    /// The web app at `addr` whose certificate has SHA-256 `sha` (as printed), viewing `path`,
    /// with the `Origin` header its cross-site check expects; no session yet (see
    /// [`create_admin`]).
    pub fn web_app(addr: SocketAddr, sha: &str, path: impl Into<String>) -> Target {
        Target {
            addr,
            tls: vigil_testkit::tls::pinned_client_config(sha),
            path: path.into(),
            headers: vec![("origin", origin(addr))],
        }
    }

    /// The same server, session and headers, viewing another path.
    pub fn with_path(&self, path: impl Into<String>) -> Target {
        Target {
            path: path.into(),
            ..self.clone()
        }
    }
}

/// `https://127.0.0.1:PORT`: the origin the web app accepts for a server on loopback.
fn origin(addr: SocketAddr) -> String {
    format!("https://127.0.0.1:{}", addr.port())
}

/// `/api/cameras/CAMERA/live?stream=main`.
pub fn live_path(camera: &str) -> String {
    format!("/api/cameras/{camera}/live?stream=main")
}

/// A TLS connection to the target (server name `localhost`, certificate pinned).
pub async fn connect_tls(t: &Target) -> Result<TlsTcp, BenchError> {
    let tcp = tokio::net::TcpStream::connect(t.addr)
        .await
        .map_err(BenchError::io(format!("connecting to {}", t.addr)))?;
    tcp.set_nodelay(true)
        .map_err(BenchError::io("setting TCP_NODELAY"))?;
    let name = ServerName::try_from("localhost").map_err(client_err("server name"))?;
    tokio_rustls::TlsConnector::from(t.tls.clone())
        .connect(name, tcp)
        .await
        .map_err(BenchError::io(format!("TLS handshake with {}", t.addr)))
}

/// Opens the target's live WebSocket with its headers.
pub async fn open_live(t: &Target) -> Result<LiveSocket, BenchError> {
    let stream = connect_tls(t).await?;
    let url = format!("wss://127.0.0.1:{}{}", t.addr.port(), t.path);
    let mut request = url
        .into_client_request()
        .map_err(client_err("live request"))?;
    for (k, v) in &t.headers {
        request
            .headers_mut()
            .insert(*k, v.parse().map_err(client_err("header value"))?);
    }
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(client_err("WebSocket handshake"))?;
    Ok(ws)
}

/// The web app's lines on a server's stdout, collected as they arrive.
#[derive(Debug, Default, Clone)]
pub struct WebAnnounce {
    /// From `listening https ADDR`.
    pub addr: Option<SocketAddr>,
    /// From `tls-fingerprint sha256 HEX`.
    pub sha: Option<String>,
    /// The token of `setup-url …/#/setup/TOKEN`.
    pub token: Option<String>,
}

impl WebAnnounce {
    /// Takes what `line` says about the web app; other lines are ignored.
    pub fn feed(&mut self, line: &str) -> Result<(), BenchError> {
        if let Some(a) = line.strip_prefix("listening https ") {
            self.addr = Some(
                a.trim()
                    .parse()
                    .map_err(client_err("the `listening https` address"))?,
            );
        } else if let Some(f) = line.strip_prefix("tls-fingerprint sha256 ") {
            self.sha = Some(f.trim().to_owned());
        } else if let Some((_, t)) = line.split_once("#/setup/") {
            self.token = Some(t.trim().to_owned());
        }
        Ok(())
    }

    /// All three lines seen.
    pub fn complete(&self) -> bool {
        self.addr.is_some() && self.sha.is_some() && self.token.is_some()
    }
}

/// Creates the first admin through the setup link's `token` (`POST /api/setup`) and adds the
/// session cookie it answers with to `target`'s headers.
pub async fn create_admin(
    target: &mut Target,
    token: &str,
    username: &str,
    password: &str,
) -> Result<(), BenchError> {
    let body = serde_json::json!({
        "token": token, "username": username, "password": password
    })
    .to_string();
    let request = format!(
        "POST /api/setup HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        target.addr.port(),
        origin(target.addr),
        body.len()
    );
    let mut tls = connect_tls(target).await?;
    tls.write_all(request.as_bytes())
        .await
        .map_err(BenchError::io("sending POST /api/setup"))?;
    let mut out = Vec::new();
    // The server may close without close_notify; what was read is what counts.
    let _ = tls.read_to_end(&mut out).await;
    let response = String::from_utf8_lossy(&out);
    if !response.starts_with("HTTP/1.1 200") {
        return Err(BenchError::Client(format!(
            "setup failed: {}",
            response.lines().next().unwrap_or("")
        )));
    }
    let cookie = session_cookie(&response)
        .ok_or_else(|| BenchError::Client("setup answered without a session cookie".into()))?;
    target.headers.push(("cookie", cookie));
    Ok(())
}

/// `vigil_session=…` from the `Set-Cookie` headers of an HTTP response.
fn session_cookie(response: &str) -> Option<String> {
    response
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.trim()
                .split(';')
                .next()
                .filter(|c| c.starts_with("vigil_session="))
        })
        .map(str::to_owned)
}

/// Reads a server's stdout `lines` until the web app's three lines ([`WebAnnounce`]) and every
/// line of `wanted` (e.g. `recording front/main`, compared trimmed) have arrived, for at most
/// `timeout`; the error names `log`, where the server's stderr goes.
pub fn await_web_app(
    lines: &mpsc::Receiver<String>,
    wanted: &[String],
    timeout: Duration,
    log: &Path,
) -> Result<WebAnnounce, BenchError> {
    let mut web = WebAnnounce::default();
    let mut missing: BTreeSet<&str> = wanted.iter().map(|w| w.trim()).collect();
    let deadline = Instant::now() + timeout;
    while !(web.complete() && missing.is_empty()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).map_err(|e| {
            BenchError::Server(format!(
                "{} after {timeout:?}: web app lines {}, still waiting for {} of {} lines \
                 such as {:?}; see {}",
                match e {
                    mpsc::RecvTimeoutError::Timeout => "not up",
                    mpsc::RecvTimeoutError::Disconnected => "exited",
                },
                if web.complete() { "seen" } else { "missing" },
                missing.len(),
                wanted.len(),
                missing.first().copied().unwrap_or(""),
                log.display()
            ))
        })?;
        missing.remove(line.trim());
        web.feed(&line)?;
    }
    Ok(web)
}

/// The user [`start_demo`] creates.
pub const DEMO_USER: &str = "bench";

/// Its password.
pub const DEMO_PASSWORD: &str = "bench password that is long enough";

/// `vigil demo` running in a temporary directory, its admin created, camera `front` recording.
/// Dropping it stops the process (SIGTERM, SIGKILL after 10 s), then removes the directory.
pub struct Demo {
    /// The `vigil demo` process.
    pub child: ChildGuard,
    /// `front`'s main stream with the admin's session cookie.
    pub target: Target,
    /// Its stdout lines after start-up (`recording …`, `offline …`), as they arrive.
    pub lines: mpsc::Receiver<String>,
    /// Its data directory (`data/`) and stderr (`demo.log`).
    pub dir: tempfile::TempDir,
}

/// Starts `vigil demo` (`vigil`, else the binary next to this one) on 127.0.0.1 with ports the
/// OS picks, waits (at most 60 s) for its web app and `recording front/main`, and creates the
/// admin ([`DEMO_USER`]) through the setup link, on `rt`.
pub fn start_demo(
    rt: &tokio::runtime::Runtime,
    vigil: Option<PathBuf>,
) -> Result<Demo, BenchError> {
    let bin = crate::servers::vigil_binary(vigil)?;
    let dir = tempfile::tempdir().map_err(BenchError::io("creating a temporary directory"))?;
    let log = dir.path().join("demo.log");
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("demo")
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--rtsp", "127.0.0.1:0"]);
    let (child, lines) = ChildGuard::spawn_with_lines(cmd, &log, Duration::from_secs(10))?;
    let web = await_web_app(
        &lines,
        &["recording front/main".to_owned()],
        Duration::from_secs(60),
        &log,
    )
    .map_err(|e| BenchError::Server(format!("vigil demo did not come up: {e}")))?;
    let (Some(addr), Some(sha), Some(token)) = (web.addr, web.sha, web.token) else {
        return Err(BenchError::Server(
            "vigil demo printed no address, fingerprint or setup link".into(),
        ));
    };
    let mut target = Target::web_app(addr, &sha, live_path("front"));
    rt.block_on(create_admin(&mut target, &token, DEMO_USER, DEMO_PASSWORD))?;
    Ok(Demo {
        child,
        target,
        lines,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_lines() {
        let mut a = WebAnnounce::default();
        for line in [
            "recording front/main",
            "listening https 127.0.0.1:4433",
            "tls-fingerprint sha256 AB:CD",
        ] {
            a.feed(line).unwrap();
        }
        assert!(!a.complete());
        a.feed("setup-url https://localhost:4433/#/setup/tok123")
            .unwrap();
        assert!(a.complete());
        assert_eq!(a.addr, Some("127.0.0.1:4433".parse().unwrap()));
        assert_eq!(a.sha.as_deref(), Some("AB:CD"));
        assert_eq!(a.token.as_deref(), Some("tok123"));
        assert!(a.feed("listening https nonsense").is_err());
    }

    #[test]
    fn awaits_web_app_and_wanted_lines() {
        let (tx, rx) = mpsc::channel();
        for line in [
            "listening https 127.0.0.1:4433",
            "recording cam001/main",
            "tls-fingerprint sha256 AB:CD",
            "setup-url https://localhost:4433/#/setup/tok",
            "recording cam002/main ",
        ] {
            tx.send(line.to_owned()).unwrap();
        }
        let wanted = [
            "recording cam001/main".to_owned(),
            "recording cam002/main".to_owned(),
        ];
        let web = await_web_app(&rx, &wanted, Duration::from_secs(5), Path::new("x.log")).unwrap();
        assert_eq!(web.token.as_deref(), Some("tok"));
        // A line still missing when the sender is gone: an error naming the log.
        tx.send("listening https 127.0.0.1:1".to_owned()).unwrap();
        drop(tx);
        let e = await_web_app(&rx, &wanted, Duration::from_secs(5), Path::new("x.log"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exited") && e.contains("x.log"), "{e}");
    }

    #[test]
    fn cookie_from_response() {
        let r = "HTTP/1.1 200 OK\r\nset-cookie: other=1\r\nSet-Cookie: vigil_session=abc; \
                 HttpOnly; Secure\r\n\r\n{}";
        assert_eq!(session_cookie(r).as_deref(), Some("vigil_session=abc"));
        assert_eq!(session_cookie("HTTP/1.1 200 OK\r\n\r\n"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(live_path("cam003"), "/api/cameras/cam003/live?stream=main");
        // SHA-256 of nothing.
        assert!(fingerprint(b"").starts_with("E3:B0:C4:42:"));
    }
}
