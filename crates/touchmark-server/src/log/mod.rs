//! The touchplate: the audit log over the event table (DESIGN §6).
//!
//! Events are appended in the same transaction as their state change (with their index on
//! SQLite; on a shared PostgreSQL database the elected sequencer gives them one). The
//! [`sequencer`] then extends the Merkle tree in batches, publishes the hash tiles, and signs a
//! checkpoint at least every second while there are new entries. [`Log`] serves what a
//! verifier needs: the latest signed checkpoint, tiles, entry bundles and proofs.

pub mod proofs;
pub mod sequencer;

use std::sync::{Arc, RwLock};

use base64::Engine;
use touchmark_pki::Signer;
use touchmark_store::{LogState, SequencerLease, Store};
use touchmark_tlog::Hash;
use touchmark_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use touchmark_tlog::note::NoteVerifier;
use touchmark_tlog::tile::TileBuilder;

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
            latest: RwLock::new(latest),
            builder: tokio::sync::Mutex::new(builder),
            halted: RwLock::new(None),
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

    /// Signs a checkpoint with the log key, through the `Signer` seam, as a C2SP signed note.
    fn sign(&self, size: u64, root: Hash) -> Result<SignedCheckpoint, LogError> {
        let checkpoint = Checkpoint::new(self.verifier.name(), size, root)?;
        let text = checkpoint.to_text();
        let signature = self
            .key
            .sign(text.as_bytes())
            .map_err(|e| LogError::Key(e.to_string()))?;
        let mut blob = self.verifier.key_id().to_be_bytes().to_vec();
        blob.extend_from_slice(&signature);
        let note = format!(
            "{text}\n\u{2014} {} {}\n",
            self.verifier.name(),
            base64::engine::general_purpose::STANDARD.encode(blob)
        );
        // Verify what was signed before anything is published.
        Ok(SignedCheckpoint::open(note.as_bytes(), &self.verifier)?)
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
        || builder.root().0 != state.root.0
        || checkpoint.checkpoint().root().0 != state.root.0
        || checkpoint.checkpoint().size() != state.size
    {
        return Err(LogError::Inconsistent(format!(
            "the stored tree state does not reproduce the checkpoint of size {}",
            state.size
        )));
    }
    Ok((builder, Signed { checkpoint }))
}
