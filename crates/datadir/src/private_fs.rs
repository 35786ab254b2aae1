//! Files and directories only their owner can read: footage, the index and every other store
//! in the data directory.
//!
//! Permissions are set when a file or directory is created (`open(2)`/`mkdir(2)` with the
//! mode, which the umask can only narrow), never left to the umask or to the parent's mode:
//! a data directory that already existed as 0755 must not make new recordings 0644. SQLite
//! creates its `-wal` and `-shm` files with the mode of the database file, so a database
//! created here 0600 keeps its journals private too.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Mode of every file Vigil creates in its data directory.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory Vigil creates in its data directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents with mode 0700. Directories that exist are left
/// alone (see [`tighten_dir`]).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Makes sure the file at `path` exists with mode 0600 before another library (SQLite)
/// opens it: created 0600 when missing, and narrowed to 0600 when it exists with group or
/// world bits (a store created by an older Vigil under a permissive umask).
pub fn prepare_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mode = fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                fs::set_permissions(path, Permissions::from_mode(mode & 0o700))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Removes group and world access from an existing directory. Returns its previous mode when
/// it had any (so that the caller can say what it changed), `None` when it was private.
pub fn tighten_dir(dir: &Path) -> io::Result<Option<u32>> {
    let mode = fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(None);
    }
    fs::set_permissions(dir, Permissions::from_mode(mode & 0o700))?;
    Ok(Some(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_private_whatever_the_parent_and_existing_ones_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("a/b");
        create_dir_all(&dir).unwrap();
        assert_eq!((mode(&tmp.path().join("a")), mode(&dir)), (0o700, 0o700));

        let new = dir.join("new.sqlite3");
        prepare_file(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        let old = dir.join("old.sqlite3");
        fs::write(&old, b"kept").unwrap();
        fs::set_permissions(&old, Permissions::from_mode(0o644)).unwrap();
        prepare_file(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(fs::read(&old).unwrap(), b"kept");

        assert_eq!(tighten_dir(tmp.path()).unwrap(), Some(0o755));
        assert_eq!(mode(tmp.path()), 0o700);
        assert_eq!(tighten_dir(tmp.path()).unwrap(), None);
    }
}
