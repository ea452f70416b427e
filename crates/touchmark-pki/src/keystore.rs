//! Software private keys encrypted at rest under a passphrase (Argon2id + AES-256-GCM).
//!
//! Layout of a key store directory (mode 0700):
//! - `keystore.json`: the KDF parameters (Argon2id, random 16-byte salt) and a check value, so a
//!   wrong passphrase is reported as such instead of as a corrupt key;
//! - `<name>.key` (mode 0600): `"TMK1" || algorithm byte || 12-byte nonce || AES-256-GCM(PKCS#8)`,
//!   with the key name and algorithm as associated data, so files cannot be renamed or swapped.
//!
//! The key-encryption key is derived once, when the store is opened, and kept in memory.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::PkiError;
use crate::signer::{KeyAlgorithm, Signer, SoftwareSigner};

const META_FILE: &str = "keystore.json";
const FORMAT: &str = "touchmark-keystore-v1";
const KEY_MAGIC: &[u8; 4] = b"TMK1";
const CHECK_PLAINTEXT: &[u8] = b"touchmark key store passphrase check";
const SALT_LEN: usize = 16;
/// Key files are a few hundred bytes; anything much larger is not ours.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Argon2id cost: 19 MiB, 2 passes, 1 lane (the OWASP minimum recommendation).
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// A passphrase that protects a [`KeyStore`]. Wiped on drop; never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase.
    ///
    /// # Errors
    /// [`PkiError::EmptyPassphrase`] if it is empty.
    pub fn new(passphrase: String) -> Result<Self, PkiError> {
        let passphrase = Zeroizing::new(passphrase);
        if passphrase.is_empty() {
            return Err(PkiError::EmptyPassphrase);
        }
        Ok(Passphrase(passphrase))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// The contents of `keystore.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    format: String,
    kdf: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    /// Base64.
    salt: String,
    /// Base64 of nonce || AES-256-GCM(CHECK_PLAINTEXT).
    check: String,
}

/// A directory of passphrase-encrypted software keys.
pub struct KeyStore {
    dir: PathBuf,
    kek: LessSafeKey,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], PkiError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| PkiError::Random)?;
    Ok(out)
}

fn derive_kek(
    passphrase: &Passphrase,
    salt: &[u8],
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
) -> Result<LessSafeKey, PkiError> {
    let params = argon2::Params::new(m_cost_kib, t_cost, p_cost, Some(32))
        .map_err(|e| PkiError::KeyStoreCorrupt(format!("Argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut kek = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, kek.as_mut())
        .map_err(|e| PkiError::KeyStoreCorrupt(format!("Argon2: {e}")))?;
    let key = UnboundKey::new(&AES_256_GCM, kek.as_ref())
        .map_err(|_| PkiError::KeyStoreCorrupt("bad key length".into()))?;
    Ok(LessSafeKey::new(key))
}

/// Seals `plaintext`, returning nonce || ciphertext || tag.
fn seal(kek: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, PkiError> {
    let nonce = random_bytes::<NONCE_LEN>()?;
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    buf.extend_from_slice(&nonce);
    let mut body = Zeroizing::new(plaintext.to_vec());
    kek.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut *body,
    )
    .map_err(|_| PkiError::SigningFailed)?;
    buf.extend_from_slice(&body);
    Ok(buf)
}

/// Opens nonce || ciphertext || tag; `None` if authentication fails.
fn open(kek: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = kek
        .open_in_place(nonce, Aad::from(aad), &mut buf[..])
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

fn check_aad() -> Vec<u8> {
    let mut aad = FORMAT.as_bytes().to_vec();
    aad.extend_from_slice(b"\0check");
    aad
}

fn key_aad(name: &str, alg: KeyAlgorithm) -> Vec<u8> {
    let mut aad = FORMAT.as_bytes().to_vec();
    aad.extend_from_slice(b"\0key\0");
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(alg.as_str().as_bytes());
    aad
}

fn alg_byte(alg: KeyAlgorithm) -> u8 {
    match alg {
        KeyAlgorithm::EcdsaP256 => 1,
        KeyAlgorithm::Ed25519 => 2,
    }
}

fn alg_from_byte(b: u8) -> Option<KeyAlgorithm> {
    match b {
        1 => Some(KeyAlgorithm::EcdsaP256),
        2 => Some(KeyAlgorithm::Ed25519),
        _ => None,
    }
}

/// Checks a key name against `[a-z0-9][a-z0-9._-]{0,63}`.
fn check_name(name: &str) -> Result<(), PkiError> {
    let bytes = name.as_bytes();
    let ok = matches!(bytes.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.len() <= 64
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidKeyName(name.to_owned()))
    }
}

/// Creates `dir` (and its parents) readable by its owner only (0700 on Unix), and makes it so
/// if it existed with looser permissions: for a directory that holds keys or secrets.
///
/// # Errors
/// The I/O error.
#[cfg(unix)]
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // The directory may have existed with looser permissions.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Creates `dir` and its parents (no permission model to apply here).
///
/// # Errors
/// The I/O error.
#[cfg(not(unix))]
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// Creates the new file `path`, readable and writable by its owner only (0600 on Unix), for a
/// key or a secret. Refuses to open a file that exists already.
///
/// # Errors
/// The I/O error; [`std::io::ErrorKind::AlreadyExists`] when `path` exists.
pub fn create_private_file(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Writes `contents` to `dir/name` (mode 0600) atomically, refusing to replace an existing file.
///
/// The bytes go to a temporary file, are synced, and are then hard-linked into place: unlike a
/// rename, a link fails if the target exists, so two writers cannot overwrite each other.
/// Returns `Ok(false)` if the target already exists.
fn write_new_file(dir: &Path, name: &str, contents: &[u8]) -> Result<bool, PkiError> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(random_bytes::<8>()?)));
    let result = (|| {
        let mut file = create_private_file(&tmp)
            .map_err(|e| PkiError::io(format!("creating {}", tmp.display()), e))?;
        file.write_all(contents)
            .and_then(|()| file.sync_all())
            .map_err(|e| PkiError::io(format!("writing {}", tmp.display()), e))?;
        match fs::hard_link(&tmp, &target) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(PkiError::io(format!("creating {}", target.display()), e)),
        }
    })();
    // Best effort: a leftover temporary file holds only ciphertext.
    let _ = fs::remove_file(&tmp);
    if let Ok(true) = result
        && let Ok(d) = fs::File::open(dir)
    {
        // Makes the new directory entry durable; failure to sync a directory is not fatal.
        let _ = d.sync_all();
    }
    result
}

