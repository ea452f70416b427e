//! The server's configuration: defaults, then `<data>/touchmark.toml`, then `TOUCHMARK_*`
//! variables and flags (clap applies those two).

use std::net::SocketAddr;
use std::path::Path;

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use touchmark_authority::log::LogConfig;

use touchmark_core::field::DatabaseUrl;

use crate::database::{self, Database};

/// The file name inside the data directory.
pub const FILE: &str = "touchmark.toml";

/// The default listening address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// `touchmark.toml` as written. Unknown keys are an error, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database: Option<String>,
    log: Option<LogFile>,
}

/// The `[log]` table: the audit log's timings, in milliseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFile {
    /// How often the sequencer looks for new entries.
    interval_ms: Option<u64>,
    /// How long the sequencer lease lasts unless renewed.
    lease_ttl_ms: Option<u64>,
}

impl LogFile {
    /// The timings, over the defaults. The lease must outlast two intervals, or a live
    /// sequencer would lose it between two renewals.
    fn config(&self) -> anyhow::Result<LogConfig> {
        let default = LogConfig::default();
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
        let config = LogConfig {
            interval: ms(self.interval_ms, default.interval),
            lease_ttl: ms(self.lease_ttl_ms, default.lease_ttl),
            // Set by `serve` once it holds the data directory's lock, never by the file.
            sole: None,
        };
        if !(Duration::from_millis(10)..=Duration::from_secs(10)).contains(&config.interval) {
            bail!("`log.interval_ms` must be 10 to 10000");
        }
        if config.lease_ttl < 2 * config.interval || config.lease_ttl > Duration::from_secs(300) {
            bail!(
                "`log.lease_ttl_ms` must be at least twice `log.interval_ms`, and at most 300000"
            );
        }
        Ok(config)
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Where the server listens.
    pub listen: SocketAddr,
    /// Where the records live.
    pub database: Database,
    /// The audit log's timings.
    pub log: LogConfig,
}

/// Loads the configuration of the data directory `dir`. `listen` and `database` from flags or
/// variables take precedence over `TOUCHMARK_DATABASE_URL_FILE`, which takes precedence over
/// the file.
///
/// # Errors
/// When the file cannot be read or does not parse, or a database URL is invalid.
pub fn load(
    dir: &Path,
    listen: Option<SocketAddr>,
    database: Option<DatabaseUrl>,
) -> anyhow::Result<Config> {
    let path = dir.join(FILE);
    let file: FileConfig = match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).with_context(|| format!("{} is invalid", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileConfig::default(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let default: SocketAddr = DEFAULT_LISTEN.parse().context("default listen address")?;
    let from_file = file
        .database
        .as_deref()
        .map(str::parse::<DatabaseUrl>)
        .transpose()
        .with_context(|| format!("{}: `database`", path.display()))?;
    let url = match database {
        Some(url) => Some(url),
        None => database::url_from_file_variable()?.or(from_file),
    };
    let log = file
        .log
        .unwrap_or_default()
        .config()
        .with_context(|| format!("{} is invalid", path.display()))?;
    Ok(Config {
        listen: listen.or(file.listen).unwrap_or(default),
        database: Database::for_dir(dir, url),
        log,
    })
}

/// The file `init` writes. A PostgreSQL URL is recorded unless it carries a password, which
/// belongs in `TOUCHMARK_DATABASE_URL` or `TOUCHMARK_DATABASE_URL_FILE` instead.
pub fn initial_file(database: &Database) -> String {
    let database = match database {
        Database::Sqlite(_) => {
            "# The database: SQLite in this directory (touchmark.db) unless a PostgreSQL URL\n\
             # is set here or in TOUCHMARK_DATABASE_URL.\n\
             # database = \"postgres://touchmark@db.example:5432/touchmark\"\n"
                .to_owned()
        }
        Database::Postgres(url) if url.has_password() => format!(
            "# The database is PostgreSQL ({url}); its URL holds a password, so pass it in\n\
             # TOUCHMARK_DATABASE_URL or TOUCHMARK_DATABASE_URL_FILE to every replica.\n"
        ),
        Database::Postgres(url) => format!(
            "# The database, shared by every replica that serves this data directory.\n\
             database = \"{}\"\n",
            url.expose()
        ),
    };
    format!(
        "# Touchmark server configuration. TOUCHMARK_* variables and command-line flags override it.\n\
         # Unknown keys are an error.\n\n\
         # The address `touchmark serve` listens on.\n\
         listen = \"{DEFAULT_LISTEN}\"\n\n\
         {database}"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn file_flag_and_default_layer() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load(dir.path(), None, None).unwrap().listen.to_string(),
            DEFAULT_LISTEN
        );
        std::fs::write(dir.path().join(FILE), "listen = \"127.0.0.1:9000\"\n").unwrap();
        assert_eq!(load(dir.path(), None, None).unwrap().listen.port(), 9000);
        let flag: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(
            load(dir.path(), Some(flag), None).unwrap().listen.port(),
            9001
        );
        std::fs::write(
            dir.path().join(FILE),
            "listen = \"127.0.0.1:9000\"\nlisten_port = 1\n",
        )
        .unwrap();
        let err = load(dir.path(), None, None).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
    }

    #[test]
    fn database_layers_and_defaults_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(dir.path(), None, None).unwrap();
        assert!(
            matches!(config.database, Database::Sqlite(p) if p == dir.path().join("touchmark.db"))
        );
        std::fs::write(
            dir.path().join(FILE),
            "database = \"postgres://postgres@127.0.0.1:5432/file\"\n",
        )
        .unwrap();
        let config = load(dir.path(), None, None).unwrap();
        assert!(matches!(&config.database, Database::Postgres(u) if u.expose().ends_with("/file")));
        let flag = "postgres://postgres@127.0.0.1:5432/flag"
            .parse::<DatabaseUrl>()
            .unwrap();
        let config = load(dir.path(), None, Some(flag)).unwrap();
        assert!(matches!(&config.database, Database::Postgres(u) if u.expose().ends_with("/flag")));
        std::fs::write(dir.path().join(FILE), "database = \"mysql://x/y\"\n").unwrap();
        let err = format!("{:#}", load(dir.path(), None, None).unwrap_err());
        assert!(err.contains("`database`") && err.contains("mysql"), "{err}");
    }

    #[test]
    fn initial_file_parses_and_keeps_passwords_out() {
        let dir = tempfile::tempdir().unwrap();
        for (url, recorded) in [
            (None, false),
            (Some("postgres://postgres@127.0.0.1:5432/test"), true),
            (Some("postgres://app:s3cret@127.0.0.1:5432/test"), false),
        ] {
            let db = Database::for_dir(dir.path(), url.map(|u| u.parse::<DatabaseUrl>().unwrap()));
            let text = initial_file(&db);
            assert!(!text.contains("s3cret"), "{text}");
            std::fs::write(dir.path().join(FILE), &text).unwrap();
            let loaded = load(dir.path(), None, None).unwrap();
            assert_eq!(
                matches!(loaded.database, Database::Postgres(_)),
                recorded,
                "{text}"
            );
        }
    }
}
