//! What an admin manages: API tokens, products with their issuing CAs, factories, and orders
//! with their state and quota. Each change is stored with its event in one transaction.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use touchmark_core::clock::format_timestamp;
use touchmark_core::code::ErrorCode;
use touchmark_core::command::{NewFactory, NewOrder, NewProduct, NewTokenRequest};
use touchmark_core::entity::{Factory, Product, Role};
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::field::Oid;
use touchmark_core::order::{Order, OrderState};
use touchmark_core::policy;
use touchmark_core::{FactoryId, OrderId, ProductId, TokenId};
use touchmark_pki::{Certificate, KeyAlgorithm, Subject};
use touchmark_store::{NewToken, Rule};

use crate::installation::key_names;
use crate::secrets::{random_id, random_secret, random_u64, serial_number};
use crate::{Authority, AuthorityError, Result, off_runtime};

/// How long a product's issuing CA is valid.
const ISSUING_CA_YEARS: i64 = 25;

/// An id the admin chose, or a generated one with `prefix`.
pub(crate) fn id_or_random<T>(
    chosen: Option<T>,
    prefix: &str,
    parse: impl Fn(&str) -> std::result::Result<T, touchmark_core::id::IdError>,
) -> Result<T> {
    match chosen {
        Some(id) => Ok(id),
        None => parse(&random_id(prefix)).map_err(AuthorityError::internal),
    }
}

