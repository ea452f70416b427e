//! Admin records: products, factories, stations, orders, quotas and tokens.

use std::sync::Arc;

use crate::{Constraint, IssueOutcome, NewToken, Record, RecordKind, Rule, Store, StoreError};
use tokio::task::JoinSet;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::{ApiToken, Role, StationStatus};
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::order::{Order, OrderState};
use touchmark_core::policy;
use touchmark_core::{OrderId, SerialRule, TokenId};

use super::kit::{
    Kit, at, check_log, enrollment_token, event_at, factory, factory_created, factory_id, issued,
    log_size, order, order_created, product, product_created, revoke, station, station_cert,
    station_created, station_enrolled,
};

/// Whether `r` failed because `kind` `id` exists already.
fn is_exists<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
    kind: RecordKind,
    id: impl std::fmt::Display,
) -> bool {
    matches!(r, Err(StoreError::Exists(record)) if record == Record::new(kind, id))
}

/// Whether `r` failed because a rule of the policy refused it with `code`.
fn is_refused<T: std::fmt::Debug>(r: Result<T, StoreError>, code: ErrorCode) -> bool {
    matches!(r, Err(StoreError::Refused(refusal)) if refusal.code == code)
}

/// Whether an issuance was refused with `code`.
fn refused_with(outcome: &IssueOutcome, code: ErrorCode) -> bool {
    matches!(outcome, IssueOutcome::Refused { refusal, .. } if refusal.code == code)
}

