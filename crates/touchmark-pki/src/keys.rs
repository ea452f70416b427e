//! The [`KeyProvider`] seam: where private keys live, by name. Keys are generated there and
//! used through [`Signer`]; they are never handed out. The encrypted file store
//! ([`crate::KeyStore`]) is one provider, and a hardware module (PKCS#11) is another, in a crate
//! of its own. [`MemoryKeys`] keeps keys in process memory only, for tests and benchmarks that
//! need no installation on disk.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::agreement::{AgreementAlgorithm, AgreementKey, SoftwareAgreementKey};
use crate::error::PkiError;
use crate::keystore::KeyStore;
use crate::signer::{KeyAlgorithm, Signer, SoftwareSigner};

/// Where an installation's private keys live.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// Makes a new key named `name` inside the provider and returns it as a signer.
    ///
    /// # Errors
    /// [`PkiError::KeyExists`] if the name is taken (keys are never replaced), or the
    /// provider's own failure.
    fn generate(&self, name: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, PkiError>;

    /// The key named `name`.
    ///
    /// # Errors
    /// [`PkiError::KeyNotFound`], or the provider's own failure.
    fn load(&self, name: &str) -> Result<Arc<dyn Signer>, PkiError>;

    /// Whether a key named `name` exists.
    fn contains(&self, name: &str) -> bool;

    /// Where the keys live, for people: `encrypted files in /srv/touchmark/keys`.
    fn describe(&self) -> String;

    /// Where the keys live, as one stable word for the log (`key.generated`'s `store`):
    /// `files`, `memory`, `pkcs11`, or `other`.
    fn store_kind(&self) -> &'static str {
        "other"
    }

    /// Takes in a key made elsewhere (a software key moved out of the encrypted key store by
    /// `touchmark keys migrate`) under `name`, and returns it as this provider's signer.
    ///
    /// # Errors
    /// [`PkiError::KeyExists`], or [`PkiError::KeyModule`] for a provider that cannot import.
    fn import_key(&self, name: &str, key: &SoftwareSigner) -> Result<Arc<dyn Signer>, PkiError> {
        let _ = key;
        Err(PkiError::KeyModule(format!(
            "{} cannot take in a key made elsewhere ({name})",
            self.describe()
        )))
    }

    /// The names of the keys it holds, sorted (`touchmark keys list`).
    ///
    /// # Errors
    /// The provider's failure, or [`PkiError::KeyModule`] for a provider that cannot list.
    fn names(&self) -> Result<Vec<String>, PkiError> {
        Err(PkiError::KeyModule(format!(
            "{} cannot list its keys",
            self.describe()
        )))
    }

    /// Makes a new key agreement (ECDH) key named `name`, such as a firmware release key.
    ///
    /// # Errors
    /// [`PkiError::NotSupported`] for a provider that only signs (the default);
    /// [`PkiError::KeyExists`], or the provider's own failure.
    fn generate_agreement(
        &self,
        name: &str,
        alg: AgreementAlgorithm,
    ) -> Result<Arc<dyn AgreementKey>, PkiError> {
        let _ = (name, alg);
        Err(PkiError::NotSupported("key agreement"))
    }

    /// The key agreement key named `name`.
    ///
    /// # Errors
    /// [`PkiError::NotSupported`] for a provider that only signs (the default);
    /// [`PkiError::KeyNotFound`], or the provider's own failure.
    fn load_agreement(&self, name: &str) -> Result<Arc<dyn AgreementKey>, PkiError> {
        let _ = name;
        Err(PkiError::NotSupported("key agreement"))
    }
}

impl KeyProvider for KeyStore {
    fn generate(&self, name: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, PkiError> {
        KeyStore::generate(self, name, alg)
    }

    fn load(&self, name: &str) -> Result<Arc<dyn Signer>, PkiError> {
        KeyStore::load(self, name)
    }

    fn contains(&self, name: &str) -> bool {
        KeyStore::contains(self, name)
    }

    fn describe(&self) -> String {
        format!("encrypted files in {}", self.dir().display())
    }

    fn store_kind(&self) -> &'static str {
        "files"
    }

