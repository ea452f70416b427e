//! Which database an installation uses: SQLite inside the data directory (the default), or a
//! PostgreSQL server shared by any number of `touchmark serve` replicas, chosen by its URL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use touchmark_authority::Installation;
use touchmark_core::field::DatabaseUrl;
use touchmark_store::Store;
use touchmark_store_postgres::PostgresStore;
use touchmark_store_sqlite::SqliteStore;

/// Where an installation's records live.
#[derive(Debug, Clone)]
pub enum Database {
    /// The SQLite file in the data directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database, possibly shared by several replicas.
    Postgres(DatabaseUrl),
}

impl Database {
    /// The database for data directory `dir`: the URL when one is given, else SQLite there.
    pub fn for_dir(dir: &Path, url: Option<DatabaseUrl>) -> Self {
        match url {
            Some(url) => Self::Postgres(url),
            None => Self::Sqlite(Installation::database_path(dir)),
        }
    }

    /// Opens the store, applying migrations.
    ///
    /// # Errors
    /// When the database cannot be opened or reached, or its schema is newer than this build.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Self::Sqlite(path) => Arc::new(
                SqliteStore::open(path)
                    .with_context(|| format!("cannot open the database {}", path.display()))?,
            ),
            Self::Postgres(url) => Arc::new(
                PostgresStore::connect(url.expose(), None)
                    .await
                    .with_context(|| format!("cannot open the PostgreSQL database {url}"))?,
            ),
        })
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "SQLite {}", path.display()),
            Self::Postgres(url) => write!(f, "PostgreSQL {url}"),
        }
    }
}

/// Reads the database URL from `TOUCHMARK_DATABASE_URL_FILE`, if set (one trailing newline is
/// ignored): for URLs that carry a password.
///
/// # Errors
/// When the file cannot be read or does not hold a URL.
pub fn url_from_file_variable() -> anyhow::Result<Option<DatabaseUrl>> {
    let Some(path) = std::env::var_os("TOUCHMARK_DATABASE_URL_FILE") else {
        return Ok(None);
    };
    let text = crate::secrets::read_secret_file(Path::new(&path))
        .context("TOUCHMARK_DATABASE_URL_FILE")?;
    text.parse::<DatabaseUrl>()
        .map(Some)
        .context("TOUCHMARK_DATABASE_URL_FILE")
}
