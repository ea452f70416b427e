//! Talking to a server the way the typed client cannot: raw HTTPS requests with any body and
//! content type, and what came back.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

/// What the server answered, status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The `Retry-After` header, if sent.
    pub retry_after: Option<String>,
    /// The body, parsed as JSON (`Value::Null` when it is not JSON, with `text` holding it).
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The error `code`, or `""`.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts an error answer: `status`, `code`, and a body of exactly `{code, message}` plus
    /// an optional `receipt`, served as JSON with a non-empty message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.text
        );
        assert!(
            self.content_type.starts_with("application/json"),
            "content type {:?}: {}",
            self.content_type,
            self.text
        );
        let object = self.body.as_object().expect("an error object");
        assert!(
            object
                .keys()
                .all(|k| ["code", "message", "receipt"].contains(&k.as_str())),
            "{}",
            self.text
        );
        assert!(
            self.body["message"]
                .as_str()
                .is_some_and(|m| !m.trim().is_empty()),
            "{}",
            self.text
        );
    }

    /// The receipt of a logged refusal or an issuance: (index, leaf hash). The index is `None`
    /// on a backend that gives indices after commit (PostgreSQL); [`crate::TestServer::index`]
    /// finds it then.
    #[track_caller]
    pub fn receipt(&self) -> (Option<u64>, String) {
        let r = &self.body["receipt"];
        assert!(r.is_object(), "no receipt: {}", self.text);
        let index = r["index"].as_u64();
        let leaf = r["leaf_hash"]
            .as_str()
            .expect("receipt.leaf_hash")
            .to_owned();
        assert_eq!(leaf.len(), 64, "{leaf}");
        assert!(leaf.bytes().all(|b| b.is_ascii_hexdigit()), "{leaf}");
        (index, leaf)
    }
}

/// A raw HTTPS client trusting the kit's root CA.
#[derive(Clone)]
pub struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    /// A client presenting `identity` (certificate chain PEM, key PEM), or no certificate.
    pub fn new(base: &str, root_ca_pem: &str, identity: Option<(&str, &str)>) -> Self {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(client_tls(root_ca_pem, identity))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client");
        Self {
            http,
            base: base.to_owned(),
        }
    }

    /// Sends `body` with `content_type` (none when `None`) to `path`, with optional bearer token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, ct);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Self::reply(request).await
    }

    /// GETs `path` and returns the status, the headers and the body as bytes (for bodies that
    /// are not text).
    pub async fn get_bytes(
        &self,
        path: &str,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the server answers");
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.bytes().await.expect("a body").to_vec();
        (status, headers, body)
    }

    /// GETs `path` with `authorization` as the whole `Authorization` header, scheme included.
    pub async fn get_with_authorization(&self, path: &str, authorization: &str) -> Reply {
        let request = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, authorization);
        Self::reply(request).await
    }

    async fn reply(request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            retry_after,
            body,
            text,
        }
    }

    /// POSTs a JSON value to `order`'s provisioning route.
    pub async fn provision(&self, order: &str, body: &Value) -> Reply {
        self.send(
            reqwest::Method::POST,
            &format!("/v1/orders/{order}/units"),
            Some("application/json"),
            serde_json::to_vec(body).expect("JSON"),
            None,
        )
        .await
    }
}

/// A rustls client configuration on aws-lc-rs trusting only `root_ca_pem`.
pub fn client_tls(root_ca_pem: &str, identity: Option<(&str, &str)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_ca_pem.as_bytes()) {
        roots.add(cert.expect("root PEM")).expect("root CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain PEM"),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM"),
            )
            .expect("client identity"),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
