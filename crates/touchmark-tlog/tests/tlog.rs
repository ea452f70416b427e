//! Integration tests for touchmark-tlog: spec vectors, properties against a reference
//! implementation, tiles, and independent verifiers (`tlog_tiles`, `signed_note`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::collections::HashMap;

use touchmark_tlog::TlogError;
use touchmark_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use touchmark_tlog::hash::{Hash, empty_root, leaf_hash, node_hash};
use touchmark_tlog::note::{NoteKey, NoteSigner, NoteVerifier, open_note};
use touchmark_tlog::tile::{Tile, TileReader};

/// The spec's seed: the 32 bytes 00 01 02 … 1f.
fn spec_seed() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

const SPEC_NAME: &str = "example.com/audit-log";

fn hashes_for(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
        .collect()
}

/// A straightforward recursive implementation of RFC 9162 §2.1, written from the definitions.
mod reference {
    use super::*;

    fn k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    pub fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => node_hash(&mth(&d[..k(n)]), &mth(&d[k(n)..])),
        }
    }

    /// PATH and PROOF over one list of leaves `d`, with MTH memoized by range so that every
    /// size and index up to a few hundred stays fast. Ranges are `d[lo..hi]`.
    pub struct Reference<'a> {
        d: &'a [Hash],
        memo: std::cell::RefCell<HashMap<(usize, usize), Hash>>,
    }

    impl<'a> Reference<'a> {
        pub fn new(d: &'a [Hash]) -> Self {
            Self {
                d,
                memo: Default::default(),
            }
        }

        pub fn mth(&self, lo: usize, hi: usize) -> Hash {
            if let Some(h) = self.memo.borrow().get(&(lo, hi)) {
                return *h;
            }
            let h = match hi - lo {
                0 => empty_root(),
                1 => self.d[lo],
                n => node_hash(&self.mth(lo, lo + k(n)), &self.mth(lo + k(n), hi)),
            };
            self.memo.borrow_mut().insert((lo, hi), h);
            h
        }

        /// PATH(m, D[lo:hi]) of RFC 9162 §2.1.3.1, `m` relative to `lo`.
        fn path_in(&self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
            let n = hi - lo;
            if n <= 1 {
                return vec![];
            }
            let k = k(n);
            let mut p;
            if m < k {
                p = self.path_in(m, lo, lo + k);
                p.push(self.mth(lo + k, hi));
            } else {
                p = self.path_in(m - k, lo + k, hi);
                p.push(self.mth(lo, lo + k));
            }
            p
        }

        /// SUBPROOF(m, D[lo:hi], b) of RFC 9162 §2.1.4.1.
        fn subproof(&self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
            let n = hi - lo;
            if m == n {
                return if b { vec![] } else { vec![self.mth(lo, hi)] };
            }
            let k = k(n);
            let mut p;
            if m <= k {
                p = self.subproof(m, lo, lo + k, b);
                p.push(self.mth(lo + k, hi));
            } else {
                p = self.subproof(m - k, lo + k, hi, false);
                p.push(self.mth(lo, lo + k));
            }
            p
        }

        /// The inclusion proof of leaf `m` in the tree of the first `n` leaves.
        pub fn path(&self, m: usize, n: usize) -> Vec<Hash> {
            self.path_in(m, 0, n)
        }

        /// PROOF(m, D[0:n]): the consistency proof from `m` to `n` leaves.
        pub fn proof(&self, m: usize, n: usize) -> Vec<Hash> {
            if m == 0 || m == n {
                return vec![];
            }
            self.subproof(m, 0, n, true)
        }
    }
}

/// An in-memory tiled log: paths to contents, with a switch to count reads.
#[derive(Default)]
struct TileStore {
    files: HashMap<String, Vec<u8>>,
    reads: Cell<usize>,
}

impl TileReader for TileStore {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, TlogError> {
        self.reads.set(self.reads.get() + 1);
        self.files
            .get(&tile.path())
            .cloned()
            .ok_or_else(|| TlogError::Read(format!("no {}", tile.path()).into()))
    }
}

