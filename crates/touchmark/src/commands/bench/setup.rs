//! The Touchmark under test, in this process: a fresh installation, its store (SQLite, or a
//! fresh schema in a PostgreSQL database), one or more HTTPS server replicas on loopback ports,
//! an admin client, and one enrolled station per concurrent worker, spread over the replicas.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use touchmark_authority::log::LogConfig;
use touchmark_authority::{InitOptions, Installation};
use touchmark_client::{Client, ClientConfig, Identity};
use touchmark_core::api::{
    CreateFactory, CreateOrder, CreateProduct, CreateStation, EnrollRequest, OrderDetail,
};
use touchmark_core::command::NewTokenRequest;
use touchmark_core::entity::Role;
use touchmark_core::event::Actor;
use touchmark_core::field::Label;
use touchmark_core::{Clock, SystemClock};
use touchmark_pki::{KeyAlgorithm, Passphrase, SoftwareSigner, build_csr};
use touchmark_server::Server;
use touchmark_store::Store;
use touchmark_store_postgres::PostgresStore;
use touchmark_store_sqlite::SqliteStore;

use crate::database::DatabaseUrl;

use super::load::{self, Sample};
use super::units::Unit;

/// The order every unit is provisioned under.
pub(crate) const ORDER: &str = "PO-BENCH";
const PRODUCT: &str = "bench-sensor";
const FACTORY: &str = "bench-cm";
/// Large enough for any run (the longest default run sends well under a million units).
const QUOTA: u64 = 100_000_000;
/// The passphrase of a temporary installation's key store; it is deleted with the directory.
const TEMP_PASSPHRASE: &str = "touchmark bench, temporary installation";

/// Where the benchmark keeps its records.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
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

/// A fresh PostgreSQL schema for one run, dropped by [`Touchmark::stop`].
struct Schema {
    url: DatabaseUrl,
    name: String,
}

impl Schema {
    fn new(url: &DatabaseUrl) -> Self {
        let mut nonce = [0u8; 6];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        Self {
            url: url.clone(),
            name: format!("touchmark_bench_{}", hex::encode(nonce)),
        }
    }

    async fn drop_schema(&self) {
        if let Err(e) = PostgresStore::drop_schema(self.url.expose(), &self.name).await {
            eprintln!("[bench] cannot drop the schema {}: {e}", self.name);
        }
    }
}

/// A running in-process Touchmark.
pub(crate) struct Touchmark {
    /// Deletes the temporary installation when dropped; `None` with `--data`.
    temp: Option<tempfile::TempDir>,
    dir: PathBuf,
    schema: Option<Schema>,
    admin: Client,
    stations: Vec<Client>,
    replicas: usize,
    shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

fn api(what: &str) -> impl FnOnce(touchmark_client::ClientError) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {e}")
}

