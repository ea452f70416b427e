//! The sequencer (design.md §10): one lease holder at a time, renewals keep the epoch, a new grant
//! fences the old holder (its writes fail with `Fenced` and change nothing); and what it does
//! with the lease: every committed entry gets exactly one index, densely from 0, in commit
//! order, at most `max` per call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{IssueOutcome, LogState, LogTile, NewToken, SequencerLease, Store, StoreError};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use touchmark_core::TokenId;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::Role;
use touchmark_core::event::{Actor, Event, EventBody, Logged, Sha256Hash};
use touchmark_tlog::Hash;

use super::kit::{
    Kit, all_events, at, check_log, counts, factory, factory_created, indices_of, issue_as_station,
    log_size, receipt_of, set_quota,
};

/// A lease that outlives any test step.
const LONG: Duration = Duration::from_secs(30);
/// A lease that expires within a test: [`OUTLIVE`] is well past it.
const SHORT: Duration = Duration::from_millis(300);
const OUTLIVE: Duration = Duration::from_millis(800);

fn fenced<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    match r {
        Err(StoreError::Fenced(why)) => assert!(!why.is_empty(), "{what}"),
        other => panic!("{what}: expected Fenced, got {other:?}"),
    }
}

async fn acquire(store: &Arc<dyn Store>, holder: &str, ttl: Duration) -> Option<SequencerLease> {
    let lease = store.acquire_sequencer(holder, ttl).await.unwrap();
    if let Some(lease) = &lease {
        assert_eq!(lease.holder, holder);
        assert!(lease.epoch > 0, "{lease:?}");
    }
    lease
}

/// Commits factories `{tag}-{i}`, one after another; their receipts.
async fn commit_factories(store: &Arc<dyn Store>, tag: &str, n: usize) -> Vec<Logged> {
    let mut receipts = Vec::new();
    for i in 0..n {
        let f = factory(&format!("{tag}-{i}"));
        receipts.push(
            store
                .create_factory(f.clone(), factory_created(&f))
                .await
                .unwrap(),
        );
    }
    receipts
}

/// A log state of `size` entries (the store does not read the tree or the note).
fn state(size: u64) -> LogState {
    LogState {
        size,
        root: Hash([size as u8; 32]),
        note: format!("checkpoint {size}\n"),
        tree: vec![1, 2, 3],
    }
}

fn tile(hashes: usize) -> LogTile {
    LogTile {
        level: 0,
        index: 0,
        data: vec![9; 32 * hashes],
    }
}

/// Asserts that a fenced sequencer's save left no trace.
async fn nothing_saved(store: &Arc<dyn Store>, size: u64, what: &str) {
    assert_eq!(store.log_state().await.unwrap(), None, "{what}");
    assert_eq!(store.checkpoint_at(size).await.unwrap(), None, "{what}");
    assert_eq!(store.log_tile(0, 0).await.unwrap(), None, "{what}");
}

