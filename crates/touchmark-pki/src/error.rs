//! The crate's one error type, [`PkiError`].

use std::path::PathBuf;

/// Everything that can go wrong in `touchmark-pki`, apart from CSR checks ([`crate::CsrError`])
/// and station certificate checks ([`crate::StationCertError`]), which have their own stable codes.
///
/// Messages name the failing input but never contain key material or passphrases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The cryptographic library rejected key material (bad PKCS#8, wrong algorithm, invalid seed).
    #[error("key rejected: {0}")]
    KeyRejected(String),
    /// A signing operation failed inside the key backend.
    #[error("signing failed")]
    SigningFailed,
    /// The random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// A passphrase was empty.
    #[error("passphrase must not be empty")]
    EmptyPassphrase,
    /// No key store exists in the given directory; run `create` first.
    #[error("no key store in {0}")]
    KeyStoreMissing(PathBuf),
    /// `KeyStore::create` found an existing key store and refused to replace it.
    #[error("a key store already exists in {0}")]
    KeyStoreExists(PathBuf),
    /// The key store's metadata file is unreadable or has an unsupported format.
    #[error("key store metadata is corrupt: {0}")]
    KeyStoreCorrupt(String),
    /// The passphrase does not open this key store.
    #[error("wrong passphrase for the key store")]
    WrongPassphrase,
    /// A key name does not match `[a-z0-9][a-z0-9._-]{0,63}`.
    #[error(
        "invalid key name {0:?}: use 1-64 characters from a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    InvalidKeyName(String),
    /// No key with this name is in the key store.
    #[error("no key named {0:?} in the key store")]
    KeyNotFound(String),
    /// A key with this name already exists; keys are never overwritten.
    #[error("a key named {0:?} already exists in the key store")]
    KeyExists(String),
    /// A key file failed authentication or is malformed: it was modified, truncated or swapped.
    #[error("key file for {0:?} is corrupt or was tampered with")]
    KeyFileCorrupt(String),
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, including the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate could not be parsed or is not acceptable where it was given.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// PEM input was malformed or had an unexpected label.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// A parameter for certificate issuance is invalid (validity window, name, URL, OID, host).
    #[error("invalid certificate parameter: {0}")]
    InvalidParameter(String),
    /// The signer's public key is not the public key of the CA certificate.
    #[error("the signer's public key does not match the CA certificate")]
    KeyMismatch,
    /// The certificate builder failed.
    #[error("certificate generation failed: {0}")]
    CertificateGeneration(String),
    /// A hardware key module (PKCS#11) is misconfigured, unreachable, or failed: the message
    /// says which module, token or key, and what to change.
    #[error("{0}")]
    KeyModule(String),
    /// The key provider cannot do this operation (for example key agreement), so the key must
    /// live in another provider.
    #[error("{0} is not supported by this key provider")]
    NotSupported(&'static str),
}

impl PkiError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PkiError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::CertificateGeneration(e.to_string())
    }
}
