//! Alerts (design.md §9): one open alert per key, its event and its outbox messages written
//! together; state changes by rule, each logged; the outbox's delivery bookkeeping; the
//! projectors' cursors.

use std::collections::BTreeMap;
use std::sync::Arc;

use touchmark_core::alert::{Alert, AlertKind, AlertState};
use touchmark_core::code::ErrorCode;
use touchmark_core::event::{Actor, Event, EventBody};
use touchmark_core::policy::alerts;

use crate::{DeliveryResult, Rule, Store, StoreError, Webhook};

use super::kit::{at, check_log, event_at, index_of, log_size, order_id};

fn alert(id: &str, key: &str) -> Alert {
    Alert {
        id: id.into(),
        kind: AlertKind::CloneSuspect,
        key: key.into(),
        order: Some(order_id("po-1")),
        station: None,
        state: AlertState::Open,
        evidence: BTreeMap::from([("event_index".into(), "7".into())]),
        raised_at: at(20),
        updated_at: at(20),
    }
}

fn raised(a: &Alert) -> Event {
    Event::new(
        a.raised_at,
        EventBody::AlertRaised {
            alert: a.id.clone(),
            kind: a.kind.as_str().into(),
            order: a.order.clone(),
            station: a.station.clone(),
            evidence: a.evidence.clone(),
        },
    )
}

fn webhook(id: &str, kinds: &[&str]) -> (Webhook, Event) {
    let w = Webhook {
        id: id.into(),
        url: format!("https://hooks.example/{id}"),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        created_at: at(10),
    };
    let event = Event::new(
        w.created_at,
        EventBody::WebhookAdded {
            webhook: w.id.clone(),
            url: w.url.clone(),
            kinds: w.kinds.clone(),
            actor: Actor::System,
        },
    );
    (w, event)
}

