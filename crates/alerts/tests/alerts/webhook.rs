//! Webhooks against a local HTTP receiver that checks the signature the way docs/alerts.md
//! tells users to: delivery, the signature (and a tampered one refused), filters, a receiver
//! that goes away and comes back, give-up, and that `send` never waits for a slow endpoint.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use tokio::sync::mpsc;
use vigil_alerts::sign::{self, VerifyError};
use vigil_alerts::{AlertEvent, Alerts, AlertsConfig, SnapshotFn, WebhookConfig};

const SECRET: &str = "webhook-test-secret-0123456789";

/// What the receiver got: headers, body, and whether the signature verified.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    verified: Result<(), VerifyError>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn check(headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    let header = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    sign::verify_request(SECRET.as_bytes(), header, body, now_unix())
}

/// A receiver on `addr` (port 0: any free one); answers 204 to a good signature, 401 otherwise.
struct Receiver {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

async fn receiver(addr: SocketAddr, tx: mpsc::UnboundedSender<Received>) -> Receiver {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let verified = check(&headers, &body);
                let status = if verified.is_ok() {
                    StatusCode::NO_CONTENT
                } else {
                    StatusCode::UNAUTHORIZED
                };
                let _ = tx.send(Received {
                    headers,
                    body,
                    verified,
                });
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver { addr, task }
}

impl Receiver {
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        // The listener is closed once the task is gone: connecting must now fail.
        assert!(tokio::net::TcpStream::connect(self.addr).await.is_err());
    }
}

fn no_snapshot() -> SnapshotFn {
    Arc::new(|_| Box::pin(async { None }))
}

fn hook(url: String, f: impl FnOnce(&mut WebhookConfig)) -> AlertsConfig {
    let mut w = WebhookConfig::new(url, SECRET);
    f(&mut w);
    AlertsConfig {
        mqtt: None,
        webhooks: vec![w],
    }
}

fn motion_start(id: i64) -> AlertEvent {
    AlertEvent::MotionStart {
        id,
        camera: "yard".into(),
        zones: vec![],
        start_us: 1_700_000_000_000_000,
        score: 0.3,
        bbox: None,
    }
}

fn motion_end(id: i64) -> AlertEvent {
    AlertEvent::MotionEnd {
        id,
        camera: "yard".into(),
        zones: vec![],
        start_us: 1_700_000_000_000_000,
        end_us: 1_700_000_002_000_000,
        peak_score: 0.4,
        bbox: None,
    }
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no webhook within 20 s")
        .unwrap()
}

async fn wait_status(
    alerts: &Alerts,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = alerts.status()["webhooks"][0].clone();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "webhook status never reached {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn signed_delivery_and_tampering_refused() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = receiver("127.0.0.1:0".parse().unwrap(), tx).await;
    let url = format!("http://127.0.0.1:{}/hook?token=query-secret", r.addr.port());
    let alerts = Alerts::start(hook(url, |_| {}), vec![], no_snapshot());

    let ev = motion_start(5);
    alerts.send(ev.clone());
    let got = recv(&mut rx).await;
    assert_eq!(got.verified, Ok(()), "signature did not verify");
    assert_eq!(got.body.as_ref(), ev.to_json().as_slice());
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.headers["x-vigil-event"], "motion_start");
    assert!(got.headers.contains_key("x-vigil-delivery"));
    let s = wait_status(&alerts, "delivered", |s| s["delivered"] == 1).await;
    assert_eq!(s["failed"], 0);
    assert_eq!(s["queued"], 0);
    // The status never shows a query value (it may hold a token; vigil_auth::secret::redact).
    assert_eq!(
        s["url"],
        format!("http://127.0.0.1:{}/hook?token=redacted", r.addr.port())
    );

    // The receiver's check refuses the same request with a changed body, or re-signed with
    // another key, or replayed later than the window.
    let mut tampered = got.body.to_vec();
    let pos = tampered.iter().position(|&b| b == b'5').unwrap();
    tampered[pos] = b'6';
    assert_eq!(check(&got.headers, &tampered), Err(VerifyError::Mismatch));
    let ts = got.headers[sign::TIMESTAMP_HEADER].to_str().unwrap();
    let forged = sign::sign(b"not-the-right-secret!", ts, &got.body);
    let mut h = got.headers.clone();
    h.insert(sign::SIGNATURE_HEADER, forged.parse().unwrap());
    assert_eq!(check(&h, &got.body), Err(VerifyError::Mismatch));
    let sig = got.headers[sign::SIGNATURE_HEADER].to_str().unwrap();
    let later = ts.parse::<u64>().unwrap() + 301;
    assert_eq!(
        sign::verify(SECRET.as_bytes(), ts, &got.body, sig, later, 300),
        Err(VerifyError::Stale)
    );
    alerts.shutdown().await;
    r.stop().await;
}

