//! The offline audit of a tiled log laid out in a directory (`tile/<L>/<N>`,
//! `tile/entries/<N>`...): every leaf hash, hash tile and the root recomputed from the entries
//! alone and compared with what the log serves and signs, consistency with the previous
//! checkpoint, and the events replayed.
//!
//! The tree is walked once, by [`touchmark_tlog::tile::audit_tiles_with`]. The [`Auditor`]
//! here lets it go on past a problem and records each one, so that the report names *which*
//! entry or tile is wrong instead of only that something is: a single level-0 mismatch is
//! blamed on the entry or the tile by checking which of the two leads to the signed root.
//! Parsing the entries as events, the costly part, runs on every core while the tree is walked;
//! the replay, which must see the events in order, runs beside it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;

use touchmark_core::event::Event;
use touchmark_core::replay::Replay;
use touchmark_tlog::TlogError;
use touchmark_tlog::checkpoint::Checkpoint;
use touchmark_tlog::hash::{HASH_SIZE, Hash};
use touchmark_tlog::tile::{
    TILE_HEIGHT, TILE_WIDTH, Tile, TileAuditor, TileReader, audit_tiles_with, root_from_tiles,
};

use crate::report::{Report, TreeHead, Violation, ViolationKind};
use crate::{Error, Progress};

/// Entries handed to a parsing worker at once.
const BATCH: usize = TILE_WIDTH as usize;

/// Reads the tiles of a log directory.
struct DirTiles<'a>(&'a Path);

impl TileReader for DirTiles<'_> {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, TlogError> {
        std::fs::read(self.0.join(tile.path())).map_err(|e| TlogError::Read(Box::new(e)))
    }
}

/// Hash tiles recomputed from the entries, kept for the root of the previous checkpoint's
/// tree: every tile of level 1 and up (1/256 of the leaf hashes, so 125 KiB for a million
/// entries), and the one level-0 tile that root needs (the partial tile of the previous
/// size). A tile narrower than the one kept is its prefix: tiles only ever grow at the end.
#[derive(Default)]
struct Recomputed {
    /// The level-0 tile to keep, by index.
    keep: Option<u64>,
    tiles: HashMap<(u8, u64), Vec<u8>>,
}

impl Recomputed {
    fn offer(&mut self, tile: &Tile, contents: &[u8]) {
        if let Some(level) = tile.level()
            && (level > 0 || self.keep == Some(tile.index()))
        {
            self.tiles.insert((level, tile.index()), contents.to_vec());
        }
    }
}

impl TileReader for Recomputed {
    fn read_tile(&self, tile: &Tile) -> Result<Vec<u8>, TlogError> {
        let width = usize::from(tile.width()) * HASH_SIZE;
        tile.level()
            .and_then(|level| self.tiles.get(&(level, tile.index())))
            .and_then(|data| data.get(..width))
            .map(<[u8]>::to_vec)
            .ok_or(TlogError::ReaderMismatch)
    }
}

/// A hash tile that differs from its recomputation: the tile, and the first differing hash.
struct Mismatch {
    tile: Tile,
    position: usize,
}

/// Consecutive entries for a parsing worker: `seq` orders the batches, `first` is the index of
/// the first entry.
struct Batch {
    seq: u64,
    first: u64,
    entries: Vec<Vec<u8>>,
}

/// A batch parsed: each entry as an event, or why it is not one.
struct Parsed {
    seq: u64,
    first: u64,
    events: Vec<Result<Event, String>>,
}

/// What the walk of the tree hears, and where the entries go to be parsed.
struct Auditor<'a> {
    faults: Vec<Violation>,
    mismatches: Vec<Mismatch>,
    recomputed: Recomputed,
    root: Option<Hash>,
    batch: Batch,
    /// `None` once the batches are all sent.
    parse: Option<SyncSender<Batch>>,
    progress: &'a dyn Progress,
}

impl Auditor<'_> {
    /// Sends the pending entries to the parsing workers.
    fn flush(&mut self) {
        if self.batch.entries.is_empty() {
            return;
        }
        let next = Batch {
            seq: self.batch.seq + 1,
            first: self.batch.first + self.batch.entries.len() as u64,
            entries: Vec::with_capacity(BATCH),
        };
        let batch = std::mem::replace(&mut self.batch, next);
        self.progress.advance(batch.entries.len() as u64);
        if let Some(parse) = &self.parse {
            // A send fails only when the workers are gone, which the replay then reports.
            let _ = parse.send(batch);
        }
    }
}

fn fault(kind: ViolationKind, tile: &Tile, message: String) -> Violation {
    Violation {
        kind,
        index: None,
        tile: Some(tile.path()),
        message,
    }
}

/// The message of a reader's error: the I/O error itself, not the wrapper's.
fn read_error(error: &TlogError) -> String {
    match error {
        TlogError::Read(source) => source.to_string(),
        other => other.to_string(),
    }
}

