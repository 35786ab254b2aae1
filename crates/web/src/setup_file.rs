//! The setup token that `vigil setup-url` mints for a server that is already running.
//!
//! The server keeps its own setup token's hash in memory only, out of reach of another
//! process. So the command writes `<data>/setup-token` (mode 0600, JSON
//! `{"hash_hex": …, "expires_us": …}`): the SHA-256 of a fresh token and when it expires.
//! The server accepts that token in addition to its own ([`crate::accounts::Accounts`]),
//! and deletes the file when setup completes, so the token works once.
//!
//! Only the hash is on disk: reading the file (a backup, a misconfigured mode) gives no way
//! to complete setup. Writing it needs write access to the data directory, which already
//! means full control of the recorder; that and console access are the trust anchor.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use crate::accounts::{hash, now_us, random_secret};

/// Name of the file in the data directory.
pub const FILE_NAME: &str = "setup-token";
/// Largest file read (a valid one is about 110 bytes): a stray big file costs nothing.
const MAX_LEN: u64 = 4096;

/// Errors writing the setup token file.
#[derive(Debug, thiserror::Error)]
pub enum SetupFileError {
    /// The file could not be written.
    #[error("cannot write the setup token file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What the file holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// SHA-256 of the token, lower-case hex.
    hash_hex: String,
    /// Expiry, µs since the epoch.
    expires_us: i64,
}

/// The file's path in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Mints a setup token valid for `ttl`, writes its hash to `<data_dir>/setup-token` (mode
/// 0600, replacing an earlier one, so only the newest link works) and returns the token.
pub fn mint(data_dir: &Path, ttl: Duration) -> Result<String, SetupFileError> {
    let token = random_secret();
    let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
    let record = Record {
        hash_hex: hex::encode(hash(&token)),
        expires_us: now_us().saturating_add(ttl_us),
    };
    let target = path(data_dir);
    let err = |source| SetupFileError::Write {
        path: target.clone(),
        source,
    };
    // Written under a temporary name and renamed: the server never reads half a file.
    let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(vigil_datadir::private_fs::FILE_MODE)
        .open(&tmp)
        .map_err(err)?;
    let json = serde_json::to_vec(&record).map_err(|e| err(std::io::Error::other(e)))?;
    f.write_all(&json).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &target).map_err(err)?;
    Ok(token)
}

/// Whether `token` is the one of the file in `data_dir` and not expired at `now_us`.
/// A missing, unreadable or malformed file accepts nothing.
pub fn check(data_dir: &Path, token: &str, now_us: i64) -> bool {
    let Some(record) = read(data_dir) else {
        return false;
    };
    let Ok(want) = hex::decode(&record.hash_hex) else {
        return false;
    };
    now_us < record.expires_us && bool::from(want.ct_eq(&hash(token)))
}

/// Deletes the file (setup is done): its token is used up.
pub fn remove(data_dir: &Path) {
    let p = path(data_dir);
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // Harmless once a user exists (setup refuses then), but worth knowing.
        Err(e) => {
            tracing::warn!(path = %p.display(), error = %e, "cannot delete the used setup token file")
        }
    }
}

fn read(data_dir: &Path) -> Option<Record> {
    let f = std::fs::File::open(path(data_dir)).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_LEN).read_to_end(&mut buf).ok()?;
    serde_json::from_slice(&buf).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn written_private_checked_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!check(dir.path(), "anything", now_us()));
        let t = mint(dir.path(), Duration::from_secs(60)).unwrap();
        let meta = std::fs::metadata(path(dir.path())).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // Only the hash is stored.
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.contains(&t));
        assert!(check(dir.path(), &t, now_us()));
        assert!(!check(dir.path(), &format!("{t}x"), now_us()));
        // Past its expiry it is refused.
        assert!(!check(dir.path(), &t, now_us() + 61_000_000));
        // A newer link replaces the older one.
        let t2 = mint(dir.path(), Duration::from_secs(60)).unwrap();
        assert!(!check(dir.path(), &t, now_us()));
        assert!(check(dir.path(), &t2, now_us()));
        remove(dir.path());
        assert!(!check(dir.path(), &t2, now_us()));
        remove(dir.path());
    }

    #[test]
    fn expired_at_mint_and_garbage_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = mint(dir.path(), Duration::ZERO).unwrap();
        assert!(!check(dir.path(), &t, now_us()));
        std::fs::write(path(dir.path()), b"{\"hash_hex\":\"zz\",\"expires_us\":9}").unwrap();
        assert!(!check(dir.path(), &t, 0));
        std::fs::write(path(dir.path()), b"not json").unwrap();
        assert!(!check(dir.path(), &t, 0));
    }
}
