//! The test kit: a real Touchmark server on `127.0.0.1:0` over a fresh installation, an admin
//! client, enrolled stations, simulated units with their own keys, test records, and snapshots
//! of everything a refusal must leave unchanged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use touchmark_authority::log::LogConfig;
use touchmark_authority::{InitOptions, Installation};
use touchmark_client::api::{
    CreateFactory, CreateOrder, CreateProduct, CreateStation, EnrollRequest, UnitBody,
};
use touchmark_client::{Client, ClientConfig, Identity};
use touchmark_core::Clock;
use touchmark_core::clock::ManualClock;
use touchmark_core::command::NewTokenRequest;
use touchmark_core::entity::Role;
use touchmark_core::event::Actor;
use touchmark_core::field::Label;
use touchmark_pki::{KeyAlgorithm, Passphrase, SoftwareSigner, build_csr};
use touchmark_server::Server;
use touchmark_store::Store;
use touchmark_store::sqlite::SqliteStore;

/// A running server over its own installation, with an admin client.
pub struct Kit {
    /// The data directory; removed when the kit is dropped.
    _dir: TempDir,
    /// `https://localhost:PORT`.
    pub base_url: String,
    /// The installation's root CA, PEM: the anchor of the server's TLS certificate.
    pub root_ca_pem: String,
    /// The server's clock, moved by the tests.
    pub clock: Arc<ManualClock>,
    /// A client holding an admin token.
    pub admin: Client,
    /// The server's store, for reading what the database holds.
    pub store: Arc<dyn Store>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for Kit {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// What the server answered, status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body, parsed as JSON (`Value::Null` when it is not JSON, with `text` holding it).
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The error `code`, or `""`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts an error answer: `status`, `code`, and a body of exactly `{code, message}` plus
    /// an optional `receipt`, served as JSON with a non-empty message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.text
        );
        assert!(
            self.content_type.starts_with("application/json"),
            "content type {:?}: {}",
            self.content_type,
            self.text
        );
        let object = self.body.as_object().expect("an error object");
        assert!(
            object
                .keys()
                .all(|k| ["code", "message", "receipt"].contains(&k.as_str())),
            "{}",
            self.text
        );
        assert!(
            self.body["message"]
                .as_str()
                .is_some_and(|m| !m.trim().is_empty()),
            "{}",
            self.text
        );
    }

    /// The receipt of a logged refusal or an issuance: (index, leaf hash).
    #[track_caller]
    pub fn receipt(&self) -> (u64, String) {
        let r = &self.body["receipt"];
        let index = r["index"].as_u64().expect("receipt.index");
        let leaf = r["leaf_hash"]
            .as_str()
            .expect("receipt.leaf_hash")
            .to_owned();
        assert_eq!(leaf.len(), 64, "{leaf}");
        assert!(leaf.bytes().all(|b| b.is_ascii_hexdigit()), "{leaf}");
        (index, leaf)
    }
}

/// A product, a factory and an open order.
#[derive(Debug, Clone)]
pub struct Line {
    /// The product id.
    pub product: String,
    /// The factory id.
    pub factory: String,
    /// The order id.
    pub order: String,
}

/// An enrolled station: a typed client and a raw client, both presenting its mTLS identity.
#[derive(Clone)]
pub struct Station {
    /// The station id.
    pub id: String,
    /// Its factory.
    pub factory: String,
    /// The typed client with the station's identity.
    pub client: Client,
    /// A raw HTTP client with the same identity, for bodies the typed client cannot send.
    pub raw: Raw,
    /// Its mTLS certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// A raw HTTPS client trusting the kit's root CA.
#[derive(Clone)]
pub struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    /// A client presenting `identity` (certificate chain PEM, key PEM), or no certificate.
    pub fn new(base: &str, root_ca_pem: &str, identity: Option<(&str, &str)>) -> Self {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(client_tls(root_ca_pem, identity))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client");
        Self {
            http,
            base: base.to_owned(),
        }
    }

    /// Sends `body` with `content_type` (none when `None`) to `path`, with optional bearer token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            body,
            text,
        }
    }

    /// POSTs a JSON value to `order`'s provisioning route.
    pub async fn provision(&self, order: &str, body: &Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/orders/{order}/units"),
            Some("application/json"),
            serde_json::to_vec(body).expect("JSON"),
            None,
        )
        .await
    }
}

/// A rustls client configuration on aws-lc-rs trusting only `root_ca_pem`.
pub fn client_tls(root_ca_pem: &str, identity: Option<(&str, &str)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_ca_pem.as_bytes()) {
        roots.add(cert.expect("root PEM")).expect("root CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain PEM"),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM"),
            )
            .expect("client identity"),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

impl Station {
    /// Provisions `unit` on `order` with `test`, through the raw client.
    pub async fn provision(&self, order: &str, unit: &Unit, test: Value) -> Reply {
        self.raw.provision(order, &unit.request(test)).await
    }
}

