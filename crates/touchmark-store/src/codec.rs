//! Turning domain values into what a store keeps, and reading them back, the same on every
//! backend. A stored value that does not parse is [`StoreError::Corrupt`]: it can only come
//! from a change made outside Touchmark. Backends call these on what their driver reads and
//! writes.

use std::fmt::Display;
use std::str::FromStr;

use touchmark_core::event::{Event, Leaf, Sha256Hash};
use touchmark_core::{Serial, SerialRule};
use touchmark_tlog::Hash;

use crate::StoreError;

/// `what` is stored in a form that does not parse.
pub fn corrupt(what: &str, e: impl Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// An event's leaf: its canonical bytes and hash, as appended.
///
/// # Errors
/// [`StoreError::Corrupt`] if the event cannot be canonicalized (none of the events defined can
/// fail; the error keeps this total).
pub fn leaf(event: &Event) -> Result<Leaf, StoreError> {
    Leaf::try_from(event).map_err(|e| corrupt("an event to append", e))
}

/// A serial rule as stored: JSON.
///
/// # Errors
/// [`StoreError::Corrupt`] if it cannot be serialized (it always can; the error keeps this
/// total).
pub fn serial_rule(rule: &SerialRule) -> Result<String, StoreError> {
    serde_json::to_string(rule).map_err(|e| corrupt("a serial rule to store", e))
}

/// A retry that `decide` recognised without the issued unit it read: facts and unit were read
/// together, so this is a bug, said rather than guessed around.
pub fn retry_without_unit() -> StoreError {
    StoreError::Corrupt("a retry was decided without an issued unit".into())
}

/// A saved log state whose checkpoint is gone.
pub fn checkpoint_missing(size: u64) -> StoreError {
    StoreError::Corrupt(format!("no checkpoint for the log state's size {size}"))
}

/// Parses a stored text (an id, say).
///
/// # Errors
/// [`StoreError::Corrupt`].
pub fn parse<T: FromStr>(what: &str, text: &str) -> Result<T, StoreError>
where
    T::Err: Display,
{
    text.parse::<T>().map_err(|e| corrupt(what, e))
}

/// A stored serial.
///
/// # Errors
/// [`StoreError::Corrupt`].
pub fn serial(text: &str) -> Result<Serial, StoreError> {
    Serial::parse(text).map_err(|e| corrupt("serial", e))
}

/// A stored content digest (a certificate's, a key's): 32 bytes.
///
/// # Errors
/// [`StoreError::Corrupt`].
pub fn sha256(what: &str, bytes: &[u8]) -> Result<Sha256Hash, StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map(Sha256Hash)
        .map_err(|_| corrupt(what, "not 32 bytes"))
}

/// A stored Merkle tree hash (a leaf hash, a root): 32 bytes.
///
/// # Errors
/// [`StoreError::Corrupt`].
pub fn tree_hash(what: &str, bytes: &[u8]) -> Result<Hash, StoreError> {
    Hash::from_slice(bytes).map_err(|_| corrupt(what, "not 32 bytes"))
}

/// A stored count or index, which is never negative.
///
/// # Errors
/// [`StoreError::Corrupt`].
pub fn count(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| corrupt("count", e))
}

/// Whether this build can open a database whose schema has `applied` migrations, of the
/// `known` this build carries.
///
/// # Errors
/// [`StoreError::Corrupt`] when the database is newer than this build.
pub fn schema_version(applied: i64, known: usize) -> Result<usize, StoreError> {
    let applied = usize::try_from(applied).map_err(|_| corrupt("the schema version", applied))?;
    if applied > known {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {applied}, newer than this touchmark ({known}); upgrade touchmark"
        )));
    }
    Ok(applied)
}

/// Defines, in a backend crate, `Error` (a [`StoreError`] on its way out, so that a driver
/// error converts with `?`), `Result`, and the conversions between `Error` and `StoreError`.
/// The backend adds `From<its driver's error> for Error` beside it: the one place where its
/// driver's errors are mapped.
#[macro_export]
macro_rules! backend_error {
    () => {
        /// A [`touchmark_store::StoreError`] on its way out of this backend. The backend's code
        /// works in it, so that a driver error converts with `?`; it leaves as the
        /// `StoreError` it holds.
        #[derive(Debug)]
        pub(crate) struct Error(pub(crate) $crate::StoreError);

        /// Shorthand for this backend's internal results.
        pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

        impl From<$crate::StoreError> for Error {
            fn from(e: $crate::StoreError) -> Self {
                Self(e)
            }
        }

        impl From<Error> for $crate::StoreError {
            fn from(e: Error) -> Self {
                e.0
            }
        }
    };
}