/// Builds a tiled log of `n` entries, publishing every tile and bundle as it goes (and the
/// partial ones of every size in `checkpoints`).
fn tiled_log(n: u64, checkpoints: &[u64]) -> (Vec<Vec<u8>>, Vec<Hash>, TileStore) {
    use touchmark_tlog::tile::{TileBuilder, encode_bundle};
    let entries: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let mut store = TileStore::default();
    let mut b = TileBuilder::new();
    for (i, leaf) in leaves.iter().enumerate() {
        for (tile, data) in b.append(*leaf).unwrap() {
            assert!(tile.is_full());
            assert!(store.files.insert(tile.path(), data).is_none());
        }
        let size = i as u64 + 1;
        if size.is_multiple_of(256) || size == n || checkpoints.contains(&size) {
            for (tile, data) in b.partial_tiles().unwrap() {
                store.files.insert(tile.path(), data);
            }
            let start = (size - 1) / 256 * 256;
            let bundle = Tile::entries(start / 256, (size - start) as u16).unwrap();
            let data = encode_bundle(&entries[start as usize..size as usize]).unwrap();
            store.files.insert(bundle.path(), data);
        }
    }
    assert_eq!(b.root(), reference::mth(&leaves));
    (entries, leaves, store)
}

// The vectors of specs/TLOG.md, byte for byte.
mod vectors {
    use super::*;
    use touchmark_tlog::tree::{
        consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion,
    };

    fn h(s: &str) -> Hash {
        Hash::from_hex(s).unwrap()
    }

    fn spec_leaves() -> Vec<Hash> {
        ["leaf-0", "leaf-1", "leaf-2"]
            .iter()
            .map(|e| leaf_hash(e.as_bytes()))
            .collect()
    }

    const L0: &str = "305df59f9590c3c9ac63d2b2743c388e3792449078cebf7fb3dbe6471643b2b7";
    const L1: &str = "3145c409f259b7c53e32036090ff76751025a2498ba9823ef718cac50b4e616f";
    const L2: &str = "fca89f57c9f8c8eb4047a7ff9d333acf9e0f3384b20b255bceab0f216dcca267";
    const R2: &str = "60a53eed0de87a90c8e59427c59c46253c33a76a09502a51801300927b7e6bdc";
    const R3: &str = "cf763a041c81ceef1578a6083f75c61bef2e0014f2a3e683a97fcfca5be7f19a";

    #[test]
    fn leaf_hashes_and_roots() {
        let l = spec_leaves();
        assert_eq!(l, vec![h(L0), h(L1), h(L2)]);
        assert_eq!(root(&l[..2]), h(R2));
        assert_eq!(root(&l), h(R3));
        assert_eq!(
            empty_root().to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(root(&[]), empty_root());
    }

    #[test]
    fn inclusion_proofs() {
        let l = spec_leaves();
        let expected = [vec![h(L1), h(L2)], vec![h(L0), h(L2)], vec![h(R2)]];
        for (i, want) in expected.iter().enumerate() {
            let p = inclusion_proof(&l, i as u64).unwrap();
            assert_eq!(&p, want, "index {i}");
            verify_inclusion(&l[i], i as u64, 3, &p, &h(R3)).unwrap();
        }
    }

    #[test]
    fn consistency_proofs() {
        let l = spec_leaves();
        let p13 = consistency_proof(&l, 1).unwrap();
        assert_eq!(p13, vec![h(L1), h(L2)]);
        verify_consistency(1, 3, &h(L0), &h(R3), &p13).unwrap();
        let p23 = consistency_proof(&l, 2).unwrap();
        assert_eq!(p23, vec![h(L2)]);
        verify_consistency(2, 3, &h(R2), &h(R3), &p23).unwrap();
        assert!(consistency_proof(&l, 0).unwrap().is_empty());
        verify_consistency(0, 3, &empty_root(), &h(R3), &[]).unwrap();
    }

    #[test]
    fn verifier_key() {
        let s = NoteSigner::from_seed(SPEC_NAME, &spec_seed()).unwrap();
        let vkey = "example.com/audit-log+07499b2d+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
        assert_eq!(s.verifier().to_string(), vkey);
        assert_eq!(s.key_id(), 0x0749_9b2d);
        assert_eq!(NoteVerifier::parse(vkey).unwrap(), s.verifier());
    }

    #[test]
    fn signed_checkpoint() {
        let s = NoteSigner::from_seed(SPEC_NAME, &spec_seed()).unwrap();
        let cp = Checkpoint::new(SPEC_NAME, 3, h(R3)).unwrap();
        let signed = SignedCheckpoint::sign(cp.clone(), &s).unwrap();
        let expected = "example.com/audit-log\n3\nz3Y6BByBzu8VeKYIP3XGG+8uABTyo+aDqX/Pylvn8Zo=\n\n\
            \u{2014} example.com/audit-log B0mbLY8Z5bmTy0rQDIoZ1kcYOjwxIaKI/6x9/6KBXra8zXLxHKmJAbgRp3opjHBUAP+i+SR0Ox/u6JhSqowx60tJNwg=\n";
        assert_eq!(signed.note(), expected);
        let opened = SignedCheckpoint::open(expected.as_bytes(), &s.verifier()).unwrap();
        assert_eq!(opened.checkpoint(), &cp);
    }
}

// Properties: for every size up to 300, the library agrees with the reference and its
// verifiers accept exactly the right proofs.
mod properties {
    use super::*;
    use touchmark_tlog::compact::CompactRange;
    use touchmark_tlog::tree::{
        HashReader, LeafSlice, NodeId, consistency_proof, inclusion_proof, prove_consistency,
        prove_inclusion, root, root_from, verify_consistency, verify_inclusion,
    };

