//! Running the `touchmark` binary: init, serve (waiting for its address), and clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use touchmark_client::{Client, ClientConfig, Identity};
use touchmark_core::api::{EnrollRequest, ProvisionRequest};
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr};

pub const PASSPHRASE: &str = "test passphrase";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_touchmark")
}

/// `touchmark init --json` in `dir`; returns the admin token.
pub fn init(dir: &Path) -> String {
    init_with(dir, None)
}

/// `touchmark init --json` in `dir`, with its records in `database` (a PostgreSQL URL) when
/// given; returns the admin token.
pub fn init_with(dir: &Path, database: Option<&str>) -> String {
    let mut command = Command::new(bin());
    command
        .args(["init", "--data"])
        .arg(dir)
        .arg("--json")
        .env("TOUCHMARK_KEY_PASSPHRASE", PASSPHRASE);
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["admin_token"].as_str().unwrap().to_owned()
}

/// Where a test installation's keys live.
#[derive(Clone, Copy)]
pub enum Keys<'a> {
    /// Encrypted files under [`PASSPHRASE`].
    Files,
    /// A SoftHSM2 token: `init --pkcs11-*`, and every command with its `SOFTHSM2_CONF`.
    Token(&'a touchmark_testenv::softhsm::Token),
}

impl Keys<'_> {
    /// Sets what a `touchmark` command needs to reach the keys: the passphrase, or the
    /// token's configuration (and no passphrase at all).
    pub fn apply(self, command: &mut Command) -> &mut Command {
        match self {
            Keys::Files => command.env("TOUCHMARK_KEY_PASSPHRASE", PASSPHRASE),
            Keys::Token(token) => command
                .env_remove("TOUCHMARK_KEY_PASSPHRASE")
                .envs(token.env()),
        }
    }
}

/// `touchmark init --json` in `dir` with its keys in `keys`; returns the admin token.
pub fn init_keys(dir: &Path, database: Option<&str>, keys: Keys<'_>) -> String {
    let mut command = Command::new(bin());
    command.args(["init", "--data"]).arg(dir).arg("--json");
    keys.apply(&mut command);
    if let Keys::Token(token) = keys {
        command
            .arg("--pkcs11-module")
            .arg(touchmark_testenv::softhsm::module())
            .args(["--pkcs11-token", touchmark_testenv::softhsm::LABEL])
            .arg("--pkcs11-pin-file")
            .arg(token.pin_file());
    }
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["admin_token"].as_str().unwrap().to_owned()
}

