//! A general-purpose, dependency-light library for Merkle transparency logs.
//!
//! It implements the public formats byte for byte, so any independent verifier can check a log
//! built with it:
//!
//! - [`hash`] and [`tree`]: the RFC 6962 / RFC 9162 §2.1 Merkle tree, its root, and inclusion
//!   and consistency proofs, generated either from leaf hashes or from stored nodes
//!   ([`tree::HashReader`]), and verified with the RFC 9162 algorithms.
//! - [`compact`]: an incremental tree state (compact range) with O(log n) appends, which also
//!   reports the nodes each append completes.
//! - [`note`]: C2SP signed notes with Ed25519 keys (`c2sp.org/signed-note`).
//! - [`checkpoint`]: C2SP checkpoints (`c2sp.org/tlog-checkpoint`).
//! - [`tile`]: C2SP tiled logs (`c2sp.org/tlog-tiles`): tile paths, tile contents, entry
//!   bundles, and verifying a tree from its tiles.
//! - [`proof`]: offline receipts in the `c2sp.org/tlog-proof@v1` format.
//!
//! All fallible functions return the one error type, [`TlogError`]. Nothing here panics on
//! input read from the network or the disk.
//!
//! # Example
//!
//! ```
//! use touchmark_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
//! use touchmark_tlog::compact::CompactRange;
//! use touchmark_tlog::hash::leaf_hash;
//! use touchmark_tlog::note::{NoteSigner, NoteVerifier};
//! use touchmark_tlog::proof::{Receipt, verify_receipt};
//! use touchmark_tlog::tree;
//!
//! # fn main() -> Result<(), touchmark_tlog::TlogError> {
//! // The log: append entries, keeping only the compact range to compute the root.
//! let entries: [&[u8]; 3] = [b"leaf-0", b"leaf-1", b"leaf-2"];
//! let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
//! let mut state = CompactRange::new();
//! for leaf in &leaves {
//!     state.append(*leaf)?;
//! }
//!
//! // Sign a checkpoint with the log key (in practice the seed comes from a secret store).
//! let signer = NoteSigner::from_seed("example.com/log", &[42; 32])?;
//! let checkpoint = Checkpoint::new("example.com/log", state.size(), state.root())?;
//! let signed = SignedCheckpoint::sign(checkpoint, &signer)?;
//!
//! // A receipt for entry 1, checked by someone who knows only the verifier key.
//! let receipt = Receipt::new(1, tree::inclusion_proof(&leaves, 1)?, &signed).to_text();
//! let verifier: NoteVerifier = signer.verifier().to_string().parse()?;
//! let checkpoint = verify_receipt(receipt.as_bytes(), &leaf_hash(b"leaf-1"), &verifier)?;
//! assert_eq!(checkpoint.size(), 3);
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
pub mod compact;
mod error;
pub mod hash;
pub mod note;
pub mod proof;
pub mod tile;
pub mod tree;

pub use error::TlogError;
pub use hash::Hash;