    const MAX: u64 = 300;

    /// Every byte of every hash for small proofs; one byte per hash (varying) otherwise.
    fn mutations(proof: &[Hash], exhaustive: bool, salt: usize) -> Vec<Vec<Hash>> {
        let mut out = Vec::new();
        for i in 0..proof.len() {
            let bytes: Vec<usize> = if exhaustive {
                (0..32).collect()
            } else {
                vec![(i * 7 + salt) % 32]
            };
            for b in bytes {
                let mut p = proof.to_vec();
                p[i].0[b] ^= 0x01;
                out.push(p);
            }
        }
        // Shorter and longer proofs too.
        if !proof.is_empty() {
            out.push(proof[..proof.len() - 1].to_vec());
        }
        let mut longer = proof.to_vec();
        longer.push(Hash::default());
        out.push(longer);
        out
    }

    /// Stored nodes of the first `MAX + 1` leaves, as a log server would keep them.
    fn stored(all: &[Hash]) -> MapReader {
        let mut c = CompactRange::new();
        let mut nodes = HashMap::new();
        for leaf in all {
            nodes.extend(c.append(*leaf).unwrap());
        }
        MapReader(nodes)
    }

    #[test]
    fn inclusion_every_size_and_index() {
        let all = hashes_for(MAX + 1);
        let reference = reference::Reference::new(&all);
        let reader = stored(&all);
        let roots: Vec<Hash> = (0..=MAX + 1)
            .map(|n| reference.mth(0, n as usize))
            .collect();
        for n in 1..=MAX {
            let leaves = &all[..n as usize];
            let r = roots[n as usize];
            assert_eq!(root(leaves), r);
            assert_eq!(root_from(&reader, n).unwrap(), r);
            for i in 0..n {
                let leaf = &leaves[i as usize];
                let p = prove_inclusion(&reader, i, n).unwrap();
                assert_eq!(p, reference.path(i as usize, n as usize), "n={n} i={i}");
                if n <= 64 {
                    assert_eq!(p, inclusion_proof(leaves, i).unwrap());
                }
                verify_inclusion(leaf, i, n, &p, &r).unwrap();
                for bad in mutations(&p, n <= 24, i as usize) {
                    assert!(
                        verify_inclusion(leaf, i, n, &bad, &r).is_err(),
                        "n={n} i={i}"
                    );
                }
                // Another index, or the wrong leaf, is rejected.
                for j in [i.wrapping_sub(1), i + 1, i ^ 2] {
                    if j != i && j < n {
                        assert!(
                            verify_inclusion(leaf, j, n, &p, &r).is_err(),
                            "n={n} i={i} j={j}"
                        );
                        assert!(verify_inclusion(&leaves[j as usize], i, n, &p, &r).is_err());
                    }
                }
                // Another tree size is rejected unless its proof happens to be the same.
                for m in [n - 1, n + 1] {
                    if m > i {
                        let same = reference.path(i as usize, m as usize) == p;
                        let ok = verify_inclusion(leaf, i, m, &p, &roots[m as usize]).is_ok();
                        assert_eq!(ok, same, "n={n} i={i} m={m}");
                    }
                }
                assert!(matches!(
                    verify_inclusion(leaf, n, n, &p, &r),
                    Err(TlogError::IndexOutOfRange { .. })
                ));
            }
        }
    }

