//! TLS for the API: the server's certificate, signed through the `Signer` seam, and client
//! certificates for stations.
//!
//! Clients may connect without a certificate (admins use bearer tokens on the same port). A
//! certificate that is offered must prove possession of its key in the handshake, but its chain
//! is checked by the application, in [`crate::auth`], against the station CA: that way an
//! expired, revoked or foreign certificate gets a JSON error with a stable code instead of a bare
//! TLS alert. The verifier that defers the chain check is named for what it does,
//! [`ChainCheckedByApplication`], and nothing but [`crate::auth::StationAuth`] can turn a peer
//! certificate into a station identity.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureAlgorithm, SignatureScheme};
use touchmark_pki::{Certificate, KeyAlgorithm, Signer};

/// Accepts any client certificate whose handshake signature verifies, and leaves the chain to
/// the application (see the module documentation).
#[derive(Debug)]
pub struct ChainCheckedByApplication {
    provider: Arc<CryptoProvider>,
    hints: Vec<DistinguishedName>,
}

impl ChainCheckedByApplication {
    /// A verifier that names `issuers` (the station CA, and the device root for units in the
    /// field) as the acceptable issuers in the handshake.
    pub fn new(provider: Arc<CryptoProvider>, issuers: &[&Certificate]) -> Self {
        let hints = issuers
            .iter()
            .filter_map(|ca| x509_parser::parse_x509_certificate(ca.der()).ok())
            .map(|(_, cert)| DistinguishedName::from(cert.subject().as_raw().to_vec()))
            .collect();
        Self { provider, hints }
    }
}

impl ClientCertVerifier for ChainCheckedByApplication {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain is verified by `auth::StationAuth` for every request that needs a station,
        // and by `auth::DeviceAuth` for every request that needs a unit in the field.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The server's TLS key, used through the `Signer` abstraction so an HSM can hold it.
#[derive(Debug)]
struct SignerKey(Arc<dyn Signer>);

impl rustls::sign::SigningKey for SignerKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        (self.0.algorithm() == KeyAlgorithm::EcdsaP256
            && offered.contains(&SignatureScheme::ECDSA_NISTP256_SHA256))
        .then(|| Box::new(SchemeSigner(Arc::clone(&self.0))) as Box<dyn rustls::sign::Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct SchemeSigner(Arc<dyn Signer>);

impl rustls::sign::Signer for SchemeSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.0
            .sign(message)
            .map_err(|e| rustls::Error::General(format!("server key: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// Builds the server's rustls configuration.
///
/// # Errors
/// A rustls error if the provider cannot supply the protocol versions.
pub fn server_config(
    server_cert: &Certificate,
    server_key: Arc<dyn Signer>,
    client_issuers: &[&Certificate],
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = ChainCheckedByApplication::new(Arc::clone(&provider), client_issuers);
    let key = CertifiedKey::new(
        vec![server_cert.to_cert_der()],
        Arc::new(SignerKey(server_key)),
    );
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(OneCert(Arc::new(key))));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
