//! The one error type of this crate.

use std::path::PathBuf;

use touchmark_tlog::TlogError;

/// Why an audit or an export could not be run, or why an audit did not pass.
///
/// A log that breaks a rule is not an error of [`verify`](crate::verify): its violations are in
/// the [`Report`](crate::Report), and [`Report::verdict`](crate::Report::verdict) turns them
/// into [`Error::Violations`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The verifier key is not `<origin>+<key id>+<base64>`.
    #[error("not a valid verifier key")]
    VerifierKey(#[source] TlogError),
    /// The file said to hold the verifier key cannot be read.
    #[error("cannot read the verifier key file {}", path.display())]
    VerifierKeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The root CA to trust for an `https://` source cannot be read.
    #[error("cannot read the root CA {}", path.display())]
    RootCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The root CA file holds no certificate, or one rustls cannot use.
    #[error("the root CA {} holds no certificate{reason}", path.display())]
    NoRootCertificate {
        /// The file.
        path: PathBuf,
        /// Why the certificates in it were not usable, if it held any (`: ...`), or nothing.
        reason: String,
    },
    /// A source URL is not a plain `https://` base URL.
    #[error("URL {url:?} {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTPS client could not be built.
    #[error("cannot build the HTTPS client")]
    Client(#[source] reqwest::Error),
    /// TLS could not be configured.
    #[error("cannot configure TLS")]
    Tls(#[source] rustls::Error),
    /// A request to the log did not complete.
    #[error("GET {url}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered a request with an error status.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// A file of the log is larger than such a file may be.
    #[error("{what}: more than the {limit} bytes it may hold")]
    TooLarge {
        /// The file or URL.
        what: String,
        /// The most it may hold.
        limit: usize,
    },
    /// A file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory cannot be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory source holds no checkpoint.
    #[error(
        "cannot read {} (the source must be an https:// URL or a directory written by `audit \
         export`)",
        path.display()
    )]
    NoCheckpoint {
        /// The checkpoint file that is not there.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint is not a checkpoint signed by the auditor's key.
    #[error("bad checkpoint: {from} is not a checkpoint validly signed by {key}")]
    BadCheckpoint {
        /// Where the checkpoint came from.
        from: String,
        /// The name of the auditor's key.
        key: String,
        /// Why it did not verify.
        #[source]
        source: TlogError,
    },
    /// The state file does not hold a checkpoint signed by the auditor's key.
    #[error("the state file {} does not hold a checkpoint signed by {key}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// The name of the auditor's key.
        key: String,
        /// Why it did not verify.
        #[source]
        source: TlogError,
    },
    /// `export` was given a directory that holds something already.
    #[error("{} is not empty: refusing to overwrite it", dir.display())]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// The server's own `/log/key` is not a verifier key.
    #[error("the server's /log/key is not a verifier key")]
    ServerKey(#[source] TlogError),
    /// The server's checkpoint is not signed by the server's own key.
    #[error("{from} is not signed by the server's own key")]
    NotSelfSigned {
        /// Where the checkpoint came from.
        from: String,
        /// Why it did not verify.
        #[source]
        source: TlogError,
    },
    /// A unit's receipt is not a `c2sp.org/tlog-proof@v1` receipt.
    #[error("the receipt is malformed")]
    Receipt(#[source] TlogError),
    /// A unit's receipt does not verify with the log's key.
    #[error("the receipt does not verify")]
    ReceiptInvalid(#[source] TlogError),
    /// The entry a unit's receipt proves is not that unit's issuance.
    #[error("log entry {index} is not the issuance of {serial}")]
    NotTheIssuance {
        /// The entry's index.
        index: u64,
        /// The unit's serial.
        serial: String,
    },
    /// The log's tiles cannot be walked at all: an internal inconsistency for a valid size.
    #[error("the log cannot be audited")]
    Tlog(#[source] TlogError),
    /// A task of the audit (`download` or `verification`) died.
    #[error("the {0} task failed")]
    Task(&'static str),
    /// The audit found violations; [`Report::violations`](crate::Report::violations) lists
    /// them all.
    #[error(
        "the audit of {origin} at size {size} found {count} violation{}: {summary}",
        if *count == 1 { "" } else { "s" }
    )]
    Violations {
        /// The log's origin.
        origin: String,
        /// The size of the checkpoint audited.
        size: u64,
        /// How many violations.
        count: usize,
        /// The first few, `; `-separated.
        summary: String,
    },
}
