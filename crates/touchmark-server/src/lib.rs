//! Touchmark's HTTPS server: the `/v1` API, the audit log's public endpoints, and mTLS station
//! authentication.
//!
//! Layers, as in step-ca: [`api`] handlers read, validate and authorize; `touchmark_authority`
//! decides and signs; `touchmark_store` records. [`auth`] makes authentication a type, [`error`]
//! is the one mapping from errors to HTTP, [`access`] logs every request. The listener bounds
//! what connections may hold ([`ConnectionLimits`], [`limits`]).

pub mod access;
pub mod api;
pub mod auth;
mod connections;
pub mod error;
pub mod limits;
mod listener;
pub mod metrics;
pub mod projector;
pub mod rate;
pub mod security_txt;
mod state;
mod tls;
pub mod ui;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use touchmark_authority::log::{Log, LogConfig};

pub use listener::ConnectionLimits;
use touchmark_authority::{Authority, Installation};
use touchmark_core::Clock;
use touchmark_core::policy::refusals::RefusalLimit;
use touchmark_store::Store;

pub use state::AppState;

/// How a server runs, beyond its installation and store.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The audit log's timings.
    pub log: LogConfig,
    /// What connections may hold.
    pub connections: ConnectionLimits,
    /// How a station refused at check 1 is logged: a few refusals per window one by one, the
    /// rest counted into one alert (`policy::refusals`).
    pub refusal_limit: RefusalLimit,
    /// How often ended refusal windows are looked for, to log their alerts.
    pub refusal_sweep: std::time::Duration,
    /// Whether the oversight projector folds the log on its own, every
    /// [`projector::POLL`]; without it, only callers that drive it
    /// ([`projector::Projector::step`]) raise alerts.
    pub projector: bool,
    /// The base URL relying parties reach `/crl` and `/ocsp` at; new device certificates name
    /// them when it is set.
    pub public_url: Option<String>,
    /// How CRLs are published.
    pub crl: touchmark_authority::crl::CrlConfig,
    /// How OCSP answers are made.
    pub ocsp: touchmark_authority::ocsp::OcspConfig,
    /// The largest release image accepted, in bytes (`[firmware] max_image_size`; 16 MiB by
    /// default, at most 64 MiB).
    pub max_release_size: u64,
    /// How many requests each field backend's token may make on `/v1/field/*`.
    pub field_rate: rate::RateLimit,
    /// How long a challenge for a proof of possession is accepted.
    pub field_challenge_ttl: std::time::Duration,
    /// The vulnerability intake (issue 18).
    pub vuln: VulnOptions,
}

/// The vulnerability intake's options (`[vulnerabilities]`, `[security_txt]`).
#[derive(Debug, Clone)]
pub struct VulnOptions {
    /// How many requests each source address may make on the public intake's routes.
    pub rate: rate::RateLimit,
    /// The age recipient reports may be encrypted to, published at
    /// `/v1/vulnerability-reports/encryption-key`.
    pub recipient: Option<String>,
    /// `/.well-known/security.txt`, when configured.
    pub security_txt: Option<security_txt::SecurityTxt>,
    /// The CSAF advisories' publisher and provider (`[csaf]`), when configured: advisories
    /// are published, and served under `/.well-known/csaf/`, only then.
    pub csaf: Option<touchmark_core::csaf::CsafConfig>,
    /// How often the CRA deadlines are looked at, to alert on those approaching or overdue.
    pub deadline_sweep: std::time::Duration,
}

impl Default for VulnOptions {
    /// Ten reports at once from one address, then one a minute: a researcher with several
    /// findings is served, a flood is not.
    fn default() -> Self {
        Self {
            rate: rate::RateLimit {
                per_second: 1.0 / 60.0,
                burst: 10,
            },
            recipient: None,
            security_txt: None,
            csaf: None,
            deadline_sweep: std::time::Duration::from_secs(60),
        }
    }
}

/// The default largest release image: 16 MiB, more than any MCU's flash slot.
pub const DEFAULT_MAX_RELEASE_SIZE: u64 = 16 * 1024 * 1024;

