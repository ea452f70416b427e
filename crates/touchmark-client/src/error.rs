//! The client's one error type: what went wrong talking to a Touchmark server.

use std::error::Error as StdError;

use touchmark_core::ErrorCode;
use touchmark_core::api::ErrorBody;

/// Why a request, or building a [`Client`](crate::Client), failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error status and a JSON [`ErrorBody`].
    #[error("server answered HTTP {status}: {}: {}", body.code, body.message)]
    Api {
        /// The HTTP status, 4xx or 5xx.
        status: u16,
        /// The error the server sent: its stable code, message and, for a logged refusal,
        /// the receipt.
        body: ErrorBody,
    },
    /// Nothing answered at the server's address: nothing listens there, its name does not
    /// resolve, or the network does not reach it. Nothing was sent. Its stable code is
    /// `server_unreachable` ([`ClientError::local_code`]).
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable {
        /// The server's origin (`https://host:port`).
        url: String,
        /// What happened, in words: "nothing is listening there (connection refused)".
        reason: String,
        /// The whole chain of causes from the HTTP and TLS libraries, for `-v`.
        cause: String,
    },
    /// The server answered, but its TLS certificate is not one this client trusts: it is
    /// signed by another root CA than the one given, or does not name the host, or is out of
    /// its validity. Nothing was sent. Its stable code is `server_untrusted`.
    #[error("the server at {url} is not trusted: {reason}")]
    Untrusted {
        /// The server's origin (`https://host:port`).
        url: String,
        /// What is wrong with its certificate, in words.
        reason: String,
        /// The whole chain of causes from the HTTP and TLS libraries, for `-v`.
        cause: String,
    },
    /// The request did not complete for another reason: a timeout, a TLS alert from the
    /// server, a connection cut. The text holds the whole chain of causes, so a TLS alert or
    /// a certificate error is visible.
    #[error("transport error: {0}")]
    Transport(String),
    /// The server's answer did not parse as what the route returns.
    #[error("could not decode the server's answer: {0}")]
    Decode(String),
    /// The configuration is unusable: a bad base URL, PEM, key or token.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// An argument cannot be put into a request path: an empty id, or `.` or `..`.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A station's or a simulated unit's key, or its CSR, could not be made.
    #[error("cannot make a key or CSR: {0}")]
    Key(String),
    /// A simulator run's settings are out of range. The message names the setting as
    /// `touchmark station run` spells its flag.
    #[error("{0}")]
    Plan(String),
    /// A station's files cannot be read or written: its directory is not an enrolled
    /// station's, or a provisioned unit's files cannot be kept.
    #[error("{0}")]
    Files(String),
}

impl ClientError {
    /// The server's stable error code, for an [`Api`](Self::Api) error whose code this
    /// version knows. `None` for other errors and for codes newer than this crate.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { body, .. } => ErrorCode::from_wire(&body.code),
            _ => None,
        }
    }

    /// The HTTP status, for an [`Api`](Self::Api) error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error body the server sent, for an [`Api`](Self::Api) error.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Self::Api { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The error body, when the server's policy refused the request with a refusal code (a
    /// decision, logged), as opposed to a request that failed.
    pub fn refusal(&self) -> Option<&ErrorBody> {
        self.body()
            .filter(|_| self.code().is_some_and(ErrorCode::is_refusal))
    }

    /// A stable code for a failure decided on this side, before any answer: `server_unreachable`
    /// for [`Unreachable`](Self::Unreachable), `server_untrusted` for
    /// [`Untrusted`](Self::Untrusted). `None` for the others (an answer's code is
    /// [`ClientError::code`]).
    pub fn local_code(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { .. } => Some("server_unreachable"),
            Self::Untrusted { .. } => Some("server_untrusted"),
            _ => None,
        }
    }

    /// The underlying cause of a transport failure, as the HTTP and TLS libraries put it: for
    /// a verbose report. `None` for the other errors, whose text says it all.
    pub fn cause(&self) -> Option<&str> {
        match self {
            Self::Unreachable { cause, .. } | Self::Untrusted { cause, .. } => Some(cause),
            Self::Transport(text) => Some(text),
            _ => None,
        }
    }

    /// The client's reading of a transport failure that another part of the program hit with
    /// the same HTTP library (the auditor fetches the log's tiles with it): `err`, or `None`
    /// when it is not such a failure.
    pub fn from_transport(err: &(dyn StdError + 'static)) -> Option<Self> {
        err.downcast_ref::<reqwest::Error>().map(Self::transport)
    }

    /// A key or CSR that could not be made.
    pub(crate) fn key(err: touchmark_pki::PkiError) -> Self {
        Self::Key(err.to_string())
    }

    /// A transport error from reqwest, with every cause in its source chain: a server that
    /// cannot be reached, or whose certificate is not trusted, is told apart from the rest.
    pub(crate) fn transport(err: &reqwest::Error) -> Self {
        let mut text = if err.is_timeout() {
            format!("timed out: {err}")
        } else {
            err.to_string()
        };
        append_causes(&mut text, err.source());
        // The URL can hold nothing secret (tokens travel in a header), so it may stay.
        let url = err
            .url()
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|| "(unknown)".to_owned());
        match classify(err) {
            Some(Failure::Unreachable(reason)) => Self::Unreachable {
                url,
                reason,
                cause: text,
            },
            Some(Failure::Untrusted(reason)) => Self::Untrusted {
                url,
                reason,
                cause: text,
            },
            None => Self::Transport(text),
        }
    }
}

