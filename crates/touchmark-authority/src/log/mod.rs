//! The touchplate: the audit log over the event table (design.md §6).
//!
//! Events are appended in the same transaction as their state change (with their index on
//! SQLite; on a shared PostgreSQL database the elected sequencer gives them one). The
//! [`sequencer`] then extends the Merkle tree in batches, publishes the hash tiles, and signs a
//! checkpoint at least every second while there are new entries. [`Log`] serves what a
//! verifier needs: the latest signed checkpoint, tiles, entry bundles and proofs.

pub mod proofs;
pub mod sequencer;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use touchmark_core::{OrderId, Serial};
use touchmark_pki::Signer;
use touchmark_store::{LogState, SequencerLease, Store};
use touchmark_tlog::Hash;
use touchmark_tlog::TlogError;
use touchmark_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use touchmark_tlog::note::{NoteKey, NoteVerifier};
use touchmark_tlog::proof::Receipt;
use touchmark_tlog::tile::TileBuilder;

/// The log's timings, and whether this process is provably the only one that can sequence it.
/// Tests shorten the timings, or drive the log with [`Log::sequence_once`] instead of waiting
/// for the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// How often the sequencer looks for new entries; checkpoints follow within a second.
    pub interval: Duration,
    /// How long the sequencer lease lasts unless renewed (every `interval`). When the
    /// sequencer's replica dies, another one takes over within this long plus one interval.
    pub lease_ttl: Duration,
    /// Proof that no other process can hold the lease, when there is one: the lease is then
    /// taken over at once whoever holds it, so a server restarted after a crash signs its first
    /// checkpoint without waiting `lease_ttl` for its dead predecessor's lease (issue 11,
    /// finding 8). Replicas sharing a database have none, and wait.
    pub sole: Option<SoleSequencer>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(200),
            lease_ttl: Duration::from_secs(3),
            sole: None,
        }
    }
}

/// Proof that this process is the only one that can sequence its log: made only by
/// [`crate::installation::DataDirLock::sole_sequencer`], from the exclusive lock a server holds
/// on a SQLite data directory. Any other holder of the lease is then a process that is gone.
///
/// On PostgreSQL, replicas share the lease and no lock proves that a lease named by another
/// holder belongs to a dead process rather than a live replica, so none is made there and the
/// lease is waited out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoleSequencer(());

impl SoleSequencer {
    /// Only the data directory's lock makes one.
    pub(crate) fn new() -> Self {
        Self(())
    }
}

/// What the log can say of a unit's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitReceipt {
    /// The serial has no issued certificate (under that order).
    NotIssued,
    /// The issuance is logged, but no signed checkpoint covers it yet; `index` is its place,
    /// once the sequencer gave it one.
    NotCovered {
        /// The issuance event's index, if it has one yet.
        index: Option<u64>,
    },
    /// The `c2sp.org/tlog-proof@v1` receipt: the inclusion proof and the signed checkpoint.
    Covered(String),
}

/// Why the log cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The stored state contradicts itself or the last checkpoint: the log refuses to sign.
    #[error("the audit log refuses to sign: {0}")]
    Inconsistent(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] touchmark_store::StoreError),
    /// A log format error.
    #[error("log format: {0}")]
    Tlog(#[from] touchmark_tlog::TlogError),
    /// The log key failed.
    #[error("log key: {0}")]
    Key(String),
}

/// The latest signed checkpoint, as served.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The checkpoint and its note.
    pub checkpoint: SignedCheckpoint,
}

impl Signed {
    /// The tree size it covers.
    pub fn size(&self) -> u64 {
        self.checkpoint.checkpoint().size()
    }
}

/// The audit log of one installation.
#[derive(Debug)]
pub struct Log {
    store: Arc<dyn Store>,
    key: Arc<dyn Signer>,
    verifier: NoteVerifier,
    /// This process's name as a lease holder.
    holder: String,
    /// The sequencer lease, while this process holds it.
    lease: RwLock<Option<SequencerLease>>,
    latest: RwLock<Option<Signed>>,
    /// The sequencer's tree at the latest checkpoint. Only the sequencer changes it.
    builder: tokio::sync::Mutex<TileBuilder>,
    /// Why the sequencer stopped signing, once it has.
    halted: RwLock<Option<String>>,
    /// The size of the latest signed checkpoint, for those who wait for one to cover an entry.
    covered: watch::Sender<u64>,
    config: LogConfig,
}

