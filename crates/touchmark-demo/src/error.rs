//! The one error type of this crate.

use std::error::Error as StdError;

/// Why the demo could not run. Outcomes that are not as expected are not errors: they are in
/// the [`Summary`](crate::Summary).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The installation could not be created.
    #[error(transparent)]
    Installation(#[from] touchmark_authority::InstallationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] touchmark_store::StoreError),
    /// The server could not start.
    #[error("cannot start the server")]
    Server(#[source] Box<dyn StdError + Send + Sync>),
    /// The authority refused or failed to make the admin token.
    #[error("cannot create the admin token")]
    Token(#[source] touchmark_authority::AuthorityError),
    /// The audit log could not be sequenced.
    #[error(transparent)]
    Log(#[from] touchmark_authority::log::LogError),
    /// A request to the server failed, or a simulated unit's key could not be made.
    #[error(transparent)]
    Client(#[from] touchmark_client::ClientError),
    /// The audit could not run.
    #[error(transparent)]
    Audit(#[from] touchmark_audit::Error),
    /// The data directory exists, is not empty, and is not an earlier demo's.
    #[error(
        "{} exists and is not an earlier demo's directory; give the demo a new directory",
        .0.display()
    )]
    NotADemo(std::path::PathBuf),
    /// A file or directory could not be read, written or removed.
    #[error("cannot {what}")]
    Io {
        /// What was tried, and on which path.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// One of the demo's own identifiers or labels does not parse: a bug.
    #[error("the demo's own {0}")]
    Fixture(String),
    /// A simulated line's task died.
    #[error("a simulated line died")]
    LineDied,
    /// The oversight projector could not fold the log.
    #[error("the oversight rules could not run")]
    Oversight(#[source] touchmark_authority::AuthorityError),
}
