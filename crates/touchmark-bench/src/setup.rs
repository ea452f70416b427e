//! The Touchmark under test: in this process, a fresh installation, its store (SQLite, or a
//! fresh schema in a PostgreSQL database) and HTTPS server replicas on loopback ports; or a
//! server running elsewhere, reached through its API with an admin token. Then the product,
//! factory and order the run counts against, and one enrolled station per concurrent worker,
//! spread over the replicas.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use touchmark_authority::log::LogConfig;
use touchmark_authority::{Authority, InitOptions, Installation};
use touchmark_client::station::{self, StationKey};
use touchmark_client::{Client, ClientConfig};
use touchmark_core::api::{CreateFactory, CreateOrder, CreateProduct, CreateStation, OrderDetail};
use touchmark_core::command::NewTokenRequest;
use touchmark_core::entity::Role;
use touchmark_core::event::Actor;
use touchmark_core::field::{DatabaseUrl, Label};
use touchmark_core::{Clock, SystemClock};
use touchmark_pki::{KeyProvider, Passphrase};
use touchmark_server::{Server, ServerOptions};
use touchmark_store::Store;
use touchmark_store_postgres::ScratchSchema;
use touchmark_store_sqlite::SqliteStore;

use crate::cpu::process_cpu_of;
use crate::error::{Context as _, Error};
use crate::load::{self, Sample};
use crate::units::Unit;

/// The order every unit of `provision` is counted against.
pub(crate) const ORDER: &str = "PO-BENCH";
/// The passphrase of a temporary installation's key store; it is deleted with the directory.
const TEMP_PASSPHRASE: &str = "touchmark bench, temporary installation";

/// Where the benchmark keeps its records.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A Touchmark server running elsewhere (`touchmark serve`), with its own storage.
    External(External),
    /// SQLite in the installation's directory, one server.
    Sqlite,
    /// A fresh schema in this PostgreSQL database, dropped at the end, with this many server
    /// replicas, each with its own connection pool and sequencer loop.
    Postgres {
        /// The database.
        url: DatabaseUrl,
        /// Server replicas.
        replicas: usize,
    },
}

/// A server running elsewhere, measured apart from the load generator.
#[derive(Clone)]
pub struct External {
    /// Its URL.
    pub url: String,
    /// The root CA of its TLS certificate, PEM.
    pub root_ca_pem: String,
    /// An admin token: the run creates its own product, factory, order and stations.
    pub token: String,
    /// The server's process id, when it runs on this machine: its CPU time per unit is then
    /// read from `/proc`, apart from the load generator's.
    pub pid: Option<u32>,
}

impl std::fmt::Debug for External {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("External")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// An installation to create and keep, instead of a temporary one.
#[derive(Debug, Clone)]
pub struct Keep {
    /// The new directory.
    pub dir: PathBuf,
    /// The passphrase of its key store.
    pub passphrase: Passphrase,
    /// The name of the server's configuration file in the directory (`touchmark.toml`).
    pub config_file: String,
    /// Its text, so that `touchmark serve` can serve the installation later.
    pub config: String,
}

/// The product, factory and order of a run.
pub(crate) struct Fixtures {
    pub product: &'static str,
    pub product_name: &'static str,
    pub factory: &'static str,
    pub factory_name: &'static str,
    pub order: &'static str,
    pub quota: u64,
}

/// The fixtures of `provision`.
const PROVISION: Fixtures = Fixtures {
    product: "bench-sensor",
    product_name: "Bench Sensor",
    factory: "bench-cm",
    factory_name: "Bench CM",
    order: ORDER,
    // Large enough for any run (the longest default run sends well under a million units).
    quota: 100_000_000,
};

impl Fixtures {
    /// The requests that create the product, the factory and the open order, their ids ending
    /// in `suffix`.
    fn requests(&self, suffix: &str) -> (CreateProduct, CreateFactory, CreateOrder) {
        let product = CreateProduct {
            id: Some(format!("{}{suffix}", self.product)),
            name: self.product_name.into(),
            organization: "Acme".into(),
            common_name: "Acme Sensor".into(),
            hw_type_oid: Some("1.3.6.1.4.1.99999.1".into()),
            crl_url: None,
            ocsp_url: None,
            cert_not_after: None,
            attestation_roots_pem: None,
        };
        let factory = CreateFactory {
            id: Some(format!("{}{suffix}", self.factory)),
            name: self.factory_name.into(),
        };
        let order = CreateOrder {
            id: Some(format!("{}{suffix}", self.order)),
            product: format!("{}{suffix}", self.product),
            factory: format!("{}{suffix}", self.factory),
            quota: self.quota,
            serial_range: None,
            serial_pattern: None,
            not_before: None,
            not_after: None,
            open: true,
            release: None,
        };
        (product, factory, order)
    }

