//! Several store instances on one storage, as several `touchmark serve` replicas share one
//! database (design.md §10): the quota (I1), retries (I2) and the clone checks hold across them,
//! they read the same counts, certificates and log, and one sequencer at a time gives the
//! log its indices while the lease changes hands.
//!
//! Each test opens the extra instances with the harness's [`Reopen`]. Only backends built
//! for several writers on one storage run these (see `tests/store.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{IssueOutcome, IssueRequest, OrderCounts, Store, StoreError};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::UnitStatus;
use touchmark_core::event::EventBody;
use touchmark_core::{OrderId, ProductId};

use super::Reopen;
use super::kit::{
    Kit, all_events, check_log, counts, indices_of, issue_as_station, log_size, receipt_of,
    settled, settled_opt,
};

/// The harness's store and two more instances on the same storage.
async fn replicas(store: Arc<dyn Store>, reopen: &Reopen) -> Vec<Arc<dyn Store>> {
    vec![store, reopen().await, reopen().await]
}

/// Outcomes by kind: `issued`, `already_issued`, or the refusal code.
fn tally<'a>(outcomes: impl IntoIterator<Item = &'a IssueOutcome>) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for o in outcomes {
        let key = match o {
            IssueOutcome::Issued(_) => "issued",
            IssueOutcome::AlreadyIssued(_) => "already_issued",
            IssueOutcome::Refused { refusal, .. } => refusal.code.as_str(),
        };
        *tally.entry(key.to_owned()).or_default() += 1;
    }
    tally
}

