//! `revocation`: a unit (and its hold), an order, a CA and a station's units by provenance,
//! each applied with its one event, idempotent, and honoured by issuance afterwards.

use std::sync::Arc;

use touchmark_core::code::ErrorCode;
use touchmark_core::entity::UnitStatus;
use touchmark_core::event::{Actor, EventBody};
use touchmark_core::order::OrderState;
use touchmark_core::policy::revocation::{
    Action, Reason, Revocation, RevocationChange, RevocationFacts, Target, decide,
};

use super::kit::{Kit, at, event_at, index_of, issue_as_station, issued, log_size, serial};
use crate::{IssueOutcome, Revoked, Rule, Store, StoreError};

/// Applies `revocation` at `at(secs)` through the store, as the authority does.
async fn apply(
    store: &Arc<dyn Store>,
    revocation: Revocation,
    secs: i64,
) -> Result<Revoked, StoreError> {
    let target = revocation.target.clone();
    let rule = Rule::new(
        move |facts: &RevocationFacts| -> Result<RevocationChange, _> {
            decide(&revocation, facts, Actor::System, at(secs))
        },
    );
    store.revoke(&target, rule).await
}

fn unit(serial_text: &str, action: Action) -> Revocation {
    Revocation {
        target: Target::Unit {
            product: None,
            serial: serial(serial_text),
        },
        action,
    }
}