impl Touchmark {
    /// Sets everything up, in `data` (a new directory) or in a temporary one.
    ///
    /// # Errors
    /// When any step fails; the error names it.
    pub async fn start(
        data: Option<&Path>,
        backend: &Backend,
        stations: usize,
    ) -> anyhow::Result<Self> {
        let (temp, dir, passphrase) = match data {
            Some(dir) => (None, dir.to_owned(), crate::secrets::passphrase()?),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("touchmark-bench-")
                    .tempdir()
                    .context("cannot create a temporary directory")?;
                let dir = temp.path().join("data");
                let passphrase = Passphrase::new(TEMP_PASSPHRASE.into())
                    .map_err(|e| anyhow::anyhow!("passphrase: {e}"))?;
                (Some(temp), dir, passphrase)
            }
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let options = InitOptions {
            organization: "Touchmark Bench".into(),
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
            log_origin: "bench.touchmark.local/log".into(),
        };
        let installation = Installation::init(&dir, &passphrase, &options, clock.now())
            .with_context(|| format!("cannot create an installation in {}", dir.display()))?;
        if data.is_some() {
            // A kept installation can be served later with `touchmark serve --data`.
            std::fs::write(
                dir.join(crate::config::FILE),
                crate::config::initial_file(&crate::database::Database::for_dir(&dir, None)),
            )
            .with_context(|| format!("cannot write {}", dir.join(crate::config::FILE).display()))?;
        }
        let (schema, replicas) = match backend {
            Backend::Sqlite => (None, 1),
            Backend::Postgres { url, replicas } => (Some(Schema::new(url)), (*replicas).max(1)),
        };
        let mut servers = Vec::with_capacity(replicas);
        let mut shutdown = Vec::with_capacity(replicas);
        let mut ports = Vec::with_capacity(replicas);
        let mut first = None;
        for _ in 0..replicas {
            // Each replica has its own store (its own connection pool), as separate processes
            // would; they share the data directory and the database.
            let store: Arc<dyn Store> = match &schema {
                None => Arc::new(SqliteStore::open(&Installation::database_path(&dir))?),
                Some(schema) => Arc::new(
                    PostgresStore::connect(schema.url.expose(), Some(&schema.name))
                        .await
                        .with_context(|| format!("cannot open {}", schema.url))?,
                ),
            };
            installation.claim(store.as_ref(), clock.now()).await?;
            let server = Server::bind(
                "127.0.0.1:0".parse().context("loopback address")?,
                &installation,
                store,
                Arc::clone(&clock),
                LogConfig::default(),
            )
            .await?;
            ports.push(server.local_addr()?.port());
            if first.is_none() {
                let admin = NewTokenRequest {
                    role: Role::Admin,
                    label: Label::parse("label", "bench")?,
                };
                let (_, _, token) = server
                    .authority()
                    .create_token(Actor::System, admin)
                    .await
                    .context("cannot create an admin token")?;
                first = Some(token);
            }
            let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
            shutdown.push(stop_tx);
            servers.push(tokio::spawn(server.run(async {
                let _ = stop.await;
            })));
        }
        let token = first.context("no replica started")?;
        let urls: Vec<String> = ports
            .iter()
            .map(|port| format!("https://127.0.0.1:{port}"))
            .collect();
        let url = urls[0].clone();
        let root_pem = installation.root().certificate().pem();
        let mut config = ClientConfig::new(url.clone(), root_pem.clone());
        config.token = Some(token);
        let admin = Client::new(config).context("admin client")?;
        admin
            .create_product(&CreateProduct {
                id: Some(PRODUCT.into()),
                name: "Bench Sensor".into(),
                organization: "Acme".into(),
                common_name: "Acme Sensor".into(),
                hw_type_oid: Some("1.3.6.1.4.1.99999.1".into()),
                crl_url: None,
                ocsp_url: None,
                cert_not_after: None,
            })
            .await
            .map_err(api("cannot create the product"))?;
        admin
            .create_factory(&CreateFactory {
                id: Some(FACTORY.into()),
                name: "Bench CM".into(),
            })
            .await
            .map_err(api("cannot create the factory"))?;
        admin
            .create_order(&CreateOrder {
                id: Some(ORDER.into()),
                product: PRODUCT.into(),
                factory: FACTORY.into(),
                quota: QUOTA,
                serial_range: None,
                serial_pattern: None,
                not_before: None,
                not_after: None,
                open: true,
            })
            .await
            .map_err(api("cannot create the order"))?;

        let anonymous = Client::new(ClientConfig::new(url.clone(), root_pem.clone()))?;
        let mut clients = Vec::with_capacity(stations);
        for i in 0..stations {
            let id = format!("bench-line-{i:03}");
            let created = admin
                .create_station(&CreateStation {
                    id: Some(id.clone()),
                    factory: FACTORY.into(),
                    name: None,
                    enrollment_ttl_minutes: None,
                })
                .await
                .map_err(api("cannot create a station"))?;
            let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256)
                .map_err(|e| anyhow::anyhow!("station key: {e}"))?;
            let csr = build_csr(&key, &id).map_err(|e| anyhow::anyhow!("station CSR: {e}"))?;
            let enrolled = anonymous
                .enroll(&EnrollRequest {
                    token: created.enrollment_token,
                    csr: touchmark_pki::pem::encode("CERTIFICATE REQUEST", &csr),
                })
                .await
                .map_err(api("cannot enroll a station"))?;
            // Stations are spread over the replicas, as a TCP load balancer would.
            let mut config = ClientConfig::new(urls[i % urls.len()].clone(), root_pem.clone());
            config.identity = Some(Identity::new(
                enrolled.certificate_pem,
                key.pkcs8_pem().to_string(),
            ));
            // One client per station: its own kept-alive connection, as on a real line.
            clients.push(Client::new(config).context("station client")?);
        }
        Ok(Self {
            temp,
            dir,
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
        &self.dir
    }

    /// What to print about the data directory.
    pub fn data_description(&self) -> String {
        match &self.temp {
            Some(_) => format!("{} (temporary, deleted at the end)", self.dir.display()),
            None => format!("{} (kept)", self.dir.display()),
        }
    }

    /// What to print about the database and the replicas.
    pub fn server_description(&self) -> String {
        let common = "in-process, sharing the cores with the load generator; HTTPS (h2) with \
                      station mTLS";
        match &self.schema {
            None => format!("{common}, SQLite WAL synchronous=FULL, group commit"),
            Some(schema) => format!(
                "{common}, PostgreSQL {} (schema {}, dropped at the end), {} replica(s) with \
                 their own pools, stations spread over them",
                schema.url, schema.name, self.replicas
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
    pub async fn drive(
        &self,
        stations: &[Client],
        units: Arc<Vec<Unit>>,
    ) -> anyhow::Result<Sample> {
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
    pub async fn order(&self) -> anyhow::Result<OrderDetail> {
        self.admin
            .order(ORDER)
            .await
            .map_err(api("cannot read the order"))
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        let Self {
            temp,
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
        if let Some(schema) = schema {
            schema.drop_schema().await;
        }
        drop(temp);
    }
}
