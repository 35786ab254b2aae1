//! TOTP codes computed by an independent implementation: Python's standard library
//! (`hmac`, `hashlib`, `base64`), following RFC 6238 §4 and RFC 4226 §5.3 step by step, so
//! that the tests of Vigil's second factor do not check its code against itself.

use std::process::Command;

const SCRIPT: &str = r#"
import base64, hashlib, hmac, struct, sys
secret, t = sys.argv[1], int(sys.argv[2])
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
mac = hmac.new(key, struct.pack(">Q", t // 30), hashlib.sha1).digest()
off = mac[-1] & 0x0F
value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
print("%06d" % (value % 1000000))
"#;

/// The 6-digit code of the base32 `secret` at `unix_time` (seconds), 30 s steps, SHA-1.
///
/// # Panics
/// If python3 cannot run or fails (a test fixture: the failure is the test's).
pub fn code(secret: &str, unix_time: u64) -> String {
    let out = Command::new("python3")
        .args(["-c", SCRIPT, secret, &unix_time.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 TOTP: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    /// RFC 6238 Appendix B (SHA-1): the 6-digit tails of the 8-digit vectors.
    #[test]
    fn matches_the_rfc_vectors() {
        // base32 of "12345678901234567890"
        let s = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(super::code(s, 59), "287082");
        assert_eq!(super::code(s, 1_111_111_109), "081804");
        assert_eq!(super::code(s, 2_000_000_000), "279037");
    }
}
