//! Firmware (design.md §7, `docs/firmware.md`): a product's release encryption keys, made and
//! held by the installation's key provider, and the public keys that sign its images, which
//! the brand owner registers. Each is an event in the log.

use std::sync::Arc;

use touchmark_core::ProductId;
use touchmark_core::code::ErrorCode;
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::firmware::{
    FirmwareKey, NewRelease, Release, ReleaseKey, ReleaseKeyAlgorithm, parse_version,
    version_string,
};
use touchmark_core::policy;
use touchmark_firmware::FirmwareError;
use touchmark_firmware::keys::{Curve, KeyAgreement, PublicKey, SharedSecret};
use touchmark_pki::{AgreementAlgorithm, AgreementKey, PkiError};
use touchmark_store::Rule;

use crate::secrets::random_id;
use crate::{Authority, AuthorityError, Result, off_runtime};

/// The largest SBOM accepted with a release, in bytes.
pub const MAX_SBOM: usize = 4 * 1024 * 1024;

/// A release key of the key provider, seen through the firmware crate's seam: the provider
/// computes the agreement; the key never leaves it.
#[derive(Debug)]
pub(crate) struct ProviderAgreement(pub(crate) Arc<dyn AgreementKey>);

impl KeyAgreement for ProviderAgreement {
    fn curve(&self) -> Curve {
        match self.0.algorithm() {
            AgreementAlgorithm::X25519 => Curve::X25519,
            AgreementAlgorithm::EcdhP256 => Curve::P256,
        }
    }

    fn agree(&self, peer: &[u8]) -> std::result::Result<SharedSecret, FirmwareError> {
        self.0.agree(peer).map_err(|e| match e {
            PkiError::KeyRejected(_) => {
                FirmwareError::EncTlvBadPoint("not a valid point, or a low-order X25519 point")
            }
            other => FirmwareError::Backend(other.to_string()),
        })
    }
}

/// The stable code of a release refused by `touchmark_firmware::import_release`.
fn upload_refusal(e: &FirmwareError) -> AuthorityError {
    let code = match e {
        FirmwareError::TooLarge { .. } => ErrorCode::ImageTooLarge,
        FirmwareError::NotMcubootImage(_) => ErrorCode::NotMcubootImage,
        FirmwareError::NotEncrypted | FirmwareError::NoEncTlv | FirmwareError::BodyNotEncrypted => {
            ErrorCode::NotEncrypted
        }
        FirmwareError::KeyTypeMismatch { .. } => ErrorCode::ReleaseKeyUnknown,
        FirmwareError::EncTlvHmacMismatch => ErrorCode::EncTlvHmacMismatch,
        FirmwareError::HashMismatch => ErrorCode::HashMismatch,
        FirmwareError::SignatureInvalid => ErrorCode::SignatureInvalid,
        FirmwareError::Backend(_) => {
            return AuthorityError::internal(format!("a release key failed: {e}"));
        }
        _ => ErrorCode::ImageMalformed,
    };
    AuthorityError::denied(code, format!("{e} ({})", e.code()))
}

/// A release upload, checked at the edge.
#[derive(Debug)]
pub struct ReleaseUpload {
    /// The version asked for; it must be the image header's.
    pub version: String,
    /// The image as uploaded.
    pub image: Vec<u8>,
    /// The SBOM as uploaded, if any.
    pub sbom: Option<Vec<u8>>,
}

/// The largest public key PEM accepted when a firmware signing key is registered.
pub const MAX_KEY_PEM: usize = 4096;

fn agreement_algorithm(algorithm: ReleaseKeyAlgorithm) -> AgreementAlgorithm {
    match algorithm {
        ReleaseKeyAlgorithm::X25519 => AgreementAlgorithm::X25519,
        ReleaseKeyAlgorithm::Ec256 => AgreementAlgorithm::EcdhP256,
    }
}

