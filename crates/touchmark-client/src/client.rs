//! The client: one method per route of the `/v1` API.

use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use touchmark_core::api::{
    CaCsrBody, CreateFactory, CreateOrder, CreateProduct, CreateStation, CreateToken,
    EnrollRequest, EnrollResponse, ErrorBody, EventEntry, FactoryBody, Health, InstallCa,
    OrderBody, OrderDetail, ProductBody, ProvisionRequest, ProvisionResponse, SetQuota,
    StationBody, StationCreated, TokenCreated, UnitBody,
};

use crate::ErrorCode;

use crate::config::{self, ClientConfig};
use crate::error::ClientError;
use crate::path::segment;

/// The most the client reads of one answer. The largest legitimate answers are long event
/// pages; anything bigger is a broken or hostile server.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The `User-Agent` sent with every request.
const USER_AGENT: &str = concat!("touchmark/", env!("CARGO_PKG_VERSION"));

/// How many times [`Client::provision`] sends a request the server answers `unavailable`.
pub const PROVISION_ATTEMPTS: u32 = 5;

/// A typed client for one Touchmark server.
///
/// Cheap to clone: clones share one pool of kept-alive connections, so a line simulator or a
/// benchmark should make one `Client` and clone it into each task.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// The base URL without a trailing `/`.
    base: String,
    /// `Bearer <token>`, marked sensitive so it never shows in `Debug`.
    bearer: Option<HeaderValue>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .field("bearer", &self.inner.bearer.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Whether a route takes the admin/auditor bearer token.
#[derive(Clone, Copy)]
enum Auth {
    /// Send the token, if the client has one.
    Bearer,
    /// Never send it: the route is public, or authenticates otherwise (mTLS, an enrollment
    /// token in the body), and the token should not travel where it is not needed.
    None,
}

impl Client {
    /// Builds a client from `config`. It does not connect yet.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] when the base URL is not an `https` URL, the root CA PEM holds
    /// no valid certificate, the identity's chain or key does not parse or do not match, or
    /// the token cannot be sent in a header.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let base = config::base_url(&config.base_url)?;
        let tls = config::tls(&config)?;
        let bearer = match &config.token {
            None => None,
            Some(token) => {
                let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                    ClientError::Config("token holds characters not allowed in a header".into())
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            // An API answer is never a redirect; following one could send the request, and
            // its body, somewhere the caller did not choose.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| {
                let mut text = e.to_string();
                crate::error::append_causes(&mut text, std::error::Error::source(&e));
                ClientError::Config(text)
            })?;
        Ok(Client {
            inner: Arc::new(Inner { http, base, bearer }),
        })
    }

    /// The base URL requests go to, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// `GET /healthz`: the server's status, version and log size.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/healthz".into(), Auth::None, None::<&()>)
            .await
    }

    /// `POST /v1/tokens` (admin): creates an API token, returned once.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn create_token(&self, request: &CreateToken) -> Result<TokenCreated, ClientError> {
        self.call(
            Method::POST,
            "/v1/tokens".into(),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `POST /v1/field/challenge` (field token): a nonce for a device to sign, accepted once.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn field_challenge(
        &self,
    ) -> Result<touchmark_core::api::FieldChallenge, ClientError> {
        self.call(
            Method::POST,
            "/v1/field/challenge".into(),
            Auth::Bearer,
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/field/verify` (field token): the verdict on a device's chain.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn field_verify(
        &self,
        request: &touchmark_core::api::FieldVerify,
    ) -> Result<touchmark_core::api::FieldVerdict, ClientError> {
        self.call(
            Method::POST,
            "/v1/field/verify".into(),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// The verdict on `chain` (PEM, or base64 DER); with `key`, the device's key, a proof of
    /// possession made here: a challenge is asked for and signed as `docs/field.md` says.
    ///
    /// # Errors
    ///
    /// [`ClientError::Key`] when the key cannot sign; otherwise any failure.
    pub async fn field_verify_chain(
        &self,
        chain: &str,
        key: Option<&dyn touchmark_pki::Signer>,
    ) -> Result<touchmark_core::api::FieldVerdict, ClientError> {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;
        let possession = match key {
            None => None,
            Some(key) => {
                let challenge = self.field_challenge().await?;
                let nonce = STANDARD.decode(&challenge.nonce).map_err(|e| {
                    ClientError::Decode(format!("the challenge's nonce is not base64: {e}"))
                })?;
                let signature = key
                    .sign(&touchmark_pki::device::possession_message(&nonce))
                    .map_err(|e| ClientError::Key(e.to_string()))?;
                Some(touchmark_core::api::PossessionProof {
                    nonce: challenge.nonce,
                    signature: STANDARD.encode(signature),
                })
            }
        };
        self.field_verify(&touchmark_core::api::FieldVerify {
            chain: chain.to_owned(),
            possession,
        })
        .await
    }

    /// `POST /v1/products` (admin): creates a product and its issuing CA.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn create_product(
        &self,
        request: &CreateProduct,
    ) -> Result<ProductBody, ClientError> {
        self.call(
            Method::POST,
            "/v1/products".into(),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `GET /v1/products`: every product.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn products(&self) -> Result<Vec<ProductBody>, ClientError> {
        self.get("/v1/products".into()).await
    }

    /// `GET /v1/products/{id}`: one product.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn product(&self, id: &str) -> Result<ProductBody, ClientError> {
        self.get(format!("/v1/products/{}", segment("product id", id)?))
            .await
    }

    /// `GET /v1/products/{id}/ca/csr` (admin): a PKCS#10 request (PEM) for the product's
    /// issuing CA, for the offline device root to sign.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn product_ca_csr(&self, id: &str) -> Result<String, ClientError> {
        let body: CaCsrBody = self
            .get(format!(
                "/v1/products/{}/ca/csr",
                segment("product id", id)?
            ))
            .await?;
        Ok(body.csr_pem)
    }

    /// `POST /v1/products/{id}/ca` (admin): installs the product's issuing CA certificate
    /// signed by the offline device root.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure; `ca_key_mismatch`, `ca_profile_invalid`,
    /// `ca_chain_invalid` or `ca_certificate_invalid` for a certificate refused.
    pub async fn install_product_ca(
        &self,
        id: &str,
        request: &InstallCa,
    ) -> Result<ProductBody, ClientError> {
        self.call(
            Method::POST,
            format!("/v1/products/{}/ca", segment("product id", id)?),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `POST /v1/products/{id}/release-keys` (admin): makes a release encryption key.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn create_release_key(
        &self,
        product: &str,
        request: &touchmark_core::api::CreateReleaseKey,
    ) -> Result<touchmark_core::api::ReleaseKeyBody, ClientError> {
        self.call(
            Method::POST,
            format!(
                "/v1/products/{}/release-keys",
                segment("product id", product)?
            ),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `GET /v1/products/{id}/release-keys`: a product's release encryption keys.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn release_keys(
        &self,
        product: &str,
    ) -> Result<Vec<touchmark_core::api::ReleaseKeyBody>, ClientError> {
        self.get(format!(
            "/v1/products/{}/release-keys",
            segment("product id", product)?
        ))
        .await
    }

    /// `POST /v1/products/{id}/firmware-keys` (admin): registers a firmware signing key.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn add_firmware_key(
        &self,
        product: &str,
        request: &touchmark_core::api::AddFirmwareKey,
    ) -> Result<touchmark_core::api::FirmwareKeyBody, ClientError> {
        self.call(
            Method::POST,
            format!(
                "/v1/products/{}/firmware-keys",
                segment("product id", product)?
            ),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `GET /v1/products/{id}/firmware-keys`: a product's firmware signing keys.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn firmware_keys(
        &self,
        product: &str,
    ) -> Result<Vec<touchmark_core::api::FirmwareKeyBody>, ClientError> {
        self.get(format!(
            "/v1/products/{}/firmware-keys",
            segment("product id", product)?
        ))
        .await
    }

    /// `POST /v1/products/{id}/releases` (admin): uploads a release, the image and SBOM files
    /// as they are (sent base64).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure,
    /// a refused image included.
    pub async fn upload_release(
        &self,
        product: &str,
        version: &str,
        image: &[u8],
        sbom: Option<&[u8]>,
    ) -> Result<touchmark_core::api::ReleaseBody, ClientError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let request = touchmark_core::api::UploadRelease {
            version: version.to_owned(),
            image_base64: b64.encode(image),
            sbom_base64: sbom.map(|s| b64.encode(s)),
        };
        self.call(
            Method::POST,
            format!("/v1/products/{}/releases", segment("product id", product)?),
            Auth::Bearer,
            Some(&request),
        )
        .await
    }

    /// `GET /v1/products/{id}/releases`: a product's releases.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn releases(
        &self,
        product: &str,
    ) -> Result<Vec<touchmark_core::api::ReleaseBody>, ClientError> {
        self.get(format!(
            "/v1/products/{}/releases",
            segment("product id", product)?
        ))
        .await
    }

    /// `GET /v1/products/{id}/releases/{release}`: one release.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn release(
        &self,
        product: &str,
        release: &str,
    ) -> Result<touchmark_core::api::ReleaseBody, ClientError> {
        self.get(format!(
            "/v1/products/{}/releases/{}",
            segment("product id", product)?,
            segment("release id", release)?
        ))
        .await
    }

    /// `GET /v1/products/{id}/releases/{release}/sbom`: the release's SBOM, byte for byte as
    /// uploaded.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; `not_found` for a
    /// release without an SBOM; otherwise any failure.
    pub async fn release_sbom(&self, product: &str, release: &str) -> Result<Vec<u8>, ClientError> {
        let path = format!(
            "/v1/products/{}/releases/{}/sbom",
            segment("product id", product)?,
            segment("release id", release)?
        );
        let (_, bytes) = self
            .send(
                Method::GET,
                path,
                Auth::Bearer,
                None::<&()>,
                "application/vnd.cyclonedx+json",
            )
            .await?;
        Ok(bytes)
    }

    /// `POST /v1/orders/{id}/release` (admin): names the release `order`'s units receive, by
    /// version.
    ///
    /// # Errors
    /// The API's refusal (`not_found`, `release_withdrawn`), or a transport error.
    pub async fn set_order_release(
        &self,
        order: &str,
        version: &str,
    ) -> Result<touchmark_core::api::OrderReleaseBody, ClientError> {
        let path = format!("/v1/orders/{}/release", segment("order id", order)?);
        let body = touchmark_core::api::SetOrderRelease {
            release: version.to_owned(),
        };
        self.call(Method::POST, path, Auth::Bearer, Some(&body))
            .await
    }

    /// `POST /v1/products/{id}/releases/{release}/withdraw` (admin): withdraws a release.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn withdraw_release(
        &self,
        product: &str,
        release: &str,
    ) -> Result<touchmark_core::api::ReleaseBody, ClientError> {
        let path = format!(
            "/v1/products/{}/releases/{}/withdraw",
            segment("product id", product)?,
            segment("release id", release)?
        );
        self.call(Method::POST, path, Auth::Bearer, None::<&()>)
            .await
    }

    /// `POST /v1/factories` (admin): creates a factory.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn create_factory(
        &self,
        request: &CreateFactory,
    ) -> Result<FactoryBody, ClientError> {
        self.call(
            Method::POST,
            "/v1/factories".into(),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `GET /v1/factories`: every factory.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn factories(&self) -> Result<Vec<FactoryBody>, ClientError> {
        self.get("/v1/factories".into()).await
    }

    /// `GET /v1/factories/{id}`: one factory.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn factory(&self, id: &str) -> Result<FactoryBody, ClientError> {
        self.get(format!("/v1/factories/{}", segment("factory id", id)?))
            .await
    }

    /// `POST /v1/stations` (admin): creates a station and its one-time enrollment token.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn create_station(
        &self,
        request: &CreateStation,
    ) -> Result<StationCreated, ClientError> {
        self.call(
            Method::POST,
            "/v1/stations".into(),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `GET /v1/stations[?factory=ID]`: every station, or those of one factory.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` factory id; otherwise any
    /// failure.
    pub async fn stations(&self, factory: Option<&str>) -> Result<Vec<StationBody>, ClientError> {
        let path = match factory {
            None => "/v1/stations".to_owned(),
            Some(id) => format!("/v1/stations?factory={}", segment("factory id", id)?),
        };
        self.get(path).await
    }

    /// `GET /v1/stations/{id}`: one station.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn station(&self, id: &str) -> Result<StationBody, ClientError> {
        self.get(format!("/v1/stations/{}", segment("station id", id)?))
            .await
    }

    /// `POST /v1/stations/{id}/revoke` (admin): revokes a station's identity.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn revoke_station(&self, id: &str) -> Result<StationBody, ClientError> {
        let path = format!("/v1/stations/{}/revoke", segment("station id", id)?);
        self.call(Method::POST, path, Auth::Bearer, None::<&()>)
            .await
    }

    /// `POST /v1/revocations/{kind}/{id}` (admin): revokes a unit (`units`), an order
    /// (`orders`), a product's issuing CA (`cas`) or a station (`stations`).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn revoke(
        &self,
        kind: RevocationKind,
        id: &str,
        request: &touchmark_core::api::Revoke,
    ) -> Result<touchmark_core::api::RevocationBody, ClientError> {
        let path = format!("/v1/revocations/{}/{}", kind.segment(), segment("id", id)?);
        self.call(Method::POST, path, Auth::Bearer, Some(request))
            .await
    }

    /// `POST /v1/revocations/units/{serial}/release` (admin): releases a unit's hold.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` serial; otherwise any failure.
    pub async fn release_unit(
        &self,
        serial: &str,
        request: &touchmark_core::api::Release,
    ) -> Result<touchmark_core::api::RevocationBody, ClientError> {
        let path = format!(
            "/v1/revocations/units/{}/release",
            segment("serial", serial)?
        );
        self.call(Method::POST, path, Auth::Bearer, Some(request))
            .await
    }

    /// `POST /v1/revocations/provenance` (admin): revokes every unit one station provisioned in
    /// a span of time.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn revoke_provenance(
        &self,
        request: &touchmark_core::api::RevokeProvenance,
    ) -> Result<touchmark_core::api::RevocationBody, ClientError> {
        self.call(
            Method::POST,
            "/v1/revocations/provenance".into(),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `POST /v1/enroll`: exchanges a one-time enrollment token and a CSR for the station's
    /// certificate. The bearer token is not sent.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        self.call(Method::POST, "/v1/enroll".into(), Auth::None, Some(request))
            .await
    }

    /// `POST /v1/orders` (admin): creates an order.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn create_order(&self, request: &CreateOrder) -> Result<OrderBody, ClientError> {
        self.call(
            Method::POST,
            "/v1/orders".into(),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `GET /v1/orders`: every order.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn orders(&self) -> Result<Vec<OrderBody>, ClientError> {
        self.get("/v1/orders".into()).await
    }

    /// `GET /v1/orders/{id}`: one order with its counts.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn order(&self, id: &str) -> Result<OrderDetail, ClientError> {
        self.get(format!("/v1/orders/{}", segment("order id", id)?))
            .await
    }

    /// `POST /v1/orders/{id}/open` (admin): opens a draft order.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn open_order(&self, id: &str) -> Result<OrderBody, ClientError> {
        self.order_action(id, "open").await
    }

    /// `POST /v1/orders/{id}/close` (admin): closes an order.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn close_order(&self, id: &str) -> Result<OrderBody, ClientError> {
        self.order_action(id, "close").await
    }

    /// `POST /v1/orders/{id}/cancel` (admin): cancels an order.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn cancel_order(&self, id: &str) -> Result<OrderBody, ClientError> {
        self.order_action(id, "cancel").await
    }

    /// `PUT /v1/orders/{id}/quota` (admin): sets an order's quota.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn set_quota(&self, id: &str, quota: u64) -> Result<OrderBody, ClientError> {
        let path = format!("/v1/orders/{}/quota", segment("order id", id)?);
        self.call(Method::PUT, path, Auth::Bearer, Some(&SetQuota { quota }))
            .await
    }

    /// `GET /v1/orders/{id}/units`: the units tested or counted under an order.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` id; otherwise any failure.
    pub async fn order_units(&self, id: &str) -> Result<Vec<UnitBody>, ClientError> {
        self.get(format!("/v1/orders/{}/units", segment("order id", id)?))
            .await
    }

    /// `POST /v1/orders/{order}/units`: provisions one unit. Authenticated by the station's
    /// mTLS identity; the bearer token is not sent.
    ///
    /// A first issuance answers `status: "issued"`, a retry of the same serial and key
    /// `status: "already_issued"` with the same certificate. A refusal is
    /// [`ClientError::Api`], with the refusal's code and the receipt of its log entry.
    ///
    /// While the server answers `unavailable` (its database busy or unreachable; nothing was
    /// done) the request is sent again after the code's retry delay, up to
    /// [`PROVISION_ATTEMPTS`] times in all: issuance is idempotent, so a unit is never issued
    /// twice.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` order id; otherwise any
    /// failure, or the last `unavailable`.
    pub async fn provision(
        &self,
        order: &str,
        request: &ProvisionRequest,
    ) -> Result<ProvisionResponse, ClientError> {
        let path = format!("/v1/orders/{}/units", segment("order id", order)?);
        let mut attempt = 1;
        loop {
            let answer = self
                .call(Method::POST, path.clone(), Auth::None, Some(request))
                .await;
            match answer
                .as_ref()
                .err()
                .and_then(ClientError::code)
                .and_then(ErrorCode::retry_after)
            {
                Some(delay) if attempt < PROVISION_ATTEMPTS => {
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                _ => return answer,
            }
        }
    }

    /// `GET /v1/units/{serial}`: the units with this serial, one per product.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` serial; otherwise any
    /// failure.
    pub async fn unit(&self, serial: &str) -> Result<Vec<UnitBody>, ClientError> {
        self.get(format!("/v1/units/{}", segment("serial", serial)?))
            .await
    }

    /// `GET /v1/units/{serial}/history`: the unit's test attempts, with their steps and
    /// measurements, and its certificate, oldest first.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` serial; otherwise any
    /// failure.
    pub async fn unit_history(
        &self,
        serial: &str,
    ) -> Result<touchmark_core::oversight::UnitHistory, ClientError> {
        self.get(format!("/v1/units/{}/history", segment("serial", serial)?))
            .await
    }

    /// `GET /v1/orders/{order}/report[?from=T&until=T]`: the order's report over a window
    /// (RFC 3339 instants; either end open).
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidArgument`] for an empty, `.` or `..` order id; otherwise any
    /// failure.
    pub async fn order_report(
        &self,
        order: &str,
        from: Option<&str>,
        until: Option<&str>,
    ) -> Result<touchmark_core::oversight::OrderReport, ClientError> {
        let mut path = format!("/v1/orders/{}/report", segment("order id", order)?);
        let mut sep = '?';
        for (key, value) in [("from", from), ("until", until)] {
            if let Some(value) = value {
                path.push_str(&format!("{sep}{key}={}", segment(key, value)?));
                sep = '&';
            }
        }
        self.get(path).await
    }

    /// `GET /v1/alerts[?state=all]`: alerts, newest first; unresolved ones only unless `all`.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn alerts(
        &self,
        all: bool,
    ) -> Result<Vec<touchmark_core::oversight::AlertBody>, ClientError> {
        let query = if all { "?state=all" } else { "" };
        self.get(format!("/v1/alerts{query}")).await
    }

    /// `GET /v1/alerts/{id}`: one alert.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn alert(
        &self,
        id: &str,
    ) -> Result<touchmark_core::oversight::AlertBody, ClientError> {
        self.get(format!("/v1/alerts/{}", segment("alert id", id)?))
            .await
    }

    /// `POST /v1/alerts/{id}/acknowledge` or `.../resolve` (admin): moves an alert.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure; `conflict` when the alert's state does not allow it.
    pub async fn alert_action(
        &self,
        id: &str,
        resolve: bool,
    ) -> Result<touchmark_core::oversight::AlertBody, ClientError> {
        let action = if resolve { "resolve" } else { "acknowledge" };
        let path = format!("/v1/alerts/{}/{action}", segment("alert id", id)?);
        self.call(Method::POST, path, Auth::Bearer, None::<&()>)
            .await
    }

    /// `POST /v1/vulnerability-reports` (public: no token is sent): submits a report, and
    /// answers its tracking id and the secret that reads its status.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure; `rate_limited` (429) past the address's rate.
    pub async fn submit_vulnerability_report(
        &self,
        report: &touchmark_core::api::SubmitReport,
    ) -> Result<touchmark_core::api::ReportReceipt, ClientError> {
        self.call(
            Method::POST,
            "/v1/vulnerability-reports".into(),
            Auth::None,
            Some(report),
        )
        .await
    }

    /// `GET /v1/vulnerability-reports` (admin): the reports, newest first; with `due`, only
    /// those with a CRA deadline approaching or overdue.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn vuln_reports(
        &self,
        due: bool,
    ) -> Result<Vec<touchmark_core::api::ReportBody>, ClientError> {
        let query = if due { "?due=true" } else { "" };
        self.get(format!("/v1/vulnerability-reports{query}")).await
    }

    /// `GET /v1/vulnerability-reports/{id}` (admin): one report.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn vuln_report(
        &self,
        id: &str,
    ) -> Result<touchmark_core::api::ReportBody, ClientError> {
        let path = format!("/v1/vulnerability-reports/{}", segment("report id", id)?);
        self.get(path).await
    }

    /// `GET /v1/vulnerability-reports/{id}/affected` (admin): the units a report affects,
    /// with counts; one page of at most `limit` units (the server's default without it), after
    /// unit `after` (a previous page's `next`).
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn vuln_affected(
        &self,
        id: &str,
        limit: Option<u64>,
        after: Option<&str>,
    ) -> Result<touchmark_core::api::AffectedBody, ClientError> {
        self.get(affected_path(id, "affected", limit, after)?).await
    }

    /// `GET /v1/vulnerability-reports/{id}/affected/units` (admin): a page of the units a
    /// report affects, as [`Client::vuln_affected`] lists them, without the counts.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn vuln_affected_units(
        &self,
        id: &str,
        limit: Option<u64>,
        after: Option<&str>,
    ) -> Result<touchmark_core::api::AffectedUnitsBody, ClientError> {
        self.get(affected_path(id, "affected/units", limit, after)?)
            .await
    }

    /// Every unit a report affects, or the first `at_most`: [`Client::vuln_affected`], then
    /// [`Client::vuln_affected_units`] page after page, by 10,000 (the largest page). The
    /// counts are the first page's; `next` is set only when `at_most` stopped the listing
    /// before its end.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn vuln_affected_all(
        &self,
        id: &str,
        at_most: Option<u64>,
    ) -> Result<touchmark_core::api::AffectedBody, ClientError> {
        const PAGE: u64 = 10_000;
        let wanted = |listed: usize| {
            at_most.map_or(PAGE, |m| {
                m.saturating_sub(u64::try_from(listed).unwrap_or(u64::MAX))
                    .min(PAGE)
            })
        };
        let mut all = self.vuln_affected(id, Some(wanted(0)), None).await?;
        while let Some(after) = all.next.take() {
            let limit = wanted(all.units.len());
            if limit == 0 {
                all.next = Some(after);
                break;
            }
            let page = self
                .vuln_affected_units(id, Some(limit), Some(&after))
                .await?;
            all.units.extend(page.units);
            all.next = page.next;
        }
        Ok(all)
    }

    /// `POST /v1/vulnerability-reports/{id}/{action}` (admin): a change to a report —
    /// `state`, `classification` or `submissions` — with its body.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn vuln_change<B: serde::Serialize + Sync>(
        &self,
        id: &str,
        action: &str,
        body: &B,
    ) -> Result<touchmark_core::api::ReportBody, ClientError> {
        let path = format!(
            "/v1/vulnerability-reports/{}/{action}",
            segment("report id", id)?
        );
        self.call(Method::POST, path, Auth::Bearer, Some(body))
            .await
    }

    /// `POST /v1/vulnerability-reports/{id}/links` (admin): links a report.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn vuln_link(
        &self,
        id: &str,
        request: &touchmark_core::api::LinkReport,
    ) -> Result<touchmark_core::api::LinkBody, ClientError> {
        let path = format!(
            "/v1/vulnerability-reports/{}/links",
            segment("report id", id)?
        );
        self.call(Method::POST, path, Auth::Bearer, Some(request))
            .await
    }

    /// `POST /v1/vulnerability-reports/{id}/advisories` (admin): writes the report's CSAF 2.0
    /// advisory, a draft or (with `publish`) its next revision; returns the document's exact
    /// bytes and whether it was published.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn vuln_advisory(
        &self,
        id: &str,
        request: &touchmark_core::api::WriteAdvisory,
    ) -> Result<(Vec<u8>, bool), ClientError> {
        let path = format!(
            "/v1/vulnerability-reports/{}/advisories",
            segment("report id", id)?
        );
        let (status, bytes) = self
            .send(
                Method::POST,
                path,
                Auth::Bearer,
                Some(request),
                "application/json",
            )
            .await?;
        Ok((bytes, status == reqwest::StatusCode::CREATED))
    }

    /// `POST /v1/webhooks` (admin): registers a webhook for alerts.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn create_webhook(
        &self,
        request: &touchmark_core::oversight::CreateWebhook,
    ) -> Result<touchmark_core::oversight::WebhookBody, ClientError> {
        self.call(
            Method::POST,
            "/v1/webhooks".into(),
            Auth::Bearer,
            Some(request),
        )
        .await
    }

    /// `GET /v1/webhooks` (admin): the webhooks.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn webhooks(
        &self,
    ) -> Result<Vec<touchmark_core::oversight::WebhookBody>, ClientError> {
        self.get("/v1/webhooks".into()).await
    }

    /// `GET /v1/events?start=N&limit=M`: up to `limit` log events from index `start`.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn events(&self, start: u64, limit: u64) -> Result<Vec<EventEntry>, ClientError> {
        self.get(format!("/v1/events?start={start}&limit={limit}"))
            .await
    }

    /// `GET /v1/units/{serial}/receipt`: the unit's `c2sp.org/tlog-proof@v1` receipt.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn unit_receipt(&self, serial: &str) -> Result<String, ClientError> {
        self.get_text(
            format!("/v1/units/{}/receipt", segment("serial", serial)?),
            Auth::Bearer,
        )
        .await
    }

    /// `GET /v1/orders/{order}/units/{serial}/receipt`: a receipt, for the station (mTLS).
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn station_receipt(&self, order: &str, serial: &str) -> Result<String, ClientError> {
        let path = format!(
            "/v1/orders/{}/units/{}/receipt",
            segment("order id", order)?,
            segment("serial", serial)?
        );
        self.get_text(path, Auth::None).await
    }

    /// `GET /log/checkpoint`: the log's latest signed checkpoint.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn checkpoint(&self) -> Result<String, ClientError> {
        self.get_text("/log/checkpoint".into(), Auth::None).await
    }

    /// `GET /openapi.json`: the server's OpenAPI 3 document.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/openapi.json".into()).await
    }

    /// `GET /v1/orders/{order}/units/{serial}/firmware` (station mTLS): the unit's whole image,
    /// its order's release with the key TLV re-wrapped to the unit's own key.
    ///
    /// # Errors
    ///
    /// [`ClientError`] on any failure (`not_found` when the unit received no firmware in the
    /// order, `release_withdrawn`).
    pub async fn unit_firmware(&self, order: &str, serial: &str) -> Result<Vec<u8>, ClientError> {
        let path = format!(
            "/v1/orders/{}/units/{}/firmware",
            segment("order id", order)?,
            segment("serial", serial)?
        );
        let (_, bytes) = self
            .send(
                Method::GET,
                path,
                Auth::None,
                None::<&()>,
                "application/octet-stream",
            )
            .await?;
        Ok(bytes)
    }

    /// The newest release of the unit's product, as the unit's own image, when it is newer than
    /// `current` (the version the unit runs): device mTLS, so this client's identity must be
    /// the unit's device certificate and key. `None` when the unit runs the newest already.
    ///
    /// # Errors
    /// [`ClientError::Api`] with the server's code: `device_not_authorized`, `unit_revoked`,
    /// `not_found` (no release), `encryption_key_invalid` (no key bound at provisioning).
    pub async fn device_latest_firmware(
        &self,
        current: Option<&str>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let path = match current {
            Some(v) => format!(
                "/v1/device/firmware/latest?current={}",
                segment("current version", v)?
            ),
            None => "/v1/device/firmware/latest".to_owned(),
        };
        let (status, bytes) = self
            .send(
                Method::GET,
                path,
                Auth::None,
                None::<&()>,
                "application/octet-stream",
            )
            .await?;
        Ok((status != reqwest::StatusCode::NO_CONTENT).then_some(bytes))
    }

    async fn order_action(&self, id: &str, action: &str) -> Result<OrderBody, ClientError> {
        let path = format!("/v1/orders/{}/{action}", segment("order id", id)?);
        self.call(Method::POST, path, Auth::Bearer, None::<&()>)
            .await
    }

    async fn get<T: DeserializeOwned>(&self, path: String) -> Result<T, ClientError> {
        self.call(Method::GET, path, Auth::Bearer, None::<&()>)
            .await
    }

    /// Sends one request and decodes the JSON answer. `path` starts with `/` and has every
    /// caller-supplied part already encoded.
    async fn call<B, T>(
        &self,
        method: Method,
        path: String,
        auth: Auth,
        body: Option<&B>,
    ) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let (status, bytes) = self
            .send(method, path, auth, body, "application/json")
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Decode(format!("HTTP {}: {e}", status.as_u16())))
    }

    /// Sends a GET whose successful answer is text (a signed note, a receipt).
    async fn get_text(&self, path: String, auth: Auth) -> Result<String, ClientError> {
        let (status, bytes) = self
            .send(Method::GET, path, auth, None::<&()>, "text/plain")
            .await?;
        String::from_utf8(bytes).map_err(|e| {
            ClientError::Decode(format!("HTTP {}: not UTF-8 text: {e}", status.as_u16()))
        })
    }

    /// Sends one request; returns the body of a successful answer, and turns an error answer
    /// into [`ClientError::Api`].
    async fn send<B>(
        &self,
        method: Method,
        path: String,
        auth: Auth,
        body: Option<&B>,
        accept: &'static str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ClientError>
    where
        B: Serialize + ?Sized,
    {
        let url = format!("{}{path}", self.inner.base);
        let mut request = self
            .inner
            .http
            .request(method, url)
            .header(ACCEPT, HeaderValue::from_static(accept));
        if let (Auth::Bearer, Some(bearer)) = (auth, &self.inner.bearer) {
            request = request.header(AUTHORIZATION, bearer.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::transport(&e))?;
        let status = response.status();
        let bytes = read_body(response).await?;

        if status.is_success() {
            Ok((status, bytes))
        } else if status.is_client_error() || status.is_server_error() {
            match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => Err(ClientError::Api {
                    status: status.as_u16(),
                    body,
                }),
                Err(e) => Err(ClientError::Decode(format!(
                    "HTTP {} with a body that is not an error object ({e}): {}",
                    status.as_u16(),
                    snippet(&bytes)
                ))),
            }
        } else {
            Err(ClientError::Decode(format!(
                "unexpected HTTP status {}",
                status.as_u16()
            )))
        }
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes.
async fn read_body(mut response: Response) -> Result<Vec<u8>, ClientError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(ClientError::Decode(format!(
            "answer larger than {MAX_BODY} bytes"
        )));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ClientError::transport(&e))?
    {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err(ClientError::Decode(format!(
                "answer larger than {MAX_BODY} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The start of an unexpected body, for an error message: at most 200 characters, with
/// control characters escaped so a hostile server cannot forge log lines.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// The path of a page of report `id`'s affected units under `what` (`affected` or
/// `affected/units`), with its query.
fn affected_path(
    id: &str,
    what: &str,
    limit: Option<u64>,
    after: Option<&str>,
) -> Result<String, ClientError> {
    let mut query = Vec::new();
    if let Some(l) = limit {
        query.push(format!("limit={l}"));
    }
    if let Some(a) = after {
        query.push(format!("after={}", segment("cursor", a)?));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    Ok(format!(
        "/v1/vulnerability-reports/{}/{what}{query}",
        segment("report id", id)?
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use touchmark_core::ErrorCode;

    use super::*;
    use crate::config::Identity;

    struct Pki {
        ca_pem: String,
        leaf_pem: String,
        leaf_key_pem: String,
        other_key_pem: String,
    }

    fn pki() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["station-1".to_owned()]).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        Pki {
            ca_pem: ca.pem(),
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            other_key_pem: rcgen::KeyPair::generate().unwrap().serialize_pem(),
        }
    }

    fn config(base: &str, ca: &str) -> ClientConfig {
        ClientConfig {
            base_url: base.into(),
            root_ca_pem: ca.into(),
            token: Some("tm_admin_secret".into()),
            identity: None,
            timeout: Duration::from_secs(2),
        }
    }

    fn config_error(config: ClientConfig) -> String {
        match Client::new(config) {
            Err(ClientError::Config(text)) => text,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn builds_with_and_without_identity() {
        let pki = pki();
        let client = Client::new(config("https://localhost:8443/", &pki.ca_pem)).unwrap();
        assert_eq!(client.base_url(), "https://localhost:8443");
        assert!(!format!("{client:?}").contains("tm_admin_secret"));

        let mut with_identity = config("https://localhost:8443", &pki.ca_pem);
        with_identity.identity = Some(Identity::new(&pki.leaf_pem, pki.leaf_key_pem.as_str()));
        Client::new(with_identity).unwrap();
    }

    #[test]
    fn tls_config_offers_h2_and_http11() {
        let pki = pki();
        let tls = config::tls(&config("https://h", &pki.ca_pem)).unwrap();
        assert_eq!(tls.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn config_errors() {
        let pki = pki();
        let text = config_error(config("http://localhost:8443", &pki.ca_pem));
        assert!(text.contains("https"), "{text}");
        config_error(config("not a url", &pki.ca_pem));

        let text = config_error(config("https://h", ""));
        assert!(text.contains("no certificate"), "{text}");
        let text = config_error(config("https://h", "-----BEGIN CERTIFICATE-----\n!!!\n"));
        assert!(text.contains("root CA"), "{text}");
        // A key is not a trust anchor.
        config_error(config("https://h", &pki.leaf_key_pem));
        // Well-formed PEM around bytes that are not a certificate.
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        config_error(config("https://h", junk));

        let mut bad_token = config("https://h", &pki.ca_pem);
        bad_token.token = Some("a\r\nX-Injected: 1".into());
        let text = config_error(bad_token);
        assert!(!text.contains("X-Injected"), "{text}");
    }

    #[test]
    fn identity_errors() {
        let pki = pki();
        let cases = [
            ("no chain", String::new(), pki.leaf_key_pem.clone()),
            ("no key", pki.leaf_pem.clone(), String::new()),
            (
                "garbage key",
                pki.leaf_pem.clone(),
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ),
            ("cert as key", pki.leaf_pem.clone(), pki.leaf_pem.clone()),
            (
                "key of another cert",
                pki.leaf_pem.clone(),
                pki.other_key_pem.clone(),
            ),
        ];
        for (name, chain, key) in cases {
            let mut c = config("https://h", &pki.ca_pem);
            c.identity = Some(Identity::new(chain, key.as_str()));
            let text = config_error(c);
            assert!(!text.contains("PRIVATE KEY"), "{name}: {text}");
        }
    }

    #[tokio::test]
    async fn hostile_ids_are_refused_before_sending() {
        let pki = pki();
        let client = Client::new(config("https://127.0.0.1:1", &pki.ca_pem)).unwrap();
        for id in ["", ".", ".."] {
            let err = client.order(id).await.err();
            assert!(
                matches!(err, Some(ClientError::InvalidArgument(_))),
                "{id:?}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn unreachable_server_is_a_transport_error_with_its_cause() {
        let pki = pki();
        // Bind, note the port and close it again, so nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client =
            Client::new(config(&format!("https://127.0.0.1:{port}"), &pki.ca_pem)).unwrap();
        match client.health().await {
            Err(err @ ClientError::Unreachable { .. }) => {
                let cause = err.cause().unwrap();
                assert!(cause.to_lowercase().contains("refused"), "{cause}");
                assert!(err.to_string().contains("connection refused"), "{err}");
                assert!(
                    err.to_string()
                        .contains(&format!("https://127.0.0.1:{port}")),
                    "{err}"
                );
                assert_eq!(err.local_code(), Some("server_unreachable"));
            }
            other => panic!("expected an unreachable server, got {other:?}"),
        }
    }

    #[test]
    fn snippets_escape_control_characters() {
        assert_eq!(snippet(b"<html>\n\x1b[31m"), "<html>\\n\\u{1b}[31m");
        assert_eq!(snippet(&[b'a'; 300]).chars().count(), 201);
    }

    /// A one-shot HTTPS server on 127.0.0.1 with a certificate for `127.0.0.1` signed by
    /// `ca`, answering every request with `status` and `body` over HTTP/1.1. Returns its URL.
    async fn serve_once(
        ca_params: &rcgen::CertificateParams,
        ca_key: &rcgen::KeyPair,
        status: &str,
        body: &str,
    ) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = params
            .signed_by(&key, &rcgen::Issuer::from_params(ca_params, ca_key))
            .unwrap();
        let key_der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)
        .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
        format!("https://127.0.0.1:{port}")
    }

    fn ca() -> (rcgen::CertificateParams, rcgen::KeyPair, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        (params, key, pem)
    }

    #[tokio::test]
    async fn talks_to_a_server_it_trusts() {
        let (params, key, pem) = ca();
        let health = r#"{"status":"ok","version":"0.1.0","log_size":3}"#;
        let url = serve_once(&params, &key, "200 OK", health).await;
        let got = Client::new(config(&url, &pem))
            .unwrap()
            .health()
            .await
            .unwrap();
        assert_eq!(got.log_size, 3);
    }

    #[tokio::test]
    async fn error_bodies_become_api_errors() {
        let (params, key, pem) = ca();
        let body = r#"{"code":"quota_exhausted","message":"no quota","receipt":{"index":9,"leaf_hash":"00"}}"#;
        let url = serve_once(&params, &key, "409 Conflict", body).await;
        let err = Client::new(config(&url, &pem))
            .unwrap()
            .order("PO-1")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::QuotaExhausted), "{err}");
        assert_eq!(err.status(), Some(409));

        let url = serve_once(&params, &key, "502 Bad Gateway", "<html>\n").await;
        let err = Client::new(config(&url, &pem))
            .unwrap()
            .orders()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::Decode(t) if t.contains("502")),
            "{err}"
        );

        let url = serve_once(&params, &key, "200 OK", "[1,2]").await;
        let err = Client::new(config(&url, &pem))
            .unwrap()
            .health()
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Decode(_)), "{err}");
    }

    #[tokio::test]
    async fn an_untrusted_server_is_a_transport_error_naming_the_tls_cause() {
        let (params, key, _) = ca();
        let (_, _, other_pem) = ca();
        let url = serve_once(&params, &key, "200 OK", "{}").await;
        match Client::new(config(&url, &other_pem))
            .unwrap()
            .health()
            .await
        {
            Err(err @ ClientError::Untrusted { .. }) => {
                let cause = err.cause().unwrap();
                assert!(cause.contains("invalid peer certificate"), "{cause}");
                assert!(
                    err.to_string().contains("not signed by the root CA"),
                    "{err}"
                );
                assert_eq!(err.local_code(), Some("server_untrusted"));
            }
            other => panic!("expected an untrusted server, got {other:?}"),
        }
    }
}

/// What [`Client::revoke`] revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationKind {
    /// A unit's certificate, by serial.
    Unit,
    /// Every certificate of an order, which closes.
    Order,
    /// A product's issuing CA, by product id.
    Ca,
    /// A station's mTLS identity.
    Station,
}

impl RevocationKind {
    fn segment(self) -> &'static str {
        match self {
            Self::Unit => "units",
            Self::Order => "orders",
            Self::Ca => "cas",
            Self::Station => "stations",
        }
    }
}
