//! The sequencer: extends the tree over newly committed events and signs checkpoints.
//!
//! Never two inconsistent checkpoints (I5): the tree is extended only from the state saved with
//! the latest signed checkpoint, and before each signature the sequencer checks that this state
//! still has that checkpoint's size and root. The new checkpoint, its tiles and the new state are
//! saved in one transaction, so a crash leaves either the old or the new, never a mix.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use touchmark_store::{LogState, LogTile};
use touchmark_tlog::Hash;
use touchmark_tlog::hash::leaf_hash;

use super::{Log, LogError, Signed};

/// Most entries one checkpoint adds, so one step's transaction stays bounded.
const MAX_BATCH: u64 = 100_000;
/// How often the sequencer looks for new entries. Checkpoints follow within a second.
pub const INTERVAL: Duration = Duration::from_millis(200);

impl Log {
    /// Sequences every committed event not yet in the tree and signs a checkpoint for them.
    /// Returns the new checkpoint's size, or `None` when there was nothing to do.
    ///
    /// # Errors
    /// [`LogError::Inconsistent`] when the stored state or an event's bytes do not match what
    /// was signed; the log then signs nothing more.
    pub async fn sequence_once(&self, now: time::OffsetDateTime) -> Result<Option<u64>, LogError> {
        let mut guard = self.builder.lock().await;
        let latest = self.latest();
        let committed = self.store.event_count().await?;
        if latest.as_ref().is_some_and(|l| l.size() == committed) {
            return Ok(None);
        }
        if let Some(latest) = &latest {
            let cp = latest.checkpoint.checkpoint();
            if guard.size() != cp.size() || guard.root() != *cp.root() {
                return Err(LogError::Inconsistent(format!(
                    "the tree state (size {}) no longer matches the last checkpoint (size {})",
                    guard.size(),
                    cp.size()
                )));
            }
            if committed < cp.size() {
                return Err(LogError::Inconsistent(format!(
                    "the event table holds {committed} events, fewer than the {} already signed",
                    cp.size()
                )));
            }
        }
        let mut builder = guard.clone();
        let end = committed.min(builder.size() + MAX_BATCH);
        let mut tiles: BTreeMap<(u8, u64), Vec<u8>> = BTreeMap::new();
        while builder.size() < end {
            let want = u32::try_from((end - builder.size()).min(1000)).unwrap_or(1000);
            let page = self.store.events(builder.size(), want).await?;
            if page.is_empty() {
                return Err(LogError::Inconsistent(format!(
                    "event {} is missing",
                    builder.size()
                )));
            }
            for event in page {
                if event.index != builder.size() {
                    return Err(LogError::Inconsistent(format!(
                        "expected event {}, found {}",
                        builder.size(),
                        event.index
                    )));
                }
                // The leaf is recomputed from the bytes: a stored hash that disagrees is tampering.
                let leaf = leaf_hash(&event.bytes);
                if leaf.0 != event.leaf_hash.0 {
                    return Err(LogError::Inconsistent(format!(
                        "event {}'s bytes do not match its leaf hash",
                        event.index
                    )));
                }
                for (tile, data) in builder.append(leaf)? {
                    tiles.insert((tile.level().unwrap_or(0), tile.index()), data);
                }
            }
        }
        for (tile, data) in builder.partial_tiles()? {
            tiles.insert((tile.level().unwrap_or(0), tile.index()), data);
        }
        let root: Hash = builder.root();
        let signed = self.sign(builder.size(), root)?;
        let state = LogState {
            size: builder.size(),
            root: touchmark_core::event::Sha256Hash(root.0),
            note: signed.note().to_owned(),
            tree: builder.to_bytes(),
        };
        let tiles = tiles
            .into_iter()
            .map(|((level, index), data)| LogTile { level, index, data })
            .collect();
        self.store.save_log_state(state, tiles, now).await?;
        let size = builder.size();
        *guard = builder;
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Signed { checkpoint: signed });
        Ok(Some(size))
    }

    /// Runs the sequencer until `shutdown` resolves. An inconsistency stops it: the log then
    /// serves its last good checkpoint and signs nothing more, and the error is logged.
    pub async fn run_sequencer(
        self: Arc<Self>,
        clock: Arc<dyn touchmark_core::Clock>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut shutdown = shutdown;
        loop {
            match self.sequence_once(clock.now()).await {
                Ok(_) => {}
                Err(LogError::Inconsistent(why)) => {
                    tracing::error!(%why, "audit log halted");
                    *self.halted.write().unwrap_or_else(|p| p.into_inner()) = Some(why);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "sequencing failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