impl Authority {
    /// Creates an API token and returns its secret, shown once; only its hash is stored.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn create_token(
        &self,
        actor: Actor,
        req: NewTokenRequest,
    ) -> Result<(TokenId, Role, String)> {
        let id = id_or_random(None, "tok-", TokenId::parse)?;
        let secret = random_secret("tm_");
        let at = self.clock.now();
        let token = NewToken {
            id: id.clone(),
            secret_sha256: Sha256Hash::of(secret.as_bytes()),
            role: req.role,
            label: req.label.into(),
            at,
        };
        let event = Event::new(
            at,
            EventBody::TokenCreated {
                token: id.clone(),
                role: req.role,
                actor,
            },
        );
        self.store.create_token(token, event).await?;
        Ok((id, req.role, secret))
    }

    /// Creates a product with its own issuing CA, signed by the device root. When the device
    /// root is offline, the product's key is made and the product awaits its CA certificate
    /// (`ca csr`, `ca install`); until then no order may name it.
    ///
    /// # Errors
    /// `unprocessable` for a notAfter in the past, `conflict` if the id is taken.
    pub async fn create_product(&self, actor: Actor, req: NewProduct) -> Result<Product> {
        let id = id_or_random(req.id, "prod-", ProductId::parse)?;
        // An arc under 2.25 (ITU-T X.667) needs no registration; production products should
        // name an OID from their own organization's arc.
        let hw_type_oid = req
            .hw_type_oid
            .unwrap_or_else(|| Oid::under_uuid_arc(random_u64()));
        let now = self.clock.now();
        if req.cert_not_after.is_some_and(|t| t <= now) {
            return Err(AuthorityError::denied(
                ErrorCode::Unprocessable,
                "cert_not_after must be in the future",
            ));
        }
        // The vendor roots of attestation, checked before anything is made.
        let attestation_roots = req
            .attestation_roots_pem
            .as_deref()
            .map(|pem| {
                touchmark_pki::attestation::AttestationRoots::parse(pem).map_err(|e| {
                    AuthorityError::denied(
                        ErrorCode::Unprocessable,
                        format!("attestation_roots_pem: {e}"),
                    )
                })
            })
            .transpose()?;
        if self.store.product(&id).await?.is_some() {
            return Err(AuthorityError::denied(
                ErrorCode::Conflict,
                format!("product {id} exists already"),
            ));
        }
        let key_name = key_names::product(&id);
        let subject = Subject {
            organization: req.organization.as_str().to_owned(),
            common_name: req.name.issuing_ca_name().into(),
        };
        let (keys, root) = (Arc::clone(&self.keys), self.device_root.issuer().cloned());
        let name = key_name.clone();
        let (ca, made) = off_runtime(move || {
            // A key left by an attempt that failed before its product was stored is reused.
            let (key, made) = if keys.contains(&name) {
                (keys.load(&name)?, false)
            } else {
                (keys.generate(&name, KeyAlgorithm::EcdsaP256)?, true)
            };
            let ca = match root {
                Some(root) => Some(touchmark_pki::create_intermediate_ca(
                    &root,
                    key.public_key_spki(),
                    &subject,
                    now - Duration::hours(1),
                    now + Duration::days(365 * ISSUING_CA_YEARS),
                    serial_number(),
                )?),
                None => None,
            };
            Ok::<_, touchmark_pki::PkiError>((ca, made.then_some(key)))
        })
        .await?
        .map_err(AuthorityError::internal)?;
        if let Some(key) = made {
            // Logged as soon as it exists: a product that fails to be stored after this leaves
            // its key, logged, for the retry to take up.
            self.log_key_generated(actor.clone(), &key_name, key.as_ref())
                .await?;
        }
        let product = Product {
            id: id.clone(),
            name: req.name.into(),
            organization: req.organization.into(),
            common_name: req.common_name.into(),
            hw_type_oid: hw_type_oid.as_str().to_owned(),
            crl_url: req.crl_url.map(Into::into),
            ocsp_url: req.ocsp_url.map(Into::into),
            cert_not_after: req.cert_not_after,
            issuing_ca_pem: ca.as_ref().map(Certificate::pem).unwrap_or_default(),
            created_at: now,
            attestation_roots_pem: req.attestation_roots_pem,
        };
        let event = Event::new(
            now,
            EventBody::ProductCreated {
                product: id,
                organization: product.organization.clone(),
                common_name: product.common_name.clone(),
                issuing_ca_sha256: ca.as_ref().map(|ca| Sha256Hash(ca.sha256())),
                attestation_roots: attestation_roots
                    .iter()
                    .flat_map(|r| r.ders())
                    .map(|der| Sha256Hash::of(der))
                    .collect(),
                actor,
            },
        );
        self.store.create_product(product.clone(), event).await?;
        // Its CA's CRL is published from now on.
        self.revocations.send_modify(|n| *n += 1);
        Ok(product)
    }

    /// Creates a factory.
    ///
    /// # Errors
    /// `conflict` if the id is taken.
    pub async fn create_factory(&self, actor: Actor, req: NewFactory) -> Result<Factory> {
        let id = id_or_random(req.id, "fac-", FactoryId::parse)?;
        let now = self.clock.now();
        let factory = Factory {
            id: id.clone(),
            name: req.name.into(),
            created_at: now,
        };
        let event = Event::new(now, EventBody::FactoryCreated { factory: id, actor });
        self.store.create_factory(factory.clone(), event).await?;
        Ok(factory)
    }

    /// Creates an order, in draft, and opens it when asked.
    ///
    /// # Errors
    /// `not_found` for an unknown product or factory, `conflict` if the id is taken.
    pub async fn create_order(&self, actor: Actor, req: NewOrder) -> Result<Order> {
        let id = id_or_random(req.id, "ord-", OrderId::parse)?;
        let now = self.clock.now();
        if let Some(product) = self.store.product(&req.product).await?
            && !product.ca_installed()
        {
            return Err(AuthorityError::denied(
                ErrorCode::Conflict,
                format!(
                    "product {} awaits its issuing CA certificate from the offline root: \
                     `touchmark ca csr --product {0}`, have the root sign it, then \
                     `touchmark ca install`",
                    product.id
                ),
            ));
        }
        // The release is checked before the order exists, so a refused one leaves nothing.
        let release = match &req.release {
            Some(version) => Some(self.deliverable_release(&req.product, version).await?),
            None => None,
        };
        let order = Order {
            id: id.clone(),
            product: req.product.clone(),
            factory: req.factory.clone(),
            quota: req.quota,
            issued: 0,
            serial_rule: req.serial_rule.clone(),
            not_before: req.not_before,
            not_after: req.not_after,
            state: OrderState::Draft,
            created_at: now,
        };
        let time = |t: Option<OffsetDateTime>| t.map(format_timestamp);
        let event = Event::new(
            now,
            EventBody::OrderCreated {
                order: id.clone(),
                product: req.product,
                factory: req.factory,
                quota: req.quota,
                serial_rule: req.serial_rule.to_string(),
                not_before: time(req.not_before),
                not_after: time(req.not_after),
                actor: actor.clone(),
            },
        );
        self.store.create_order(order.clone(), event).await?;
        // Its CRL partition is published from now on.
        self.revocations.send_modify(|n| *n += 1);
        if let Some(release) = release {
            self.name_order_release(actor.clone(), &id, &release)
                .await?;
        }
        if req.open {
            return self.set_order_state(actor, &id, OrderState::Open).await;
        }
        Ok(order)
    }

    /// Opens, closes or cancels an order.
    ///
    /// # Errors
    /// `not_found`, `invalid_request` for a move back to draft, or `conflict` when the order's
    /// state does not allow it.
    pub async fn set_order_state(
        &self,
        actor: Actor,
        id: &OrderId,
        to: OrderState,
    ) -> Result<Order> {
        let at = self.clock.now();
        let rule = Rule::new(move |order| policy::order::transition(order, to, actor, at));
        Ok(self.store.update_order(id, rule).await?)
    }

    /// Changes an order's quota; the change is logged with the old and new value.
    ///
    /// # Errors
    /// `not_found`, `invalid_request` above the maximum, `conflict` below the issued count or
    /// once the order is closed or cancelled.
    pub async fn set_quota(&self, actor: Actor, id: &OrderId, quota: u64) -> Result<Order> {
        let at = self.clock.now();
        let rule = Rule::new(move |order| policy::order::change_quota(order, quota, actor, at));
        Ok(self.store.update_order(id, rule).await?)
    }
}
