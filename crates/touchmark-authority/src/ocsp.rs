//! The OCSP responder (RFC 6960, RFC 5019): good, revoked (with time and reason) or unknown for
//! each certificate a request names, signed by a delegated responder certificate per CA
//! (id-kp-OCSPSigning, short-lived, rotated), never by the CA key on a request.
//!
//! - A responder key lives in the installation's `KeyProvider` as `ocsp-{ca}-{period}`: a new
//!   one each [`OcspConfig::rotation`], its certificate issued by the CA when first used, valid
//!   for that period and a little more.
//! - Answers for certificates that are not revoked are cached, signed, until half their
//!   validity has passed (so a client never gets one close to its nextUpdate); every committed
//!   revocation ([`Authority::revocations`]) empties the cache at once. A request with a nonce
//!   is answered afresh.
//! - A request that does not parse gets `malformedRequest`; one about a CA this installation
//!   does not hold gets `unauthorized`; a failure inside gets `internalError`. Never a panic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use time::OffsetDateTime;
use touchmark_core::ProductId;
use touchmark_pki::ocsp::{
    CertId, CertStatus, HashAlg, ResponseStatus, SingleResponse, build_response, error_response,
    issue_responder_cert, issuer_hashes, parse_request,
};
use touchmark_pki::{Certificate, KeyAlgorithm, Signer};

use crate::secrets::serial_number;
use crate::{Authority, AuthorityError, Result, off_runtime};

/// How OCSP answers are made.
#[derive(Debug, Clone)]
pub struct OcspConfig {
    /// nextUpdate of a response is its thisUpdate plus this.
    pub validity: Duration,
    /// A responder key and certificate serve this long before the next one takes over.
    pub rotation: Duration,
}

impl Default for OcspConfig {
    fn default() -> Self {
        Self {
            validity: Duration::from_secs(3600),
            rotation: Duration::from_secs(24 * 3600),
        }
    }
}

/// Which CA a request names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ca {
    /// The device root: its certificates are the product issuing CAs.
    Root,
    /// A product's issuing CA.
    Product(ProductId),
}

impl Ca {
    fn name(&self) -> String {
        match self {
            Self::Root => "root".into(),
            Self::Product(id) => format!("product-{}", id.as_str().to_ascii_lowercase()),
        }
    }
}

/// A responder certificate and key, for one CA and one period.
#[derive(Debug)]
struct Responder {
    period: i64,
    cert: Certificate,
    key: Arc<dyn Signer>,
}

/// How a CertID names an issuer: its hash, and the two issuer hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IssuerKey(HashAlg, Vec<u8>, Vec<u8>);

/// Signed answers, valid while no revocation committed since `generation`.
#[derive(Debug, Default)]
struct Cache {
    generation: u64,
    answers: HashMap<(Ca, Vec<u8>), Arc<Cached>>,
}

#[derive(Debug)]
struct Cached {
    der: Vec<u8>,
    refresh_at: OffsetDateTime,
}

/// Answers OCSP requests for an [`Authority`]'s CAs.
#[derive(Debug)]
pub struct OcspResponder {
    config: OcspConfig,
    /// CAs by their (hash, name hash, key hash).
    cas: RwLock<HashMap<IssuerKey, Ca>>,
    responders: Mutex<HashMap<Ca, Arc<Responder>>>,
    cache: RwLock<Cache>,
}

impl OcspResponder {
    /// A responder with `config`.
    pub fn new(config: OcspConfig) -> Self {
        Self {
            config,
            cas: RwLock::default(),
            responders: Mutex::default(),
            cache: RwLock::default(),
        }
    }

