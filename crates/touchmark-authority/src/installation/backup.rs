//! Backups of a SQLite installation (`touchmark backup` and `touchmark restore`): the database
//! as one consistent snapshot, the keys, the certificates, the log's verifier key and the
//! configuration, with a manifest of their SHA-256 hashes, private to their owner (0700
//! directories, 0600 files) as the data directory is.
//!
//! ```text
//! BACKUP/                    0700
//!   touchmark-backup.json    the manifest: format, when, and every file's size and SHA-256
//!   touchmark.db             the database, copied by the caller's snapshot (SQLite VACUUM INTO)
//!   touchmark.toml           the configuration, when there is one
//!   log-verifier.txt
//!   certs/*.pem
//!   keys/*                   still encrypted under the passphrase, which is not in the backup
//! ```
//!
//! The database is copied first and the keys after it: a product's issuing CA key is written
//! before the product is committed, so every product in the snapshot finds its key. A key
//! made after the snapshot is copied too, unused.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use touchmark_pki::keystore::{create_private_dir, create_private_file};

use super::{Installation, InstallationError, LOCK_FILE, io};

/// The manifest's file name in a backup.
pub const MANIFEST: &str = "touchmark-backup.json";
const FORMAT: &str = "touchmark-backup-v1";
/// The database's name in the data directory and in a backup.
const DATABASE: &str = "touchmark.db";

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    /// Its path relative to the backup (and the data directory), `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// A backup's manifest (`touchmark-backup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupManifest {
    /// `touchmark-backup-v1`.
    pub format: String,
    /// When the backup was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The data directory it was taken from.
    pub source: String,
    /// Every file in it but the manifest.
    pub files: Vec<BackupFile>,
}

/// Reads `path` whole, and hashes it.
fn hashed(path: &Path, relative: &str) -> Result<(Vec<u8>, BackupFile), InstallationError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io(format!("cannot read {}", path.display())))?;
    let file = BackupFile {
        path: relative.to_owned(),
        bytes: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    Ok((bytes, file))
}

/// Writes `bytes` to the new file `path`, 0600, and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), InstallationError> {
    create_private_file(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(io(format!("cannot write {}", path.display())))
}

/// The files of an installation to copy besides the database, relative to its directory: the
/// configuration, the verifier key, and every file in `certs/` and `keys/` (not a key store's
/// temporary files, whose names start with `.`).
fn installation_files(dir: &Path) -> Result<Vec<String>, InstallationError> {
    let mut files = Vec::new();
    for name in [crate::installation::CONFIG_FILE, "log-verifier.txt"] {
        if dir.join(name).is_file() {
            files.push(name.to_owned());
        }
    }
    for sub in ["certs", "keys"] {
        let path = dir.join(sub);
        let entries =
            std::fs::read_dir(&path).map_err(io(format!("cannot read {}", path.display())))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(format!("cannot read {}", path.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_file = entry
                .file_type()
                .map_err(io(format!("cannot read {}", entry.path().display())))?
                .is_file();
            if is_file && !name.starts_with('.') {
                names.push(format!("{sub}/{name}"));
            }
        }
        names.sort();
        files.extend(names);
    }
    Ok(files)
}

/// Whether `dir` is absent, or an empty directory.
fn absent_or_empty(dir: &Path) -> Result<bool, InstallationError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(InstallationError::Io {
            context: format!("cannot read {}", dir.display()),
            source: e,
        }),
    }
}