fn expect(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// Sends request `i` to replica `i % 3`, all at once; the outcomes in request order.
async fn issue_across(
    replicas: &[Arc<dyn Store>],
    requests: Vec<IssueRequest>,
) -> Vec<IssueOutcome> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut set = JoinSet::new();
    for (i, request) in requests.into_iter().enumerate() {
        let store = Arc::clone(&replicas[i % replicas.len()]);
        let barrier = Arc::clone(&barrier);
        set.spawn(async move {
            barrier.wait().await;
            (i, issue_as_station(&*store, request).await)
        });
    }
    let mut outcomes = set.join_all().await;
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

/// Every replica reads the same order, counts, units and log.
async fn replicas_agree(replicas: &[Arc<dyn Store>], order: &OrderId, want: &OrderCounts) {
    let first = all_events(&replicas[0]).await;
    for (r, store) in replicas.iter().enumerate() {
        assert_eq!(
            &store.order_counts(order).await.unwrap(),
            want,
            "replica {r}"
        );
        let o = store.order(order).await.unwrap().unwrap();
        assert_eq!(o.issued, want.issued, "replica {r}");
        let units = store.units(order).await.unwrap();
        assert_eq!(units.len() as u64, want.issued, "replica {r}");
        assert!(
            units
                .iter()
                .all(|u| u.status == UnitStatus::Provisioned && u.cert_sha256.is_some()),
            "replica {r}"
        );
        assert_eq!(
            all_events(store).await,
            first,
            "replica {r} sees another log"
        );
        assert_eq!(store.event_count().await.unwrap(), first.len() as u64);
    }
}

/// I1 across replicas: 8 stations, each issuing 100 distinct units one after another through
/// one of three replicas, against a quota of 500: exactly 500 certificates, 300 refusals, and
/// the log, replayed, never passes the quota.
pub async fn quota_holds_across_replicas(store: Arc<dyn Store>, reopen: Reopen) {
    let replicas = replicas(store, &reopen).await;
    let kit = Arc::new(Kit::new(&replicas[0], "rq", 500, 8).await);
    let before = log_size(&replicas[1]).await;

    let barrier = Arc::new(Barrier::new(8));
    let mut set = JoinSet::new();
    for station in 0..8usize {
        let store = Arc::clone(&replicas[station % 3]);
        let (kit, barrier) = (Arc::clone(&kit), Arc::clone(&barrier));
        set.spawn(async move {
            let requests: Vec<_> = (0..100)
                .map(|i| {
                    kit.request(
                        station,
                        &format!("SN-{station}-{i:03}"),
                        &format!("rq-{station}-{i}"),
                    )
                })
                .collect();
            barrier.wait().await;
            let mut outcomes = Vec::new();
            for request in requests {
                outcomes.push(issue_as_station(&*store, request).await);
            }
            outcomes
        });
    }
    let outcomes: Vec<IssueOutcome> = set.join_all().await.into_iter().flatten().collect();
    assert_eq!(
        tally(&outcomes),
        expect(&[("issued", 500), ("quota_exhausted", 300)])
    );

    assert_eq!(log_size(&replicas[2]).await, before + 800);
    let log = check_log(&replicas[0]).await;
    replicas_agree(
        &replicas,
        &kit.order,
        &counts(500, 0, &[(ErrorCode::QuotaExhausted, 300)]),
    )
    .await;

    // Every receipt names its own entry.
    let receipts: Vec<_> = outcomes.iter().map(receipt_of).collect();
    let indices = indices_of(&replicas[1], &receipts).await;
    let distinct: BTreeSet<u64> = indices.iter().copied().collect();
    assert_eq!(distinct, (before..before + 800).collect());
    let stored = all_events(&replicas[1]).await;
    for (receipt, index) in receipts.iter().zip(&indices) {
        assert_eq!(stored[*index as usize].leaf_hash, receipt.leaf_hash);
    }
    // Replayed in log order, no issuance passes the quota, and every refusal met a full
    // order: the log's order is the order in which the replicas' transactions took effect.
    let (mut issued_n, mut refused) = (0u64, 0u64);
    for event in &log[before as usize..] {
        match &event.body {
            EventBody::UnitIssued { .. } => {
                issued_n += 1;
                assert!(issued_n <= 500, "issued past the quota");
            }
            EventBody::UnitRefused { reason, .. } => {
                assert_eq!(*reason, ErrorCode::QuotaExhausted);
                assert_eq!(issued_n, 500, "refused while quota was left");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((issued_n, refused), (500, 300));
    // Each certificate reads back, from every replica, as the one its issuance returned.
    for (i, outcome) in outcomes.iter().enumerate().step_by(7) {
        if let IssueOutcome::Issued(unit) = outcome {
            let want = settled(&replicas[0], unit.clone()).await;
            let store = &replicas[i % 3];
            let read = store
                .issued_unit(&unit.product, &unit.serial)
                .await
                .unwrap();
            assert_eq!(read, Some(want));
        }
    }
}

/// I2 and checks 6 and 7 across replicas: one unit retried through every replica at once
/// issues once; a clone (same serial, other key) and a reused key each win once.
pub async fn retries_and_clones_across_replicas(store: Arc<dyn Store>, reopen: Reopen) {
    let replicas = replicas(store, &reopen).await;
    let kit = Kit::new(&replicas[0], "rr", 100, 4).await;

    // The same serial and key, signed afresh by each replica, sent to all three at once.
    let outcomes = issue_across(
        &replicas,
        (0..12)
            .map(|i| kit.request(i % 4, "SN-RETRY", "retry-key"))
            .collect(),
    )
    .await;
    assert_eq!(
        tally(&outcomes),
        expect(&[("issued", 1), ("already_issued", 11)])
    );
    let winner = outcomes
        .iter()
        .find_map(|o| match o {
            IssueOutcome::Issued(u) => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    let winner = settled(&replicas[0], winner).await;
    for o in &outcomes {
        if let IssueOutcome::AlreadyIssued(u) = o {
            assert_eq!(settled(&replicas[1], u.clone()).await, winner);
        }
    }
    for store in &replicas {
        let read = store
            .issued_unit(&kit.product, &winner.serial)
            .await
            .unwrap();
        assert_eq!(settled_opt(store, read).await.as_ref(), Some(&winner));
    }

    // A clone: one serial, twelve keys, across the replicas.
    let outcomes = issue_across(
        &replicas,
        (0..12)
            .map(|i| kit.request(i % 4, "SN-CLONE", &format!("clone-{i}")))
            .collect(),
    )
    .await;
    assert_eq!(
        tally(&outcomes),
        expect(&[("issued", 1), ("serial_conflict", 11)])
    );
    // A cloned secure element: one key, twelve serials.
    let outcomes = issue_across(
        &replicas,
        (0..12)
            .map(|i| kit.request(i % 4, &format!("SN-K{i}"), "shared-key"))
            .collect(),
    )
    .await;
    assert_eq!(
        tally(&outcomes),
        expect(&[("issued", 1), ("key_reused", 11)])
    );

    check_log(&replicas[2]).await;
    replicas_agree(
        &replicas,
        &kit.order,
        &counts(
            3,
            0,
            &[(ErrorCode::SerialConflict, 11), (ErrorCode::KeyReused, 11)],
        ),
    )
    .await;
    let log = check_log(&replicas[1]).await;
    let issued_of = |serial: &str| {
        log.iter()
            .filter(|e| matches!(&e.body, EventBody::UnitIssued { serial: s, .. } if s.as_str() == serial))
            .count()
    };
    assert_eq!(issued_of("SN-RETRY"), 1);
    assert_eq!(issued_of("SN-CLONE"), 1);
    let products: BTreeSet<ProductId> = replicas[0]
        .units(&kit.order)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.product)
        .collect();
    assert_eq!(products.len(), 1);
}

/// One sequencer at a time across replicas: of three simultaneous candidates one is elected;
/// an expired holder on one replica is fenced by its successor on another; and with every
/// replica taking the lease in turn while all of them write, each committed entry gets
/// exactly one index, densely, and the sequenced size never goes back from one epoch to the
/// next.
pub async fn sequencers_take_turns_across_replicas(store: Arc<dyn Store>, reopen: Reopen) {
    let replicas = replicas(store, &reopen).await;
    let kit = Arc::new(Kit::new(&replicas[0], "rs", 10_000, 3).await);
    let before = log_size(&replicas[0]).await;

    // One election, three candidates.
    let barrier = Arc::new(Barrier::new(3));
    let mut set = JoinSet::new();
    for (r, store) in replicas.iter().enumerate() {
        let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
        set.spawn(async move {
            barrier.wait().await;
            let lease = store
                .acquire_sequencer(&format!("replica-{r}"), Duration::from_secs(30))
                .await
                .unwrap();
            (r, lease)
        });
    }
    let elected: Vec<_> = set
        .join_all()
        .await
        .into_iter()
        .filter_map(|(r, lease)| lease.map(|l| (r, l)))
        .collect();
    assert_eq!(elected.len(), 1, "{elected:?}");
    let (r, lease) = &elected[0];
    replicas[*r].release_sequencer(lease).await.unwrap();

    // Expiry on one replica, takeover on another.
    let old = replicas[0]
        .acquire_sequencer("replica-0", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let new = replicas[1]
        .acquire_sequencer("replica-1", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("an expired lease passes to another replica");
    assert!(new.epoch > old.epoch);
    assert!(matches!(
        replicas[0].sequence_entries(&old, 100).await,
        Err(StoreError::Fenced(_))
    ));
    replicas[1].release_sequencer(&new).await.unwrap();

    // Writers on every replica, and a sequencer on every replica taking turns.
    let done = Arc::new(AtomicBool::new(false));
    let mut sequencers = JoinSet::new();
    for (r, store) in replicas.iter().enumerate() {
        let (store, done) = (Arc::clone(store), Arc::clone(&done));
        sequencers.spawn(async move {
            let holder = format!("replica-{r}");
            let mut grants = Vec::new();
            while !done.load(Ordering::Acquire) {
                let ttl = Duration::from_secs(5);
                if let Some(lease) = store.acquire_sequencer(&holder, ttl).await.unwrap() {
                    // Held and live: nobody else can be sequencing.
                    let size = store.sequence_entries(&lease, 5).await.unwrap();
                    grants.push((lease.epoch, size, r));
                    store.release_sequencer(&lease).await.unwrap();
                }
                tokio::task::yield_now().await;
            }
            grants
        });
    }
    let mut writers = JoinSet::new();
    for w in 0..6usize {
        let store = Arc::clone(&replicas[w % 3]);
        let kit = Arc::clone(&kit);
        writers.spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..50 {
                let request = kit.request(w % 3, &format!("SN-{w}-{i}"), &format!("rs-{w}-{i}"));
                let outcome = issue_as_station(&*store, request).await;
                assert!(matches!(outcome, IssueOutcome::Issued(_)), "{outcome:?}");
                receipts.push(receipt_of(&outcome));
            }
            receipts
        });
    }
    let receipts: Vec<_> = writers.join_all().await.into_iter().flatten().collect();
    done.store(true, Ordering::Release);
    let mut grants: Vec<(u64, u64, usize)> =
        sequencers.join_all().await.into_iter().flatten().collect();
    assert!(!grants.is_empty(), "no replica ever held the lease");
    grants.sort();
    for w in grants.windows(2) {
        let ((e0, size0, r0), (e1, size1, r1)) = (w[0], w[1]);
        assert!(
            e0 < e1 || r0 == r1,
            "epoch {e0} granted to replicas {r0} and {r1}"
        );
        assert!(
            size0 <= size1,
            "epoch {e1} saw a smaller log ({size1}) than epoch {e0} ({size0})"
        );
    }

    assert_eq!(log_size(&replicas[2]).await, before + 300);
    check_log(&replicas[0]).await;
    let indices = indices_of(&replicas[1], &receipts).await;
    let distinct: BTreeSet<u64> = indices.iter().copied().collect();
    assert_eq!(distinct, (before..before + 300).collect());
    replicas_agree(&replicas, &kit.order, &counts(300, 0, &[])).await;
}
