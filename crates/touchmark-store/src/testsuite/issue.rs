//! `issue`: the quota under concurrency (I1), retries (I2), and checks 6 to 8 plus the station
//! and order state, decided inside the transaction (I4).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::{IssueOutcome, IssueRequest, Store, StoreError};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use touchmark_core::code::{ErrorCode, Refusal};
use touchmark_core::entity::UnitStatus;
use touchmark_core::event::EventBody;
use touchmark_core::order::OrderState;
use touchmark_core::testrecord::Verdict;
use touchmark_core::{OrderId, ProductId};

use super::kit::{
    Kit, already_issued, at, attempt, check_log, clock_at, counts, event_at, index_of, indices_of,
    issue_as_station, issued, log_size, move_order, receipt_of, revoke, serial, set_quota, settled,
    settled_opt, unit_states,
};

/// Runs `requests` all at once and returns the outcomes in request order.
async fn issue_all(store: &Arc<dyn Store>, requests: Vec<IssueRequest>) -> Vec<IssueOutcome> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut set = JoinSet::new();
    for (i, request) in requests.into_iter().enumerate() {
        let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
        set.spawn(async move {
            barrier.wait().await;
            (i, issue_as_station(&*store, request).await)
        });
    }
    let mut outcomes = set.join_all().await;
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