impl TileAuditor for Auditor<'_> {
    fn entry(&mut self, index: u64, entry: &[u8]) -> Result<(), TlogError> {
        // A gap (the entries of an unusable bundle) starts a new batch.
        if index != self.batch.first + self.batch.entries.len() as u64 {
            self.flush();
            self.batch.first = index;
        }
        self.batch.entries.push(entry.to_vec());
        if self.batch.entries.len() == BATCH {
            self.flush();
        }
        Ok(())
    }

    fn bundle_unusable(&mut self, bundle: &Tile, error: TlogError) -> Result<(), TlogError> {
        let path = bundle.path();
        self.faults.push(match error {
            TlogError::MalformedBundle => fault(
                ViolationKind::MalformedTile,
                bundle,
                format!(
                    "entry bundle {path} does not hold {} length-prefixed entries: {error}",
                    bundle.width()
                ),
            ),
            error => fault(
                ViolationKind::MissingTile,
                bundle,
                format!("entry bundle {path} cannot be read: {}", read_error(&error)),
            ),
        });
        self.progress.advance(u64::from(bundle.width()));
        Ok(())
    }

    fn check_tile(
        &mut self,
        tile: &Tile,
        recomputed: &[u8],
        served: Result<Vec<u8>, TlogError>,
    ) -> Result<(), TlogError> {
        self.recomputed.offer(tile, recomputed);
        let path = tile.path();
        match served {
            Err(error) => self.faults.push(fault(
                ViolationKind::MissingTile,
                tile,
                format!("hash tile {path} cannot be read: {}", read_error(&error)),
            )),
            Ok(served) if served.len() != recomputed.len() => self.faults.push(fault(
                ViolationKind::MalformedTile,
                tile,
                format!(
                    "hash tile {path} holds {} bytes, not {}",
                    served.len(),
                    recomputed.len()
                ),
            )),
            Ok(served) => {
                let differs = recomputed
                    .chunks_exact(HASH_SIZE)
                    .zip(served.chunks_exact(HASH_SIZE))
                    .position(|(r, s)| r != s);
                if let Some(position) = differs {
                    self.mismatches.push(Mismatch {
                        tile: *tile,
                        position,
                    });
                }
            }
        }
        Ok(())
    }

    fn check_root(&mut self, recomputed: &Hash, _: &Checkpoint) -> Result<(), TlogError> {
        self.root = Some(*recomputed);
        Ok(())
    }
}

/// The path of the entry bundle that holds entry `index` of a tree of `size` entries.
fn bundle_path(index: u64, size: u64) -> String {
    let start = index >> TILE_HEIGHT << TILE_HEIGHT;
    let width = (size - start).min(u64::from(TILE_WIDTH)) as u16;
    Tile::entries(index >> TILE_HEIGHT, width)
        .map(|t| t.path())
        .unwrap_or_default()
}

/// What the replay found.
#[derive(Default)]
struct Replayed {
    replay: Replay,
    bad_entries: Vec<Violation>,
    /// Indices right after skipped entries: `Replay` flags them as out of order, because it
    /// never saw the skipped ones. Those flags repeat a bad entry, so they are dropped.
    after_skip: BTreeSet<u64>,
}