impl Authority {
    /// Makes a release encryption key for `product` in the installation's key provider (where
    /// it stays, encrypted at rest or inside a token), and stores its public half with its
    /// `release_key.created` event. A product may have several (rotation).
    ///
    /// # Errors
    /// `not_found` for an unknown product; `conflict` when the key provider cannot make key
    /// agreement keys (the PKCS#11 provider does not yet); nothing is stored or logged then.
    pub async fn create_release_key(
        &self,
        actor: Actor,
        product: &ProductId,
        algorithm: ReleaseKeyAlgorithm,
    ) -> Result<ReleaseKey> {
        self.existing_product(product).await?;
        let id = random_id("rk-");
        let name = ReleaseKey::key_name_of(&id);
        let keys = Arc::clone(&self.keys);
        let key =
            off_runtime(move || keys.generate_agreement(&name, agreement_algorithm(algorithm)))
                .await?
                .map_err(|e| match e {
                    PkiError::NotSupported(what) => AuthorityError::denied(
                        ErrorCode::Conflict,
                        format!(
                            "this installation's key provider ({}) cannot make {what} keys, \
                             which release keys are: they need the encrypted key store for now",
                            self.keys.store_kind()
                        ),
                    ),
                    other => AuthorityError::internal(other),
                })?;
        let spki = key.public_key_spki();
        let now = self.clock.now();
        let release_key = ReleaseKey {
            id: id.clone(),
            product: product.clone(),
            algorithm,
            public_key_pem: touchmark_firmware::keys::pem_encode(spki, "PUBLIC KEY"),
            public_key_sha256: Sha256Hash::of(spki),
            created_at: now,
        };
        let event = Event::new(
            now,
            EventBody::ReleaseKeyCreated {
                product: product.clone(),
                release_key: id,
                algorithm: algorithm.as_str().to_owned(),
                store: self.keys.store_kind().to_owned(),
                public_key_sha256: release_key.public_key_sha256,
                actor,
            },
        );
        self.store
            .create_release_key(release_key.clone(), event)
            .await?;
        Ok(release_key)
    }

    /// A product's release keys, oldest first.
    ///
    /// # Errors
    /// `not_found` for an unknown product.
    pub async fn release_keys(&self, product: &ProductId) -> Result<Vec<ReleaseKey>> {
        self.existing_product(product).await?;
        Ok(self.store.release_keys(product).await?)
    }

    /// Registers a public key that signs `product`'s images (ECDSA P-256 or Ed25519, a
    /// `PUBLIC KEY` PEM), with its `firmware_key.added` event.
    ///
    /// # Errors
    /// `not_found` for an unknown product; `unprocessable` for a PEM that is not a P-256 or
    /// Ed25519 public key; `conflict` if the product has this key already.
    pub async fn add_firmware_key(
        &self,
        actor: Actor,
        product: &ProductId,
        public_key_pem: &str,
    ) -> Result<FirmwareKey> {
        self.existing_product(product).await?;
        if public_key_pem.len() > MAX_KEY_PEM {
            return Err(AuthorityError::denied(
                ErrorCode::Unprocessable,
                format!("the public key PEM is longer than {MAX_KEY_PEM} bytes"),
            ));
        }
        let key = PublicKey::from_pem(public_key_pem).map_err(|e| {
            AuthorityError::denied(
                ErrorCode::Unprocessable,
                format!("not a firmware signing public key: {e}"),
            )
        })?;
        let algorithm = match key {
            PublicKey::P256(_) => "p256",
            PublicKey::Ed25519(_) => "ed25519",
            PublicKey::X25519(_) => {
                return Err(AuthorityError::denied(
                    ErrorCode::Unprocessable,
                    "an X25519 key cannot sign: a firmware signing key is ECDSA P-256 or Ed25519",
                ));
            }
        };
        let now = self.clock.now();
        let firmware_key = FirmwareKey {
            product: product.clone(),
            key_id: Sha256Hash::of(&key.spki_der()),
            algorithm: algorithm.to_owned(),
            public_key_pem: key.to_pem(),
            created_at: now,
        };
        let event = Event::new(
            now,
            EventBody::FirmwareKeyAdded {
                product: product.clone(),
                key_id: firmware_key.key_id,
                algorithm: algorithm.to_owned(),
                actor,
            },
        );
        self.store
            .add_firmware_key(firmware_key.clone(), event)
            .await?;
        Ok(firmware_key)
    }

