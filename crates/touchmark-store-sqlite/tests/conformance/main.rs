//! The storage conformance suite of `touchmark-store`, run on SQLite: each test on a fresh
//! database in a temporary directory. `cargo test -p touchmark-store-sqlite sqlite::` runs it.
//!
//! The suite accepts a `Logged` without an index (a backend shared by replicas sequences
//! later); SQLite promises more, and [`every_write_hands_back_its_index`] holds it to that.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use touchmark_core::event::Logged;
use touchmark_store::testsuite::kit::{self, Kit};
use touchmark_store::testsuite::{Harness, Reopen};
use touchmark_store::{IssueOutcome, Store};
use touchmark_store_sqlite::SqliteStore;

/// A fresh SQLite database in its own temporary directory; reopening opens the same file, as a
/// restarted server would.
async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("touchmark.db");
    let open = move || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path).unwrap()) };
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

/// SQLite gives each event its log index as it commits, and every `Logged` a write hands back
/// carries it: the index of the last event in the log, at once.
#[tokio::test]
async fn every_write_hands_back_its_index() {
    let h = sqlite().await;
    let store = &h.store;
    let last = || async { Some(store.event_count().await.unwrap() - 1) };
    let check = |logged: Logged, expected: Option<u64>, what: &str| {
        assert_eq!(
            logged.index, expected,
            "{what}: the index of the event it wrote"
        );
    };

    let (p, f) = (kit::product("ix-p"), kit::factory("ix-f"));
    let s = kit::station("ix-s", &f.id);
    let o = kit::order("ix-o", &p.id, &f.id, 1);
    let l = store.create_product(p.clone(), kit::product_created(&p));
    check(l.await.unwrap(), last().await, "create_product");
    let l = store.create_factory(f.clone(), kit::factory_created(&f));
    check(l.await.unwrap(), last().await, "create_factory");
    let token = kit::enrollment_token(&s.id);
    let l = store.create_station(s.clone(), token, kit::station_created(&s));
    check(l.await.unwrap(), last().await, "create_station");
    let enrolled = kit::station_enrolled(&s, kit::at(10));
    let l = store.enroll_station(
        &s.id,
        token,
        kit::station_cert(&s.id),
        kit::at(10),
        enrolled,
    );
    check(l.await.unwrap(), last().await, "enroll_station");
    let l = store.create_order(o.clone(), kit::order_created(&o));
    check(l.await.unwrap(), last().await, "create_order");
    assert_eq!(last().await, Some(4), "five writes, five events");

    let kit = Kit::new(store, "ix2", 1, 1).await;
    let l = store.record_rejection(kit.failed_test(0, "IX-0"));
    check(l.await.unwrap(), last().await, "record_rejection");
    let unit = kit::issued(store.issue(kit.request(0, "IX-1", "ix-1")).await.unwrap());
    check(unit.logged, last().await, "issue");
    match store.issue(kit.request(0, "IX-2", "ix-2")).await.unwrap() {
        IssueOutcome::Refused { logged, .. } => check(logged, last().await, "issue (refused)"),
        other => panic!("a quota of 1 issued twice: {other:?}"),
    }
}
