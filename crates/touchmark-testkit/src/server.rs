//! A real Touchmark server for one test, in this process: a fresh installation whose keys live
//! in memory (no key derivation to wait for), a store of the chosen backend, a manual clock,
//! and an admin client.

use std::net::SocketAddr;
use std::sync::Arc;

use tempfile::TempDir;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use touchmark_authority::log::{Log, LogConfig};
use touchmark_authority::{Authority, InitOptions, Installation};
use touchmark_client::api::CreateOrder;
use touchmark_client::{Client, ClientConfig};
use touchmark_core::Clock;
use touchmark_core::clock::ManualClock;
use touchmark_core::command::NewTokenRequest;
use touchmark_core::entity::Role;
use touchmark_core::event::Actor;
use touchmark_core::field::Label;
use touchmark_pki::MemoryKeys;
use touchmark_server::{Server, ServerOptions};
use touchmark_store::Store;
use touchmark_store_postgres::ScratchSchema;
use touchmark_store_sqlite::SqliteStore;

use crate::fixtures::{self, Line, Station, order_request};
use crate::http::Raw;
use crate::snapshot::Snapshot;

/// Where a test server keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in the installation's directory.
    Sqlite,
    /// A schema of its own in the PostgreSQL database at `TOUCHMARK_TEST_POSTGRES_URL`,
    /// dropped when the server is.
    Postgres,
}

/// A running server over its own installation, with an admin client. Dropping it stops the
/// server and removes its data.
pub struct TestServer {
    /// `https://localhost:PORT`.
    pub base_url: String,
    /// The root a client trusts for the server, PEM: the installation's infrastructure root,
    /// the anchor of the server's TLS certificate and of the station CA.
    pub root_ca_pem: String,
    /// The installation's device root, PEM: the anchor of every device chain, which a
    /// provisioning answer carries as its `root_ca_pem`.
    pub device_root_pem: String,
    /// The server's clock, moved by the tests.
    pub clock: Arc<ManualClock>,
    /// A client holding an admin token.
    pub admin: Client,
    /// The server's store, for reading what the database holds.
    pub store: Arc<dyn Store>,
    /// The server's audit log, for [`TestServer::sequence_now`].
    pub log: Arc<Log>,
    /// The server's authority, for [`TestServer::close_refusal_windows`].
    pub authority: Arc<Authority>,
    /// The server's oversight projector, for [`TestServer::project`].
    pub projector: Arc<touchmark_server::projector::Projector>,
    shutdown: Option<oneshot::Sender<()>>,
    /// The installation's directory and keys, for [`TestServer::replica`].
    installation_dir: std::path::PathBuf,
    keys: Arc<dyn touchmark_pki::KeyProvider>,
    // Dropped last: the data directory, and the PostgreSQL schema.
    _dir: TempDir,
    _schema: Option<ScratchSchema>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A fresh, empty store of `backend`: SQLite in `dir`, or a scratch schema, dropped with the
/// returned guard.
pub async fn open_store(
    backend: Backend,
    dir: &std::path::Path,
) -> (Arc<dyn Store>, Option<ScratchSchema>) {
    match backend {
        Backend::Sqlite => (
            Arc::new(SqliteStore::open(&Installation::database_path(dir)).expect("store")),
            None,
        ),
        Backend::Postgres => {
            let schema = ScratchSchema::new(&touchmark_testenv::postgres_url());
            let store = schema.connect().await.expect("a PostgreSQL schema");
            (Arc::new(store), Some(schema))
        }
    }
}

/// A fresh installation in `dir` whose keys live in memory.
pub fn installation(dir: &std::path::Path, now: OffsetDateTime) -> Installation {
    Installation::init_with(
        dir,
        Arc::new(MemoryKeys::default()),
        &InitOptions {
            organization: "Test".into(),
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
            log_origin: "test.local/log".into(),
            offline_root: None,
        },
        now,
    )
    .expect("init")
}

impl TestServer {
    /// Initializes an installation in a fresh directory and starts a server on it, with its
    /// records in `backend`. The log sequences only when a test asks
    /// ([`TestServer::sequence_now`]) or after a minute, so no test waits on its interval.
    pub async fn start(backend: Backend) -> Self {
        Self::start_public(backend, None).await
    }

    /// The same, with `public_url` configured: new device certificates name their order's CRL
    /// partition and the OCSP responder under it, and the partitions are published.
    pub async fn start_public(backend: Backend, public_url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = OffsetDateTime::now_utc();
        // The installation first: it refuses a directory that holds a database already.
        let installation = installation(dir.path(), now);
        let (store, schema) = open_store(backend, dir.path()).await;
        Self::serve(dir, installation, store, schema, now, public_url, &|_| {}).await
    }

    /// The same as [`TestServer::start`], with the server's options changed by `tweak` (on
    /// top of the tests' own: a manual clock, no sequencing or projecting on their own).
    pub async fn start_with(backend: Backend, tweak: &(dyn Fn(&mut ServerOptions) + Sync)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = OffsetDateTime::now_utc();
        let installation = installation(dir.path(), now);
        let (store, schema) = open_store(backend, dir.path()).await;
        Self::serve(dir, installation, store, schema, now, None, tweak).await
    }