/// One holder at a time; a renewal keeps the epoch; a release lets another holder in at once,
/// in a later epoch, and fences the one who released, even when it releases again.
pub async fn lease_is_exclusive(store: Arc<dyn Store>) {
    Kit::new(&store, "lx", 5, 1).await;
    let size = log_size(&store).await;

    let a = acquire(&store, "seq-a", LONG)
        .await
        .expect("a free lease is granted");
    assert_eq!(
        acquire(&store, "seq-b", LONG).await,
        None,
        "a second holder got a live lease"
    );
    let renewed = acquire(&store, "seq-a", LONG)
        .await
        .expect("the holder renews its own lease");
    assert_eq!(renewed, a, "a renewal keeps the epoch");
    assert_eq!(acquire(&store, "seq-b", LONG).await, None, "after renewal");

    // The holder sequences; a lease that was never granted cannot.
    commit_factories(&store, "lx-f", 3).await;
    assert_eq!(store.sequence_entries(&a, 1000).await.unwrap(), size + 3);
    let forged = [
        SequencerLease {
            holder: "seq-b".into(),
            epoch: a.epoch,
        },
        SequencerLease {
            holder: "seq-a".into(),
            epoch: a.epoch + 1,
        },
        SequencerLease {
            holder: "seq-a".into(),
            epoch: a.epoch - 1,
        },
    ];
    // Two more entries wait (where the backend does not index at commit).
    let waiting = commit_factories(&store, "lx-g", 2)
        .await
        .iter()
        .filter(|r| r.index.is_none())
        .count() as u64;
    let sequenced = size + 5 - waiting;
    for lease in &forged {
        fenced(
            store.sequence_entries(lease, 1000).await,
            &format!("sequence_entries with {lease:?}"),
        );
        fenced(
            store
                .save_log_state(lease, None, state(size), vec![tile(1)], at(1))
                .await,
            &format!("save_log_state with {lease:?}"),
        );
    }
    assert_eq!(
        store.event_count().await.unwrap(),
        sequenced,
        "a fenced call sequenced something"
    );
    nothing_saved(&store, size, "a forged lease's save").await;

    // Released: another holder gets it at once, in a later epoch.
    store.release_sequencer(&a).await.unwrap();
    let b = acquire(&store, "seq-b", LONG)
        .await
        .expect("a released lease passes on at once");
    assert!(b.epoch > a.epoch, "{b:?} after {a:?}");
    fenced(
        store.sequence_entries(&a, 1000).await,
        "released, then sequencing",
    );
    fenced(
        store
            .save_log_state(&a, None, state(size), vec![tile(1)], at(1))
            .await,
        "released, then saving",
    );
    assert_eq!(store.event_count().await.unwrap(), sequenced);
    nothing_saved(&store, size, "a released lease's save").await;
    assert_eq!(acquire(&store, "seq-a", LONG).await, None, "b holds it");
    // Releasing a lease one no longer holds must not free the successor's.
    match store.release_sequencer(&a).await {
        Ok(()) | Err(StoreError::Fenced(_)) => {}
        Err(e) => panic!("releasing a stale lease: {e:?}"),
    }
    assert_eq!(
        acquire(&store, "seq-c", LONG).await,
        None,
        "a stale release freed the live lease"
    );

    assert_eq!(store.sequence_entries(&b, 1000).await.unwrap(), size + 5);
    store
        .save_log_state(&b, None, state(size + 5), vec![tile(5)], at(2))
        .await
        .unwrap();
    assert_eq!(store.log_state().await.unwrap(), Some(state(size + 5)));
    store.release_sequencer(&b).await.unwrap();
    assert_eq!(check_log(&store).await.len() as u64, size + 5);
}