fn refusal_code(result: Result<Revoked, StoreError>) -> ErrorCode {
    match result {
        Err(StoreError::Refused(refusal)) => refusal.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn status_of(store: &Arc<dyn Store>, serial_text: &str) -> UnitStatus {
    store.unit(&serial(serial_text)).await.unwrap()[0].status
}

/// A revoked unit is listed with its reason, revoking it again logs nothing, a never-issued
/// serial cannot be revoked, and the serial stays taken.
pub async fn a_revoked_unit_stays_taken(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "ru", 5, 1).await;
    let first = issued(issue_as_station(&*store, kit.request(0, "SN-1", "k1")).await);
    let second = issued(issue_as_station(&*store, kit.request(0, "SN-2", "k2")).await);
    let size = log_size(&store).await;

    let revoked = apply(
        &store,
        unit("SN-1", Action::Revoke(Reason::KeyCompromise)),
        200,
    )
    .await
    .unwrap();
    assert_eq!(revoked.change.revoke, vec![first.cert_sha256]);
    let index = index_of(&store, &revoked.logged.unwrap()).await;
    assert_eq!(index, size);
    let (_, event) = event_at(&store, index).await;
    assert_eq!(
        event.body,
        EventBody::UnitRevoked {
            product: kit.product.clone(),
            order: kit.order.clone(),
            serial: serial("SN-1"),
            cert_sha256: first.cert_sha256,
            reason: Reason::KeyCompromise,
            actor: Actor::System,
        }
    );
    assert_eq!(status_of(&store, "SN-1").await, UnitStatus::Revoked);
    assert_eq!(status_of(&store, "SN-2").await, UnitStatus::Provisioned);

    let listed = store.revoked_certificates(&kit.product).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].cert_sha256, first.cert_sha256);
    assert_eq!(listed[0].revoked.reason, Reason::KeyCompromise);
    assert_eq!(listed[0].revoked.at, at(200));
    let status = store
        .certificate_status(&kit.product, &listed[0].cert_serial_hex)
        .await
        .unwrap();
    assert_eq!(
        status.flatten().map(|r| r.reason),
        Some(Reason::KeyCompromise)
    );
    assert_eq!(
        store
            .certificate_status(&kit.product, "00ff")
            .await
            .unwrap(),
        None,
        "a serial number never issued is unknown"
    );

    // Again, with any reason: nothing changes, nothing is logged.
    let again = apply(
        &store,
        unit("SN-1", Action::Revoke(Reason::Superseded)),
        210,
    )
    .await
    .unwrap();
    assert_eq!((again.logged, again.change.revoke.len()), (None, 0));
    assert_eq!(log_size(&store).await, size + 1);
    assert_eq!(
        store.revoked_certificates(&kit.product).await.unwrap()[0]
            .revoked
            .reason,
        Reason::KeyCompromise
    );

    // A serial that holds no certificate cannot be revoked, and nothing is logged.
    let code = refusal_code(
        apply(
            &store,
            unit("SN-9", Action::Revoke(Reason::KeyCompromise)),
            220,
        )
        .await,
    );
    assert_eq!(code, ErrorCode::NotFound);
    assert_eq!(log_size(&store).await, size + 1);

    // The serial stays taken: its retry is refused, and so is another key.
    for (key, code) in [
        ("k1", ErrorCode::UnitRevoked),
        ("k9", ErrorCode::SerialConflict),
    ] {
        match issue_as_station(&*store, kit.request(0, "SN-1", key)).await {
            IssueOutcome::Refused { refusal, .. } => assert_eq!(refusal.code, code, "{key}"),
            other => panic!("{key}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(kit.counts().await.issued, 2);
    let _ = second;
}

/// A hold is listed like a revocation, released once, and can still become final.
pub async fn a_hold_is_released_once(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "rh", 5, 1).await;
    let unit_a = issued(issue_as_station(&*store, kit.request(0, "SN-1", "k1")).await);
    let held = apply(
        &store,
        unit("SN-1", Action::Revoke(Reason::CertificateHold)),
        200,
    )
    .await
    .unwrap();
    assert!(held.logged.is_some());
    assert_eq!(status_of(&store, "SN-1").await, UnitStatus::Revoked);
    let listed = store.revoked_certificates(&kit.product).await.unwrap();
    assert_eq!(listed[0].revoked.reason, Reason::CertificateHold);

    let released = apply(&store, unit("SN-1", Action::Release), 210)
        .await
        .unwrap();
    assert_eq!(released.change.release, vec![unit_a.cert_sha256]);
    let (_, event) = event_at(&store, index_of(&store, &released.logged.unwrap()).await).await;
    assert!(
        matches!(event.body, EventBody::UnitReleased { .. }),
        "{event:?}"
    );
    assert_eq!(status_of(&store, "SN-1").await, UnitStatus::Provisioned);
    assert!(
        store
            .revoked_certificates(&kit.product)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .certificate_status(&kit.product, &listed[0].cert_serial_hex)
            .await
            .unwrap(),
        Some(None)
    );
    // Released, it is a retry again.
    assert!(matches!(
        issue_as_station(&*store, kit.request(0, "SN-1", "k1")).await,
        IssueOutcome::AlreadyIssued(_)
    ));
    let code = refusal_code(apply(&store, unit("SN-1", Action::Release), 220).await);
    assert_eq!(code, ErrorCode::Conflict);

    // Held, then revoked for good: no release after that.
    apply(
        &store,
        unit("SN-1", Action::Revoke(Reason::CertificateHold)),
        230,
    )
    .await
    .unwrap();
    let fin = apply(
        &store,
        unit("SN-1", Action::Revoke(Reason::KeyCompromise)),
        240,
    )
    .await
    .unwrap();
    assert!(fin.logged.is_some());
    let code = refusal_code(apply(&store, unit("SN-1", Action::Release), 250).await);
    assert_eq!(code, ErrorCode::Conflict);
    let listed = store.revoked_certificates(&kit.product).await.unwrap();
    assert_eq!(
        (listed.len(), listed[0].revoked.reason),
        (1, Reason::KeyCompromise)
    );
}

/// An order's revocation revokes each of its certificates and closes it, in one event.
pub async fn an_order_revocation_closes_it(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "ro", 5, 1).await;
    for n in 1..=3 {
        issued(
            issue_as_station(
                &*store,
                kit.request(0, &format!("SN-{n}"), &format!("k{n}")),
            )
            .await,
        );
    }
    let other = kit.add_order("ro-o2", 5).await;
    issued(issue_as_station(&*store, kit.request_for(&other, 0, "SN-7", "k7")).await);
    apply(
        &store,
        unit("SN-2", Action::Revoke(Reason::KeyCompromise)),
        150,
    )
    .await
    .unwrap();

    let revocation = Revocation {
        target: Target::Order(kit.order.clone()),
        action: Action::Revoke(Reason::Superseded),
    };
    let revoked = apply(&store, revocation.clone(), 200).await.unwrap();
    assert_eq!(revoked.change.revoke.len(), 2, "SN-2 was revoked before");
    let (_, event) = event_at(&store, index_of(&store, &revoked.logged.unwrap()).await).await;
    assert_eq!(
        event.body,
        EventBody::OrderRevoked {
            order: kit.order.clone(),
            product: kit.product.clone(),
            reason: Reason::Superseded,
            units: 2,
            actor: Actor::System,
        }
    );
    assert_eq!(
        store.order(&kit.order).await.unwrap().unwrap().state,
        OrderState::Closed
    );
    let listed = store.revoked_certificates(&kit.product).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|c| c.order == kit.order));
    assert_eq!(status_of(&store, "SN-7").await, UnitStatus::Provisioned);
    match issue_as_station(&*store, kit.request(0, "SN-4", "k4")).await {
        IssueOutcome::Refused { refusal, .. } => assert_eq!(refusal.code, ErrorCode::OrderNotOpen),
        other => panic!("expected order_not_open, got {other:?}"),
    }
    let size = log_size(&store).await;
    let again = apply(&store, revocation, 210).await.unwrap();
    assert_eq!(again.logged, None);
    assert_eq!(log_size(&store).await, size);
    let missing = Revocation {
        target: Target::Order(super::kit::order_id("ro-none")),
        action: Action::Revoke(Reason::Superseded),
    };
    assert_eq!(
        refusal_code(apply(&store, missing, 220).await),
        ErrorCode::NotFound
    );
}

