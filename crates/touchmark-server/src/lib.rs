//! Touchmark's HTTPS server: the `/v1` API, mTLS station authentication, and the issuance
//! authority that decides, signs and records.
//!
//! Layers, as in step-ca: [`api`] handlers read, validate and authorize; [`authority`] decides
//! and signs; `touchmark_store` records. [`auth`] makes authentication a type, [`error`] is the
//! one mapping from errors to HTTP.

pub mod api;
pub mod auth;
pub mod authority;
pub mod error;
pub mod installation;
pub mod listener;
pub mod log;
pub mod state;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use touchmark_core::Clock;
use touchmark_store::Store;

pub use installation::{InitOptions, Installation, InstallationError};
pub use state::AppState;

/// A server ready to run: its listener is bound, so its address is known.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    app: axum::Router,
}

impl Server {
    /// Binds `addr` and prepares the server over `installation` and `store`.
    ///
    /// # Errors
    /// When the address cannot be bound or TLS cannot be configured.
    pub async fn bind(
        addr: SocketAddr,
        installation: &Installation,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let tls = tls::server_config(
            installation.server_cert(),
            Arc::clone(installation.server_key()),
            installation.station_ca().certificate(),
        )?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let authority = Arc::new(authority::Authority::new(
            installation,
            Arc::clone(&store),
            Arc::clone(&clock),
        ));
        let log = Arc::new(
            log::Log::open(
                Arc::clone(&store),
                Arc::clone(installation.log_key()),
                installation.log_verifier().clone(),
            )
            .await?,
        );
        // Refuse to serve a log that contradicts itself, whichever replica sequences it; then,
        // if this one holds the lease, publish a checkpoint of what is committed before
        // accepting any connection.
        log.check_unsigned().await?;
        log.sequence_once(clock.now()).await?;
        let state = AppState {
            store,
            authority,
            clock,
            log,
            station_certs: Arc::default(),
        };
        let app = api::router(state.clone());
        Ok(Self {
            listener,
            tls: Arc::new(tls),
            state,
            app,
        })
    }

    /// The address the server listens on.
    ///
    /// # Errors
    /// When the socket cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (for in-process callers such as `touchmark init`'s first token).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let log = Arc::clone(&self.state.log);
        let sequencer =
            tokio::spawn(Arc::clone(&log).run_sequencer(Arc::clone(&self.state.clock), stopped));
        listener::serve(self.listener, self.tls, self.app, shutdown).await;
        let _ = stop.send(true);
        let _ = sequencer.await;
        // Cover what was committed last before stopping.
        if let Err(e) = log.sequence_once(self.state.clock.now()).await {
            tracing::warn!(error = %e, "the final checkpoint could not be signed");
        }
        log.release().await;
    }
}