/// An expired lease lets another holder in with a larger epoch; the former holder's
/// `sequence_entries` and `save_log_state` then fail with `Fenced` and change nothing. A
/// re-grant after expiry, even to the same holder, is a new epoch, and fences the old one.
pub async fn expired_lease_is_fenced(store: Arc<dyn Store>) {
    Kit::new(&store, "le", 5, 1).await;
    let size = log_size(&store).await;

    let a = acquire(&store, "seq-a", SHORT).await.unwrap();
    assert_eq!(
        acquire(&store, "seq-b", LONG).await,
        None,
        "a's lease is live"
    );
    let receipts = commit_factories(&store, "le-f", 3).await;
    tokio::time::sleep(OUTLIVE).await;

    let b = acquire(&store, "seq-b", LONG)
        .await
        .expect("an expired lease passes on");
    assert!(b.epoch > a.epoch, "{b:?} after {a:?}");
    let count = store.event_count().await.unwrap();
    fenced(
        store.sequence_entries(&a, 1000).await,
        "expired, then sequencing",
    );
    assert_eq!(
        store.event_count().await.unwrap(),
        count,
        "a fenced sequencer sequenced"
    );
    fenced(
        store
            .save_log_state(&a, None, state(size), vec![tile(1)], at(1))
            .await,
        "expired, then saving",
    );
    nothing_saved(&store, size, "an expired lease's save").await;
    assert_eq!(acquire(&store, "seq-a", LONG).await, None, "b holds it now");

    // The new holder sequences what is waiting, and saves.
    assert_eq!(store.sequence_entries(&b, 1000).await.unwrap(), size + 3);
    store
        .save_log_state(&b, None, state(size + 3), vec![tile(3)], at(2))
        .await
        .unwrap();
    assert_eq!(store.log_state().await.unwrap(), Some(state(size + 3)));
    store.release_sequencer(&b).await.unwrap();
    // (Read once b is gone: the kit's helpers take the lease themselves.)
    assert_eq!(
        indices_of(&store, &receipts).await,
        [size, size + 1, size + 2]
    );

    // Expired without a successor: no longer held, and re-granted in a new epoch.
    let c = acquire(&store, "seq-c", SHORT).await.unwrap();
    assert!(c.epoch > b.epoch, "{c:?} after {b:?}");
    tokio::time::sleep(OUTLIVE).await;
    fenced(
        store.sequence_entries(&c, 1000).await,
        "expired, nobody took over, then sequencing",
    );
    let c2 = acquire(&store, "seq-c", LONG).await.unwrap();
    assert!(c2.epoch > c.epoch, "a re-grant after expiry is a new epoch");
    fenced(
        store.sequence_entries(&c, 1000).await,
        "the same holder's earlier epoch",
    );
    assert_eq!(store.sequence_entries(&c2, 1000).await.unwrap(), size + 3);
    store.release_sequencer(&c2).await.unwrap();
    check_log(&store).await;
}

/// `sequence_entries` gives at most `max` waiting entries their indices, in commit order, and
/// reports the sequenced size; `event_count` and `events` show exactly the sequenced entries.
pub async fn sequence_entries_respects_max(store: Arc<dyn Store>) {
    Kit::new(&store, "mx", 5, 1).await;
    let size = log_size(&store).await;
    let receipts = commit_factories(&store, "mx-f", 10).await;
    // Committed = sequenced + waiting, whether the backend indexes at commit or later.
    let waiting = receipts.iter().filter(|r| r.index.is_none()).count() as u64;
    let mut sequenced = size + 10 - waiting;
    assert_eq!(store.event_count().await.unwrap(), sequenced);

    let lease = acquire(&store, "seq-max", LONG).await.unwrap();
    for max in [3, 0, 4, 1] {
        sequenced = (sequenced + max).min(size + 10);
        assert_eq!(
            store.sequence_entries(&lease, max).await.unwrap(),
            sequenced,
            "max {max}"
        );
        assert_eq!(store.event_count().await.unwrap(), sequenced, "max {max}");
        let shown = store.events(0, 1000).await.unwrap();
        assert_eq!(
            shown.len() as u64,
            sequenced,
            "events() shows only sequenced"
        );
        assert!(shown.iter().enumerate().all(|(i, e)| e.index == i as u64));
    }
    assert_eq!(
        store.sequence_entries(&lease, 1000).await.unwrap(),
        size + 10
    );
    assert_eq!(
        store.sequence_entries(&lease, 1000).await.unwrap(),
        size + 10,
        "nothing waits: nothing changes"
    );
    store.release_sequencer(&lease).await.unwrap();

    // Committed one after another, they hold consecutive indices in that order.
    assert_eq!(
        indices_of(&store, &receipts).await,
        (size..size + 10).collect::<Vec<_>>()
    );
    let log = all_events(&store).await;
    for (i, receipt) in receipts.iter().enumerate() {
        assert_eq!(log[size as usize + i].leaf_hash, receipt.leaf_hash);
    }
    check_log(&store).await;
}

/// What each concurrent job committed.
enum Committed {
    Issue(Box<IssueOutcome>),
    Receipt(Logged),
    QuotaChanged,
}

