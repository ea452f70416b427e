//! The Touchmark under test, in this process: a fresh installation, its store (SQLite, or a
//! fresh schema in a PostgreSQL database), HTTPS server replicas on loopback ports, the product,
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
use touchmark_server::Server;
use touchmark_store::Store;
use touchmark_store_postgres::ScratchSchema;
use touchmark_store_sqlite::SqliteStore;

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
    /// Creates the product, the factory and the open order through `authority`, as the API
    /// would.
    pub(crate) async fn create(&self, authority: &Authority) -> Result<(), Error> {
        let product = CreateProduct {
            id: Some(self.product.into()),
            name: self.product_name.into(),
            organization: "Acme".into(),
            common_name: "Acme Sensor".into(),
            hw_type_oid: Some("1.3.6.1.4.1.99999.1".into()),
            crl_url: None,
            ocsp_url: None,
            cert_not_after: None,
        };
        authority
            .create_product(Actor::System, product.try_into().context("product")?)
            .await
            .context("cannot create the product")?;
        let factory = CreateFactory {
            id: Some(self.factory.into()),
            name: self.factory_name.into(),
        };
        authority
            .create_factory(Actor::System, factory.try_into().context("factory")?)
            .await
            .context("cannot create the factory")?;
        let order = CreateOrder {
            id: Some(self.order.into()),
            product: self.product.into(),
            factory: self.factory.into(),
            quota: self.quota,
            serial_range: None,
            serial_pattern: None,
            not_before: None,
            not_after: None,
            open: true,
        };
        authority
            .create_order(Actor::System, order.try_into().context("order")?)
            .await
            .context("cannot create the order")?;
        Ok(())
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
    let addr = "127.0.0.1:0".parse().context("loopback address")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    installation
        .claim(store.as_ref(), clock.now())
        .await
        .context("cannot bind the new database to the installation")?;
    Server::bind(addr, installation, store, clock, LogConfig::default())
        .await
        .context("cannot start the server")
}

/// A running in-process Touchmark.
pub(crate) struct Touchmark {
    installed: Installed,
    /// The database, for the report (its password redacted), and this run's schema in it,
    /// dropped with the guard however the run ends.
    schema: Option<(DatabaseUrl, ScratchSchema)>,
    admin: Client,
    stations: Vec<Client>,
    replicas: usize,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Touchmark {
    /// Sets everything up, in `keep`'s directory or in a temporary one, with `stations`
    /// enrolled stations.
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
        let installed = install_keys(keep, "touchmark-bench-", keys)?;
        let (installation, dir) = (&installed.installation, &installed.dir);
        let (schema, replicas) = match backend {
            Backend::Sqlite => (None, 1),
            Backend::Postgres { url, replicas } => (
                Some((url.clone(), ScratchSchema::new(url.expose()))),
                (*replicas).max(1),
            ),
        };
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
            let server = bind(installation, store).await?;
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

        let mut clients = Vec::with_capacity(stations);
        for i in 0..stations {
            let id = format!("bench-line-{i:03}");
            let created = admin
                .create_station(&CreateStation {
                    id: Some(id.clone()),
                    factory: PROVISION.factory.into(),
                    name: None,
                    enrollment_ttl_minutes: None,
                })
                .await
                .context("cannot create a station")?;
            let key = StationKey::generate().context("station key")?;
            // Stations are spread over the replicas, as a TCP load balancer would. One client
            // per station: its own kept-alive connection, as on a real line.
            let replica = &urls[i % urls.len()];
            let token = created.enrollment_token;
            let (_, client) = station::enroll(replica, &root_pem, token, &key, &id)
                .await
                .context("cannot enroll a station")?;
            clients.push(client);
        }
        Ok(Self {
            installed,
            schema,
            admin,
            stations: clients,
            replicas,
            shutdown,
            servers,
        })
    }

    /// The installation directory.
    pub fn dir(&self) -> &Path {
        &self.installed.dir
    }

    /// What to print about the data directory.
    pub fn data_description(&self) -> String {
        let dir = self.installed.dir.display();
        match &self.installed.temp {
            Some(_) => format!("{dir} (temporary, deleted at the end)"),
            None => format!("{dir} (kept)"),
        }
    }

    /// What to print about the database and the replicas.
    pub fn server_description(&self) -> String {
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
        load::drive(
            stations,
            units,
            |station: Client, units: Arc<Vec<Unit>>, i| async move {
                let Some(unit) = units.get(i) else {
                    return Err(format!("no unit {i}"));
                };
                match station.provision(ORDER, &unit.request).await {
                    Ok(done) if done.status == "issued" && done.serial == unit.request.serial => {
                        Ok(())
                    }
                    Ok(done) => Err(format!(
                        "{}: answered status `{}` for serial {} (expected `issued`, HTTP 201)",
                        unit.request.serial, done.status, done.serial
                    )),
                    Err(e) => Err(format!("{}: {e}", unit.request.serial)),
                }
            },
        )
        .await
    }

    /// The order with its counts, as the server reports them.
    ///
    /// # Errors
    /// When the server cannot be asked.
    pub async fn order(&self) -> Result<OrderDetail, Error> {
        self.admin
            .order(ORDER)
            .await
            .context("cannot read the order")
    }

    /// Stops the servers and waits for them, drops a PostgreSQL schema, and deletes a
    /// temporary installation.
    pub async fn stop(self) {
        let Self {
            installed,
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
    }
}
