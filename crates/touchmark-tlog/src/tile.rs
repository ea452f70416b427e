//! C2SP tiled logs (<https://c2sp.org/tlog-tiles>): tile coordinates and paths, tile contents,
//! entry bundles, and verification of a tree from its tiles.
//!
//! A hash tile at level `L` and index `N` holds up to 256 consecutive hashes of the tree level
//! `8·L`: level 0 holds leaf hashes, and each hash at level `L+1` is the root of one full tile
//! at level `L`. Entry bundle `N` holds the entries whose leaf hashes make up level-0 tile `N`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use crate::TlogError;
use crate::checkpoint::{Checkpoint, parse_decimal};
use crate::compact::CompactRange;
use crate::hash::{HASH_SIZE, Hash, leaf_hash};
use crate::tree::{self, HashReader, NodeId};

/// The height of a tile: each tile spans 8 tree levels.
pub const TILE_HEIGHT: u8 = 8;

/// The number of hashes (or entries) in a full tile.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;

/// The highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;

/// The largest entry an entry bundle can hold (its length is a big-endian u16).
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// What a tile holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TileKind {
    /// Hashes of tree level `8·level`.
    Hashes {
        /// The tile level (0 for leaf hashes).
        level: u8,
    },
    /// Length-prefixed log entries (an entry bundle).
    Entries,
}

/// The coordinates of a hash tile or an entry bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    kind: TileKind,
    index: u64,
    width: u16,
}

fn check_width(width: u16) -> Result<(), TlogError> {
    if (1..=TILE_WIDTH).contains(&width) {
        Ok(())
    } else {
        Err(TlogError::InvalidTile)
    }
}

impl Tile {
    /// The hash tile at `level`, `index`, holding `width` hashes (256 for a full tile).
    ///
    /// # Errors
    ///
    /// [`TlogError::InvalidTile`] if the level is above 63 or the width is not in 1..=256.
    pub fn hashes(level: u8, index: u64, width: u16) -> Result<Self, TlogError> {
        if level > MAX_TILE_LEVEL {
            return Err(TlogError::InvalidTile);
        }
        check_width(width)?;
        Ok(Self {
            kind: TileKind::Hashes { level },
            index,
            width,
        })
    }

    /// The entry bundle `index`, holding `width` entries (256 for a full bundle).
    ///
    /// # Errors
    ///
    /// [`TlogError::InvalidTile`] if the width is not in 1..=256.
    pub fn entries(index: u64, width: u16) -> Result<Self, TlogError> {
        check_width(width)?;
        Ok(Self {
            kind: TileKind::Entries,
            index,
            width,
        })
    }

    /// What the tile holds.
    pub fn kind(&self) -> TileKind {
        self.kind
    }

    /// The tile level, or `None` for an entry bundle.
    pub fn level(&self) -> Option<u8> {
        match self.kind {
            TileKind::Hashes { level } => Some(level),
            TileKind::Entries => None,
        }
    }

