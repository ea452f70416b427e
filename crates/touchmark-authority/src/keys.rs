//! Key operations as events: every private key the installation makes is logged
//! (`key.generated`) with its public key's hash and where it lives, so that an auditor knows
//! which key signed what, and from when.

use sha2::{Digest, Sha256};
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_pki::Signer;

use crate::installation::key_names;
use crate::{Authority, AuthorityError, Result};

/// The keys `touchmark init` makes, in the order it makes them.
pub const INSTALLATION_KEYS: [&str; 5] = [
    key_names::ROOT_CA,
    key_names::INFRA_ROOT_CA,
    key_names::INFRA_STATION_CA,
    key_names::INFRA_SERVER_TLS,
    key_names::LOG,
];

impl Authority {
    /// Logs that the key `name`, `signer`'s, was made in the installation's key provider.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn log_key_generated(
        &self,
        actor: Actor,
        name: &str,
        signer: &dyn Signer,
    ) -> Result<()> {
        let event = Event::new(
            self.clock.now(),
            EventBody::KeyGenerated {
                key: name.to_owned(),
                algorithm: signer.algorithm().as_str().to_owned(),
                store: self.keys.store_kind().to_owned(),
                public_key_sha256: Sha256Hash(Sha256::digest(signer.public_key_spki()).into()),
                actor,
            },
        );
        self.store.record_alert(event).await?;
        Ok(())
    }

    /// Logs that the key `name`, `signer`'s, moved from the store `from` into the
    /// installation's key provider.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn log_key_migrated(
        &self,
        actor: Actor,
        name: &str,
        from: &str,
        signer: &dyn Signer,
    ) -> Result<()> {
        let event = Event::new(
            self.clock.now(),
            EventBody::KeyMigrated {
                key: name.to_owned(),
                algorithm: signer.algorithm().as_str().to_owned(),
                from: from.to_owned(),
                to: self.keys.store_kind().to_owned(),
                public_key_sha256: Sha256Hash(Sha256::digest(signer.public_key_spki()).into()),
                actor,
            },
        );
        self.store.record_alert(event).await?;
        Ok(())
    }

    /// Logs the keys a new installation made ([`INSTALLATION_KEYS`], less the device root's
    /// when it is offline), for `touchmark init` once its database is claimed.
    ///
    /// # Errors
    /// A key the provider cannot give, or the store's failure.
    pub async fn log_installation_keys(&self, actor: Actor) -> Result<()> {
        for name in INSTALLATION_KEYS {
            if name == key_names::ROOT_CA && self.device_root.issuer().is_none() {
                continue;
            }
            let signer = self.keys.load(name).map_err(AuthorityError::internal)?;
            self.log_key_generated(actor.clone(), name, signer.as_ref())
                .await?;
        }
        Ok(())
    }
}