/// Products read back exactly as stored, listed by id; a duplicate id is refused.
pub async fn products_round_trip(store: Arc<dyn Store>) {
    let mut b = product("prod-b");
    b.cert_not_after = Some(at(86_400 * 365));
    b.ocsp_url = Some("http://ocsp.example.test".into());
    b.crl_url = None;
    let a = product("prod-a");
    for p in [&b, &a] {
        store
            .create_product(p.clone(), product_created(p))
            .await
            .unwrap();
    }
    assert_eq!(store.product(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.product(&b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(
        store
            .product(&super::kit::product_id("prod-c"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.products().await.unwrap(), [a.clone(), b]);
    let events = log_size(&store).await;
    assert!(is_exists(
        store.create_product(a.clone(), product_created(&a)).await,
        RecordKind::Product,
        &a.id
    ));
    assert_eq!(log_size(&store).await, events);
    assert_eq!(events, 2);
    check_log(&store).await;
}

/// A product made while the device root is offline has no CA certificate; installing one
/// stores it with its event, once: a second install, or one for an unknown product, changes
/// nothing and appends nothing.
pub async fn a_product_ca_is_installed_once(store: Arc<dyn Store>) {
    let mut pending = product("prod-off");
    pending.issuing_ca_pem = String::new();
    let mut created = product_created(&pending);
    if let EventBody::ProductCreated {
        issuing_ca_sha256, ..
    } = &mut created.body
    {
        *issuing_ca_sha256 = None;
    }
    store
        .create_product(pending.clone(), created)
        .await
        .unwrap();
    assert!(
        !store
            .product(&pending.id)
            .await
            .unwrap()
            .unwrap()
            .ca_installed()
    );
    let pem = product("prod-off").issuing_ca_pem;
    let installed = |id: &str| {
        Event::new(
            at(1),
            EventBody::CaInstalled {
                product: super::kit::product_id(id),
                key: format!("product-{id}"),
                issuing_ca_sha256: Sha256Hash::of(pem.as_bytes()),
                public_key_sha256: Sha256Hash([7; 32]),
                actor: Actor::System,
            },
        )
    };
    store
        .install_product_ca(&pending.id, pem.clone(), installed("prod-off"))
        .await
        .unwrap();
    let stored = store.product(&pending.id).await.unwrap().unwrap();
    assert!(stored.ca_installed());
    assert_eq!(stored.issuing_ca_pem, pem);
    let events = log_size(&store).await;
    assert_eq!(events, 2);
    assert!(is_refused(
        store
            .install_product_ca(&pending.id, "other".into(), installed("prod-off"))
            .await,
        ErrorCode::Conflict
    ));
    let unknown = super::kit::product_id("prod-none");
    assert!(matches!(
        store
            .install_product_ca(&unknown, pem.clone(), installed("prod-none"))
            .await,
        Err(StoreError::NotFound(record)) if record == Record::new(RecordKind::Product, &unknown)
    ));
    assert_eq!(log_size(&store).await, events);
    assert_eq!(
        store
            .product(&pending.id)
            .await
            .unwrap()
            .unwrap()
            .issuing_ca_pem,
        pem
    );
    let log = check_log(&store).await;
    assert_eq!(log.last().unwrap().body.kind(), "ca.installed");
}

/// Factories read back exactly as stored, listed by id; a duplicate id is refused.
pub async fn factories_round_trip(store: Arc<dyn Store>) {
    let b = factory("fac-b");
    let a = factory("fac-a");
    for f in [&b, &a] {
        store
            .create_factory(f.clone(), factory_created(f))
            .await
            .unwrap();
    }
    assert_eq!(store.factory(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.factory(&factory_id("fac-c")).await.unwrap(), None);
    assert_eq!(store.factories().await.unwrap(), [a.clone(), b]);
    assert!(is_exists(
        store.create_factory(a.clone(), factory_created(&a)).await,
        RecordKind::Factory,
        &a.id
    ));
    assert_eq!(log_size(&store).await, 2);
    check_log(&store).await;
}

/// Stations read back exactly as stored, listed per factory; an unknown factory and a
/// duplicate id are refused.
pub async fn stations_round_trip(store: Arc<dyn Store>) {
    let (f1, f2) = (factory("st-f1"), factory("st-f2"));
    for f in [&f1, &f2] {
        store
            .create_factory(f.clone(), factory_created(f))
            .await
            .unwrap();
    }
    let s_b = station("st-b", &f1.id);
    let s_a = station("st-a", &f1.id);
    let s_c = station("st-c", &f2.id);
    for s in [&s_b, &s_a, &s_c] {
        store
            .create_station(s.clone(), enrollment_token(&s.id), station_created(s))
            .await
            .unwrap();
    }
    assert_eq!(store.station(&s_a.id).await.unwrap(), Some(s_a.clone()));
    assert_eq!(
        store
            .station(&super::kit::station_id("st-z"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.stations(None).await.unwrap(),
        [s_a.clone(), s_b.clone(), s_c.clone()]
    );
    assert_eq!(
        store.stations(Some(&f1.id)).await.unwrap(),
        [s_a.clone(), s_b.clone()]
    );
    assert_eq!(
        store.stations(Some(&f2.id)).await.unwrap(),
        std::slice::from_ref(&s_c)
    );
    assert!(
        store
            .stations(Some(&factory_id("st-f3")))
            .await
            .unwrap()
            .is_empty()
    );
    // A pending station is found by its token until it enrolls.
    assert_eq!(
        store
            .station_for_enrollment(enrollment_token(&s_a.id), at(20))
            .await
            .unwrap(),
        Some(s_a.clone())
    );
    store
        .enroll_station(
            &s_a.id,
            enrollment_token(&s_a.id),
            station_cert(&s_a.id),
            at(20),
            station_enrolled(&s_a, at(20)),
        )
        .await
        .unwrap();
    let enrolled = store.station(&s_a.id).await.unwrap().unwrap();
    assert_eq!(enrolled.status, StationStatus::Active);
    assert_eq!(enrolled.cert_sha256, Some(station_cert(&s_a.id)));
    assert_eq!(
        (enrolled.factory, enrolled.name, enrolled.created_at),
        (s_a.factory.clone(), s_a.name.clone(), s_a.created_at)
    );
    assert!(is_exists(
        store
            .create_station(
                s_b.clone(),
                enrollment_token(&s_c.id),
                station_created(&s_b)
            )
            .await,
        RecordKind::Station,
        &s_b.id
    ));
    assert_eq!(log_size(&store).await, 6);
    check_log(&store).await;
}

/// Orders read back exactly as stored, with their serial rule and window.
pub async fn orders_round_trip(store: Arc<dyn Store>) {
    let p = product("or-p");
    store
        .create_product(p.clone(), product_created(&p))
        .await
        .unwrap();
    let f = factory("or-f");
    store
        .create_factory(f.clone(), factory_created(&f))
        .await
        .unwrap();
    let mut ranged = order("or-b", &p.id, &f.id, 500);
    ranged.serial_rule = SerialRule::parse_range("SN-000001..SN-000500").unwrap();
    ranged.not_before = Some(at(0));
    ranged.not_after = Some(at(86_400 * 30));
    ranged.created_at = at(5);
    let mut patterned = order("or-a", &p.id, &f.id, 7);
    patterned.serial_rule = SerialRule::parse_pattern("^AB[0-9]{4}$").unwrap();
    patterned.created_at = at(6);
    for o in [&ranged, &patterned] {
        store
            .create_order(o.clone(), order_created(o))
            .await
            .unwrap();
    }
    assert_eq!(store.order(&ranged.id).await.unwrap(), Some(ranged.clone()));
    assert_eq!(
        store.order(&patterned.id).await.unwrap(),
        Some(patterned.clone())
    );
    assert_eq!(
        store.order(&super::kit::order_id("or-z")).await.unwrap(),
        None
    );
    // Listed in creation order.
    assert_eq!(
        store.orders().await.unwrap(),
        [ranged.clone(), patterned.clone()]
    );
    assert!(is_exists(
        store
            .create_order(patterned.clone(), order_created(&patterned))
            .await,
        RecordKind::Order,
        &patterned.id
    ));
    assert_eq!(
        store.order_counts(&ranged.id).await.unwrap(),
        super::kit::counts(0, 0, &[])
    );
    assert_eq!(log_size(&store).await, 4);
    check_log(&store).await;
}

/// `create_order` stores the order in draft, whatever state the value carries: opening it is a
/// logged transition of its own.
pub async fn orders_are_created_in_draft(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "cd", 5, 1).await;
    let mut o = order("cd-o2", &kit.product, &kit.factory, 5);
    o.state = OrderState::Open;
    let result = store.create_order(o.clone(), order_created(&o)).await;
    if result.is_ok() {
        assert_eq!(
            store.order(&o.id).await.unwrap().unwrap().state,
            OrderState::Draft,
            "an order is open without an order.opened event"
        );
    }
    check_log(&store).await;
}

/// Moves `order` to `to`: `Ok` means one event appended and the state stored; a refusal
/// (`conflict`, or `invalid_request` for a move back to draft) means nothing at all.
async fn move_order(store: &Arc<dyn Store>, id: &OrderId, to: OrderState) -> Result<(), ()> {
    let events = log_size(store).await;
    let before = store.order(id).await.unwrap().unwrap();
    match store
        .update_order(id, super::kit::move_order(to, at(30)))
        .await
    {
        Ok(order) => {
            assert_eq!(
                order,
                Order {
                    state: to,
                    ..before
                }
            );
            assert_eq!(store.order(id).await.unwrap(), Some(order));
            assert_eq!(log_size(store).await, events + 1);
            Ok(())
        }
        Err(StoreError::Refused(refusal)) => {
            // No event says "back to draft": that move is not a conflict but an invalid request.
            let code = if to == OrderState::Draft {
                ErrorCode::InvalidRequest
            } else {
                ErrorCode::Conflict
            };
            assert_eq!(refusal.code, code, "{id} → {to}: {}", refusal.message);
            assert_eq!(store.order(id).await.unwrap(), Some(before));
            assert_eq!(log_size(store).await, events);
            Err(())
        }
        Err(e) => panic!("{id} → {to}: {e:?}"),
    }
}

/// draft → open → closed | cancelled, and nothing else.
pub async fn order_state_machine(store: Arc<dyn Store>) {
    use OrderState::*;
    let kit = Kit::new(&store, "sm", 5, 0).await;
    let mut ids = Vec::new();
    for name in ["sm-1", "sm-2", "sm-3"] {
        let o = order(name, &kit.product, &kit.factory, 5);
        store
            .create_order(o.clone(), order_created(&o))
            .await
            .unwrap();
        assert_eq!(store.order(&o.id).await.unwrap().unwrap().state, Draft);
        ids.push(o.id);
    }
    let cases: &[(&str, usize, OrderState, bool)] = &[
        ("draft → closed", 0, Closed, false),
        ("draft → draft", 0, Draft, false),
        ("draft → open", 0, Open, true),
        ("open → open", 0, Open, false),
        ("open → draft", 0, Draft, false),
        ("open → closed", 0, Closed, true),
        ("closed → open", 0, Open, false),
        ("closed → cancelled", 0, Cancelled, false),
        ("closed → closed", 0, Closed, false),
        ("draft → cancelled", 1, Cancelled, true),
        ("cancelled → open", 1, Open, false),
        ("cancelled → closed", 1, Closed, false),
        ("cancelled → draft", 1, Draft, false),
        ("draft → open (3)", 2, Open, true),
        ("open → cancelled", 2, Cancelled, true),
        ("cancelled → cancelled", 2, Cancelled, false),
    ];
    for (name, i, to, ok) in cases {
        // No event says "back to draft": the rule refuses it before anything is written.
        let got = move_order(&store, &ids[*i], *to).await.is_ok();
        assert_eq!(got, *ok, "{name}");
    }
    let states: Vec<_> = store.orders().await.unwrap();
    let states: Vec<_> = states.iter().map(|o| (o.id.as_str(), o.state)).collect();
    assert_eq!(
        states,
        [
            ("sm-1", Closed),
            ("sm-2", Cancelled),
            ("sm-3", Cancelled),
            ("sm-o", Open)
        ]
    );
    check_log(&store).await;
}

/// Quota changes are logged with old and new, never go below the issued count, and stop once
/// the order is closed or cancelled.
pub async fn change_quota_rules(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "cq", 2, 1).await;
    issued(store.issue(kit.request(0, "SN-1", "k1")).await.unwrap());
    issued(store.issue(kit.request(0, "SN-2", "k2")).await.unwrap());
    assert!(refused_with(
        &store.issue(kit.request(0, "SN-3", "k3")).await.unwrap(),
        ErrorCode::QuotaExhausted
    ));

    let admin = Actor::Token(TokenId::parse("admin-1").unwrap());
    // The rule an admin's quota change runs, as the authority builds it.
    let by_admin = |quota: u64, when: time::OffsetDateTime| {
        let admin = admin.clone();
        Rule::new(move |o: &Order| policy::order::change_quota(o, quota, admin, when))
    };
    let raise = |quota: u64| {
        let store = Arc::clone(&store);
        let order = kit.order.clone();
        let admin = admin.clone();
        let rule = by_admin(quota, at(40));
        async move {
            let events = log_size(&store).await;
            let before = store.order(&order).await.unwrap().unwrap();
            let result = store.update_order(&order, rule).await;
            match &result {
                Ok(changed) => {
                    assert_eq!(
                        *changed,
                        Order {
                            quota,
                            ..before.clone()
                        }
                    );
                    assert_eq!(store.order(&order).await.unwrap().as_ref(), Some(changed));
                    assert_eq!(log_size(&store).await, events + 1);
                    let (_, event) = event_at(&store, events).await;
                    assert_eq!(
                        event,
                        Event::new(
                            at(40),
                            EventBody::QuotaChanged {
                                order: order.clone(),
                                old_quota: before.quota,
                                new_quota: quota,
                                actor: admin,
                            }
                        )
                    );
                    assert_eq!(log_size(&store).await, events + 1);
                }
                Err(_) => {
                    assert_eq!(store.order(&order).await.unwrap(), Some(before));
                    assert_eq!(log_size(&store).await, events);
                }
            }
            result
        }
    };

    raise(3).await.unwrap();
    issued(store.issue(kit.request(0, "SN-3", "k3")).await.unwrap());
    assert!(
        is_refused(raise(2).await, ErrorCode::Conflict),
        "below issued"
    );
    raise(10).await.unwrap();
    raise(3).await.unwrap();
    assert!(refused_with(
        &store.issue(kit.request(0, "SN-4", "k4")).await.unwrap(),
        ErrorCode::QuotaExhausted
    ));
    assert_eq!(
        kit.counts().await,
        super::kit::counts(3, 0, &[(ErrorCode::QuotaExhausted, 2)])
    );

    store
        .update_order(
            &kit.order,
            super::kit::move_order(OrderState::Closed, at(50)),
        )
        .await
        .unwrap();
    assert!(is_refused(raise(20).await, ErrorCode::Conflict), "closed");

    // A draft order's quota may change; a cancelled one's may not.
    let draft = order("cq-o2", &kit.product, &kit.factory, 5);
    store
        .create_order(draft.clone(), order_created(&draft))
        .await
        .unwrap();
    let changed = store
        .update_order(&draft.id, by_admin(8, at(40)))
        .await
        .unwrap();
    assert_eq!((changed.quota, changed.state), (8, OrderState::Draft));
    store
        .update_order(
            &draft.id,
            super::kit::move_order(OrderState::Cancelled, at(50)),
        )
        .await
        .unwrap();
    let events = log_size(&store).await;
    assert!(is_refused(
        store.update_order(&draft.id, by_admin(9, at(60))).await,
        ErrorCode::Conflict
    ));
    assert_eq!(log_size(&store).await, events);
    check_log(&store).await;
}

/// Two enrollments racing with one token: exactly one wins; the token is then spent.
pub async fn enrollment_is_one_time(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "en", 5, 0).await;
    let s = kit.add_station("en-s").await;
    let events = log_size(&store).await;
    let mut set = JoinSet::new();
    for i in 0..2u8 {
        let (store, s) = (Arc::clone(&store), s.clone());
        set.spawn(async move {
            let cert = Sha256Hash([i; 32]);
            let mut event = station_enrolled(&s, at(20));
            if let EventBody::StationEnrolled { cert_sha256, .. } = &mut event.body {
                *cert_sha256 = cert;
            }
            store
                .enroll_station(&s.id, enrollment_token(&s.id), cert, at(20), event)
                .await
                .map(|_| cert)
        });
    }
    let results = set.join_all().await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StoreError::EnrollmentTokenInvalid))),
        "{results:?}"
    );
    assert_eq!(log_size(&store).await, events + 1);
    let enrolled = store.station(&s.id).await.unwrap().unwrap();
    assert_eq!(enrolled.status, StationStatus::Active);
    assert_eq!(enrolled.cert_sha256, Some(*winners[0]));

    // The token is spent.
    assert_eq!(
        store
            .station_for_enrollment(enrollment_token(&s.id), at(21))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .enroll_station(
                &s.id,
                enrollment_token(&s.id),
                station_cert(&s.id),
                at(21),
                station_enrolled(&s, at(21))
            )
            .await,
        Err(StoreError::EnrollmentTokenInvalid)
    ));
    assert_eq!(log_size(&store).await, events + 1);
    check_log(&store).await;
}

