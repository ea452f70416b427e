//! The offline audit of a tiled log laid out in a directory (`tile/<L>/<N>`,
//! `tile/entries/<N>`...): recompute every leaf hash, every hash tile and the root from the
//! entries alone, compare them with what the log serves and signs, check consistency with the
//! previous checkpoint, and replay the events.
//!
//! This is `touchmark_tlog::tile::audit_tiles`, unrolled so that it can (1) hash and parse the
//! bundles on every core, and (2) say *which* entry or tile is wrong instead of only that
//! something is: a single mismatch is blamed on the entry or the tile by checking which of the
//! two leads to the signed root.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use anyhow::Context as _;
use indicatif::ProgressBar;
use touchmark_core::event::Event;
use touchmark_core::replay::Replay;
use touchmark_tlog::TlogError;
use touchmark_tlog::checkpoint::Checkpoint;
use touchmark_tlog::hash::{HASH_SIZE, Hash, leaf_hash};
use touchmark_tlog::tile::{
    TILE_HEIGHT, TILE_WIDTH, Tile, TileReader, decode_bundle, new_entry_bundles, root_from_tiles,
    tiles_for_size,
};
use touchmark_tlog::tree;

use super::report::{Report, TreeHead, Violation, ViolationKind};

/// Reads the tiles of a log directory, for the root computations of [`touchmark_tlog::tile`].
struct DirTiles<'a>(&'a Path);

impl TileReader for DirTiles<'_> {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, TlogError> {
        std::fs::read(self.0.join(tile.path())).map_err(|e| TlogError::Read(Box::new(e)))
    }
}

/// The hash tiles recomputed from the entries: every tile of level 1 and up (1/256 of the leaf
/// hashes, so 125 KiB for a million entries), and only the level-0 tiles a root computation
/// needs (the partial tile of the checkpoint's size and of the previous checkpoint's size).
/// A tile narrower than the one recomputed is its prefix: tiles only ever grow at the end.
struct Recomputed {
    level0: HashMap<u64, Vec<Hash>>,
    /// `upper[L - 1]` holds every hash of tile level `L`.
    upper: Vec<Vec<Hash>>,
}

impl TileReader for Recomputed {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, TlogError> {
        let width = usize::from(tile.width());
        let hashes = match tile.level() {
            Some(0) => self.level0.get(&tile.index()).map(Vec::as_slice),
            Some(level) => {
                let start = usize::try_from(tile.index())
                    .ok()
                    .and_then(|i| i.checked_mul(usize::from(TILE_WIDTH)));
                self.upper
                    .get(usize::from(level) - 1)
                    .zip(start)
                    .and_then(|(hashes, start)| hashes.get(start..))
            }
            None => None,
        };
        let hashes = hashes
            .and_then(|h| h.get(..width))
            .ok_or(TlogError::ReaderMismatch)?;
        Ok(hashes.iter().flat_map(|h| h.0).collect())
    }
}

/// What checking one entry bundle (and its level-0 hash tile) found.
struct BundleOutcome {
    /// The events, one per entry, or why an entry is not one. Empty if the bundle is unreadable.
    events: Vec<Result<Event, String>>,
    /// The leaf hashes recomputed from the entries (or, if the bundle is unreadable, the served
    /// tile's hashes, so the levels above can still be checked).
    leaves: Vec<Hash>,
    /// Missing or malformed files.
    faults: Vec<Violation>,
    /// The first position where the served level-0 tile differs from the recomputed one.
    mismatch: Option<usize>,
}

fn fault(kind: ViolationKind, tile: &Tile, message: String) -> Violation {
    Violation {
        kind,
        index: None,
        tile: Some(tile.path()),
        message,
    }
}

/// Reads `tile` from `dir`, or records why it cannot.
fn read(dir: &Path, tile: &Tile, faults: &mut Vec<Violation>) -> Option<Vec<u8>> {
    match std::fs::read(dir.join(tile.path())) {
        Ok(data) => Some(data),
        Err(e) => {
            let what = if tile.level().is_some() {
                "hash tile"
            } else {
                "entry bundle"
            };
            faults.push(fault(
                ViolationKind::MissingTile,
                tile,
                format!("{what} {} cannot be read: {e}", tile.path()),
            ));
            None
        }
    }
}