    /// The index of the tile within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The number of hashes or entries in the tile.
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile is full (256 wide). Full tiles never change.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The path of the tile, relative to the log prefix: `tile/<L>/<N>[.p/<W>]` or
    /// `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        self.to_string()
    }

    /// Parses a tile path in its canonical form only (no leading zeros in the level or
    /// width, three-digit groups, `.p/<W>` only for partial tiles).
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedTilePath`] on anything else.
    pub fn parse_path(path: &str) -> Result<Self, TlogError> {
        // The longest canonical path is well under 64 bytes.
        if path.len() > 64 {
            return Err(TlogError::MalformedTilePath);
        }
        let rest = path
            .strip_prefix("tile/")
            .ok_or(TlogError::MalformedTilePath)?;
        let (level, rest) = rest.split_once('/').ok_or(TlogError::MalformedTilePath)?;
        let (number, width) = match rest.split_once(".p/") {
            Some((n, w)) => (
                n,
                parse_decimal(w)
                    .and_then(|w| u16::try_from(w).ok())
                    .ok_or(TlogError::MalformedTilePath)?,
            ),
            None => (rest, TILE_WIDTH),
        };
        let mut index = 0u64;
        for group in number.split('/') {
            let digits = group.strip_prefix('x').unwrap_or(group);
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TlogError::MalformedTilePath);
            }
            let value: u64 = digits.parse().map_err(|_| TlogError::MalformedTilePath)?;
            index = index
                .checked_mul(1000)
                .and_then(|i| i.checked_add(value))
                .ok_or(TlogError::MalformedTilePath)?;
        }
        let tile = if level == "entries" {
            Self::entries(index, width)
        } else {
            let level = parse_decimal(level)
                .and_then(|l| u8::try_from(l).ok())
                .ok_or(TlogError::MalformedTilePath)?;
            Self::hashes(level, index, width)
        }
        .map_err(|_| TlogError::MalformedTilePath)?;
        // Reject every non-canonical spelling (`x` on the last group, a missing `x`, a
        // `.p/256`...) by comparing with the one canonical form.
        if tile.path() != path {
            return Err(TlogError::MalformedTilePath);
        }
        Ok(tile)
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TileKind::Hashes { level } => write!(f, "tile/{level}/")?,
            TileKind::Entries => write!(f, "tile/entries/")?,
        }
        let mut groups = Vec::new();
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                write!(f, "x{g:03}/")?;
            } else {
                write!(f, "{g:03}")?;
            }
        }
        if !self.is_full() {
            write!(f, ".p/{}", self.width)?;
        }
        Ok(())
    }
}

/// The number of hashes at tile level `level` in a tree of `size` leaves.
fn hashes_at_level(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// The hash tiles that change when a tree grows from `old` to `new` leaves: the tiles a log
/// publishes with the checkpoint of size `new`. Full tiles first, then the partial one, level
/// by level from level 0.
///
/// # Errors
///
/// [`TlogError::SizeOrder`] if `old > new`.
pub fn new_tiles(old: u64, new: u64) -> Result<Vec<Tile>, TlogError> {
    if old > new {
        return Err(TlogError::SizeOrder { old, new });
    }
    let mut out = Vec::new();
    let mut level = 0u8;
    loop {
        let (old_n, new_n) = (hashes_at_level(old, level), hashes_at_level(new, level));
        if new_n == 0 {
            break;
        }
        if old_n != new_n {
            for index in (old_n >> TILE_HEIGHT)..(new_n >> TILE_HEIGHT) {
                out.push(Tile::hashes(level, index, TILE_WIDTH)?);
            }
            // The remainder is below 256, so it fits in a u16.
            let width = (new_n % u64::from(TILE_WIDTH)) as u16;
            if width > 0 {
                out.push(Tile::hashes(level, new_n >> TILE_HEIGHT, width)?);
            }
        }
        level += 1;
    }
    Ok(out)
}

/// Every hash tile of a tree of `size` leaves (as [`new_tiles`] from 0).
pub fn tiles_for_size(size: u64) -> Vec<Tile> {
    new_tiles(0, size).unwrap_or_default()
}

/// The entry bundles that change when a tree grows from `old` to `new` leaves.
///
/// # Errors
///
/// [`TlogError::SizeOrder`] if `old > new`.
pub fn new_entry_bundles(old: u64, new: u64) -> Result<Vec<Tile>, TlogError> {
    let level0 = new_tiles(old, new)?;
    level0
        .into_iter()
        .filter(|t| t.level() == Some(0))
        .map(|t| Tile::entries(t.index, t.width))
        .collect()
}

/// The hash tile at `level`, `index` of a tree of `size` leaves, with the width that size
/// implies, or `None` if that tile is empty at this size.
/// The hash tile of a tree of `size` leaves that holds the hashes of `node`'s subtree at the
/// tile's level, or `None` when the node is not complete in that tree. With it a server can
/// find the tiles a proof needs (see [`crate::tree::HashReader`]).
pub fn tile_for_node(node: crate::tree::NodeId, size: u64) -> Option<Tile> {
    if node.level >= 64 || (u128::from(node.index) + 1) << node.level > u128::from(size) {
        return None;
    }
    let first = node.index << (node.level % TILE_HEIGHT);
    tile_at_size(node.level / TILE_HEIGHT, first >> TILE_HEIGHT, size)
}

fn tile_at_size(level: u8, index: u64, size: u64) -> Option<Tile> {
    let n = hashes_at_level(size, level);
    let start = index.checked_mul(u64::from(TILE_WIDTH))?;
    let width = n.checked_sub(start)?.min(u64::from(TILE_WIDTH));
    Tile::hashes(level, index, u16::try_from(width).ok()?).ok()
}

/// The contents of hash tile `tile`, read from stored nodes (only nodes at tree levels that
/// are multiples of 8 are read).
///
/// # Errors
///
/// [`TlogError::InvalidTile`] for an entry bundle, or whatever the reader returns.
pub fn tile_contents<R: HashReader + ?Sized>(
    reader: &R,
    tile: &Tile,
) -> Result<Vec<u8>, TlogError> {
    let level = tile.level().ok_or(TlogError::InvalidTile)?;
    let tree_level = level
        .checked_mul(TILE_HEIGHT)
        .ok_or(TlogError::InvalidTile)?;
    let start = tile
        .index
        .checked_mul(u64::from(TILE_WIDTH))
        .ok_or(TlogError::InvalidTile)?;
    let nodes: Vec<NodeId> = (0..u64::from(tile.width))
        .map(|i| NodeId::new(tree_level, start + i))
        .collect();
    let hashes = reader.read_hashes(&nodes)?;
    if hashes.len() != nodes.len() {
        return Err(TlogError::ReaderMismatch);
    }
    Ok(hashes.iter().flat_map(|h| h.0).collect())
}

/// Splits tile contents into hashes, checking that they hold exactly `width` hashes.
///
/// # Errors
///
/// [`TlogError::TileMismatch`] if the length is not `width · 32`.
pub fn tile_hashes(data: &[u8], width: u16) -> Result<Vec<Hash>, TlogError> {
    if data.len() != usize::from(width) * HASH_SIZE {
        return Err(TlogError::TileMismatch);
    }
    data.chunks_exact(HASH_SIZE).map(Hash::from_slice).collect()
}

/// Encodes an entry bundle: each entry prefixed with its length as a big-endian u16.
///
/// # Errors
///
/// [`TlogError::EntryTooLarge`] if an entry is over 65,535 bytes.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TlogError> {
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| TlogError::EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes an entry bundle that must hold exactly `count` entries.
///
/// # Errors
///
/// [`TlogError::MalformedBundle`] if it is truncated, holds another number of entries, or
/// has trailing bytes.
pub fn decode_bundle(data: &[u8], count: usize) -> Result<Vec<&[u8]>, TlogError> {
    let mut out = Vec::with_capacity(count.min(usize::from(TILE_WIDTH)));
    let mut rest = data;
    while !rest.is_empty() {
        if out.len() == count {
            return Err(TlogError::MalformedBundle);
        }
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(TlogError::MalformedBundle)?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(TlogError::MalformedBundle);
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
    }
    if out.len() != count {
        return Err(TlogError::MalformedBundle);
    }
    Ok(out)
}

/// A source of tiles and entry bundles: a directory, an HTTP client, a database.
pub trait TileReader {
    /// Returns the contents of `tile` (hash tile or entry bundle) at exactly its width.
    ///
    /// # Errors
    ///
    /// An implementation returns [`TlogError::Read`] when its storage or transport fails.
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, TlogError>;
}

/// A [`HashReader`] that answers from the hash tiles of a tree of a given size, so proofs can
/// be computed from tiles (see [`crate::tree::prove_inclusion`]).
///
/// It checks tile lengths, not tile contents: tiles from an untrusted source are only
/// authenticated once a root computed from them matches a verified checkpoint (see
/// [`verify_root_from_tiles`]).
#[derive(Debug)]
pub struct TileHashReader<'a, R: ?Sized> {
    reader: &'a R,
    size: u64,
}

impl<'a, R: TileReader + ?Sized> TileHashReader<'a, R> {
    /// A reader over the tiles of a tree of `size` leaves.
    pub fn new(reader: &'a R, size: u64) -> Self {
        Self { reader, size }
    }
}

impl<R: TileReader + ?Sized> HashReader for TileHashReader<'_, R> {
    fn read_hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, TlogError> {
        let mut cache: HashMap<Tile, Vec<Hash>> = HashMap::new();
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            // The node must be complete in this tree.
            if node.level >= 64
                || (u128::from(node.index) + 1) << node.level > u128::from(self.size)
            {
                return Err(TlogError::ReaderMismatch);
            }
            let level = node.level / TILE_HEIGHT;
            let below = node.level % TILE_HEIGHT;
            // The node spans 2^below consecutive hashes of tree level 8·level.
            let first = node.index << below;
            let count = 1usize << below;
            let tile = tile_at_size(level, first >> TILE_HEIGHT, self.size)
                .ok_or(TlogError::ReaderMismatch)?;
            let hashes = match cache.entry(tile) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let data = self.reader.read_tile(&tile)?;
                    e.insert(tile_hashes(&data, tile.width)?)
                }
            };
            let offset = (first % u64::from(TILE_WIDTH)) as usize;
            let span = hashes
                .get(offset..offset + count)
                .ok_or(TlogError::ReaderMismatch)?;
            out.push(tree::root(span));
        }
        Ok(out)
    }
}

/// Computes the root of a tree of `size` leaves from its tiles, reading at most one tile per
/// level boundary (O(log n) tiles).
///
/// # Errors
///
/// Whatever the reader returns, or [`TlogError::TileMismatch`] for a tile of the wrong length.
pub fn root_from_tiles<R: TileReader + ?Sized>(reader: &R, size: u64) -> Result<Hash, TlogError> {
    tree::root_from(&TileHashReader::new(reader, size), size)
}

/// Checks that the tiles the root depends on match a (verified) checkpoint.
///
/// # Errors
///
/// [`TlogError::RootMismatch`] if they do not, or as [`root_from_tiles`].
pub fn verify_root_from_tiles<R: TileReader + ?Sized>(
    reader: &R,
    checkpoint: &Checkpoint,
) -> Result<(), TlogError> {
    if root_from_tiles(reader, checkpoint.size())? == *checkpoint.root() {
        Ok(())
    } else {
        Err(TlogError::RootMismatch)
    }
}

/// What a full audit of a tiled log ([`audit_tiles_with`]) reports to, and how strict it is.
///
/// Only [`TileAuditor::entry`] has no default. The other methods default to the strict
/// behaviour of [`audit_tiles`]: the first unusable bundle, differing tile or wrong root ends the
/// audit with an error. An auditor that overrides them can record each problem instead and let
/// the audit go on, so that it can name every tile and entry that is wrong.
pub trait TileAuditor {
    /// Receives each entry of the tree, in order, with its index.
    ///
    /// # Errors
    ///
    /// Whatever the auditor returns ends the audit with that error.
    fn entry(&mut self, index: u64, entry: &[u8]) -> Result<(), TlogError>;

    /// Hears that an entry bundle could not be read (`error` is the reader's) or decoded
    /// ([`TlogError::MalformedBundle`]). If this returns `Ok`, the audit goes on without the
    /// bundle's entries: the leaf hashes of the served level-0 tile (or zero hashes, if that
    /// tile is unusable too) stand in for the ones its entries would give, so the levels above
    /// are still checked.
    ///
    /// # Errors
    ///
    /// By default `error`, which ends the audit.
    fn bundle_unusable(&mut self, bundle: &Tile, error: TlogError) -> Result<(), TlogError> {
        let _ = bundle;
        Err(error)
    }

    /// Compares hash tile `tile` as recomputed from the entries with what the reader served for
    /// it, or the reader's error. Called once for every hash tile of the checkpoint's tree,
    /// partial tiles included, as soon as the entries before it determine it.
    ///
    /// # Errors
    ///
    /// By default the reader's error, or [`TlogError::TileMismatch`] when the two differ.
    fn check_tile(
        &mut self,
        tile: &Tile,
        recomputed: &[u8],
        served: Result<Vec<u8>, TlogError>,
    ) -> Result<(), TlogError> {
        let _ = tile;
        if served? == recomputed {
            Ok(())
        } else {
            Err(TlogError::TileMismatch)
        }
    }

    /// Compares the root recomputed from the entries with the checkpoint's, once every tile
    /// has been checked.
    ///
    /// # Errors
    ///
    /// By default [`TlogError::RootMismatch`] when they differ.
    fn check_root(&mut self, recomputed: &Hash, checkpoint: &Checkpoint) -> Result<(), TlogError> {
        if recomputed == checkpoint.root() {
            Ok(())
        } else {
            Err(TlogError::RootMismatch)
        }
    }
}

/// The auditor of [`audit_tiles`]: a callback for the entries, strict about everything else.
struct EntryCallback<F>(F);

impl<F: FnMut(u64, &[u8]) -> Result<(), TlogError>> TileAuditor for EntryCallback<F> {
    fn entry(&mut self, index: u64, entry: &[u8]) -> Result<(), TlogError> {
        (self.0)(index, entry)
    }
}

/// A full audit of a tiled log: reads every entry bundle of the checkpoint's tree, hands each
/// entry to `on_entry` with its index, recomputes every hash tile and compares it with the one
/// the reader serves, and checks that the recomputed root is the checkpoint's.
///
/// Memory use is one bundle plus one pending tile per level. This is [`audit_tiles_with`] with
/// an auditor that stops at the first problem.
///
/// # Errors
///
/// [`TlogError::MalformedBundle`], [`TlogError::TileMismatch`] if a served hash tile differs
/// from the recomputation, [`TlogError::RootMismatch`], whatever the reader returns, or
/// whatever `on_entry` returns.
pub fn audit_tiles<R, F>(reader: &R, checkpoint: &Checkpoint, on_entry: F) -> Result<(), TlogError>
where
    R: TileReader + ?Sized,
    F: FnMut(u64, &[u8]) -> Result<(), TlogError>,
{
    audit_tiles_with(reader, checkpoint, &mut EntryCallback(on_entry))
}

/// A full audit of a tiled log, reporting to `auditor`: reads every entry bundle of the
/// checkpoint's tree and hands each entry to [`TileAuditor::entry`], recomputes every hash
/// tile from the leaf hashes and has [`TileAuditor::check_tile`] compare it with the one the
/// reader serves, then has [`TileAuditor::check_root`] compare the recomputed root with the
/// checkpoint's. How far it goes after a problem is the auditor's choice.
///
/// Memory use is one bundle plus one pending tile per level.
///
/// # Errors
///
/// Whatever the auditor returns, or [`TlogError::InvalidTile`] and [`TlogError::TreeFull`] for
/// a checkpoint size no tree can have.
pub fn audit_tiles_with<R, A>(
    reader: &R,
    checkpoint: &Checkpoint,
    auditor: &mut A,
) -> Result<(), TlogError>
where
    R: TileReader + ?Sized,
    A: TileAuditor + ?Sized,
{
    let mut builder = TileBuilder::new();
    let append = |builder: &mut TileBuilder, auditor: &mut A, leaf: Hash| {
        for (tile, contents) in builder.append(leaf)? {
            auditor.check_tile(&tile, &contents, reader.read_tile(&tile))?;
        }
        Ok::<(), TlogError>(())
    };
    for bundle in new_entry_bundles(0, checkpoint.size())? {
        let width = usize::from(bundle.width);
        let unusable = match reader.read_tile(&bundle) {
            Ok(data) => match decode_bundle(&data, width) {
                Ok(entries) => {
                    for entry in entries {
                        auditor.entry(builder.size(), entry)?;
                        append(&mut builder, auditor, leaf_hash(entry))?;
                    }
                    None
                }
                Err(error) => Some(error),
            },
            Err(error) => Some(error),
        };
        if let Some(error) = unusable {
            auditor.bundle_unusable(&bundle, error)?;
            let level0 = Tile::hashes(0, bundle.index, bundle.width)?;
            let leaves = reader
                .read_tile(&level0)
                .and_then(|served| tile_hashes(&served, bundle.width))
                .unwrap_or_else(|_| vec![Hash::default(); width]);
            for leaf in leaves {
                append(&mut builder, auditor, leaf)?;
            }
        }
    }
    for (tile, contents) in builder.partial_tiles()? {
        auditor.check_tile(&tile, &contents, reader.read_tile(&tile))?;
    }
    auditor.check_root(&builder.root(), checkpoint)
}

/// Builds hash tiles as leaves are appended: the writer's side of a tiled log.
///
/// [`TileBuilder::append`] returns every tile that becomes full, once; those never change.
/// [`TileBuilder::partial_tiles`] gives the partial tiles of the current size, to publish with
/// its checkpoint.
#[derive(Clone, Debug, Default)]
pub struct TileBuilder {
    range: CompactRange,
    /// The hashes of the partial tile at each tile level.
    pending: Vec<Vec<Hash>>,
}

impl TileBuilder {
    /// A builder for the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes building a tree of `size` leaves from its stored tiles. Only the partial tiles
    /// (at most one per level) are read.
    ///
    /// The tiles are trusted: compare [`TileBuilder::root`] with the last signed checkpoint
    /// before appending.
    ///
    /// # Errors
    ///
    /// Whatever the reader returns, or [`TlogError::TileMismatch`] for a tile of the wrong
    /// length.
    pub fn resume<R: TileReader + ?Sized>(reader: &R, size: u64) -> Result<Self, TlogError> {
        let mut pending = Vec::new();
        for tile in tiles_for_size(size) {
            if let (Some(level), false) = (tile.level(), tile.is_full()) {
                let level = usize::from(level);
                pending.resize(pending.len().max(level + 1), Vec::new());
                pending[level] = tile_hashes(&reader.read_tile(&tile)?, tile.width)?;
            }
        }
        let range = CompactRange::from_reader(&TileHashReader::new(reader, size), size)?;
        Ok(Self { range, pending })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The underlying compact range.
    pub fn compact_range(&self) -> &CompactRange {
        &self.range
    }

    /// Appends a leaf hash and returns the tiles this makes full, with their contents.
    ///
    /// # Errors
    ///
    /// [`TlogError::TreeFull`] if the tree cannot grow.
    pub fn append(&mut self, leaf: Hash) -> Result<Vec<(Tile, Vec<u8>)>, TlogError> {
        let mut full = Vec::new();
        for (node, hash) in self.range.append(leaf)? {
            if node.level % TILE_HEIGHT != 0 {
                continue;
            }
            let level = node.level / TILE_HEIGHT;
            let slot = usize::from(level);
            if self.pending.len() <= slot {
                self.pending.resize(slot + 1, Vec::new());
            }
            let buf = &mut self.pending[slot];
            buf.push(hash);
            if buf.len() == usize::from(TILE_WIDTH) {
                let tile = Tile::hashes(level, node.index >> TILE_HEIGHT, TILE_WIDTH)?;
                full.push((tile, buf.iter().flat_map(|h| h.0).collect()));
                buf.clear();
            }
        }
        Ok(full)
    }

    /// Serializes the builder's state (the compact range and the pending partial tiles) so a
    /// writer can persist it beside its checkpoint and resume without reading any tile.
    pub fn to_bytes(&self) -> Vec<u8> {
        let range = self.range.to_bytes();
        let mut out =
            Vec::with_capacity(4 + range.len() + self.pending.len() * (2 + 8 * HASH_SIZE));
        out.extend_from_slice(&(range.len() as u32).to_be_bytes());
        out.extend_from_slice(&range);
        for level in &self.pending {
            out.extend_from_slice(&(level.len() as u16).to_be_bytes());
            for h in level {
                out.extend_from_slice(&h.0);
            }
        }
        out
    }

    /// Restores a state written by [`TileBuilder::to_bytes`], checking that every pending tile
    /// has the width the tree's size implies.
    ///
    /// # Errors
    ///
    /// [`TlogError::MalformedCompactRange`] if the bytes are not such a serialization.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TlogError> {
        let bad = TlogError::MalformedCompactRange;
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or(bad("truncated"))?;
        let len = u32::from_be_bytes(*len) as usize;
        let (range, mut rest) = (
            rest.get(..len).ok_or(bad("truncated"))?,
            &rest[len.min(rest.len())..],
        );
        let range = CompactRange::from_bytes(range)?;
        let mut pending = Vec::new();
        while !rest.is_empty() {
            let (count, tail) = rest.split_first_chunk::<2>().ok_or(bad("truncated"))?;
            let count = usize::from(u16::from_be_bytes(*count));
            let body = tail.get(..count * HASH_SIZE).ok_or(bad("truncated"))?;
            let level = u8::try_from(pending.len()).map_err(|_| bad("too many levels"))?;
            let expected = hashes_at_level(range.size(), level) % u64::from(TILE_WIDTH);
            if count as u64 != expected {
                return Err(bad("a pending tile's width does not match the size"));
            }
            pending.push(
                body.chunks_exact(HASH_SIZE)
                    .map(Hash::from_slice)
                    .collect::<Result<Vec<_>, _>>()?,
            );
            rest = &tail[count * HASH_SIZE..];
        }
        Ok(Self { range, pending })
    }

    /// The partial tiles of the current size, lowest level first, with their contents.
    ///
    /// # Errors
    ///
    /// [`TlogError::InvalidTile`] only if the builder's state is corrupt.
    pub fn partial_tiles(&self) -> Result<Vec<(Tile, Vec<u8>)>, TlogError> {
        let mut out = Vec::new();
        for (level, buf) in self.pending.iter().enumerate() {
            if buf.is_empty() {
                continue;
            }
            let level = u8::try_from(level).map_err(|_| TlogError::InvalidTile)?;
            let width = u16::try_from(buf.len()).map_err(|_| TlogError::InvalidTile)?;
            let index = hashes_at_level(self.size(), level) >> TILE_HEIGHT;
            out.push((
                Tile::hashes(level, index, width)?,
                buf.iter().flat_map(|h| h.0).collect(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths() {
        let cases = [
            (Tile::hashes(0, 0, 256), "tile/0/000"),
            (Tile::hashes(1, 1234067, 256), "tile/1/x001/x234/067"),
            (Tile::hashes(2, 1000, 17), "tile/2/x001/000.p/17"),
            (Tile::entries(999, 1), "tile/entries/999.p/1"),
            (Tile::entries(1234067, 256), "tile/entries/x001/x234/067"),
        ];
        for (tile, path) in cases {
            let tile = tile.unwrap();
            assert_eq!(tile.path(), path);
            assert_eq!(Tile::parse_path(path).unwrap(), tile);
        }
    }

    #[test]
    fn non_canonical_paths_are_rejected() {
        for p in [
            "tile/0/0",
            "tile/0/0000",
            "tile/0/x000",
            "tile/0/001/000",
            "tile/0/x000/001",
            "tile/0/x001/x234/x067",
            "tile/00/000",
            "tile/01/000",
            "tile/+1/000",
            "tile/64/000",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/017",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000/",
            "tile/0//000",
            "tile/data/000",
            "tile/0/+01",
            "tile/0/-01",
            "tiles/0/000",
            "/tile/0/000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/entries/000.p/256",
        ] {
            assert!(Tile::parse_path(p).is_err(), "{p}");
        }
        assert!(Tile::parse_path("tile/63/x018/x446/x744/x073/x709/x551/615").is_ok());
    }

    #[test]
    fn bundles() {
        let entries: Vec<&[u8]> = vec![b"", b"a", &[7; 300]];
        let data = encode_bundle(&entries).unwrap();
        assert_eq!(&data[..5], &[0, 0, 0, 1, b'a']);
        assert_eq!(decode_bundle(&data, 3).unwrap(), entries);
        assert!(decode_bundle(&data, 2).is_err());
        assert!(decode_bundle(&data, 4).is_err());
        assert!(decode_bundle(&data[..data.len() - 1], 3).is_err());
        assert!(decode_bundle(&[0], 1).is_err());
        let big = vec![0u8; MAX_ENTRY_SIZE + 1];
        assert!(matches!(
            encode_bundle(&[&big[..]]),
            Err(TlogError::EntryTooLarge(65536))
        ));
        assert!(encode_bundle(&[&big[..MAX_ENTRY_SIZE]]).is_ok());
    }
}

#[cfg(test)]
mod builder_state_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_builder_restored_from_bytes_continues_identically() {
        let leaf = |i: u64| leaf_hash(&i.to_be_bytes());
        for size in [0u64, 1, 255, 256, 257, 70_000] {
            let mut a = TileBuilder::new();
            for i in 0..size {
                a.append(leaf(i)).unwrap();
            }
            let mut b = TileBuilder::from_bytes(&a.to_bytes()).unwrap();
            assert_eq!(b.root(), a.root(), "size {size}");
            for i in size..size + 300 {
                assert_eq!(a.append(leaf(i)).unwrap(), b.append(leaf(i)).unwrap());
            }
            assert_eq!(a.partial_tiles().unwrap(), b.partial_tiles().unwrap());
            let mut bytes = a.to_bytes();
            bytes.truncate(bytes.len().saturating_sub(1));
            assert!(TileBuilder::from_bytes(&bytes).is_err() || bytes.len() < 12);
        }
    }

    #[test]
    fn tile_for_node_finds_the_tile_holding_it() {
        use crate::tree::NodeId;
        assert_eq!(
            tile_for_node(NodeId::new(0, 5), 10).unwrap().path(),
            "tile/0/000.p/10"
        );
        assert_eq!(
            tile_for_node(NodeId::new(8, 1), 70_000).unwrap().path(),
            "tile/1/000"
        );
        assert!(tile_for_node(NodeId::new(0, 10), 10).is_none());
    }
}
