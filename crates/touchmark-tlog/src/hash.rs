//! SHA-256 Merkle tree hashes with the RFC 6962 domain separation (RFC 9162 §2.1.1).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::TlogError;

/// Size of a hash in bytes.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 Merkle tree hash: a leaf hash, an interior node hash or a root.
///
/// `Display` and `Debug` show lowercase hex; checkpoints and receipts use
/// [`Hash::to_base64`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl Hash {
    /// Builds a hash from a slice that must be exactly 32 bytes long.
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedHash`] if the slice is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, TlogError> {
        <[u8; HASH_SIZE]>::try_from(bytes)
            .map(Self)
            .map_err(|_| TlogError::MalformedHash)
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }

    /// Standard base64 (RFC 4648 §4, padded), as used in checkpoints and receipts.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses standard, padded, canonical base64 of exactly 32 bytes.
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedHash`] on anything else.
    pub fn from_base64(s: &str) -> Result<Self, TlogError> {
        // 32 bytes are always 44 characters; checking first bounds the work on hostile input.
        if s.len() != 44 {
            return Err(TlogError::MalformedHash);
        }
        let bytes = STANDARD.decode(s).map_err(|_| TlogError::MalformedHash)?;
        Self::from_slice(&bytes)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }

    /// Parses 64 hex digits (either case).
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedHash`] if the string is not 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, TlogError> {
        let s = s.as_bytes();
        if s.len() != 2 * HASH_SIZE {
            return Err(TlogError::MalformedHash);
        }
        let mut out = [0u8; HASH_SIZE];
        for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Ok(Self(out))
    }
}

fn hex_digit(c: u8) -> Result<u8, TlogError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(TlogError::MalformedHash),
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl From<[u8; HASH_SIZE]> for Hash {
    fn from(bytes: [u8; HASH_SIZE]) -> Self {
        Self(bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The hash of a leaf: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn empty_root_matches_rfc() {
        assert_eq!(
            empty_root().to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn hex_and_base64_round_trip() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()).unwrap(), h);
        assert_eq!(Hash::from_base64(&h.to_base64()).unwrap(), h);
        assert!(Hash::from_hex("zz").is_err());
        assert!(Hash::from_base64("AAAA").is_err());
        // Non-canonical trailing bits and missing padding are rejected.
        assert!(Hash::from_base64("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").is_ok());
        assert!(Hash::from_base64("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=").is_err());
        assert!(Hash::from_base64("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU").is_err());
        assert_eq!(format!("{h:?}"), format!("Hash({h})"));
    }
}