/// Outcomes by kind: `issued`, `already_issued`, or the refusal code.
fn tally(outcomes: &[IssueOutcome]) -> BTreeMap<String, usize> {
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

/// Submits `request`, which must be refused with `code`: exactly one `unit.refused` event with
/// that reason, and nothing else changes in `watched` orders, but the refusal count.
async fn assert_refused(
    store: &Arc<dyn Store>,
    request: IssueRequest,
    code: ErrorCode,
    watched: &[&OrderId],
) {
    let events_before = log_size(store).await;
    let mut before = Vec::new();
    for order in watched {
        before.push((
            store.order(order).await.unwrap().unwrap(),
            store.order_counts(order).await.unwrap(),
            unit_states(store, order).await,
        ));
    }
    let issuance = request.issuance();
    let unit_before = store
        .issued_unit(&issuance.product, &issuance.serial)
        .await
        .unwrap();
    let unit_before = settled_opt(store, unit_before).await;

    let outcome = store.issue(request.clone()).await.unwrap();
    let IssueOutcome::Refused { refusal, logged } = outcome else {
        panic!("expected Refused({code:?}), got {outcome:?}");
    };
    assert_eq!(refusal.code, code, "{}", refusal.message);
    assert!(!refusal.message.is_empty());
    let index = index_of(store, &logged).await;
    assert_eq!(index, events_before, "the refusal takes the next index");
    assert_eq!(log_size(store).await, events_before + 1);

    let (stored, event) = event_at(store, index).await;
    assert_eq!(stored.leaf_hash, logged.leaf_hash);
    assert_eq!(
        event,
        issuance.refused_event(code, request.now()),
        "the refusal is logged as the policy writes it"
    );
    match event.body {
        EventBody::UnitRefused {
            order,
            factory,
            station,
            serial,
            pubkey_sha256,
            test_sha256,
            reason,
        } => {
            assert_eq!(reason, code);
            assert_eq!(order, issuance.attempt.order);
            assert_eq!(factory, Some(issuance.attempt.factory.clone()));
            assert_eq!(station, issuance.attempt.station);
            assert_eq!(serial, Some(issuance.serial.clone()));
            assert_eq!(pubkey_sha256, Some(issuance.pubkey_sha256));
            assert_eq!(test_sha256, Some(request.test().sha256));
        }
        other => panic!("expected unit.refused, got {other:?}"),
    }

    for (order, (order_before, mut counts_before, units_before)) in watched.iter().zip(before) {
        if **order == issuance.attempt.order {
            *counts_before
                .refusals
                .entry(code.as_str().to_owned())
                .or_default() += 1;
        }
        assert_eq!(store.order(order).await.unwrap().unwrap(), order_before);
        assert_eq!(store.order_counts(order).await.unwrap(), counts_before);
        assert_eq!(unit_states(store, order).await, units_before);
    }
    let unit_after = store
        .issued_unit(&issuance.product, &issuance.serial)
        .await
        .unwrap();
    assert_eq!(settled_opt(store, unit_after).await, unit_before);
}

/// I1: 800 concurrent requests from 8 stations against a quota of 500, three times over.
pub async fn quota_holds_under_concurrency(store: Arc<dyn Store>) {
    for round in 0..3 {
        let kit = Kit::new(&store, &format!("q{round}"), 500, 8).await;
        let events_before = log_size(&store).await;
        let requests = (0..800)
            .map(|i| kit.request(i % 8, &format!("SN-{i:05}"), &format!("q{round}-{i}")))
            .collect();
        let outcomes = issue_all(&store, requests).await;
        assert_eq!(
            tally(&outcomes),
            expect(&[("issued", 500), ("quota_exhausted", 300)]),
            "round {round}"
        );

        let order = store.order(&kit.order).await.unwrap().unwrap();
        assert_eq!((order.quota, order.issued), (500, 500));
        assert_eq!(
            kit.counts().await,
            counts(500, 0, &[(ErrorCode::QuotaExhausted, 300)])
        );
        let units = store.units(&kit.order).await.unwrap();
        assert_eq!(units.len(), 500);
        assert!(
            units
                .iter()
                .all(|u| u.status == UnitStatus::Provisioned && u.cert_sha256.is_some())
        );
        assert_eq!(log_size(&store).await, events_before + 800);

        // Every receipt is distinct and names its own stored event.
        let receipts: Vec<_> = outcomes.iter().map(receipt_of).collect();
        let mut indices = BTreeSet::new();
        for (receipt, index) in receipts.iter().zip(indices_of(&store, &receipts).await) {
            assert!(indices.insert(index));
            let (stored, _) = event_at(&store, index).await;
            assert_eq!(stored.leaf_hash, receipt.leaf_hash);
        }
        assert_eq!(
            indices,
            (events_before..events_before + 800).collect::<BTreeSet<_>>()
        );
        // Every issued unit reads back as issued.
        for outcome in outcomes.iter().step_by(37) {
            if let IssueOutcome::Issued(unit) = outcome {
                let read = store
                    .issued_unit(&unit.product, &unit.serial)
                    .await
                    .unwrap();
                assert_eq!(
                    settled_opt(&store, read).await,
                    Some(settled(&store, unit.clone()).await)
                );
            }
        }
    }
    check_log(&store).await;
}

/// I2: a retry returns the same certificate and receipt and consumes nothing, alone or racing.
pub async fn retry_returns_the_same_certificate(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "r", 10, 2).await;
    let request = kit.request(0, "SN-1", "k1");
    let first = issued(store.issue(request.clone()).await.unwrap());
    assert_eq!(first.cert_der, request.certificate().der);
    assert_eq!(first.cert_sha256, request.issuance().cert_sha256);
    assert_eq!(
        (first.issued_at, &first.station),
        (
            request.issuance().attempt.at,
            &request.issuance().attempt.station
        )
    );
    let events = log_size(&store).await;
    let first = settled(&store, first).await;

    let again = already_issued(store.issue(request.clone()).await.unwrap());
    assert_eq!(settled(&store, again).await, first);
    // The server signs afresh for a retry: the store still answers with the first certificate.
    let (mut issuance, certificate, test) = kit.request(1, "SN-1", "k1").into_parts();
    issuance.attempt.at = at(200);
    let resigned = IssueRequest::new(issuance, certificate, test, super::kit::clock());
    let again = already_issued(store.issue(resigned).await.unwrap());
    assert_eq!(settled(&store, again).await, first);
    assert_eq!(log_size(&store).await, events, "a retry logs nothing");
    assert_eq!(kit.counts().await, counts(1, 0, &[]));

    // 16 identical requests at once: one issues, the others are retries of it.
    let request = kit.request(0, "SN-2", "k2");
    let outcomes = issue_all(&store, vec![request; 16]).await;
    assert_eq!(
        tally(&outcomes),
        expect(&[("issued", 1), ("already_issued", 15)])
    );
    let winner = outcomes
        .iter()
        .find_map(|o| match o {
            IssueOutcome::Issued(u) => Some(u.clone()),
            _ => None,
        })
        .unwrap();
    let winner = settled(&store, winner).await;
    for o in &outcomes {
        if let IssueOutcome::AlreadyIssued(u) = o {
            assert_eq!(settled(&store, u.clone()).await, winner);
        }
    }

    // 16 concurrent retries, each signed afresh: still one certificate.
    let outcomes = issue_all(
        &store,
        (0..16).map(|i| kit.request(i % 2, "SN-3", "k3")).collect(),
    )
    .await;
    assert_eq!(
        tally(&outcomes),
        expect(&[("issued", 1), ("already_issued", 15)])
    );

    assert_eq!(store.order(&kit.order).await.unwrap().unwrap().issued, 3);
    assert_eq!(kit.counts().await, counts(3, 0, &[]));
    assert_eq!(store.units(&kit.order).await.unwrap().len(), 3);
    let log = check_log(&store).await;
    for sn in ["SN-1", "SN-2", "SN-3"] {
        let issued_events = log
            .iter()
            .filter(|e| matches!(&e.body, EventBody::UnitIssued { serial, .. } if serial.as_str() == sn))
            .count();
        assert_eq!(issued_events, 1, "{sn}");
    }
}