/// What a transport failure means for the person who ran the command.
enum Failure {
    Unreachable(String),
    Untrusted(String),
}

/// Tells an unreachable server and an untrusted certificate apart from other transport
/// failures, by the typed errors in the chain (never by their text). A certificate problem
/// wins over the connection error that carries it.
fn classify(err: &reqwest::Error) -> Option<Failure> {
    let mut refused = None;
    let mut node: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = node {
        for inner in unwrapped(e) {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return untrusted(tls).map(Failure::Untrusted);
            }
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                refused = refused.or(match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        Some("nothing is listening there (connection refused)")
                    }
                    std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable => {
                        Some("the network does not reach it")
                    }
                    _ => None,
                });
            }
        }
        node = e.source();
    }
    if let Some(reason) = refused {
        return Some(Failure::Unreachable(reason.to_owned()));
    }
    // A connection that failed before TLS began: a name that does not resolve, or no route.
    (err.is_connect() && !err.is_timeout()).then(|| {
        Failure::Unreachable("no connection could be made (is the host name right?)".to_owned())
    })
}

/// `err` and the errors it wraps without naming them as its source: `io::Error::source` skips
/// the error it wraps, and the TLS connector wraps rustls' error in an `io::Error` twice.
fn unwrapped<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut found = vec![err];
    let mut i = 0;
    while let Some(&e) = found.get(i) {
        i += 1;
        if found.len() > 16 {
            break;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            found.push(inner);
        }
    }
    found
}

/// What is wrong with the server's certificate, when the TLS error is about it.
fn untrusted(err: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = err else {
        return None;
    };
    Some(
        match cert {
            C::UnknownIssuer | C::BadSignature => {
                "its certificate is not signed by the root CA this client trusts"
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "its certificate does not name this host"
            }
            C::Expired | C::ExpiredContext { .. } => "its certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "its certificate is not valid yet (is this machine's clock right?)"
            }
            C::Revoked => "its certificate is revoked",
            _ => "its certificate is not acceptable",
        }
        .to_owned(),
    )
}

/// Appends `: cause` for each error in the chain whose text is not already shown. hyper and
/// reqwest wrap a rustls alert several layers down, and their own messages do not repeat it.
pub(crate) fn append_causes(text: &mut String, mut source: Option<&(dyn StdError + 'static)>) {
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !shown.is_empty() && !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use touchmark_core::api::ReceiptBody;

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn api_error_displays_status_code_and_message() {
        let err = ClientError::Api {
            status: 409,
            body: ErrorBody {
                code: "quota_exhausted".into(),
                message: "order o1 has no quota left".into(),
                receipt: Some(ReceiptBody {
                    index: Some(7),
                    leaf_hash: "ab".repeat(32),
                    tlog_proof: None,
                }),
            },
        };
        assert_eq!(
            err.to_string(),
            "server answered HTTP 409: quota_exhausted: order o1 has no quota left"
        );
        assert_eq!(err.code(), Some(ErrorCode::QuotaExhausted));
        assert_eq!(err.status(), Some(409));
        assert_eq!(
            err.body().and_then(|b| b.receipt.as_ref()).map(|r| r.index),
            Some(Some(7))
        );
    }

    #[test]
    fn unknown_code_is_kept_but_not_parsed() {
        let err = ClientError::Api {
            status: 400,
            body: ErrorBody {
                code: "from_the_future".into(),
                message: "m".into(),
                receipt: None,
            },
        };
        assert_eq!(err.code(), None);
        assert!(err.to_string().contains("from_the_future"));
    }

    #[test]
    fn other_variants_display_their_kind() {
        let cases = [
            (
                ClientError::Transport("connection refused".into()),
                "transport error: connection refused",
            ),
            (
                ClientError::Decode("expected value".into()),
                "could not decode the server's answer: expected value",
            ),
            (
                ClientError::Config("base URL must be https".into()),
                "invalid client configuration: base URL must be https",
            ),
            (
                ClientError::InvalidArgument("id is empty".into()),
                "invalid argument: id is empty",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text);
            assert_eq!(err.code(), None);
            assert_eq!(err.status(), None);
        }
    }

    #[test]
    fn causes_are_appended_once() {
        let chain = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(Layer("received fatal alert: UnknownCA", None))),
            ))),
        );
        let mut text = chain.to_string();
        append_causes(&mut text, chain.source());
        assert_eq!(
            text,
            "error sending request: client error (Connect): received fatal alert: UnknownCA"
        );

        let repeated = Layer("io error: reset", Some(Box::new(Layer("reset", None))));
        let mut text = repeated.to_string();
        append_causes(&mut text, repeated.source());
        assert_eq!(text, "io error: reset");
    }
}
