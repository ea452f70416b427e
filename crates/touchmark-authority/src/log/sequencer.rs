//! The sequencer: extends the tree over newly committed events and signs checkpoints.
//!
//! Never two inconsistent checkpoints (I5): the tree is extended only from the state saved with
//! the latest signed checkpoint, and before each signature the sequencer checks that this state
//! still has that checkpoint's size and root. The new checkpoint, its tiles and the new state are
//! saved in one transaction, so a crash leaves either the old or the new, never a mix.
//!
//! With several replicas on one database, every replica runs this loop, and the store's lease
//! elects the one that sequences (design.md §10). The others adopt each checkpoint it saves, after
//! checking it. Its saves are fenced: once the lease has passed to another replica, a late save
//! from the old sequencer is refused, and the index assignment it relied on is fenced the same
//! way, so every signed tree is a prefix of the same sequence of entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use touchmark_store::{LogState, LogTile};
use touchmark_tlog::Hash;
use touchmark_tlog::hash::leaf_hash;
use touchmark_tlog::tile::TileBuilder;

use super::{Log, LogError, Signed, restore};

/// Most entries one checkpoint adds, so one step's transaction stays bounded.
const MAX_BATCH: u64 = 100_000;

impl Log {
    /// One step of the log, run by every replica: adopts a checkpoint that another sequencer
    /// saved, then, if this process holds (or wins) the sequencer lease, gives committed entries
    /// their indices, extends the tree over them and signs a checkpoint. Returns the new
    /// checkpoint's size, or `None` when this step signed nothing (nothing new, or another
    /// replica is the sequencer).
    ///
    /// # Errors
    /// [`LogError::Inconsistent`] when the stored state or an event's bytes do not match what
    /// was signed; the log then signs nothing more.
    pub async fn sequence_once(&self, now: time::OffsetDateTime) -> Result<Option<u64>, LogError> {
        let mut guard = self.builder.lock().await;
        self.adopt_saved(&mut guard).await?;
        let ttl = self.config.lease_ttl;
        let mut acquired = self.store.acquire_sequencer(&self.holder, ttl).await?;
        if acquired.is_none() && self.config.sole.is_some() {
            // No other process can hold the lease: its holder is a predecessor that died
            // (SIGKILL, a power cut) without giving it back. Take it now rather than wait.
            tracing::info!("taking over the sequencer lease left by a process that is gone");
            acquired = self.store.take_over_sequencer(&self.holder, ttl).await?;
        }
        let Some(lease) = acquired else {
            self.set_lease(None);
            return Ok(None);
        };
        self.set_lease(Some(lease.clone()));
        let committed = match self.store.sequence_entries(&lease, MAX_BATCH).await {
            Ok(n) => n,
            Err(touchmark_store::StoreError::Fenced(why)) => {
                tracing::info!(%why, "sequencer lease lost before sequencing");
                self.set_lease(None);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let latest = self.latest();
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
        let start = builder.size();
        self.checked_leaves(start, end, |leaf| {
            for (tile, data) in builder.append(leaf)? {
                tiles.insert((tile.level().unwrap_or(0), tile.index()), data);
            }
            Ok(())
        })
        .await?;
        for (tile, data) in builder.partial_tiles()? {
            tiles.insert((tile.level().unwrap_or(0), tile.index()), data);
        }
        let root: Hash = builder.root();
        // A holder that stalled since it took the lease finds out here, before it signs; what
        // it signs is also saved only under the lease (fenced), so a late save cannot land.
        match self
            .store
            .acquire_sequencer(&self.holder, self.config.lease_ttl)
            .await?
        {
            Some(renewed) if renewed.epoch == lease.epoch => {}
            _ => {
                tracing::info!("sequencer lease lost before signing; nothing is signed");
                self.set_lease(None);
                return Ok(None);
            }
        }
        let signed = self.sign(builder.size(), root).await?;
        let state = LogState {
            size: builder.size(),
            root,
            note: signed.note().to_owned(),
            tree: builder.to_bytes(),
        };
        let tiles = tiles
            .into_iter()
            .map(|((level, index), data)| LogTile { level, index, data })
            .collect();
        let previous = latest.as_ref().map(Signed::size);
        match self
            .store
            .save_log_state(&lease, previous, state, tiles, now)
            .await
        {
            Ok(()) => {}
            // Another replica took over while this one signed: what it signed is discarded,
            // unpublished, and the new sequencer's checkpoint is adopted on the next step.
            Err(touchmark_store::StoreError::Fenced(why)) => {
                tracing::info!(%why, "sequencer lease lost; the checkpoint is discarded");
                self.set_lease(None);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        let size = builder.size();
        *guard = builder;
        self.set_latest(Signed { checkpoint: signed });
        Ok(Some(size))
    }

    /// Checks, without signing anything and whoever holds the lease, that every entry beyond the
    /// latest checkpoint that already has an index still matches its leaf hash and sits at its
    /// place: a server refuses to start over a log it would have to halt on.
    ///
    /// # Errors
    /// [`LogError::Inconsistent`] naming the first entry at fault.
    pub async fn check_unsigned(&self) -> Result<(), LogError> {
        let mut guard = self.builder.lock().await;
        self.adopt_saved(&mut guard).await?;
        let end = self.store.event_count().await?;
        self.checked_leaves(guard.size(), end, |_| Ok(())).await
    }

    /// Reads the indexed entries `start..end` in pages, checks that each sits at its index and
    /// that its bytes match its stored leaf hash, and hands each leaf hash, recomputed from the
    /// bytes, to `each` in order.
    async fn checked_leaves(
        &self,
        start: u64,
        end: u64,
        mut each: impl FnMut(Hash) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let mut next = start;
        while next < end {
            let want = u32::try_from((end - next).min(1000)).unwrap_or(1000);
            let page = self.store.events(next, want).await?;
            if page.is_empty() {
                return Err(LogError::Inconsistent(format!("event {next} is missing")));
            }
            for event in page {
                if event.index != next {
                    return Err(LogError::Inconsistent(format!(
                        "expected event {next}, found {}",
                        event.index
                    )));
                }
                // The leaf is recomputed from the bytes: a stored hash that disagrees is tampering.
                let leaf = leaf_hash(&event.bytes);
                if leaf != event.leaf_hash {
                    return Err(LogError::Inconsistent(format!(
                        "event {}'s bytes do not match its leaf hash",
                        event.index
                    )));
                }
                each(leaf)?;
                next += 1;
            }
        }
        Ok(())
    }

    /// Adopts a checkpoint that another sequencer saved since this process last looked, after
    /// checking its signature, that the saved tree state reproduces it, and that it is
    /// consistent with the checkpoint this process served before (a consistency proof over the
    /// stored tiles). A saved state that went backwards or forked is an inconsistency.
    async fn adopt_saved(&self, guard: &mut TileBuilder) -> Result<(), LogError> {
        let saved = self.store.log_state().await?;
        let ours = self.latest();
        let (saved, ours) = match (saved, ours) {
            (None, None) => return Ok(()),
            (None, Some(ours)) => {
                return Err(LogError::Inconsistent(format!(
                    "the stored log state is gone, but a checkpoint of size {} was signed",
                    ours.size()
                )));
            }
            (Some(saved), ours) => (saved, ours),
        };
        if let Some(ours) = &ours {
            let cp = ours.checkpoint.checkpoint();
            if saved.size < cp.size() {
                return Err(LogError::Inconsistent(format!(
                    "the stored log state (size {}) is behind the checkpoint of size {} already served",
                    saved.size,
                    cp.size()
                )));
            }
            if saved.size == cp.size() {
                if saved.root != *cp.root() {
                    return Err(LogError::Inconsistent(format!(
                        "the stored checkpoint of size {} has another root than the one served",
                        saved.size
                    )));
                }
                return Ok(());
            }
        }
        let (builder, signed) = restore(&saved, &self.verifier)?;
        if let Some(ours) = &ours {
            let old = ours.checkpoint.checkpoint();
            let new = signed.checkpoint.checkpoint();
            let proof = self.consistency_proof(old.size(), new.size()).await?;
            touchmark_tlog::tree::verify_consistency(
                old.size(),
                new.size(),
                old.root(),
                new.root(),
                &proof,
            )
            .map_err(|e| {
                LogError::Inconsistent(format!(
                    "the checkpoint of size {} saved by another sequencer is not consistent with size {}: {e}",
                    new.size(),
                    old.size()
                ))
            })?;
        }
        *guard = builder;
        self.set_latest(signed);
        Ok(())
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
                () = tokio::time::sleep(self.config.interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