impl Log {
    /// Opens the log: restores the tree state saved with the latest checkpoint and checks that
    /// it reproduces that checkpoint's root.
    ///
    /// # Errors
    /// [`LogError::Inconsistent`] if the stored state does not match the last signed checkpoint.
    pub async fn open(
        store: Arc<dyn Store>,
        key: Arc<dyn Signer>,
        verifier: NoteVerifier,
        config: LogConfig,
    ) -> Result<Self, LogError> {
        let (builder, latest) = match store.log_state().await? {
            None => (TileBuilder::new(), None),
            Some(state) => {
                let (builder, signed) = restore(&state, &verifier)?;
                (builder, Some(signed))
            }
        };
        let mut nonce = [0u8; 6];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        Ok(Self {
            store,
            key,
            verifier,
            holder: format!("pid-{}-{}", std::process::id(), hex::encode(nonce)),
            lease: RwLock::new(None),
            covered: watch::Sender::new(latest.as_ref().map_or(0, Signed::size)),
            latest: RwLock::new(latest),
            builder: tokio::sync::Mutex::new(builder),
            halted: RwLock::new(None),
            config,
        })
    }

    /// The log's timings.
    pub fn config(&self) -> LogConfig {
        self.config
    }

    /// Publishes `signed` as the latest checkpoint.
    fn set_latest(&self, signed: Signed) {
        let size = signed.size();
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Some(signed);
        self.covered.send_replace(size);
    }

    /// The latest checkpoint once it covers entry `index`, waiting up to `wait` for the
    /// sequencer to sign one; `None` if none does by then.
    pub async fn covering(&self, index: u64, wait: Duration) -> Option<Signed> {
        let mut covered = self.covered.subscribe();
        let reached = tokio::time::timeout(wait, covered.wait_for(|size| *size > index)).await;
        match reached {
            Ok(Ok(_)) => self.latest().filter(|l| l.size() > index),
            _ => None,
        }
    }

    /// The `c2sp.org/tlog-proof@v1` receipt of the entry at `index`, if the latest checkpoint
    /// covers it.
    ///
    /// # Errors
    /// Storage errors, or a missing tile.
    pub async fn receipt(&self, index: u64) -> Result<Option<String>, LogError> {
        let Some(latest) = self.latest().filter(|l| l.size() > index) else {
            return Ok(None);
        };
        let proof = self.inclusion_proof(index, latest.size()).await?;
        Ok(Some(
            Receipt::new(index, proof, &latest.checkpoint).to_text(),
        ))
    }

    /// The receipt of `serial`'s issuance (under `order`, when given), waiting up to `wait`
    /// for a checkpoint to cover it: a fresh issuance is covered within a second.
    ///
    /// # Errors
    /// Storage errors, or a missing tile.
    pub async fn unit_receipt(
        &self,
        serial: &Serial,
        order: Option<&OrderId>,
        wait: Duration,
    ) -> Result<UnitReceipt, LogError> {
        let mut found = None;
        for unit in self.store.unit(serial).await? {
            if order.is_some_and(|o| &unit.order != o) {
                continue;
            }
            if let Some(issued) = self.store.issued_unit(&unit.product, serial).await? {
                found = Some(issued);
                break;
            }
        }
        let Some(issued) = found else {
            return Ok(UnitReceipt::NotIssued);
        };
        // On a shared database the entry's index is known once the sequencer gave it one,
        // which is also when a checkpoint first covers it.
        let mut index = issued.logged.index;
        if index.is_none() {
            let size = *self.covered.borrow();
            let reread = |store: &Arc<dyn Store>| {
                let (store, product) = (Arc::clone(store), issued.product.clone());
                async move {
                    Ok::<_, LogError>(
                        store
                            .issued_unit(&product, serial)
                            .await?
                            .and_then(|u| u.logged.index),
                    )
                }
            };
            index = reread(&self.store).await?;
            if index.is_none() {
                self.covering(size, wait).await;
                index = reread(&self.store).await?;
            }
        }
        let Some(index) = index else {
            return Ok(UnitReceipt::NotCovered { index: None });
        };
        if self.covering(index, wait).await.is_none() {
            return Ok(UnitReceipt::NotCovered { index: Some(index) });
        }
        Ok(match self.receipt(index).await? {
            Some(receipt) => UnitReceipt::Covered(receipt),
            None => UnitReceipt::NotCovered { index: Some(index) },
        })
    }