/// Many writes of every kind at once (issues, clones, refusals, failed tests, admin changes),
/// while a sequencer runs in small batches beside them: afterwards the log holds every
/// committed event exactly once, at dense indices 0..n, every receipt's leaf at its index,
/// and every issued unit reads back with its index.
pub async fn sequencing_is_dense_and_complete(store: Arc<dyn Store>) {
    let kit = Arc::new(Kit::new(&store, "sq", 100, 4).await);
    let other = kit.add_order("sq-o2", 10).await;
    let before = log_size(&store).await;

    // 150 issues against a quota of 100, 10 clones of one serial on the other order, 30
    // failed tests, 10 factories, 5 tokens and 5 quota changes of the other order.
    let n_jobs = 150 + 10 + 30 + 10 + 5 + 5;
    let barrier = Arc::new(Barrier::new(n_jobs + 1));
    let mut set = JoinSet::new();
    for i in 0..n_jobs {
        let (store, kit, barrier, other) = (
            Arc::clone(&store),
            Arc::clone(&kit),
            Arc::clone(&barrier),
            other.clone(),
        );
        set.spawn(async move {
            barrier.wait().await;
            match i {
                0..150 => Committed::Issue(Box::new(
                    issue_as_station(
                        &*store,
                        kit.request(i % 4, &format!("SN-{i}"), &format!("sq-{i}")),
                    )
                    .await,
                )),
                150..160 => Committed::Issue(Box::new(
                    issue_as_station(
                        &*store,
                        kit.request_for(&other, i % 4, "SN-CLONE", &format!("c-{i}")),
                    )
                    .await,
                )),
                160..190 => Committed::Receipt(
                    store
                        .record_rejection(kit.failed_test(i % 4, &format!("SN-F{i}")))
                        .await
                        .unwrap(),
                ),
                190..200 => {
                    let f = factory(&format!("sq-f{i}"));
                    Committed::Receipt(
                        store
                            .create_factory(f.clone(), factory_created(&f))
                            .await
                            .unwrap(),
                    )
                }
                200..205 => {
                    let id = TokenId::parse(&format!("sq-t{i}")).unwrap();
                    let token = NewToken {
                        id: id.clone(),
                        secret_sha256: Sha256Hash::of(format!("secret {i}").as_bytes()),
                        role: Role::Auditor,
                        label: format!("token {i}"),
                        at: at(7),
                    };
                    let event = Event::new(
                        at(7),
                        EventBody::TokenCreated {
                            token: id,
                            role: Role::Auditor,
                            actor: Actor::System,
                        },
                    );
                    Committed::Receipt(store.create_token(token, event).await.unwrap())
                }
                _ => {
                    let quota = 10 + i as u64;
                    store
                        .update_order(&other, set_quota(quota, at(i as i64)))
                        .await
                        .unwrap();
                    Committed::QuotaChanged
                }
            }
        });
    }

    // A sequencer beside the writers, in small batches.
    let done = Arc::new(AtomicBool::new(false));
    let sequencer = {
        let (store, done, barrier) = (Arc::clone(&store), Arc::clone(&done), Arc::clone(&barrier));
        tokio::spawn(async move {
            let lease = acquire(&store, "seq-live", LONG).await.unwrap();
            barrier.wait().await;
            let mut sizes = Vec::new();
            while !done.load(Ordering::Acquire) {
                sizes.push(store.sequence_entries(&lease, 7).await.unwrap());
                tokio::task::yield_now().await;
            }
            store.release_sequencer(&lease).await.unwrap();
            sizes
        })
    };
    let committed = set.join_all().await;
    done.store(true, Ordering::Release);
    let sizes = sequencer.await.unwrap();
    assert!(
        sizes.windows(2).all(|w| w[0] <= w[1]),
        "the sequenced size went back: {sizes:?}"
    );

    let mut receipts = Vec::new();
    // Each outcome with its receipt's place in `receipts`.
    let mut outcomes = Vec::new();
    for c in &committed {
        match c {
            Committed::Issue(outcome) => {
                outcomes.push((&**outcome, receipts.len()));
                receipts.push(receipt_of(outcome));
            }
            Committed::Receipt(receipt) => receipts.push(*receipt),
            Committed::QuotaChanged => {}
        }
    }
    let n = n_jobs as u64;
    assert_eq!(log_size(&store).await, before + n);
    let log = check_log(&store).await;
    let stored = all_events(&store).await;

    // Every receipt names its own entry, and no two the same one.
    let indices = indices_of(&store, &receipts).await;
    let distinct: BTreeSet<u64> = indices.iter().copied().collect();
    assert_eq!(distinct.len(), receipts.len(), "two receipts, one index");
    assert!(distinct.iter().all(|i| (before..before + n).contains(i)));
    for (receipt, index) in receipts.iter().zip(&indices) {
        assert_eq!(stored[*index as usize].leaf_hash, receipt.leaf_hash);
    }
    // Each committed event exactly once: the new entries are the receipts' leaves plus the
    // five quota changes, nothing more, nothing twice.
    let mut expected: BTreeMap<Hash, usize> = BTreeMap::new();
    for receipt in &receipts {
        *expected.entry(receipt.leaf_hash).or_default() += 1;
    }
    let mut found: BTreeMap<Hash, usize> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (event, e) in log[before as usize..]
        .iter()
        .zip(&stored[before as usize..])
    {
        *kinds.entry(event.body.kind()).or_default() += 1;
        if event.body.kind() != "order.quota_changed" {
            *found.entry(e.leaf_hash).or_default() += 1;
        }
    }
    assert_eq!(found, expected);
    let want: BTreeMap<&str, usize> = [
        ("unit.issued", 101),
        ("unit.refused", 59),
        ("unit.test_failed", 30),
        ("factory.created", 10),
        ("token.created", 5),
        ("order.quota_changed", 5),
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds, want);

    // Issued units read back with their index once sequenced.
    let mut issued = 0;
    for (outcome, at_receipt) in &outcomes {
        if let IssueOutcome::Issued(unit) = outcome {
            let index = &indices[*at_receipt];
            issued += 1;
            let read = store
                .issued_unit(&unit.product, &unit.serial)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(read.logged.index, Some(*index), "{}", unit.serial);
            assert_eq!(read.logged.leaf_hash, unit.logged.leaf_hash);
        }
    }
    assert_eq!(issued, 101);
    assert_eq!(
        kit.counts().await,
        counts(100, 30, &[(ErrorCode::QuotaExhausted, 50)])
    );
    assert_eq!(
        store.order_counts(&other).await.unwrap(),
        counts(1, 0, &[(ErrorCode::SerialConflict, 9)])
    );
}

