//! Touchmark's PKI: CSR checks, certificate profiles, CAs, the [`Signer`] seam and encrypted key storage.
//!
//! The modules follow the flow of one issuance:
//! - [`csr`] turns untrusted PKCS#10 bytes into a [`VerifiedCsr`];
//! - [`profile`] holds the IEEE 802.1AR device profile and issues device certificates;
//! - [`cert`] holds the [`Certificate`] type, the CA hierarchy and the other certificate profiles;
//! - [`signer`] is the one seam through which every private-key operation goes;
//! - [`keys`] is the seam for where keys live ([`KeyProvider`]);
//! - [`keystore`] keeps software keys encrypted at rest, as one provider;
//! - [`station`] verifies a station's mTLS client certificate at the application layer;
//! - [`pem`] reads and writes PEM;
//! - [`crl`] builds and signs CRLs;
//! - [`ocsp`] parses OCSP requests and builds signed responses;
//! - [`offline`] requests and checks CA certificates signed elsewhere (an offline root).

pub mod agreement;
pub mod attestation;
pub mod cert;
pub mod crl;
pub mod csr;
mod der;
pub mod device;
mod error;
pub mod keys;
pub mod keystore;
pub mod ocsp;
pub mod offline;
pub mod pem;
pub mod profile;
pub mod signer;
pub mod station;

pub use agreement::{AgreementAlgorithm, AgreementKey, SoftwareAgreementKey};
pub use cert::{
    CaIssuer, Certificate, SerialNumber, Subject, certs_from_pem, create_intermediate_ca,
    create_root_ca, issue_server_cert, issue_station_cert,
};
pub use csr::{
    CsrError, OID_UNIT_ENCRYPTION_KEY, VerifiedCsr, build_csr, build_csr_with, parse_csr,
};
pub use error::PkiError;
pub use keys::{KeyProvider, MemoryKeys};
pub use keystore::{KeyStore, Passphrase};
pub use offline::{CaCheckError, ca_csr, check_issued_ca};
pub use profile::{DeviceProfile, issue_device_cert};
pub use signer::{KeyAlgorithm, RcgenSigner, Signer, SoftwareSigner, spki_of};
pub use station::{StationCertError, StationIdentity, verify_station_cert};