    #[test]
    fn consistency_every_pair() {
        let all = hashes_for(MAX);
        let reference = reference::Reference::new(&all);
        let reader = stored(&all);
        let roots: Vec<Hash> = (0..=MAX).map(|n| reference.mth(0, n as usize)).collect();
        for n in 1..=MAX {
            let leaves = &all[..n as usize];
            for m in 0..=n {
                let p = prove_consistency(&reader, m, n).unwrap();
                assert_eq!(p, reference.proof(m as usize, n as usize), "{m}->{n}");
                if n <= 64 {
                    assert_eq!(p, consistency_proof(leaves, m).unwrap());
                }
                let (ro, rn) = (roots[m as usize], roots[n as usize]);
                verify_consistency(m, n, &ro, &rn, &p).unwrap();
                for bad in mutations(&p, n <= 24, m as usize) {
                    assert!(
                        verify_consistency(m, n, &ro, &rn, &bad).is_err(),
                        "{m}->{n}"
                    );
                }
                let mut flipped = ro;
                flipped.0[(m % 32) as usize] ^= 0x80;
                assert!(verify_consistency(m, n, &flipped, &rn, &p).is_err());
                if m > 0 {
                    // (From size 0 any new root is consistent.)
                    flipped = rn;
                    flipped.0[(n % 32) as usize] ^= 0x80;
                    assert!(verify_consistency(m, n, &ro, &flipped, &p).is_err());
                }
                // Other old sizes are rejected unless their proof happens to be the same.
                for m2 in [m.wrapping_sub(1), m + 1] {
                    if m2 <= n {
                        let same = reference.proof(m2 as usize, n as usize) == p;
                        let ok = verify_consistency(m2, n, &roots[m2 as usize], &rn, &p).is_ok();
                        assert_eq!(ok, same, "{m}->{n} as {m2}");
                    }
                }
            }
            let r = roots[n as usize];
            assert!(verify_consistency(n + 1, n, &r, &r, &[]).is_err());
        }
    }

    #[test]
    fn compact_range_root_at_every_size() {
        let all = hashes_for(MAX);
        let mut c = CompactRange::new();
        assert_eq!(c.root(), reference::mth(&[]));
        let mut nodes = HashMap::new();
        for (i, leaf) in all.iter().enumerate() {
            for (id, hash) in c.append(*leaf).unwrap() {
                assert!(nodes.insert(id, hash).is_none(), "node reported twice");
            }
            assert_eq!(c.root(), reference::mth(&all[..=i]));
        }
        // Every complete node was reported, with the right hash.
        let slice = LeafSlice(&all);
        let mut expected = 0;
        for level in 0..9u8 {
            for index in 0..(MAX >> level) {
                expected += 1;
                let id = NodeId::new(level, index);
                assert_eq!(slice.read_hashes(&[id]).unwrap().first(), nodes.get(&id));
            }
        }
        assert_eq!(nodes.len(), expected);
        // Proofs from those stored nodes equal proofs from the leaves.
        let reader = MapReader(nodes);
        for i in 0..MAX {
            assert_eq!(
                prove_inclusion(&reader, i, MAX).unwrap(),
                inclusion_proof(&all, i).unwrap()
            );
        }
    }

    struct MapReader(HashMap<NodeId, Hash>);

    impl HashReader for MapReader {
        fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, TlogError> {
            nodes
                .iter()
                .map(|n| self.0.get(n).copied().ok_or(TlogError::ReaderMismatch))
                .collect()
        }
    }
}

// Tiles: paths, the tiles of a tree, contents, and verification from tiles.
mod tiles {
    use super::*;
    use touchmark_tlog::tile::{
        TileAuditor, TileBuilder, TileHashReader, audit_tiles, audit_tiles_with, decode_bundle,
        new_entry_bundles, new_tiles, root_from_tiles, tile_contents, tiles_for_size,
        verify_root_from_tiles,
    };
    use touchmark_tlog::tree::{
        LeafSlice, consistency_proof, inclusion_proof, prove_consistency, prove_inclusion,
    };

    #[test]
    fn path_examples() {
        assert_eq!(
            Tile::hashes(0, 1234067, 256).unwrap().path(),
            "tile/0/x001/x234/067"
        );
        assert_eq!(Tile::hashes(0, 0, 256).unwrap().path(), "tile/0/000");
        assert_eq!(Tile::entries(0, 5).unwrap().path(), "tile/entries/000.p/5");
    }

    #[test]
    fn tiles_of_70000_leaves() {
        let tiles = tiles_for_size(70_000);
        let full0 = tiles
            .iter()
            .filter(|t| t.level() == Some(0) && t.is_full())
            .count();
        assert_eq!(full0, 273);
        let rest: Vec<String> = tiles
            .iter()
            .filter(|t| !(t.level() == Some(0) && t.is_full()))
            .map(Tile::path)
            .collect();
        assert_eq!(
            rest,
            [
                "tile/0/273.p/112",
                "tile/1/000",
                "tile/1/001.p/17",
                "tile/2/000.p/1"
            ]
        );
        assert_eq!(tiles.len(), 277);
        let paths: Vec<String> = tiles_for_size(256).iter().map(Tile::path).collect();
        assert_eq!(paths, ["tile/0/000", "tile/1/000.p/1"]);
        assert!(tiles_for_size(0).is_empty());
        let grow: Vec<String> = new_tiles(300, 513)
            .unwrap()
            .iter()
            .map(Tile::path)
            .collect();
        assert_eq!(grow, ["tile/0/001", "tile/0/002.p/1", "tile/1/000.p/2"]);
        let bundles: Vec<String> = new_entry_bundles(0, 513)
            .unwrap()
            .iter()
            .map(Tile::path)
            .collect();
        assert_eq!(
            bundles,
            [
                "tile/entries/000",
                "tile/entries/001",
                "tile/entries/002.p/1"
            ]
        );
    }