/// Reads a hash tile and checks its length, or records why it is unusable.
fn read_hash_tile(dir: &Path, tile: &Tile, faults: &mut Vec<Violation>) -> Option<Vec<u8>> {
    let data = read(dir, tile, faults)?;
    let expected = usize::from(tile.width()) * HASH_SIZE;
    if data.len() == expected {
        Some(data)
    } else {
        faults.push(fault(
            ViolationKind::MalformedTile,
            tile,
            format!(
                "hash tile {} holds {} bytes, not {expected}",
                tile.path(),
                data.len()
            ),
        ));
        None
    }
}

/// The first hash where `served` (tile bytes of the right length) differs from `hashes`.
fn first_difference(hashes: &[Hash], served: &[u8]) -> Option<usize> {
    hashes
        .iter()
        .zip(served.chunks_exact(HASH_SIZE))
        .position(|(h, s)| h.0[..] != *s)
}

/// Hashes, compares and parses one entry bundle. Runs on a worker thread.
fn check_bundle(dir: &Path, bundle: &Tile, tile0: &Tile) -> BundleOutcome {
    let width = usize::from(bundle.width());
    let mut faults = Vec::new();
    let served = read_hash_tile(dir, tile0, &mut faults);
    let data = read(dir, bundle, &mut faults);
    let entries = data.as_deref().and_then(|d| match decode_bundle(d, width) {
        Ok(entries) => Some(entries),
        Err(e) => {
            faults.push(fault(
                ViolationKind::MalformedTile,
                bundle,
                format!(
                    "entry bundle {} does not hold {width} length-prefixed entries: {e}",
                    bundle.path()
                ),
            ));
            None
        }
    });
    match entries {
        Some(entries) => {
            let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
            let mismatch = served.as_deref().and_then(|s| first_difference(&leaves, s));
            let events = entries
                .iter()
                .map(|e| Event::from_canonical(e).map_err(|e| e.to_string()))
                .collect();
            BundleOutcome {
                events,
                leaves,
                faults,
                mismatch,
            }
        }
        None => {
            let leaves = match served {
                Some(s) => s
                    .chunks_exact(HASH_SIZE)
                    .map(|c| Hash::from_slice(c).unwrap_or_default())
                    .collect(),
                None => vec![Hash::default(); width],
            };
            BundleOutcome {
                events: Vec::new(),
                leaves,
                faults,
                mismatch: None,
            }
        }
    }
}

/// A hash tile that differs from its recomputation: the tile, and the first differing hash.
struct Mismatch {
    tile: Tile,
    position: usize,
    /// For a level-0 tile: its entry bundle.
    bundle: Option<Tile>,
}

