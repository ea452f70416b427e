//! The command line: every subcommand and its help text. Each command's arguments live with the
//! command; `main` dispatches.

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands::oversight;
use crate::commands::{
    admin, audit, backup, bench, demo, doctor, firmware, fixture, init, keys, manual, migrate,
    roots, run, serve,
};

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
    /// When something fails, say more: the underlying cause of a connection or TLS failure.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// How diagnostics and the server's request log are written to standard error: `text`
    /// (colours only on a terminal, and never with NO_COLOR set) or `json`, one object per
    /// line. Which lines is TOUCHMARK_LOG's filter [default: `info` for `serve`, `warn`
    /// otherwise].
    #[arg(
        long,
        global = true,
        value_enum,
        env = "TOUCHMARK_LOG_FORMAT",
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The form of the lines written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, `key=value` fields.
    Text,
    /// One JSON object per line, its fields at the top level beside `timestamp`, `level`,
    /// `target` and `message`.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: database, the device root CA, the infrastructure root CA with
    /// the station CA and the server's TLS certificate, log key and a first admin token (printed
    /// once).
    Init(init::InitArgs),
    /// Give the stations and the server a root of their own, apart from the devices' root, in a
    /// data directory made before roots were split. Stop the server first; enroll the stations
    /// again afterwards.
    SplitRoots(roots::SplitRootsArgs),
    /// Serve the HTTPS API (stations over mTLS, admins with bearer tokens).
    Serve(serve::ServeArgs),
    /// Manage products and their issuing CAs.
    #[command(subcommand)]
    Product(admin::ProductCommand),
    /// Firmware releases: the release encryption keys the server holds for a product.
    #[command(subcommand)]
    Release(firmware::ReleaseCommand),
    /// Products' issuing CAs under an offline device root (`init --root-cert`): a request for
    /// the root to sign, and the certificate it signed, installed.
    #[command(subcommand)]
    Ca(crate::commands::ca::CaCommand),
    /// Manage factories.
    #[command(subcommand)]
    Factory(admin::FactoryCommand),
    /// Manage stations, or act as one (enroll, provision).
    #[command(subcommand)]
    Station(StationCommand),
    /// Manage production orders and their quotas.
    #[command(subcommand)]
    Order(admin::OrderCommand),
    /// Look up units.
    #[command(subcommand)]
    Unit(admin::UnitCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Read the event log.
    Events(admin::EventsArgs),
    /// Revoke a unit, an order, a product's issuing CA, a station, or a station's units by
    /// provenance, with an RFC 5280 reason; release a unit's hold.
    #[command(subcommand)]
    Revoke(crate::commands::revoke::RevokeCommand),
    /// Run the whole story on this machine: a server, a factory with three lines, an order of
    /// 500 units, failures and clones, and the summary.
    Demo(demo::DemoArgs),
    /// Measure Touchmark's performance honestly (see the README).
    Bench(bench::BenchArgs),
    /// Verify the audit log offline, or export it as a bundle.
    Audit(audit::AuditArgs),
    /// Copy a complete SQLite installation into an empty PostgreSQL database, so that it can be
    /// served by several replicas. Every record moves; the log keeps its key, size and root.
    Migrate(migrate::MigrateArgs),
    /// Copy a SQLite installation, while its server runs if need be: a consistent snapshot of
    /// the database, the keys, certificates and configuration, private to its owner. For
    /// PostgreSQL, use pg_dump.
    Backup(backup::BackupArgs),
    /// Make a new data directory from a backup. Refuses a data directory that is served or
    /// holds anything.
    Restore(backup::RestoreArgs),
    /// Check a data directory: permissions, keys, database, log and clock, each ok, warn or
    /// fail; exits non-zero when any check fails.
    Doctor(doctor::DoctorArgs),
    /// The installation's private keys: where each lives, its algorithm and public key hash.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell). For bash:
    /// `touchmark completions bash > /etc/bash_completion.d/touchmark`.
    Completions(manual::CompletionsArgs),
    /// Print the manual page, or with --dir write one per command (`man -l touchmark.1`).
    Man(manual::ManArgs),
    /// Report on what the stored test records say: an order's yields, failures and
    /// measurements over a window.
    #[command(subcommand)]
    Report(oversight::ReportCommand),
    /// See, acknowledge and resolve alerts: clones, work beyond the quota or outside the
    /// window, stations without standing or far above their usual rate, low first-pass yield,
    /// drifting measurements.
    #[command(subcommand)]
    Alert(oversight::AlertCommand),
    /// Register endpoints that receive alerts (Standard Webhooks).
    #[command(subcommand)]
    Webhook(oversight::WebhookCommand),
    /// What a field backend asks: is this device genuine, unknown, revoked or a clone?
    #[command(subcommand)]
    Field(crate::commands::field::FieldCommand),
    /// A unit's side, to try the device routes without hardware: make a unit's keys and CSR as
    /// its secure element would, and fetch a field update over its own certificate, opened as
    /// its bootloader would.
    #[command(subcommand)]
    Device(crate::commands::device::DeviceCommand),
    /// Vulnerability reports from the public intake: list (with their CRA deadlines), show,
    /// triage, classify under the CRA, record notifications submitted, link to products.
    #[command(subcommand)]
    Vuln(crate::commands::vuln::VulnCommand),
    /// Print Touchmark's own SBOM: a CycloneDX 1.5 JSON document of the Rust dependencies this
    /// binary was built with (from Cargo.lock, made at build time by the CycloneDX Cargo
    /// generator). To standard output, or to --out.
    Sbom(crate::commands::sbom::SbomArgs),
}

/// `station` subcommands: the admin's, and what runs on the fixture PC.
#[derive(Debug, Subcommand)]
pub enum StationCommand {
    /// The admin's subcommands.
    #[command(flatten)]
    Admin(admin::StationCommand),
    /// On the fixture PC: generate the station key here, and trade the one-time token and a CSR
    /// for the station's mTLS certificate. The key never leaves this machine.
    Enroll(fixture::EnrollArgs),
    /// On the fixture PC: provision one unit. Exit code 0 = issued, 2 = refused (code printed),
    /// 3 = the server could not be reached or is not trusted, 1 = any other error.
    Provision(fixture::ProvisionArgs),
    /// The fixture client and line simulator: simulated units, each with its own key, tested
    /// and provisioned at the given concurrency and rate, with live progress.
    Run(run::RunArgs),
    /// On the fixture PC: fetch a provisioned unit's receipt from the log.
    Receipt(fixture::ReceiptArgs),
}