/// An alert is stored with its event and one outbox message per matching webhook; a second
/// alert of the same key is not, until the first is resolved; acknowledging and resolving go
/// by rule, each logged once.
pub async fn alerts_are_raised_once_per_key_and_move_by_rule(store: Arc<dyn Store>) {
    let (all, e) = webhook("wh-all", &[]);
    store.add_webhook(all.clone(), e).await.unwrap();
    let (drift_only, e) = webhook("wh-drift", &["measurement_drift"]);
    store.add_webhook(drift_only, e).await.unwrap();
    let (dup, e) = webhook("wh-all", &[]);
    assert!(matches!(
        store.add_webhook(dup, e).await,
        Err(StoreError::Exists(_))
    ));
    let hooks = store.webhooks().await.unwrap();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0], all);

    let size = log_size(&store).await;
    let first = alert("al-1", "clone_suspect/po-1");
    let logged = store
        .raise_alert(first.clone(), raised(&first), "{\"n\":1}".into())
        .await
        .unwrap()
        .expect("raised");
    let index = index_of(&store, &logged).await;
    assert_eq!(index, size);
    let (_, event) = event_at(&store, index).await;
    assert_eq!(event, raised(&first));
    assert_eq!(store.alert("al-1").await.unwrap(), Some(first.clone()));

    // The same key while it is open: nothing written, no event.
    let again = alert("al-2", "clone_suspect/po-1");
    assert_eq!(
        store
            .raise_alert(again.clone(), raised(&again), "{}".into())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.alert("al-2").await.unwrap(), None);
    assert_eq!(log_size(&store).await, size + 1);

    // One message, for the webhook that takes every kind, due at the alert's time.
    let messages = store.deliveries().await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].id, "msg_al-1_wh-all");
    assert_eq!(messages[0].payload, "{\"n\":1}");
    assert_eq!((messages[0].attempts, messages[0].delivered_at), (0, None));
    assert!(store.due_deliveries(at(19), 10).await.unwrap().is_empty());
    assert_eq!(store.due_deliveries(at(20), 10).await.unwrap().len(), 1);

    // Acknowledged, then resolved; each once.
    let ack = store
        .update_alert(
            "al-1",
            Rule::new(|a| alerts::acknowledge(a, Actor::System, at(30))),
        )
        .await
        .unwrap();
    assert_eq!(
        (ack.state, ack.updated_at),
        (AlertState::Acknowledged, at(30))
    );
    let refused = store
        .update_alert(
            "al-1",
            Rule::new(|a| alerts::acknowledge(a, Actor::System, at(31))),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::Refused(r) if r.code == ErrorCode::Conflict),
        "{refused:?}"
    );
    assert!(matches!(
        store
            .update_alert(
                "al-404",
                Rule::new(|a| alerts::resolve(a, Actor::System, at(31)))
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Acknowledged still holds its key.
    assert_eq!(
        store
            .raise_alert(again.clone(), raised(&again), "{}".into())
            .await
            .unwrap(),
        None
    );
    let resolved = store
        .update_alert(
            "al-1",
            Rule::new(|a| alerts::resolve(a, Actor::System, at(32))),
        )
        .await
        .unwrap();
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(store.alerts(true).await.unwrap(), vec![]);
    // Resolved, the key is free again.
    let mut later = alert("al-3", "clone_suspect/po-1");
    later.raised_at = at(40);
    later.updated_at = at(40);
    assert!(
        store
            .raise_alert(later.clone(), raised(&later), "{}".into())
            .await
            .unwrap()
            .is_some()
    );
    let all_alerts = store.alerts(false).await.unwrap();
    let ids: Vec<&str> = all_alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["al-3", "al-1"]);
    assert_eq!(store.alerts(true).await.unwrap().len(), 1);
    let kinds: Vec<String> = check_log(&store)
        .await
        .iter()
        .map(|e| e.body.kind().to_owned())
        .filter(|k| k.starts_with("alert.") || k.starts_with("webhook."))
        .collect();
    assert_eq!(
        kinds,
        [
            "webhook.added",
            "webhook.added",
            "alert.raised",
            "alert.acknowledged",
            "alert.resolved",
            "alert.raised"
        ]
    );
}

/// A failed attempt is counted and pushed back; a delivered message is not due again, and a
/// late second report of it changes nothing. Cursors start at 0 and keep what is saved.
pub async fn deliveries_and_cursors_are_kept(store: Arc<dyn Store>) {
    let (hook, e) = webhook("wh-1", &["clone_suspect"]);
    store.add_webhook(hook, e).await.unwrap();
    let a = alert("al-9", "clone_suspect/po-9");
    store
        .raise_alert(a.clone(), raised(&a), "{}".into())
        .await
        .unwrap()
        .unwrap();
    store
        .record_delivery(
            "msg_al-9_wh-1",
            DeliveryResult::Failed {
                error: "HTTP 503".into(),
                retry_at: at(60),
            },
        )
        .await
        .unwrap();
    let m = &store.deliveries().await.unwrap()[0];
    assert_eq!(
        (m.attempts, m.next_attempt_at, m.last_error.as_deref()),
        (1, at(60), Some("HTTP 503"))
    );
    assert!(store.due_deliveries(at(59), 10).await.unwrap().is_empty());
    assert_eq!(store.due_deliveries(at(60), 10).await.unwrap().len(), 1);
    store
        .record_delivery("msg_al-9_wh-1", DeliveryResult::Delivered(at(61)))
        .await
        .unwrap();
    store
        .record_delivery("msg_al-9_wh-1", DeliveryResult::Delivered(at(99)))
        .await
        .unwrap();
    let m = &store.deliveries().await.unwrap()[0];
    assert_eq!(
        (m.attempts, m.delivered_at, m.last_error.clone()),
        (2, Some(at(61)), None)
    );
    assert!(store.due_deliveries(at(999), 10).await.unwrap().is_empty());

    assert_eq!(store.cursor("alerts").await.unwrap(), 0);
    store.save_cursor("alerts", 41).await.unwrap();
    store.save_cursor("alerts", 42).await.unwrap();
    store.save_cursor("other", 7).await.unwrap();
    assert_eq!(store.cursor("alerts").await.unwrap(), 42);
    assert_eq!(store.cursor("other").await.unwrap(), 7);
}
