//! I3: every change appends exactly one event, at the next index, and a failed operation
//! appends nothing.

use std::sync::Arc;

use crate::{
    IssueOutcome, NewToken, Record, RecordKind, Rejection, Rule, Store, StoreError, StoredEvent,
};
use touchmark_core::TokenId;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::{Role, Station};
use touchmark_core::event::{Actor, Event, EventBody, Logged, Sha256Hash};
use touchmark_core::order::{Order, OrderState};
use touchmark_core::policy;
use touchmark_tlog::hash::leaf_hash;

use super::kit::{
    Kit, at, check_log, enrollment_token, factory, factory_created, index_of, issued, log_size,
    move_order, order, order_created, order_moved, product, product_created, revoke, set_quota,
    station, station_cert, station_created, station_enrolled,
};

/// Follows the log while a test makes changes one at a time.
struct Follower {
    store: Arc<dyn Store>,
    next: u64,
}

impl Follower {
    async fn new(store: &Arc<dyn Store>) -> Self {
        Self {
            store: Arc::clone(store),
            next: log_size(store).await,
        }
    }

    /// Exactly one event was appended (and, once sequenced, took the next index), of `kind`.
    async fn appended(&mut self, kind: &str) -> (StoredEvent, Event) {
        assert_eq!(
            log_size(&self.store).await,
            self.next + 1,
            "{kind}: not exactly one event"
        );
        let mut page = self.store.events(self.next, 10).await.unwrap();
        assert_eq!(page.len(), 1);
        let stored = page.remove(0);
        assert_eq!((stored.index, stored.kind.as_str()), (self.next, kind));
        assert_eq!(stored.leaf_hash, leaf_hash(&stored.bytes));
        let event = Event::from_canonical(&stored.bytes).unwrap();
        self.next += 1;
        (stored, event)
    }

    /// As [`Self::appended`], for a change that returned `receipt` and was given `event`.
    async fn logged(&mut self, receipt: Logged, event: &Event) {
        let (stored, read) = self.appended(event.body.kind()).await;
        assert_eq!(index_of(&self.store, &receipt).await, stored.index);
        assert_eq!(receipt.leaf_hash, stored.leaf_hash);
        assert_eq!(&read, event);
    }

    /// Nothing was appended, not even an entry still waiting for the sequencer.
    async fn unchanged(&self, what: &str) {
        assert_eq!(
            log_size(&self.store).await,
            self.next,
            "{what} appended an event"
        );
    }
}

