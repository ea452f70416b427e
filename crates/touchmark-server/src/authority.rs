//! The authority: it decides and signs. Handlers read and authorize; the authority applies the
//! policy of DESIGN §4 in order, signs, and has the store commit the result with its event.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use time::{Duration, OffsetDateTime};
use touchmark_core::api::{
    CreateFactory, CreateOrder, CreateProduct, CreateStation, EnrollRequest, ProvisionRequest,
};
use touchmark_core::clock::parse_timestamp;
use touchmark_core::code::{ErrorCode, Refusal};
use touchmark_core::entity::{Factory, Product, Role, Station, StationStatus};
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::order::{MAX_QUOTA, Order, OrderState};
use touchmark_core::policy;
use touchmark_core::testrecord::TestRecord;
use touchmark_core::{
    Clock, FactoryId, OrderId, ProductId, Serial, SerialRule, StationId, TokenId,
};
use touchmark_pki::{
    CaIssuer, Certificate, CsrError, DeviceProfile, KeyAlgorithm, KeyStore, SerialNumber, Subject,
    VerifiedCsr, parse_csr,
};
use touchmark_store::{
    IssueOutcome, IssueRequest, IssuedUnit, NewCertificate, NewToken, Rejection, Store, TestAttempt,
};

use crate::error::ApiError;
use crate::installation::{Installation, key_names, random_id, random_secret};

/// How long a station's mTLS certificate is valid.
const STATION_CERT_DAYS: i64 = 365;
/// Default and bounds of an enrollment token's lifetime, in minutes.
const ENROLLMENT_TTL_DEFAULT: u64 = 24 * 60;
const ENROLLMENT_TTL_MAX: u64 = 7 * 24 * 60;
/// How long a product's issuing CA is valid.
const ISSUING_CA_YEARS: i64 = 25;

/// A product's issuing CA and certificate profile, loaded once.
#[derive(Debug)]
struct ProductIssuer {
    issuer: CaIssuer,
    profile: DeviceProfile,
    issuing_ca_pem: String,
}

/// The result of a successful provisioning request.
#[derive(Debug)]
pub struct Provisioned {
    /// True when a retry returned the certificate issued before.
    pub already_issued: bool,
    /// The unit and its receipt.
    pub unit: IssuedUnit,
    /// The device certificate, PEM.
    pub certificate_pem: String,
    /// Device certificate then issuing CA, PEM.
    pub chain_pem: String,
}

/// Decides, signs and records.
#[derive(Debug)]
pub struct Authority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: Arc<KeyStore>,
    root: Arc<CaIssuer>,
    root_pem: String,
    station_ca: Arc<CaIssuer>,
    issuers: RwLock<HashMap<ProductId, Arc<ProductIssuer>>>,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

fn check_url(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = (value.starts_with("http://") || value.starts_with("https://"))
        && value.len() <= 256
        && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{field} must be an http(s) URL of at most 256 printable ASCII characters"
        )))
    }
}

/// Parses a dotted OID such as `1.3.6.1.4.1.99999.1`.
fn parse_oid(text: &str) -> Result<Vec<u64>, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "hw_type_oid `{}` is not a dotted OID such as 1.3.6.1.4.1.99999.1",
            touchmark_core::clock::truncate(text, 64)
        ))
    };
    let arcs = text
        .split('.')
        .map(|a| {
            if a.is_empty() || (a.len() > 1 && a.starts_with('0')) {
                Err(bad())
            } else {
                a.parse::<u64>().map_err(|_| bad())
            }
        })
        .collect::<Result<Vec<u64>, _>>()?;
    if arcs.len() < 2 || arcs.len() > 32 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
        return Err(bad());
    }
    Ok(arcs)
}

fn parse_id<T>(
    field: &str,
    value: Option<&str>,
    prefix: &str,
    parse: impl Fn(&str) -> Result<T, touchmark_core::id::IdError>,
) -> Result<T, ApiError> {
    match value {
        Some(v) => parse(v).map_err(|e| ApiError::invalid(format!("{field}: {e}"))),
        None => parse(&random_id(prefix)).map_err(ApiError::internal),
    }
}