/// Check 6: a serial provisioned with another key, or in another order, is a clone suspect. The
/// same serial in another product is another unit.
pub async fn serial_conflict_is_refused(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "sc", 10, 2).await;
    let other = kit.add_order("sc-o2", 10).await;
    let first = issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());

    let watched = [&kit.order, &other];
    assert_refused(
        &store,
        kit.request(1, "SN-1", "k2"),
        ErrorCode::SerialConflict,
        &watched,
    )
    .await;
    assert_refused(
        &store,
        kit.request_for(&other, 0, "SN-1", "k1"),
        ErrorCode::SerialConflict,
        &watched,
    )
    .await;
    assert_refused(
        &store,
        kit.request_for(&other, 1, "SN-1", "k3"),
        ErrorCode::SerialConflict,
        &watched,
    )
    .await;
    let read = store
        .issued_unit(&kit.product, &first.serial)
        .await
        .unwrap();
    assert_eq!(
        settled_opt(&store, read).await,
        Some(settled(&store, first).await)
    );

    let elsewhere = Kit::new(&store, "sc2", 10, 1).await;
    issued(
        store
            .issue(elsewhere.request(0, "SN-1", "k9"))
            .await
            .unwrap(),
    );
    assert_eq!(
        store.unit(&super::kit::serial("SN-1")).await.unwrap().len(),
        2
    );
    assert_eq!(
        kit.counts().await,
        counts(1, 0, &[(ErrorCode::SerialConflict, 1)])
    );
    assert_eq!(
        store.order_counts(&other).await.unwrap(),
        counts(0, 0, &[(ErrorCode::SerialConflict, 2)])
    );
    check_log(&store).await;
}

/// Check 7: a key bound to one serial is refused for any other, in any order or product.
pub async fn key_reused_is_refused(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "kr", 10, 2).await;
    let other = kit.add_order("kr-o2", 10).await;
    issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());
    let watched = [&kit.order, &other];
    assert_refused(
        &store,
        kit.request(1, "SN-2", "k1"),
        ErrorCode::KeyReused,
        &watched,
    )
    .await;
    assert_refused(
        &store,
        kit.request_for(&other, 0, "SN-3", "k1"),
        ErrorCode::KeyReused,
        &watched,
    )
    .await;
    let elsewhere = Kit::new(&store, "kr2", 10, 1).await;
    assert_refused(
        &store,
        elsewhere.request(0, "SN-1", "k1"),
        ErrorCode::KeyReused,
        &[&elsewhere.order],
    )
    .await;
    // SN-2 was never provisioned: with its own key it is.
    issued(store.issue(kit.request(1, "SN-2", "k2")).await.unwrap());
    assert_eq!(
        kit.counts().await,
        counts(2, 0, &[(ErrorCode::KeyReused, 1)])
    );
    check_log(&store).await;
}