    /// A product's firmware signing keys, oldest first.
    ///
    /// # Errors
    /// `not_found` for an unknown product.
    pub async fn firmware_keys(&self, product: &ProductId) -> Result<Vec<FirmwareKey>> {
        self.existing_product(product).await?;
        Ok(self.store.firmware_keys(product).await?)
    }
}

impl Authority {
    /// Loads the product's release keys from the key provider, with their ids.
    async fn release_agreements(
        &self,
        product: &ProductId,
    ) -> Result<Vec<(String, Arc<dyn AgreementKey>)>> {
        let stored = self.store.release_keys(product).await?;
        let keys = Arc::clone(&self.keys);
        off_runtime(move || {
            stored
                .iter()
                .map(|k| Ok((k.id.clone(), keys.load_agreement(&k.key_name())?)))
                .collect::<std::result::Result<Vec<_>, PkiError>>()
        })
        .await?
        .map_err(AuthorityError::internal)
    }

    /// Imports a release of `product`: the MCUboot image must be encrypted to one of the
    /// product's release keys, its hash TLV must match the decrypted image, and a registered
    /// signing key must verify it (`docs/firmware.md`). An SBOM must be a CycloneDX 1.6 JSON
    /// BOM valid against its schema and, if it gives the SHA-256 of the component it
    /// describes, name the image's (`crate::sbom::check`). The release is stored as uploaded,
    /// with its SBOM and the SBOM's components, and logged as `release.created`. The plaintext
    /// and the content key stay in memory and are dropped when the checks end.
    ///
    /// # Errors
    /// `not_found` for an unknown product; the image's refusal code (`image_too_large`,
    /// `not_mcuboot_image`, `image_malformed`, `not_encrypted`, `release_key_unknown`,
    /// `enc_tlv_hmac_mismatch`, `hash_mismatch`, `signature_invalid`); `sbom_invalid` for an
    /// SBOM refused, with the validator's messages; `unprocessable` for a version that is not
    /// the header's or an SBOM over the limit; `conflict` for a version the product has
    /// already. Nothing is stored or logged then.
    pub async fn upload_release(
        &self,
        actor: Actor,
        product: &ProductId,
        upload: ReleaseUpload,
    ) -> Result<Release> {
        self.existing_product(product).await?;
        let asked = parse_version(&upload.version).ok_or_else(|| {
            AuthorityError::denied(
                ErrorCode::Unprocessable,
                format!(
                    "version `{}` is not major.minor.revision[+build] within MCUboot's widths",
                    upload.version.escape_debug()
                ),
            )
        })?;
        if upload.sbom.as_ref().is_some_and(|s| s.len() > MAX_SBOM) {
            return Err(AuthorityError::denied(
                ErrorCode::Unprocessable,
                format!("the SBOM is larger than {MAX_SBOM} bytes"),
            ));
        }
        let limits = self.firmware_limits;
        if u64::try_from(upload.image.len()).unwrap_or(u64::MAX) > limits.max_image_size {
            return Err(upload_refusal(&FirmwareError::TooLarge {
                size: u64::try_from(upload.image.len()).unwrap_or(u64::MAX),
                limit: limits.max_image_size,
            }));
        }
        let release_keys = self.release_agreements(product).await?;
        let signing: Vec<(Sha256Hash, PublicKey)> = self
            .store
            .firmware_keys(product)
            .await?
            .into_iter()
            .map(|k| {
                PublicKey::from_pem(&k.public_key_pem)
                    .map(|p| (k.key_id, p))
                    .map_err(AuthorityError::internal)
            })
            .collect::<Result<_>>()?;
        let image = Arc::new(upload.image);
        let checked = Arc::clone(&image);
        let signing_keys: Vec<PublicKey> = signing.iter().map(|(_, k)| k.clone()).collect();
        let agreements: Vec<ProviderAgreement> = release_keys
            .iter()
            .map(|(_, k)| ProviderAgreement(Arc::clone(k)))
            .collect();
        let info = off_runtime(move || {
            let seams: Vec<&dyn KeyAgreement> =
                agreements.iter().map(|a| a as &dyn KeyAgreement).collect();
            // The content key is dropped (and zeroed) here: only what is public is kept.
            touchmark_firmware::import_release(&checked, &seams, &signing_keys, limits)
                .map(|imported| imported.info)
        })
        .await?
        .map_err(|e| upload_refusal(&e))?;
        let header = info.layout.header.version;
        if header != asked {
            return Err(AuthorityError::denied(
                ErrorCode::Unprocessable,
                format!(
                    "version {} is not the image header's, {}",
                    version_string(asked),
                    version_string(header)
                ),
            ));
        }
        let (Some((signing_key, _)), Some((release_key, _))) = (
            signing.get(info.signing_key),
            release_keys.get(info.release_key),
        ) else {
            return Err(AuthorityError::internal(
                "the import named a key it was not given",
            ));
        };
        let image_sha256 = Sha256Hash(info.image_sha256);
        let components = match upload.sbom.clone() {
            None => Vec::new(),
            // Schema validation walks the whole document: off the async runtime too.
            Some(sbom) => off_runtime(move || crate::sbom::check(&sbom, &image_sha256)).await??,
        };
        let image = Arc::try_unwrap(image).unwrap_or_else(|shared| shared.as_ref().clone());
        let now = self.clock.now();
        let release = Release {
            id: random_id("rel-"),
            product: product.clone(),
            version: version_string(header),
            image_sha256,
            image_size: u64::try_from(image.len()).unwrap_or(u64::MAX),
            signing_key: *signing_key,
            release_key: release_key.clone(),
            plaintext_hash: hex::encode(&info.plaintext_hash),
            sbom_sha256: upload.sbom.as_deref().map(Sha256Hash::of),
            created_at: now,
            withdrawn_at: None,
        };
        let event = Event::new(
            now,
            EventBody::ReleaseCreated {
                product: product.clone(),
                release: release.id.clone(),
                version: release.version.clone(),
                image_sha256: release.image_sha256,
                size: release.image_size,
                signing_key: release.signing_key,
                release_key: release.release_key.clone(),
                sbom_sha256: release.sbom_sha256,
                actor,
            },
        );
        self.store
            .create_release(
                NewRelease {
                    release: release.clone(),
                    image,
                    sbom: upload.sbom,
                    components,
                },
                event,
            )
            .await?;
        Ok(release)
    }

