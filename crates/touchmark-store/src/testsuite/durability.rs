//! Durability across a restart: everything committed is there, and the log goes on at the
//! next index (I5).

use std::sync::Arc;

use crate::{IssueOutcome, IssuedUnit, NewToken, OrderCounts, Store, StoredEvent, UnitSummary};
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::{ApiToken, Factory, Product, Role, Station};
use touchmark_core::event::{Actor, Event, EventBody, Sha256Hash};
use touchmark_core::order::Order;
use touchmark_core::{OrderId, TokenId};

use super::Reopen;
use super::kit::{
    Kit, all_events, already_issued, at, check_log, factory, factory_created, index_of, issued,
    log_size, revoke, set_quota, settled, settled_opt,
};

/// Everything a test can read back.
#[derive(Debug, PartialEq)]
struct Snapshot {
    products: Vec<Product>,
    factories: Vec<Factory>,
    stations: Vec<Station>,
    orders: Vec<Order>,
    counts: Vec<OrderCounts>,
    units: Vec<Vec<UnitSummary>>,
    issued: Vec<Option<IssuedUnit>>,
    token: Option<ApiToken>,
    events: Vec<StoredEvent>,
    event_count: u64,
}

impl Snapshot {
    /// Sequences first: a snapshot sees every committed entry in the log.
    async fn take(store: &Arc<dyn Store>, kit: &Kit, serials: &[&str]) -> Self {
        log_size(store).await;
        let orders = store.orders().await.unwrap();
        let ids: Vec<OrderId> = orders.iter().map(|o| o.id.clone()).collect();
        let mut counts = Vec::new();
        let mut units = Vec::new();
        for id in &ids {
            counts.push(store.order_counts(id).await.unwrap());
            units.push(store.units(id).await.unwrap());
        }
        let mut issued = Vec::new();
        for sn in serials {
            let unit = store
                .issued_unit(&kit.product, &super::kit::serial(sn))
                .await
                .unwrap();
            // Taken after sequencing: the stored issuance carries its index by then.
            assert!(unit.as_ref().is_none_or(|u| u.logged.index.is_some()));
            issued.push(unit);
        }
        Self {
            products: store.products().await.unwrap(),
            factories: store.factories().await.unwrap(),
            stations: store.stations(None).await.unwrap(),
            orders,
            counts,
            units,
            issued,
            token: store
                .token_by_secret(Sha256Hash::of(b"durable secret"))
                .await
                .unwrap(),
            events: all_events(store).await,
            event_count: store.event_count().await.unwrap(),
        }
    }
}

/// Drops the last handles on the store (the kit's too) and opens the same storage again.
async fn restart(store: Arc<dyn Store>, kit: Kit, reopen: &Reopen) -> (Arc<dyn Store>, Kit) {
    let Kit {
        store: kit_store,
        product,
        factory,
        stations,
        order,
    } = kit;
    drop(kit_store);
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "a handle on the store is still alive"
    );
    drop(store);
    let store = reopen().await;
    let kit = Kit {
        store: Arc::clone(&store),
        product,
        factory,
        stations,
        order,
    };
    (store, kit)
}

/// Write, restart, read everything back; the log continues at the next index.
pub async fn everything_survives_reopen(store: Arc<dyn Store>, reopen: Reopen) {
    let kit = Kit::new(&store, "du", 5, 2).await;
    let token = TokenId::parse("du-token").unwrap();
    store
        .create_token(
            NewToken {
                id: token.clone(),
                secret_sha256: Sha256Hash::of(b"durable secret"),
                role: Role::Auditor,
                label: "survives".into(),
                at: at(5),
            },
            Event::new(
                at(5),
                EventBody::TokenCreated {
                    token,
                    role: Role::Auditor,
                    actor: Actor::System,
                },
            ),
        )
        .await
        .unwrap();
    let serials = ["SN-1", "SN-2", "SN-3", "SN-4"];
    let mut units = Vec::new();
    for (i, sn) in serials[..3].iter().enumerate() {
        units.push(issued(
            store
                .issue(kit.request(i % 2, sn, &format!("k{i}")))
                .await
                .unwrap(),
        ));
    }
    store
        .record_rejection(kit.failed_test(0, "SN-4"))
        .await
        .unwrap();
    assert!(matches!(
        store.issue(kit.request(1, "SN-5", "k0")).await.unwrap(),
        IssueOutcome::Refused { refusal, .. } if refusal.code == ErrorCode::KeyReused
    ));
    store
        .update_order(&kit.order, set_quota(4, at(60)))
        .await
        .unwrap();
    store
        .update_station(&kit.stations[1], revoke(at(61)))
        .await
        .unwrap();
    let before = Snapshot::take(&store, &kit, &serials).await;
    assert!(before.token.is_some());
    let next = before.event_count;

    // Restart: drop every handle, open the same storage again.
    let (store, kit) = restart(store, kit, &reopen).await;
    let after = Snapshot::take(&store, &kit, &serials).await;
    assert_eq!(after, before);
    let units = {
        let mut settled_units = Vec::new();
        for unit in units {
            settled_units.push(settled(&store, unit).await);
        }
        settled_units
    };

    // The log goes on at the next index: no reuse, no gap.
    let f = factory("du-f2");
    let receipt = store
        .create_factory(f.clone(), factory_created(&f))
        .await
        .unwrap();
    assert_eq!(index_of(&store, &receipt).await, next);
    // A retry after the restart is still a retry; the quota goes on from the stored count.
    let again = already_issued(store.issue(kit.request(0, "SN-1", "k0")).await.unwrap());
    assert_eq!(settled(&store, again).await, units[0]);
    let unit = issued(store.issue(kit.request(0, "SN-4", "k3")).await.unwrap());
    assert_eq!(index_of(&store, &unit.logged).await, next + 1);
    assert!(matches!(
        store.issue(kit.request(0, "SN-6", "k6")).await.unwrap(),
        IssueOutcome::Refused { refusal, .. } if refusal.code == ErrorCode::QuotaExhausted
    ));
    assert_eq!(
        kit.counts().await,
        super::kit::counts(
            4,
            1,
            &[(ErrorCode::KeyReused, 1), (ErrorCode::QuotaExhausted, 1)]
        )
    );
    let log = check_log(&store).await;
    assert_eq!(log.len() as u64, next + 3);

    // And once more, straight after writing.
    let count = log.len() as u64;
    let unit = settled(&store, unit).await;
    let (store, kit) = restart(store, kit, &reopen).await;
    assert_eq!(store.event_count().await.unwrap(), count);
    let f = factory("du-f3");
    let receipt = store
        .create_factory(f.clone(), factory_created(&f))
        .await
        .unwrap();
    assert_eq!(index_of(&store, &receipt).await, count);
    let read = store.issued_unit(&kit.product, &unit.serial).await.unwrap();
    assert_eq!(settled_opt(&store, read).await, Some(unit));

    // Entries committed but not yet sequenced when the process stops are not lost: the
    // next sequencer, after the restart, gives them the next indices.
    let count = log_size(&store).await;
    let mut receipts = Vec::new();
    for name in ["du-f4", "du-f5", "du-f6"] {
        let f = factory(name);
        receipts.push(
            store
                .create_factory(f.clone(), factory_created(&f))
                .await
                .unwrap(),
        );
    }
    let (store, _kit) = restart(store, kit, &reopen).await;
    assert_eq!(log_size(&store).await, count + 3);
    let indices = super::kit::indices_of(&store, &receipts).await;
    assert_eq!(
        indices,
        [count, count + 1, count + 2],
        "sequenced in commit order"
    );
    check_log(&store).await;
}
