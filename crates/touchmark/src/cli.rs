//! The command line: every subcommand, its flags and its help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Touchmark: only units that passed their factory test, within the ordered quota, get a device
/// identity — and every decision is provable from a signed, append-only log.
#[derive(Debug, Parser)]
#[command(
    name = "touchmark",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: database, root and station CAs, server TLS certificate, log key
    /// and a first admin token (printed once).
    Init(InitArgs),
    /// Serve the HTTPS API (stations over mTLS, admins with bearer tokens).
    Serve(ServeArgs),
    /// Manage products and their issuing CAs.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Manage factories.
    #[command(subcommand)]
    Factory(FactoryCommand),
    /// Manage stations, or act as one (enroll, provision).
    #[command(subcommand)]
    Station(StationCommand),
    /// Manage production orders and their quotas.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Look up units.
    #[command(subcommand)]
    Unit(UnitCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the event log.
    Events(EventsArgs),
    /// Run the whole story on this machine: a server, a factory with three lines, an order of
    /// 500 units, failures and clones, and the summary.
    Demo(DemoArgs),
    /// Measure Touchmark's performance honestly (see the README).
    Bench(crate::commands::bench::BenchArgs),
    /// Verify the audit log offline, or export it as a bundle.
    Audit(crate::commands::audit::AuditArgs),
    /// Copy a complete SQLite installation into an empty PostgreSQL database, so that it can be
    /// served by several replicas. Every record moves; the log keeps its key, size and root.
    Migrate(MigrateArgs),
}

/// Arguments of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The installation whose SQLite database (touchmark.db) is copied. Stop its server first.
    #[command(flatten)]
    pub data: DataArgs,
    /// The PostgreSQL database to copy into; it must hold no Touchmark records yet.
    #[arg(
        long = "to",
        env = "TOUCHMARK_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub to: crate::database::DatabaseUrl,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

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
    pub url: Option<crate::database::DatabaseUrl>,
}

/// Arguments of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where the installation lives.
    #[command(flatten)]
    pub data: DataArgs,
    /// Where its records live.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// A DNS name or IP address for the server's TLS certificate; repeat for several.
    #[arg(long = "host", default_values = ["localhost", "127.0.0.1", "::1"])]
    pub hosts: Vec<String>,
    /// The organization named in the CA certificates.
    #[arg(long, default_value = "Touchmark")]
    pub org: String,
    /// The audit log's origin (its name in checkpoints), such as `touchmark.example.com/log`.
    #[arg(long, default_value = "touchmark.local/log")]
    pub log_origin: String,
    /// Also write the first admin token to this file (created with mode 0600).
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the installation lives.
    #[command(flatten)]
    pub data: DataArgs,
    /// Where its records live.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to listen on [default: the config file's `listen`, else 127.0.0.1:8443].
    #[arg(long, env = "TOUCHMARK_LISTEN")]
    pub listen: Option<SocketAddr>,
}

/// The root CA a client trusts for the server's TLS certificate.
#[derive(Debug, Args, Clone)]
pub struct RootCaArgs {
    /// The root CA that signed the server's certificate [default: <data>/certs/root-ca.pem].
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
    /// The root CA file: `--ca`, else `<data>/certs/root-ca.pem`.
    pub fn path(&self) -> PathBuf {
        self.ca
            .clone()
            .unwrap_or_else(|| self.data.join("certs/root-ca.pem"))
    }