/// A revoked CA is listed once and issues nothing more; its units keep their own status.
pub async fn a_revoked_ca_issues_nothing(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "rc", 5, 1).await;
    issued(issue_as_station(&*store, kit.request(0, "SN-1", "k1")).await);
    let revocation = Revocation {
        target: Target::Ca(kit.product.clone()),
        action: Action::Revoke(Reason::CaCompromise),
    };
    let revoked = apply(&store, revocation.clone(), 200).await.unwrap();
    assert!(revoked.logged.is_some());
    let cas = store.revoked_cas().await.unwrap();
    assert_eq!(cas.len(), 1);
    assert_eq!(
        (&cas[0].product, cas[0].revoked.reason),
        (&kit.product, Reason::CaCompromise)
    );
    match issue_as_station(&*store, kit.request(0, "SN-2", "k2")).await {
        IssueOutcome::Refused { refusal, .. } => assert_eq!(refusal.code, ErrorCode::CaRevoked),
        other => panic!("expected ca_revoked, got {other:?}"),
    }
    assert_eq!(kit.counts().await.issued, 1);
    assert_eq!(apply(&store, revocation, 210).await.unwrap().logged, None);
    assert_eq!(store.revoked_cas().await.unwrap().len(), 1);
    let missing = Revocation {
        target: Target::Ca(super::kit::product_id("rc-none")),
        action: Action::Revoke(Reason::CaCompromise),
    };
    assert_eq!(
        refusal_code(apply(&store, missing, 220).await),
        ErrorCode::NotFound
    );
}

/// A revocation by provenance takes the units of one station issued in the span, and no others.
pub async fn provenance_takes_one_station_in_its_span(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "rp", 10, 2).await;
    // Every kit issuance happens at at(100).
    issued(issue_as_station(&*store, kit.request(0, "SN-1", "k1")).await);
    issued(issue_as_station(&*store, kit.request(0, "SN-2", "k2")).await);
    issued(issue_as_station(&*store, kit.request(1, "SN-3", "k3")).await);
    let station = kit.stations[0].clone();
    let span = |from, to| Revocation {
        target: Target::Provenance {
            station: station.clone(),
            from: at(from),
            to: at(to),
        },
        action: Action::Revoke(Reason::KeyCompromise),
    };
    let none = apply(&store, span(101, 300), 200).await.unwrap();
    assert_eq!((none.logged, none.change.revoke.len()), (None, 0));
    let revoked = apply(&store, span(100, 101), 200).await.unwrap();
    assert_eq!(revoked.change.revoke.len(), 2);
    let (_, event) = event_at(&store, index_of(&store, &revoked.logged.unwrap()).await).await;
    let EventBody::ProvenanceRevoked {
        station: s,
        factory,
        units,
        ..
    } = event.body
    else {
        panic!("not a provenance event: {event:?}");
    };
    assert_eq!(
        (s, factory, units),
        (station.clone(), kit.factory.clone(), 2)
    );
    assert_eq!(status_of(&store, "SN-1").await, UnitStatus::Revoked);
    assert_eq!(status_of(&store, "SN-2").await, UnitStatus::Revoked);
    assert_eq!(status_of(&store, "SN-3").await, UnitStatus::Provisioned);
    // The station itself keeps working: this revokes its units, not its identity.
    issued(issue_as_station(&*store, kit.request(0, "SN-4", "k4")).await);
    let unknown = Revocation {
        target: Target::Provenance {
            station: super::kit::station_id("rp-none"),
            from: at(0),
            to: at(1000),
        },
        action: Action::Revoke(Reason::KeyCompromise),
    };
    assert_eq!(
        refusal_code(apply(&store, unknown, 220).await),
        ErrorCode::NotFound
    );
}