/// An expired, unknown or mismatched token enrolls nothing.
pub async fn bad_enrollment_tokens_are_refused(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "ex", 5, 0).await;
    let s = kit.add_station("ex-s").await;
    let other = kit.add_station("ex-t").await;
    let events = log_size(&store).await;
    let expires = s.enrollment_expires_at;
    let late = expires + time::Duration::seconds(1);
    let enroll = |token: Sha256Hash, now| {
        let (store, s) = (Arc::clone(&store), s.clone());
        async move {
            store
                .enroll_station(
                    &s.id,
                    token,
                    station_cert(&s.id),
                    now,
                    station_enrolled(&s, now),
                )
                .await
        }
    };

    assert_eq!(
        store
            .station_for_enrollment(enrollment_token(&s.id), late)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        enroll(enrollment_token(&s.id), late).await,
        Err(StoreError::EnrollmentTokenInvalid)
    ));
    assert!(matches!(
        enroll(Sha256Hash::of(b"unknown"), at(20)).await,
        Err(StoreError::EnrollmentTokenInvalid)
    ));
    assert!(matches!(
        enroll(enrollment_token(&other.id), at(20)).await,
        Err(StoreError::EnrollmentTokenInvalid)
    ));
    assert_eq!(
        store
            .station_for_enrollment(Sha256Hash::of(b"unknown"), at(20))
            .await
            .unwrap(),
        None
    );
    assert_eq!(log_size(&store).await, events);
    assert_eq!(store.station(&s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(store.station(&other.id).await.unwrap(), Some(other.clone()));

    // Until its expiry (inclusive), the token still works.
    assert_eq!(
        store
            .station_for_enrollment(enrollment_token(&s.id), expires)
            .await
            .unwrap(),
        Some(s.clone())
    );
    enroll(enrollment_token(&s.id), expires).await.unwrap();
    assert_eq!(log_size(&store).await, events + 1);
    check_log(&store).await;
}

/// Revocation is logged once; a second one is a conflict; a revoked pending station's token
/// no longer enrolls.
pub async fn revoke_station_once(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "rv", 5, 1).await;
    let pending = kit.add_station("rv-pending").await;
    let events = log_size(&store).await;
    let active = store.station(&kit.stations[0]).await.unwrap().unwrap();
    let revoked = store
        .update_station(&active.id, revoke(at(30)))
        .await
        .unwrap();
    assert_eq!(
        revoked,
        touchmark_core::entity::Station {
            status: StationStatus::Revoked,
            ..active.clone()
        }
    );
    assert_eq!(store.station(&active.id).await.unwrap(), Some(revoked));
    assert!(is_refused(
        store.update_station(&active.id, revoke(at(31))).await,
        ErrorCode::Conflict
    ));
    assert_eq!(log_size(&store).await, events + 1);

    store
        .update_station(&pending.id, revoke(at(32)))
        .await
        .unwrap();
    assert_eq!(
        store
            .station_for_enrollment(enrollment_token(&pending.id), at(33))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .enroll_station(
                &pending.id,
                enrollment_token(&pending.id),
                station_cert(&pending.id),
                at(33),
                station_enrolled(&pending, at(33))
            )
            .await,
        Err(StoreError::EnrollmentTokenInvalid)
    ));
    assert_eq!(
        store.station(&pending.id).await.unwrap().unwrap().status,
        StationStatus::Revoked
    );
    assert_eq!(log_size(&store).await, events + 2);
    check_log(&store).await;
}

