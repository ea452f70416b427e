//! Concurrent writes: a failing change among successful ones leaves no trace, and the others
//! commit with contiguous indices.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::{Constraint, IssueOutcome, IssueRequest, Record, RecordKind, Store, StoreError};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use touchmark_core::code::ErrorCode;
use touchmark_core::event::Logged;
use touchmark_core::order::OrderState;

use super::kit::{
    Kit, at, check_log, counts, enrollment_token, event_at, factory, factory_created, indices_of,
    log_size, move_order, product, product_created, set_quota, station_cert, station_enrolled,
};

/// What each concurrent job returned.
#[derive(Debug)]
enum Done {
    Issued(Logged),
    Failed(StoreError),
    Created(Logged),
    Changed,
}

/// Writes that fail among many concurrent ones roll back alone: their neighbours commit, and
/// the failed ones leave no row and no event.
pub async fn failing_job_leaves_no_trace(store: Arc<dyn Store>) {
    let kit = Arc::new(Kit::new(&store, "gc", 10_000, 4).await);
    let original_factory = store.factory(&kit.factory).await.unwrap().unwrap();
    let original_product = store.product(&kit.product).await.unwrap().unwrap();
    let station = store.station(&kit.stations[0]).await.unwrap().unwrap();
    let seed = kit.request(0, "SN-SEED", "seed");
    let seed_cert_sha256 = seed.issuance().cert_sha256;
    super::kit::issued(store.issue(seed).await.unwrap());

    for round in 0..6 {
        let before = log_size(&store).await;
        let factories_before = store.factories().await.unwrap().len();
        let barrier = Arc::new(Barrier::new(56));
        let mut set = JoinSet::new();
        for i in 0..56usize {
            let (store, kit, barrier) =
                (Arc::clone(&store), Arc::clone(&kit), Arc::clone(&barrier));
            let station = station.clone();
            set.spawn(async move {
                // Build first, so that every job reaches the store at the same moment.
                let request =
                    kit.request(i % 4, &format!("SN-{round}-{i}"), &format!("{round}-{i}"));
                let mut dup_factory = factory(kit.factory.as_str());
                dup_factory.name = format!("impostor {round}");
                let mut dup_product = product(kit.product.as_str());
                dup_product.name = format!("impostor {round}");
                let new_factory = factory(&format!("gc-new-{round}"));
                barrier.wait().await;
                let done = match i {
                    // Failures, spread through the batch.
                    10 => store
                        .create_factory(dup_factory.clone(), factory_created(&dup_factory))
                        .await
                        .map(Done::Created),
                    20 => store
                        .create_product(dup_product.clone(), product_created(&dup_product))
                        .await
                        .map(Done::Created),
                    30 => store
                        .enroll_station(
                            &station.id,
                            enrollment_token(&station.id),
                            station_cert(&station.id),
                            at(20),
                            station_enrolled(&station, at(20)),
                        )
                        .await
                        .map(Done::Created),
                    40 => store
                        .update_order(&kit.order, move_order(OrderState::Draft, at(20)))
                        .await
                        .map(|_| Done::Changed),
                    50 => store
                        .update_order(&kit.order, set_quota(0, at(20)))
                        .await
                        .map(|_| Done::Changed),
                    // An issuance that fails after it has counted and logged: its certificate
                    // is byte for byte one already stored (a broken signer), so its insert is
                    // refused.
                    45 => {
                        let (mut issuance, certificate, test) = request.into_parts();
                        issuance.cert_sha256 = seed_cert_sha256;
                        let request =
                            IssueRequest::new(issuance, certificate, test, super::kit::clock());
                        store.issue(request).await.map(|o| match o {
                            IssueOutcome::Issued(unit) => Done::Issued(unit.logged),
                            _ => Done::Changed,
                        })
                    }
                    // One success that is not an issuance.
                    55 => store
                        .create_factory(new_factory.clone(), factory_created(&new_factory))
                        .await
                        .map(Done::Created),
                    _ => match super::kit::issue_as_station(&*store, request).await {
                        IssueOutcome::Issued(unit) => Ok(Done::Issued(unit.logged)),
                        other => panic!("expected Issued, got {other:?}"),
                    },
                };
                (i, done.unwrap_or_else(Done::Failed))
            });
        }
        let mut results = set.join_all().await;
        results.sort_by_key(|(i, _)| *i);

        let mut receipts = Vec::new();
        let mut issued = 0;
        let (dup_factory, dup_product) = (
            Record::new(RecordKind::Factory, &kit.factory),
            Record::new(RecordKind::Product, &kit.product),
        );
        for (i, done) in &results {
            match (i, done) {
                // The duplicates were committed long before: the check before the insert finds them.
                (10, Done::Failed(StoreError::Exists(record))) if *record == dup_factory => {}
                (20, Done::Failed(StoreError::Exists(record))) if *record == dup_product => {}
                (30, Done::Failed(StoreError::EnrollmentTokenInvalid)) => {}
                // Back to draft: the rule refuses it before anything is written.
                (40, Done::Failed(StoreError::Refused(refusal)))
                    if refusal.code == ErrorCode::InvalidRequest => {}
                // A certificate already stored: the schema refuses it (no check precedes it).
                (45, Done::Failed(StoreError::Constraint(Constraint::Other(_)))) => {}
                // Below the issued count.
                (50, Done::Failed(StoreError::Refused(refusal)))
                    if refusal.code == ErrorCode::Conflict => {}
                (55, Done::Created(receipt)) => receipts.push(*receipt),
                (_, Done::Issued(receipt)) if ![10, 20, 30, 40, 45, 50, 55].contains(i) => {
                    issued += 1;
                    receipts.push(*receipt);
                }
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(issued, 49);
        let mut indices = BTreeSet::new();
        for (receipt, index) in receipts.iter().zip(indices_of(&store, &receipts).await) {
            assert!(indices.insert(index), "round {round}: index {index} twice");
            let (stored, _) = event_at(&store, index).await;
            assert_eq!(stored.leaf_hash, receipt.leaf_hash);
        }
        // The 50 changes that succeeded hold exactly the next 50 indices; the 6 failures none.
        assert_eq!(
            indices,
            (before..before + 50).collect::<BTreeSet<_>>(),
            "round {round}"
        );
        assert_eq!(log_size(&store).await, before + 50);
        assert_eq!(store.factories().await.unwrap().len(), factories_before + 1);
    }

    assert_eq!(
        store.factory(&kit.factory).await.unwrap(),
        Some(original_factory)
    );
    assert_eq!(
        store.product(&kit.product).await.unwrap(),
        Some(original_product)
    );
    let order = store.order(&kit.order).await.unwrap().unwrap();
    assert_eq!(
        (order.state, order.quota, order.issued),
        (OrderState::Open, 10_000, 295)
    );
    assert_eq!(kit.counts().await, counts(295, 0, &[]));
    assert_eq!(store.units(&kit.order).await.unwrap().len(), 295);
    check_log(&store).await;
}