/// The quota check, and its place after checks 6 and 7 and after the retry of I2.
pub async fn quota_exhausted_is_refused(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "qe", 2, 1).await;
    let first = issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());
    issued(store.issue(kit.request(0, "SN-2", "k2")).await.unwrap());
    let watched = [&kit.order];
    assert_refused(
        &store,
        kit.request(0, "SN-3", "k3"),
        ErrorCode::QuotaExhausted,
        &watched,
    )
    .await;
    // A retry consumes nothing, so a full order still answers it.
    let again = already_issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());
    assert_eq!(settled(&store, again).await, settled(&store, first).await);
    // Checks 6 and 7 come before the quota check.
    assert_refused(
        &store,
        kit.request(0, "SN-1", "k9"),
        ErrorCode::SerialConflict,
        &watched,
    )
    .await;
    assert_refused(
        &store,
        kit.request(0, "SN-4", "k2"),
        ErrorCode::KeyReused,
        &watched,
    )
    .await;
    assert_eq!(
        kit.counts().await,
        counts(
            2,
            0,
            &[
                (ErrorCode::QuotaExhausted, 1),
                (ErrorCode::SerialConflict, 1),
                (ErrorCode::KeyReused, 1)
            ]
        )
    );
    check_log(&store).await;
}

/// An order closed (or cancelled, or still in draft) by the time the transaction runs.
pub async fn order_not_open_is_refused(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "oc", 10, 1).await;
    issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());
    store
        .update_order(&kit.order, move_order(OrderState::Closed, at(150)))
        .await
        .unwrap();
    assert_refused(
        &store,
        kit.request(0, "SN-2", "k2"),
        ErrorCode::OrderNotOpen,
        &[&kit.order],
    )
    .await;

    let draft = super::kit::order("oc-draft", &kit.product, &kit.factory, 10);
    store
        .create_order(draft.clone(), super::kit::order_created(&draft))
        .await
        .unwrap();
    assert_refused(
        &store,
        kit.request_for(&draft.id, 0, "SN-3", "k3"),
        ErrorCode::OrderNotOpen,
        &[&kit.order, &draft.id],
    )
    .await;
    store
        .update_order(&draft.id, move_order(OrderState::Cancelled, at(150)))
        .await
        .unwrap();
    assert_refused(
        &store,
        kit.request_for(&draft.id, 0, "SN-3", "k3"),
        ErrorCode::OrderNotOpen,
        &[&kit.order, &draft.id],
    )
    .await;
    assert_eq!(
        kit.counts().await,
        counts(1, 0, &[(ErrorCode::OrderNotOpen, 1)])
    );
    check_log(&store).await;
}

/// A station revoked by the time the transaction runs; a station never enrolled.
pub async fn station_not_active_is_refused(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "sr", 10, 2).await;
    issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());
    store
        .update_station(&kit.stations[0], revoke(at(150)))
        .await
        .unwrap();
    assert_refused(
        &store,
        kit.request(0, "SN-2", "k2"),
        ErrorCode::StationRevoked,
        &[&kit.order],
    )
    .await;
    // Even a retry of what it provisioned before.
    assert_refused(
        &store,
        kit.request(0, "SN-1", "k1"),
        ErrorCode::StationRevoked,
        &[&kit.order],
    )
    .await;
    // The other station goes on.
    issued(store.issue(kit.request(1, "SN-2", "k2")).await.unwrap());

    let pending = kit.add_station("sr-pending").await;
    let (mut issuance, certificate, _) = kit.request(0, "SN-3", "k3").into_parts();
    let test = attempt(&pending.id, &issuance.serial, Verdict::Pass, at(99));
    issuance.test_sha256 = test.sha256;
    issuance.attempt.station = pending.id;
    let request = IssueRequest::new(issuance, certificate, test, super::kit::clock());
    assert_refused(
        &store,
        request,
        ErrorCode::StationNotAuthorized,
        &[&kit.order],
    )
    .await;
    assert_eq!(
        kit.counts().await,
        counts(
            2,
            0,
            &[
                (ErrorCode::StationRevoked, 2),
                (ErrorCode::StationNotAuthorized, 1)
            ]
        )
    );
    check_log(&store).await;
}