fn opt_time(field: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| parse_timestamp(v).map_err(|e| ApiError::invalid(format!("{field}: {e}"))))
        .transpose()
}

fn csr_refusal(e: &CsrError) -> Refusal {
    let code = match e {
        CsrError::SignatureInvalid => ErrorCode::CsrSignatureInvalid,
        CsrError::KeyTypeUnsupported(_) => ErrorCode::KeyTypeUnsupported,
        _ => ErrorCode::CsrInvalid,
    };
    Refusal::new(code, e.to_string())
}

fn serial_number() -> SerialNumber {
    SerialNumber::random(&mut rand::rng())
}

impl Authority {
    /// An authority over `installation`'s keys, recording into `store`.
    pub fn new(installation: &Installation, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            keys: Arc::clone(installation.keys()),
            root: Arc::clone(installation.root()),
            root_pem: installation.root().certificate().pem(),
            station_ca: Arc::clone(installation.station_ca()),
            issuers: RwLock::new(HashMap::new()),
        }
    }

    /// The station CA.
    pub fn station_ca(&self) -> &CaIssuer {
        &self.station_ca
    }

    /// The root CA certificate, PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Creates an API token and returns its secret, shown once.
    ///
    /// # Errors
    /// `invalid_request` for a bad role or label.
    pub async fn create_token(
        &self,
        actor: Actor,
        role: &str,
        label: &str,
    ) -> Result<(TokenId, Role, String), ApiError> {
        let role = Role::from_str_opt(role)
            .ok_or_else(|| ApiError::invalid("role must be `admin` or `auditor`"))?;
        check_text("label", label, 128)?;
        let id = TokenId::parse(&random_id("tok-")).map_err(ApiError::internal)?;
        let secret = random_secret("tm_");
        let at = self.clock.now();
        let token = NewToken {
            id: id.clone(),
            secret_sha256: Sha256Hash::of(secret.as_bytes()),
            role,
            label: label.to_owned(),
            at,
        };
        let event = Event::new(
            at,
            EventBody::TokenCreated {
                token: id.clone(),
                role,
                actor,
            },
        );
        self.store.create_token(token, event).await?;
        Ok((id, role, secret))
    }

    /// Creates a product with its own issuing CA, signed by the root.
    ///
    /// # Errors
    /// `invalid_request` for bad fields, `conflict` if the id is taken.
    pub async fn create_product(
        &self,
        actor: Actor,
        req: CreateProduct,
    ) -> Result<Product, ApiError> {
        let id = parse_id("id", req.id.as_deref(), "prod-", ProductId::parse)?;
        check_text("name", &req.name, 128)?;
        check_text("organization", &req.organization, 64)?;
        check_text("common_name", &req.common_name, 64)?;
        let hw_type_oid = match &req.hw_type_oid {
            Some(oid) => {
                parse_oid(oid)?;
                oid.clone()
            }
            // An arc under 2.25 (ITU-T X.667) needs no registration; production products
            // should name an OID from their own organization's arc.
            None => format!(
                "2.25.{}",
                u64::from_be_bytes(*serial_number().as_bytes().first_chunk().unwrap_or(&[0; 8]))
                    >> 1
            ),
        };
        for (field, url) in [("crl_url", &req.crl_url), ("ocsp_url", &req.ocsp_url)] {
            if let Some(url) = url {
                check_url(field, url)?;
            }
        }
        let now = self.clock.now();
        let cert_not_after = opt_time("cert_not_after", req.cert_not_after.as_deref())?;
        if cert_not_after.is_some_and(|t| t <= now) {
            return Err(ApiError::invalid("cert_not_after must be in the future"));
        }
        if self.store.product(&id).await?.is_some() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("product {id} exists already"),
            ));
        }
        let key_name = key_names::product(&id);
        // A key left by an attempt that failed before its product was stored is reused.
        let key = if self.keys.contains(&key_name) {
            self.keys.load(&key_name)
        } else {
            self.keys.generate(&key_name, KeyAlgorithm::EcdsaP256)
        }
        .map_err(ApiError::internal)?;
        let subject = Subject {
            organization: req.organization.clone(),
            common_name: format!("{} Issuing CA", req.name),
        };
        let ca = touchmark_pki::create_intermediate_ca(
            &self.root,
            key.public_key_spki(),
            &subject,
            now - Duration::hours(1),
            now + Duration::days(365 * ISSUING_CA_YEARS),
            serial_number(),
        )
        .map_err(ApiError::internal)?;
        let product = Product {
            id: id.clone(),
            name: req.name,
            organization: req.organization,
            common_name: req.common_name,
            hw_type_oid,
            crl_url: req.crl_url,
            ocsp_url: req.ocsp_url,
            cert_not_after,
            issuing_ca_pem: ca.pem(),
            created_at: now,
        };
        let event = Event::new(
            now,
            EventBody::ProductCreated {
                product: id,
                organization: product.organization.clone(),
                common_name: product.common_name.clone(),
                issuing_ca_sha256: Sha256Hash(ca.sha256()),
                actor,
            },
        );
        self.store.create_product(product.clone(), event).await?;
        Ok(product)
    }

    /// Creates a factory.
    ///
    /// # Errors
    /// `invalid_request` for bad fields, `conflict` if the id is taken.
    pub async fn create_factory(
        &self,
        actor: Actor,
        req: CreateFactory,
    ) -> Result<Factory, ApiError> {
        let id = parse_id("id", req.id.as_deref(), "fac-", FactoryId::parse)?;
        check_text("name", &req.name, 128)?;
        let now = self.clock.now();
        let factory = Factory {
            id: id.clone(),
            name: req.name,
            created_at: now,
        };
        self.store
            .create_factory(
                factory.clone(),
                Event::new(now, EventBody::FactoryCreated { factory: id, actor }),
            )
            .await?;
        Ok(factory)
    }

    /// Creates a pending station and its one-time enrollment token.
    ///
    /// # Errors
    /// `invalid_request`, `not_found` for an unknown factory, `conflict` if the id is taken.
    pub async fn create_station(
        &self,
        actor: Actor,
        req: CreateStation,
    ) -> Result<(Station, String), ApiError> {
        let id = parse_id("id", req.id.as_deref(), "st-", StationId::parse)?;
        let factory = FactoryId::parse(&req.factory)
            .map_err(|e| ApiError::invalid(format!("factory: {e}")))?;
        let name = req.name.unwrap_or_else(|| id.to_string());
        check_text("name", &name, 128)?;
        let ttl = req.enrollment_ttl_minutes.unwrap_or(ENROLLMENT_TTL_DEFAULT);
        if !(1..=ENROLLMENT_TTL_MAX).contains(&ttl) {
            return Err(ApiError::invalid(format!(
                "enrollment_ttl_minutes must be 1 to {ENROLLMENT_TTL_MAX}"
            )));
        }
        let now = self.clock.now();
        let token = random_secret("tme_");
        let station = Station {
            id: id.clone(),
            factory: factory.clone(),
            name,
            status: StationStatus::Pending,
            enrollment_expires_at: now + Duration::minutes(ttl as i64),
            cert_sha256: None,
            created_at: now,
        };
        let event = Event::new(
            now,
            EventBody::StationCreated {
                station: id,
                factory,
                actor,
            },
        );
        self.store
            .create_station(station.clone(), Sha256Hash::of(token.as_bytes()), event)
            .await?;
        Ok((station, token))
    }

    /// Enrolls a station: checks its one-time token, signs its CSR with the station CA.
    ///
    /// # Errors
    /// `enrollment_token_invalid`, or a CSR code.
    pub async fn enroll(&self, req: EnrollRequest) -> Result<(Station, Certificate), ApiError> {
        let now = self.clock.now();
        let token_hash = Sha256Hash::of(req.token.as_bytes());
        let station = self
            .store
            .station_for_enrollment(token_hash, now)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::EnrollmentTokenInvalid,
                    "the enrollment token is unknown, already used or expired",
                )
            })?;
        let csr = parse_csr(req.csr.as_bytes()).map_err(|e| {
            let r = csr_refusal(&e);
            ApiError::new(r.code, r.message)
        })?;
        let cert = touchmark_pki::issue_station_cert(
            &self.station_ca,
            &csr,
            station.id.as_str(),
            station.factory.as_str(),
            now - Duration::minutes(5),
            now + Duration::days(STATION_CERT_DAYS),
            serial_number(),
        )
        .map_err(ApiError::internal)?;
        let cert_sha256 = Sha256Hash(cert.sha256());
        let event = Event::new(
            now,
            EventBody::StationEnrolled {
                station: station.id.clone(),
                factory: station.factory.clone(),
                cert_sha256,
                pubkey_sha256: Sha256Hash(csr.spki_sha256()),
            },
        );
        self.store
            .enroll_station(&station.id, token_hash, cert_sha256, now, event)
            .await?;
        Ok((
            Station {
                status: StationStatus::Active,
                cert_sha256: Some(cert_sha256.to_hex()),
                ..station
            },
            cert,
        ))
    }

    /// Creates an order, in draft or open.
    ///
    /// # Errors
    /// `invalid_request`, `not_found` for an unknown product or factory, `conflict`.
    pub async fn create_order(&self, actor: Actor, req: CreateOrder) -> Result<Order, ApiError> {
        let id = parse_id("id", req.id.as_deref(), "ord-", OrderId::parse)?;
        let product = ProductId::parse(&req.product)
            .map_err(|e| ApiError::invalid(format!("product: {e}")))?;
        let factory = FactoryId::parse(&req.factory)
            .map_err(|e| ApiError::invalid(format!("factory: {e}")))?;
        if req.quota > MAX_QUOTA {
            return Err(ApiError::invalid(format!(
                "quota must be at most {MAX_QUOTA}"
            )));
        }
        let serial_rule = match (&req.serial_range, &req.serial_pattern) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "give serial_range or serial_pattern, not both",
                ));
            }
            (Some(range), None) => {
                SerialRule::parse_range(range).map_err(|e| ApiError::invalid(e.to_string()))?
            }
            (None, Some(pattern)) => {
                SerialRule::parse_pattern(pattern).map_err(|e| ApiError::invalid(e.to_string()))?
            }
            (None, None) => SerialRule::Any,
        };
        let not_before = opt_time("not_before", req.not_before.as_deref())?;
        let not_after = opt_time("not_after", req.not_after.as_deref())?;
        if let (Some(a), Some(b)) = (not_before, not_after)
            && a >= b
        {
            return Err(ApiError::invalid("not_before must be before not_after"));
        }
        let now = self.clock.now();
        let order = Order {
            id: id.clone(),
            product: product.clone(),
            factory: factory.clone(),
            quota: req.quota,
            issued: 0,
            serial_rule: serial_rule.clone(),
            not_before,
            not_after,
            state: OrderState::Draft,
            created_at: now,
        };
        let fmt = |t: Option<OffsetDateTime>| t.map(touchmark_core::clock::format_timestamp);
        let event = Event::new(
            now,
            EventBody::OrderCreated {
                order: id.clone(),
                product,
                factory,
                quota: req.quota,
                serial_rule: serial_rule.to_string(),
                not_before: fmt(not_before),
                not_after: fmt(not_after),
                actor: actor.clone(),
            },
        );
        self.store.create_order(order.clone(), event).await?;
        if req.open {
            return self.set_order_state(actor, &id, OrderState::Open).await;
        }
        Ok(order)
    }

    /// Opens, closes or cancels an order.
    ///
    /// # Errors
    /// `not_found`, or `conflict` when the order's state does not allow it.
    pub async fn set_order_state(
        &self,
        actor: Actor,
        id: &OrderId,
        to: OrderState,
    ) -> Result<Order, ApiError> {
        let order = id.clone();
        let body = match to {
            OrderState::Open => EventBody::OrderOpened { order, actor },
            OrderState::Closed => EventBody::OrderClosed { order, actor },
            OrderState::Cancelled => EventBody::OrderCancelled { order, actor },
            OrderState::Draft => return Err(ApiError::invalid("an order cannot return to draft")),
        };
        Ok(self
            .store
            .set_order_state(id, to, Event::new(self.clock.now(), body))
            .await?)
    }

    /// Changes an order's quota.
    ///
    /// # Errors
    /// `invalid_request` above the maximum, `conflict` below the issued count.
    pub async fn set_quota(
        &self,
        actor: Actor,
        id: &OrderId,
        quota: u64,
    ) -> Result<Order, ApiError> {
        if quota > MAX_QUOTA {
            return Err(ApiError::invalid(format!(
                "quota must be at most {MAX_QUOTA}"
            )));
        }
        Ok(self
            .store
            .change_quota(id, quota, actor, self.clock.now())
            .await?)
    }

    async fn product_issuer(&self, id: &ProductId) -> Result<Arc<ProductIssuer>, ApiError> {
        if let Some(found) = self
            .issuers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(Arc::clone(found));
        }
        let product = self
            .store
            .product(id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("order names unknown product {id}")))?;
        let key = self
            .keys
            .load(&key_names::product(id))
            .map_err(ApiError::internal)?;
        let cert = Certificate::from_pem(&product.issuing_ca_pem).map_err(ApiError::internal)?;
        let issuer = CaIssuer::new(cert, key).map_err(ApiError::internal)?;
        let hw_type_oid =
            parse_oid(&product.hw_type_oid).map_err(|e| ApiError::internal(e.message))?;
        let loaded = Arc::new(ProductIssuer {
            issuer,
            profile: DeviceProfile {
                organization: product.organization,
                common_name: product.common_name,
                hw_type_oid,
                crl_url: product.crl_url,
                ocsp_url: product.ocsp_url,
                not_after: product.cert_not_after,
            },
            issuing_ca_pem: product.issuing_ca_pem,
        });
        self.issuers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Provisions one unit: checks 1 to 8 of DESIGN §4 in order, then signs and commits.
    ///
    /// # Errors
    /// A refusal with its stable code (logged, with its receipt), `invalid_request` for a
    /// malformed test record, `not_found` for an unknown order.
    pub async fn provision(
        &self,
        station: &Station,
        order_id: &OrderId,
        req: ProvisionRequest,
    ) -> Result<Provisioned, ApiError> {
        let now = self.clock.now();
        // A malformed record is bad input, refused before the policy and logged nowhere; a
        // well-formed record that says fail is check 5.
        let record =
            TestRecord::parse(&req.test).map_err(|e| ApiError::invalid(format!("test: {e}")))?;
        // Normalized and hashed once: every attempt row and event of this request uses them.
        let test_sha256 = Sha256Hash(record.sha256());
        let record_json = record.to_json().to_string();
        let order = self
            .store
            .order(order_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("order {order_id}")))?;
        let attempt = |serial: Option<Serial>| TestAttempt {
            product: order.product.clone(),
            order: order.id.clone(),
            station: station.id.clone(),
            serial,
            verdict: record.verdict.as_str().to_owned(),
            format: record.format.as_str().to_owned(),
            sha256: test_sha256,
            record_json: record_json.clone(),
            at: now,
        };
        let refuse = |refusal: Refusal, serial: Option<Serial>, csr: Option<&VerifiedCsr>| {
            let event = Event::new(
                now,
                EventBody::UnitRefused {
                    order: order.id.clone(),
                    factory: Some(station.factory.clone()),
                    station: station.id.clone(),
                    serial: serial.clone(),
                    pubkey_sha256: csr.map(|c| Sha256Hash(c.spki_sha256())),
                    test_sha256: Some(test_sha256),
                    reason: refusal.code,
                },
            );
            self.reject(
                refusal,
                Rejection {
                    event,
                    attempt: Some(attempt(serial)),
                    failed_unit: None,
                },
            )
        };
        // 1. The station is active and of the order's factory.
        if let Err(refusal) = policy::check_station(station, &order) {
            return Err(refuse(refusal, None, None).await);
        }
        // 2. The order is open and inside its window.
        if let Err(refusal) = order.check_accepting(now) {
            return Err(refuse(refusal, None, None).await);
        }
        // 3. The serial parses and fits the order's rule.
        let serial = match policy::check_serial(&req.serial, &order) {
            Ok(serial) => serial,
            Err(refusal) => {
                return Err(refuse(refusal, Serial::parse(&req.serial).ok(), None).await);
            }
        };
        // 4. The CSR parses, its signature verifies, its key is P-256.
        let csr = match parse_csr(req.csr.as_bytes()) {
            Ok(csr) => csr,
            Err(e) => return Err(refuse(csr_refusal(&e), Some(serial), None).await),
        };
        let pubkey_sha256 = Sha256Hash(csr.spki_sha256());
        // 5. The test passed. A failure is kept and counts nothing.
        if let Err(refusal) = policy::check_test(&record) {
            let event = Event::new(
                now,
                EventBody::TestFailed {
                    order: order.id.clone(),
                    factory: station.factory.clone(),
                    station: station.id.clone(),
                    serial: serial.clone(),
                    pubkey_sha256: Some(pubkey_sha256),
                    test_sha256,
                    reason: ErrorCode::TestFailed,
                },
            );
            let rejection = Rejection {
                event,
                attempt: Some(attempt(Some(serial.clone()))),
                failed_unit: Some((order.product.clone(), serial)),
            };
            return Err(self.reject(refusal, rejection).await);
        }
        let issuer = self.product_issuer(&order.product).await?;
        // 6 to 8 run inside the store's transaction, after signing, so the certificate is
        // stored in the same commit as the count and the event. A retry of an issued unit is
        // answered there with the stored certificate, and the one signed here is dropped: a
        // signature costs less than asking the database first for every new unit would.
        let serial_number = serial_number();
        let cert = touchmark_pki::issue_device_cert(
            &issuer.issuer,
            &csr,
            serial.as_str(),
            &issuer.profile,
            now,
            serial_number,
        )
        .map_err(ApiError::internal)?;
        let request = IssueRequest {
            at: now,
            order: order.id.clone(),
            product: order.product.clone(),
            factory: station.factory.clone(),
            station: station.id.clone(),
            serial: serial.clone(),
            pubkey_sha256,
            certificate: NewCertificate {
                sha256: Sha256Hash(cert.sha256()),
                der: cert.der().to_vec(),
                serial_hex: serial_number.to_hex(),
            },
            test: attempt(Some(serial)),
        };
        match self.store.issue(request).await? {
            IssueOutcome::Issued(unit) => Ok(self.provisioned(false, unit, &issuer)),
            IssueOutcome::AlreadyIssued(unit) => Ok(self.provisioned(true, unit, &issuer)),
            IssueOutcome::Refused {
                code,
                message,
                receipt,
            } => Err(ApiError::refused(Refusal::new(code, message), receipt)),
        }
    }

    async fn reject(&self, refusal: Refusal, rejection: Rejection) -> ApiError {
        match self.store.record_rejection(rejection).await {
            Ok(receipt) => ApiError::refused(refusal, receipt),
            Err(e) => ApiError::internal(format!("could not record refusal {}: {e}", refusal.code)),
        }
    }

    fn provisioned(
        &self,
        already_issued: bool,
        unit: IssuedUnit,
        issuer: &ProductIssuer,
    ) -> Provisioned {
        let certificate_pem = touchmark_pki::pem::encode("CERTIFICATE", &unit.cert_der);
        let chain_pem = format!("{certificate_pem}{}", issuer.issuing_ca_pem);
        Provisioned {
            already_issued,
            unit,
            certificate_pem,
            chain_pem,
        }
    }
}