    #[test]
    fn builder_tiles_match_recomputation() {
        let n = 66_000;
        let (_, leaves, store) = tiled_log(n, &[]);
        let slice = LeafSlice(&leaves);
        let needed = tiles_for_size(n);
        assert!(needed.iter().any(|t| t.level() == Some(2)));
        for tile in &needed {
            let served = store.files.get(&tile.path()).expect("tile was published");
            assert_eq!(
                served,
                &tile_contents(&slice, tile).unwrap(),
                "{}",
                tile.path()
            );
        }
    }

    #[test]
    fn root_and_proofs_from_tiles() {
        let n = 66_000;
        let (_, leaves, store) = tiled_log(n, &[1, 255, 256, 257, 65_535, 65_536]);
        let root = reference::mth(&leaves);
        store.reads.set(0);
        assert_eq!(root_from_tiles(&store, n).unwrap(), root);
        assert!(store.reads.get() <= 3, "{} tile reads", store.reads.get());
        let cp = Checkpoint::new("o", n, root).unwrap();
        verify_root_from_tiles(&store, &cp).unwrap();
        let wrong = Checkpoint::new("o", n, leaves[0]).unwrap();
        assert!(matches!(
            verify_root_from_tiles(&store, &wrong),
            Err(TlogError::RootMismatch)
        ));

        let reader = TileHashReader::new(&store, n);
        for i in [0, 1, 255, 256, 257, 65_535, 65_536, n - 1] {
            assert_eq!(
                prove_inclusion(&reader, i, n).unwrap(),
                inclusion_proof(&leaves, i).unwrap(),
                "index {i}"
            );
        }
        for old in [1, 255, 256, 257, 65_535, 65_536] {
            assert_eq!(
                prove_consistency(&reader, old, n).unwrap(),
                consistency_proof(&leaves, old).unwrap(),
                "old {old}"
            );
            // The old root from the old size's partial tiles.
            assert_eq!(
                root_from_tiles(&store, old).unwrap(),
                reference::mth(&leaves[..old as usize])
            );
        }
    }

