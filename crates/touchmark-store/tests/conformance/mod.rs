//! The backend-independent conformance suite (DESIGN §4 invariants, §10).
//!
//! Every test is a plain `pub async fn name(store: Arc<dyn Store>)` (the durability and
//! replica tests also take a [`Reopen`]); `tests/store.rs` instantiates each one for every
//! backend. Tests build domain values directly with [`kit`] and assert outcomes: counts, codes,
//! rows and the log.
//!
//! A receipt's index may be `None` (a backend shared by replicas commits entries without one
//! and sequences them later), so tests read indices through [`kit::index_of`] and log sizes
//! through [`kit::log_size`], which sequence first: every "the next index, no gap" check holds
//! on every backend once the log is sequenced.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use touchmark_store::Store;

pub mod admin;
pub mod durability;
pub mod events;
pub mod group_commit;
pub mod indexed_at_commit;
pub mod issue;
pub mod kit;
pub mod log;
pub mod rejection;
pub mod replicas;
pub mod sequencer;

/// A store being opened.
pub type StoreFuture = Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>>;

/// Opens the harness's storage again (the same file or database), as a restarted server, or
/// another replica, would.
pub type Reopen = Box<dyn Fn() -> StoreFuture + Send + Sync>;

/// A fresh, empty store for one test, with what it takes to reopen it.
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Opens the same storage again.
    pub reopen: Reopen,
    /// Whatever must live as long as the test (a temporary directory, a database to drop).
    pub guard: Box<dyn Any + Send>,
}