    /// Creates the product, the factory and the open order through `authority`, as the API
    /// would.
    pub(crate) async fn create(&self, authority: &Authority) -> Result<(), Error> {
        let (product, factory, order) = self.requests("");
        authority
            .create_product(Actor::System, product.try_into().context("product")?)
            .await
            .context("cannot create the product")?;
        authority
            .create_factory(Actor::System, factory.try_into().context("factory")?)
            .await
            .context("cannot create the factory")?;
        authority
            .create_order(Actor::System, order.try_into().context("order")?)
            .await
            .context("cannot create the order")?;
        Ok(())
    }

    /// Creates them through the API of a server running elsewhere, with ids of their own
    /// (ending in `suffix`), so that runs against one server never share an order. Returns the
    /// order's and the factory's ids.
    async fn create_remote(&self, admin: &Client, suffix: &str) -> Result<(String, String), Error> {
        let (product, factory, order) = self.requests(suffix);
        admin
            .create_product(&product)
            .await
            .context("cannot create the product")?;
        admin
            .create_factory(&factory)
            .await
            .context("cannot create the factory")?;
        admin
            .create_order(&order)
            .await
            .context("cannot create the order")?;
        Ok((order.id.unwrap_or_default(), factory.id.unwrap_or_default()))
    }
}

/// A fresh installation: in `keep`'s directory, or in a temporary one deleted when this is
/// dropped.
pub(crate) struct Installed {
    /// `None` for a kept installation.
    pub temp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub installation: Installation,
}

/// Creates a fresh installation for a run; a temporary one is named after `prefix`.
pub(crate) fn install(keep: Option<&Keep>, prefix: &str) -> Result<Installed, Error> {
    install_keys(keep, prefix, None)
}

/// [`install`], with every key made in `keys` (a PKCS#11 token) when given, instead of the
/// encrypted key store.
pub(crate) fn install_keys(
    keep: Option<&Keep>,
    prefix: &str,
    keys: Option<Arc<dyn KeyProvider>>,
) -> Result<Installed, Error> {
    let (temp, dir, passphrase) = match keep {
        Some(keep) => (None, keep.dir.clone(), keep.passphrase.clone()),
        None => {
            let temp = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .context("cannot create a temporary directory")?;
            let dir = temp.path().join("data");
            let passphrase = Passphrase::new(TEMP_PASSPHRASE.into()).context("passphrase")?;
            (Some(temp), dir, passphrase)
        }
    };
    let options = InitOptions {
        organization: "Touchmark Bench".into(),
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        log_origin: "bench.touchmark.local/log".into(),
        offline_root: None,
    };
    let installation = match keys {
        Some(keys) => Installation::init_with(&dir, keys, &options, SystemClock.now()),
        None => Installation::init(&dir, &passphrase, &options, SystemClock.now()),
    }
    .with_context(|| format!("cannot create an installation in {}", dir.display()))?;
    if let Some(keep) = keep {
        // A kept installation can be served later with `touchmark serve --data`.
        let path = dir.join(&keep.config_file);
        std::fs::write(&path, &keep.config)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(Installed {
        temp,
        dir,
        installation,
    })
}

/// A server over `installation` and `store` on a free loopback port, bound but not yet serving.
pub(crate) async fn bind(
    installation: &Installation,
    store: Arc<dyn Store>,
) -> Result<Server, Error> {
    bind_public(installation, store, None).await
}

/// [`bind`], with the base URL relying parties reach `/crl` and `/ocsp` at, which new device
/// certificates then name.
pub(crate) async fn bind_public(
    installation: &Installation,
    store: Arc<dyn Store>,
    public_url: Option<&str>,
) -> Result<Server, Error> {
    let addr = "127.0.0.1:0".parse().context("loopback address")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    installation
        .claim(store.as_ref(), clock.now())
        .await
        .context("cannot bind the new database to the installation")?;
    let options = ServerOptions {
        log: LogConfig::default(),
        public_url: public_url.map(str::to_owned),
        ..ServerOptions::default()
    };
    Server::bind_with(addr, installation, store, clock, options)
        .await
        .context("cannot start the server")
}

/// A running Touchmark: in this process, or a server elsewhere.
pub(crate) struct Touchmark {
    /// The in-process installation; `None` against a server elsewhere.
    installed: Option<Installed>,
    /// A scratch directory for the ceilings' measurements against a server elsewhere.
    scratch: Option<tempfile::TempDir>,
    /// The database, for the report (its password redacted), and this run's schema in it,
    /// dropped with the guard however the run ends.
    schema: Option<(DatabaseUrl, ScratchSchema)>,
    /// The server elsewhere.
    external: Option<External>,
    /// The order the run counts against.
    order: String,
    /// Its product.
    product: String,
    /// How the run's serials begin.
    serial_prefix: String,
    admin: Client,
    stations: Vec<Client>,
    replicas: usize,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Touchmark {
    /// Sets everything up, in `keep`'s directory or in a temporary one (or on the server
    /// elsewhere), with `stations` enrolled stations.
    ///
    /// # Errors
    /// When any step fails; the error names it.
    pub async fn start(
        keep: Option<&Keep>,
        backend: &Backend,
        stations: usize,
    ) -> Result<Self, Error> {
        Self::start_keys(keep, backend, stations, None).await
    }

    /// [`Touchmark::start`] in a temporary installation whose device certificates name CRLs and
    /// an OCSP responder under `public_url`.
    ///
    /// # Errors
    /// When any step fails; the error names it.
    pub async fn start_public(
        backend: &Backend,
        stations: usize,
        public_url: &str,
    ) -> Result<Self, Error> {
        Self::start_with(None, backend, stations, None, Some(public_url)).await
    }

    /// [`Touchmark::start`], with every key in `keys` when given.
    ///
    /// # Errors
    /// When any step fails; the error names it.
    pub async fn start_keys(
        keep: Option<&Keep>,
        backend: &Backend,
        stations: usize,
        keys: Option<Arc<dyn KeyProvider>>,
    ) -> Result<Self, Error> {
        Self::start_with(keep, backend, stations, keys, None).await
    }

    async fn start_with(
        keep: Option<&Keep>,
        backend: &Backend,
        stations: usize,
        keys: Option<Arc<dyn KeyProvider>>,
        public_url: Option<&str>,
    ) -> Result<Self, Error> {
        let (schema, replicas) = match backend {
            Backend::External(external) => return Self::connect(external, stations).await,
            Backend::Sqlite => (None, 1),
            Backend::Postgres { url, replicas } => (
                Some((url.clone(), ScratchSchema::new(url.expose()))),
                (*replicas).max(1),
            ),
        };
        let installed = install_keys(keep, "touchmark-bench-", keys)?;
        let (installation, dir) = (&installed.installation, &installed.dir);
        let mut servers = Vec::with_capacity(replicas);
        let mut shutdown = Vec::with_capacity(replicas);
        let mut urls = Vec::with_capacity(replicas);
        let mut token = None;
        for _ in 0..replicas {
            // Each replica has its own store (its own connection pool), as separate processes
            // would; they share the data directory and the database.
            let store: Arc<dyn Store> = match &schema {
                None => Arc::new(
                    SqliteStore::open(&Installation::database_path(dir))
                        .context("cannot open the database")?,
                ),
                Some((url, schema)) => Arc::new(
                    schema
                        .connect()
                        .await
                        .with_context(|| format!("cannot open {url}"))?,
                ),
            };
            let server = bind_public(installation, store, public_url).await?;
            let port = server.local_addr().context("the server's address")?.port();
            urls.push(format!("https://127.0.0.1:{port}"));
            if token.is_none() {
                PROVISION.create(server.authority()).await?;
                let admin = NewTokenRequest {
                    role: Role::Admin,
                    label: Label::parse("label", "bench").context("token label")?,
                };
                let (_, _, created) = server
                    .authority()
                    .create_token(Actor::System, admin)
                    .await
                    .context("cannot create an admin token")?;
                token = Some(created);
            }
            let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
            shutdown.push(stop_tx);
            servers.push(tokio::spawn(server.run(async {
                let _ = stop.await;
            })));
        }
        let root_pem = installation.infra_root().certificate().pem();
        let url = urls.first().cloned().unwrap_or_default();
        let mut config = ClientConfig::new(url, root_pem.clone());
        config.token = token;
        let admin = Client::new(config).context("admin client")?;

        let stations = enroll(&admin, &urls, &root_pem, PROVISION.factory, "", stations).await?;
        Ok(Self {
            installed: Some(installed),
            scratch: None,
            schema,
            external: None,
            order: ORDER.into(),
            product: PROVISION.product.into(),
            serial_prefix: crate::units::PREFIX.into(),
            admin,
            stations,
            replicas,
            shutdown,
            servers,
        })
    }

    /// Sets up a run on a server elsewhere: its own product, factory and order, and
    /// `stations` enrolled stations, all through the API with the admin token.
    async fn connect(external: &External, stations: usize) -> Result<Self, Error> {
        let scratch = tempfile::Builder::new()
            .prefix("touchmark-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let mut config = ClientConfig::new(external.url.clone(), external.root_ca_pem.clone());
        config.token = Some(external.token.clone());
        let admin = Client::new(config).context("admin client")?;
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let suffix = format!("-{}-{}", since_epoch.as_micros(), std::process::id());
        let (order, factory) = PROVISION.create_remote(&admin, &suffix).await?;
        let urls = [external.url.clone()];
        let stations = enroll(
            &admin,
            &urls,
            &external.root_ca_pem,
            &factory,
            &suffix,
            stations,
        )
        .await?;
        Ok(Self {
            installed: None,
            scratch: Some(scratch),
            schema: None,
            external: Some(external.clone()),
            order,
            product: format!("{}{suffix}", PROVISION.product),
            serial_prefix: format!("{}{suffix}", crate::units::PREFIX),
            admin,
            stations,
            replicas: 1,
            shutdown: Vec::new(),
            servers: Vec::new(),
        })
    }

    /// A directory for the ceilings' measurements: the installation's, or a scratch one.
    pub fn dir(&self) -> &Path {
        match (&self.installed, &self.scratch) {
            (Some(installed), _) => &installed.dir,
            (None, Some(scratch)) => scratch.path(),
            (None, None) => Path::new("."),
        }
    }

    /// What to print about the data directory.
    pub fn data_description(&self) -> String {
        let Some(installed) = &self.installed else {
            return "the server's own".into();
        };
        let dir = installed.dir.display();
        match &installed.temp {
            Some(_) => format!("{dir} (temporary, deleted at the end)"),
            None => format!("{dir} (kept)"),
        }
    }

    /// The admin's client.
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// The in-process installation; `None` against a server elsewhere.
    pub fn installation(&self) -> Option<&Installation> {
        self.installed.as_ref().map(|i| &i.installation)
    }

    /// The PostgreSQL schema of this run, if it has one.
    pub fn schema_name(&self) -> Option<&str> {
        self.schema.as_ref().map(|(_, s)| s.name())
    }

    /// The order the run counts against.
    pub fn order_id(&self) -> &str {
        &self.order
    }

    /// The product of the run's order.
    pub fn product_id(&self) -> &str {
        &self.product
    }

    /// How this run's serials begin.
    pub fn serial_prefix(&self) -> &str {
        &self.serial_prefix
    }

    /// The server's process id, when the server runs elsewhere on this machine.
    pub fn server_pid(&self) -> Option<u32> {
        self.external.as_ref().and_then(|e| e.pid)
    }

    /// What to print about the database and the replicas.
    pub fn server_description(&self) -> String {
        if let Some(external) = &self.external {
            let cpu = match external.pid {
                Some(pid) => format!("its CPU time read from /proc/{pid}/stat"),
                None => "its CPU time not measured (no --server-pid)".into(),
            };
            return format!(
                "{}, a separate process; HTTPS with station mTLS; {cpu}",
                external.url
            );
        }
        let common = "in-process, sharing the cores with the load generator; HTTPS (h2) with \
                      station mTLS";
        match &self.schema {
            None => format!("{common}, SQLite WAL synchronous=FULL, group commit"),
            Some((url, schema)) => format!(
                "{common}, PostgreSQL {url} (schema {}, dropped at the end), {} replica(s) with \
                 their own pools, stations spread over them",
                schema.name(),
                self.replicas
            ),
        }
    }

    /// The first `n` station clients.
    pub fn stations(&self, n: usize) -> &[Client] {
        &self.stations[..n.min(self.stations.len())]
    }

    /// Provisions every unit through `stations`, one worker each. A unit counts as a success
    /// only when it comes back `issued` (HTTP 201) for its own serial.
    ///
    /// # Errors
    /// When a worker dies.
    pub async fn drive(&self, stations: &[Client], units: Arc<Vec<Unit>>) -> Result<Sample, Error> {
        let order: Arc<str> = self.order.as_str().into();
        let server_before = self.server_pid().and_then(process_cpu_of);
        let mut sample = load::drive(stations, units, move |station: Client, units, i| {
            let order = Arc::clone(&order);
            async move {
                let Some(unit) = units.get(i) else {
                    return Err(format!("no unit {i}"));
                };
                match station.provision(&order, &unit.request).await {
                    Ok(done) if done.status == "issued" && done.serial == unit.request.serial => {
                        Ok(())
                    }
                    Ok(done) => Err(format!(
                        "{}: answered status `{}` for serial {} (expected `issued`, HTTP 201)",
                        unit.request.serial, done.status, done.serial
                    )),
                    Err(e) => Err(format!("{}: {e}", unit.request.serial)),
                }
            }
        })
        .await?;
        sample.server_cpu = server_before
            .zip(self.server_pid().and_then(process_cpu_of))
            .map(|(before, after)| after.saturating_sub(before));
        Ok(sample)
    }

    /// The order with its counts, as the server reports them.
    ///
    /// # Errors
    /// When the server cannot be asked.
    pub async fn order(&self) -> Result<OrderDetail, Error> {
        self.admin
            .order(&self.order)
            .await
            .context("cannot read the order")
    }

    /// Stops the servers and waits for them, drops a PostgreSQL schema, and deletes a
    /// temporary installation.
    pub async fn stop(self) {
        let Self {
            installed,
            scratch,
            schema,
            admin,
            stations,
            shutdown,
            servers,
            ..
        } = self;
        // Close the kept-alive connections first, so no connection task outlives the server.
        drop(stations);
        drop(admin);
        for stop in shutdown {
            let _ = stop.send(());
        }
        for server in servers {
            let _ = server.await;
        }
        // The scratch schema's guard drops it (a failure is logged as a warning).
        drop(schema);
        drop(installed);
        drop(scratch);
    }
}

/// Creates `n` stations in `factory` through `admin` (their ids ending in `suffix`), and
/// enrolls each at one of `urls` in turn, as a TCP load balancer would spread them. One client
/// per station: its own kept-alive connection, as on a real line.
async fn enroll(
    admin: &Client,
    urls: &[String],
    root_pem: &str,
    factory: &str,
    suffix: &str,
    n: usize,
) -> Result<Vec<Client>, Error> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("bench-line-{i:03}{suffix}");
        let created = admin
            .create_station(&CreateStation {
                id: Some(id.clone()),
                factory: factory.into(),
                name: None,
                enrollment_ttl_minutes: None,
            })
            .await
            .context("cannot create a station")?;
        let key = StationKey::generate().context("station key")?;
        let url = &urls[i % urls.len()];
        let (_, client) = station::enroll(url, root_pem, created.enrollment_token, &key, &id)
            .await
            .context("cannot enroll a station")?;
        clients.push(client);
    }
    Ok(clients)
}
