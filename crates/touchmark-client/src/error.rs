//! The client's one error type: what went wrong talking to a Touchmark server.

use std::error::Error as StdError;

use touchmark_core::ErrorCode;
use touchmark_core::api::ErrorBody;

/// Why a request, or building a [`Client`](crate::Client), failed.
#[derive(Debug, thiserror::Error)]
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
    /// The request did not complete: connection, TLS or timeout failure. The text holds the
    /// whole chain of causes, so a TLS alert or a certificate error is visible.
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

    /// A key or CSR that could not be made.
    pub(crate) fn key(err: touchmark_pki::PkiError) -> Self {
        Self::Key(err.to_string())
    }

    /// A transport error from reqwest, with every cause in its source chain.
    pub(crate) fn transport(err: &reqwest::Error) -> Self {
        let mut text = if err.is_timeout() {
            format!("timed out: {err}")
        } else {
            err.to_string()
        };
        append_causes(&mut text, err.source());
        // The URL can hold nothing secret (tokens travel in a header), so it may stay.
        Self::Transport(text)
    }
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
