//! What keeps a data directory to its owner and its one server (issue 11, security findings 2
//! and 7): an exclusive lock held by the `touchmark serve` on a SQLite data directory, and
//! the check that no other user can read the directory, its keys or its database.

use std::fs::File;
use std::path::Path;

use super::{Installation, InstallationError, io};
use crate::log::SoleSequencer;

/// The lock file in a data directory: it holds the process id of the server that holds the
/// lock, for the message another server prints.
pub const LOCK_FILE: &str = "serve.lock";

/// An exclusive advisory lock on a data directory, held until this value is dropped or the
/// process ends, however it ends (the kernel releases it with the file). A second server on
/// the same SQLite file would write into the same database beside the first and answer its
/// writes with constraint errors, so a SQLite data directory serves one process at a time;
/// replicas share a PostgreSQL database instead, and take no lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Proof, for the audit log, that no other process can sequence this data directory's
    /// SQLite log while the lock is held: a sequencer lease held by another is a dead
    /// predecessor's, to be taken over at once.
    pub fn sole_sequencer(&self) -> SoleSequencer {
        SoleSequencer::new()
    }
}

impl Installation {
    /// Locks the data directory `dir` for this process (see [`DataDirLock`]).
    ///
    /// # Errors
    /// [`InstallationError::InUse`] when another process holds the lock, naming it when the
    /// lock file says which; [`InstallationError::Io`] when the lock file cannot be opened.
    pub fn lock(dir: &Path) -> Result<DataDirLock, InstallationError> {
        let path = dir.join(LOCK_FILE);
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .map_err(io(format!("cannot open {}", path.display())))?;
        lock_exclusive(file, dir, &path)
    }

    /// Refuses a data directory that users other than its owner can reach (finding 7): the
    /// directory and its key store must be mode 0700 (or stricter), and with `sqlite`, the
    /// database and its `-wal` and `-shm` files, where they exist, 0600. Each refusal names the
    /// path and the `chmod` that fixes it. Only on Unix, where the modes mean this.
    ///
    /// # Errors
    /// [`InstallationError::NotPrivate`] for the first path found open to others;
    /// [`InstallationError::Io`] when one cannot be read.
    pub fn check_private(dir: &Path, sqlite: bool) -> Result<(), InstallationError> {
        check_mode(dir, 0o700)?;
        check_mode(&dir.join("keys"), 0o700)?;
        if sqlite {
            let database = Self::database_path(dir);
            for suffix in ["", "-wal", "-shm"] {
                let mut name = database.clone().into_os_string();
                name.push(suffix);
                check_mode(Path::new(&name), 0o600)?;
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn lock_exclusive(file: File, dir: &Path, path: &Path) -> Result<DataDirLock, InstallationError> {
    use std::io::{Read, Seek, Write};

    use rustix::fs::{FlockOperation, flock};

    let mut file = file;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            // The holder writes its id right after it locks; a holder caught in between is
            // just not named.
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(InstallationError::InUse {
                dir: dir.to_owned(),
                holder: text.trim().parse().ok(),
            });
        }
        Err(e) => {
            return Err(InstallationError::Io {
                context: format!("cannot lock {}", path.display()),
                source: e.into(),
            });
        }
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    written.map_err(io(format!("cannot write {}", path.display())))?;
    Ok(DataDirLock { _file: file })
}

/// Elsewhere the lock file is only opened: these platforms are not supported for serving a
/// SQLite data directory from more than one process, and nothing stops it.
#[cfg(not(unix))]
fn lock_exclusive(file: File, _dir: &Path, _path: &Path) -> Result<DataDirLock, InstallationError> {
    Ok(DataDirLock { _file: file })
}

#[cfg(unix)]
pub(super) fn check_mode(path: &Path, wanted: u32) -> Result<(), InstallationError> {
    use std::os::unix::fs::PermissionsExt;

    let mode = match std::fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(InstallationError::Io {
                context: format!("cannot read the permissions of {}", path.display()),
                source: e,
            });
        }
    };
    if mode & 0o077 != 0 {
        return Err(InstallationError::NotPrivate {
            path: path.to_owned(),
            mode,
            fix: format!("chmod {wanted:o} {}", path.display()),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
pub(super) fn check_mode(_path: &Path, _wanted: u32) -> Result<(), InstallationError> {
    Ok(())
}