/// Checks 6 and 7 under concurrency: clones racing for one serial or one key win once.
pub async fn clone_races_issue_once(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "cr", 500, 4).await;
    let same_serial = (0..64)
        .map(|i| kit.request(i % 4, "SN-CLONE", &format!("clone-{i}")))
        .collect();
    assert_eq!(
        tally(&issue_all(&store, same_serial).await),
        expect(&[("issued", 1), ("serial_conflict", 63)])
    );
    let same_key = (0..64)
        .map(|i| kit.request(i % 4, &format!("SN-K{i}"), "shared-key"))
        .collect();
    assert_eq!(
        tally(&issue_all(&store, same_key).await),
        expect(&[("issued", 1), ("key_reused", 63)])
    );
    assert_eq!(
        kit.counts().await,
        counts(
            2,
            0,
            &[(ErrorCode::SerialConflict, 63), (ErrorCode::KeyReused, 63)]
        )
    );
    let units = unit_states(&store, &kit.order).await;
    assert_eq!(units.len(), 2);
    let products: BTreeSet<&ProductId> = units.iter().map(|u| &u.0).collect();
    assert_eq!(products.len(), 1);
    check_log(&store).await;
}

/// Issues `n` requests (`SN-{tag}-{i}`, from stations in turn) while `change` runs among them;
/// returns the outcomes and the change's result.
async fn race<T, F>(kit: &Kit, tag: &str, n: usize, change: F) -> (Vec<IssueOutcome>, T)
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut set = JoinSet::new();
    for i in 0..n {
        let request = kit.request(
            i % kit.stations.len(),
            &format!("SN-{tag}-{i}"),
            &format!("{tag}-{i}"),
        );
        let (store, barrier) = (Arc::clone(&kit.store), Arc::clone(&barrier));
        set.spawn(async move {
            barrier.wait().await;
            issue_as_station(&*store, request).await
        });
    }
    let changing = {
        let barrier = Arc::clone(&barrier);
        tokio::spawn(async move {
            barrier.wait().await;
            // Let part of the issues reach the store first.
            tokio::task::yield_now().await;
            change.await
        })
    };
    let outcomes = set.join_all().await;
    (outcomes, changing.await.unwrap())
}

/// The log index of the only event of `kind` about `order`.
fn only_index(log: &[touchmark_core::event::Event], kind: &str, order: &OrderId) -> u64 {
    let found: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| e.body.kind() == kind && e.body.order() == Some(order))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "{kind}");
    found[0] as u64
}

