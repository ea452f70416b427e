//! Devices in the field (issue 17): the verdict on a chain a field backend presents. The
//! chain is verified here, the facts about its certificate are read from the store, and
//! `core::policy::field` decides.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;
use time::OffsetDateTime;
use touchmark_core::api::{FieldVerdict, PossessionProof};
use touchmark_core::event::Sha256Hash;
use touchmark_core::policy::field::{
    ChallengeFacts, FieldFacts, IssuedFacts, Possession, check_challenge, judge,
};
use touchmark_core::{ErrorCode, OrderId, ProductId, Serial, TokenId};
use touchmark_pki::Certificate;
use touchmark_pki::device::{
    DeviceCert, MAX_CHAIN_TEXT, decode_chain, parse_device_cert, verify_device_chain,
    verify_possession,
};

use crate::{Authority, AuthorityError, Result};

/// A chain that parsed: its certificates, and what the field needs of the device's own.
#[derive(Debug, Clone)]
pub struct PresentedChain {
    /// The certificates, DER, the device's first.
    pub certs: Vec<Vec<u8>>,
    /// The device's certificate.
    pub device: DeviceCert,
}

impl PresentedChain {
    /// Parses `text` (PEM, or base64 DER).
    ///
    /// # Errors
    /// `payload_too_large` beyond `MAX_CHAIN_TEXT` bytes; `unprocessable` when it is not a
    /// chain of at most `MAX_CHAIN` certificates whose first parses: such input is answered
    /// with an error, never a verdict, and stored nowhere.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_CHAIN_TEXT {
            return Err(AuthorityError::denied(
                ErrorCode::PayloadTooLarge,
                format!("the chain is longer than {MAX_CHAIN_TEXT} bytes"),
            ));
        }
        let invalid = |e: touchmark_pki::device::DeviceChainError| {
            AuthorityError::denied(ErrorCode::Unprocessable, format!("chain: {e}"))
        };
        let certs = decode_chain(text).map_err(invalid)?;
        let first = certs
            .first()
            .ok_or(touchmark_pki::device::DeviceChainError::Empty)
            .map_err(invalid)?;
        let device = parse_device_cert(first).map_err(invalid)?;
        Ok(Self { certs, device })
    }
}

/// Bytes of a challenge's nonce.
pub const NONCE_LEN: usize = 32;

/// The longest DER ECDSA P-256 signature: a SEQUENCE of two 33-byte INTEGERs.
const MAX_SIGNATURE: usize = 72;

/// A challenge given to a field backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The nonce the device signs.
    pub nonce: [u8; NONCE_LEN],
    /// When it stops being accepted.
    pub expires_at: OffsetDateTime,
}

impl Authority {
    /// A new challenge for `token`, accepted once for `ttl`.
    ///
    /// # Errors
    /// When the store cannot record it.
    pub async fn field_challenge(&self, token: &TokenId, ttl: time::Duration) -> Result<Challenge> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let now = self.clock.now();
        let expires_at = touchmark_store::to_millis(now + ttl);
        self.store
            .add_challenge(Sha256Hash::of(&nonce), token, expires_at, now)
            .await?;
        Ok(Challenge { nonce, expires_at })
    }

    /// Checks `proof`, sent by `token` for `chain`: its challenge is used up (whatever the
    /// signature), then its signature is verified with the certificate's key.
    ///
    /// # Errors
    /// `unprocessable` for a proof that is not base64 of the right lengths;
    /// `challenge_invalid` for a challenge unknown, expired, used, or another token's.
    pub async fn field_possession(
        &self,
        token: &TokenId,
        chain: &PresentedChain,
        proof: &PossessionProof,
    ) -> Result<Possession> {
        let nonce = STANDARD
            .decode(proof.nonce.trim())
            .ok()
            .filter(|n| n.len() == NONCE_LEN)
            .ok_or_else(|| {
                AuthorityError::denied(
                    ErrorCode::Unprocessable,
                    format!(
                        "possession.nonce must be the base64 of the challenge's {NONCE_LEN} bytes"
                    ),
                )
            })?;
        let signature = STANDARD
            .decode(proof.signature.trim())
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= MAX_SIGNATURE)
            .ok_or_else(|| {
                AuthorityError::denied(
                    ErrorCode::Unprocessable,
                    "possession.signature must be the base64 of a DER ECDSA P-256 signature",
                )
            })?;
        let found = self
            .store
            .use_challenge(Sha256Hash::of(&nonce))
            .await?
            .map(|c| ChallengeFacts {
                token: c.token,
                expires_at: c.expires_at,
                used_before: c.used_before,
            });
        check_challenge(found.as_ref(), token, self.clock.now()).map_err(AuthorityError::Denied)?;
        let Some(point) = &chain.device.p256_point else {
            return Ok(Possession::Failed(
                "the certificate's key is not P-256".into(),
            ));
        };
        Ok(if verify_possession(point, &nonce, &signature) {
            Possession::Passed
        } else {
            Possession::Failed(
                "the signature over the challenge does not verify with the certificate's key"
                    .into(),
            )
        })
    }

    /// The verdict on `chain`, with `possession` as the caller found it.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn field_verdict(
        &self,
        chain: &PresentedChain,
        possession: Possession,
    ) -> Result<FieldVerdict> {
        let known = self.issuing_cas().await?;
        let outcome = verify_device_chain(
            self.device_root.certificate(),
            &known,
            &chain.certs,
            self.clock.now(),
        )
        .map_err(|e| (e.result(), e.to_string()));
        let issued = if outcome.is_ok() {
            self.issued_facts(&chain.device).await?
        } else {
            None
        };
        Ok(judge(&FieldFacts {
            chain: outcome,
            issued,
            possession,
        }))
    }

    /// Every product's issuing CA certificate: the intermediates a device may leave out.
    async fn issuing_cas(&self) -> Result<Vec<Certificate>> {
        let products = self.store.products().await?;
        products
            .iter()
            .map(|p| Certificate::from_pem(&p.issuing_ca_pem).map_err(AuthorityError::internal))
            .collect()
    }

    /// What the store holds about the certificate `device` is, found by the exact DER's hash:
    /// `None` when this installation never issued it.
    async fn issued_facts(&self, device: &DeviceCert) -> Result<Option<IssuedFacts>> {
        let Some(serial) = device
            .unit_serial
            .as_deref()
            .and_then(|s| Serial::parse(s).ok())
        else {
            return Ok(None);
        };
        let sha256 = hex::encode(device.cert_sha256);
        let Some(entry) = self
            .store
            .unit_certificates(&serial)
            .await?
            .into_iter()
            .find(|e| e.cert_sha256.as_deref() == Some(sha256.as_str()))
        else {
            return Ok(None);
        };
        let product = ProductId::parse(&entry.product).map_err(AuthorityError::internal)?;
        let order = OrderId::parse(&entry.order).map_err(AuthorityError::internal)?;
        let revoked = self
            .store
            .certificate_status(&product, &device.cert_serial_hex)
            .await?
            .flatten();
        let ca_revoked = self
            .store
            .revoked_cas()
            .await?
            .into_iter()
            .find(|c| c.product == product)
            .map(|c| c.revoked);
        let factory = self
            .store
            .order(&order)
            .await?
            .map(|o| o.factory.to_string());
        Ok(Some(IssuedFacts {
            serial: serial.as_str().to_owned(),
            product: entry.product,
            order: entry.order,
            factory,
            station: entry.station,
            issued_at: entry.at,
            revoked,
            ca_revoked,
        }))
    }
}
