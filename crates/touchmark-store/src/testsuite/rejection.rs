//! `record_rejection`: failed tests and refusals decided before the transaction (I4).

use std::sync::Arc;

use crate::{Rejection, Store};
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::UnitStatus;
use touchmark_core::event::{Event, EventBody};
use touchmark_core::testrecord::{RecordFormat, Verdict};

use super::kit::{
    Kit, at, attempt, check_log, counts, event_at, index_of, issued, key, log_size, serial,
    settled_opt,
};

/// A failed test keeps the attempt, marks the unit failed and consumes nothing; a later pass
/// provisions it; a failed test after that never downgrades it.
pub async fn failed_test_consumes_nothing(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "ft", 5, 1).await;
    let sn = serial("SN-1");
    let events = log_size(&store).await;
    let rejection = kit.failed_test(0, "SN-1");
    let receipt = store.record_rejection(rejection.clone()).await.unwrap();
    let index = index_of(&store, &receipt).await;
    assert_eq!(index, events);
    let (stored, event) = event_at(&store, index).await;
    assert_eq!(stored.leaf_hash, receipt.leaf_hash);
    assert_eq!(event, rejection.event);

    let units = store.units(&kit.order).await.unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!(
        (
            &units[0].serial,
            units[0].status,
            units[0].cert_sha256,
            units[0].test_attempts
        ),
        (&sn, UnitStatus::FailedTest, None, 1)
    );
    assert_eq!(units[0].station.as_ref(), Some(&kit.stations[0]));
    assert_eq!(kit.counts().await, counts(0, 1, &[]));
    assert_eq!(store.order(&kit.order).await.unwrap().unwrap().issued, 0);
    assert_eq!(store.issued_unit(&kit.product, &sn).await.unwrap(), None);

    // A later pass provisions the same unit.
    let unit = issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());
    let units = store.units(&kit.order).await.unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!(
        (
            units[0].status,
            units[0].cert_sha256,
            units[0].test_attempts
        ),
        (UnitStatus::Provisioned, Some(unit.cert_sha256), 2)
    );

    // A failed test afterwards is kept, but the unit stays provisioned.
    store
        .record_rejection(kit.failed_test(0, "SN-1"))
        .await
        .unwrap();
    let units = store.units(&kit.order).await.unwrap();
    assert_eq!(
        (
            units[0].status,
            units[0].cert_sha256,
            units[0].test_attempts
        ),
        (UnitStatus::Provisioned, Some(unit.cert_sha256), 3)
    );
    let read = store.issued_unit(&kit.product, &sn).await.unwrap();
    assert_eq!(
        settled_opt(&store, read).await,
        settled_opt(&store, Some(unit)).await
    );
    assert_eq!(kit.counts().await, counts(1, 2, &[]));
    // Two failures of one unit are still one unit.
    store
        .record_rejection(kit.failed_test(0, "SN-2"))
        .await
        .unwrap();
    store
        .record_rejection(kit.failed_test(0, "SN-2"))
        .await
        .unwrap();
    let units = store.units(&kit.order).await.unwrap();
    assert_eq!(units.len(), 2);
    assert_eq!(
        (units[1].status, units[1].test_attempts),
        (UnitStatus::FailedTest, 2)
    );
    assert_eq!(kit.counts().await, counts(1, 4, &[]));
    check_log(&store).await;
}

