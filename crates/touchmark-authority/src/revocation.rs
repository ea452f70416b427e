//! Revocation (design.md §8): of a unit, an order (which closes it), a product's issuing CA, a
//! station, and of every unit one station provisioned in a span of time. The rules are
//! `touchmark_core::policy::revocation` (and `policy::station` for a station); the store runs
//! them on what it holds under its lock. Every change is one logged event; a revocation already
//! in force changes nothing and logs nothing.
//!
//! Whoever publishes revocation status (CRLs, OCSP) follows [`Authority::revocations`]: its
//! value grows after every revocation that changed something, once it is committed, and after
//! every new product or order (which have CRLs of their own). A revocation committed by another
//! replica on the same database reaches it through [`Authority::follow_revocations`], which
//! tails the sequenced log.

use touchmark_core::StationId;
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::{Station, StationStatus};
use touchmark_core::event::{Actor, Logged};
use touchmark_core::policy;
use touchmark_core::policy::revocation::{Reason, Revocation};
use touchmark_store::{Revoked, Rule, StoreError};

use crate::{Authority, AuthorityError, Result};

/// How often [`Authority::follow_revocations`] looks for new entries of the log.
pub const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// The events after which what relying parties fetch changes: revocations, the release of a
/// hold, and new products and orders (which have CRLs of their own).
const CHANGES_STATUS: [&str; 8] = [
    "unit.revoked",
    "unit.released",
    "order.revoked",
    "ca.revoked",
    "station.revoked",
    "station.units_revoked",
    "product.created",
    "order.created",
];

/// Entries read per batch.
const FOLLOW_BATCH: u32 = 1000;

/// What a station's revocation did.
#[derive(Debug, Clone)]
pub struct StationRevoked {
    /// The station afterwards.
    pub station: Station,
    /// Whether this call revoked it (`false`: it was revoked already).
    pub changed: bool,
}

impl Authority {
    /// Revokes (or releases the hold of) what `revocation` names, by
    /// `policy::revocation::decide`, and logs it.
    ///
    /// # Errors
    /// `not_found` (a unit that holds no certificate, an unknown order, product or station),
    /// `unprocessable` (a hold on anything but a unit, an empty span), `conflict` (a serial in several
    /// products, a release of a unit not on hold).
    pub async fn revoke(&self, actor: Actor, revocation: Revocation) -> Result<Revoked> {
        let at = self.clock.now();
        let rule_input = revocation.clone();
        let rule =
            Rule::new(move |facts| policy::revocation::decide(&rule_input, facts, actor, at));
        let revoked = self.store.revoke(&revocation.target, rule).await?;
        if revoked.logged.is_some() {
            self.revocations.send_modify(|n| *n += 1);
        }
        Ok(revoked)
    }

    /// Revokes a station with an RFC 5280 reason (`touchmark revoke station`): the same
    /// revocation as [`Authority::revoke_station`], but revoking a revoked station again is not an
    /// error; it changes nothing.
    ///
    /// # Errors
    /// `not_found` for an unknown station.
    pub async fn revoke_station_for(
        &self,
        actor: Actor,
        id: &StationId,
        reason: Reason,
    ) -> Result<StationRevoked> {
        let at = self.clock.now();
        let rule =
            Rule::new(move |station| policy::station::revoke_for(station, actor, Some(reason), at));
        match self.store.update_station(id, rule).await {
            Ok(station) => {
                self.revocations.send_modify(|n| *n += 1);
                Ok(StationRevoked {
                    station,
                    changed: true,
                })
            }
            Err(StoreError::Refused(refusal)) if refusal.code == ErrorCode::Conflict => {
                let station = self
                    .store
                    .station(id)
                    .await?
                    .filter(|s| s.status == StationStatus::Revoked)
                    .ok_or(AuthorityError::Denied(refusal))?;
                Ok(StationRevoked {
                    station,
                    changed: false,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Grows after every committed revocation that changed something, and every new product or
    /// order: what CRL and OCSP publishers wait on.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    /// Tails the sequenced log from its end now, every `poll`, and makes
    /// [`Authority::revocations`] grow when it sees an entry that changes revocation status,
    /// whichever replica committed it: so the CRLs and OCSP answers of this process follow a
    /// revocation made through another one on the same database within the sequencer's interval
    /// plus `poll` (plus the time to sign the CRLs). This process's own revocations are seen
    /// twice (once at commit, once here); the second time only signs the CRLs again. Runs until
    /// dropped; a store failure is logged and retried at the next poll.
    pub async fn follow_revocations(&self, poll: std::time::Duration) {
        let mut tick = tokio::time::interval(poll.max(std::time::Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cursor = None;
        loop {
            tick.tick().await;
            let start = match cursor {
                Some(start) => start,
                None => match self.store.event_count().await {
                    Ok(size) => *cursor.insert(size),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the log's size");
                        continue;
                    }
                },
            };
            match self.status_changed_since(start).await {
                Ok((next, changed)) => {
                    cursor = Some(next);
                    if changed {
                        self.revocations.send_modify(|n| *n += 1);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot follow the log for revocations"),
            }
        }
    }

    /// Reads the sequenced entries from `start`: where to read next, and whether any of them
    /// changes revocation status.
    async fn status_changed_since(&self, mut start: u64) -> Result<(u64, bool)> {
        let mut changed = false;
        loop {
            let entries = self.store.events(start, FOLLOW_BATCH).await?;
            let Some(last) = entries.last().map(|e| e.index) else {
                return Ok((start, changed));
            };
            changed |= entries
                .iter()
                .any(|e| CHANGES_STATUS.contains(&e.kind.as_str()));
            start = last + 1;
            if entries.len() < FOLLOW_BATCH as usize {
                return Ok((start, changed));
            }
        }
    }
}

/// Where a revocation's event was logged, for the answer.
pub fn logged_parts(logged: Option<Logged>) -> (Option<u64>, Option<String>) {
    match logged {
        Some(l) => (l.index, Some(hex::encode(l.leaf_hash.as_bytes()))),
        None => (None, None),
    }
}
