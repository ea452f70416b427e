//! What a test builds on a server: products, factories and orders through an admin client,
//! enrolled stations, and simulated units with keys of their own.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use touchmark_client::api::{
    CreateFactory, CreateOrder, CreateProduct, CreateStation, EnrollRequest,
};
use touchmark_client::{Client, ClientConfig, Identity};
use touchmark_pki::{KeyAlgorithm, SoftwareSigner, build_csr};

use crate::http::{Raw, Reply};

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

/// An open order over a serial range, with no window: to adjust before
/// [`crate::TestServer::order_with`].
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
        release: None,
    }
}

/// SHA-256 of the DER inside a PEM certificate, hex.
pub fn pem_sha256(pem: &str) -> String {
    let blocks = touchmark_pki::pem::decode_all(pem).expect("PEM");
    hex::encode(Sha256::digest(&blocks[0].der))
}

/// A request for product `id` named `name`, organization `Test Devices`, CN `Widget`.
pub fn product_request(id: &str, name: &str) -> CreateProduct {
    CreateProduct {
        id: Some(id.into()),
        name: name.into(),
        organization: "Test Devices".into(),
        common_name: "Widget".into(),
        hw_type_oid: None,
        crl_url: None,
        ocsp_url: None,
        cert_not_after: None,
        attestation_roots_pem: None,
    }
}

/// Creates product `id` (`Widget <id>`, organization `Test Devices`) through `admin`.
pub async fn product(admin: &Client, id: &str) -> String {
    admin
        .create_product(&product_request(id, &format!("Widget {id}")))
        .await
        .expect("product")
        .id
}

/// Creates factory `id` through `admin`.
pub async fn factory(admin: &Client, id: &str) -> String {
    admin
        .create_factory(&CreateFactory {
            id: Some(id.into()),
            name: format!("Factory {id}"),
        })
        .await
        .expect("factory")
        .id
}

/// A product `prod-<tag>`, a factory `fac-<tag>` and an open order `ord-<tag>` with `quota`
/// over `range`, through `admin`.
pub async fn line(admin: &Client, tag: &str, quota: u64, range: &str) -> Line {
    let product = product(admin, &format!("prod-{tag}")).await;
    let factory = factory(admin, &format!("fac-{tag}")).await;
    let order = admin
        .create_order(&order_request(
            &format!("ord-{tag}"),
            &product,
            &factory,
            quota,
            range,
        ))
        .await
        .expect("order")
        .id;
    Line {
        product,
        factory,
        order,
    }
}

/// Creates a station of `factory` through `admin` and enrolls it as a fixture PC would, on the
/// server at `base_url` trusted through `root_ca_pem`: a fresh key, a CSR, the one-time token
/// over an unauthenticated connection.
pub async fn enroll_station(
    admin: &Client,
    base_url: &str,
    root_ca_pem: &str,
    factory: &str,
) -> Station {
    let created = admin
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
    let anonymous = Client::new(ClientConfig::new(base_url, root_ca_pem)).expect("client");
    let enrolled = anonymous
        .enroll(&EnrollRequest {
            token: created.enrollment_token,
            csr: touchmark_pki::pem::encode("CERTIFICATE REQUEST", &csr),
        })
        .await
        .expect("enroll");
    assert_eq!(enrolled.station, created.station.id);
    let key_pem = signer.pkcs8_pem();
    let mut config = ClientConfig::new(base_url, root_ca_pem);
    config.identity = Some(Identity::new(
        enrolled.certificate_pem.clone(),
        key_pem.as_str(),
    ));
    Station {
        id: enrolled.station,
        factory: enrolled.factory,
        client: Client::new(config).expect("station client"),
        raw: Raw::new(
            base_url,
            root_ca_pem,
            Some((&enrolled.certificate_pem, &key_pem)),
        ),
        cert_pem: enrolled.certificate_pem.clone(),
        key_pem: key_pem.to_string(),
    }
}
