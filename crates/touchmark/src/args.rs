//! The argument groups several commands share: where the installation and its records are,
//! which root CA to trust for the server, how to reach the server, and where a station's files are. Each
//! command's own arguments live with the command.

use std::path::PathBuf;

use clap::Args;
use touchmark_authority::Installation;
use touchmark_core::field::DatabaseUrl;

/// Where the data directory is.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// The data directory.
    #[arg(
        long = "data",
        env = "TOUCHMARK_DATA",
        default_value = "touchmark-data"
    )]
    pub dir: PathBuf,
}

/// Which database holds the records.
#[derive(Debug, Args, Clone)]
pub struct DatabaseArgs {
    /// A PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE) to keep the records in, shared by
    /// every replica serving the same data directory [default: the config file's `database`,
    /// else SQLite in the data directory]. A URL with a password is better passed in
    /// TOUCHMARK_DATABASE_URL_FILE.
    #[arg(
        long = "database",
        env = "TOUCHMARK_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub url: Option<DatabaseUrl>,
}

/// The root CA a client trusts for the server's TLS certificate.
#[derive(Debug, Args, Clone)]
pub struct RootCaArgs {
    /// The root CA that signed the server's certificate: the installation's infrastructure root
    /// [default: <data>/certs/infra-root-ca.pem; <data>/certs/root-ca.pem in a data directory
    /// from before `touchmark split-roots`].
    #[arg(long, env = "TOUCHMARK_CA")]
    pub ca: Option<PathBuf>,
    /// The data directory, used to find the root CA when --ca is not given.
    #[arg(
        long = "data",
        env = "TOUCHMARK_DATA",
        default_value = "touchmark-data"
    )]
    pub data: PathBuf,
}

impl RootCaArgs {
    /// The root CA file: `--ca`, else the data directory's root of the server.
    pub fn path(&self) -> PathBuf {
        self.ca
            .clone()
            .unwrap_or_else(|| Installation::server_root_path(&self.data))
    }
}

/// How a client command reaches the server.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The server's URL.
    #[arg(
        long,
        env = "TOUCHMARK_SERVER",
        default_value = "https://localhost:8443"
    )]
    pub server: String,
    /// An API token (admin, auditor, or field for `touchmark field`) [env: TOUCHMARK_TOKEN].
    /// Either flag overrides both variables.
    // The variables are read by `ApiArgs::token`, not by clap: clap would let an exported
    // TOUCHMARK_TOKEN_FILE conflict with a typed --token, naming a flag nobody typed.
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the API token [env: TOUCHMARK_TOKEN_FILE].
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Which root CA to trust.
    #[command(flatten)]
    pub trust: RootCaArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ApiArgs {
    /// The API token: `--token`, else the file `--token-file` names, else `TOUCHMARK_TOKEN`,
    /// else the file `TOUCHMARK_TOKEN_FILE` names, else none. A flag overrides the environment.
    ///
    /// # Errors
    /// When both variables are set, or the token file cannot be read or is empty.
    pub fn token(&self) -> anyhow::Result<Option<String>> {
        crate::secrets::secret(
            self.token.as_deref(),
            self.token_file.as_deref(),
            "TOUCHMARK_TOKEN",
            Some("TOUCHMARK_TOKEN_FILE"),
        )
    }
}

/// The station directory: where `touchmark station enroll` keeps the station's key,
/// certificate and settings, and where the commands after it read them.
#[derive(Debug, Args, Clone)]
pub struct StationDirArgs {
    /// The station directory: its key, certificate and settings, written by `station enroll`.
    #[arg(
        long,
        env = "TOUCHMARK_STATION_DIR",
        default_value = "touchmark-station"
    )]
    pub dir: PathBuf,
}

/// Which server a station's commands after enrollment talk to.
#[derive(Debug, Args, Clone)]
pub struct StationServerArgs {
    /// The server's URL, instead of the one the station enrolled with (kept in the station
    /// directory's station.json, which is not changed).
    #[arg(long = "server", env = "TOUCHMARK_SERVER", value_name = "URL")]
    pub url: Option<String>,
}