    fn names(&self) -> Result<Vec<String>, PkiError> {
        let entries = std::fs::read_dir(self.dir()).map_err(|e| PkiError::Io {
            context: format!("reading {}", self.dir().display()),
            source: e,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".key"))
                    .filter(|n| KeyStore::contains(self, n))
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn generate_agreement(
        &self,
        name: &str,
        alg: AgreementAlgorithm,
    ) -> Result<Arc<dyn AgreementKey>, PkiError> {
        KeyStore::generate_agreement(self, name, alg)
    }

    fn load_agreement(&self, name: &str) -> Result<Arc<dyn AgreementKey>, PkiError> {
        KeyStore::load_agreement(self, name)
    }
}

/// Keys in process memory, gone when the process ends.
#[derive(Default)]
pub struct MemoryKeys {
    held: Mutex<Held>,
}

/// Both kinds of key, under one lock: a name is taken by a key of either kind.
#[derive(Default)]
struct Held {
    signers: HashMap<String, Arc<dyn Signer>>,
    agreement: HashMap<String, Arc<dyn AgreementKey>>,
}

impl Held {
    fn taken(&self, name: &str) -> bool {
        self.signers.contains_key(name) || self.agreement.contains_key(name)
    }
}

/// The key named `name` in `map`.
fn lookup<K: ?Sized>(map: &HashMap<String, Arc<K>>, name: &str) -> Result<Arc<K>, PkiError> {
    map.get(name)
        .cloned()
        .ok_or_else(|| PkiError::KeyNotFound(name.to_owned()))
}

impl MemoryKeys {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for MemoryKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names().unwrap_or_default();
        f.debug_struct("MemoryKeys").field("names", &names).finish()
    }
}

impl KeyProvider for MemoryKeys {
    fn generate(&self, name: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, PkiError> {
        let mut held = self.held();
        if held.taken(name) {
            return Err(PkiError::KeyExists(name.to_owned()));
        }
        let signer: Arc<dyn Signer> = Arc::new(SoftwareSigner::generate(alg)?);
        held.signers.insert(name.to_owned(), Arc::clone(&signer));
        Ok(signer)
    }

    fn load(&self, name: &str) -> Result<Arc<dyn Signer>, PkiError> {
        lookup(&self.held().signers, name)
    }

    fn contains(&self, name: &str) -> bool {
        self.held().signers.contains_key(name)
    }

    fn describe(&self) -> String {
        "process memory (not kept)".into()
    }

    fn store_kind(&self) -> &'static str {
        "memory"
    }

