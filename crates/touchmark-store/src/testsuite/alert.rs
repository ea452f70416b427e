//! `record_alert`: an alert is one more event in the log, and changes no other record.

use std::sync::Arc;

use touchmark_core::clock::format_timestamp;
use touchmark_core::code::ErrorCode;
use touchmark_core::event::{Event, EventBody};

use super::kit::{Kit, at, check_log, counts, event_at, index_of, log_size, unit_states};
use crate::Store;

/// A `station.refusal_flood` is logged at the next index with its exact bytes; the order's
/// counts, its units and the station are what they were.
pub async fn an_alert_is_logged_and_changes_nothing_else(store: Arc<dyn Store>) {
    let kit = Kit::new(&store, "al", 5, 1).await;
    let station_before = store.station(&kit.stations[0]).await.unwrap();
    let units_before = unit_states(&store, &kit.order).await;
    let size = log_size(&store).await;
    let alert = Event::new(
        at(120),
        EventBody::RefusalFlood {
            station: kit.stations[0].clone(),
            factory: kit.factory.clone(),
            reason: ErrorCode::StationRevoked,
            count: 399,
            window_start: format_timestamp(at(0)),
            window_end: format_timestamp(at(60)),
        },
    );
    let receipt = store.record_alert(alert.clone()).await.unwrap();
    let index = index_of(&store, &receipt).await;
    assert_eq!(index, size, "the alert takes the next index");
    let (stored, event) = event_at(&store, index).await;
    assert_eq!(stored.leaf_hash, receipt.leaf_hash);
    assert_eq!(stored.kind, "station.refusal_flood");
    assert_eq!(event, alert);
    assert_eq!(check_log(&store).await.len() as u64, size + 1);
    assert_eq!(kit.counts().await, counts(0, 0, &[]));
    assert_eq!(unit_states(&store, &kit.order).await, units_before);
    assert_eq!(
        store.station(&kit.stations[0]).await.unwrap(),
        station_before
    );
}