/// Parses batches until the channel closes.
fn parse(batches: &Mutex<Receiver<Batch>>, parsed: &SyncSender<Parsed>) {
    loop {
        let batch = match batches.lock() {
            Ok(batches) => batches.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(batch) = batch else { return };
        let events = batch
            .entries
            .iter()
            .map(|e| Event::from_canonical(e).map_err(|e| e.to_string()))
            .collect();
        let done = Parsed {
            seq: batch.seq,
            first: batch.first,
            events,
        };
        if parsed.send(done).is_err() {
            return;
        }
    }
}

/// Replays the parsed batches in order, as they arrive in any order.
fn replay(parsed: Receiver<Parsed>, size: u64) -> Replayed {
    let mut out = Replayed::default();
    let mut pending = BTreeMap::new();
    let (mut want, mut next_index) = (0u64, 0u64);
    let mut skipped = false;
    for batch in parsed {
        pending.insert(batch.seq, batch);
        while let Some(batch) = pending.remove(&want) {
            want += 1;
            skipped |= batch.first != next_index;
            next_index = batch.first + batch.events.len() as u64;
            for (index, event) in (batch.first..).zip(batch.events) {
                match event {
                    Ok(event) => {
                        if skipped {
                            out.after_skip.insert(index);
                            skipped = false;
                        }
                        out.replay.apply(index, &event);
                    }
                    Err(why) => {
                        skipped = true;
                        let bundle = bundle_path(index, size);
                        out.bad_entries.push(Violation {
                            kind: ViolationKind::BadEntry,
                            index: Some(index),
                            message: format!(
                                "entry {index} (in {bundle}) is not a canonical event: {why}"
                            ),
                            tile: Some(bundle),
                        });
                    }
                }
            }
        }
    }
    out
}

/// Audits the log in `dir` against the verified `checkpoint`, and against `previous`, the
/// checkpoint verified by the last run, if any. `progress` counts entries.
///
/// Every problem with the log becomes a [`Violation`] in the report. Fails only on an internal
/// inconsistency (a tile coordinate out of range for a valid size) or a worker that died.
pub(crate) fn audit(
    dir: &Path,
    checkpoint: &Checkpoint,
    previous: Option<&Checkpoint>,
    progress: &Arc<dyn Progress>,
) -> Result<Report, Error> {
    let size = checkpoint.size();
    let workers = thread::available_parallelism().map_or(1, usize::from);
    let (batches, batches_rx) = sync_channel::<Batch>(workers * 2);
    let (parsed, parsed_rx) = sync_channel::<Parsed>(workers * 2);
    // Shared by the workers only: once they are all gone, sending a batch fails instead of
    // blocking.
    let batches_rx = Arc::new(Mutex::new(batches_rx));
    let mut auditor = Auditor {
        faults: Vec::new(),
        mismatches: Vec::new(),
        recomputed: Recomputed {
            keep: previous
                .map(Checkpoint::size)
                .filter(|&old| old <= size && old % u64::from(TILE_WIDTH) != 0)
                .map(|old| old >> TILE_HEIGHT),
            tiles: HashMap::new(),
        },
        root: None,
        batch: Batch {
            seq: 0,
            first: 0,
            entries: Vec::with_capacity(BATCH),
        },
        parse: Some(batches),
        progress: progress.as_ref(),
    };
    let (walked, replayed) = thread::scope(|scope| {
        for _ in 0..workers {
            let (batches_rx, parsed) = (Arc::clone(&batches_rx), parsed.clone());
            scope.spawn(move || parse(&batches_rx, &parsed));
        }
        drop((batches_rx, parsed));
        let replayer = scope.spawn(move || replay(parsed_rx, size));
        let walked = audit_tiles_with(&DirTiles(dir), checkpoint, &mut auditor);
        auditor.flush();
        auditor.parse = None;
        (walked, replayer.join())
    });
    walked.map_err(Error::Tlog)?;
    let replayed = replayed.map_err(|_| Error::Task("verification"))?;
    let root = auditor.root.ok_or(Error::Task("verification"))?;

    let mut violations = std::mem::take(&mut auditor.faults);
    let root_ok = root == *checkpoint.root();
    // Which side of a level-0 mismatch is wrong: if the served tiles lead to the signed root,
    // the tiles are right and the entry was changed.
    let tiles_ok =
        !root_ok && root_from_tiles(&DirTiles(dir), size).ok() == Some(*checkpoint.root());
    for m in &auditor.mismatches {
        violations.push(blame(m, root_ok, tiles_ok, size));
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
        violations.extend(consistency(&auditor.recomputed, checkpoint, previous)?);
    }
    let Replayed {
        replay,
        bad_entries,
        after_skip,
    } = replayed;
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
        suspects: replay.suspects().to_vec(),
        refusal_floods: replay.stations().clone(),
        keys: replay.keys().clone(),
        violations,
    })
}

/// The violation a differing hash tile means: at level 0 the entry or the tile is wrong,
/// depending on which leads to the signed root; above, the tile does not match those below.
fn blame(m: &Mismatch, root_ok: bool, tiles_ok: bool, size: u64) -> Violation {
    let path = m.tile.path();
    let index = (m.tile.index() << TILE_HEIGHT) + m.position as u64;
    let bundle = bundle_path(index, size);
    let (kind, index, tile, message) = match m.tile.level() {
        Some(0) if !root_ok => {
            let message = if tiles_ok {
                format!(
                    "entry {index} (in {bundle}) was changed: its leaf hash differs from hash {} \
                     of {path}, and the tiles lead to the signed root",
                    m.position
                )
            } else {
                format!(
                    "entry {index} (in {bundle}) or hash tile {path} is wrong: they differ at \
                     hash {}, and neither leads to the signed root",
                    m.position
                )
            };
            (ViolationKind::EntryMismatch, Some(index), bundle, message)
        }
        Some(0) => {
            let message = format!(
                "hash tile {path} was changed: hash {} differs from the leaf hash of entry \
                 {index}, and the entries lead to the signed root",
                m.position
            );
            (ViolationKind::TileMismatch, None, path, message)
        }
        _ => {
            let message = format!(
                "hash tile {path} does not match the tiles below it: hash {} differs",
                m.position
            );
            (ViolationKind::TileMismatch, None, path, message)
        }
    };
    Violation {
        kind,
        index,
        tile: Some(tile),
        message,
    }
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
) -> Result<Option<Violation>, Error> {
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
        root_from_tiles(recomputed, old).map_err(Error::Tlog)?
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
