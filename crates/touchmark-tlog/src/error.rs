//! The one error type of this crate.

/// Everything that can go wrong while building, proving, parsing or verifying a log.
///
/// Messages are safe to show to a client: they never contain secret material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlogError {
    /// A leaf index was not below the tree size it was checked against.
    #[error("index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The index that was asked for.
        index: u64,
        /// The size of the tree.
        size: u64,
    },
    /// Two tree sizes were in the wrong order (the old size was larger than the new one).
    #[error("tree size {old} is larger than tree size {new}")]
    SizeOrder {
        /// The size that should have been the smaller one.
        old: u64,
        /// The size that should have been the larger one.
        new: u64,
    },
    /// The tree already holds `u64::MAX` leaves and cannot grow.
    #[error("the tree is full")]
    TreeFull,
    /// A proof had more or fewer hashes than its index and sizes require.
    #[error("proof has the wrong number of hashes")]
    ProofLength,
    /// A proof was well formed but the hashes it leads to do not match the expected root(s).
    #[error("proof does not lead to the expected root hash")]
    RootMismatch,
    /// A hash was not exactly 32 bytes, or not canonical base64 or hex.
    #[error("malformed hash")]
    MalformedHash,
    /// A [`crate::compact::CompactRange`] serialization was malformed.
    #[error("malformed compact range: {0}")]
    MalformedCompactRange(&'static str),
    /// A key name was empty or held a Unicode space or a `+`.
    #[error("invalid key name")]
    InvalidKeyName,
    /// A verifier key string was malformed, or its key ID does not match its name and key.
    #[error("malformed verifier key: {0}")]
    MalformedVerifierKey(&'static str),
    /// A signed note was malformed (bad UTF-8, control characters, missing blank line,
    /// malformed signature lines, text not ending in a newline...).
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// A note, or a document that embeds one, was larger than this crate accepts.
    #[error("note is too large")]
    NoteTooLarge,
    /// A note key failed to sign (an HSM that refused, a key that is gone).
    #[error("the note key could not sign: {0}")]
    Signing(String),
    /// A signature from a known key did not verify.
    #[error("invalid signature from key {name}")]
    BadSignature {
        /// The name of the key whose signature failed.
        name: String,
    },
    /// No signature on the note came from a known key.
    #[error("note has no signature from a known key")]
    UnverifiedNote,
    /// A checkpoint's text was malformed.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// A checkpoint's origin line did not match the name of the key that signs or verifies it.
    #[error("checkpoint origin does not match the key name")]
    OriginMismatch,
    /// A tile path was malformed or not in canonical form.
    #[error("malformed tile path")]
    MalformedTilePath,
    /// Tile coordinates were out of range (level above 63, width outside 1..=256).
    #[error("invalid tile coordinates")]
    InvalidTile,
    /// A tile's contents were not the length its width requires, or did not match the tree.
    #[error("tile contents do not match the tree")]
    TileMismatch,
    /// An entry exceeds 65,535 bytes, the most an entry bundle can hold.
    #[error("entry of {0} bytes is too large for an entry bundle")]
    EntryTooLarge(usize),
    /// An entry bundle was truncated, had trailing bytes, or held the wrong number of entries.
    #[error("malformed entry bundle")]
    MalformedBundle,
    /// A `c2sp.org/tlog-proof@v1` receipt was malformed.
    #[error("malformed receipt: {0}")]
    MalformedReceipt(&'static str),
    /// A [`crate::tree::HashReader`] or [`crate::tile::TileReader`] returned the wrong number
    /// of hashes or could not supply what was needed.
    #[error("hash reader returned the wrong number of hashes")]
    ReaderMismatch,
    /// A storage backend behind a reader failed.
    #[error("reading the log failed")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}