#[tokio::test]
async fn receiver_rejecting_the_signature_counts_as_failed() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = receiver("127.0.0.1:0".parse().unwrap(), tx).await;
    let url = format!("http://127.0.0.1:{}/hook", r.addr.port());
    // Vigil signs with a different secret than the receiver expects: a 401, not retried.
    let mut cfg = hook(url, |_| {});
    cfg.webhooks[0].secret = vigil_alerts::Secret::new("a-different-secret-xyz");
    let alerts = Alerts::start(cfg, vec![], no_snapshot());
    alerts.send(motion_start(1));
    assert_eq!(recv(&mut rx).await.verified, Err(VerifyError::Mismatch));
    let s = wait_status(&alerts, "failed", |s| s["failed"] == 1).await;
    assert_eq!(s["delivered"], 0);
    assert_eq!(s["last_error"], "HTTP 401");
    alerts.shutdown().await;
    // No retry arrived.
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn filter_selects_event_types() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = receiver("127.0.0.1:0".parse().unwrap(), tx).await;
    let url = format!("http://127.0.0.1:{}/hook", r.addr.port());
    let alerts = Alerts::start(
        hook(url, |w| w.events = Some(vec!["motion_end".into()])),
        vec![],
        no_snapshot(),
    );
    alerts.send(motion_start(1));
    alerts.send(AlertEvent::CameraOnline {
        camera: "yard".into(),
    });
    alerts.send(motion_end(1));
    let got = recv(&mut rx).await;
    assert_eq!(got.headers["x-vigil-event"], "motion_end");
    wait_status(&alerts, "1 delivered", |s| s["delivered"] == 1).await;
    alerts.shutdown().await;
    assert!(rx.try_recv().is_err(), "a filtered-out event was delivered");
}

#[tokio::test]
async fn receiver_down_then_back_gets_everything_in_order() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = receiver("127.0.0.1:0".parse().unwrap(), tx.clone()).await;
    let addr = r.addr;
    let alerts = Alerts::start(
        hook(format!("http://{addr}/hook"), |_| {}),
        vec![],
        no_snapshot(),
    );
    alerts.send(motion_start(1));
    assert_eq!(recv(&mut rx).await.verified, Ok(()));

    r.stop().await;
    alerts.send(motion_end(1));
    alerts.send(motion_start(2));
    let s = wait_status(&alerts, "retrying", |s| {
        s["last_error"].is_string() && s["queued"] == 2
    })
    .await;
    assert!(s["last_error"].as_str().unwrap().contains("connect"), "{s}");
    assert_eq!(s["failed"], 0);

    // Back on the same port: both arrive, in order, each correctly signed.
    let r = receiver(addr, tx).await;
    let a = recv(&mut rx).await;
    let b = recv(&mut rx).await;
    assert_eq!((a.verified.clone(), b.verified.clone()), (Ok(()), Ok(())));
    assert_eq!(a.headers["x-vigil-event"], "motion_end");
    assert_eq!(b.headers["x-vigil-event"], "motion_start");
    let s = wait_status(&alerts, "3 delivered", |s| s["delivered"] == 3).await;
    assert_eq!(
        (s["failed"].as_u64(), s["queued"].as_u64()),
        (Some(0), Some(0))
    );
    alerts.shutdown().await;
    r.stop().await;
}

#[tokio::test]
async fn dead_endpoint_is_given_up_and_counted() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let alerts = Alerts::start(
        hook(format!("http://127.0.0.1:{port}/hook"), |w| {
            w.give_up_after_s = 2
        }),
        vec![],
        no_snapshot(),
    );
    let t0 = Instant::now();
    alerts.send(motion_start(1));
    alerts.send(motion_end(1));
    let s = wait_status(&alerts, "2 failed", |s| s["failed"] == 2).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "gave up after {took:?}"
    );
    assert_eq!(s["queued"], 0);
    assert_eq!(s["delivered"], 0);
    assert!(
        s["last_error"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 2 s"),
        "{s}"
    );
    alerts.shutdown().await;
}

