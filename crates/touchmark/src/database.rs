//! Which database an installation uses: SQLite inside the data directory (the default), or a
//! PostgreSQL server shared by any number of `touchmark serve` replicas, chosen by its URL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use touchmark_authority::Installation;
use touchmark_store::Store;
use touchmark_store_postgres::PostgresStore;
use touchmark_store_sqlite::SqliteStore;

/// A PostgreSQL URL. Its password never appears in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Parses a `postgres://` or `postgresql://` URL.
    ///
    /// # Errors
    /// Any other scheme, or a URL without a host part.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            bail!(
                "`{}` is not a database URL: use postgres://USER@HOST:PORT/DATABASE, or leave it out for SQLite in the data directory",
                redact(text)
            );
        };
        if !matches!(scheme, "postgres" | "postgresql") {
            bail!(
                "database URL scheme `{scheme}` is not supported: use postgres://…, or leave it out for SQLite in the data directory"
            );
        }
        if rest.is_empty() || rest.starts_with('/') && !rest.contains("host=") {
            bail!("the database URL {} names no server", redact(text));
        }
        Ok(Self(text.to_owned()))
    }

    /// The URL itself, password included: for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL carries a password.
    pub fn has_password(&self) -> bool {
        redact(&self.0) != self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({})", redact(&self.0))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Self::parse(s)
    }
}

/// The URL with any password (`user:secret@`, `password=secret`) replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            out = format!("{scheme}://{}:***{}", &authority[..colon], &rest[at..]);
        }
    }
    if let Some(start) = out.find("password=") {
        let value = start + "password=".len();
        let end = out[value..].find('&').map_or(out.len(), |e| value + e);
        out.replace_range(value..end, "***");
    }
    out
}

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
    DatabaseUrl::parse(&text)
        .map(Some)
        .context("TOUCHMARK_DATABASE_URL_FILE")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db.example:5432/touchmark").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db.example:5432/touchmark"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(url.has_password());
        let url =
            DatabaseUrl::parse("postgres://db/x?user=a&password=p4ss&sslmode=require").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://db/x?user=a&password=***&sslmode=require"
        );
        let plain = DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(plain.to_string(), "postgres://postgres@127.0.0.1:5432/test");
        assert!(!plain.has_password());
    }

    #[test]
    fn other_schemes_are_refused_clearly() {
        for (bad, says) in [
            ("mysql://root@db/x", "scheme `mysql` is not supported"),
            ("touchmark.db", "is not a database URL"),
            ("postgres://", "names no server"),
        ] {
            let err = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
