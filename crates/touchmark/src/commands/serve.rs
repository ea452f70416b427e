//! `touchmark serve`: the HTTPS API until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use touchmark_authority::{Installation, RootLayout};
use touchmark_core::{Clock, SystemClock};
use touchmark_server::{Server, ServerOptions, limits};
use touchmark_store::Store;

use crate::args::{DataArgs, DatabaseArgs};
use crate::commands::keys;
use crate::{config, shutdown};

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
    /// Client connections open at once; at the cap, a new one closes the connection idle
    /// longest [default: the config file's `connections.max`, else what the open-file limit
    /// leaves after a reserve for the database and logs, at most 16384].
    #[arg(long, env = "TOUCHMARK_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
}

/// Runs `touchmark serve`.
///
/// # Errors
/// When the installation cannot be opened (wrong passphrase, missing directory), other users
/// can read it, another server serves its SQLite database already, the connection cap needs
/// more open files than the hard limit allows, or the address cannot be bound.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let dir = args.data.dir;
    let config = config::load(&dir, args.listen, args.database.url)?;
    // Every key is loaded (from the token, or decrypted from files) before anything serves.
    let installation = keys::open_installation(&dir, config.pkcs11.as_ref())?;
    if installation.layout() == RootLayout::Single {
        // Issue 11, finding 6: it still serves, so that an upgrade breaks nothing, but says
        // what is wrong and what fixes it.
        eprintln!(
            "touchmark: warning: one root CA ({}) signs the devices' CAs, the station CA and \
             this server's certificate, so a broker that trusts it for devices also accepts a \
             station's certificate as a device. Stop the server and run `touchmark split-roots \
             --data {}` to give stations and the server a root of their own.",
            Installation::server_root_path(&dir).display(),
            dir.display()
        );
    }
    // A SQLite file inside the data directory is the installation's own, even from before
    // databases were claimed; a shared database must prove it.
    let own_file = matches!(config.database, crate::database::Database::Sqlite(_));
    Installation::check_private(&dir, own_file)?;
    // One server per SQLite file, held until this function returns (or the process ends);
    // replicas on PostgreSQL share their database on purpose.
    let lock = if own_file {
        Some(Installation::lock(&dir)?)
    } else {
        None
    };
    // Holding the lock, this process is the SQLite log's only possible sequencer: a lease left
    // by a predecessor killed mid-run is taken over at once rather than waited out.
    let mut log_config = config.log;
    log_config.sole = lock.as_ref().map(|l| l.sole_sequencer());
    let store: Arc<dyn Store> = config.database.open().await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    installation
        .check_database(store.as_ref(), own_file, clock.now())
        .await?;
    let max_connections = max_connections(
        args.max_connections
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .or(config.connections.max),
    )?;
    let options = ServerOptions {
        log: log_config,
        connections: config.connections.limits(max_connections),
        refusal_limit: config.refusal_limit,
        public_url: config.public_url,
        max_release_size: config.max_release_size,
        field_rate: config.field.rate,
        field_challenge_ttl: config.field.challenge_ttl,
        vuln: config.vuln.clone(),
        ..ServerOptions::default()
    };
    let server = Server::bind_with(config.listen, &installation, store, clock, options).await?;
    let addr = server.local_addr()?;
    // Scripts and tests wait for this line; keep its shape.
    println!("touchmark listening on https://{addr}");
    tracing::info!("records in {}", config.database);
    server.run(shutdown::signal()).await;
    println!("touchmark stopped");
    Ok(())
}

/// Raises the open-file limit to the hard limit, and sizes the connection cap from the limit
/// that results: `configured` if it fits, else an error that says what to change.
fn max_connections(configured: Option<usize>) -> anyhow::Result<usize> {
    let files = limits::raise_open_file_limit()?;
    let fits = limits::connections_for(files.limit);
    let max = match configured {
        Some(max) if max > fits => anyhow::bail!(
            "{max} connections need more open files than the limit of {} allows ({fits} after a \
             reserve of {} for the database and logs): lower `--max-connections` or \
             `connections.max`, or raise the hard limit (`ulimit -Hn`, systemd's LimitNOFILE)",
            files.limit,
            limits::reserved_files(files.limit)
        ),
        Some(max) => max,
        None => fits.min(limits::DEFAULT_MAX_CONNECTIONS),
    };
    tracing::info!(
        open_files = files.limit,
        raised_from = files.raised_from,
        max_connections = max,
        "up to {max} connections"
    );
    Ok(max)
}
