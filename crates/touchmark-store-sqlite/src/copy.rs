//! A database file seen from outside the server that writes it: a consistent copy taken while
//! the server runs (`touchmark backup`), and a look at its schema and integrity that writes
//! nothing (`touchmark doctor`).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use touchmark_store::StoreError;

use crate::SCHEMA_VERSION;
use crate::error::Error;

/// How long a copy or a look waits for a lock another connection holds (a checkpoint of the
/// WAL, the writer's commit) before it gives up.
const BUSY: std::time::Duration = std::time::Duration::from_secs(30);

fn database(context: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::Database(format!("{context}: {}", Error::from(e).0))
}

/// Opens an existing database file without creating it.
fn open_existing(path: &Path, flags: OpenFlags) -> touchmark_store::Result<Connection> {
    if !path.is_file() {
        return Err(StoreError::Database(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(database(format!("cannot open {}", path.display())))?;
    conn.busy_timeout(BUSY)
        .map_err(database(format!("cannot configure {}", path.display())))?;
    Ok(conn)
}

/// Copies the database `db` into the new file `dest`, readable by its owner only, as one
/// consistent snapshot: `VACUUM INTO` reads the whole database in one read transaction, so a
/// server may go on writing meanwhile (WAL readers never wait for the writer, nor it for
/// them), and the copy holds exactly the transactions committed when it began. The copy is
/// checked (`PRAGMA quick_check`) and synced before this returns; on any failure it is
/// removed.
///
/// # Errors
/// [`StoreError::Database`] when `db` does not exist or cannot be read, `dest` exists
/// already or cannot be written, or the copy does not check.
pub fn snapshot(db: &Path, dest: &Path) -> touchmark_store::Result<()> {
    let Some(target) = dest.to_str() else {
        return Err(StoreError::Database(format!(
            "{} is not a UTF-8 path, which SQLite needs",
            dest.display()
        )));
    };
    let conn = open_existing(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    // VACUUM INTO accepts an empty file: made here first, so that it is private from its
    // first byte (SQLite would create it with the umask's mode).
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(dest)
        .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dest.display())))?;
    let copied = conn
        .execute("VACUUM INTO ?1", [target])
        .map_err(database(format!("cannot copy {}", db.display())))
        .and_then(|_| check(dest))
        .and_then(|()| {
            std::fs::File::open(dest)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::Database(format!("cannot sync {}: {e}", dest.display())))
        });
    if copied.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    copied
}

/// Runs `PRAGMA quick_check` on the file `path`.
fn check(path: &Path) -> touchmark_store::Result<()> {
    let conn = open_existing(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let problems = quick_check(&conn, path)?;
    match problems.is_empty() {
        true => Ok(()),
        false => Err(StoreError::Corrupt(format!(
            "{} does not check: {}",
            path.display(),
            problems.join("; ")
        ))),
    }
}

/// The problems `PRAGMA quick_check` finds (none for a sound database).
fn quick_check(conn: &Connection, path: &Path) -> touchmark_store::Result<Vec<String>> {
    let context = || format!("cannot check {}", path.display());
    let mut statement = conn
        .prepare("PRAGMA quick_check")
        .map_err(database(context()))?;
    let rows = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(database(context()))?;
    let mut problems = Vec::new();
    for row in rows {
        let row = row.map_err(database(context()))?;
        if row != "ok" {
            problems.push(row);
        }
    }
    Ok(problems)
}

/// What a look at a database file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The schema version the file is at (`PRAGMA user_version`: the migrations applied).
    pub schema_version: u64,
    /// The schema version this build writes and reads ([`SCHEMA_VERSION`]).
    pub schema_known: u64,
    /// What `PRAGMA quick_check` found wrong; empty for a sound file.
    pub problems: Vec<String>,
}

/// Looks at the database file `path` through a read-only connection: its schema version and
/// its integrity. Nothing is written and nothing is migrated, so it may run beside a server.
///
/// # Errors
/// [`StoreError::Database`] when the file does not exist or is not a database.
pub fn inspect(path: &Path) -> touchmark_store::Result<Inspection> {
    let conn = open_existing(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(database(format!("cannot read {}", path.display())))?;
    Ok(Inspection {
        schema_version: u64::try_from(version).unwrap_or(0),
        schema_known: SCHEMA_VERSION as u64,
        problems: quick_check(&conn, path)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_snapshot_is_private_and_checks_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("touchmark.db");
        let store = crate::SqliteStore::open(&db).unwrap();
        let copy = dir.path().join("copy.db");
        snapshot(&db, &copy).unwrap();
        let seen = inspect(&copy).unwrap();
        assert_eq!(seen.schema_version, SCHEMA_VERSION as u64);
        assert!(seen.problems.is_empty(), "{:?}", seen.problems);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let before = std::fs::read(&copy).unwrap();
        assert!(snapshot(&db, &copy).is_err(), "an existing file is kept");
        assert_eq!(std::fs::read(&copy).unwrap(), before);
        drop(store);
        let missing = dir.path().join("missing.db");
        assert!(snapshot(&missing, &dir.path().join("other.db")).is_err());
        assert!(!missing.exists() && !dir.path().join("other.db").exists());
        assert!(inspect(&missing).is_err());
        assert!(!missing.exists(), "a look creates nothing");
    }
}
