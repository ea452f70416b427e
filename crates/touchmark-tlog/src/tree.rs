//! Merkle tree roots, inclusion proofs and consistency proofs (RFC 9162 §2.1).
//!
//! Proofs can be generated from a slice of leaf hashes, or from stored nodes through a
//! [`HashReader`], so a log server need not hold every leaf in memory: only the hashes of
//! complete ("perfect") subtrees are ever read, and those never change once written.

use crate::TlogError;
use crate::hash::{Hash, empty_root, node_hash};

/// The coordinates of a complete subtree: the node at `level` (0 = leaves) and position
/// `index` within that level. It covers the leaves `index·2^level .. (index+1)·2^level`.
///
/// Once the tree has at least `(index+1)·2^level` leaves, the node's hash never changes,
/// so it can be stored and served forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves (0 for a leaf hash).
    pub level: u8,
    /// Position within the level, from the left.
    pub index: u64,
}

impl NodeId {
    /// A node at `level`, `index`.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }
}

/// A source of stored complete-subtree hashes, for example a database table of
/// the nodes returned by [`crate::compact::CompactRange::append`], or hash tiles
/// (see [`crate::tile::TileHashReader`]).
pub trait HashReader {
    /// Returns the hashes of `nodes`, in the same order and the same number.
    ///
    /// # Errors
    ///
    /// An implementation returns [`TlogError::Read`] when its storage fails, and
    /// [`TlogError::ReaderMismatch`] when a node is not available.
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, TlogError>;
}

/// A [`HashReader`] over an in-memory slice of all leaf hashes. Interior nodes are
/// recomputed on every read, so this is meant for small trees and tests.
#[derive(Clone, Copy, Debug)]
pub struct LeafSlice<'a>(pub &'a [Hash]);