/// A running `touchmark serve`.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Served {
    /// Starts `touchmark serve` on a free port and waits for its "listening" line.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, None)
    }

    /// Starts `touchmark serve` over `database` (a PostgreSQL URL) when given.
    pub fn start_with(dir: &Path, database: Option<&str>) -> Self {
        Self::start_with_passphrase(dir, database, PASSPHRASE)
    }

    /// Starts `touchmark serve` with another key passphrase.
    pub fn start_with_passphrase(dir: &Path, database: Option<&str>, passphrase: &str) -> Self {
        Self::start_configured(dir, database, passphrase, Stdio::inherit())
    }

    /// Starts `touchmark serve` with its keys in `keys`.
    pub fn start_keys(dir: &Path, keys: Keys<'_>) -> Self {
        let mut command = serve_command(dir);
        keys.apply(&mut command);
        if std::env::var_os("TOUCHMARK_LOG").is_none() {
            command.env("TOUCHMARK_LOG", "warn");
        }
        Self::spawn(&mut command)
    }

    /// Starts `touchmark serve` with its standard error going to the file `stderr`.
    pub fn start_logged(dir: &Path, stderr: &Path) -> Self {
        let file = std::fs::File::create(stderr).unwrap();
        Self::start_configured(dir, None, PASSPHRASE, Stdio::from(file))
    }

    fn start_configured(
        dir: &Path,
        database: Option<&str>,
        passphrase: &str,
        stderr: Stdio,
    ) -> Self {
        let mut command = serve_command(dir);
        command.env("TOUCHMARK_KEY_PASSPHRASE", passphrase);
        if let Some(url) = database {
            command.args(["--database", url]);
        }
        // One line per request would bury the test's own output; tests that read the request
        // log start the server with a filter of their own.
        if std::env::var_os("TOUCHMARK_LOG").is_none() {
            command.env("TOUCHMARK_LOG", "warn");
        }
        Self::spawn(command.stderr(stderr))
    }

    /// Spawns `command`, a `touchmark serve` on a free port whose standard output is the
    /// server's, and waits for its "listening" line.
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).unwrap();
        // Keep reading, so that a later line never meets a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let addr = line
            .trim()
            .strip_prefix("touchmark listening on https://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let port = addr.rsplit(':').next().unwrap().to_owned();
        Self {
            child,
            url: format!("https://localhost:{port}"),
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `touchmark serve --listen 127.0.0.1:0 --data <dir>`, with the test passphrase.
pub fn serve_command(dir: &Path) -> Command {
    let mut command = Command::new(bin());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir)
        .env("TOUCHMARK_KEY_PASSPHRASE", PASSPHRASE);
    command
}

/// `dir/certs/<split>`, or the one root `dir/certs/root-ca.pem` of a data directory from
/// before roots were split.
fn root_file(dir: &Path, split: &str) -> String {
    let path = dir.join("certs").join(split);
    let path = if path.exists() {
        path
    } else {
        dir.join("certs/root-ca.pem")
    };
    std::fs::read_to_string(path).unwrap()
}

/// The root a client trusts for the server: the installation's infrastructure root.
pub fn root_ca(dir: &Path) -> String {
    root_file(dir, "infra-root-ca.pem")
}

/// The root a relying party of the devices trusts: the installation's device root.
pub fn device_root(dir: &Path) -> String {
    root_file(dir, "device-root-ca.pem")
}

pub fn admin(url: &str, dir: &Path, token: &str) -> Client {
    let mut config = ClientConfig::new(url, root_ca(dir));
    config.token = Some(token.to_owned());
    Client::new(config).unwrap()
}

/// A station's mTLS identity (certificate PEM, key PEM), enrolled through the API.
/// Every event of the log, a page (at most 1,000) at a time.
pub async fn all_events(admin: &Client) -> Vec<touchmark_client::api::EventEntry> {
    let mut events = Vec::new();
    loop {
        let page = admin.events(events.len() as u64, 1000).await.unwrap();
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

pub async fn enroll(admin: &Client, url: &str, dir: &Path, factory: &str, id: &str) -> Identity {
    let created = admin
        .create_station(&touchmark_core::api::CreateStation {
            id: Some(id.into()),
            factory: factory.into(),
            name: None,
            enrollment_ttl_minutes: None,
        })
        .await
        .unwrap();
    let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let csr = touchmark_pki::pem::encode("CERTIFICATE REQUEST", &build_csr(&key, id).unwrap());
    let anonymous = Client::new(ClientConfig::new(url, root_ca(dir))).unwrap();
    let enrolled = anonymous
        .enroll(&EnrollRequest {
            token: created.enrollment_token,
            csr,
        })
        .await
        .unwrap();
    Identity::new(enrolled.certificate_pem, key.pkcs8_pem().to_string())
}

pub fn station_client(url: &str, dir: &Path, identity: &Identity) -> Client {
    let mut config = ClientConfig::new(url, root_ca(dir));
    config.identity = Some(identity.clone());
    Client::new(config).unwrap()
}

/// A simulated unit: its own P-256 key and CSR.
pub struct Unit {
    pub serial: String,
    pub csr: String,
}

impl Unit {
    pub fn new(serial: String) -> Self {
        let key = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let csr =
            touchmark_pki::pem::encode("CERTIFICATE REQUEST", &build_csr(&key, &serial).unwrap());
        Self { serial, csr }
    }

    pub fn request(&self) -> ProvisionRequest {
        ProvisionRequest {
            serial: self.serial.clone(),
            csr: self.csr.clone(),
            test: passing_test(&self.serial),
            encryption_key: None,
            attestation: None,
        }
    }
}

/// A passing test record of unit `serial`.
pub fn passing_test(serial: &str) -> serde_json::Value {
    serde_json::json!({
        "serial": serial,
        "verdict": "pass",
        "started_at": "2026-11-21T06:00:00Z",
        "ended_at": "2026-11-21T06:00:42Z",
        "fixture_version": "fct-2.3.1",
        "steps": [{"name": "rf_power", "outcome": "pass", "measurements": [
            {"name": "tx_dbm", "value": 14.2, "unit": "dBm", "low": 10, "high": 20, "outcome": "pass"}]}]
    })
}

pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// Runs `touchmark audit verify` against `url` with the installation's log key, keeping the
/// auditor's state (its last checkpoint) in `state`.
pub fn audit(url: &str, dir: &Path, state: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["audit", "verify", url, "--quiet", "--key"])
        .arg(format!("@{}", dir.join("log-verifier.txt").display()))
        .arg("--state")
        .arg(state)
        .arg("--ca")
        .arg(dir.join("certs/infra-root-ca.pem"))
        .output()
        .unwrap()
}

/// Fails with the command's output unless it succeeded.
pub fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens a new order `id` of `quota` units for product `sensor` and factory `cm`.
pub async fn open_order(admin: &Client, id: &str, quota: u64) {
    admin
        .create_order(&touchmark_core::api::CreateOrder {
            id: Some(id.into()),
            product: "sensor".into(),
            factory: "cm".into(),
            quota,
            serial_range: None,
            serial_pattern: None,
            not_before: None,
            not_after: None,
            open: true,
            release: None,
        })
        .await
        .unwrap();
}

/// Creates product `sensor` (O=Acme, CN=Acme Sensor), factory `cm`, and an open order `order`
/// of `quota` units for them. Returns the product (with its issuing CA).
pub async fn setup_order(
    admin: &Client,
    order: &str,
    quota: u64,
) -> touchmark_core::api::ProductBody {
    use touchmark_core::api::{CreateFactory, CreateProduct};
    let product = admin
        .create_product(&CreateProduct {
            id: Some("sensor".into()),
            name: "Sensor".into(),
            organization: "Acme".into(),
            common_name: "Acme Sensor".into(),
            hw_type_oid: Some("1.3.6.1.4.1.99999.1".into()),
            crl_url: None,
            ocsp_url: None,
            cert_not_after: None,
            attestation_roots_pem: None,
        })
        .await
        .unwrap();
    admin
        .create_factory(&CreateFactory {
            id: Some("cm".into()),
            name: "CM".into(),
        })
        .await
        .unwrap();
    open_order(admin, order, quota).await;
    product
}

/// Turns the fresh installation in `dir` into the layout that `touchmark init` wrote before
/// roots were split (issue 11, finding 6): one root, `certs/root-ca.pem` with the key
/// `root-ca`, over the station CA (key `station-ca`) and the server's certificate (key
/// `server-tls`, for localhost, 127.0.0.1 and ::1), and no infrastructure root. The device
/// root becomes that one root; the database, the log key and the admin token stay as they are.
pub fn make_single_root(dir: &Path) {
    use std::sync::Arc;

    use time::{Duration, OffsetDateTime};
    use touchmark_pki::{
        CaIssuer, Certificate, KeyStore, Passphrase, SerialNumber, Signer, Subject,
        create_intermediate_ca, issue_server_cert,
    };

    let keys = KeyStore::open(
        &dir.join("keys"),
        &Passphrase::new(PASSPHRASE.into()).unwrap(),
    )
    .unwrap();
    let certs = dir.join("certs");
    let root_pem = std::fs::read_to_string(certs.join("device-root-ca.pem")).unwrap();
    let root = CaIssuer::new(
        Certificate::from_pem(&root_pem).unwrap(),
        keys.load("root-ca").unwrap(),
    )
    .unwrap();
    let now = OffsetDateTime::now_utc();
    let serial = || SerialNumber::random(&mut rand::rng());
    let station_key: Arc<dyn Signer> = keys
        .generate("station-ca", KeyAlgorithm::EcdsaP256)
        .unwrap();
    let station_ca = create_intermediate_ca(
        &root,
        station_key.public_key_spki(),
        &Subject {
            organization: "Touchmark".into(),
            common_name: "Touchmark Station CA".into(),
        },
        now - Duration::hours(1),
        now + Duration::days(365 * 10),
        serial(),
    )
    .unwrap();
    let server_key = keys
        .generate("server-tls", KeyAlgorithm::EcdsaP256)
        .unwrap();
    let server = issue_server_cert(
        &root,
        server_key.public_key_spki(),
        &["localhost".into(), "127.0.0.1".into(), "::1".into()],
        now - Duration::hours(1),
        now + Duration::days(825),
        serial(),
    )
    .unwrap();
    std::fs::write(certs.join("root-ca.pem"), &root_pem).unwrap();
    std::fs::write(certs.join("station-ca.pem"), station_ca.pem()).unwrap();
    std::fs::write(certs.join("server.pem"), server.pem()).unwrap();
    for file in ["device-root-ca.pem", "infra-root-ca.pem"] {
        std::fs::remove_file(certs.join(file)).unwrap();
    }
    for key in ["infra-root-ca", "infra-station-ca", "infra-server-tls"] {
        std::fs::remove_file(dir.join("keys").join(format!("{key}.key"))).unwrap();
    }
}

/// `touchmark split-roots --data DIR`.
pub fn split_roots(dir: &Path) -> std::process::Output {
    Command::new(bin())
        .args(["split-roots", "--data"])
        .arg(dir)
        .env("TOUCHMARK_KEY_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap()
}

/// Waits until a checkpoint covers every committed event.
pub async fn wait_covered(admin: &Client) {
    for _ in 0..100 {
        let size = admin.health().await.unwrap().log_size;
        let note = admin.checkpoint().await.unwrap();
        if note.lines().nth(1).and_then(|l| l.parse::<u64>().ok()) == Some(size) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no checkpoint covered the log within 10 s");
}

/// Waits until the replica's latest checkpoint covers every committed entry: the signed size
/// equals the sequenced size, and stays so across a full sequencer interval and more.
pub async fn wait_settled(admin: &Client) -> u64 {
    let mut last = None;
    for _ in 0..100 {
        let health = admin.health().await.unwrap();
        let settled = health.checkpoint_size == health.log_size;
        if settled && last == Some(health.log_size) {
            return health.log_size;
        }
        last = settled.then_some(health.log_size);
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    }
    panic!("the log did not settle within a minute");
}
