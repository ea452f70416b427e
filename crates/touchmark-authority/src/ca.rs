//! Products' issuing CAs under an offline device root: the request for a product's CA
//! certificate, made with its key in the installation's key provider, and the certificate the
//! root signed elsewhere, checked and installed (`ca.installed`).

use sha2::{Digest, Sha256};
use touchmark_core::ProductId;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::Product;
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_pki::{CaCheckError, Subject};

use crate::installation::key_names;
use crate::{Authority, AuthorityError, Result, off_runtime};

/// The stable code of a refused CA certificate.
fn code_of(e: &CaCheckError) -> ErrorCode {
    match e {
        CaCheckError::KeyMismatch => ErrorCode::CaKeyMismatch,
        CaCheckError::Profile(_) => ErrorCode::CaProfileInvalid,
        CaCheckError::Chain(_) => ErrorCode::CaChainInvalid,
        _ => ErrorCode::CaCertificateInvalid,
    }
}

impl Authority {
    /// The product `id`, or `not_found`.
    pub(crate) async fn existing_product(&self, id: &ProductId) -> Result<Product> {
        self.store.product(id).await?.ok_or_else(|| {
            AuthorityError::denied(ErrorCode::NotFound, format!("product {id} not found"))
        })
    }

    /// A PKCS#10 request (PEM) for product `id`'s issuing CA: subject O the product's
    /// organization and CN its issuing CA name, signed by its key, for the offline device root
    /// to sign.
    ///
    /// # Errors
    /// `not_found` for an unknown product; the key provider's failure.
    pub async fn product_ca_csr(&self, id: &ProductId) -> Result<String> {
        let product = self.existing_product(id).await?;
        let subject = Subject {
            organization: product.organization.clone(),
            common_name: format!(
                "{}{}",
                product.name,
                touchmark_core::field::ISSUING_CA_SUFFIX
            ),
        };
        let (keys, name) = (std::sync::Arc::clone(&self.keys), key_names::product(id));
        let der = off_runtime(move || {
            let key = keys.load(&name)?;
            touchmark_pki::ca_csr(key.as_ref(), &subject)
        })
        .await?
        .map_err(AuthorityError::internal)?;
        Ok(touchmark_pki::pem::encode("CERTIFICATE REQUEST", &der))
    }

    /// Installs `certificate_pem`, signed by the offline device root, as product `id`'s issuing
    /// CA, and logs `ca.installed`. `chain_pem` (may be empty) is the chain the root's operator
    /// handed back: it may hold the device root, and nothing else, for a device's chain carries
    /// its certificate and its product CA's only. Checked before anything is stored: against the
    /// product's key first, then its profile (a CA with keyCertSign and cRLSign, valid now),
    /// then its chain to the device root. Nothing changes when a check fails.
    ///
    /// # Errors
    /// `not_found`; `conflict` when the product has its certificate already; the codes
    /// `ca_certificate_invalid`, `ca_key_mismatch`, `ca_profile_invalid`, `ca_chain_invalid`.
    pub async fn install_product_ca(
        &self,
        actor: Actor,
        id: &ProductId,
        certificate_pem: &str,
        chain_pem: &str,
    ) -> Result<Product> {
        let product = self.existing_product(id).await?;
        if product.ca_installed() {
            return Err(AuthorityError::denied(
                ErrorCode::Conflict,
                format!("product {id} has its issuing CA certificate already"),
            ));
        }
        let name = key_names::product(id);
        let key = self.keys.load(&name).map_err(AuthorityError::internal)?;
        let now = self.clock.now();
        let refuse = |e: CaCheckError| AuthorityError::denied(code_of(&e), e.to_string());
        let cert = touchmark_pki::check_issued_ca(
            certificate_pem,
            "",
            key.public_key_spki(),
            self.device_root.certificate(),
            now,
        )
        .map_err(refuse)?;
        // It must also sign as the product's issuer will: a name that does not re-encode, or
        // a key that does not sign under it, is refused now rather than at the first unit.
        let probe = (cert.clone(), std::sync::Arc::clone(&key));
        off_runtime(move || touchmark_pki::CaIssuer::new(probe.0, probe.1))
            .await?
            .map_err(|e| refuse(CaCheckError::Profile(e.to_string())))?;
        if !chain_pem.trim().is_empty() {
            let chain = touchmark_pki::certs_from_pem(chain_pem)
                .map_err(|e| refuse(CaCheckError::Invalid(format!("the chain: {e}"))))?;
            // A device's chain is its certificate and its product CA's: a relying party that
            // holds the device root alone could not follow an intermediate.
            if chain
                .iter()
                .any(|c| c.der() != self.device_root.certificate().der())
            {
                return Err(refuse(CaCheckError::Chain(
                    "the chain holds a certificate other than the device root: a product CA is \
                     signed by the device root itself"
                        .into(),
                )));
            }
        }
        let pem = cert.pem();
        let event = Event::new(
            now,
            EventBody::CaInstalled {
                product: id.clone(),
                key: name,
                issuing_ca_sha256: Sha256Hash(cert.sha256()),
                public_key_sha256: Sha256Hash(Sha256::digest(key.public_key_spki()).into()),
                actor,
            },
        );
        self.store
            .install_product_ca(id, pem.clone(), event)
            .await?;
        // Its CA's CRL is published from now on.
        self.revocations.send_modify(|n| *n += 1);
        Ok(Product {
            issuing_ca_pem: pem,
            ..product
        })
    }
}