    #[test]
    fn full_audit_and_tampering() {
        let n = 1_000;
        let (entries, leaves, mut store) = tiled_log(n, &[]);
        let cp = Checkpoint::new("o", n, reference::mth(&leaves)).unwrap();
        let mut seen = Vec::new();
        audit_tiles(&store, &cp, |i, e| {
            seen.push((i, e.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), n as usize);
        assert!(seen.iter().all(|(i, e)| entries[*i as usize] == *e));

        // A changed hash tile is caught even though the entries are right.
        let path = "tile/0/001";
        let original = store.files[path].clone();
        store.files.get_mut(path).unwrap()[5] ^= 1;
        assert!(matches!(
            audit_tiles(&store, &cp, |_, _| Ok(())),
            Err(TlogError::TileMismatch)
        ));
        store.files.insert(path.to_owned(), original);

        // A changed entry changes the leaf tile it should produce.
        let bundle = "tile/entries/002";
        let original = store.files[bundle].clone();
        let mut data = original.clone();
        *data.last_mut().unwrap() ^= 1;
        store.files.insert(bundle.to_owned(), data);
        assert!(audit_tiles(&store, &cp, |_, _| Ok(())).is_err());
        store.files.insert(bundle.to_owned(), original);

        // A checkpoint with another root is caught.
        let wrong = Checkpoint::new("o", n, leaves[3]).unwrap();
        assert!(matches!(
            audit_tiles(&store, &wrong, |_, _| Ok(())),
            Err(TlogError::RootMismatch)
        ));
        // Errors from the callback stop the audit.
        assert!(
            audit_tiles(&store, &cp, |i, _| if i == 7 {
                Err(TlogError::TreeFull)
            } else {
                Ok(())
            })
            .is_err()
        );
        // A missing tile is an error, not a panic.
        store.files.remove("tile/1/000.p/3");
        assert!(matches!(
            audit_tiles(&store, &cp, |_, _| Ok(())),
            Err(TlogError::Read(_))
        ));
        let bundle = Tile::parse_path("tile/entries/003.p/232").unwrap();
        assert_eq!(
            decode_bundle(&store.files[&bundle.path()], 232)
                .unwrap()
                .len(),
            232
        );
    }

    /// An auditor that records every problem and lets the audit go on.
    #[derive(Default)]
    struct Recorder {
        entries: u64,
        unusable: Vec<String>,
        differing: Vec<String>,
        unreadable: Vec<String>,
        checked: usize,
        root: Option<Hash>,
    }

    impl TileAuditor for Recorder {
        fn entry(&mut self, index: u64, _: &[u8]) -> Result<(), TlogError> {
            assert!(index >= self.entries, "entries in order");
            self.entries = index + 1;
            Ok(())
        }

        fn bundle_unusable(&mut self, bundle: &Tile, _: TlogError) -> Result<(), TlogError> {
            self.unusable.push(bundle.path());
            Ok(())
        }

        fn check_tile(
            &mut self,
            tile: &Tile,
            recomputed: &[u8],
            served: Result<Vec<u8>, TlogError>,
        ) -> Result<(), TlogError> {
            self.checked += 1;
            match served {
                Ok(served) if served == recomputed => {}
                Ok(_) => self.differing.push(tile.path()),
                Err(_) => self.unreadable.push(tile.path()),
            }
            Ok(())
        }

        fn check_root(&mut self, root: &Hash, _: &Checkpoint) -> Result<(), TlogError> {
            self.root = Some(*root);
            Ok(())
        }
    }

    #[test]
    fn a_tolerant_auditor_hears_of_every_problem_and_the_root() {
        let n = 1_000;
        let (_, leaves, mut store) = tiled_log(n, &[]);
        let cp = Checkpoint::new("o", n, reference::mth(&leaves)).unwrap();
        let mut clean = Recorder::default();
        audit_tiles_with(&store, &cp, &mut clean).unwrap();
        assert_eq!(clean.entries, n);
        assert_eq!(clean.checked, tiles_for_size(n).len());
        assert!(clean.differing.is_empty() && clean.unreadable.is_empty());
        assert_eq!(clean.root, Some(*cp.root()));

        // A changed hash tile, an unreadable bundle and a missing upper tile, all at once.
        store.files.get_mut("tile/0/001").unwrap()[5] ^= 1;
        store.files.remove("tile/entries/002");
        store.files.remove("tile/1/000.p/3");
        let mut found = Recorder::default();
        audit_tiles_with(&store, &cp, &mut found).unwrap();
        assert_eq!(found.unusable, ["tile/entries/002"]);
        assert_eq!(found.differing, ["tile/0/001"]);
        assert_eq!(found.unreadable, ["tile/1/000.p/3"]);
        // The served leaf hashes stood in for the missing bundle, so the entries still lead to
        // the checkpoint's root.
        assert_eq!(found.entries, n);
        assert_eq!(found.root, Some(*cp.root()));
    }

    #[test]
    fn resume_builder_from_tiles() {
        for split in [1u64, 255, 256, 700, 65_536, 65_537] {
            let n = 66_000;
            let (_, leaves, store) = tiled_log(n, &[split]);
            let mut b = TileBuilder::resume(&store, split).unwrap();
            assert_eq!(b.root(), reference::mth(&leaves[..split as usize]));
            for leaf in &leaves[split as usize..] {
                for (tile, data) in b.append(*leaf).unwrap() {
                    assert_eq!(store.files[&tile.path()], data, "{}", tile.path());
                }
            }
            assert_eq!(b.root(), reference::mth(&leaves));
            for (tile, data) in b.partial_tiles().unwrap() {
                assert_eq!(store.files[&tile.path()], data);
            }
        }
    }
}

// Receipts in the c2sp.org/tlog-proof@v1 format.
mod receipts {
    use super::*;
    use touchmark_tlog::proof::{Receipt, verify_receipt};
    use touchmark_tlog::tree::{inclusion_proof, root};

    #[test]
    fn spec_receipt() {
        let s = NoteSigner::from_seed(SPEC_NAME, &spec_seed()).unwrap();
        let leaves: Vec<Hash> = ["leaf-0", "leaf-1", "leaf-2"]
            .iter()
            .map(|e| leaf_hash(e.as_bytes()))
            .collect();
        let signed =
            SignedCheckpoint::sign(Checkpoint::new(SPEC_NAME, 3, root(&leaves)).unwrap(), &s)
                .unwrap();
        let r = Receipt::new(1, inclusion_proof(&leaves, 1).unwrap(), &signed);
        let text = r.to_text();
        let expected = format!(
            "c2sp.org/tlog-proof@v1\nindex 1\n{}\n{}\n\n{}",
            leaves[0].to_base64(),
            leaves[2].to_base64(),
            signed.note()
        );
        assert_eq!(text, expected);
        let vkey = "example.com/audit-log+07499b2d+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
        let v = NoteVerifier::parse(vkey).unwrap();
        let cp = verify_receipt(text.as_bytes(), &leaf_hash(b"leaf-1"), &v).unwrap();
        assert_eq!((cp.size(), *cp.root()), (3, root(&leaves)));
        assert!(verify_receipt(text.as_bytes(), &leaf_hash(b"leaf-0"), &v).is_err());
        // Another log's key does not verify it.
        let other = NoteSigner::from_seed(SPEC_NAME, &[1; 32])
            .unwrap()
            .verifier();
        assert!(matches!(
            verify_receipt(text.as_bytes(), &leaf_hash(b"leaf-1"), &other),
            Err(TlogError::UnverifiedNote)
        ));
        // A witness cosignature appended to the checkpoint is ignored.
        let witness = NoteSigner::from_seed("witness.example", &[2; 32]).unwrap();
        let cosigned = format!(
            "{text}{}",
            witness
                .signature_line(signed.checkpoint().to_text().as_str())
                .unwrap()
        );
        verify_receipt(cosigned.as_bytes(), &leaf_hash(b"leaf-1"), &v).unwrap();
        let both = open_note(
            Receipt::parse(cosigned.as_bytes())
                .unwrap()
                .checkpoint_note()
                .as_bytes(),
            &[v.clone(), witness.verifier()],
        )
        .unwrap();
        assert_eq!(both.signers().len(), 2);
    }
}

// Independent verifiers: code we did not write checks what we produce.
mod independent {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use signed_note::{Note, StandardSigner, StandardVerifier, VerifierList};
    use touchmark_tlog::tile::{TileBuilder, tiles_for_size};
    use touchmark_tlog::tree::{consistency_proof, inclusion_proof, root};

    fn theirs(h: &Hash) -> tlog_tiles::Hash {
        tlog_tiles::Hash(h.0)
    }

    #[test]
    fn signed_note_verifies_our_checkpoint() {
        let s = NoteSigner::from_seed(SPEC_NAME, &spec_seed()).unwrap();
        let leaves = hashes_for(1234);
        let signed =
            SignedCheckpoint::sign(Checkpoint::new(SPEC_NAME, 1234, root(&leaves)).unwrap(), &s)
                .unwrap();
        let v = StandardVerifier::new(&s.verifier().to_string()).unwrap();
        let note = Note::from_bytes(signed.note().as_bytes()).unwrap();
        let (verified, unverified) = note.verify(&VerifierList::new(vec![Box::new(v)])).unwrap();
        assert_eq!((verified.len(), unverified.len()), (1, 0));
        assert_eq!(note.text(), signed.checkpoint().to_text().as_bytes());
        // tlog_tiles parses the checkpoint text to the same values.
        let cp = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
        assert_eq!(
            (cp.origin(), cp.size(), cp.hash().0),
            (SPEC_NAME, 1234, root(&leaves).0)
        );
        // A tampered note is rejected by them too.
        let bad = signed.note().replacen("1234", "1235", 1);
        let v = StandardVerifier::new(&s.verifier().to_string()).unwrap();
        assert!(
            Note::from_bytes(bad.as_bytes())
                .unwrap()
                .verify(&VerifierList::new(vec![Box::new(v)]))
                .is_err()
        );
    }

    #[test]
    fn signed_note_signs_the_same_bytes() {
        // Their signer, from the same seed, produces the spec's note; ours opens theirs.
        let s = NoteSigner::from_seed(SPEC_NAME, &spec_seed()).unwrap();
        let mut key = vec![0x01];
        key.extend_from_slice(&spec_seed());
        let skey = format!(
            "PRIVATE+KEY+{SPEC_NAME}+{:08x}+{}",
            s.key_id(),
            STANDARD.encode(key)
        );
        let signer = StandardSigner::new(&skey).unwrap();
        let text = "example.com/audit-log\n3\nz3Y6BByBzu8VeKYIP3XGG+8uABTyo+aDqX/Pylvn8Zo=\n";
        let mut note = Note::new(text.as_bytes(), &[]).unwrap();
        note.add_sigs(&[&signer]).unwrap();
        let bytes = note.to_bytes();
        assert_eq!(bytes, s.sign_note(text).unwrap().as_bytes());
        assert_eq!(open_note(&bytes, &[s.verifier()]).unwrap().text(), text);
    }

    #[test]
    fn tlog_tiles_checks_our_proofs() {
        for n in 1..=140u64 {
            let leaves = hashes_for(n);
            let r = theirs(&root(&leaves));
            for i in 0..n {
                let p: Vec<_> = inclusion_proof(&leaves, i)
                    .unwrap()
                    .iter()
                    .map(theirs)
                    .collect();
                tlog_tiles::check_record(&p, n, r, i, theirs(&leaves[i as usize])).unwrap();
            }
            for m in 1..=n {
                let p: Vec<_> = consistency_proof(&leaves, m)
                    .unwrap()
                    .iter()
                    .map(theirs)
                    .collect();
                let old = theirs(&root(&leaves[..m as usize]));
                tlog_tiles::check_tree(&p, n, r, m, old).unwrap();
            }
        }
    }

    /// tlog_tiles' in-memory storage, filled with its own `stored_hashes`.
    struct Stored(Vec<tlog_tiles::Hash>);

    impl tlog_tiles::HashReader for Stored {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
            indexes
                .iter()
                .map(|&i| {
                    self.0
                        .get(i as usize)
                        .copied()
                        .ok_or(tlog_tiles::Error::IndexesNotInTree)
                })
                .collect()
        }
    }

    /// Our C2SP path for one of their (height 8) Go-style paths `tile/8/<L>/<N>`.
    fn c2sp_path(go_path: &str) -> String {
        let rest = go_path.strip_prefix("tile/8/").unwrap();
        let rest = rest
            .strip_prefix("data/")
            .map_or(rest.to_owned(), |r| format!("entries/{r}"));
        format!("tile/{rest}")
    }

    #[test]
    fn tlog_tiles_computes_the_same_tiles() {
        let n = 70_000u64;
        let mut stored = Stored(Vec::new());
        let mut builder = TileBuilder::new();
        let mut ours: HashMap<String, Vec<u8>> = HashMap::new();
        for i in 0..n {
            let data = format!("entry {i}");
            let new = tlog_tiles::stored_hashes(i, data.as_bytes(), &stored).unwrap();
            stored.0.extend(new);
            for (tile, bytes) in builder.append(leaf_hash(data.as_bytes())).unwrap() {
                ours.insert(tile.path(), bytes);
            }
        }
        for (tile, bytes) in builder.partial_tiles().unwrap() {
            ours.insert(tile.path(), bytes);
        }
        // The same set of tiles, with the same contents.
        let their_tiles = tlog_tiles::Tile::new_tiles(8, 0, n);
        let mut their_paths: Vec<String> =
            their_tiles.iter().map(|t| c2sp_path(&t.path())).collect();
        let mut our_paths: Vec<String> = tiles_for_size(n).iter().map(Tile::path).collect();
        their_paths.sort();
        our_paths.sort();
        assert_eq!(their_paths, our_paths);
        for t in &their_tiles {
            let data = t.read_data(&stored).unwrap();
            assert_eq!(ours[&c2sp_path(&t.path())], data, "{}", t.path());
            // Their path parser and ours agree on the coordinates.
            let mine = Tile::parse_path(&c2sp_path(&t.path())).unwrap();
            assert_eq!(
                (mine.level(), mine.index(), u32::from(mine.width())),
                (Some(t.level()), t.level_index(), t.width())
            );
        }
        // And on the root.
        let their_root = tlog_tiles::tree_hash(n, &stored).unwrap();
        assert_eq!(their_root.0, builder.root().0);

        // tlog_tiles, reading our tiles, proves the same things we do.
        struct OurTiles<'a>(&'a HashMap<String, Vec<u8>>);
        impl tlog_tiles::TileReader for OurTiles<'_> {
            fn height(&self) -> u8 {
                8
            }
            fn read_tiles(
                &self,
                tiles: &[tlog_tiles::Tile],
            ) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
                tiles
                    .iter()
                    .map(|t| {
                        self.0
                            .get(&c2sp_path(&t.path()))
                            .cloned()
                            .ok_or(tlog_tiles::Error::InvalidTile)
                    })
                    .collect()
            }
            fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
        }
        let tiles = OurTiles(&ours);
        let reader = tlog_tiles::TileHashReader::new(n, their_root, &tiles);
        assert_eq!(tlog_tiles::tree_hash(n, &reader).unwrap(), their_root);
        let leaves = hashes_for(n);
        for i in [0, 1, 300, 65_535, 65_536, n - 1] {
            let p = tlog_tiles::prove_record(n, i, &reader).unwrap();
            let mine: Vec<_> = inclusion_proof(&leaves, i)
                .unwrap()
                .iter()
                .map(theirs)
                .collect();
            assert_eq!(p, mine, "record {i}");
        }
    }
}