/// Removes what a failed backup or restore wrote into `dir`, which was absent or empty before:
/// the directory itself when it was absent, else its contents.
fn undo(dir: &Path, existed: bool) {
    if existed {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Makes `dest` (absent or empty) a private directory with private `certs/` and `keys/`.
fn private_tree(dest: &Path) -> Result<(), InstallationError> {
    for sub in ["", "certs", "keys"] {
        let path = dest.join(sub);
        create_private_dir(&path).map_err(io(format!(
            "cannot create {} for its owner alone",
            path.display()
        )))?;
    }
    Ok(())
}

impl Installation {
    /// Backs up the SQLite installation in `dir` into `dest`, which must be absent or an empty
    /// directory: `snapshot(database, copy)` copies the database consistently (the server
    /// may be running), then the keys, certificates, verifier key and configuration are
    /// copied, and the manifest is written last, so a backup without one is incomplete.
    /// Everything is private to its owner. On failure nothing is left in `dest`.
    ///
    /// # Errors
    /// [`InstallationError::NotInitialized`] when `dir` holds no installation,
    /// [`InstallationError::NotEmpty`] for a `dest` that holds something, or the step that
    /// failed.
    pub fn backup<E: std::fmt::Display>(
        dir: &Path,
        dest: &Path,
        snapshot: impl FnOnce(&Path, &Path) -> Result<(), E>,
        now: OffsetDateTime,
    ) -> Result<BackupManifest, InstallationError> {
        if !dir.join("keys").is_dir() || !Self::database_path(dir).is_file() {
            return Err(InstallationError::NotInitialized(dir.to_owned()));
        }
        if !absent_or_empty(dest)? {
            return Err(InstallationError::NotEmpty(dest.to_owned()));
        }
        let existed = dest.exists();
        let done = Self::write_backup(dir, dest, snapshot, now);
        if done.is_err() {
            undo(dest, existed);
        }
        done
    }

    fn write_backup<E: std::fmt::Display>(
        dir: &Path,
        dest: &Path,
        snapshot: impl FnOnce(&Path, &Path) -> Result<(), E>,
        now: OffsetDateTime,
    ) -> Result<BackupManifest, InstallationError> {
        private_tree(dest)?;
        // The database first: see the module's documentation.
        snapshot(&Self::database_path(dir), &dest.join(DATABASE))
            .map_err(|e| InstallationError::Backup(format!("cannot copy the database: {e}")))?;
        let mut files = vec![hashed(&dest.join(DATABASE), DATABASE)?.1];
        for relative in installation_files(dir)? {
            let (bytes, file) = hashed(&dir.join(&relative), &relative)?;
            write_private(&dest.join(&relative), &bytes)?;
            files.push(file);
        }
        let manifest = BackupManifest {
            format: FORMAT.to_owned(),
            created_at: now,
            source: dir.display().to_string(),
            files,
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| InstallationError::Backup(format!("the manifest: {e}")))?;
        write_private(&dest.join(MANIFEST), &json)?;
        sync_dir(dest)?;
        Ok(manifest)
    }

    /// Restores the backup in `src` into the data directory `dir`, which must be absent or an
    /// empty directory that no server holds. Every file is checked against the manifest
    /// before anything is written; then the files are copied, private to their owner. On
    /// failure nothing is left in `dir`.
    ///
    /// # Errors
    /// [`InstallationError::InUse`] for a data directory a server holds,
    /// [`InstallationError::NotEmpty`] for one that holds anything,
    /// [`InstallationError::Backup`] for a backup that is incomplete or damaged, or the step
    /// that failed.
    pub fn restore(src: &Path, dir: &Path) -> Result<BackupManifest, InstallationError> {
        if dir.join(LOCK_FILE).exists() {
            // A live server holds this lock; taking it here proves nobody does, and it is
            // released at once (the directory is refused below anyway, as not empty).
            drop(Self::lock(dir)?);
        }
        if !absent_or_empty(dir)? {
            return Err(InstallationError::NotEmpty(dir.to_owned()));
        }
        let manifest = Self::read_backup(src)?;
        let mut contents = Vec::new();
        for file in &manifest.files {
            let (bytes, seen) = hashed(&src.join(&file.path), &file.path)?;
            if &seen != file {
                return Err(InstallationError::Backup(format!(
                    "{} does not match the backup's manifest: the backup is damaged",
                    src.join(&file.path).display()
                )));
            }
            contents.push((file.path.clone(), bytes));
        }
        let existed = dir.exists();
        let written = private_tree(dir).and_then(|()| {
            for (path, bytes) in &contents {
                write_private(&dir.join(path), bytes)?;
            }
            sync_dir(dir)
        });
        match written {
            Ok(()) => Ok(manifest),
            Err(e) => {
                undo(dir, existed);
                Err(e)
            }
        }
    }

    /// Reads and checks a backup's manifest: its format, a database, the keys and the verifier
    /// key, and only plain relative paths.
    fn read_backup(src: &Path) -> Result<BackupManifest, InstallationError> {
        let path = src.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|e| {
            InstallationError::Backup(format!(
                "cannot read {} ({e}): {} is not a complete backup from `touchmark backup`",
                path.display(),
                src.display()
            ))
        })?;
        let manifest: BackupManifest = serde_json::from_slice(&text).map_err(|e| {
            InstallationError::Backup(format!("{} is not a backup manifest: {e}", path.display()))
        })?;
        if manifest.format != FORMAT {
            return Err(InstallationError::Backup(format!(
                "{} is of format {:?}; this version reads {FORMAT:?}",
                path.display(),
                manifest.format
            )));
        }
        let safe = |p: &str| {
            let parts: Vec<&str> = p.split('/').collect();
            !p.is_empty()
                && parts.len() <= 2
                && parts
                    .iter()
                    .all(|s| !s.is_empty() && *s != "." && *s != ".." && !s.contains('\\'))
                && (parts.len() == 1 || matches!(parts[0], "certs" | "keys"))
        };
        if let Some(bad) = manifest.files.iter().find(|f| !safe(&f.path)) {
            return Err(InstallationError::Backup(format!(
                "the manifest names {:?}, which is not a file of a data directory",
                bad.path
            )));
        }
        for needed in [DATABASE, "log-verifier.txt", "keys/keystore.json"] {
            if !manifest.files.iter().any(|f| f.path == needed) {
                return Err(InstallationError::Backup(format!(
                    "the backup in {} has no {needed}",
                    src.display()
                )));
            }
        }
        Ok(manifest)
    }
}

/// Syncs the directory `dir` and its `certs/` and `keys/`, so that the new names are durable.
fn sync_dir(dir: &Path) -> Result<(), InstallationError> {
    #[cfg(unix)]
    for sub in ["", "certs", "keys"] {
        let path: PathBuf = dir.join(sub);
        std::fs::File::open(&path)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("cannot sync {}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
