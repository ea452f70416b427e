//! The Touchmark under test, in this process: a fresh installation, the SQLite store, the HTTPS
//! server on a loopback port, an admin client, and one enrolled station per concurrent worker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use touchmark_client::{Client, ClientConfig, Identity};
use touchmark_core::api::{
    CreateFactory, CreateOrder, CreateProduct, CreateStation, EnrollRequest, OrderDetail,
};
use touchmark_core::event::Actor;
use touchmark_core::{Clock, SystemClock};
use touchmark_pki::{KeyAlgorithm, Passphrase, SoftwareSigner, build_csr};
use touchmark_server::{InitOptions, Installation, Server};
use touchmark_store::Store;
use touchmark_store::sqlite::SqliteStore;

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

/// A running in-process Touchmark.
pub(crate) struct Touchmark {
    /// Deletes the temporary installation when dropped; `None` with `--data`.
    temp: Option<tempfile::TempDir>,
    dir: PathBuf,
    admin: Client,
    stations: Vec<Client>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

fn api(what: &str) -> impl FnOnce(touchmark_client::ClientError) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {e}")
}

impl Touchmark {
    /// Sets everything up, in `data` (a new directory) or in a temporary one.
    ///
    /// # Errors
    /// When any step fails; the error names it.
    pub async fn start(data: Option<&Path>, stations: usize) -> anyhow::Result<Self> {
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
            std::fs::write(dir.join(crate::config::FILE), crate::config::initial_file())
                .with_context(|| {
                    format!("cannot write {}", dir.join(crate::config::FILE).display())
                })?;
        }
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&Installation::database_path(&dir))?);
        let server = Server::bind(
            "127.0.0.1:0".parse().context("loopback address")?,
            &installation,
            store,
            clock,
        )
        .await?;
        let addr = server.local_addr()?;
        let (_, _, token) = server
            .state()
            .authority
            .create_token(Actor::System, "admin", "bench")
            .await
            .map_err(|e| anyhow::anyhow!("cannot create an admin token: {}", e.message))?;
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server.run(async {
            let _ = stop.await;
        }));

        let url = format!("https://127.0.0.1:{}", addr.port());
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
            let mut config = ClientConfig::new(url.clone(), root_pem.clone());
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
            admin,
            stations: clients,
            shutdown,
            server,
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
            admin,
            stations,
            shutdown,
            server,
            ..
        } = self;
        // Close the kept-alive connections first, so no connection task outlives the server.
        drop(stations);
        drop(admin);
        let _ = shutdown.send(());
        let _ = server.await;
        drop(temp);
    }
}
