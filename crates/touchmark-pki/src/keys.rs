//! The [`KeyProvider`] seam: where private keys live, by name. Keys are generated there and
//! used through [`Signer`]; they are never handed out. The encrypted file store
//! ([`crate::KeyStore`]) is one provider, and a hardware module (PKCS#11) is another, in a crate
//! of its own. [`MemoryKeys`] keeps keys in process memory only, for tests and benchmarks that
//! need no installation on disk.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

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
}

/// Keys in process memory, gone when the process ends.
#[derive(Default)]
pub struct MemoryKeys {
    keys: Mutex<HashMap<String, Arc<dyn Signer>>>,
}

impl fmt::Debug for MemoryKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&String> = keys.keys().collect();
        names.sort();
        f.debug_struct("MemoryKeys").field("names", &names).finish()
    }
}

impl KeyProvider for MemoryKeys {
    fn generate(&self, name: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, PkiError> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.contains_key(name) {
            return Err(PkiError::KeyExists(name.to_owned()));
        }
        let signer: Arc<dyn Signer> = Arc::new(SoftwareSigner::generate(alg)?);
        keys.insert(name.to_owned(), Arc::clone(&signer));
        Ok(signer)
    }

    fn load(&self, name: &str) -> Result<Arc<dyn Signer>, PkiError> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| PkiError::KeyNotFound(name.to_owned()))
    }

    fn contains(&self, name: &str) -> bool {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    fn describe(&self) -> String {
        "process memory (not kept)".into()
    }

    fn store_kind(&self) -> &'static str {
        "memory"
    }

    fn names(&self) -> Result<Vec<String>, PkiError> {
        let mut names: Vec<String> = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        Ok(names)
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
}