impl KeyStore {
    /// Creates a key store in `dir` (created with mode 0700 if needed).
    ///
    /// Writes the KDF parameters (Argon2id, random 16-byte salt) and a check value, so a wrong
    /// passphrase is detected on [`KeyStore::open`].
    ///
    /// # Errors
    /// [`PkiError::KeyStoreExists`] if `dir` already holds a key store; [`PkiError::Io`].
    pub fn create(dir: &Path, passphrase: &Passphrase) -> Result<Self, PkiError> {
        create_private_dir(dir)
            .map_err(|e| PkiError::io(format!("creating {}", dir.display()), e))?;
        if dir.join(META_FILE).exists() {
            return Err(PkiError::KeyStoreExists(dir.to_owned()));
        }
        let salt = random_bytes::<SALT_LEN>()?;
        let kek = derive_kek(passphrase, &salt, M_COST_KIB, T_COST, P_COST)?;
        let check = seal(&kek, &check_aad(), CHECK_PLAINTEXT)?;
        let meta = Meta {
            format: FORMAT.into(),
            kdf: "argon2id".into(),
            m_cost_kib: M_COST_KIB,
            t_cost: T_COST,
            p_cost: P_COST,
            salt: STANDARD.encode(salt),
            check: STANDARD.encode(check),
        };
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| PkiError::KeyStoreCorrupt(e.to_string()))?;
        if !write_new_file(dir, META_FILE, &json)? {
            return Err(PkiError::KeyStoreExists(dir.to_owned()));
        }
        Ok(KeyStore {
            dir: dir.to_owned(),
            kek,
        })
    }

    /// Opens an existing key store, deriving the key-encryption key from `passphrase`.
    ///
    /// # Errors
    /// [`PkiError::KeyStoreMissing`] if no key store was created in `dir`;
    /// [`PkiError::WrongPassphrase`] if the check value does not open (this includes tampered KDF
    /// parameters); [`PkiError::KeyStoreCorrupt`] if the metadata is malformed.
    pub fn open(dir: &Path, passphrase: &Passphrase) -> Result<Self, PkiError> {
        let path = dir.join(META_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PkiError::KeyStoreMissing(dir.to_owned()));
            }
            Err(e) => return Err(PkiError::io(format!("reading {}", path.display()), e)),
        };
        let meta: Meta =
            serde_json::from_slice(&bytes).map_err(|e| PkiError::KeyStoreCorrupt(e.to_string()))?;
        if meta.format != FORMAT || meta.kdf != "argon2id" {
            return Err(PkiError::KeyStoreCorrupt(format!(
                "unsupported format {:?} / KDF {:?}",
                meta.format, meta.kdf
            )));
        }
        // Bounds keep a modified file from making open() take minutes or gigabytes.
        if !(8 * 1024..=1024 * 1024).contains(&meta.m_cost_kib)
            || !(1..=10).contains(&meta.t_cost)
            || !(1..=8).contains(&meta.p_cost)
        {
            return Err(PkiError::KeyStoreCorrupt(
                "Argon2 parameters out of range".into(),
            ));
        }
        let salt = STANDARD
            .decode(&meta.salt)
            .map_err(|_| PkiError::KeyStoreCorrupt("salt is not base64".into()))?;
        if salt.len() < SALT_LEN {
            return Err(PkiError::KeyStoreCorrupt("salt is too short".into()));
        }
        let check = STANDARD
            .decode(&meta.check)
            .map_err(|_| PkiError::KeyStoreCorrupt("check value is not base64".into()))?;
        let kek = derive_kek(passphrase, &salt, meta.m_cost_kib, meta.t_cost, meta.p_cost)?;
        match open(&kek, &check_aad(), &check) {
            Some(p) if p.as_slice() == CHECK_PLAINTEXT => Ok(KeyStore {
                dir: dir.to_owned(),
                kek,
            }),
            _ => Err(PkiError::WrongPassphrase),
        }
    }

    /// The key store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    /// Generates a new key, stores it encrypted under `name`, and returns it as a signer.
    ///
    /// # Errors
    /// [`PkiError::InvalidKeyName`]; [`PkiError::KeyExists`] (keys are never overwritten); [`PkiError::Io`].
    pub fn generate(&self, name: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, PkiError> {
        check_name(name)?;
        if self.contains(name) {
            return Err(PkiError::KeyExists(name.to_owned()));
        }
        let signer = SoftwareSigner::generate(alg)?;
        self.import(name, &signer)?;
        Ok(Arc::new(signer))
    }

    /// Stores an existing key encrypted under `name`.
    ///
    /// # Errors
    /// [`PkiError::InvalidKeyName`]; [`PkiError::KeyExists`]; [`PkiError::Io`].
    pub fn import(&self, name: &str, signer: &SoftwareSigner) -> Result<(), PkiError> {
        check_name(name)?;
        let alg = signer.algorithm();
        let pkcs8 = signer.pkcs8_der();
        if pkcs8.is_empty() {
            return Err(PkiError::KeyRejected("key could not be serialised".into()));
        }
        let sealed = seal(&self.kek, &key_aad(name, alg), &pkcs8)?;
        let mut file = Vec::with_capacity(KEY_MAGIC.len() + 1 + sealed.len());
        file.extend_from_slice(KEY_MAGIC);
        file.push(alg_byte(alg));
        file.extend_from_slice(&sealed);
        if write_new_file(&self.dir, &format!("{name}.key"), &file)? {
            Ok(())
        } else {
            Err(PkiError::KeyExists(name.to_owned()))
        }
    }

    /// Loads and decrypts the key stored under `name`.
    ///
    /// # Errors
    /// [`PkiError::InvalidKeyName`]; [`PkiError::KeyNotFound`]; [`PkiError::KeyFileCorrupt`] if the
    /// file was modified, truncated, renamed or swapped; [`PkiError::Io`].
    pub fn load(&self, name: &str) -> Result<Arc<dyn Signer>, PkiError> {
        Ok(Arc::new(self.load_software(name)?))
    }

    /// [`KeyStore::load`], as the software key itself: for moving it into another provider
    /// (`touchmark keys migrate`).
    ///
    /// # Errors
    /// As [`KeyStore::load`].
    pub fn load_software(&self, name: &str) -> Result<SoftwareSigner, PkiError> {
        check_name(name)?;
        let path = self.key_path(name);
        let corrupt = || PkiError::KeyFileCorrupt(name.to_owned());
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PkiError::KeyNotFound(name.to_owned()));
            }
            Err(e) => return Err(PkiError::io(format!("reading {}", path.display()), e)),
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_KEY_FILE + 1), &mut bytes)
            .map_err(|e| PkiError::io(format!("reading {}", path.display()), e))?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(corrupt());
        }
        let rest = bytes
            .strip_prefix(KEY_MAGIC.as_slice())
            .ok_or_else(corrupt)?;
        let (&alg, sealed) = rest.split_first().ok_or_else(corrupt)?;
        let alg = alg_from_byte(alg).ok_or_else(corrupt)?;
        let pkcs8 = open(&self.kek, &key_aad(name, alg), sealed).ok_or_else(corrupt)?;
        SoftwareSigner::from_pkcs8(alg, &pkcs8).map_err(|_| corrupt())
    }

    /// Whether a key named `name` exists (false for invalid names).
    pub fn contains(&self, name: &str) -> bool {
        check_name(name).is_ok() && self.key_path(name).exists()
    }
}

