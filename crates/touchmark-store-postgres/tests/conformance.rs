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

/// A clock that reads `first` once, then `then` ever after: the window is open when the facts
/// are read (step 1) and closed by the time the counting statement runs (step 2).
#[derive(Debug)]
struct ClosesAfterFirstRead {
    reads: std::sync::atomic::AtomicUsize,
    first: time::OffsetDateTime,
    then: time::OffsetDateTime,
}

impl touchmark_core::Clock for ClosesAfterFirstRead {
    fn now(&self) -> time::OffsetDateTime {
        match self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => self.first,
            _ => self.then,
        }
    }
}

/// Check 2 at commit on this backend's fast path (issue 11, finding 8): the facts pass at the
/// first reading of the clock, but the window has closed when the counting statement runs, so
/// that statement counts nothing and the issuance is decided again, under lock: refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
)]
async fn the_counting_statement_judges_the_window_again() {
    use touchmark_core::code::ErrorCode;
    use touchmark_core::testrecord::Verdict;
    use touchmark_store::IssueOutcome;
    use touchmark_store::testsuite::kit::{Kit, at, attempt, counts, serial};

    let harness = postgres().await;
    let store = harness.store;
    let kit = Kit::new(&store, "cw", 10, 1).await;
    let order = kit
        .add_order_within("cw-o2", 10, Some(at(50)), Some(at(150)))
        .await;
    let clock = Arc::new(ClosesAfterFirstRead {
        reads: std::sync::atomic::AtomicUsize::new(0),
        first: at(100),
        then: at(151),
    });
    let test = attempt(&kit.stations[0], &serial("SN-1"), Verdict::Pass, at(99));
    let request = kit.request_with(&order, 0, "SN-1", "k1", test, clock.clone());
    match store.issue(request).await.unwrap() {
        IssueOutcome::Refused { refusal, .. } => {
            assert_eq!(refusal.code, ErrorCode::OrderExpired, "{}", refusal.message)
        }
        other => panic!("expected order_expired, got {other:?}"),
    }
    assert!(
        clock.reads.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "facts, counting statement, and the decision under lock each read the clock"
    );
    assert_eq!(store.order(&order).await.unwrap().unwrap().issued, 0);
    assert_eq!(
        store.order_counts(&order).await.unwrap(),
        counts(0, 0, &[(ErrorCode::OrderExpired, 1)])
    );
    drop(harness.guard);
}

/// A SQLite installation copied here keeps each certificate's test record hash, so a record
/// that issued a unit before the copy is refused for another unit after it (issue 11,
/// finding 5).
#[cfg(feature = "import-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_copied_installation_keeps_its_test_records_used() {
    use touchmark_core::code::ErrorCode;
    use touchmark_core::testrecord::Verdict;
    use touchmark_store::IssueOutcome;
    use touchmark_store::testsuite::kit::{Kit, at, attempt, clock, issued, serial};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("touchmark.db");
    let sqlite: Arc<dyn Store> =
        Arc::new(touchmark_store_sqlite::SqliteStore::open(&path).unwrap());
    let kit = Kit::new(&sqlite, "im", 10, 1).await;
    let record = attempt(&kit.stations[0], &serial("SN-1"), Verdict::Pass, at(99));
    let first = kit.request_with(&kit.order, 0, "SN-1", "k1", record.clone(), clock());
    issued(sqlite.issue(first).await.unwrap());
    let Kit {
        store: _,
        product,
        factory,
        stations,
        order,
    } = kit;
    drop(sqlite);

    let scratch = ScratchSchema::new(&touchmark_testenv::postgres_url());
    let target = scratch.connect().await.unwrap();
    touchmark_store_postgres::import::sqlite_to_postgres(&path, &target)
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(target);
    let kit = Kit {
        store: Arc::clone(&store),
        product,
        factory,
        stations,
        order,
    };
    let replay = kit.request_with(&kit.order, 0, "SN-2", "k2", record, clock());
    match store.issue(replay).await.unwrap() {
        IssueOutcome::Refused { refusal, .. } => {
            assert_eq!(
                refusal.code,
                ErrorCode::TestRecordReused,
                "{}",
                refusal.message
            )
        }
        other => panic!("expected test_record_reused, got {other:?}"),
    }
    drop(scratch);
}