    /// Answers one request (DER): always a well-formed OCSPResponse.
    pub async fn answer(&self, authority: &Authority, request: &[u8]) -> Vec<u8> {
        let request = match parse_request(request) {
            Ok(r) => r,
            Err(_) => return error_response(ResponseStatus::MalformedRequest),
        };
        match self.answer_parsed(authority, request).await {
            Ok(der) => der,
            Err(Answer::Unauthorized) => error_response(ResponseStatus::Unauthorized),
            Err(Answer::Failed(e)) => {
                tracing::error!(error = %e, "cannot answer an OCSP request");
                error_response(ResponseStatus::InternalError)
            }
        }
    }

    async fn answer_parsed(
        &self,
        authority: &Authority,
        request: touchmark_pki::ocsp::OcspRequest,
    ) -> Result<Vec<u8>, Answer> {
        let generation = *authority.revocations.borrow();
        let mut cas = Vec::with_capacity(request.certs.len());
        for id in &request.certs {
            cas.push(self.ca_of(authority, id).await?);
        }
        // One CA per response: a responder certificate speaks for one CA only.
        let ca = cas[0].clone();
        if cas.iter().any(|c| *c != ca) {
            return Err(Answer::Unauthorized);
        }
        let cacheable = request.nonce.is_none() && request.certs.len() == 1;
        let key = (ca.clone(), request.certs[0].serial.clone());
        let now = authority.clock.now();
        if cacheable {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            if cache.generation == generation
                && let Some(hit) = cache.answers.get(&key)
                && now < hit.refresh_at
            {
                return Ok(hit.der.clone());
            }
        }
        let mut responses = Vec::with_capacity(request.certs.len());
        let mut revoked_any = false;
        for id in request.certs {
            let status = self.status(authority, &ca, &id.serial).await?;
            revoked_any |= matches!(status, CertStatus::Revoked { .. });
            responses.push(SingleResponse {
                cert_id: id,
                status,
                this_update: now,
                next_update: now + self.config.validity,
            });
        }
        let responder = self.responder(authority, &ca, now).await?;
        let nonce = request.nonce;
        let der = off_runtime(move || {
            build_response(
                &responder.cert,
                responder.key.as_ref(),
                now,
                &responses,
                nonce.as_deref(),
            )
        })
        .await
        .map_err(Answer::failed)?
        .map_err(Answer::failed)?;
        if cacheable && !revoked_any {
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            if cache.generation != generation {
                *cache = Cache {
                    generation,
                    answers: HashMap::new(),
                };
            }
            cache.answers.insert(
                key,
                Arc::new(Cached {
                    der: der.clone(),
                    refresh_at: now + self.config.validity / 2,
                }),
            );
        }
        Ok(der)
    }