/// An order closed while its units are issued: every issuance is logged before the close,
/// every refusal after it.
pub async fn order_closes_between_issues(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "cb", 1000, 4).await;
    let (outcomes, closed) = race(&kit, "cb", 300, {
        let (store, order) = (Arc::clone(&store), kit.order.clone());
        async move {
            store
                .update_order(&order, move_order(OrderState::Closed, at(150)))
                .await
        }
    })
    .await;
    closed.unwrap();
    let log = check_log(&store).await;
    let close = only_index(&log, "order.closed", &kit.order);
    let receipts: Vec<_> = outcomes.iter().map(receipt_of).collect();
    let indices = indices_of(&store, &receipts).await;
    let mut issued_n = 0;
    for (outcome, index) in outcomes.iter().zip(indices) {
        match outcome {
            IssueOutcome::Issued(_) => {
                issued_n += 1;
                assert!(
                    index < close,
                    "issued at {index}, after the close at {close}"
                );
            }
            IssueOutcome::Refused { refusal, .. } if refusal.code == ErrorCode::OrderNotOpen => {
                assert!(
                    index > close,
                    "refused at {index}, before the close at {close}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        kit.counts().await,
        counts(issued_n, 0, &[(ErrorCode::OrderNotOpen, 300 - issued_n)])
    );
    assert_eq!(
        store.units(&kit.order).await.unwrap().len() as u64,
        issued_n
    );
}

/// A station revoked while it provisions: nothing it gets after the revocation.
pub async fn station_revoked_between_issues(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "rb", 1000, 1).await;
    let (outcomes, revoked) = race(&kit, "rb", 300, {
        let (store, station) = (Arc::clone(&store), kit.stations[0].clone());
        async move { store.update_station(&station, revoke(at(150))).await }
    })
    .await;
    revoked.unwrap();
    let log = check_log(&store).await;
    let revocations: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, e)| e.body.kind() == "station.revoked")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(revocations.len(), 1);
    let revoke = revocations[0] as u64;
    let receipts: Vec<_> = outcomes.iter().map(receipt_of).collect();
    let indices = indices_of(&store, &receipts).await;
    let mut issued_n = 0;
    for (outcome, index) in outcomes.iter().zip(indices) {
        match outcome {
            IssueOutcome::Issued(_) => {
                issued_n += 1;
                assert!(
                    index < revoke,
                    "issued at {index}, after the revoke at {revoke}"
                );
            }
            IssueOutcome::Refused { refusal, .. } if refusal.code == ErrorCode::StationRevoked => {
                assert!(
                    index > revoke,
                    "refused at {index}, before the revoke at {revoke}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        kit.counts().await,
        counts(issued_n, 0, &[(ErrorCode::StationRevoked, 300 - issued_n)])
    );
}

/// I1 with the quota moving: lowered and raised while units are issued. Replaying the log, no
/// issuance ever passes the quota in force, and every `quota_exhausted` met a full order.
pub async fn quota_changes_race_with_issues(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "qr", 100, 4).await;
    let (outcomes, changes) = race(&kit, "qr", 200, {
        let (store, order) = (Arc::clone(&store), kit.order.clone());
        async move {
            let mut results = Vec::new();
            for (i, quota) in [60u64, 150, 40, 120].into_iter().enumerate() {
                results.push(
                    store
                        .update_order(&order, set_quota(quota, at(150 + i as i64)))
                        .await,
                );
                tokio::task::yield_now().await;
            }
            results
        }
    })
    .await;
    for change in &changes {
        assert!(
            matches!(
                change,
                Ok(_)
                    | Err(StoreError::Refused(Refusal {
                        code: ErrorCode::Conflict,
                        ..
                    }))
            ),
            "{change:?}"
        );
    }
    let log = check_log(&store).await;
    let (mut quota, mut issued_n, mut exhausted, mut changed) = (100u64, 0u64, 0u64, 0);
    for event in &log {
        if event.body.order() != Some(&kit.order) {
            continue;
        }
        match &event.body {
            EventBody::QuotaChanged {
                old_quota,
                new_quota,
                ..
            } => {
                assert_eq!(*old_quota, quota);
                assert!(
                    *new_quota >= issued_n,
                    "quota lowered below the issued count"
                );
                quota = *new_quota;
                changed += 1;
            }
            EventBody::UnitIssued { .. } => {
                issued_n += 1;
                assert!(issued_n <= quota, "issued past the quota in force");
            }
            EventBody::UnitRefused { reason, .. } => {
                assert_eq!(*reason, ErrorCode::QuotaExhausted);
                assert_eq!(issued_n, quota, "refused while quota was left");
                exhausted += 1;
            }
            _ => {}
        }
    }
    assert_eq!(changed, changes.iter().filter(|c| c.is_ok()).count());
    assert_eq!(
        tally(&outcomes).get("issued").copied().unwrap_or(0) as u64,
        issued_n
    );
    assert_eq!(issued_n + exhausted, 200);
    let order = store.order(&kit.order).await.unwrap().unwrap();
    assert_eq!((order.quota, order.issued), (quota, issued_n));
    assert_eq!(
        kit.counts().await,
        counts(issued_n, 0, &[(ErrorCode::QuotaExhausted, exhausted)])
    );
}

/// What `Issued` returns is what the store keeps: `issued_unit` and a retry read back the same
/// unit, even when the request's time has sub-millisecond precision (as a wall clock has).
pub async fn issued_unit_reads_back_as_returned(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "rb", 10, 1).await;
    let (mut issuance, certificate, test) = kit.request(0, "SN-1", "k1").into_parts();
    issuance.attempt.at = at(100) + time::Duration::nanoseconds(1_234_567);
    let request = IssueRequest::new(issuance, certificate, test, super::kit::clock());
    let unit = issued(store.issue(request.clone()).await.unwrap());
    let read = store
        .issued_unit(&kit.product, &request.issuance().serial)
        .await
        .unwrap();
    // Before any sequencing, the store reads back exactly what it returned.
    assert_eq!(read.as_ref(), Some(&unit));
    let again = already_issued(store.issue(request.clone()).await.unwrap());
    assert_eq!(again, unit);
    // And after it, the same unit with its index.
    let unit = settled(&store, unit).await;
    let read = store
        .issued_unit(&kit.product, &request.issuance().serial)
        .await
        .unwrap();
    assert_eq!(read, Some(unit.clone()));
    assert_eq!(already_issued(store.issue(request).await.unwrap()), unit);
    check_log(&store).await;
}

