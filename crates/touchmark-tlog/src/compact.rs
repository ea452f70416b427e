//! An incremental tree state (a compact range, or frontier): the roots of the perfect
//! subtrees that make up the tree, so appending costs O(log n) and never re-reads the log.

use crate::TlogError;
use crate::hash::{HASH_SIZE, Hash, empty_root, node_hash};
use crate::tree::{HashReader, NodeId};

/// The state of an append-only Merkle tree: its size and the hashes of the perfect subtrees
/// that make it up, one per set bit of the size, largest (leftmost) first.
///
/// This is all a log writer needs to keep to compute the root after every append. Persist it
/// with [`CompactRange::to_bytes`] and restore it with [`CompactRange::from_bytes`], or rebuild
/// it from stored nodes with [`CompactRange::from_reader`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CompactRange {
    size: u64,
    peaks: Vec<Hash>,
}

impl CompactRange {
    /// The state of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a state from a size and its perfect-subtree roots, largest first.
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedCompactRange`] if the number of roots is not the number of set
    /// bits of `size`.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Result<Self, TlogError> {
        if peaks.len() != size.count_ones() as usize {
            return Err(TlogError::MalformedCompactRange(
                "number of roots does not match the size",
            ));
        }
        Ok(Self { size, peaks })
    }

    /// The positions of the perfect subtrees that make up a tree of `size` leaves,
    /// largest first: the nodes [`CompactRange::peaks`] holds the hashes of.
    pub fn peak_nodes(size: u64) -> Vec<NodeId> {
        let mut out = Vec::with_capacity(size.count_ones() as usize);
        let mut lo = 0u64;
        for level in (0..64u8).rev() {
            if size >> level & 1 == 1 {
                out.push(NodeId::new(level, lo >> level));
                lo += 1 << level;
            }
        }
        out
    }

    /// Rebuilds the state of a tree of `size` leaves from stored nodes (at most 64 reads).
    ///
    /// # Errors
    ///
    /// Whatever the reader returns, or [`TlogError::ReaderMismatch`] if it returns the wrong
    /// number of hashes.
    pub fn from_reader<R: HashReader + ?Sized>(reader: &R, size: u64) -> Result<Self, TlogError> {
        let nodes = Self::peak_nodes(size);
        let peaks = reader.read_hashes(&nodes)?;
        if peaks.len() != nodes.len() {
            return Err(TlogError::ReaderMismatch);
        }
        Ok(Self { size, peaks })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest (leftmost) first.
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// The root hash of the tree.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }

    /// Appends a leaf hash and returns every node this completes, bottom-up, starting with the
    /// leaf itself at level 0. A log stores these (or the tiles made of them,
    /// see [`crate::tile::TileBuilder`]) to serve proofs later.
    ///
    /// # Errors
    ///
    /// [`TlogError::TreeFull`] if the tree already has `u64::MAX` leaves.
    pub fn append(&mut self, leaf: Hash) -> Result<Vec<(NodeId, Hash)>, TlogError> {
        let new_size = self.size.checked_add(1).ok_or(TlogError::TreeFull)?;
        let mut completed = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        let mut node = NodeId::new(0, self.size);
        let mut hash = leaf;
        completed.push((node, hash));
        // Each trailing one bit of the old size is a peak of the same height as the node we
        // carry, immediately to its left: merge them.
        for _ in 0..self.size.trailing_ones() {
            let Some(left) = self.peaks.pop() else {
                // The number of peaks equals the number of set bits, so this cannot happen.
                return Err(TlogError::MalformedCompactRange("missing root"));
            };
            hash = node_hash(&left, &hash);
            node = NodeId::new(node.level + 1, node.index >> 1);
            completed.push((node, hash));
        }
        self.peaks.push(hash);
        self.size = new_size;
        Ok(completed)
    }

    /// Serializes the state: the size as a big-endian u64, then the roots.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + HASH_SIZE * self.peaks.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for p in &self.peaks {
            out.extend_from_slice(&p.0);
        }
        out
    }

    /// Restores a state written by [`CompactRange::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedCompactRange`] if the bytes are not such a serialization.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TlogError> {
        let (size, rest) = bytes
            .split_first_chunk::<8>()
            .ok_or(TlogError::MalformedCompactRange("truncated"))?;
        let size = u64::from_be_bytes(*size);
        if rest.len() != HASH_SIZE * size.count_ones() as usize {
            return Err(TlogError::MalformedCompactRange(
                "length does not match the size",
            ));
        }
        let peaks = rest
            .chunks_exact(HASH_SIZE)
            .map(Hash::from_slice)
            .collect::<Result<_, _>>()?;
        Ok(Self { size, peaks })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::{LeafSlice, root};

    #[test]
    fn append_matches_root_and_reports_nodes() {
        let mut c = CompactRange::new();
        let mut leaves = Vec::new();
        assert_eq!(c.root(), empty_root());
        for i in 0u64..100 {
            let l = leaf_hash(&i.to_be_bytes());
            leaves.push(l);
            let done = c.append(l).unwrap();
            assert_eq!(done.len(), 1 + i.trailing_ones() as usize);
            for (node, hash) in done {
                let got = LeafSlice(&leaves).read_hashes(&[node]).unwrap();
                assert_eq!(got, vec![hash]);
            }
            assert_eq!(c.root(), root(&leaves));
            let restored = CompactRange::from_bytes(&c.to_bytes()).unwrap();
            assert_eq!(restored, c);
            let rebuilt = CompactRange::from_reader(&LeafSlice(&leaves), c.size()).unwrap();
            assert_eq!(rebuilt, c);
        }
    }

    #[test]
    fn rejects_bad_serializations() {
        assert!(CompactRange::from_bytes(&[]).is_err());
        assert!(CompactRange::from_bytes(&3u64.to_be_bytes()).is_err());
        let mut b = 1u64.to_be_bytes().to_vec();
        b.extend_from_slice(&[0; 33]);
        assert!(CompactRange::from_bytes(&b).is_err());
        assert!(CompactRange::from_parts(3, vec![Hash::default()]).is_err());
        let mut full = CompactRange::from_parts(u64::MAX, vec![Hash::default(); 64]).unwrap();
        assert!(matches!(
            full.append(Hash::default()),
            Err(TlogError::TreeFull)
        ));
    }
}