impl HashReader for LeafSlice<'_> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, TlogError> {
        nodes
            .iter()
            .map(|n| {
                let width = 1u64.checked_shl(u32::from(n.level));
                let lo = width.and_then(|w| n.index.checked_mul(w));
                let hi = lo.zip(width).and_then(|(lo, w)| lo.checked_add(w));
                let (Some(lo), Some(hi)) = (lo, hi) else {
                    return Err(TlogError::ReaderMismatch);
                };
                let (Ok(lo), Ok(hi)) = (usize::try_from(lo), usize::try_from(hi)) else {
                    return Err(TlogError::ReaderMismatch);
                };
                self.0
                    .get(lo..hi)
                    .map(root)
                    .ok_or(TlogError::ReaderMismatch)
            })
            .collect()
    }
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle tree hash (MTH) of a list of leaf hashes: no padding, split at the largest
/// power of two below the size; [`empty_root`] for no leaves.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            // Leaf counts fit in u64 on every platform Rust supports.
            let k = split_point(leaves.len() as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// A half-open range of leaves `[lo, hi)` whose start is aligned to a power of two at least
/// as large as its length, as every range in an RFC 9162 proof is. Its MTH is then the
/// right-to-left fold of its perfect subtrees.
#[derive(Clone, Copy, Debug)]
struct Range {
    lo: u64,
    hi: u64,
}

impl Range {
    /// The complete subtrees that make up the range, largest (leftmost) first.
    fn nodes(self, out: &mut Vec<NodeId>) {
        let mut lo = self.lo;
        while lo < self.hi {
            let rest = self.hi - lo;
            // Largest power of two that fits in the rest, and to which `lo` is aligned.
            let mut level = 63 - rest.leading_zeros();
            if lo != 0 {
                level = level.min(lo.trailing_zeros());
            }
            out.push(NodeId::new(level as u8, lo >> level));
            lo += 1 << level;
        }
    }
}

/// The ranges whose hashes make up the inclusion proof of `index` in a tree of `size`
/// (RFC 9162 §2.1.3.1, PATH), from the leaf upwards.
fn inclusion_ranges(index: u64, size: u64) -> Vec<Range> {
    fn path(m: u64, lo: u64, hi: u64, out: &mut Vec<Range>) {
        if hi - lo <= 1 {
            return;
        }
        let k = split_point(hi - lo);
        if m < lo + k {
            path(m, lo, lo + k, out);
            out.push(Range { lo: lo + k, hi });
        } else {
            path(m, lo + k, hi, out);
            out.push(Range { lo, hi: lo + k });
        }
    }
    let mut out = Vec::new();
    path(index, 0, size, &mut out);
    out
}

/// The ranges whose hashes make up the consistency proof from `old` to `new` leaves
/// (RFC 9162 §2.1.4.1, SUBPROOF), for `0 < old < new`.
fn consistency_ranges(old: u64, new: u64) -> Vec<Range> {
    fn subproof(m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Range>) {
        if m == hi {
            if !whole {
                out.push(Range { lo, hi });
            }
            return;
        }
        let k = split_point(hi - lo);
        if m <= lo + k {
            subproof(m, lo, lo + k, whole, out);
            out.push(Range { lo: lo + k, hi });
        } else {
            subproof(m, lo + k, hi, false, out);
            out.push(Range { lo, hi: lo + k });
        }
    }
    let mut out = Vec::new();
    subproof(old, 0, new, true, &mut out);
    out
}

/// Reads the nodes of all `ranges` in one call and folds each into its MTH.
fn hash_ranges<R: HashReader + ?Sized>(
    reader: &R,
    ranges: &[Range],
) -> Result<Vec<Hash>, TlogError> {
    let mut nodes = Vec::new();
    let mut counts = Vec::with_capacity(ranges.len());
    for r in ranges {
        let before = nodes.len();
        r.nodes(&mut nodes);
        counts.push(nodes.len() - before);
    }
    let hashes = reader.read_hashes(&nodes)?;
    if hashes.len() != nodes.len() {
        return Err(TlogError::ReaderMismatch);
    }
    let mut out = Vec::with_capacity(ranges.len());
    let mut rest = hashes.as_slice();
    for count in counts {
        let (these, tail) = rest.split_at(count);
        rest = tail;
        let mut it = these.iter().rev();
        // Every range in a proof is non-empty, so it has at least one node.
        let Some(last) = it.next() else {
            return Err(TlogError::ReaderMismatch);
        };
        out.push(it.fold(*last, |acc, left| node_hash(left, &acc)));
    }
    Ok(out)
}

/// The root of a tree of `size` leaves, from at most 64 stored nodes.
///
/// # Errors
///
/// Whatever the reader returns.
pub fn root_from<R: HashReader + ?Sized>(reader: &R, size: u64) -> Result<Hash, TlogError> {
    if size == 0 {
        return Ok(empty_root());
    }
    let hashes = hash_ranges(reader, &[Range { lo: 0, hi: size }])?;
    hashes.into_iter().next().ok_or(TlogError::ReaderMismatch)
}

/// The inclusion proof of leaf `index` in a tree of `size` leaves, from stored nodes.
///
/// # Errors
///
/// [`TlogError::IndexOutOfRange`] if `index >= size`, or whatever the reader returns.
pub fn prove_inclusion<R: HashReader + ?Sized>(
    reader: &R,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, TlogError> {
    if index >= size {
        return Err(TlogError::IndexOutOfRange { index, size });
    }
    hash_ranges(reader, &inclusion_ranges(index, size))
}

/// The consistency proof from a tree of `old` leaves to one of `new` leaves, from stored
/// nodes. It is empty when `old` is 0 or equal to `new`.
///
/// # Errors
///
/// [`TlogError::SizeOrder`] if `old > new`, or whatever the reader returns.
pub fn prove_consistency<R: HashReader + ?Sized>(
    reader: &R,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, TlogError> {
    if old > new {
        return Err(TlogError::SizeOrder { old, new });
    }
    if old == 0 || old == new {
        return Ok(Vec::new());
    }
    hash_ranges(reader, &consistency_ranges(old, new))
}

/// The inclusion proof of leaf `index` in the tree made of all of `leaves`.
///
/// # Errors
///
/// [`TlogError::IndexOutOfRange`] if `index >= leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, TlogError> {
    prove_inclusion(&LeafSlice(leaves), index, leaves.len() as u64)
}

/// The consistency proof from the first `old` of `leaves` to all of them.
///
/// # Errors
///
/// [`TlogError::SizeOrder`] if `old > leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old: u64) -> Result<Vec<Hash>, TlogError> {
    prove_consistency(&LeafSlice(leaves), old, leaves.len() as u64)
}

/// Shifts `fn_` and `sn` right until the low bit of `fn_` is set or `fn_` is 0.
fn shift_to_set_bit(fn_: &mut u64, sn: &mut u64) {
    if *fn_ == 0 {
        return;
    }
    let shift = fn_.trailing_zeros();
    *fn_ >>= shift;
    *sn >>= shift;
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with root `root`
/// (RFC 9162 §2.1.3.2).
///
/// # Errors
///
/// [`TlogError::IndexOutOfRange`] if `index >= size`, [`TlogError::ProofLength`] if the proof
/// has the wrong number of hashes, [`TlogError::RootMismatch`] if it leads to another root.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TlogError> {
    if index >= size {
        return Err(TlogError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(TlogError::ProofLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            shift_to_set_bit(&mut fn_, &mut sn);
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(TlogError::ProofLength);
    }
    if r != *root {
        return Err(TlogError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `old` leaves with root `old_root` is a prefix of the tree of
/// `new` leaves with root `new_root` (RFC 9162 §2.1.4.2).
///
/// From size 0 the proof must be empty and `old_root` must be [`empty_root`]. For equal sizes
/// the proof must be empty and the roots equal.
///
/// # Errors
///
/// [`TlogError::SizeOrder`] if `old > new`, [`TlogError::ProofLength`] if the proof has the
/// wrong number of hashes, [`TlogError::RootMismatch`] if it does not lead to both roots.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), TlogError> {
    if old > new {
        return Err(TlogError::SizeOrder { old, new });
    }
    if old == 0 || old == new {
        if !proof.is_empty() {
            return Err(TlogError::ProofLength);
        }
        let ok = if old == 0 {
            *old_root == empty_root()
        } else {
            old_root == new_root
        };
        return if ok {
            Ok(())
        } else {
            Err(TlogError::RootMismatch)
        };
    }
    // When the old size is a power of two, the old root is itself a node of the new tree
    // and is left out of the proof: put it back at the front.
    let mut path = proof.iter();
    let first = if old.is_power_of_two() {
        old_root
    } else {
        path.next().ok_or(TlogError::ProofLength)?
    };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    let shift = fn_.trailing_ones();
    fn_ >>= shift;
    sn >>= shift;
    let (mut fr, mut sr) = (*first, *first);
    for c in path {
        if sn == 0 {
            return Err(TlogError::ProofLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            shift_to_set_bit(&mut fn_, &mut sn);
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(TlogError::ProofLength);
    }
    if fr != *old_root || sr != *new_root {
        return Err(TlogError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::hash::leaf_hash;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn range_nodes_decompose_binary() {
        let mut out = Vec::new();
        Range { lo: 0, hi: 7 }.nodes(&mut out);
        assert_eq!(
            out,
            vec![NodeId::new(2, 0), NodeId::new(1, 2), NodeId::new(0, 6)]
        );
        out.clear();
        Range { lo: 8, hi: 11 }.nodes(&mut out);
        assert_eq!(out, vec![NodeId::new(1, 4), NodeId::new(0, 10)]);
    }

    #[test]
    fn reader_root_matches_slice_root() {
        for n in 0..70 {
            let l = leaves(n);
            assert_eq!(root_from(&LeafSlice(&l), n).unwrap(), root(&l));
        }
    }

    #[test]
    fn index_out_of_range() {
        let l = leaves(3);
        assert!(matches!(
            inclusion_proof(&l, 3),
            Err(TlogError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            verify_inclusion(&l[0], 3, 3, &[], &root(&l)),
            Err(TlogError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            consistency_proof(&l, 4),
            Err(TlogError::SizeOrder { .. })
        ));
    }

    #[test]
    fn consistency_edge_cases() {
        let l = leaves(5);
        let r = root(&l);
        verify_consistency(0, 5, &empty_root(), &r, &[]).unwrap();
        assert!(verify_consistency(0, 5, &r, &r, &[]).is_err());
        assert!(verify_consistency(0, 5, &empty_root(), &r, &[r]).is_err());
        verify_consistency(5, 5, &r, &r, &[]).unwrap();
        assert!(verify_consistency(5, 5, &r, &l[0], &[]).is_err());
        assert!(verify_consistency(5, 5, &r, &r, &[r]).is_err());
        let p = consistency_proof(&l, 4).unwrap();
        verify_consistency(4, 5, &root(&l[..4]), &r, &p).unwrap();
    }
}