/// Check 2 at commit (issue 11, finding 8): the order's window is judged by the authority's
/// clock as the store reads its facts, not as it was when the request arrived. A request that
/// arrived inside the window, whose transaction runs after the window closed, is refused
/// `order_expired` and counts nothing; one whose transaction runs inside the window issues.
pub async fn order_window_is_judged_at_commit(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "ow", 10, 1).await;
    // Every kit request arrives at at(100); this order's window closes at at(150).
    let order = kit
        .add_order_within("ow-o2", 10, Some(at(50)), Some(at(150)))
        .await;
    let clock = clock_at(at(100));
    let test = attempt(&kit.stations[0], &serial("SN-1"), Verdict::Pass, at(99));
    let inside = kit.request_with(&order, 0, "SN-1", "k1", test, clock.clone());
    issued(store.issue(inside).await.unwrap());

    // The clock moves past the window between the request and the commit (a slow signature, a
    // queue at the writer): refused when the store decides.
    let test = attempt(&kit.stations[0], &serial("SN-2"), Verdict::Pass, at(99));
    let late = kit.request_with(&order, 0, "SN-2", "k2", test, clock.clone());
    assert_eq!(
        late.issuance().attempt.at,
        at(100),
        "it arrived in the window"
    );
    clock.set(at(151));
    assert_refused(&store, late, ErrorCode::OrderExpired, &[&order]).await;
    let o = store.order(&order).await.unwrap().unwrap();
    assert_eq!(o.issued, 1);
    assert_eq!(
        store.order_counts(&order).await.unwrap(),
        counts(1, 0, &[(ErrorCode::OrderExpired, 1)])
    );
    // The refusal is logged at the time it was decided.
    let log = check_log(&store).await;
    assert_eq!(log.last().unwrap().at, at(151));
}

