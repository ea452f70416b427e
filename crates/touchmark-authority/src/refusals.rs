//! Recording refusals: each one with its event, except those that say a station has no standing
//! for its request (check 1: a revoked station, or one of another factory; or an order that does
//! not exist), which are counted per station and window beyond the first few: the windows of
//! `touchmark_core::policy::refusals`, held in memory, and the `station.refusal_flood` alerts
//! they end with.
//!
//! Each server process (each replica) keeps its own windows, so the log grows by at most
//! `logged` + 1 entries per window, station and code, per replica. A window still open when the process
//! is killed loses its count; `touchmark serve` closes every open window when it stops.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;
use touchmark_core::code::{ErrorCode, Refusal};
use touchmark_core::entity::Station;
use touchmark_core::event::Event;
use touchmark_core::policy::issue::{self, Attempt};
use touchmark_core::policy::refusals::{self, Admission, RefusalLimit, RefusalWindow};
use touchmark_core::{OrderId, StationId};
use touchmark_store::Rejection;

use crate::{Authority, AuthorityError};

/// The open windows, by station and code.
#[derive(Debug)]
pub(crate) struct RefusalWindows {
    limit: RefusalLimit,
    open: Mutex<HashMap<(StationId, ErrorCode), RefusalWindow>>,
}

impl RefusalWindows {
    pub(crate) fn new(limit: RefusalLimit) -> Self {
        Self {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Applies the policy to one refusal of `station`, under the lock, so that concurrent
    /// refusals of one station count once each and one of them logs.
    fn admit(
        &self,
        station: &Station,
        refusal: &Refusal,
        now: OffsetDateTime,
    ) -> (Admission, Option<Event>) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let key = (station.id.clone(), refusal.code);
        let mut window = open.remove(&key);
        let decided = refusals::admit(
            &mut window,
            &station.id,
            &station.factory,
            refusal,
            now,
            self.limit,
        );
        if let Some(window) = window {
            open.insert(key, window);
        }
        decided
    }

    /// Takes the windows that have ended at `now` (every window when `all`), with the alert
    /// each ends with, if it counted anything.
    fn take_ended(&self, now: OffsetDateTime, all: bool) -> Vec<Event> {
        // A window closes when it ends, or now when the server stops before that.
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut alerts = Vec::new();
        open.retain(|_, window| {
            let ended = window.has_ended(now, self.limit.window);
            if ended || all {
                let closed = if ended {
                    window.ends_at(self.limit.window)
                } else {
                    now
                };
                alerts.extend(window.alert(closed, now));
            }
            !(ended || all)
        });
        alerts
    }
}

impl Authority {
    /// Sets how the refusals `policy::refusals` limits are logged (`RefusalLimit::default()`
    /// unless set).
    #[must_use]
    pub fn with_refusal_limit(mut self, limit: RefusalLimit) -> Self {
        self.refusals = RefusalWindows::new(limit);
        self
    }

    /// Refuses a station that authenticated but may not act (revoked, or not enrolled) on a
    /// provisioning request for `order`, before its request is read: check 1. The refusal is
    /// logged as any refusal, the order named whether it exists or not, unless the station's
    /// window for it is open (`policy::refusals`); then nothing is read or written.
    ///
    /// # Errors
    /// Always: [`AuthorityError::Refused`] (logged) or [`AuthorityError::RateLimited`].
    pub async fn refuse_station(&self, station: &Station, order: &OrderId) -> AuthorityError {
        let refusal = match issue::station_may_act(&station.id, Some(station.status)) {
            Err(refusal) => refusal,
            Ok(()) => {
                return AuthorityError::internal(format!(
                    "station {} was refused as inactive, but the store holds it active",
                    station.id
                ));
            }
        };
        if let Err(limited) = self.admit_refusal(station, &refusal).await {
            return limited;
        }
        let product = match self.store.order(order).await {
            Ok(known) => known.map(|o| o.product),
            Err(e) => return e.into(),
        };
        let attempt = Attempt {
            at: self.clock.now(),
            order: order.clone(),
            factory: station.factory.clone(),
            station: station.id.clone(),
        };
        let rejection = Rejection {
            event: attempt.refused(refusal.code, None, None, None),
            product,
            order: order.clone(),
            station: station.id.clone(),
            serial: None,
            test: None,
            failed_unit: false,
        };
        self.reject(refusal, rejection).await
    }

    /// Logs a refusal whose code `policy::refusals` limits, or counts it when the station's
    /// window for its code is open.
    pub(crate) async fn refuse_limited(
        &self,
        station: &Station,
        refusal: Refusal,
        rejection: Rejection,
    ) -> AuthorityError {
        if !refusals::is_limited(refusal.code) {
            return self.reject(refusal, rejection).await;
        }
        match self.admit_refusal(station, &refusal).await {
            Ok(()) => self.reject(refusal, rejection).await,
            Err(limited) => limited,
        }
    }

    /// Decides whether `refusal` is logged (`Ok`) or limited (`Err`, the `rate_limited`
    /// answer), and records the alert of the station's window for its code if that one ended.
    async fn admit_refusal(
        &self,
        station: &Station,
        refusal: &Refusal,
    ) -> Result<(), AuthorityError> {
        let (admission, closed) = self.refusals.admit(station, refusal, self.clock.now());
        if let Some(alert) = closed {
            self.record_alert(alert).await;
        }
        match admission {
            Admission::Log => Ok(()),
            Admission::Limit {
                refusal,
                retry_after,
            } => Err(AuthorityError::RateLimited {
                refusal,
                retry_after: std::time::Duration::try_from(retry_after).unwrap_or_default(),
            }),
        }
    }

    /// Records a refusal decided before the transaction, and answers it.
    pub(crate) async fn reject(&self, refusal: Refusal, rejection: Rejection) -> AuthorityError {
        match self.store.record_rejection(rejection).await {
            Ok(logged) => AuthorityError::Refused { refusal, logged },
            Err(e) => {
                AuthorityError::internal(format!("could not record refusal {}: {e}", refusal.code))
            }
        }
    }

    /// Records the alert of every refusal window that has ended, or of every open window when
    /// `all` (the server stopping); returns how many alerts it recorded. An alert that cannot
    /// be recorded is logged at error level with its contents instead.
    pub async fn close_refusal_windows(&self, all: bool) -> u64 {
        let alerts = self.refusals.take_ended(self.clock.now(), all);
        let mut recorded = 0;
        for alert in alerts {
            if self.record_alert(alert).await {
                recorded += 1;
            }
        }
        recorded
    }

    /// Records `alert`; a failure is logged with the alert's contents, so the count is not
    /// lost from sight. Returns whether it was recorded.
    async fn record_alert(&self, alert: Event) -> bool {
        match self.store.record_alert(alert.clone()).await {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, alert = ?alert.body, "a refusal flood alert could not be recorded");
                false
            }
        }
    }
}
