//! The storage conformance suite of `touchmark-store`, run on SQLite: each test on a fresh
//! database in a temporary directory. `cargo test -p touchmark-store-sqlite sqlite::` runs it.
//!
//! SQLite gives every event its index at commit: [`IndexedAtCommit`] holds every `Logged` the
//! store hands back to that, on every call of every test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod indexed_at_commit;

use std::sync::Arc;

use touchmark_store::Store;
use touchmark_store::testsuite::{Harness, Reopen};
use touchmark_store_sqlite::SqliteStore;

use indexed_at_commit::IndexedAtCommit;

/// A fresh SQLite database in its own temporary directory; reopening opens the same file, as a
/// restarted server would.
async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("touchmark.db");
    let open =
        move || -> Arc<dyn Store> { Arc::new(IndexedAtCommit(SqliteStore::open(&path).unwrap())) };
    let store = open();
    let reopen: Reopen = Box::new(move || {
        let store = open();
        Box::pin(async move { store })
    });
    Harness {
        store,
        reopen,
        guard: Box::new(dir),
    }
}

touchmark_store::conformance_suite!(sqlite, sqlite);