    /// The same on a store of the caller's, empty, with a new installation in `dir`; `schema`
    /// is dropped with the server.
    pub async fn start_on(
        dir: TempDir,
        store: Arc<dyn Store>,
        schema: Option<ScratchSchema>,
    ) -> Self {
        let now = OffsetDateTime::now_utc();
        let installation = installation(dir.path(), now);
        Self::serve(dir, installation, store, schema, now, None, &|_| {}).await
    }

    async fn serve(
        dir: TempDir,
        installation: Installation,
        store: Arc<dyn Store>,
        schema: Option<ScratchSchema>,
        now: OffsetDateTime,
        public_url: Option<&str>,
        tweak: &(dyn Fn(&mut ServerOptions) + Sync),
    ) -> Self {
        installation
            .claim(store.as_ref(), now)
            .await
            .expect("the new database is the installation's");
        let clock = Arc::new(ManualClock::new(now));
        let mut options = ServerOptions {
            log: LogConfig {
                interval: std::time::Duration::from_secs(60),
                lease_ttl: std::time::Duration::from_secs(180),
                sole: None,
            },
            // Refusal windows end on the manual clock, and their alerts are logged when a
            // test asks (`close_refusal_windows`).
            refusal_sweep: std::time::Duration::from_secs(3600),
            // Alerts are raised when a test asks (`project`), so that the log holds exactly
            // what each test did.
            projector: false,
            public_url: public_url.map(str::to_owned),
            // Every test request comes from 127.0.0.1: the intake's limit per address would
            // refuse a suite's worth of reports (and schemathesis's examples). A test of the
            // limit itself sets it back (`VulnOptions::default().rate`).
            vuln: touchmark_server::VulnOptions {
                rate: touchmark_server::rate::RateLimit {
                    per_second: 1_000_000.0,
                    burst: 1_000_000,
                },
                ..touchmark_server::VulnOptions::default()
            },
            ..ServerOptions::default()
        };
        tweak(&mut options);
        let server = Server::bind_with(
            "127.0.0.1:0".parse::<SocketAddr>().expect("address"),
            &installation,
            store,
            Arc::clone(&clock) as Arc<dyn Clock>,
            options,
        )
        .await
        .expect("bind");
        let port = server.local_addr().expect("local address").port();
        let store = Arc::clone(server.store());
        let log = Arc::clone(server.log());
        let authority = Arc::clone(server.authority());
        let projector = Arc::clone(server.projector());
        let admin = NewTokenRequest {
            role: Role::Admin,
            label: Label::parse("label", "test").expect("label"),
        };
        let (_, _, token) = server
            .authority()
            .create_token(Actor::System, admin)
            .await
            .expect("admin token");
        let (tx, rx) = oneshot::channel::<()>();
        // Bound already: connections queue in the backlog until `run` accepts them.
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let base_url = format!("https://localhost:{port}");
        let installation_dir = dir.path().to_owned();
        let keys = Arc::clone(installation.keys());
        let root_ca_pem = installation.infra_root().certificate().pem();
        let device_root_pem = installation.device_root().certificate().pem();
        let mut config = ClientConfig::new(&base_url, &root_ca_pem);
        config.token = Some(token);
        let admin = Client::new(config).expect("admin client");
        Self {
            base_url,
            root_ca_pem,
            device_root_pem,
            clock,
            admin,
            store,
            log,
            authority,
            projector,
            shutdown: Some(tx),
            installation_dir,
            keys,
            _dir: dir,
            _schema: schema,
        }
    }

    /// A second server over the same installation and the same store, as a replica on one
    /// PostgreSQL database is: its own process state (caches, published CRLs, clock at this
    /// server's time now) and its own admin token. Only one of the two holds the sequencer
    /// lease (this one, which started first); the replica must not outlive this server.
    pub async fn replica(&self) -> Self {
        let installation = Installation::open_with(&self.installation_dir, Arc::clone(&self.keys))
            .expect("the installation opens again");
        let dir = tempfile::tempdir().expect("tempdir");
        Self::serve(
            dir,
            installation,
            Arc::clone(&self.store),
            None,
            self.clock.now(),
            None,
            &|_| {},
        )
        .await
    }

    /// Gives every committed entry its index and signs a checkpoint over them now, instead of
    /// waiting for the sequencer's interval; returns the checkpoint's size.
    pub async fn sequence_now(&self) -> u64 {
        self.log
            .sequence_once(self.clock.now())
            .await
            .expect("the log sequences");
        self.log.latest().map_or(0, |l| l.size())
    }

    /// Sequences what is committed, then folds it into the oversight rules and raises their
    /// alerts now (judging every order's drift), as the server does every 200 ms; returns how
    /// many alerts this call raised (the server's own loop may have raised some first).
    pub async fn project(&self) -> usize {
        self.sequence_now().await;
        self.projector
            .catch_up()
            .await
            .expect("the projector folds the log")
    }