/// Tokens are found by their secret's hash, and only by it.
pub async fn tokens_by_secret(store: Arc<dyn Store>) {
    let new = |id: &str, secret: &[u8], role| NewToken {
        id: TokenId::parse(id).unwrap(),
        secret_sha256: Sha256Hash::of(secret),
        role,
        label: format!("token {id}"),
        at: at(7),
    };
    let created = |t: &NewToken| {
        Event::new(
            t.at,
            EventBody::TokenCreated {
                token: t.id.clone(),
                role: t.role,
                actor: Actor::System,
            },
        )
    };
    let admin = new("t-admin", b"s3cret-admin", Role::Admin);
    let auditor = new("t-audit", b"s3cret-audit", Role::Auditor);
    for t in [&admin, &auditor] {
        store.create_token(t.clone(), created(t)).await.unwrap();
    }
    assert_eq!(
        store.token_by_secret(auditor.secret_sha256).await.unwrap(),
        Some(ApiToken {
            id: auditor.id.clone(),
            role: Role::Auditor,
            label: "token t-audit".into(),
            created_at: at(7),
            revoked: false,
        })
    );
    assert_eq!(
        store
            .token_by_secret(admin.secret_sha256)
            .await
            .unwrap()
            .map(|t| (t.id, t.role)),
        Some((admin.id.clone(), Role::Admin))
    );
    assert_eq!(
        store
            .token_by_secret(Sha256Hash::of(b"guess"))
            .await
            .unwrap(),
        None
    );

    // Tokens have no check before the insert: the schema's constraints refuse duplicates.
    let same_id = new("t-admin", b"another secret", Role::Auditor);
    let r = store.create_token(same_id.clone(), created(&same_id)).await;
    assert!(
        matches!(
            r,
            Err(StoreError::Constraint(Constraint::DuplicateId(
                RecordKind::Token
            )))
        ),
        "{r:?}"
    );
    // No variant names the unique secret: it is another constraint.
    let same_secret = new("t-other", b"s3cret-admin", Role::Auditor);
    let r = store
        .create_token(same_secret.clone(), created(&same_secret))
        .await;
    assert!(
        matches!(r, Err(StoreError::Constraint(Constraint::Other(_)))),
        "{r:?}"
    );
    assert_eq!(
        store
            .token_by_secret(Sha256Hash::of(b"another secret"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .token_by_secret(admin.secret_sha256)
            .await
            .unwrap()
            .map(|t| t.role),
        Some(Role::Admin)
    );
    assert_eq!(log_size(&store).await, 2);
    check_log(&store).await;
}
