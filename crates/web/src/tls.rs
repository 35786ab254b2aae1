//! TLS material for the HTTPS (and later RTSPS) listeners: a self-signed certificate generated
//! on first run under `<data_dir>/tls/`, or the operator's own certificate and key.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

/// A server configuration ready for a TLS listener, and what to tell the operator about it.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// TLS 1.2+ server configuration (ring provider, ALPN `http/1.1`).
    pub server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate's DER, `AA:BB:...`, for users to compare on first visit.
    pub fingerprint_sha256: String,
    /// True if the certificate was generated just now.
    pub created: bool,
}

/// Paths of the generated certificate and key under `data_dir`.
pub fn default_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Loads `<data_dir>/tls/{cert,key}.pem`, generating a self-signed ECDSA P-256 certificate for
/// localhost, 127.0.0.1, ::1 and `hostnames` if they do not exist yet. An existing certificate
/// is kept even if `hostnames` changed (delete the files to regenerate).
pub fn load_or_create(data_dir: &Path, hostnames: &[String]) -> anyhow::Result<TlsMaterial> {
    let (cert_path, key_path) = default_paths(data_dir);
    let created = match (cert_path.exists(), key_path.exists()) {
        (true, true) => false,
        (false, false) => {
            generate(&cert_path, &key_path, hostnames)?;
            true
        }
        _ => bail!(
            "only one of {} and {} exists; remove the other one to generate a new certificate",
            cert_path.display(),
            key_path.display()
        ),
    };
    let mut m = load_files(&cert_path, &key_path)?;
    m.created = created;
    Ok(m)
}

/// Loads the operator's own PEM certificate chain and private key.
pub fn load_files(cert_path: &Path, key_path: &Path) -> anyhow::Result<TlsMaterial> {
    warn_if_key_readable(key_path);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .with_context(|| format!("reading certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert_path.display()))?;
    let Some(leaf) = certs.first() else {
        bail!("{} contains no certificate", cert_path.display());
    };
    let fingerprint_sha256 = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_file(key_path)
        .with_context(|| format!("reading private key {}", key_path.display()))?;
    let server_config = server_config(certs, key)?;
    Ok(TlsMaterial {
        server_config,
        fingerprint_sha256,
        created: false,
    })
}

/// Builds a TLS 1.2/1.3-only server configuration with the ring provider.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and private key do not form a usable pair")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `AA:BB:...` SHA-256 of a certificate's DER.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let d = Sha256::digest(cert.as_ref());
    d.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn warn_if_key_readable(key_path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = fs::metadata(key_path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %key_path.display(), "TLS private key is readable by other users; run `chmod 600` on it");
            }
        }
    }
}

fn write_private(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

fn generate(cert_path: &Path, key_path: &Path, hostnames: &[String]) -> anyhow::Result<()> {
    let dir = cert_path
        .parent()
        .context("certificate path has no parent")?;
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;

    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for h in hostnames {
        let h = h.trim();
        if !h.is_empty() && !sans.iter().any(|s| s.eq_ignore_ascii_case(h)) {
            sans.push(h.to_owned());
        }
    }
    // rcgen turns SANs that parse as IP addresses into iPAddress entries.
    let mut params = rcgen::CertificateParams::new(sans).context("certificate subject names")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Vigil self-signed");
    let year = 1970
        + SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / 31_556_952;
    let year = i32::try_from(year).unwrap_or(2025);
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating key")?;
    let cert = params.self_signed(&key).context("signing certificate")?;
    // Key first: a cert without its key is detected above, a key without a cert too.
    write_private(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_private(cert_path, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(path = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_loads_same_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), &["cam.example".to_owned()]).unwrap();
        assert!(a.created);
        assert_eq!(a.fingerprint_sha256.len(), 32 * 3 - 1);
        let b = load_or_create(dir.path(), &[]).unwrap();
        assert!(!b.created);
        assert_eq!(a.fingerprint_sha256, b.fingerprint_sha256);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let (_, key) = default_paths(dir.path());
            assert_eq!(
                fs::metadata(key).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert_eq!(
                fs::metadata(dir.path().join("tls"))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777,
                0o700
            );
        }
        // The SANs include the requested host name.
        let (cert, _) = default_paths(dir.path());
        let der = CertificateDer::from_pem_file(cert).unwrap();
        assert!(der.as_ref().windows(11).any(|w| w == b"cam.example"));
    }

    #[test]
    fn half_present_material_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), &[]).unwrap();
        let (cert, _) = default_paths(dir.path());
        fs::remove_file(cert).unwrap();
        assert!(load_or_create(dir.path(), &[]).is_err());
    }
}