/// The alg byte of a key agreement key's file (signing keys use 1 and 2).
fn agreement_byte(alg: crate::AgreementAlgorithm) -> u8 {
    match alg {
        crate::AgreementAlgorithm::X25519 => 3,
        crate::AgreementAlgorithm::EcdhP256 => 4,
    }
}

fn agreement_aad(name: &str, alg: crate::AgreementAlgorithm) -> Vec<u8> {
    let mut aad = FORMAT.as_bytes().to_vec();
    aad.extend_from_slice(b"\0agreement-key\0");
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(alg.as_str().as_bytes());
    aad
}

/// Key agreement keys (firmware release keys), sealed like signing keys in the same directory
/// and name space: `TMK1`, an alg byte (3 X25519, 4 ECDH-P256), then the sealed 32-byte private
/// key, authenticated with its name and algorithm.
impl KeyStore {
    /// Generates a key agreement key and stores it encrypted under `name`.
    ///
    /// # Errors
    /// [`PkiError::InvalidKeyName`]; [`PkiError::KeyExists`]; [`PkiError::Io`].
    pub fn generate_agreement(
        &self,
        name: &str,
        alg: crate::AgreementAlgorithm,
    ) -> Result<Arc<dyn crate::AgreementKey>, PkiError> {
        check_name(name)?;
        if self.contains(name) {
            return Err(PkiError::KeyExists(name.to_owned()));
        }
        let key = crate::SoftwareAgreementKey::generate(alg)?;
        let sealed = seal(&self.kek, &agreement_aad(name, alg), &key.raw_private()?)?;
        let mut file = Vec::with_capacity(KEY_MAGIC.len() + 1 + sealed.len());
        file.extend_from_slice(KEY_MAGIC);
        file.push(agreement_byte(alg));
        file.extend_from_slice(&sealed);
        if write_new_file(&self.dir, &format!("{name}.key"), &file)? {
            Ok(Arc::new(key))
        } else {
            Err(PkiError::KeyExists(name.to_owned()))
        }
    }