/// A simulated unit: a serial and its own P-256 key, with a CSR for it.
pub struct Unit {
    /// The serial.
    pub serial: String,
    /// The unit's key (its secure element).
    pub signer: SoftwareSigner,
    /// Its CSR, PEM.
    pub csr_pem: String,
}

impl Unit {
    /// A unit with a fresh key.
    pub fn new(serial: &str) -> Self {
        Self::with_key(
            serial,
            SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).expect("key"),
        )
    }

    /// A unit with the given key.
    pub fn with_key(serial: &str, signer: SoftwareSigner) -> Self {
        let der = build_csr(&signer, serial).expect("CSR");
        Self {
            serial: serial.to_owned(),
            csr_pem: touchmark_pki::pem::encode("CERTIFICATE REQUEST", &der),
            signer,
        }
    }

    /// Another unit (another serial) holding a copy of this unit's key: a cloned secure element.
    pub fn clone_key(&self, serial: &str) -> Self {
        let der = self.signer.pkcs8_der();
        Self::with_key(
            serial,
            SoftwareSigner::from_pkcs8(KeyAlgorithm::EcdsaP256, &der).expect("key copy"),
        )
    }

    /// The provisioning request body.
    pub fn request(&self, test: Value) -> Value {
        json!({ "serial": self.serial, "csr": self.csr_pem, "test": test })
    }
}

/// A passing test record in Touchmark's shape.
pub fn passing_test() -> Value {
    json!({
        "verdict": "pass",
        "started_at": "2026-03-01T09:00:00Z",
        "ended_at": "2026-03-01T09:00:42.5Z",
        "fixture_version": "rf-fixture 2.3.1",
        "steps": [
            {
                "name": "rf_power",
                "outcome": "pass",
                "measurements": [
                    { "name": "tx_dbm", "value": 17.25, "unit": "dBm", "low": 10, "high": 20, "outcome": "pass" },
                    { "name": "antenna", "value": "internal", "outcome": "pass" }
                ]
            },
            { "name": "self_test", "outcome": "pass", "measurements": [] }
        ]
    })
}

/// A failing test record in Touchmark's shape: one measurement out of its limits.
pub fn failing_test() -> Value {
    json!({
        "verdict": "fail",
        "started_at": "2026-03-01T09:00:00Z",
        "ended_at": "2026-03-01T09:00:42.5Z",
        "fixture_version": "rf-fixture 2.3.1",
        "steps": [
            {
                "name": "rf_power",
                "outcome": "fail",
                "measurements": [
                    { "name": "tx_dbm", "value": 21.7, "unit": "dBm", "low": 10, "high": 20, "outcome": "fail" }
                ]
            }
        ]
    })
}

/// A passing test record as OpenHTF's `JsonOutput` writes it.
pub fn openhtf_passing_test() -> Value {
    json!({
        "dut_id": "ignored",
        "station_id": "line1-rf-03",
        "start_time_millis": 1_772_355_600_000_u64,
        "end_time_millis": 1_772_355_642_500_u64,
        "outcome": "PASS",
        "metadata": { "test_name": "rf_suite", "test_version": "2.3.1" },
        "phases": [
            {
                "name": "power_on",
                "start_time_millis": 1_772_355_600_010_u64,
                "end_time_millis": 1_772_355_600_500_u64,
                "outcome": "PASS",
                "measurements": {
                    "vbat": {
                        "name": "vbat", "outcome": "PASS", "measured_value": 3.31,
                        "units": { "name": "volt", "code": "VLT", "suffix": "V" },
                        "validators": ["3.2 <= x <= 3.4"]
                    }
                }
            }
        ]
    })
}

/// An open order over a serial range, with no window: to adjust before
/// [`Kit::order_with`].
pub fn order_request(
    id: &str,
    product: &str,
    factory: &str,
    quota: u64,
    range: &str,
) -> CreateOrder {
    CreateOrder {
        id: Some(id.into()),
        product: product.into(),
        factory: factory.into(),
        quota,
        serial_range: Some(range.into()),
        serial_pattern: None,
        not_before: None,
        not_after: None,
        open: true,
    }
}

/// Everything about an order that a refusal must leave unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The order's `issued` column.
    pub issued: u64,
    /// Certificates stored for the order.
    pub certificates: u64,
    /// `unit.issued` events for the order.
    pub issued_events: u64,
    /// Failed test attempts.
    pub failed_tests: u64,
    /// Refusals by code.
    pub refusals: BTreeMap<String, u64>,
    /// The order's units.
    pub units: Vec<UnitBody>,
    /// Events in the whole log.
    pub log_size: u64,
}

impl Snapshot {
    /// This snapshot after one logged refusal with `code`.
    pub fn refused(&self, code: &str) -> Self {
        let mut next = self.clone();
        next.log_size += 1;
        *next.refusals.entry(code.to_owned()).or_default() += 1;
        next
    }