/// Every mutating method appends exactly one event, in commit order, with the bytes given.
pub async fn every_change_appends_one_event(store: Arc<dyn Store>) {
    let mut log = Follower::new(&store).await;
    assert_eq!(log.next, 0, "a fresh store has an empty log");
    assert!(store.is_empty().await.unwrap(), "a fresh store is empty");

    let token = TokenId::parse("tok-1").unwrap();
    let event = Event::new(
        at(0),
        EventBody::TokenCreated {
            token: token.clone(),
            role: Role::Admin,
            actor: Actor::System,
        },
    );
    let receipt = store
        .create_token(
            NewToken {
                id: token.clone(),
                secret_sha256: Sha256Hash::of(b"secret"),
                role: Role::Admin,
                label: "first admin".into(),
                at: at(0),
            },
            event.clone(),
        )
        .await
        .unwrap();
    // One record, its entry not yet sequenced on a shared database: the store is not empty.
    assert!(!store.is_empty().await.unwrap());
    log.logged(receipt, &event).await;
    let actor = Actor::Token(token);

    let p = product("ev-p");
    let receipt = store
        .create_product(p.clone(), product_created(&p))
        .await
        .unwrap();
    log.logged(receipt, &product_created(&p)).await;
    let f = factory("ev-f");
    let receipt = store
        .create_factory(f.clone(), factory_created(&f))
        .await
        .unwrap();
    log.logged(receipt, &factory_created(&f)).await;
    let s = station("ev-s0", &f.id);
    let receipt = store
        .create_station(s.clone(), enrollment_token(&s.id), station_created(&s))
        .await
        .unwrap();
    log.logged(receipt, &station_created(&s)).await;
    let receipt = store
        .enroll_station(
            &s.id,
            enrollment_token(&s.id),
            station_cert(&s.id),
            at(10),
            station_enrolled(&s, at(10)),
        )
        .await
        .unwrap();
    log.logged(receipt, &station_enrolled(&s, at(10))).await;
    let o = order("ev-o", &p.id, &f.id, 5);
    let receipt = store
        .create_order(o.clone(), order_created(&o))
        .await
        .unwrap();
    log.logged(receipt, &order_created(&o)).await;
    let opened = order_moved(&o.id, OrderState::Open, at(4));
    store
        .update_order(&o.id, move_order(OrderState::Open, at(4)))
        .await
        .unwrap();
    let (_, read) = log.appended("order.opened").await;
    assert_eq!(read, opened);

    // The rule writes this event on the order as stored: old and new quota, and who.
    let rule = {
        let actor = actor.clone();
        Rule::new(move |o: &Order| policy::order::change_quota(o, 7, actor, at(20)))
    };
    store.update_order(&o.id, rule).await.unwrap();
    let (_, read) = log.appended("order.quota_changed").await;
    assert_eq!(
        read,
        Event::new(
            at(20),
            EventBody::QuotaChanged {
                order: o.id.clone(),
                old_quota: 5,
                new_quota: 7,
                actor: actor.clone(),
            }
        )
    );

    let kit = Kit {
        store: Arc::clone(&store),
        product: p.id.clone(),
        factory: f.id.clone(),
        stations: vec![s.id.clone()],
        order: o.id.clone(),
    };
    let request = kit.request(0, "SN-1", "k1");
    let unit = issued(store.issue(request.clone()).await.unwrap());
    let (stored, read) = log.appended("unit.issued").await;
    assert_eq!(
        (index_of(&store, &unit.logged).await, unit.logged.leaf_hash),
        (stored.index, stored.leaf_hash)
    );
    let issuance = request.issuance();
    assert_eq!(
        read.body,
        EventBody::UnitIssued {
            order: o.id.clone(),
            product: p.id.clone(),
            factory: f.id.clone(),
            station: s.id.clone(),
            serial: issuance.serial.clone(),
            cert_sha256: Sha256Hash::of(&request.certificate().der),
            pubkey_sha256: issuance.pubkey_sha256,
            test_sha256: request.test().sha256,
            release: None,
            firmware_sha256: None,
        }
    );
    assert_eq!(read.at, issuance.attempt.at);
    assert_eq!(&read, request.event(), "the stored event is the one given");

    let IssueOutcome::Refused { logged, .. } =
        store.issue(kit.request(0, "SN-2", "k1")).await.unwrap()
    else {
        panic!("key reuse was not refused")
    };
    let (stored, _) = log.appended("unit.refused").await;
    assert_eq!(
        (index_of(&store, &logged).await, logged.leaf_hash),
        (stored.index, stored.leaf_hash)
    );

    let failed = kit.failed_test(0, "SN-3");
    let receipt = store.record_rejection(failed.clone()).await.unwrap();
    log.logged(receipt, &failed.event).await;
    let refused = Event::new(
        at(70),
        EventBody::UnitRefused {
            order: o.id.clone(),
            factory: None,
            station: s.id.clone(),
            serial: None,
            pubkey_sha256: None,
            test_sha256: None,
            reason: ErrorCode::StationNotAuthorized,
        },
    );
    let receipt = store
        .record_rejection(Rejection {
            event: refused.clone(),
            product: Some(p.id.clone()),
            order: o.id.clone(),
            station: s.id.clone(),
            serial: None,
            test: None,
            failed_unit: false,
        })
        .await
        .unwrap();
    log.logged(receipt, &refused).await;

    let rule = {
        let actor = actor.clone();
        Rule::new(move |st: &Station| policy::station::revoke(st, actor, at(80)))
    };
    let revoked = store.update_station(&s.id, rule).await.unwrap();
    assert_eq!(revoked.id, s.id);
    let (_, read) = log.appended("station.revoked").await;
    assert_eq!(
        read,
        Event::new(
            at(80),
            EventBody::StationRevoked {
                station: s.id.clone(),
                factory: f.id.clone(),
                actor: actor.clone(),
                reason: None,
            }
        )
    );
    let closed = order_moved(&o.id, OrderState::Closed, at(90));
    store
        .update_order(&o.id, move_order(OrderState::Closed, at(90)))
        .await
        .unwrap();
    assert_eq!(log.appended("order.closed").await.1, closed);
    let o2 = order("ev-o2", &p.id, &f.id, 5);
    let receipt = store
        .create_order(o2.clone(), order_created(&o2))
        .await
        .unwrap();
    log.logged(receipt, &order_created(&o2)).await;
    let cancelled = order_moved(&o2.id, OrderState::Cancelled, at(95));
    store
        .update_order(&o2.id, move_order(OrderState::Cancelled, at(95)))
        .await
        .unwrap();
    assert_eq!(log.appended("order.cancelled").await.1, cancelled);

    let events = check_log(&store).await;
    assert_eq!(events.len() as u64, log.next);
    assert_eq!(log.next, 16);
}

/// `r` failed because `kind` `id` exists already.
fn exists<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
    kind: RecordKind,
    id: impl std::fmt::Display,
    what: &str,
) {
    let want = Record::new(kind, id);
    match r {
        Err(StoreError::Exists(record)) if record == want => {}
        other => panic!("{what}: expected Exists({want}), got {other:?}"),
    }
}

