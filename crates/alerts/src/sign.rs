//! Webhook signatures: `X-Vigil-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>`
//! with `X-Vigil-Timestamp: <unix seconds>`. Signing the timestamp with the body lets a
//! receiver refuse replays of an old, captured request (see [`verify`] and docs/alerts.md).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "X-Vigil-Timestamp";
/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Vigil-Signature";
/// Replay window receivers should allow (and [`verify`]'s callers in our tests use), seconds.
pub const DEFAULT_TOLERANCE_S: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// HMAC accepts keys of any length (RFC 2104 §2), so this is never `None` in practice; it
/// stays an `Option` so no fallback key can ever sign or verify anything.
fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret).ok()?;
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    Some(m)
}

/// The `X-Vigil-Signature` value for this timestamp (decimal unix seconds) and body.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    match mac(secret, timestamp, body) {
        Some(m) => format!("sha256={}", hex::encode(m.finalize().into_bytes())),
        None => "sha256=".to_owned(), // never valid: `verify` wants 64 hex digits
    }
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp is not decimal unix seconds.
    #[error("malformed timestamp")]
    BadTimestamp,
    /// The timestamp is further than the tolerance from now (a replay, or a wrong clock).
    #[error("timestamp outside the replay window")]
    Stale,
    /// The signature header is not `sha256=<64 hex digits>`.
    #[error("malformed signature header")]
    BadHeader,
    /// The signature does not match the body and timestamp (tampered, or wrong secret).
    #[error("signature mismatch")]
    Mismatch,
}

/// What a receiver does: checks the timestamp is within `tolerance_s` of `now_unix` and that
/// `signature` is the HMAC of timestamp and body, compared in constant time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now_unix: u64,
    tolerance_s: u64,
) -> Result<(), VerifyError> {
    if timestamp.is_empty()
        || timestamp.len() > 20
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(VerifyError::BadTimestamp);
    }
    let ts: u64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if ts.abs_diff(now_unix) > tolerance_s {
        return Err(VerifyError::Stale);
    }
    let hex_sig = signature
        .strip_prefix("sha256=")
        .ok_or(VerifyError::BadHeader)?;
    if hex_sig.len() != 64 {
        return Err(VerifyError::BadHeader);
    }
    let raw = hex::decode(hex_sig).map_err(|_| VerifyError::BadHeader)?;
    // `verify_slice` compares in constant time, so timing reveals nothing about the expected MAC.
    mac(secret, timestamp, body)
        .ok_or(VerifyError::Mismatch)?
        .verify_slice(&raw)
        .map_err(|_| VerifyError::Mismatch)
}

/// A receiver's whole check of one request: `header(name)` gives a header's value as
/// received (`None` if absent), `body` the raw body; the replay window is
/// [`DEFAULT_TOLERANCE_S`] around `now_unix`. A missing header is refused like a malformed one.
pub fn verify_request<'a>(
    secret: &[u8],
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now_unix: u64,
) -> Result<(), VerifyError> {
    verify(
        secret,
        header(TIMESTAMP_HEADER).unwrap_or(""),
        body,
        header(SIGNATURE_HEADER).unwrap_or(""),
        now_unix,
        DEFAULT_TOLERANCE_S,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef-test-key";
    const BODY: &[u8] = br#"{"type":"camera_online","camera":"front"}"#;
    // Computed independently: python3 -c 'import hmac,hashlib; print(hmac.new(KEY,
    // b"1700000000." + BODY, hashlib.sha256).hexdigest())'
    const VECTOR: &str = "sha256=3d22f37acb552f71fac3be7a3971719cb926ae7d4fd5748f7e5b34aaebfcc256";

    #[test]
    fn known_vector() {
        assert_eq!(sign(KEY, "1700000000", BODY), VECTOR);
        assert_eq!(
            verify(KEY, "1700000000", BODY, VECTOR, 1_700_000_010, 300),
            Ok(())
        );
    }

    #[test]
    fn tampering_is_refused() {
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify(KEY, "1700000000", &body, VECTOR, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        // Same body, shifted timestamp: the signature covers the timestamp too.
        assert_eq!(
            verify(KEY, "1700000001", BODY, VECTOR, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                b"another-key-0123456",
                "1700000000",
                BODY,
                VECTOR,
                1_700_000_000,
                300
            ),
            Err(VerifyError::Mismatch)
        );
        let flipped = VECTOR.replace("sha256=3d", "sha256=3e");
        assert_eq!(
            verify(KEY, "1700000000", BODY, &flipped, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn replay_window_and_malformed_headers() {
        assert_eq!(
            verify(KEY, "1700000000", BODY, VECTOR, 1_700_000_301, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(KEY, "1700000000", BODY, VECTOR, 1_699_999_699, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(KEY, "-1", BODY, VECTOR, 0, 300),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(KEY, "", BODY, VECTOR, 0, 300),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(KEY, "99999999999999999999", BODY, VECTOR, 0, 300),
            Err(VerifyError::BadTimestamp)
        );
        for bad in [
            "",
            "sha1=00",
            "sha256=zz",
            &VECTOR[..VECTOR.len() - 2],
            "sha256=é",
        ] {
            assert_eq!(
                verify(KEY, "1700000000", BODY, bad, 1_700_000_000, 300),
                Err(VerifyError::BadHeader),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_request_is_checked_from_its_headers_and_missing_ones_are_refused() {
        let ts = "1700000000";
        let sig = sign(b"k", ts, b"body");
        let headers = [(TIMESTAMP_HEADER, ts), (SIGNATURE_HEADER, sig.as_str())];
        let get = |h: &str| headers.iter().find(|(n, _)| *n == h).map(|(_, v)| *v);
        assert_eq!(verify_request(b"k", get, b"body", 1_700_000_010), Ok(()));
        assert_eq!(
            verify_request(b"k", get, b"tampered", 1_700_000_010),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_request(b"k", get, b"body", 1_700_000_000 + DEFAULT_TOLERANCE_S + 1),
            Err(VerifyError::Stale)
        );
        let no_sig = |h: &str| (h == TIMESTAMP_HEADER).then_some(ts);
        assert_eq!(
            verify_request(b"k", no_sig, b"body", 1_700_000_010),
            Err(VerifyError::BadHeader)
        );
        assert_eq!(
            verify_request(b"k", |_| None, b"body", 1_700_000_010),
            Err(VerifyError::BadTimestamp)
        );
    }
}
