//! The user database: `<data_dir>/users.json`.
//!
//! Written atomically (temp file in the same directory, fsync, rename, fsync of the directory) with
//! mode 0600 in a 0700 directory. Another process (`vigil user add` while `vigil camera` runs)
//! may replace the file at any time; every operation stats it and re-reads it when its identity
//! (device, inode, length, mtime) changed. Two processes *writing* at the same instant can lose
//! one update (no cross-process lock); user administration is rare and interactive.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;

use crate::argon_memory::ArgonMemory;
use serde::{Deserialize, Serialize};

use crate::digest::{self, Algorithm};
use crate::{AuthError, Role, User, REALM};

const FILE_NAME: &str = "users.json";
const MAX_NAME_CHARS: usize = 64;
const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_BYTES: usize = 1024;

/// Passwords that appear in default-credential lists and breach top lists (compared
/// case-insensitively). Refused even though some are long enough.
const WEAK_PASSWORDS: &[&str] = &[
    "admin",
    "password",
    "12345678",
    "123456789",
    "1234567890",
    "87654321",
    "11111111",
    "00000000",
    "88888888",
    "password1",
    "password123",
    "passw0rd",
    "admin123",
    "admin1234",
    "administrator",
    "qwerty123",
    "qwertyuiop",
    "1q2w3e4r",
    "1qaz2wsx",
    "abcd1234",
    "abc12345",
    "letmein1",
    "iloveyou",
    "welcome1",
    "changeme",
    "default1",
    "12341234",
    "11223344",
    "camera123",
    "vigil123",
    "sunshine",
    "football",
    "baseball",
    "superman",
    "trustno1",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    name: String,
    role: Role,
    /// argon2id PHC string.
    password_hash: String,
    /// RFC 7616 §3.4.2 HA1 for realm [`REALM`], SHA-256, hex.
    digest_ha1_sha256: String,
    /// RFC 2617 HA1 for realm [`REALM`], MD5, hex.
    digest_ha1_md5: String,
    /// Cameras a viewer may see; absent (older files too) means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cameras: Option<Vec<String>>,
    /// The user's ONVIF credential, if they opted in: what an ONVIF client types as the
    /// password for WS-UsernameToken PasswordDigest, which hashes the plaintext (WSS
    /// UsernameToken Profile 1.0 §3.1) and so cannot be checked against an argon2 hash.
    /// Random (never a human password), so it is no weaker than the HA1 values beside it,
    /// which already let whoever reads this 0600 file authenticate as the user. See
    /// docs/onvif.md. A password change removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    onvif_credential: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContents {
    version: u32,
    users: Vec<Record>,
}

/// Identity of the file as last read: (dev, ino, len, mtime).
type Stamp = (u64, u64, u64, Option<std::time::SystemTime>);

#[derive(Debug, Default)]
struct Cache {
    stamp: Option<Stamp>,
    users: Vec<Record>,
}

/// The user database; cheap to query, shared behind the [`crate::Authenticator`].
#[derive(Debug)]
pub struct UserStore {
    data_dir: PathBuf,
    path: PathBuf,
    cache: Mutex<Cache>,
    /// Password verifications started ([`UserStore::password_verifications`]).
    verifications: std::sync::atomic::AtomicU64,
    /// argon2's working memory, reused across verifications.
    argon_memory: ArgonMemory,
}

fn io_err(path: &Path, source: std::io::Error) -> AuthError {
    AuthError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(unix)]
fn stamp_of(m: &fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino(), m.len(), m.modified().ok())
}

#[cfg(not(unix))]
fn stamp_of(m: &fs::Metadata) -> Stamp {
    (0, 0, m.len(), m.modified().ok())
}

fn argon2() -> Argon2<'static> {
    // argon2id v19, m=19456 KiB, t=2, p=1: the crate defaults, which are OWASP's recommendation.
    Argon2::default()
}

