//! The touchplate: the audit log over the event table (DESIGN §6).
//!
//! Events are appended in the same transaction as their state change, with their index. The
//! [`sequencer`] then extends the Merkle tree in batches, publishes the hash tiles, and signs a
//! checkpoint at least every second while there are new entries. [`Log`] serves what a
//! verifier needs: the latest signed checkpoint, tiles, entry bundles and proofs.

pub mod proofs;
pub mod sequencer;

use std::sync::{Arc, RwLock};

use base64::Engine;
use touchmark_pki::Signer;
use touchmark_store::{LogState, Store};
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
            Some(LogState {
                size,
                root,
                note,
                tree,
            }) => {
                let builder = TileBuilder::from_bytes(&tree)?;
                let checkpoint =
                    SignedCheckpoint::open(note.as_bytes(), &verifier).map_err(|e| {
                        LogError::Inconsistent(format!(
                            "the stored checkpoint of size {size} does not verify: {e}"
                        ))
                    })?;
                if builder.size() != size
                    || builder.root().0 != root.0
                    || checkpoint.checkpoint().root().0 != root.0
                {
                    return Err(LogError::Inconsistent(format!(
                        "the stored tree state does not reproduce the checkpoint of size {size}"
                    )));
                }
                (builder, Some(Signed { checkpoint }))
            }
        };
        Ok(Self {
            store,
            key,
            verifier,
            latest: RwLock::new(latest),
            builder: tokio::sync::Mutex::new(builder),
            halted: RwLock::new(None),
        })
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
