//! Offline-verifiable receipts in the `c2sp.org/tlog-proof@v1` format
//! (<https://c2sp.org/tlog-proof>): an entry's index, its inclusion proof, and the signed
//! checkpoint it is proven against.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <n>
//! <base64 proof hash, one per line, from the leaf's sibling upwards>
//!
//! <signed checkpoint, verbatim>
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::TlogError;
use crate::checkpoint::{Checkpoint, SignedCheckpoint, parse_decimal};
use crate::hash::Hash;
use crate::note::{MAX_NOTE_SIZE, NoteVerifier};
use crate::tree::verify_inclusion;

/// The first line of a receipt.
pub const RECEIPT_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The most proof hashes a receipt can need (a tree has at most 2^64 - 1 leaves).
const MAX_PROOF_HASHES: usize = 64;

/// A `c2sp.org/tlog-proof@v1` receipt. Parsing checks its form only; [`Receipt::verify`]
/// checks the checkpoint signature and the inclusion proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    extra: Option<Vec<u8>>,
    index: u64,
    proof: Vec<Hash>,
    checkpoint: String,
}

impl Receipt {
    /// A receipt for the entry at `index`, with its inclusion proof in `checkpoint`'s tree.
    pub fn new(index: u64, proof: Vec<Hash>, checkpoint: &SignedCheckpoint) -> Self {
        Self {
            extra: None,
            index,
            proof,
            checkpoint: checkpoint.note().to_owned(),
        }
    }

    /// Attaches opaque, unauthenticated extra data (omitted when empty).
    #[must_use]
    pub fn with_extra(mut self, extra: Vec<u8>) -> Self {
        self.extra = (!extra.is_empty()).then_some(extra);
        self
    }

    /// The extra data, if any. It is not authenticated: do not trust it implicitly.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The index of the entry.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The inclusion proof.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The signed checkpoint note, verbatim (not yet verified).
    pub fn checkpoint_note(&self) -> &str {
        &self.checkpoint
    }

    /// The receipt text (the same as `Display`).
    pub fn to_text(&self) -> String {
        self.to_string()
    }

    /// Parses a receipt.
    ///
    /// # Errors
    ///
    /// [`TlogError::NoteTooLarge`] or [`TlogError::MalformedReceipt`].
    pub fn parse(text: &[u8]) -> Result<Self, TlogError> {
        if text.len() > MAX_NOTE_SIZE + 4096 {
            return Err(TlogError::NoteTooLarge);
        }
        let text =
            std::str::from_utf8(text).map_err(|_| TlogError::MalformedReceipt("not UTF-8"))?;
        let mut rest = text;
        let mut next_line = || -> Result<&str, TlogError> {
            let (line, tail) = rest
                .split_once('\n')
                .ok_or(TlogError::MalformedReceipt("truncated"))?;
            rest = tail;
            Ok(line)
        };
        if next_line()? != RECEIPT_HEADER {
            return Err(TlogError::MalformedReceipt("wrong header line"));
        }
        let mut line = next_line()?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            let data = STANDARD
                .decode(b64)
                .map_err(|_| TlogError::MalformedReceipt("extra is not base64"))?;
            if data.is_empty() {
                return Err(TlogError::MalformedReceipt("empty extra line"));
            }
            extra = Some(data);
            line = next_line()?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(TlogError::MalformedReceipt("invalid index line"))?;
        let mut proof = Vec::new();
        loop {
            let line = next_line()?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(TlogError::MalformedReceipt("too many proof hashes"));
            }
            proof.push(
                Hash::from_base64(line)
                    .map_err(|_| TlogError::MalformedReceipt("invalid proof hash"))?,
            );
        }
        if rest.is_empty() {
            return Err(TlogError::MalformedReceipt("no checkpoint"));
        }
        Ok(Self {
            extra,
            index,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// Verifies the receipt for the entry whose leaf hash is `leaf`
    /// ([`crate::hash::leaf_hash`] of the entry bytes): the checkpoint signature by the log's
    /// key (whose name must be the origin), then the inclusion proof against its size and root.
    /// Returns the verified checkpoint.
    ///
    /// # Errors
    ///
    /// As [`SignedCheckpoint::open`] and [`verify_inclusion`].
    pub fn verify(&self, leaf: &Hash, verifier: &NoteVerifier) -> Result<Checkpoint, TlogError> {
        let signed = SignedCheckpoint::open(self.checkpoint.as_bytes(), verifier)?;
        let checkpoint = signed.checkpoint();
        verify_inclusion(
            leaf,
            self.index,
            checkpoint.size(),
            &self.proof,
            checkpoint.root(),
        )?;
        Ok(checkpoint.clone())
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{RECEIPT_HEADER}")?;
        if let Some(extra) = &self.extra {
            writeln!(f, "extra {}", STANDARD.encode(extra))?;
        }
        writeln!(f, "index {}", self.index)?;
        for h in &self.proof {
            writeln!(f, "{}", h.to_base64())?;
        }
        writeln!(f)?;
        f.write_str(&self.checkpoint)
    }
}

/// Parses and verifies a receipt in one step (see [`Receipt::verify`]).
///
/// # Errors
///
/// As [`Receipt::parse`] and [`Receipt::verify`].
pub fn verify_receipt(
    receipt: &[u8],
    leaf: &Hash,
    verifier: &NoteVerifier,
) -> Result<Checkpoint, TlogError> {
    Receipt::parse(receipt)?.verify(leaf, verifier)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hash::leaf_hash;
    use crate::note::NoteSigner;
    use crate::tree::{inclusion_proof, root};

    fn fixture() -> (Vec<Hash>, NoteSigner, SignedCheckpoint) {
        let leaves: Vec<Hash> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
        let signer = NoteSigner::from_seed("log.example", &[9; 32]).unwrap();
        let cp = Checkpoint::new("log.example", 5, root(&leaves)).unwrap();
        let signed = SignedCheckpoint::sign(cp, &signer).unwrap();
        (leaves, signer, signed)
    }

    #[test]
    fn round_trip_and_verify() {
        let (leaves, signer, signed) = fixture();
        for i in 0..5 {
            let r = Receipt::new(i, inclusion_proof(&leaves, i).unwrap(), &signed);
            let r = if i == 2 {
                r.with_extra(b"ctx".to_vec())
            } else {
                r
            };
            let text = r.to_text();
            let parsed = Receipt::parse(text.as_bytes()).unwrap();
            assert_eq!(parsed, r);
            let cp =
                verify_receipt(text.as_bytes(), &leaves[i as usize], &signer.verifier()).unwrap();
            assert_eq!(cp.size(), 5);
            let other = leaves[(i as usize + 1) % 5];
            assert!(parsed.verify(&other, &signer.verifier()).is_err());
        }
    }

    #[test]
    fn rejects_malformed() {
        let (leaves, _, signed) = fixture();
        let good = Receipt::new(1, inclusion_proof(&leaves, 1).unwrap(), &signed).to_text();
        let cases = [
            good.replacen("@v1", "@v2", 1),
            good.replacen("index 1", "index 01", 1),
            good.replacen("index 1", "index -1", 1),
            good.replacen("index 1", "index  1", 1),
            good.replacen("index 1\n", "", 1),
            good.replacen("index 1", "extra \nindex 1", 1),
            good.replacen("index 1", "extra !!\nindex 1", 1),
            good.replacen("=\n", "\n", 1),
            good.split("\n\n").next().unwrap().to_owned(),
            format!("{}\n\n", good.split("\n\n").next().unwrap()),
        ];
        for c in cases {
            assert!(Receipt::parse(c.as_bytes()).is_err(), "{c}");
        }
    }
}