    /// A product's releases, oldest first, withdrawn ones included.
    ///
    /// # Errors
    /// `not_found` for an unknown product.
    pub async fn releases(&self, product: &ProductId) -> Result<Vec<Release>> {
        self.existing_product(product).await?;
        Ok(self.store.releases(product).await?)
    }

    /// One release of `product`.
    ///
    /// # Errors
    /// `not_found` for an unknown product, or a release that is not the product's.
    pub async fn release(&self, product: &ProductId, id: &str) -> Result<Release> {
        self.existing_product(product).await?;
        match self.store.release(id).await? {
            Some(r) if &r.product == product => Ok(r),
            _ => Err(AuthorityError::denied(
                ErrorCode::NotFound,
                format!("release {id} of product {product} not found"),
            )),
        }
    }

    /// The SBOM of one release of `product`, as uploaded (its SHA-256 is the release's
    /// `sbom_sha256`).
    ///
    /// # Errors
    /// `not_found` for an unknown product, a release that is not the product's, or one
    /// uploaded without an SBOM.
    pub async fn release_sbom(&self, product: &ProductId, id: &str) -> Result<Vec<u8>> {
        let release = self.release(product, id).await?;
        self.store.release_sbom(&release.id).await?.ok_or_else(|| {
            AuthorityError::denied(
                ErrorCode::NotFound,
                format!("release {id} of product {product} has no SBOM"),
            )
        })
    }

    /// Withdraws a release: it stays stored and listed, logged as `release.withdrawn`.
    ///
    /// # Errors
    /// `not_found`; `conflict` when it is withdrawn already.
    pub async fn withdraw_release(
        &self,
        actor: Actor,
        product: &ProductId,
        id: &str,
    ) -> Result<Release> {
        self.release(product, id).await?;
        let at = self.clock.now();
        let rule =
            Rule::new(move |release: &Release| policy::firmware::withdraw(release, actor, at));
        Ok(self.store.update_release(id, rule).await?)
    }
}
