//! Proofs served from the stored tiles: the nodes a proof needs are found first, then only
//! their tiles are read.

use std::cell::RefCell;
use std::collections::HashMap;

use touchmark_tlog::tile::{Tile, TileHashReader, TileReader, tile_for_node};
use touchmark_tlog::tree::{self, HashReader, NodeId};
use touchmark_tlog::{Hash, TlogError};

use super::{Log, LogError};

/// Records which nodes a proof asks for, and answers nothing.
#[derive(Default)]
struct Recorder(RefCell<Vec<NodeId>>);

impl HashReader for Recorder {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, TlogError> {
        self.0.borrow_mut().extend_from_slice(nodes);
        Err(TlogError::ReaderMismatch)
    }
}

/// Tiles fetched ahead of a proof.
struct Fetched(HashMap<Tile, Vec<u8>>);

impl TileReader for Fetched {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, TlogError> {
        self.0.get(tile).cloned().ok_or(TlogError::ReaderMismatch)
    }
}

impl Log {
    /// Reads the contents of a hash tile at exactly its width, if the log has published it.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn hash_tile(
        &self,
        level: u8,
        index: u64,
        width: u16,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let want = usize::from(width) * 32;
        Ok(self
            .store
            .log_tile(level, index)
            .await?
            .filter(|d| d.len() >= want)
            .map(|mut d| {
                d.truncate(want);
                d
            }))
    }

    async fn prove(
        &self,
        size: u64,
        proof: impl Fn(&dyn HashReader) -> Result<Vec<Hash>, TlogError>,
    ) -> Result<Vec<Hash>, LogError> {
        let recorder = Recorder::default();
        if let Ok(hashes) = proof(&recorder) {
            return Ok(hashes);
        }
        let mut tiles = HashMap::new();
        for node in recorder.0.into_inner() {
            let tile = tile_for_node(node, size).ok_or(TlogError::ReaderMismatch)?;
            if let (std::collections::hash_map::Entry::Vacant(slot), Some(level)) =
                (tiles.entry(tile), tile.level())
            {
                let data = self
                    .hash_tile(level, tile.index(), tile.width())
                    .await?
                    .ok_or_else(|| LogError::Inconsistent(format!("tile {tile} is missing")))?;
                slot.insert(data);
            }
        }
        let fetched = Fetched(tiles);
        Ok(proof(&TileHashReader::new(&fetched, size))?)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    ///
    /// # Errors
    /// [`TlogError::IndexOutOfRange`] (as [`LogError::Tlog`]) or storage errors.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.prove(size, |r| tree::prove_inclusion(r, index, size))
            .await
    }

    /// The consistency proof from the tree of `old` entries to the tree of `new`.
    ///
    /// # Errors
    /// [`TlogError::SizeOrder`] (as [`LogError::Tlog`]) or storage errors.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.prove(new, |r| tree::prove_consistency(r, old, new))
            .await
    }
}