/// The largest release image a server may be configured to accept: 64 MiB (the upload body
/// carries it in base64).
pub const MAX_RELEASE_SIZE: u64 = 64 * 1024 * 1024;

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            log: LogConfig::default(),
            connections: ConnectionLimits::default(),
            refusal_limit: RefusalLimit::default(),
            refusal_sweep: std::time::Duration::from_secs(1),
            projector: true,
            public_url: None,
            crl: touchmark_authority::crl::CrlConfig::default(),
            ocsp: touchmark_authority::ocsp::OcspConfig::default(),
            max_release_size: DEFAULT_MAX_RELEASE_SIZE,
            field_rate: rate::RateLimit::default(),
            field_challenge_ttl: std::time::Duration::from_secs(60),
            vuln: VulnOptions::default(),
        }
    }
}

/// A server ready to run: its listener is bound, so its address is known.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    app: axum::Router,
    connections: ConnectionLimits,
    refusal_sweep: std::time::Duration,
    projector: bool,
    crl_config: touchmark_authority::crl::CrlConfig,
    deadline_sweep: std::time::Duration,
}

impl Server {
    /// Binds `addr` and prepares the server over `installation` and `store`, with the log's
    /// timings from `log_config`.
    ///
    /// # Errors
    /// When the address cannot be bound, TLS cannot be configured, or the audit log contradicts
    /// itself.
    pub async fn bind(
        addr: SocketAddr,
        installation: &Installation,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        log_config: LogConfig,
    ) -> anyhow::Result<Self> {
        let options = ServerOptions {
            log: log_config,
            ..ServerOptions::default()
        };
        Self::bind_with(addr, installation, store, clock, options).await
    }

    /// [`Server::bind`], with every option.
    ///
    /// # Errors
    /// As [`Server::bind`].
    pub async fn bind_with(
        addr: SocketAddr,
        installation: &Installation,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        options: ServerOptions,
    ) -> anyhow::Result<Self> {
        let log_config = options.log;
        let tls = tls::server_config(
            installation.server_cert(),
            Arc::clone(installation.server_key()),
            &[
                installation.station_ca().certificate(),
                installation.device_root().certificate(),
            ],
        )?;
        // Before anything is written: the database must be this installation's.
        installation
            .check_database(store.as_ref(), false, clock.now())
            .await?;
        let listener = listener::bind(addr, options.connections.backlog)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let authority = Arc::new(
            Authority::new(installation, Arc::clone(&store), Arc::clone(&clock))
                .with_refusal_limit(options.refusal_limit)
                .with_public_url(options.public_url)
                .with_max_release_size(options.max_release_size.min(MAX_RELEASE_SIZE))
                .with_report_recipient(options.vuln.recipient.clone())
                .with_csaf(options.vuln.csaf.clone()),
        );
        let log = Arc::new(
            Log::open(
                Arc::clone(&store),
                Arc::clone(installation.log_key()),
                installation.log_verifier().clone(),
                log_config,
            )
            .await?,
        );
        // Refuse to serve a log that contradicts itself, whichever replica sequences it; then,
        // if this one holds the lease, publish a checkpoint of what is committed before
        // accepting any connection.
        log.check_unsigned().await?;
        log.sequence_once(clock.now()).await?;
        let projector = Arc::new(projector::Projector::new(
            Arc::clone(&authority),
            Arc::clone(&store),
            Arc::clone(&log),
            Arc::clone(&clock),
            touchmark_core::policy::alerts::AlertConfig::default(),
        ));
        // Every CRL is signed before the first connection: a fetch never signs.
        let crls = Arc::new(touchmark_authority::crl::CrlPublisher::default());
        crls.publish_all(&authority, &options.crl).await?;
        let state = AppState {
            store,
            authority,
            clock,
            log,
            station_certs: Arc::default(),
            metrics: Arc::default(),
            projector,
            sessions: Arc::default(),
            crls,
            ocsp: Arc::new(touchmark_authority::ocsp::OcspResponder::new(options.ocsp)),
            field_rate: Arc::new(rate::TokenRates::new(options.field_rate)),
            field_challenge_ttl: time::Duration::try_from(options.field_challenge_ttl)
                .unwrap_or(time::Duration::MINUTE),
            report_rate: Arc::new(rate::TokenRates::new(options.vuln.rate)),
            security_txt: options.vuln.security_txt.clone().map(Arc::new),
        };
        let app = api::router(state.clone());
        Ok(Self {
            listener,
            tls: Arc::new(tls),
            state,
            app,
            connections: options.connections,
            refusal_sweep: options.refusal_sweep,
            projector: options.projector,
            crl_config: options.crl,
            deadline_sweep: options.vuln.deadline_sweep,
        })
    }