    /// The CA a CertID names, among the device root and the products' issuing CAs.
    async fn ca_of(&self, authority: &Authority, id: &CertId) -> Result<Ca, Answer> {
        let key = IssuerKey(
            id.hash,
            id.issuer_name_hash.clone(),
            id.issuer_key_hash.clone(),
        );
        if let Some(ca) = self.cas.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(ca.clone());
        }
        // Not seen yet: a product created since, or a CA that is not ours.
        let mut found = HashMap::new();
        for hash in [HashAlg::Sha1, HashAlg::Sha256] {
            let root =
                issuer_hashes(authority.device_root.certificate(), hash).map_err(Answer::failed)?;
            found.insert(IssuerKey(hash, root.0, root.1), Ca::Root);
            for product in authority.store.products().await.map_err(Answer::failed)? {
                if !product.ca_installed() {
                    continue;
                }
                let cert =
                    Certificate::from_pem(&product.issuing_ca_pem).map_err(Answer::failed)?;
                let (name, key) = issuer_hashes(&cert, hash).map_err(Answer::failed)?;
                found.insert(IssuerKey(hash, name, key), Ca::Product(product.id));
            }
        }
        let ca = found.get(&key).cloned();
        *self.cas.write().unwrap_or_else(|p| p.into_inner()) = found;
        ca.ok_or(Answer::Unauthorized)
    }

    async fn status(
        &self,
        authority: &Authority,
        ca: &Ca,
        serial: &[u8],
    ) -> Result<CertStatus, Answer> {
        let store = &authority.store;
        match ca {
            Ca::Product(product) => {
                let status = store
                    .certificate_status(product, &hex::encode(serial))
                    .await
                    .map_err(Answer::failed)?;
                Ok(match status {
                    None => CertStatus::Unknown,
                    Some(None) => CertStatus::Good,
                    Some(Some(r)) => CertStatus::Revoked {
                        at: r.at,
                        reason: Some(r.reason.code()),
                    },
                })
            }
            Ca::Root => {
                let revoked = store.revoked_cas().await.map_err(Answer::failed)?;
                for product in store.products().await.map_err(Answer::failed)? {
                    let cert =
                        Certificate::from_pem(&product.issuing_ca_pem).map_err(Answer::failed)?;
                    let own =
                        touchmark_pki::crl::certificate_serial(&cert).map_err(Answer::failed)?;
                    if own == serial {
                        return Ok(match revoked.iter().find(|r| r.product == product.id) {
                            Some(r) => CertStatus::Revoked {
                                at: r.revoked.at,
                                reason: Some(r.revoked.reason.code()),
                            },
                            None => CertStatus::Good,
                        });
                    }
                }
                Ok(CertStatus::Unknown)
            }
        }
    }

    /// The responder of `ca` for the period holding `now`: made (key in the KeyProvider,
    /// certificate from the CA) when the period starts.
    async fn responder(
        &self,
        authority: &Authority,
        ca: &Ca,
        now: OffsetDateTime,
    ) -> Result<Arc<Responder>, Answer> {
        let rotation = i64::try_from(self.config.rotation.as_secs())
            .unwrap_or(i64::MAX)
            .max(60);
        let period = now.unix_timestamp() / rotation;
        if let Some(r) = self
            .responders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ca)
            && r.period == period
        {
            return Ok(Arc::clone(r));
        }
        let issuer = match ca {
            // An offline root signs no responder here: its status comes from its own CRL.
            Ca::Root => Arc::clone(authority.device_root.issuer().ok_or(Answer::Unauthorized)?),
            Ca::Product(id) => {
                let issuer = authority.product_issuer(id).await.map_err(Answer::failed)?;
                let (cert, signer) = issuer.ca();
                Arc::new(
                    touchmark_pki::CaIssuer::new(cert.clone(), Arc::clone(signer))
                        .map_err(Answer::failed)?,
                )
            }
        };
        let keys = Arc::clone(&authority.keys);
        let name = format!("ocsp-{}-{period}", ca.name());
        let start =
            OffsetDateTime::from_unix_timestamp(period * rotation).map_err(Answer::failed)?;
        let not_before = start - time::Duration::hours(1);
        let not_after = start + time::Duration::seconds(rotation) + time::Duration::hours(1);
        let common_name = format!("OCSP responder {}", ca.name());
        let responder = off_runtime(move || -> Result<Responder> {
            let key = if keys.contains(&name) {
                keys.load(&name)
            } else {
                keys.generate(&name, KeyAlgorithm::EcdsaP256)
            }
            .map_err(AuthorityError::internal)?;
            let cert = issue_responder_cert(
                &issuer,
                key.as_ref(),
                &common_name,
                not_before,
                not_after,
                serial_number(),
            )
            .map_err(AuthorityError::internal)?;
            Ok(Responder { period, cert, key })
        })
        .await
        .map_err(Answer::failed)?
        .map_err(Answer::failed)?;
        let responder = Arc::new(responder);
        self.responders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ca.clone(), Arc::clone(&responder));
        Ok(responder)
    }
}

/// Why a request was not answered with statuses.
enum Answer {
    Unauthorized,
    Failed(String),
}

impl Answer {
    fn failed(e: impl std::fmt::Display) -> Self {
        Self::Failed(e.to_string())
    }
}
