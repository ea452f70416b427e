//! A unit's history: its stored test attempts and certificates, oldest first.

use touchmark_core::Serial;
use touchmark_core::oversight::{HistoryEntry, UnitHistory};
use touchmark_store::{Store, StoreError};

/// Everything stored about `serial`, in any product, oldest first; `None` when nothing is.
///
/// At equal times an attempt comes before the certificate it led to. Firmware deliveries,
/// revocations and field sightings join the entries, each with a kind of its own, as the store
/// records them.
///
/// # Errors
/// The store's.
pub async fn unit_history(
    store: &dyn Store,
    serial: &Serial,
) -> Result<Option<UnitHistory>, StoreError> {
    let units = store.unit(serial).await?;
    let attempts = store.unit_attempts(serial).await?;
    let certificates = store.unit_certificates(serial).await?;
    if units.is_empty() && attempts.is_empty() {
        return Ok(None);
    }
    let mut retests = 0u64;
    let mut seen = std::collections::BTreeSet::new();
    for a in &attempts {
        if !seen.insert(a.product.as_str()) {
            retests += 1;
        }
    }
    let test_attempts = attempts.len() as u64;
    let mut entries: Vec<HistoryEntry> = attempts
        .into_iter()
        .map(|a| HistoryEntry {
            at: a.at.clone(),
            kind: String::from("test.attempt"),
            product: a.product.clone(),
            order: a.order.clone(),
            station: Some(a.station.clone()),
            cert_sha256: None,
            event_index: a.event_index,
            attempt: Some(a),
        })
        .collect();
    entries.extend(certificates);
    // Timestamps are fixed-width RFC 3339 in UTC: text order is time order. The sort is stable,
    // so an attempt stays before the certificate of the same instant.
    entries.sort_by(|a, b| a.at.cmp(&b.at));
    Ok(Some(UnitHistory {
        serial: serial.to_string(),
        status: units.iter().map(|u| u.status.as_str().to_owned()).collect(),
        test_attempts,
        retests,
        entries,
    }))
}