    fn names(&self) -> Result<Vec<String>, PkiError> {
        let mut names: Vec<String> = self.held().signers.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    fn generate_agreement(
        &self,
        name: &str,
        alg: AgreementAlgorithm,
    ) -> Result<Arc<dyn AgreementKey>, PkiError> {
        let mut held = self.held();
        if held.taken(name) {
            return Err(PkiError::KeyExists(name.to_owned()));
        }
        let key: Arc<dyn AgreementKey> = Arc::new(SoftwareAgreementKey::generate(alg)?);
        held.agreement.insert(name.to_owned(), Arc::clone(&key));
        Ok(key)
    }

    fn load_agreement(&self, name: &str) -> Result<Arc<dyn AgreementKey>, PkiError> {
        lookup(&self.held().agreement, name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::keystore::Passphrase;

    /// Both providers keep the same contract: a name holds one key, loaded as generated.
    #[test]
    fn providers_generate_once_and_load_what_they_made() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyStore::create(
            &dir.path().join("keys"),
            &Passphrase::new("a test passphrase".into()).unwrap(),
        )
        .unwrap();
        let providers: [(&str, Box<dyn KeyProvider>); 2] = [
            ("files", Box::new(files)),
            ("memory", Box::new(MemoryKeys::default())),
        ];
        for (what, keys) in providers {
            assert!(!keys.contains("ca"), "{what}");
            assert!(
                matches!(keys.load("ca"), Err(PkiError::KeyNotFound(_))),
                "{what}"
            );
            let made = keys.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
            assert!(keys.contains("ca"), "{what}");
            let loaded = keys.load("ca").unwrap();
            assert_eq!(made.public_key_spki(), loaded.public_key_spki(), "{what}");
            assert!(
                matches!(
                    keys.generate("ca", KeyAlgorithm::Ed25519),
                    Err(PkiError::KeyExists(_))
                ),
                "{what}"
            );
            assert!(!keys.describe().is_empty(), "{what}");
            keys.generate("log", KeyAlgorithm::Ed25519).unwrap();
            assert_eq!(keys.names().unwrap(), ["ca", "log"], "{what}");
        }
    }

    /// Both providers hold key agreement keys: generated once, loaded with the same public key,
    /// and the ECDH of two keys agrees both ways. A provider that only signs says so.
    /// A name is one key's, whatever its kind: neither kind may take the other's name.
    #[test]
    fn memory_keys_share_one_name_space_for_both_kinds() {
        let keys = MemoryKeys::default();
        keys.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
        keys.generate_agreement("release", AgreementAlgorithm::X25519)
            .unwrap();
        assert!(matches!(
            keys.generate_agreement("ca", AgreementAlgorithm::X25519),
            Err(PkiError::KeyExists(_))
        ));
        assert!(matches!(
            keys.generate("release", KeyAlgorithm::EcdsaP256),
            Err(PkiError::KeyExists(_))
        ));
        assert_eq!(keys.names().unwrap(), vec!["ca".to_owned()]);
        assert!(matches!(
            keys.load("release"),
            Err(PkiError::KeyNotFound(_))
        ));
        assert!(keys.load_agreement("release").is_ok());
    }

    #[test]
    fn providers_hold_agreement_keys() {
        let dir = tempfile::tempdir().unwrap();
        let files = KeyStore::create(
            &dir.path().join("keys"),
            &Passphrase::new("a test passphrase".into()).unwrap(),
        )
        .unwrap();
        let providers: [(&str, Box<dyn KeyProvider>); 2] = [
            ("files", Box::new(files)),
            ("memory", Box::new(MemoryKeys::default())),
        ];
        for (what, keys) in providers {
            for alg in [AgreementAlgorithm::X25519, AgreementAlgorithm::EcdhP256] {
                let name = format!("release-{alg}");
                assert!(matches!(
                    keys.load_agreement(&name),
                    Err(PkiError::KeyNotFound(_))
                ));
                let made = keys.generate_agreement(&name, alg).unwrap();
                let loaded = keys.load_agreement(&name).unwrap();
                assert_eq!(made.public_key_spki(), loaded.public_key_spki(), "{what}");
                assert_eq!(loaded.algorithm(), alg);
                let peer = SoftwareAgreementKey::generate(alg).unwrap();
                assert_eq!(
                    *loaded.agree(peer.public_key_raw()).unwrap(),
                    *peer.agree(made.public_key_raw()).unwrap(),
                    "{what} {alg}"
                );
                assert!(matches!(
                    keys.generate_agreement(&name, alg),
                    Err(PkiError::KeyExists(_))
                ));
            }
            // A low-order X25519 point is refused, not turned into an all-zero secret.
            let key = keys.load_agreement("release-x25519").unwrap();
            assert!(key.agree(&[0u8; 32]).is_err(), "{what}");
        }

        #[derive(Debug)]
        struct SignOnly;
        impl KeyProvider for SignOnly {
            fn generate(&self, name: &str, _: KeyAlgorithm) -> Result<Arc<dyn Signer>, PkiError> {
                Err(PkiError::KeyNotFound(name.into()))
            }
            fn load(&self, name: &str) -> Result<Arc<dyn Signer>, PkiError> {
                Err(PkiError::KeyNotFound(name.into()))
            }
            fn contains(&self, _: &str) -> bool {
                false
            }
            fn describe(&self) -> String {
                "nothing".into()
            }
        }
        let err = SignOnly
            .generate_agreement("r", AgreementAlgorithm::X25519)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "key agreement is not supported by this key provider"
        );
        assert!(matches!(
            SignOnly.load_agreement("r"),
            Err(PkiError::NotSupported(_))
        ));
    }
}
