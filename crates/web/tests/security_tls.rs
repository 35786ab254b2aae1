//! Security tests of the web app over its real HTTPS listener: raw request targets, transport
//! limits (slow clients, connection floods), and `start()` with its certificate.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{env, env_with};
use serde_json::json;
use vigil_nvr::{Nvr, NvrConfig};

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn tls_connect(
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    tls_connect_from("127.0.0.1", addr).await
}

/// A plain TCP connection from `ip`, an address of 127.0.0.0/8 (several sources on one host).
async fn tcp_from(ip: &str, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(format!("{ip}:0").parse().unwrap())?;
    sock.connect(addr).await
}

async fn tls_connect_from(
    ip: &str,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tcp_from(ip, addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// Sends raw bytes over TLS and returns what the server answered before closing.
async fn raw_https(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = tls_connect(addr).await.unwrap();
    tls.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn over_https_raw_paths_and_unauthenticated_requests() {
    let e = env().await;
    let material = vigil_web::tls::load_or_create(&e.state.data_dir, &[]).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handle =
        vigil_web::server::serve(listener, material.server_config.clone(), e.state.clone())
            .unwrap();
    let addr = handle.local_addr();
    for target in [
        "/assets/../Cargo.toml",
        "/assets/%2e%2e%2fCargo.toml",
        "/assets//etc/passwd",
        "/../../etc/passwd",
    ] {
        let resp = raw_https(
            addr,
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        let status = resp.lines().next().unwrap_or("");
        assert!(
            status.contains(" 404 ") || status.contains(" 400 "),
            "{target}: {status}"
        );
        assert!(
            !resp.contains("[package]") && !resp.contains("root:"),
            "{target}"
        );
    }
    let resp = raw_https(
        addr,
        b"GET /api/cameras HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert!(resp
        .to_ascii_lowercase()
        .contains("content-security-policy"));
    // An absolute-form target naming another host does not bypass anything either.
    let resp = raw_https(
        addr,
        b"GET https://localhost/api/users HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 401") || resp.starts_with("HTTP/1.1 400"),
        "{resp}"
    );
    // A huge request head is refused.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let resp = raw_https(addr, big.as_bytes()).await;
    assert!(
        !resp.starts_with("HTTP/1.1 200"),
        "{}",
        resp.lines().next().unwrap_or("")
    );
    let mut closing = e.state.closing.subscribe();
    assert!(!*closing.borrow());
    handle.shutdown().await;
    assert!(
        *closing.borrow_and_update(),
        "long-lived answers are told about the shutdown"
    );
}

#[tokio::test]
async fn start_serves_https_and_keeps_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let nvr = Nvr::start(NvrConfig {
        data_dir: dir.path().to_owned(),
        recorder: Default::default(),
        cameras: Vec::new(),
        announce: false,
    })
    .await
    .unwrap();
    let cfg = vigil_web::WebConfig {
        offsite: None,
        webrtc: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        cert: None,
        key: None,
        data_dir: dir.path().to_owned(),
        limits: vigil_web::edge::Limits::default(),
        cloud: None,
        public_url: None,
    };
    let h = vigil_web::start(cfg.clone(), nvr.clone(), Arc::new(|| json!({})))
        .await
        .unwrap();
    let resp = raw_https(
        h.local_addr(),
        b"GET /api/setup HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains(r#"{"needed":true}"#), "{resp}");
    h.shutdown().await;
    let first = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
    let h = vigil_web::start(cfg, nvr, Arc::new(|| json!({})))
        .await
        .unwrap();
    h.shutdown().await;
    assert_eq!(
        std::fs::read(dir.path().join("tls/cert.pem")).unwrap(),
        first,
        "the certificate is kept"
    );
}

#[tokio::test]
async fn slow_clients_and_connection_floods_are_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let e = env_with(true, false).await;
    let material = vigil_web::tls::load_or_create(&e.state.data_dir, &[]).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handle =
        vigil_web::server::serve(listener, material.server_config.clone(), e.state.clone())
            .unwrap();
    let addr = handle.local_addr();

    // Slowloris: a request head that never ends is dropped after the header read timeout.
    let started = std::time::Instant::now();
    let mut slow = tls_connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        vigil_web::server::HEADER_READ_TIMEOUT + Duration::from_secs(5),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(
        read.is_ok(),
        "the connection was still open after the header read timeout"
    );
    assert!(!String::from_utf8_lossy(&buf).contains(" 200 "));
    assert!(started.elapsed() >= vigil_web::server::HEADER_READ_TIMEOUT - Duration::from_secs(1));

    // One address cannot hold more than its share of connections.
    let mut held = Vec::new();
    for _ in 0..vigil_web::server::MAX_CONNECTIONS_PER_ADDRESS {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tls_connect(addr).await.is_err(),
        "a connection beyond the limit was served"
    );
    held.pop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = raw_https(
        addr,
        b"GET /api/setup HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    drop(held);
    handle.shutdown().await;
}

/// Small caps and short deadlines through the shared HTTPS edge: a flood from 127.0.0.2 does
/// not lock out 127.0.0.1, half-open connections are closed at the handshake deadline, and a
/// body sent a byte at a time is cut with 408 while a normal request is served.
#[tokio::test]
async fn one_address_cannot_lock_out_another_and_slow_bodies_get_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let e = env_with(true, false).await;
    let material = vigil_web::tls::load_or_create(&e.state.data_dir, &[]).unwrap();
    let limits = vigil_web::edge::Limits {
        caps: vigil_auth::admission::Caps::new(8, 4),
        handshake_timeout: Duration::from_secs(1),
        body_grace: Duration::from_millis(500),
        min_body_rate: 1000,
        // Far beyond the test's bound below: the cut must come from the minimum rate.
        body_deadline: Duration::from_secs(30),
        ..vigil_web::edge::Limits::default()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let handle = vigil_web::server::serve_with(
        listener,
        material.server_config.clone(),
        e.state.clone(),
        limits,
    )
    .unwrap();
    let addr = handle.local_addr();

    // 127.0.0.2 opens five times the server's total of half-open connections.
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(tcp_from("127.0.0.2", addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        handle.open_connections() <= 4,
        "{}",
        handle.open_connections()
    );

    // 127.0.0.3 sends a login body a byte every 200 ms.
    let slow = tokio::spawn(async move {
        let mut tls = tls_connect_from("127.0.0.3", addr).await.unwrap();
        tls.write_all(
            b"POST /api/login HTTP/1.1\r\nHost: vigil.test:8443\r\nOrigin: https://vigil.test:8443\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        let mut b = [0u8; 1024];
        for _ in 0..40 {
            if tls.write_all(b" ").await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(200), tls.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => out.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
        }
        (
            String::from_utf8_lossy(&out).into_owned(),
            started.elapsed(),
        )
    });

    // Meanwhile 127.0.0.1 is served.
    let resp = raw_https(
        addr,
        b"GET /api/setup HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let (slow_resp, took) = slow.await.unwrap();
    assert!(
        slow_resp.starts_with("HTTP/1.1 408"),
        "{slow_resp:?} after {took:?}"
    );
    // The rate check cuts it soon after the 0.5 s grace (5 B/s < 1000 B/s); the 30 s total
    // deadline would be far later.
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Every slot comes back: the 408 closed its connection and the flood's half-open ones
    // were dropped at the handshake deadline.
    let mut b = [0u8; 16];
    for s in &mut flood {
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut b))
            .await
            .expect("a half-open connection outlived the handshake deadline");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while handle.open_connections() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(handle.open_connections(), 0);
    handle.shutdown().await;
}