/// The reuse of a test record, on what is stored (issue 11, finding 5): a record that issued
/// one unit is refused `test_record_reused` for any other, in any order or product, after
/// checks 6 and 7 and before the quota; the same unit retried with the same record is still a
/// retry.
pub async fn test_record_reused_is_refused(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "tr", 10, 2).await;
    let other = kit.add_order("tr-o2", 10).await;
    let record = attempt(&kit.stations[0], &serial("SN-1"), Verdict::Pass, at(99));
    let first = kit.request_with(
        &kit.order,
        0,
        "SN-1",
        "k1",
        record.clone(),
        super::kit::clock(),
    );
    let first = issued(store.issue(first).await.unwrap());

    // The same unit, the same record, signed afresh: a retry.
    let again = kit.request_with(
        &kit.order,
        1,
        "SN-1",
        "k1",
        record.clone(),
        super::kit::clock(),
    );
    let again = already_issued(store.issue(again).await.unwrap());
    assert_eq!(settled(&store, again).await, settled(&store, first).await);

    let watched = [&kit.order, &other];
    let replay = |order: &OrderId, serial: &str, key: &str| {
        kit.request_with(order, 1, serial, key, record.clone(), super::kit::clock())
    };
    assert_refused(
        &store,
        replay(&kit.order, "SN-2", "k2"),
        ErrorCode::TestRecordReused,
        &watched,
    )
    .await;
    assert_refused(
        &store,
        replay(&other, "SN-3", "k3"),
        ErrorCode::TestRecordReused,
        &watched,
    )
    .await;
    // After check 7: a replayed record with a reused key is refused for the key.
    assert_refused(
        &store,
        replay(&kit.order, "SN-4", "k1"),
        ErrorCode::KeyReused,
        &watched,
    )
    .await;
    // After check 6: the same serial with another key is a serial conflict.
    assert_refused(
        &store,
        replay(&kit.order, "SN-1", "k9"),
        ErrorCode::SerialConflict,
        &watched,
    )
    .await;
    // Another product's unit with the same serial is another unit.
    let elsewhere = Kit::new(&store, "tr2", 10, 1).await;
    let crossed = elsewhere.request_with(
        &elsewhere.order,
        0,
        "SN-1",
        "k5",
        record.clone(),
        super::kit::clock(),
    );
    assert_refused(
        &store,
        crossed,
        ErrorCode::TestRecordReused,
        &[&elsewhere.order],
    )
    .await;
    // SN-2 with a record of its own issues.
    issued(store.issue(kit.request(0, "SN-2", "k2")).await.unwrap());
    assert_eq!(
        kit.counts().await,
        counts(
            2,
            0,
            &[
                (ErrorCode::TestRecordReused, 1),
                (ErrorCode::KeyReused, 1),
                (ErrorCode::SerialConflict, 1)
            ]
        )
    );
    assert_eq!(
        store.order_counts(&other).await.unwrap(),
        counts(0, 0, &[(ErrorCode::TestRecordReused, 1)])
    );
    check_log(&store).await;
}

/// The race behind the reuse check: 16 concurrent requests for 16 serials, with 16 keys and one
/// test record, from two stations. Exactly one issues; every other is refused
/// `test_record_reused`, whichever transaction (or replica batch) got there first.
pub async fn test_record_race_issues_once(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "tq", 100, 2).await;
    let record = attempt(&kit.stations[0], &serial("SN-00"), Verdict::Pass, at(99));
    let requests = (0..16)
        .map(|i| {
            kit.request_with(
                &kit.order,
                i % 2,
                &format!("SN-{i:02}"),
                &format!("tq-{i}"),
                record.clone(),
                super::kit::clock(),
            )
        })
        .collect();
    let outcomes = issue_all(&store, requests).await;
    assert_eq!(
        tally(&outcomes),
        expect(&[("issued", 1), ("test_record_reused", 15)])
    );
    assert_eq!(store.order(&kit.order).await.unwrap().unwrap().issued, 1);
    assert_eq!(
        kit.counts().await,
        counts(1, 0, &[(ErrorCode::TestRecordReused, 15)])
    );
    let log = check_log(&store).await;
    let issued_with_record = log
        .iter()
        .filter(|e| matches!(&e.body, EventBody::UnitIssued { test_sha256, .. } if *test_sha256 == record.sha256))
        .count();
    assert_eq!(issued_with_record, 1);
}
