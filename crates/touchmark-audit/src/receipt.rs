//! A unit's receipt (`c2sp.org/tlog-proof@v1`), checked with the log's key alone: the
//! checkpoint's signature, the inclusion proof of the entry it names, and that the entry is the
//! unit's issuance.

use touchmark_core::event::{Event, EventBody};
use touchmark_tlog::checkpoint::Checkpoint;
use touchmark_tlog::hash::leaf_hash;
use touchmark_tlog::note::NoteVerifier;
use touchmark_tlog::proof::Receipt;

use crate::Error;

/// A unit's receipt, parsed but not yet verified.
#[derive(Debug, Clone)]
pub struct UnitReceipt(Receipt);

impl UnitReceipt {
    /// Parses a receipt's text.
    ///
    /// # Errors
    /// [`Error::Receipt`] when it is not a `c2sp.org/tlog-proof@v1` receipt.
    pub fn parse(text: &str) -> Result<Self, Error> {
        Receipt::parse(text.as_bytes())
            .map(Self)
            .map_err(Error::Receipt)
    }

    /// The index of the log entry the receipt proves.
    pub fn index(&self) -> u64 {
        self.0.index()
    }

    /// Verifies that `entry`, the log's entry at [`UnitReceipt::index`], is in the tree of a
    /// checkpoint signed by `key`, and that it is the issuance of `serial`. Returns the
    /// checkpoint.
    ///
    /// # Errors
    /// [`Error::ReceiptInvalid`] when the proof or the signature does not verify, and
    /// [`Error::NotTheIssuance`] when the entry is not the issuance of `serial`.
    pub fn verify(
        &self,
        entry: &[u8],
        serial: &str,
        key: &NoteVerifier,
    ) -> Result<Checkpoint, Error> {
        let checkpoint = self
            .0
            .verify(&leaf_hash(entry), key)
            .map_err(Error::ReceiptInvalid)?;
        match Event::from_canonical(entry).map(|e| e.body) {
            Ok(EventBody::UnitIssued { serial: s, .. }) if s.as_str() == serial => Ok(checkpoint),
            _ => Err(Error::NotTheIssuance {
                index: self.index(),
                serial: serial.to_owned(),
            }),
        }
    }
}