/// `r` failed because a rule of the policy, run on the stored record, refused it with `code`.
fn refused<T: std::fmt::Debug>(r: Result<T, StoreError>, code: ErrorCode, what: &str) {
    match r {
        Err(StoreError::Refused(refusal)) if refusal.code == code => {}
        other => panic!("{what}: expected Refused({code}), got {other:?}"),
    }
}

/// `r` failed because `kind` `id` does not exist.
fn not_found<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
    kind: RecordKind,
    id: impl std::fmt::Display,
    what: &str,
) {
    let want = Record::new(kind, id);
    match r {
        Err(StoreError::NotFound(record)) if record == want => {}
        other => panic!("{what}: expected NotFound({want}), got {other:?}"),
    }
}

/// A failed operation appends nothing, writes nothing, and leaves no gap for the next one.
pub async fn failed_operations_append_nothing(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "fo", 1, 1).await;
    issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());
    let log = Follower::new(&store).await;

    let mut p = product("fo-p");
    p.name = "an impostor".into();
    exists(
        store.create_product(p.clone(), product_created(&p)).await,
        RecordKind::Product,
        &p.id,
        "duplicate product",
    );
    log.unchanged("duplicate product").await;
    let mut f = factory("fo-f");
    f.name = "an impostor".into();
    exists(
        store.create_factory(f.clone(), factory_created(&f)).await,
        RecordKind::Factory,
        &f.id,
        "duplicate factory",
    );
    let s = station("fo-s0", &kit.factory);
    exists(
        store
            .create_station(s.clone(), enrollment_token(&s.id), station_created(&s))
            .await,
        RecordKind::Station,
        &s.id,
        "duplicate station",
    );
    let s = station("fo-s9", &super::kit::factory_id("nowhere"));
    not_found(
        store
            .create_station(s.clone(), enrollment_token(&s.id), station_created(&s))
            .await,
        RecordKind::Factory,
        "nowhere",
        "station of an unknown factory",
    );
    let o = order("fo-o", &kit.product, &kit.factory, 3);
    exists(
        store.create_order(o.clone(), order_created(&o)).await,
        RecordKind::Order,
        &o.id,
        "duplicate order",
    );
    let o = order("fo-o2", &super::kit::product_id("nothing"), &kit.factory, 3);
    not_found(
        store.create_order(o.clone(), order_created(&o)).await,
        RecordKind::Product,
        "nothing",
        "order of an unknown product",
    );
    let o = order("fo-o3", &kit.product, &super::kit::factory_id("nowhere"), 3);
    not_found(
        store.create_order(o.clone(), order_created(&o)).await,
        RecordKind::Factory,
        "nowhere",
        "order of an unknown factory",
    );
    refused(
        store
            .update_order(&kit.order, move_order(OrderState::Open, at(5)))
            .await,
        ErrorCode::Conflict,
        "open → open",
    );
    let nothing = super::kit::order_id("no-such-order");
    not_found(
        store
            .update_order(&nothing, move_order(OrderState::Open, at(5)))
            .await,
        RecordKind::Order,
        &nothing,
        "unknown order",
    );
    refused(
        store.update_order(&kit.order, set_quota(0, at(5))).await,
        ErrorCode::Conflict,
        "quota below issued",
    );
    not_found(
        store.update_order(&nothing, set_quota(9, at(5))).await,
        RecordKind::Order,
        &nothing,
        "quota of an unknown order",
    );
    not_found(
        store
            .update_station(&super::kit::station_id("ghost"), revoke(at(5)))
            .await,
        RecordKind::Station,
        "ghost",
        "revoke an unknown station",
    );
    assert!(matches!(
        store
            .enroll_station(
                &kit.stations[0],
                enrollment_token(&kit.stations[0]),
                station_cert(&kit.stations[0]),
                at(11),
                station_enrolled(&station("fo-s0", &kit.factory), at(11)),
            )
            .await,
        Err(StoreError::EnrollmentTokenInvalid)
    ));
    not_found(
        store.order_counts(&nothing).await,
        RecordKind::Order,
        &nothing,
        "counts of an unknown order",
    );
    log.unchanged("the failed operations").await;

    // Nothing they carried was written.
    assert_eq!(
        store.product(&kit.product).await.unwrap().unwrap().name,
        "Product fo-p"
    );
    assert_eq!(
        store.factory(&kit.factory).await.unwrap().unwrap().name,
        "Factory fo-f"
    );
    assert_eq!(store.products().await.unwrap().len(), 1);
    assert_eq!(store.factories().await.unwrap().len(), 1);
    assert_eq!(store.stations(None).await.unwrap().len(), 1);
    assert_eq!(store.orders().await.unwrap().len(), 1);
    assert_eq!(store.order(&kit.order).await.unwrap().unwrap().quota, 1);

    // The next change takes the next index: no gap.
    let f = factory("fo-f2");
    let receipt = store
        .create_factory(f.clone(), factory_created(&f))
        .await
        .unwrap();
    assert_eq!(index_of(&store, &receipt).await, log.next);
    check_log(&store).await;
}