/// A refusal decided before the transaction is logged, counted by code, and changes nothing else.
pub async fn refusal_is_recorded_and_counts_nothing(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "rf", 5, 1).await;
    let refused = |reason, serial_text: Option<&str>| {
        Event::new(
            at(60),
            EventBody::UnitRefused {
                order: kit.order.clone(),
                factory: Some(kit.factory.clone()),
                station: kit.stations[0].clone(),
                serial: serial_text.map(serial),
                pubkey_sha256: None,
                test_sha256: None,
                reason,
            },
        )
    };
    // Without a test record (the serial did not parse).
    let events = log_size(&store).await;
    let event = refused(ErrorCode::SerialOutOfRange, None);
    let receipt = store
        .record_rejection(Rejection {
            event: event.clone(),
            product: Some(kit.product.clone()),
            order: kit.order.clone(),
            station: kit.stations[0].clone(),
            serial: None,
            test: None,
            failed_unit: false,
        })
        .await
        .unwrap();
    let index = index_of(&store, &receipt).await;
    assert_eq!(index, events);
    assert_eq!(event_at(&store, index).await.1, event);
    // With one (the CSR was bad): the attempt is kept, no unit appears.
    let sn = serial("SN-1");
    let mut test = attempt(&kit.stations[0], &sn, Verdict::Pass, at(60));
    test.format = RecordFormat::OpenHtf;
    let mut event = refused(ErrorCode::CsrSignatureInvalid, Some("SN-1"));
    if let EventBody::UnitRefused {
        test_sha256,
        pubkey_sha256,
        ..
    } = &mut event.body
    {
        *test_sha256 = Some(test.sha256);
        *pubkey_sha256 = Some(key("k1"));
    }
    let receipt = store
        .record_rejection(Rejection {
            event: event.clone(),
            product: Some(kit.product.clone()),
            order: kit.order.clone(),
            station: kit.stations[0].clone(),
            serial: Some(sn.clone()),
            test: Some(test),
            failed_unit: false,
        })
        .await
        .unwrap();
    let index = index_of(&store, &receipt).await;
    assert_eq!(index, events + 1);
    assert_eq!(event_at(&store, index).await.1, event);

    assert_eq!(
        kit.counts().await,
        counts(
            0,
            0,
            &[
                (ErrorCode::SerialOutOfRange, 1),
                (ErrorCode::CsrSignatureInvalid, 1)
            ]
        )
    );
    assert!(store.units(&kit.order).await.unwrap().is_empty());
    assert!(store.unit(&sn).await.unwrap().is_empty());
    let order = store.order(&kit.order).await.unwrap().unwrap();
    assert_eq!((order.issued, order.quota), (0, 5));
    // The refusal consumed nothing: the full quota is still there.
    for i in 0..5 {
        issued(
            store
                .issue(kit.request(0, &format!("SN-{i}"), &format!("k{i}")))
                .await
                .unwrap(),
        );
    }
    check_log(&store).await;
}

/// A unit is its product and serial (design.md §3): its attempt count is its own, even when
/// another product has a unit with the same serial.
pub async fn unit_attempts_are_counted_per_product(store: Arc<dyn Store>) {
    let a = Kit::new(&store, "pa", 5, 1).await;
    let b = Kit::new(&store, "pb", 5, 1).await;
    store
        .record_rejection(a.failed_test(0, "SN-1"))
        .await
        .unwrap();
    store
        .record_rejection(a.failed_test(0, "SN-1"))
        .await
        .unwrap();
    issued(store.issue(b.request(0, "SN-1", "kb")).await.unwrap());
    let units = store.unit(&serial("SN-1")).await.unwrap();
    let attempts: Vec<_> = units
        .iter()
        .map(|u| (u.product.as_str(), u.status, u.test_attempts))
        .collect();
    assert_eq!(
        attempts,
        [
            ("pa-p", UnitStatus::FailedTest, 2),
            ("pb-p", UnitStatus::Provisioned, 1)
        ]
    );
    check_log(&store).await;
}

/// A request against an order that does not exist is recorded (`order_not_found`): its event
/// alone, with no product and no test record to keep, and no order's counts change.
pub async fn unknown_order_is_recorded_alone(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "uo", 5, 1).await;
    let events = log_size(&store).await;
    let nope = super::kit::order_id("uo-nope");
    let event = Event::new(
        at(60),
        EventBody::UnitRefused {
            order: nope.clone(),
            factory: Some(kit.factory.clone()),
            station: kit.stations[0].clone(),
            serial: Some(serial("SN-1")),
            pubkey_sha256: None,
            test_sha256: Some(key("some record")),
            reason: ErrorCode::OrderNotFound,
        },
    );
    let receipt = store
        .record_rejection(Rejection {
            event: event.clone(),
            product: None,
            order: nope.clone(),
            station: kit.stations[0].clone(),
            serial: Some(serial("SN-1")),
            test: Some(attempt(
                &kit.stations[0],
                &serial("SN-1"),
                Verdict::Pass,
                at(60),
            )),
            failed_unit: false,
        })
        .await
        .unwrap();
    let index = index_of(&store, &receipt).await;
    assert_eq!(index, events);
    assert_eq!(event_at(&store, index).await.1, event);
    assert_eq!(log_size(&store).await, events + 1);
    // No order, no unit, no attempt: only the event.
    assert!(store.order(&nope).await.unwrap().is_none());
    assert!(store.unit(&serial("SN-1")).await.unwrap().is_empty());
    assert_eq!(kit.counts().await, counts(0, 0, &[]));
    check_log(&store).await;
}
