//! Faults of one replica seen from the others, on one PostgreSQL database (findings 1 and 2 of
//! the fault review). A replica that freezes inside a transaction (a paused VM, SIGSTOP, a
//! partition) is played by a transaction opened on that replica's own pool, with its session
//! settings, that takes the row locks the replica would and then sends nothing more.
//!
//! Needs `TOUCHMARK_TEST_POSTGRES_URL`, like the conformance suite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use touchmark_store::testsuite::kit::{Kit, issue_as_station};
use touchmark_store::{IssueOutcome, LogStore, Store, StoreError};
use touchmark_store_postgres::{PostgresStore, ScratchSchema};

/// Far longer than any bound under test: reaching it means the replica hung.
const HANG: Duration = Duration::from_secs(30);

struct Replicas {
    live: Arc<dyn Store>,
    frozen: PostgresStore,
    _schema: ScratchSchema,
}

async fn replicas() -> Replicas {
    let schema = ScratchSchema::new(&touchmark_testenv::postgres_url());
    let live: Arc<dyn Store> = Arc::new(schema.connect().await.expect("a replica"));
    let frozen = schema.connect().await.expect("another replica");
    Replicas {
        live,
        frozen,
        _schema: schema,
    }
}

/// A replica frozen while it holds an order's row lock inside its issuance transaction. The
/// others' issuance for that order answers `unavailable` within the lock timeout instead of
/// waiting, and issues again once the database has ended the frozen session, without it.
#[tokio::test]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_frozen_replica_does_not_stop_an_order_elsewhere() {
    let r = replicas().await;
    let kit = Kit::new(&r.live, "fz", 10, 1).await;

    let mut frozen = r.frozen.pool().begin().await.unwrap();
    sqlx::query("UPDATE orders SET issued = issued WHERE id = $1")
        .bind(kit.order.as_str())
        .execute(&mut *frozen)
        .await
        .unwrap();

    let started = Instant::now();
    let waited = tokio::time::timeout(HANG, r.live.issue(kit.request(0, "SN-1", "k1")))
        .await
        .expect("an issuance waited on the frozen replica's lock");
    assert!(
        matches!(waited, Err(StoreError::Unavailable(_))),
        "{waited:?}"
    );
    let refused_after = started.elapsed();

    let outcome = tokio::time::timeout(
        HANG,
        issue_as_station(&*r.live, kit.request(0, "SN-1", "k1")),
    )
    .await
    .expect("the order stayed locked");
    assert!(matches!(outcome, IssueOutcome::Issued(_)), "{outcome:?}");
    let issued_after = started.elapsed();
    // Ended by the database, the frozen session commits nothing when it wakes.
    assert!(
        frozen.commit().await.is_err(),
        "the frozen session lived on"
    );

    let order = r.live.order(&kit.order).await.unwrap().unwrap();
    assert_eq!(order.issued, 1);
    eprintln!("refused after {refused_after:?}, issued again after {issued_after:?}");
    assert!(
        refused_after < Duration::from_secs(5) && issued_after < Duration::from_secs(10),
        "refused after {refused_after:?}, issued after {issued_after:?}"
    );
}

/// A sequencer stalled inside its sequencing transaction, with the lease row locked: another
/// replica takes over once the lease has expired by the database's clock, and the stalled one
/// is fenced when it wakes.
#[tokio::test]
#[cfg_attr(
    not(tm_postgres),
    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
)]
async fn a_stalled_sequencer_is_replaced_and_fenced() {
    let r = replicas().await;
    Kit::new(&r.live, "st", 5, 1).await;
    let ttl = Duration::from_millis(1000);

    let stalled = r
        .frozen
        .acquire_sequencer("stalled", ttl)
        .await
        .unwrap()
        .expect("a free lease");
    let mut inside = r.frozen.pool().begin().await.unwrap();
    sqlx::query("SELECT epoch FROM log_lease WHERE id = 1 FOR UPDATE")
        .execute(&mut *inside)
        .await
        .unwrap();

    let started = Instant::now();
    let taken = tokio::time::timeout(HANG, async {
        loop {
            match r.live.acquire_sequencer("live", ttl).await {
                Ok(Some(lease)) => return lease,
                Ok(None) | Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("acquire: {e}"),
            }
        }
    })
    .await
    .expect("the stalled sequencer was never replaced");
    let took = started.elapsed();
    assert!(taken.epoch > stalled.epoch, "{taken:?} after {stalled:?}");

    // The stalled holder wakes: its transaction is gone, and its lease is fenced.
    assert!(
        inside.commit().await.is_err(),
        "the stalled session lived on"
    );
    assert!(
        matches!(
            r.frozen.sequence_entries(&stalled, 100).await,
            Err(StoreError::Fenced(_))
        ),
        "a replaced sequencer sequenced"
    );
    eprintln!("taken over after {took:?}");
    assert!(took < Duration::from_secs(5), "taken over after {took:?}");
}