    /// This snapshot after one logged refusal with `code` of a request for `serial`: the unit
    /// keeps every test attempt (DESIGN §3), so a listed unit with that serial has one more.
    pub fn refused_attempt(&self, code: &str, serial: &str) -> Self {
        let mut next = self.refused(code);
        for unit in next.units.iter_mut().filter(|u| u.serial == serial) {
            unit.test_attempts += 1;
        }
        next
    }
}

/// SHA-256 of the DER inside a PEM certificate, hex.
pub fn pem_sha256(pem: &str) -> String {
    let blocks = touchmark_pki::pem::decode_all(pem).expect("PEM");
    hex::encode(Sha256::digest(&blocks[0].der))
}

impl Kit {
    /// Initializes an installation in a fresh directory and starts a server on it.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = OffsetDateTime::now_utc();
        let installation = Installation::init(
            dir.path(),
            &Passphrase::new("test".into()).expect("passphrase"),
            &InitOptions {
                organization: "Test".into(),
                hosts: vec!["localhost".into(), "127.0.0.1".into()],
                log_origin: "test.local/log".into(),
            },
            now,
        )
        .expect("init");
        let store = SqliteStore::open(&Installation::database_path(dir.path())).expect("store");
        let clock = Arc::new(ManualClock::new(now));
        let server = Server::bind(
            "127.0.0.1:0".parse::<SocketAddr>().expect("address"),
            &installation,
            Arc::new(store),
            Arc::clone(&clock) as Arc<dyn Clock>,
            LogConfig::default(),
        )
        .await
        .expect("bind");
        let port = server.local_addr().expect("local address").port();
        let store = Arc::clone(server.store());
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
        let root_ca_pem = installation.root().certificate().pem();
        let mut config = ClientConfig::new(&base_url, &root_ca_pem);
        config.token = Some(token);
        let admin = Client::new(config).expect("admin client");
        Self {
            _dir: dir,
            base_url,
            root_ca_pem,
            clock,
            admin,
            store,
            shutdown: Some(tx),
        }
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
        self.admin
            .create_product(&CreateProduct {
                id: Some(id.into()),
                name: format!("Widget {id}"),
                organization: "Test Devices".into(),
                common_name: "Widget".into(),
                hw_type_oid: None,
                crl_url: None,
                ocsp_url: None,
                cert_not_after: None,
            })
            .await
            .expect("product")
            .id
    }

    /// Creates a factory.
    pub async fn factory(&self, id: &str) -> String {
        self.admin
            .create_factory(&CreateFactory {
                id: Some(id.into()),
                name: format!("Factory {id}"),
            })
            .await
            .expect("factory")
            .id
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
        let product = self.product(&format!("prod-{tag}")).await;
        let factory = self.factory(&format!("fac-{tag}")).await;
        let order = self
            .order(&format!("ord-{tag}"), &product, &factory, quota, range)
            .await;
        Line {
            product,
            factory,
            order,
        }
    }

    /// Creates a station of `factory` and enrolls it as a fixture PC would: a fresh key, a CSR,
    /// the one-time token over an unauthenticated connection.
    pub async fn enroll_station(&self, factory: &str) -> Station {
        let created = self
            .admin
            .create_station(&CreateStation {
                id: None,
                factory: factory.into(),
                name: None,
                enrollment_ttl_minutes: None,
            })
            .await
            .expect("station");
        let signer = SoftwareSigner::generate(KeyAlgorithm::EcdsaP256).expect("station key");
        let csr = build_csr(&signer, &created.station.id).expect("station CSR");
        let enrolled = self
            .anonymous()
            .enroll(&EnrollRequest {
                token: created.enrollment_token,
                csr: touchmark_pki::pem::encode("CERTIFICATE REQUEST", &csr),
            })
            .await
            .expect("enroll");
        assert_eq!(enrolled.station, created.station.id);
        let key_pem = signer.pkcs8_pem();
        let mut config = ClientConfig::new(&self.base_url, &self.root_ca_pem);
        config.identity = Some(Identity::new(
            enrolled.certificate_pem.clone(),
            key_pem.as_str(),
        ));
        Station {
            id: enrolled.station,
            factory: enrolled.factory,
            client: Client::new(config).expect("station client"),
            raw: Raw::new(
                &self.base_url,
                &self.root_ca_pem,
                Some((&enrolled.certificate_pem, &key_pem)),
            ),
            cert_pem: enrolled.certificate_pem.clone(),
            key_pem: key_pem.to_string(),
        }
    }

    /// Events in the log.
    pub async fn log_size(&self) -> u64 {
        self.admin.health().await.expect("health").log_size
    }

    /// The order's counts, its units and the log size.
    pub async fn snapshot(&self, order: &str) -> Snapshot {
        let detail = self.admin.order(order).await.expect("order detail");
        let units = self.admin.order_units(order).await.expect("units");
        let log_size = self.admin.health().await.expect("health").log_size;
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