    /// Loads and decrypts the key agreement key stored under `name`.
    ///
    /// # Errors
    /// [`PkiError::InvalidKeyName`]; [`PkiError::KeyNotFound`]; [`PkiError::KeyFileCorrupt`] if
    /// the file was modified or swapped, or holds a signing key; [`PkiError::Io`].
    pub fn load_agreement(&self, name: &str) -> Result<Arc<dyn crate::AgreementKey>, PkiError> {
        check_name(name)?;
        let path = self.key_path(name);
        let corrupt = || PkiError::KeyFileCorrupt(name.to_owned());
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PkiError::KeyNotFound(name.to_owned()));
            }
            Err(e) => return Err(PkiError::io(format!("reading {}", path.display()), e)),
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_KEY_FILE + 1), &mut bytes)
            .map_err(|e| PkiError::io(format!("reading {}", path.display()), e))?;
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(corrupt());
        }
        let rest = bytes
            .strip_prefix(KEY_MAGIC.as_slice())
            .ok_or_else(corrupt)?;
        let (&alg, sealed) = rest.split_first().ok_or_else(corrupt)?;
        let alg = [
            crate::AgreementAlgorithm::X25519,
            crate::AgreementAlgorithm::EcdhP256,
        ]
        .into_iter()
        .find(|a| agreement_byte(*a) == alg)
        .ok_or_else(corrupt)?;
        let raw = open(&self.kek, &agreement_aad(name, alg), sealed).ok_or_else(corrupt)?;
        let key = crate::SoftwareAgreementKey::from_raw(alg, &raw).map_err(|_| corrupt())?;
        Ok(Arc::new(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        for good in ["a", "ca-root", "0.key_1", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../x",
            "A",
            ".x",
            "-x",
            "a/b",
            "a b",
            &"a".repeat(65),
            "é",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passphrase_debug_is_redacted() {
        let p = Passphrase::new("hunter2".into());
        assert_eq!(format!("{p:?}"), "Ok(Passphrase(<redacted>))");
        assert!(matches!(
            Passphrase::new(String::new()),
            Err(PkiError::EmptyPassphrase)
        ));
    }

    /// An agreement key's file is bound to its name and kind: renamed, or read as the other
    /// kind of key, it is corrupt.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn agreement_keys_are_sealed_and_bound_to_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::create(
            &dir.path().join("keys"),
            &Passphrase::new("a test passphrase".into()).unwrap(),
        )
        .unwrap();
        let key = store
            .generate_agreement("release-1", crate::AgreementAlgorithm::X25519)
            .unwrap();
        store.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
        assert!(matches!(
            store.load("release-1"),
            Err(PkiError::KeyFileCorrupt(_))
        ));
        assert!(matches!(
            store.load_agreement("ca"),
            Err(PkiError::KeyFileCorrupt(_))
        ));
        fs::copy(store.key_path("release-1"), store.key_path("release-2")).unwrap();
        assert!(matches!(
            store.load_agreement("release-2"),
            Err(PkiError::KeyFileCorrupt(_))
        ));
        assert_eq!(
            store.load_agreement("release-1").unwrap().public_key_spki(),
            key.public_key_spki()
        );
    }
}
