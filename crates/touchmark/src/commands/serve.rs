//! `touchmark serve`: the HTTPS API until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use touchmark_authority::{Installation, RootLayout};
use touchmark_core::{Clock, SystemClock};
use touchmark_server::Server;
use touchmark_store::Store;

use crate::args::{DataArgs, DatabaseArgs};
use crate::{config, secrets, shutdown};

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

/// Runs `touchmark serve`.
///
/// # Errors
/// When the installation cannot be opened (wrong passphrase, missing directory), other users
/// can read it, another server serves its SQLite database already, or the address cannot be
/// bound.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let dir = args.data.dir;
    let config = config::load(&dir, args.listen, args.database.url)?;
    let passphrase = secrets::passphrase()?;
    let installation = Installation::open(&dir, &passphrase)?;
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
    let server = Server::bind(config.listen, &installation, store, clock, log_config).await?;
    let addr = server.local_addr()?;
    // Scripts and tests wait for this line; keep its shape.
    println!("touchmark listening on https://{addr}");
    eprintln!("touchmark: records in {}", config.database);
    server.run(shutdown::signal()).await;
    println!("touchmark stopped");
    Ok(())
}
