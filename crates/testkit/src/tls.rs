//! A TLS client that trusts one certificate: the self-signed one whose SHA-256 fingerprint
//! Vigil printed, as a user pins it on first visit.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// A client configuration that accepts exactly the server certificate whose SHA-256 is
/// `fingerprint` (hex in either case, with or without `:` separators, as Vigil prints it)
/// and nothing else; signatures are still verified.
pub fn pinned_client_config(fingerprint: &str) -> Arc<rustls::ClientConfig> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Pinned {
        sha256: normalize(fingerprint),
        algs: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

/// `AA:BB:…` → `aabb…`, so that fingerprints written either way compare equal.
fn normalize(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase()
}

#[derive(Debug)]
struct Pinned {
    /// Normalized (lower-case hex, no separators).
    sha256: String,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: String = Sha256::digest(end_entity.as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pinned_certificate_is_accepted() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = cert.cert.der().clone();
        let hex: Vec<String> = Sha256::digest(der.as_ref())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let name = ServerName::try_from("localhost").unwrap();
        let check = |fp: &str| {
            Pinned {
                sha256: normalize(fp),
                algs: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            }
            .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
            .is_ok()
        };
        assert!(check(&hex.join(":")), "as Vigil prints it");
        assert!(
            check(&hex.join("").to_lowercase()),
            "lower case, no separators"
        );
        let mut other = hex.clone();
        other[0] = if other[0] == "00" { "01" } else { "00" }.into();
        assert!(!check(&other.join(":")), "one byte off");
        assert!(!check(""), "nothing pinned");
    }
}