    /// Trusts the root CA of the installation in `data`.
    pub fn of_installation(data: &std::path::Path) -> Self {
        Self {
            ca: None,
            data: data.to_owned(),
        }
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
    /// An admin or auditor API token.
    #[arg(
        long,
        env = "TOUCHMARK_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the API token.
    #[arg(long, env = "TOUCHMARK_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Which root CA to trust.
    #[command(flatten)]
    pub trust: RootCaArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `product` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Create a product and its issuing CA.
    Create {
        /// The product id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// A human name.
        #[arg(long)]
        name: String,
        /// Subject O of device certificates.
        #[arg(long)]
        org: String,
        /// Subject CN of device certificates.
        #[arg(long)]
        cn: String,
        /// RFC 4108 hwType OID for hardwareModuleName [default: a random arc under 2.25].
        #[arg(long)]
        hw_type_oid: Option<String>,
        /// CRL distribution point URL.
        #[arg(long)]
        crl_url: Option<String>,
        /// OCSP responder URL.
        #[arg(long)]
        ocsp_url: Option<String>,
        /// Device certificate notAfter, RFC 3339 [default: 9999-12-31T23:59:59Z].
        #[arg(long)]
        cert_not_after: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List products.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a product, with its issuing CA.
    Show {
        /// The product id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `factory` subcommands.
#[derive(Debug, Subcommand)]
pub enum FactoryCommand {
    /// Create a factory.
    Create {
        /// The factory id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// A human name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List factories.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `station` subcommands.
#[derive(Debug, Subcommand)]
pub enum StationCommand {
    /// Create a station and print its one-time enrollment token.
    Create {
        /// The factory the station belongs to.
        #[arg(long)]
        factory: String,
        /// The station id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// A human name.
        #[arg(long)]
        name: Option<String>,
        /// Minutes until the enrollment token expires.
        #[arg(long, default_value_t = 1440)]
        ttl_minutes: u64,
        /// Also write the enrollment token to this file (created with mode 0600).
        #[arg(long)]
        enrollment_token_file: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List stations.
    List {
        /// Only stations of this factory.
        #[arg(long)]
        factory: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a station.
    Show {
        /// The station id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a station: it is refused at once.
    Revoke {
        /// The station id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// On the fixture PC: generate the station key here, and trade the one-time token and a CSR
    /// for the station's mTLS certificate. The key never leaves this machine.
    Enroll(EnrollArgs),
    /// On the fixture PC: provision one unit. Exit code 0 = issued, 2 = refused (code printed),
    /// 1 = error.
    Provision(ProvisionArgs),
    /// The fixture client and line simulator: simulated units, each with its own key, tested
    /// and provisioned at the given concurrency and rate, with live progress.
    Run(RunArgs),
    /// On the fixture PC: fetch a provisioned unit's receipt from the log.
    Receipt {
        /// The order the unit was counted against.
        #[arg(long)]
        order: String,
        /// The unit's serial.
        #[arg(long)]
        serial: String,
        /// Write the receipt to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The station directory written by `touchmark station enroll`.
        #[arg(
            long,
            env = "TOUCHMARK_STATION_DIR",
            default_value = "touchmark-station"
        )]
        dir: PathBuf,
    },
}

/// Arguments of `station enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The server's URL.
    #[arg(long, env = "TOUCHMARK_SERVER")]
    pub server: String,
    /// The one-time enrollment token from `touchmark station create`.
    #[arg(
        long,
        env = "TOUCHMARK_ENROLLMENT_TOKEN",
        hide_env_values = true,
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the enrollment token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The root CA that signed the server's certificate (given to the factory with the token).
    #[arg(long)]
    pub ca: PathBuf,
    /// Where to keep the station's key, certificate and settings.
    #[arg(
        long,
        env = "TOUCHMARK_STATION_DIR",
        default_value = "touchmark-station"
    )]
    pub dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `station provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The order to count the unit against.
    #[arg(long)]
    pub order: String,
    /// The unit's serial.
    #[arg(long)]
    pub serial: String,
    /// The unit's CSR, PEM or DER.
    #[arg(long)]
    pub csr: PathBuf,
    /// The unit's test record, JSON (Touchmark's or OpenHTF's).
    #[arg(long)]
    pub test: PathBuf,
    /// Directory to write certificate.pem, chain.pem, root-ca.pem and receipt.json into.
    #[arg(long)]
    pub out: PathBuf,
    /// The station directory written by `touchmark station enroll`.
    #[arg(
        long,
        env = "TOUCHMARK_STATION_DIR",
        default_value = "touchmark-station"
    )]
    pub dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `order` subcommands.
#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Create an order (in draft unless --open).
    Create {
        /// The order id [default: generated].
        #[arg(long)]
        id: Option<String>,
        /// The product built.
        #[arg(long)]
        product: String,
        /// The factory that builds it.
        #[arg(long)]
        factory: String,
        /// How many units may receive an identity.
        #[arg(long)]
        quota: u64,
        /// Admitted serials as a range, such as SN-000001..SN-000500.
        #[arg(long, conflicts_with = "serial_pattern")]
        serial_range: Option<String>,
        /// Admitted serials as a regular expression the whole serial must match.
        #[arg(long)]
        serial_pattern: Option<String>,
        /// Start of the window, RFC 3339.
        #[arg(long)]
        not_before: Option<String>,
        /// End of the window, RFC 3339.
        #[arg(long)]
        not_after: Option<String>,
        /// Open the order at once.
        #[arg(long)]
        open: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List orders.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show an order with its counts.
    Show {
        /// The order id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Open an order.
    Open {
        /// The order id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Close an order.
    Close {
        /// The order id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel an order.
    Cancel {
        /// The order id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change an order's quota (logged with the old and new value).
    Quota {
        /// The order id.
        id: String,
        /// The new quota.
        quota: u64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `unit` subcommands.
#[derive(Debug, Subcommand)]
pub enum UnitCommand {
    /// List an order's units.
    List {
        /// The order.
        #[arg(long)]
        order: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show a unit by serial.
    Show {
        /// The serial.
        serial: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a unit's receipt (`c2sp.org/tlog-proof@v1`): the inclusion proof of its issuance
    /// and the signed checkpoint. With --key, verify it here first.
    Receipt {
        /// The serial.
        serial: String,
        /// The log's verifier key (`<origin>+<id>+<key>`), or `@FILE` holding it.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; the secret is printed once.
    Create {
        /// `admin` or `auditor` (read-only).
        #[arg(long)]
        role: String,
        /// A note for humans.
        #[arg(long)]
        label: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// First index.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Most events shown (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Arguments of `station run`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The order to provision against.
    #[arg(long)]
    pub order: String,
    /// How many units to simulate.
    #[arg(long, default_value_t = 100)]
    pub units: u64,
    /// Serial prefix.
    #[arg(long, default_value = "SN-")]
    pub prefix: String,
    /// Number of the first serial (serials are PREFIX + a zero-padded number).
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    /// Digits of the serial number.
    #[arg(long, default_value_t = 6)]
    pub digits: usize,
    /// Units in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Share of units that fail their test, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Extra units that reuse an earlier unit's serial with a new key (expect `serial_conflict`).
    #[arg(long, default_value_t = 0)]
    pub clone_serials: u64,
    /// Extra units that reuse an earlier unit's key with a new serial (expect `key_reused`).
    #[arg(long, default_value_t = 0)]
    pub clone_keys: u64,
    /// Most units started per second (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seed for the simulated test results, so a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The station directory written by `touchmark station enroll`.
    #[arg(
        long,
        env = "TOUCHMARK_STATION_DIR",
        default_value = "touchmark-station"
    )]
    pub dir: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The data directory [default: ./touchmark-demo, created fresh].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Address to listen on [default: a free port on 127.0.0.1].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Run the scenario and exit: 0 only when every outcome is as expected.
    #[arg(long)]
    pub exit: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}