#[tokio::test]
async fn hung_endpoint_never_blocks_send_and_queue_is_bounded() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let alerts = Alerts::start(
        hook(format!("http://127.0.0.1:{port}/hook"), |w| w.timeout_s = 1),
        vec![],
        no_snapshot(),
    );
    let t0 = Instant::now();
    for i in 0..3000 {
        alerts.send(motion_start(i));
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "3000 sends took {took:?}"
    );
    // 1000 wait (plus the one in flight); the rest were dropped and counted as failed.
    let s = wait_status(&alerts, "bounded", |s| {
        s["queued"].as_u64().unwrap() <= 1001
            && s["failed"].as_u64().unwrap() + s["queued"].as_u64().unwrap() == 3000
    })
    .await;
    assert!(s["failed"].as_u64().unwrap() >= 1999, "{s}");
    let s = wait_status(&alerts, "timeout error", |s| {
        s["last_error"] == "timed out after 1 s"
    })
    .await;
    assert_eq!(s["delivered"], 0);
    let t0 = Instant::now();
    let handle = alerts.clone();
    alerts.shutdown().await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t0.elapsed()
    );
    // What could not be delivered by shutdown is counted as failed, not forgotten.
    let s = handle.status()["webhooks"][0].clone();
    assert_eq!(
        (s["failed"].as_u64(), s["queued"].as_u64()),
        (Some(3000), Some(0)),
        "{s}"
    );
    holder.abort();
}

#[test]
fn invalid_webhook_is_disabled_and_shown() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = AlertsConfig {
            mqtt: None,
            webhooks: vec![WebhookConfig::new("ftp://x/y", SECRET)],
        };
        let alerts = Alerts::start(cfg, vec![], no_snapshot());
        alerts.send(motion_start(1));
        let s = alerts.status();
        assert_eq!(s["mqtt"]["state"], "disabled");
        let w = &s["webhooks"][0];
        assert!(
            w["last_error"]
                .as_str()
                .unwrap()
                .contains("only http and https"),
            "{w}"
        );
        alerts.shutdown().await;
    });
}

/// An https receiver with a certificate from a test CA; Vigil trusts it through `ca_file`
/// and refuses it without.
#[tokio::test]
async fn https_endpoint_with_own_ca() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Vec<u8>)>();
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // Just enough HTTP/1.1 for one request with Content-Length.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = tls.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap();
                    if buf.len() >= end + 4 + len {
                        let body = buf[end + 4..end + 4 + len].to_vec();
                        tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                            .await
                            .unwrap();
                        tls.shutdown().await.ok();
                        let _ = tx.send((head, body));
                        return;
                    }
                }
            });
        }
    });

    let url = format!("https://localhost:{port}/hook");
    let trusted = Alerts::start(
        hook(url.clone(), |w| w.ca_file = Some(ca_file.clone())),
        vec![],
        no_snapshot(),
    );
    trusted.send(motion_start(3));
    let (head, body) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1"), "{head}");
    assert_eq!(body, motion_start(3).to_json());
    let ts = head
        .lines()
        .find_map(|l| l.strip_prefix("x-vigil-timestamp: "))
        .unwrap();
    let sig = head
        .lines()
        .find_map(|l| l.strip_prefix("x-vigil-signature: "))
        .unwrap();
    assert_eq!(
        sign::verify(SECRET.as_bytes(), ts, &body, sig, now_unix(), 300),
        Ok(())
    );
    wait_status(&trusted, "delivered over https", |s| s["delivered"] == 1).await;
    trusted.shutdown().await;

    // The system trust store does not know the test CA: never delivered, error says why.
    let untrusted = Alerts::start(hook(url, |w| w.give_up_after_s = 1), vec![], no_snapshot());
    untrusted.send(motion_start(4));
    let s = wait_status(&untrusted, "failed", |s| s["failed"] == 1).await;
    let err = s["last_error"].as_str().unwrap().to_lowercase();
    assert!(err.contains("tls") && err.contains("certificate"), "{err}");
    untrusted.shutdown().await;
    assert!(rx.try_recv().is_err());
    server.abort();
}

/// An endpoint answering 200 with an endless body: delivered, and Vigil neither buffers the
/// body nor waits for its end.
#[tokio::test]
async fn endless_response_body_is_not_buffered() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await;
                let chunk = format!("{:x}\r\n{}\r\n", 60_000, "x".repeat(60_000));
                while s.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    let alerts = Alerts::start(
        hook(format!("http://127.0.0.1:{port}/hook"), |w| {
            w.timeout_s = 30
        }),
        vec![],
        no_snapshot(),
    );
    let t0 = Instant::now();
    alerts.send(motion_start(1));
    wait_status(&alerts, "delivered", |s| s["delivered"] == 1).await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    alerts.shutdown().await;
    server.abort();
}
