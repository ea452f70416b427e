//! The backend-independent conformance suite (DESIGN §4 invariants, §10).
//!
//! Every test is a plain `pub async fn name(store: Arc<dyn Store>)` (the durability tests also
//! take a [`Reopen`]); `tests/store.rs` instantiates each one for every backend. Tests build
//! domain values directly with [`kit`] and assert outcomes: counts, codes, rows and the log.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use touchmark_store::Store;

pub mod admin;
pub mod durability;
pub mod events;
pub mod group_commit;
pub mod issue;
pub mod kit;
pub mod log;
pub mod rejection;

/// A store being opened.
pub type StoreFuture = Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>>;

/// Opens the harness's storage again (the same file or database), as a restarted server would.
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