/// The argon2id PHC string of a secret that is not a user's password (a share link's
/// password): the same parameters as user passwords.
pub fn hash_secret(secret: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `secret` matches the PHC string `phc` made by [`hash_secret`]. A malformed string
/// never matches. Takes tens of milliseconds: call it off the async threads.
pub fn verify_secret(phc: &str, secret: &str) -> bool {
    use argon2::PasswordVerifier as _;
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(secret.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a random password, verified against when the user does not exist so that the
/// time taken does not reveal which names exist.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        let pw = SaltString::generate(&mut OsRng);
        argon2()
            .hash_password(pw.as_str().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Checks a user name: 1–64 characters, no control characters, none of `:` (it delimits the
/// Digest HA1 input), `"` or `\` (old Digest clients do not escape them), no outer whitespace.
pub fn validate_name(name: &str) -> Result<(), AuthError> {
    let bad = |why: &str| Err(AuthError::InvalidName(why.to_owned()));
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return bad("the name is longer than 64 characters");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == ':' || c == '"' || c == '\\')
    {
        return bad("the name contains a control character, ':', '\"' or '\\'");
    }
    if name.trim() != name {
        return bad("the name starts or ends with whitespace");
    }
    Ok(())
}

/// Longest camera list of a viewer.
const MAX_CAMERAS: usize = 1024;

/// Checks a viewer's camera list: at most 1024 names of 1-64 characters without control
/// characters (the NVR validates the names themselves).
pub fn validate_cameras(cameras: Option<&[String]>) -> Result<(), AuthError> {
    let Some(list) = cameras else { return Ok(()) };
    if list.len() > MAX_CAMERAS {
        return Err(AuthError::InvalidCameras("too many cameras".to_owned()));
    }
    for c in list {
        if c.is_empty() || c.chars().count() > MAX_NAME_CHARS || c.chars().any(char::is_control) {
            return Err(AuthError::InvalidCameras(format!(
                "bad camera name {:?}",
                c.chars().take(64).collect::<String>()
            )));
        }
    }
    Ok(())
}

/// Checks a new password: at least 8 characters, at most 1024 bytes, no control characters,
/// not a well-known default and not the user name.
pub fn validate_password(name: &str, password: &str) -> Result<(), AuthError> {
    let weak = |why: &str| Err(AuthError::WeakPassword(why.to_owned()));
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return weak("it must be at least 8 characters long");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return weak("it is longer than 1024 bytes");
    }
    if password.chars().any(char::is_control) {
        return weak("it contains control characters");
    }
    let lower = password.to_lowercase();
    if WEAK_PASSWORDS.contains(&lower.as_str()) {
        return weak("it is a well-known default or common password");
    }
    if lower == name.to_lowercase() {
        return weak("it is the same as the user name");
    }
    let first = password.chars().next();
    if password.chars().all(|c| Some(c) == first) {
        return weak("it repeats a single character");
    }
    Ok(())
}

impl Record {
    fn new(name: &str, password: &str, role: Role) -> Result<Self, AuthError> {
        let salt = SaltString::generate(&mut OsRng);
        let password_hash = argon2()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AuthError::Hash(e.to_string()))?
            .to_string();
        Ok(Record {
            name: name.to_owned(),
            role,
            password_hash,
            digest_ha1_sha256: digest::ha1(Algorithm::Sha256, name, REALM, password),
            digest_ha1_md5: digest::ha1(Algorithm::Md5, name, REALM, password),
            cameras: None,
            onvif_credential: None,
        })
    }

    fn user(&self) -> User {
        User {
            name: self.name.clone(),
            role: self.role,
            cameras: self.cameras.clone(),
        }
    }
}

impl UserStore {
    /// Opens (without creating files) the store in `data_dir`, creating the directory with mode
    /// 0700 if it does not exist. A missing `users.json` is an empty store.
    pub fn open(data_dir: &Path) -> Result<Self, AuthError> {
        if !data_dir.exists() {
            let mut b = fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(data_dir).map_err(|e| io_err(data_dir, e))?;
        }
        let store = UserStore {
            data_dir: data_dir.to_owned(),
            path: data_dir.join(FILE_NAME),
            cache: Mutex::new(Cache::default()),
            verifications: std::sync::atomic::AtomicU64::new(0),
            argon_memory: ArgonMemory::new(),
        };
        let mut cache = store.lock();
        store.refresh(&mut cache)?;
        drop(cache);
        store.warn_if_loose_permissions();
        Ok(store)
    }

    /// How many password (argon2) verifications this store has started: what a brute-force
    /// throttle must keep low, so tests and metrics count it.
    pub fn password_verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The data directory this store lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Path of `users.json`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves the cache consistent (it is replaced wholesale).
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn warn_if_loose_permissions(&self) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = fs::metadata(&self.path) {
                if m.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        path = %self.path.display(),
                        "user database is readable by other users; run `chmod 600` on it"
                    );
                }
            }
        }
    }

    /// Re-reads the file if it changed since the last read (one `stat` when it did not).
    fn refresh(&self, cache: &mut Cache) -> Result<(), AuthError> {
        let meta = match fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cache.stamp = None;
                cache.users.clear();
                return Ok(());
            }
            Err(e) => return Err(io_err(&self.path, e)),
        };
        let stamp = stamp_of(&meta);
        if cache.stamp == Some(stamp) {
            return Ok(());
        }
        let bytes = fs::read(&self.path).map_err(|e| io_err(&self.path, e))?;
        let contents: FileContents =
            serde_json::from_slice(&bytes).map_err(|e| AuthError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        if contents.version != 1 {
            return Err(AuthError::Corrupt {
                path: self.path.clone(),
                reason: format!("unsupported version {}", contents.version),
            });
        }
        cache.users = contents.users;
        cache.stamp = Some(stamp);
        Ok(())
    }

    /// Writes `users` atomically and updates the cache.
    fn write(&self, cache: &mut Cache, users: Vec<Record>) -> Result<(), AuthError> {
        let contents = FileContents { version: 1, users };
        let json = serde_json::to_vec_pretty(&contents).map_err(|e| AuthError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = self
            .data_dir
            .join(format!(".{FILE_NAME}.tmp.{}", std::process::id()));
        let result = (|| {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            fs::File::open(&self.data_dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&self.path, e));
        }
        let meta = fs::metadata(&self.path).map_err(|e| io_err(&self.path, e))?;
        cache.stamp = Some(stamp_of(&meta));
        cache.users = contents.users;
        Ok(())
    }

    /// Adds a user who may see every camera. Refuses duplicates, invalid names and weak
    /// passwords.
    pub fn add(&self, name: &str, password: &str, role: Role) -> Result<(), AuthError> {
        self.add_with_cameras(name, password, role, None)
    }

    /// Adds a user; `cameras` limits what a viewer may see (`None`: every camera; ignored for
    /// admins, who see everything).
    pub fn add_with_cameras(
        &self,
        name: &str,
        password: &str,
        role: Role,
        cameras: Option<Vec<String>>,
    ) -> Result<(), AuthError> {
        validate_name(name)?;
        validate_password(name, password)?;
        validate_cameras(cameras.as_deref())?;
        // Hash before taking the lock: argon2 takes tens of milliseconds.
        let mut record = Record::new(name, password, role)?;
        record.cameras = cameras;
        let mut cache = self.lock();
        self.refresh(&mut cache)?;
        if cache.users.iter().any(|r| r.name == name) {
            return Err(AuthError::DuplicateUser(name.to_owned()));
        }
        let mut users = cache.users.clone();
        users.push(record);
        self.write(&mut cache, users)
    }

    /// Removes a user.
    pub fn remove(&self, name: &str) -> Result<(), AuthError> {
        self.delete(name, false)
    }

    /// Removes a user unless that leaves no admin (the web app's rule; the CLI may remove
    /// the last admin and then create a new one).
    pub fn remove_keep_admin(&self, name: &str) -> Result<(), AuthError> {
        self.delete(name, true)
    }

    fn delete(&self, name: &str, keep_admin: bool) -> Result<(), AuthError> {
        let mut cache = self.lock();
        self.refresh(&mut cache)?;
        let mut users = cache.users.clone();
        let before = users.len();
        users.retain(|r| r.name != name);
        if users.len() == before {
            return Err(AuthError::NoSuchUser(name.to_owned()));
        }
        if keep_admin && !users.iter().any(|r| r.role == Role::Admin) {
            return Err(AuthError::LastAdmin);
        }
        self.write(&mut cache, users)
    }

    /// The one write path for changes to an existing user: under the lock, re-reads the
    /// file (another process may have changed it), applies `change` to `name`'s record and
    /// writes the whole store back. With `keep_admin`, a change that leaves a store that had
    /// an admin without one is refused and nothing is written.
    fn modify<T>(
        &self,
        name: &str,
        keep_admin: bool,
        change: impl FnOnce(&mut Record) -> T,
    ) -> Result<T, AuthError> {
        let mut cache = self.lock();
        self.refresh(&mut cache)?;
        let mut users = cache.users.clone();
        let had_admin = users.iter().any(|r| r.role == Role::Admin);
        let slot = users
            .iter_mut()
            .find(|r| r.name == name)
            .ok_or_else(|| AuthError::NoSuchUser(name.to_owned()))?;
        let out = change(slot);
        if keep_admin && had_admin && !users.iter().any(|r| r.role == Role::Admin) {
            return Err(AuthError::LastAdmin);
        }
        self.write(&mut cache, users)?;
        Ok(out)
    }

    /// Changes a user's role and/or camera access (`Some(None)`: every camera). Refuses to
    /// leave the store without an admin.
    pub fn update(
        &self,
        name: &str,
        role: Option<Role>,
        cameras: Option<Option<Vec<String>>>,
    ) -> Result<User, AuthError> {
        if let Some(c) = &cameras {
            validate_cameras(c.as_deref())?;
        }
        self.modify(name, true, |slot| {
            if let Some(role) = role {
                slot.role = role;
            }
            if let Some(c) = cameras {
                slot.cameras = c;
            }
            slot.user()
        })
    }

    /// One user by name.
    pub fn get(&self, name: &str) -> Result<Option<User>, AuthError> {
        let mut cache = self.lock();
        self.refresh(&mut cache)?;
        Ok(cache
            .users
            .iter()
            .find(|r| r.name == name)
            .map(Record::user))
    }

    /// Changes a user's password (and with it the Digest HA1 values).
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        validate_password(name, password)?;
        let role = self
            .list()?
            .into_iter()
            .find(|u| u.name == name)
            .ok_or_else(|| AuthError::NoSuchUser(name.to_owned()))?
            .role;
        let record = Record::new(name, password, role)?;
        // Keep the role and cameras as they are now, in case they changed while we were hashing.
        self.modify(name, false, |slot| {
            *slot = Record {
                role: slot.role,
                cameras: slot.cameras.take(),
                ..record
            };
        })
    }

    /// All users, in the order they were added.
    pub fn list(&self) -> Result<Vec<User>, AuthError> {
        let mut cache = self.lock();
        self.refresh(&mut cache)?;
        Ok(cache.users.iter().map(Record::user).collect())
    }

    /// True when no user exists (first run).
    pub fn is_empty(&self) -> Result<bool, AuthError> {
        let mut cache = self.lock();
        self.refresh(&mut cache)?;
        Ok(cache.users.is_empty())
    }

    /// Verifies a password with argon2id. Unknown users are verified against a dummy hash so the
    /// answer takes the same time. `Ok(None)` means wrong name or password.
    pub fn verify_password(&self, name: &str, password: &str) -> Result<Option<User>, AuthError> {
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let found = {
            let mut cache = self.lock();
            self.refresh(&mut cache)?;
            cache.users.iter().find(|r| r.name == name).cloned()
        };
        let hash: &str = match &found {
            Some(r) => &r.password_hash,
            None => dummy_hash(),
        };
        let ok = match PasswordHash::new(hash) {
            Ok(parsed) => self.argon_memory.verify(password.as_bytes(), &parsed),
            Err(_) => false,
        };
        Ok(found.filter(|_| ok).map(|r| r.user()))
    }

    /// Gives `name` a new random ONVIF credential (replacing any previous one) and returns it;
    /// it is shown to the user once. 24 bytes from the OS RNG, Base64url: 192 bits, beyond
    /// guessing, so the WS-UsernameToken path needs no throttle of its own.
    pub fn set_onvif_credential(&self, name: &str) -> Result<String, AuthError> {
        use argon2::password_hash::rand_core::RngCore as _;
        use base64::Engine as _;
        let mut raw = [0u8; 24];
        OsRng.fill_bytes(&mut raw);
        let credential = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        self.store_onvif_credential(name, Some(credential.clone()))?;
        Ok(credential)
    }

    /// Removes `name`'s ONVIF credential: WS-UsernameToken PasswordDigest stops working for
    /// them (HTTP Digest still works).
    pub fn clear_onvif_credential(&self, name: &str) -> Result<(), AuthError> {
        self.store_onvif_credential(name, None)
    }

    fn store_onvif_credential(&self, name: &str, value: Option<String>) -> Result<(), AuthError> {
        self.modify(name, false, |slot| slot.onvif_credential = value)
    }

    /// `name`'s ONVIF credential and role, if the user exists and has one.
    pub fn onvif_credential(&self, name: &str) -> Result<Option<(String, Role)>, AuthError> {
        let mut cache = self.lock();
        self.refresh(&mut cache)?;
        Ok(cache
            .users
            .iter()
            .find(|r| r.name == name)
            .and_then(|r| r.onvif_credential.clone().map(|c| (c, r.role))))
    }

    /// The stored Digest HA1 (hex) and role for `name`, if the user exists.
    pub fn digest_ha1(
        &self,
        name: &str,
        alg: Algorithm,
    ) -> Result<Option<(String, Role)>, AuthError> {
        let mut cache = self.lock();
        self.refresh(&mut cache)?;
        Ok(cache.users.iter().find(|r| r.name == name).map(|r| {
            let ha1 = match alg {
                Algorithm::Sha256 => r.digest_ha1_sha256.clone(),
                Algorithm::Md5 => r.digest_ha1_md5.clone(),
            };
            (ha1, r.role)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onvif_credential_is_random_opt_in_and_revoked_by_a_password_change() {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        s.add("alice", "a long pass phrase", Role::Viewer).unwrap();
        assert_eq!(s.onvif_credential("alice").unwrap(), None);
        let c1 = s.set_onvif_credential("alice").unwrap();
        assert_eq!(c1.len(), 32);
        assert_ne!(c1, "a long pass phrase");
        assert_eq!(
            s.onvif_credential("alice").unwrap(),
            Some((c1.clone(), Role::Viewer))
        );
        // Stored across a reopen, in the 0600 file.
        let again = UserStore::open(dir.path()).unwrap();
        assert_eq!(
            again.onvif_credential("alice").unwrap().map(|c| c.0),
            Some(c1.clone())
        );
        let c2 = s.set_onvif_credential("alice").unwrap();
        assert_ne!(c1, c2);
        s.set_password("alice", "another long pass phrase").unwrap();
        assert_eq!(s.onvif_credential("alice").unwrap(), None);
        s.set_onvif_credential("alice").unwrap();
        s.clear_onvif_credential("alice").unwrap();
        assert_eq!(s.onvif_credential("alice").unwrap(), None);
        assert!(s.set_onvif_credential("bob").is_err());
        assert_eq!(s.onvif_credential("bob").unwrap(), None);
    }

    const PW: &str = "correct horse battery";

    #[test]
    fn add_verify_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        assert!(s.is_empty().unwrap());
        s.add("alice", PW, Role::Admin).unwrap();
        s.add("bob", "another secret pw", Role::Viewer).unwrap();
        assert!(matches!(
            s.add("alice", PW, Role::Viewer),
            Err(AuthError::DuplicateUser(_))
        ));
        let names: Vec<_> = s
            .list()
            .unwrap()
            .into_iter()
            .map(|u| (u.name, u.role))
            .collect();
        assert_eq!(
            names,
            [
                ("alice".to_owned(), Role::Admin),
                ("bob".to_owned(), Role::Viewer)
            ]
        );
        assert_eq!(
            s.verify_password("alice", PW).unwrap().unwrap().role,
            Role::Admin
        );
        assert!(s
            .verify_password("alice", "wrong password")
            .unwrap()
            .is_none());
        assert!(s.verify_password("nobody", PW).unwrap().is_none());
        s.set_password("alice", "a new pass phrase").unwrap();
        assert!(s.verify_password("alice", PW).unwrap().is_none());
        assert!(s
            .verify_password("alice", "a new pass phrase")
            .unwrap()
            .is_some());
        let (ha1, _) = s.digest_ha1("alice", Algorithm::Md5).unwrap().unwrap();
        assert_eq!(
            ha1,
            digest::ha1(Algorithm::Md5, "alice", REALM, "a new pass phrase")
        );
        s.remove("bob").unwrap();
        assert!(matches!(s.remove("bob"), Err(AuthError::NoSuchUser(_))));
        assert_eq!(s.list().unwrap().len(), 1);
        // The file never contains the password.
        let raw = fs::read_to_string(s.path()).unwrap();
        assert!(!raw.contains("a new pass phrase"));
    }

    #[cfg(unix)]
    #[test]
    fn file_and_dir_modes() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        let s = UserStore::open(&dir).unwrap();
        s.add("alice", PW, Role::Admin).unwrap();
        let fm = fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
        let dm = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!((fm, dm), (0o600, 0o700));
        // No temp file left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn sees_changes_made_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let server = UserStore::open(dir.path()).unwrap();
        assert!(server.is_empty().unwrap());
        // A second, independent store stands in for `vigil user add` in another process.
        let cli = UserStore::open(dir.path()).unwrap();
        cli.add("carol", PW, Role::Viewer).unwrap();
        assert!(!server.is_empty().unwrap());
        assert!(server.verify_password("carol", PW).unwrap().is_some());
        cli.remove("carol").unwrap();
        assert!(server.is_empty().unwrap());
    }

    #[test]
    fn refuses_weak_passwords_and_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        for pw in [
            "admin",
            "password",
            "12345678",
            "Password1",
            "short",
            "aaaaaaaaaa",
            "alice-the-admin",
        ] {
            let name = if pw == "alice-the-admin" {
                "alice-the-admin"
            } else {
                "alice"
            };
            assert!(
                matches!(
                    s.add(name, pw, Role::Admin),
                    Err(AuthError::WeakPassword(_))
                ),
                "{pw} accepted"
            );
        }
        for name in ["", "a:b", "a\nb", " alice", "a\"b", &"x".repeat(65)] {
            assert!(
                matches!(s.add(name, PW, Role::Admin), Err(AuthError::InvalidName(_))),
                "{name:?}"
            );
        }
        assert!(s.is_empty().unwrap());
    }

    #[test]
    fn camera_access_round_trips_and_old_files_load() {
        let dir = tempfile::tempdir().unwrap();
        // A users.json written before per-camera access existed.
        let old = Record::new("olduser", PW, Role::Viewer).unwrap();
        let mut v = serde_json::to_value(&old).unwrap();
        v.as_object_mut().unwrap().remove("cameras");
        let file = serde_json::json!({"version": 1, "users": [v]});
        fs::write(dir.path().join(FILE_NAME), file.to_string()).unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        let u = s.get("olduser").unwrap().unwrap();
        assert_eq!(u.cameras, None);
        assert!(u.can_view("anything"));

        s.add_with_cameras("vi", PW, Role::Viewer, Some(vec!["front".into()]))
            .unwrap();
        let vi = UserStore::open(dir.path())
            .unwrap()
            .get("vi")
            .unwrap()
            .unwrap();
        assert!(vi.can_view("front"));
        assert!(!vi.can_view("yard"));
        // A password change keeps the camera list.
        s.set_password("vi", "another secret pw").unwrap();
        assert_eq!(
            s.get("vi").unwrap().unwrap().cameras,
            Some(vec!["front".into()])
        );
        let u = s.update("vi", None, Some(None)).unwrap();
        assert!(u.can_view("yard"));
        assert!(matches!(
            s.update("vi", None, Some(Some(vec!["a\nb".into(), "x\u{7}".into()]))),
            Err(AuthError::InvalidCameras(_))
        ));
    }

    #[test]
    fn the_last_admin_stays() {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path()).unwrap();
        s.add("root1", PW, Role::Admin).unwrap();
        s.add("bob", PW, Role::Viewer).unwrap();
        assert!(matches!(
            s.update("root1", Some(Role::Viewer), None),
            Err(AuthError::LastAdmin)
        ));
        assert!(matches!(
            s.remove_keep_admin("root1"),
            Err(AuthError::LastAdmin)
        ));
        s.update("bob", Some(Role::Admin), None).unwrap();
        s.remove_keep_admin("root1").unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn corrupt_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(matches!(
            UserStore::open(dir.path()),
            Err(AuthError::Corrupt { .. })
        ));
    }
}
