//! The storage error type. Each backend maps its driver's errors into it in one place; a driver's
//! own message never leaves the backend except in the server's log.

use std::fmt;

use touchmark_core::code::Refusal;

/// The kinds of record a store keeps, as errors name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordKind {
    /// An API token.
    Token,
    /// A product.
    Product,
    /// A factory.
    Factory,
    /// A station.
    Station,
    /// An order.
    Order,
    /// An alert.
    Alert,
    /// A webhook.
    Webhook,
    /// A release encryption key.
    ReleaseKey,
    /// A firmware signing key.
    FirmwareKey,
    /// A firmware release.
    Release,
    /// A unit, with the firmware it received when it was issued.
    Unit,
    /// A vulnerability report.
    VulnReport,
    /// A vulnerability report's link to a product, release or component.
    VulnLink,
    /// A published revision of a CSAF advisory.
    Advisory,
}

impl RecordKind {
    /// The kind as a word in a message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Product => "product",
            Self::Factory => "factory",
            Self::Station => "station",
            Self::Order => "order",
            Self::Alert => "alert",
            Self::Webhook => "webhook",
            Self::ReleaseKey => "release key",
            Self::FirmwareKey => "firmware signing key",
            Self::Release => "release",
            Self::Unit => "unit",
            Self::VulnReport => "vulnerability report",
            Self::VulnLink => "link of vulnerability report",
            Self::Advisory => "advisory revision",
        }
    }
}

/// A record named in an error: its kind and id, shown as `order PO-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What it is.
    pub kind: RecordKind,
    /// Its id.
    pub id: String,
}

impl Record {
    /// The record of kind `kind` with id `id`.
    pub fn new(kind: RecordKind, id: impl fmt::Display) -> Self {
        Self {
            kind,
            id: id.to_string(),
        }
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.id)
    }
}

/// A rule of the schema that refused a write, named as the domain knows it. The schema's
/// constraints are the last line of defence behind the checks in the code: one that fires means
/// a concurrent change got there first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Constraint {
    /// A record of this kind with the same id exists already.
    DuplicateId(RecordKind),
    /// The product's serial is already certified.
    SerialCertified,
    /// The public key is already certified.
    KeyCertified,
    /// The test record already issued a unit.
    TestRecordUsed,
    /// The write refers to a record that does not exist.
    MissingReference,
    /// A value is outside what the schema allows.
    InvalidValue,
    /// Another constraint, as the driver names it (PostgreSQL: the constraint's name; SQLite:
    /// its message, which names the columns): for the server's log, never a client.
    Other(String),
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateId(kind) => {
                write!(f, "a {} with this id exists already", kind.as_str())
            }
            Self::SerialCertified => f.write_str("this serial is already certified"),
            Self::KeyCertified => f.write_str("this public key is already certified"),
            Self::TestRecordUsed => f.write_str("this test record already issued a unit"),
            Self::MissingReference => {
                f.write_str("the change refers to a record that does not exist")
            }
            Self::InvalidValue => f.write_str("a value is outside what the database allows"),
            Self::Other(_) => f.write_str("the change conflicts with a stored record"),
        }
    }
}

/// Why a new checkpoint may not be saved over the log state the store holds: the log is
/// append-only, and only the sequencer that read the saved state may move it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogConflict {
    /// The saved state is not the one the sequencer started from: another sequencer moved it.
    Moved {
        /// The saved state's size.
        saved: Option<u64>,
        /// The size the sequencer started from.
        expected: Option<u64>,
    },
    /// A checkpoint of this size or a larger one is signed already: a checkpoint only moves
    /// forward, and one size has one root forever.
    NotNewer {
        /// The largest signed size.
        signed: u64,
        /// The size offered.
        size: u64,
    },
    /// The checkpoint covers events that do not exist.
    BeyondEvents {
        /// The size offered.
        size: u64,
        /// The events that hold an index.
        events: u64,
    },
}

impl fmt::Display for LogConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Moved { saved, expected } => write!(
                f,
                "the saved log state has size {saved:?}, not {expected:?}: another sequencer moved it"
            ),
            Self::NotNewer { signed, size } => write!(
                f,
                "the log already signed size {signed}, not smaller than {size}"
            ),
            Self::BeyondEvents { size, events } => write!(
                f,
                "a checkpoint of size {size} covers more than the {events} events"
            ),
        }
    }
}

/// Why a storage operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named record does not exist.
    #[error("{0} not found")]
    NotFound(Record),
    /// A record with the same id exists already.
    #[error("{0} exists already")]
    Exists(Record),
    /// A rule of `touchmark_core::policy`, applied to the record as stored, refused the change.
    #[error("{0}")]
    Refused(Refusal),
    /// A constraint of the schema refused the write.
    #[error("{0}")]
    Constraint(Constraint),
    /// A new checkpoint does not extend the saved log state.
    #[error("{0}")]
    LogConflict(LogConflict),
    /// The enrollment token is unknown, used or expired.
    #[error("the enrollment token is unknown, already used or expired")]
    EnrollmentTokenInvalid,
    /// A stored value does not parse: the database was changed outside Touchmark.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database is unreachable, or a row the operation needs stayed locked past the
    /// lock timeout: nothing was done, and the operation may be tried again shortly. The text
    /// is the driver's: for logs only.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database failed. The text is the driver's: for logs only.
    #[error("database error: {0}")]
    Database(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// The caller's sequencer lease has expired or passed to another holder: it must not write.
    #[error("the sequencer lease is no longer held: {0}")]
    Fenced(String),
}

impl StoreError {
    /// `kind` `id` does not exist.
    pub fn not_found(kind: RecordKind, id: impl fmt::Display) -> Self {
        Self::NotFound(Record::new(kind, id))
    }

    /// `kind` `id` exists already.
    pub fn exists(kind: RecordKind, id: impl fmt::Display) -> Self {
        Self::Exists(Record::new(kind, id))
    }
}
