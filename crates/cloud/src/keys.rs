//! age keys: `vigil cloud keygen`, recipients from the configuration, identities from the
//! owner's key file, and whole-object encryption (age v1, X25519 recipients, 64 KiB STREAM
//! chunks: <https://age-encryption.org/v1>).
//!
//! Parts are at most a few MiB and encrypted in memory; the chunked format still matters at
//! restore, where a byte range of the plaintext maps to a byte range of the object.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age::x25519::{Identity, Recipient};

use crate::Error;

/// Plaintext bytes per STREAM chunk (age v1).
pub const CHUNK: u64 = 64 * 1024;
/// Ciphertext bytes per full chunk: plaintext and its Poly1305 tag.
pub const ENCRYPTED_CHUNK: u64 = CHUNK + 16;
/// The payload nonce between the header and the first chunk.
pub const PAYLOAD_NONCE: u64 = 16;

/// A new identity: (the key file's text, the public recipient).
///
/// The text is the format `age-keygen` writes, so Debian's `age -d -i FILE` reads it.
pub fn generate() -> (String, String) {
    let id = Identity::generate();
    let public = id.to_public().to_string();
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    );
    (text, public)
}

/// Writes a new identity to `path` (refusing to overwrite one: losing the old key would
/// make its footage unreadable), readable by its owner only. Returns the recipient.
pub fn keygen_to_file(path: &Path) -> Result<String, Error> {
    let (text, public) = generate();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(public)
}

/// Parses `age1…` recipients.
pub fn parse_recipients(list: &[String]) -> Result<Vec<Recipient>, Error> {
    list.iter()
        .map(|r| {
            Recipient::from_str(r.trim())
                .map_err(|e| Error::Key(format!("recipient {r:?} is not an age X25519 key: {e}")))
        })
        .collect()
}

/// Reads identities from an age key file (`AGE-SECRET-KEY-1…` lines; `#` comments).
pub fn read_identities(path: &Path) -> Result<Vec<Identity>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading identity file {}", path.display()), e))?;
    let ids = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            Identity::from_str(l).map_err(|_| {
                Error::Key(format!(
                    "{}: a line is not an age identity (AGE-SECRET-KEY-1…)",
                    path.display()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(Error::Key(format!("{}: no identity in it", path.display())));
    }
    Ok(ids)
}

/// Encrypts `plaintext` to every recipient.
pub fn encrypt(recipients: &[Recipient], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let crypto = |message: String| Error::Crypto {
        context: "encrypting".into(),
        message,
    };
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| crypto(e.to_string()))?;
    let chunks = (plaintext.len() as u64).div_ceil(CHUNK).max(1);
    let mut out = Vec::with_capacity(plaintext.len() + 16 * chunks as usize + 512);
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| crypto(e.to_string()))?;
    w.write_all(plaintext).map_err(|e| crypto(e.to_string()))?;
    w.finish().map_err(|e| crypto(e.to_string()))?;
    Ok(out)
}

/// Decrypts a whole object (manifests, key objects).
pub fn decrypt(identities: &[Identity], ciphertext: &[u8], what: &str) -> Result<Vec<u8>, Error> {
    let crypto = |message: String| Error::Crypto {
        context: what.to_owned(),
        message,
    };
    let dec = age::Decryptor::new(ciphertext).map_err(|e| crypto(e.to_string()))?;
    let mut r = dec
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| crypto(e.to_string()))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| crypto(e.to_string()))?;
    Ok(out)
}

/// The ciphertext length of `plaintext_len` bytes behind a header of `header_len` bytes.
pub fn ciphertext_len(header_len: u64, plaintext_len: u64) -> u64 {
    let chunks = plaintext_len.div_ceil(CHUNK).max(1);
    header_len + PAYLOAD_NONCE + plaintext_len + 16 * chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let (text, public) = generate();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.txt");
        std::fs::write(&path, &text).unwrap();
        let ids = read_identities(&path).unwrap();
        let rec = parse_recipients(&[public]).unwrap();
        for len in [0usize, 1, 65_536, 65_537, 200_000] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let ct = encrypt(&rec, &pt).unwrap();
            // The header ends with "\n--- <mac>\n"; the rest is nonce and chunks.
            let header_len = ct.windows(4).position(|w| w == b"\n---").unwrap() as u64
                + ct[ct.windows(4).position(|w| w == b"\n---").unwrap() + 1..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap() as u64
                + 2;
            assert_eq!(ct.len() as u64, ciphertext_len(header_len, len as u64));
            assert_eq!(decrypt(&ids, &ct, "t").unwrap(), pt);
        }
        let (other, _) = generate();
        std::fs::write(&path, other).unwrap();
        let wrong = read_identities(&path).unwrap();
        let ct = encrypt(&rec, b"secret").unwrap();
        let err = decrypt(&wrong, &ct, "clip").unwrap_err().to_string();
        assert!(err.starts_with("clip:"), "{err}");
    }

    #[test]
    fn keygen_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owner.key");
        let public = keygen_to_file(&path).unwrap();
        assert!(public.starts_with("age1"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("# public key: {public}")));
        assert!(keygen_to_file(&path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(parse_recipients(&["age1nope".into()]).is_err());
    }
}