    /// This process's name as a sequencer lease holder.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this process held the sequencer lease at its last step.
    pub fn is_sequencer(&self) -> bool {
        self.lease
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn set_lease(&self, lease: Option<SequencerLease>) {
        *self.lease.write().unwrap_or_else(|p| p.into_inner()) = lease;
    }

    /// Gives up the sequencer lease, if held, so another replica takes over at once.
    pub async fn release(&self) {
        let lease = self.lease.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(lease) = lease
            && let Err(e) = self.store.release_sequencer(&lease).await
        {
            tracing::warn!(error = %e, "the sequencer lease could not be released; it expires by itself");
        }
    }

    /// The latest signed checkpoint.
    pub fn latest(&self) -> Option<Signed> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why the log stopped signing checkpoints, if it has: an operator must look.
    pub fn halted(&self) -> Option<String> {
        self.halted
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The verifier key of the log.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The store the log reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Signs a checkpoint with the log key, through the `Signer` seam, as a C2SP signed note,
    /// off the async runtime (the key may sit in an HSM).
    async fn sign(&self, size: u64, root: Hash) -> Result<SignedCheckpoint, LogError> {
        let checkpoint = Checkpoint::new(self.verifier.name(), size, root)?;
        let (signer, verifier) = (Arc::clone(&self.key), self.verifier.clone());
        tokio::task::spawn_blocking(move || {
            let key = LogKey {
                signer: signer.as_ref(),
                verifier: &verifier,
            };
            let signed = SignedCheckpoint::sign(checkpoint, &key)?;
            // Verify what was signed before anything is published: the key and the verifier
            // could have drifted apart (a replaced key file).
            Ok(SignedCheckpoint::open(signed.note().as_bytes(), &verifier)?)
        })
        .await
        .map_err(|e| LogError::Key(format!("the signing task failed: {e}")))?
    }
}

/// The log key as tlog signs notes with it: the installation's Ed25519 [`Signer`], named and
/// identified by the log's verifier key.
struct LogKey<'a> {
    signer: &'a dyn Signer,
    verifier: &'a NoteVerifier,
}

impl NoteKey for LogKey<'_> {
    fn name(&self) -> &str {
        self.verifier.name()
    }

    fn key_id(&self) -> u32 {
        self.verifier.key_id()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TlogError> {
        let signature = self
            .signer
            .sign(message)
            .map_err(|e| TlogError::Signing(e.to_string()))?;
        <[u8; 64]>::try_from(signature.as_slice()).map_err(|_| {
            TlogError::Signing(format!(
                "the log key gave a signature of {} bytes, not an Ed25519 one",
                signature.len()
            ))
        })
    }
}

/// Rebuilds the tree from a saved state and checks that it reproduces the saved checkpoint,
/// whose signature must verify.
pub(crate) fn restore(
    state: &LogState,
    verifier: &NoteVerifier,
) -> Result<(TileBuilder, Signed), LogError> {
    let builder = TileBuilder::from_bytes(&state.tree)?;
    let checkpoint = SignedCheckpoint::open(state.note.as_bytes(), verifier).map_err(|e| {
        LogError::Inconsistent(format!(
            "the stored checkpoint of size {} does not verify: {e}",
            state.size
        ))
    })?;
    if builder.size() != state.size
        || builder.root() != state.root
        || *checkpoint.checkpoint().root() != state.root
        || checkpoint.checkpoint().size() != state.size
    {
        return Err(LogError::Inconsistent(format!(
            "the stored tree state does not reproduce the checkpoint of size {}",
            state.size
        )));
    }
    Ok((builder, Signed { checkpoint }))
}