/// A take-over (for a process that can prove it is the only one, issue 11 finding 8): the
/// lease passes at once, in a new epoch, however long the holder's still runs; the former
/// holder is fenced and cannot take it back while the new one's runs; the new holder renews it
/// as usual.
pub async fn take_over_fences_a_live_holder(store: Arc<dyn Store>) {
    let dead = acquire(&store, "dead-process", LONG).await.unwrap();
    assert!(acquire(&store, "restarted", LONG).await.is_none());
    let taken = store
        .take_over_sequencer("restarted", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.holder, "restarted");
    assert_eq!(taken.epoch, dead.epoch + 1);
    fenced(store.sequence_entries(&dead, 10).await, "the former holder");
    fenced(
        store
            .save_log_state(&dead, None, state(0), vec![], at(1))
            .await,
        "the former holder's save",
    );
    assert!(acquire(&store, "dead-process", LONG).await.is_none());
    let renewed = acquire(&store, "restarted", LONG).await.unwrap();
    assert_eq!(renewed.epoch, taken.epoch, "a renewal keeps the epoch");
    store.sequence_entries(&renewed, 10).await.unwrap();
    // A released lease is taken over the same way, in the next epoch.
    store.release_sequencer(&renewed).await.unwrap();
    let again = store
        .take_over_sequencer("restarted-again", LONG)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.epoch, renewed.epoch + 1);
    store.release_sequencer(&again).await.unwrap();
    check_log(&store).await;
}