    /// The address the server listens on.
    ///
    /// # Errors
    /// When the socket cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The authority the server's writes go through, for in-process callers (the demo, the
    /// benchmark, tests).
    pub fn authority(&self) -> &Arc<Authority> {
        &self.state.authority
    }

    /// The server's audit log, for in-process callers that drive it
    /// ([`Log::sequence_once`]) instead of waiting for its interval.
    pub fn log(&self) -> &Arc<Log> {
        &self.state.log
    }

    /// The oversight projector, for in-process callers that drive it
    /// ([`projector::Projector::step`]) instead of waiting for its interval.
    pub fn projector(&self) -> &Arc<projector::Projector> {
        &self.state.projector
    }

    /// The store the server reads and writes.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let log = Arc::clone(&self.state.log);
        let sequencer =
            tokio::spawn(Arc::clone(&log).run_sequencer(Arc::clone(&self.state.clock), stopped));
        let authority = Arc::clone(&self.state.authority);
        let sweeper = tokio::spawn(close_refusal_windows(
            Arc::clone(&authority),
            self.refusal_sweep,
        ));
        let deadlines = tokio::spawn(raise_report_deadline_alerts(
            Arc::clone(&authority),
            self.deadline_sweep,
        ));
        let projector = self
            .projector
            .then(|| tokio::spawn(Arc::clone(&self.state.projector).run()));
        let deliveries = tokio::spawn(webhooks::run(
            Arc::clone(&self.state.store),
            Arc::clone(&self.state.clock),
        ));
        let crl_publisher = tokio::spawn(Arc::clone(&self.state.crls).run(
            Arc::clone(&authority),
            self.crl_config.clone(),
            stop.subscribe(),
        ));
        // Revocations committed through another replica on the same database.
        let follower = tokio::spawn({
            let authority = Arc::clone(&authority);
            async move {
                authority
                    .follow_revocations(touchmark_authority::revocation::FOLLOW_POLL)
                    .await;
            }
        });
        listener::serve(
            self.listener,
            self.tls,
            self.app,
            self.connections,
            shutdown,
        )
        .await;
        sweeper.abort();
        deadlines.abort();
        if let Some(projector) = projector {
            projector.abort();
        }
        deliveries.abort();
        crl_publisher.abort();
        follower.abort();
        // The counts of windows still open are logged now rather than lost.
        authority.close_refusal_windows(true).await;
        let _ = stop.send(true);
        let _ = sequencer.await;
        // Cover what was committed last before stopping.
        if let Err(e) = log.sequence_once(self.state.clock.now()).await {
            tracing::warn!(error = %e, "the final checkpoint could not be signed");
        }
        log.release().await;
    }
}

/// Logs the alert of each refusal window once it has ended, looking every `period`.
async fn close_refusal_windows(authority: Arc<Authority>, period: std::time::Duration) {
    let mut tick = tokio::time::interval(period.max(std::time::Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        authority.close_refusal_windows(false).await;
    }
}

/// Raises the alerts of CRA deadlines approaching or overdue, looking every `period`.
async fn raise_report_deadline_alerts(authority: Arc<Authority>, period: std::time::Duration) {
    let mut tick = tokio::time::interval(period.max(std::time::Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = authority.raise_report_deadline_alerts().await {
            tracing::warn!(error = %e, "the CRA deadlines could not be looked at");
        }
    }
}
