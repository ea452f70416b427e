//! The storage conformance suite of `touchmark-store`, run on PostgreSQL, with the tests that
//! run several store instances (replicas) on one database. Each test works in a schema of its
//! own, dropped when it ends.
//!
//! It needs a server: `TOUCHMARK_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`). Without it the tests are reported as ignored,
//! with that reason; under `CI=true` they run, and fail if the server is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use touchmark_store::Store;
use touchmark_store::testsuite::{Harness, Reopen, StoreFuture};
use touchmark_store_postgres::ScratchSchema;

/// A fresh, empty schema in the database at `TOUCHMARK_TEST_POSTGRES_URL`. Reopening connects
/// a new store (a pool of its own) to the same schema, as a restarted server or another
/// replica would.
async fn postgres() -> Harness {
    // Armed before the first connection, so that a failing migration is cleaned up too.
    let scratch = Arc::new(ScratchSchema::new(&touchmark_testenv::postgres_url()));
    let reopen: Reopen = {
        let scratch = Arc::clone(&scratch);
        Box::new(move || -> StoreFuture {
            let scratch = Arc::clone(&scratch);
            Box::pin(async move {
                let store = scratch
                    .connect()
                    .await
                    .unwrap_or_else(|e| panic!("cannot open schema {}: {e}", scratch.name()));
                Arc::new(store) as Arc<dyn Store>
            })
        })
    };
    let store = reopen().await;
    Harness {
        store,
        reopen,
        guard: Box::new(scratch),
    }
}

touchmark_store::conformance_suite!(
    postgres,
    postgres,
    replicas,
    #[cfg_attr(
        not(tm_postgres),
        ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
    )]
);
