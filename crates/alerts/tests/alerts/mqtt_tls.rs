//! MQTT over TLS with a user name and password, against a real Mosquitto whose certificate is
//! issued by a test CA: Vigil connects with `ca_file` and the right password, and is refused
//! (and says why in `status()`) with a wrong password or without the CA.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Broker, Sub};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use vigil_alerts::{Alerts, AlertsConfig, CameraInfo, MqttConfig, Secret, SnapshotFn};

const USER: &str = "vigil";
const PASSWORD: &str = "correct horse battery";

/// Writes ca.pem, server.pem, server.key and a password file into `dir`.
fn pki(dir: &Path) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Vigil test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut server = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    let server_cert = server.signed_by(&key, &ca_cert, &ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    let passwd = dir.join("passwd");
    let ok = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args([USER, PASSWORD])
        .status()
        .expect("mosquitto_passwd (Debian package mosquitto) is missing");
    assert!(ok.success());
    dir.join("ca.pem")
}

fn tls_broker() -> (Broker, PathBuf) {
    let mut ca = PathBuf::new();
    let broker = Broker::start_with(|dir, port| {
        ca = pki(dir);
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {d}/passwd\n\
             cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n",
            d = dir.display()
        )
    });
    // Keep a copy of the CA outside the broker's dir for the clients.
    let copy = std::env::temp_dir().join(format!("vigil-alerts-ca-{}.pem", broker.port));
    std::fs::copy(&ca, &copy).unwrap();
    (broker, copy)
}

fn config(port: u16, ca: Option<PathBuf>, password: &str) -> AlertsConfig {
    let mut m = MqttConfig::new("127.0.0.1");
    m.port = Some(port);
    m.tls = true;
    m.ca_file = ca;
    m.username = Some(USER.into());
    m.password = Some(Secret::new(password));
    m.client_id = Some("vigil-tls-test".into());
    AlertsConfig {
        mqtt: Some(m),
        webhooks: vec![],
    }
}

fn no_snapshot() -> SnapshotFn {
    Arc::new(|_| Box::pin(async { None }))
}

async fn wait_mqtt(
    alerts: &Alerts,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = alerts.status()["mqtt"].clone();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "mqtt status never reached {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tls_subscriber(port: u16, ca: &Path) -> Sub {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut opts = MqttOptions::new("tls-sub", "127.0.0.1", port);
    opts.set_credentials(USER, PASSWORD);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(cfg),
    )));
    Sub::connect_with(opts).await
}

use rustls::pki_types::pem::PemObject as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_password() {
    let (broker, ca) = tls_broker();
    let mut sub = tls_subscriber(broker.port, &ca).await;
    let cams = vec![CameraInfo {
        name: "front".into(),
        zones: vec![],
    }];
    let alerts = Alerts::start(
        config(broker.port, Some(ca.clone()), PASSWORD),
        cams,
        no_snapshot(),
    );
    let s = wait_mqtt(&alerts, "connected", |s| s["state"] == "connected").await;
    assert_eq!(s["broker"], format!("mqtts://127.0.0.1:{}", broker.port));
    sub.topic("vigil/status", b"online").await;
    sub.wait_for("discovery", |p| {
        p.topic == "homeassistant/binary_sensor/vigil_front/motion/config"
    })
    .await;
    alerts.send(vigil_alerts::AlertEvent::CameraOnline {
        camera: "front".into(),
    });
    sub.wait_for("event", |p| p.topic == "vigil/events").await;
    // The password never shows in the status.
    assert!(!alerts.status().to_string().contains(PASSWORD));
    alerts.shutdown().await;

    // Wrong password: refused, and the status says so.
    let alerts = Alerts::start(
        config(broker.port, Some(ca.clone()), "wrong password"),
        vec![],
        no_snapshot(),
    );
    let s = wait_mqtt(&alerts, "refused", |s| s["last_error"].is_string()).await;
    assert_eq!(s["state"], "connecting");
    let err = s["last_error"].as_str().unwrap().to_owned();
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(!err.contains("wrong password"));
    alerts.shutdown().await;

    // Without the test CA (system trust store): the broker's certificate is not trusted.
    let alerts = Alerts::start(config(broker.port, None, PASSWORD), vec![], no_snapshot());
    let s = wait_mqtt(&alerts, "TLS error", |s| s["last_error"].is_string()).await;
    assert_ne!(s["state"], "connected");
    let err = s["last_error"].as_str().unwrap().to_lowercase();
    assert!(err.contains("tls") || err.contains("certificate"), "{err}");
    alerts.shutdown().await;
    let _ = std::fs::remove_file(ca);
}