/// Audits the log in `dir` against the verified `checkpoint`, and against `previous`, the
/// checkpoint verified by the last run, if any. `progress` counts entries.
///
/// Every problem with the log becomes a [`Violation`] in the report.
///
/// # Errors
/// Only on an internal inconsistency (a tile coordinate out of range for a valid size).
pub fn audit(
    dir: &Path,
    checkpoint: &Checkpoint,
    previous: Option<&Checkpoint>,
    progress: &ProgressBar,
) -> anyhow::Result<Report> {
    let size = checkpoint.size();
    let bundles = new_entry_bundles(0, size)?;
    let level0: Vec<Tile> = tiles_for_size(size)
        .into_iter()
        .filter(|t| t.level() == Some(0))
        .collect();
    anyhow::ensure!(
        bundles.len() == level0.len(),
        "internal error: {} entry bundles but {} level-0 tiles",
        bundles.len(),
        level0.len()
    );
    // The level-0 tiles a root computation reads: the partial ones of both sizes.
    let mut keep = BTreeSet::new();
    for s in std::iter::once(size).chain(previous.map(Checkpoint::size)) {
        if s <= size && s % u64::from(TILE_WIDTH) != 0 {
            keep.insert(s >> TILE_HEIGHT);
        }
    }

    let mut replay = Replay::new();
    let mut faults = Vec::new();
    let mut mismatches = Vec::new();
    let mut bad_entries = Vec::new();
    // Indices right after skipped entries: `Replay` flags them as out of order, because it
    // never saw the skipped ones. Those flags repeat a bad entry, so they are dropped.
    let mut after_skip = BTreeSet::new();
    let mut level1 = Vec::with_capacity(bundles.len());
    let mut kept = HashMap::new();

    // Hashing and parsing run on every core; the replay, which must see the entries in order,
    // runs on this thread meanwhile.
    let workers = thread::available_parallelism().map_or(1, usize::from);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, BundleOutcome)>(workers * 4);
    thread::scope(|scope| {
        for _ in 0..workers {
            let (tx, next, bundles, level0) = (tx.clone(), &next, &bundles, &level0);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let (Some(bundle), Some(tile0)) = (bundles.get(i), level0.get(i)) else {
                        break;
                    };
                    if tx.send((i, check_bundle(dir, bundle, tile0))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Replay in index order while the workers hash and parse ahead.
        let mut pending = BTreeMap::new();
        let mut want = 0usize;
        let mut skipped = false;
        for (i, outcome) in rx {
            pending.insert(i, outcome);
            while let Some(outcome) = pending.remove(&want) {
                // `want` is a key a worker inserted, so it indexes both lists.
                let (bundle, tile0) = (bundles[want], level0[want]);
                want += 1;
                let first = bundle.index() << TILE_HEIGHT;
                if bundle.is_full() {
                    level1.push(tree::root(&outcome.leaves));
                }
                faults.extend(outcome.faults);
                if let Some(position) = outcome.mismatch {
                    mismatches.push(Mismatch {
                        tile: tile0,
                        position,
                        bundle: Some(bundle),
                    });
                }
                if outcome.events.is_empty() {
                    skipped = true;
                }
                for (index, event) in (first..).zip(outcome.events) {
                    match event {
                        Ok(event) => {
                            if skipped {
                                after_skip.insert(index);
                                skipped = false;
                            }
                            replay.apply(index, &event);
                        }
                        Err(why) => {
                            skipped = true;
                            bad_entries.push(Violation {
                                kind: ViolationKind::BadEntry,
                                index: Some(index),
                                tile: Some(bundle.path()),
                                message: format!(
                                    "entry {index} (in {}) is not a canonical event: {why}",
                                    bundle.path()
                                ),
                            });
                        }
                    }
                }
                if keep.contains(&bundle.index()) {
                    kept.insert(bundle.index(), outcome.leaves);
                }
                progress.inc(u64::from(bundle.width()));
            }
        }
    });

    // The levels above: each hash is the root of one full tile of the level below.
    let mut upper = Vec::new();
    let mut hashes = level1;
    let mut level = 1u8;
    while !hashes.is_empty() {
        let mut above = Vec::with_capacity(hashes.len() / usize::from(TILE_WIDTH));
        for (n, chunk) in (0u64..).zip(hashes.chunks(usize::from(TILE_WIDTH))) {
            let width = u16::try_from(chunk.len()).context("tile width")?;
            let tile = Tile::hashes(level, n, width)?;
            if let Some(served) = read_hash_tile(dir, &tile, &mut faults)
                && let Some(position) = first_difference(chunk, &served)
            {
                mismatches.push(Mismatch {
                    tile,
                    position,
                    bundle: None,
                });
            }
            if chunk.len() == usize::from(TILE_WIDTH) {
                above.push(tree::root(chunk));
            }
        }
        upper.push(hashes);
        hashes = above;
        level = level.checked_add(1).context("tile level")?;
    }
    let recomputed = Recomputed {
        level0: kept,
        upper,
    };
    let root = root_from_tiles(&recomputed, size)?;

    let mut violations = faults;
    let root_ok = root == *checkpoint.root();
    // Which side of a level-0 mismatch is wrong: if the served tiles lead to the signed root,
    // the tiles are right and the entry was changed.
    let tiles_ok =
        !root_ok && root_from_tiles(&DirTiles(dir), size).ok() == Some(*checkpoint.root());
    for m in &mismatches {
        let path = m.tile.path();
        let (kind, index, tile, message) = match m.bundle {
            Some(bundle) if !root_ok => {
                let index = (m.tile.index() << TILE_HEIGHT) + m.position as u64;
                let message = if tiles_ok {
                    format!(
                        "entry {index} (in {}) was changed: its leaf hash differs from hash {} \
                         of {path}, and the tiles lead to the signed root",
                        bundle.path(),
                        m.position
                    )
                } else {
                    format!(
                        "entry {index} (in {}) or hash tile {path} is wrong: they differ at \
                         hash {}, and neither leads to the signed root",
                        bundle.path(),
                        m.position
                    )
                };
                (
                    ViolationKind::EntryMismatch,
                    Some(index),
                    bundle.path(),
                    message,
                )
            }
            Some(_) => {
                let index = (m.tile.index() << TILE_HEIGHT) + m.position as u64;
                let message = format!(
                    "hash tile {path} was changed: hash {} differs from the leaf hash of entry \
                     {index}, and the entries lead to the signed root",
                    m.position
                );
                (ViolationKind::TileMismatch, None, path, message)
            }
            None => {
                let message = format!(
                    "hash tile {path} does not match the tiles below it: hash {} differs",
                    m.position
                );
                (ViolationKind::TileMismatch, None, path, message)
            }
        };
        violations.push(Violation {
            kind,
            index,
            tile: Some(tile),
            message,
        });
    }
    if !root_ok {
        violations.push(Violation {
            kind: ViolationKind::RootMismatch,
            index: None,
            tile: None,
            message: format!(
                "the entries lead to root {}, but the checkpoint signs root {} for size {size}",
                root.to_base64(),
                checkpoint.root().to_base64()
            ),
        });
    }
    if let Some(previous) = previous {
        violations.extend(consistency(&recomputed, checkpoint, previous)?);
    }
    violations.extend(bad_entries);
    let mut events = replay.violations().to_vec();
    events.retain(|v| !(after_skip.contains(&v.index) && v.message.contains("out of order")));
    violations.extend(events.into_iter().map(|v| Violation {
        kind: ViolationKind::Replay,
        index: Some(v.index),
        tile: None,
        message: format!("entry {}: {}", v.index, v.message),
    }));

    Ok(Report {
        origin: checkpoint.origin().to_owned(),
        checkpoint: head(checkpoint),
        previous: previous.map(head),
        events: replay.events(),
        orders: replay.orders().clone(),
        violations,
    })
}

fn head(c: &Checkpoint) -> TreeHead {
    TreeHead {
        size: c.size(),
        root: c.root().to_base64(),
    }
}

/// Checks that the tree of `checkpoint` extends the tree of `previous`.
fn consistency(
    recomputed: &Recomputed,
    checkpoint: &Checkpoint,
    previous: &Checkpoint,
) -> anyhow::Result<Option<Violation>> {
    let (old, new) = (previous.size(), checkpoint.size());
    if old > new {
        return Ok(Some(Violation {
            kind: ViolationKind::Truncation,
            index: Some(new),
            tile: None,
            message: format!(
                "truncation: the log has {new} entries, but a checkpoint of size {old} was \
                 verified before (root {}): entries {new}.. are gone",
                previous.root().to_base64()
            ),
        }));
    }
    let old_root = if old == new {
        *checkpoint.root()
    } else {
        root_from_tiles(recomputed, old)?
    };
    if old_root == *previous.root() {
        return Ok(None);
    }
    Ok(Some(Violation {
        kind: ViolationKind::Fork,
        index: None,
        tile: None,
        message: format!(
            "fork: the log's tree at size {old} has root {}, but the checkpoint verified before \
             at that size has root {}",
            old_root.to_base64(),
            previous.root().to_base64()
        ),
    }))
}
