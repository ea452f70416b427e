//! What a [`Client`](crate::Client) needs: the server, its trust anchors and the credentials,
//! and how they become a rustls configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::error::ClientError;

/// How to reach and authenticate to a Touchmark server.
#[derive(Clone)]
pub struct ClientConfig {
    /// The server's base URL, such as `https://localhost:8443`. Must be `https`; a path prefix
    /// is kept, a trailing `/` is ignored.
    pub base_url: String,
    /// The trust anchor(s) for the server's certificate, PEM. Only these are trusted: the
    /// system's roots are never used.
    pub root_ca_pem: String,
    /// An admin or auditor bearer token. Redacted by `Debug`.
    pub token: Option<String>,
    /// A station's mTLS identity, for provisioning.
    pub identity: Option<Identity>,
    /// The limit on each whole request, from connecting to the last byte of the answer.
    pub timeout: Duration,
}

impl ClientConfig {
    /// A configuration with no credentials and a 30 s timeout.
    pub fn new(base_url: impl Into<String>, root_ca_pem: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            root_ca_pem: root_ca_pem.into(),
            token: None,
            identity: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field(
                "root_ca_pem",
                &format_args!("<{} bytes>", self.root_ca_pem.len()),
            )
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("identity", &self.identity)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A station's mTLS client identity.
#[derive(Clone)]
pub struct Identity {
    /// The station certificate, then any intermediates, PEM.
    pub cert_chain_pem: String,
    /// The private key, PKCS#8 PEM (PKCS#1 and SEC1 are accepted too). Wiped from memory when
    /// dropped, and redacted by `Debug`.
    pub key_pem: Zeroizing<String>,
}

impl Identity {
    /// An identity from its certificate chain and private key, both PEM.
    pub fn new(cert_chain_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        Self {
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: Zeroizing::new(key_pem.into()),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field(
                "cert_chain_pem",
                &format_args!("<{} bytes>", self.cert_chain_pem.len()),
            )
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Checks the base URL and returns it without a trailing `/`, ready for `/v1/...` to be
/// appended.
pub(crate) fn base_url(text: &str) -> Result<String, ClientError> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| ClientError::Config(format!("base URL {text:?}: {e}")))?;
    if url.scheme() != "https" {
        return Err(ClientError::Config(format!(
            "base URL {text:?} must use https, not {}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ClientError::Config(format!(
            "base URL {text:?} has no host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials belong in `token`, not in a URL that ends up in logs.
        return Err(ClientError::Config(
            "base URL may not contain credentials".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::Config(format!(
            "base URL {text:?} may not have a query or fragment"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Builds the rustls configuration: aws-lc-rs, TLS 1.2 and 1.3, only the given roots, the
/// station identity when there is one, and ALPN for HTTP/2 and HTTP/1.1.
pub(crate) fn tls(config: &ClientConfig) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(config.root_ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| ClientError::Config(format!("root CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ClientError::Config(format!("root CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ClientError::Config(
            "root CA PEM holds no certificate".into(),
        ));
    }

    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots);

    let mut tls = match &config.identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(identity.cert_chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::Config(format!("identity certificate PEM: {e}")))?;
            if chain.is_empty() {
                return Err(ClientError::Config(
                    "identity certificate PEM holds no certificate".into(),
                ));
            }
            // The error text of a PEM parse never quotes the key material.
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
                .map_err(|e| ClientError::Config(format!("identity key PEM: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Config(format!("identity key: {e}")))?
        }
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn base_urls() {
        let good = [
            ("https://localhost:8443", "https://localhost:8443"),
            ("https://localhost:8443/", "https://localhost:8443"),
            (
                "https://example.com/touchmark/",
                "https://example.com/touchmark",
            ),
            ("https://[::1]:8443", "https://[::1]:8443"),
        ];
        for (input, want) in good {
            assert_eq!(base_url(input).unwrap(), want);
        }
        let bad = [
            "http://localhost:8443",
            "ftp://example.com",
            "localhost:8443",
            "",
            "https://",
            "https://user:pw@example.com",
            "https://example.com/?x=1",
            "https://example.com/#f",
        ];
        for input in bad {
            assert!(
                matches!(base_url(input), Err(ClientError::Config(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut config = ClientConfig::new("https://h", "pem");
        config.token = Some("tm_secret_token".into());
        config.identity = Some(Identity::new("chain", "-----BEGIN PRIVATE KEY-----secret"));
        let text = format!("{config:?}");
        assert!(!text.contains("tm_secret_token"), "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("<redacted>"));
        assert!(text.contains("https://h"));
    }
}