    /// Logs the alert of every refusal window that has ended on the server's clock, as the
    /// server does every second; returns how many it logged.
    pub async fn close_refusal_windows(&self) -> u64 {
        self.authority.close_refusal_windows(false).await
    }

    /// The server's current time.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Moves the server's clock by `by`.
    pub fn advance(&self, by: time::Duration) {
        self.clock.set(self.clock.now() + by);
    }

    /// A client with no credentials at all.
    pub fn anonymous(&self) -> Client {
        Client::new(ClientConfig::new(&self.base_url, &self.root_ca_pem)).expect("client")
    }

    /// A client with the bearer `token`.
    pub fn with_token(&self, token: &str) -> Client {
        let mut config = ClientConfig::new(&self.base_url, &self.root_ca_pem);
        config.token = Some(token.to_owned());
        Client::new(config).expect("client")
    }

    /// A raw client presenting no certificate.
    pub fn raw(&self) -> Raw {
        Raw::new(&self.base_url, &self.root_ca_pem, None)
    }

    /// Creates a product.
    pub async fn product(&self, id: &str) -> String {
        fixtures::product(&self.admin, id).await
    }

    /// Creates a factory.
    pub async fn factory(&self, id: &str) -> String {
        fixtures::factory(&self.admin, id).await
    }

    /// Creates the order `request` describes; returns its id.
    pub async fn order_with(&self, request: CreateOrder) -> String {
        self.admin.create_order(&request).await.expect("order").id
    }

    /// Creates an open order over a serial range, with no window.
    pub async fn order(
        &self,
        id: &str,
        product: &str,
        factory: &str,
        quota: u64,
        range: &str,
    ) -> String {
        self.order_with(order_request(id, product, factory, quota, range))
            .await
    }

    /// A product, a factory and an open order with `quota` over `range`.
    pub async fn line(&self, tag: &str, quota: u64, range: &str) -> Line {
        fixtures::line(&self.admin, tag, quota, range).await
    }

    /// Gives `product` an X25519 release key, registers the reference Ed25519 signing key, and
    /// uploads release `version` (major.minor.revision) of a small payload, built as `imgtool
    /// sign --encrypt` builds it. Returns the release and its image as uploaded.
    pub async fn release(
        &self,
        product: &str,
        version: (u8, u8, u16),
    ) -> (touchmark_core::api::ReleaseBody, Vec<u8>) {
        crate::firmware::release(&self.admin, product, version).await
    }

    /// Creates a station of `factory` and enrolls it as a fixture PC would.
    pub async fn enroll_station(&self, factory: &str) -> Station {
        fixtures::enroll_station(&self.admin, &self.base_url, &self.root_ca_pem, factory).await
    }

    /// The log index of each receipt: its own when the backend gave one at commit; otherwise,
    /// after sequencing, the index of the event with its leaf hash (searching from the end, as
    /// the same event bytes can be logged twice, and never handing one index out twice).
    pub async fn indices(&self, receipts: &[(Option<u64>, String)]) -> Vec<u64> {
        if receipts.iter().all(|(index, _)| index.is_some()) {
            return receipts.iter().filter_map(|(index, _)| *index).collect();
        }
        self.sequence_now().await;
        let mut by_leaf: std::collections::HashMap<String, Vec<u64>> = Default::default();
        let mut start = 0;
        loop {
            let page = self.admin.events(start, 1000).await.expect("events");
            let Some(last) = page.last() else { break };
            start = last.index + 1;
            for entry in page {
                by_leaf
                    .entry(entry.leaf_hash)
                    .or_default()
                    .push(entry.index);
            }
        }
        let taken: std::collections::HashSet<u64> =
            receipts.iter().filter_map(|(index, _)| *index).collect();
        receipts
            .iter()
            .map(|(index, leaf)| match index {
                Some(index) => *index,
                None => by_leaf
                    .get_mut(leaf)
                    .and_then(|indices| {
                        std::iter::from_fn(|| indices.pop()).find(|i| !taken.contains(i))
                    })
                    .unwrap_or_else(|| panic!("no sequenced entry is left with leaf hash {leaf}")),
            })
            .collect()
    }

    /// The log index of `reply`'s receipt (see [`TestServer::indices`]).
    pub async fn index(&self, reply: &crate::Reply) -> u64 {
        self.indices(&[reply.receipt()]).await[0]
    }

    /// Events in the log that hold an index, once every committed entry is sequenced.
    pub async fn log_size(&self) -> u64 {
        self.sequence_now().await;
        self.admin.health().await.expect("health").log_size
    }

    /// The order's counts, its units and the log size.
    pub async fn snapshot(&self, order: &str) -> Snapshot {
        let detail = self.admin.order(order).await.expect("order detail");
        let units = self.admin.order_units(order).await.expect("units");
        let log_size = self.log_size().await;
        Snapshot {
            issued: detail.order.issued,
            certificates: detail.certificates,
            issued_events: detail.issued_events,
            failed_tests: detail.failed_tests,
            refusals: detail.refusals,
            units,
            log_size,
        }
    }
}
