//! How often a station refused for want of standing is logged (issue 11, security findings 3
//! and 4).
//!
//! A refusal at check 1 (`station_revoked`, `station_not_authorized`) says that the station has
//! no standing for the order, whatever its request holds: a revoked station, or one of another
//! factory; so does `order_not_found`, a station asking for an order that does not exist
//! (probing for orders). Logging each one would let such a station grow the log without limit
//! (400 entries in 0.7 s). So, per station and code, a **window** opens with the first refusal; its first
//! few refusals ([`RefusalLimit::logged`]) are logged as `unit.refused`, as any refusal is; the
//! ones that follow inside the window are answered `rate_limited` and only counted; and when
//! the window ends, the count becomes one `station.refusal_flood` alert. A flood costs at most
//! `logged` + 1 entries per window, and the log still says how many attempts there were, by
//! whom, with which code, and when.
//!
//! The other refusals of a station that may act for an existing order (checks 2 to 9) are each
//! a record of the production, with the unit's serial, key and test; they are logged one by one.

use time::{Duration, OffsetDateTime};

use crate::clock::format_timestamp;
use crate::code::{ErrorCode, Refusal};
use crate::event::{Event, EventBody};
use crate::id::{FactoryId, StationId};

/// How the refusals [`is_limited`] names are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalLimit {
    /// How long a window lasts, from its first refusal.
    pub window: Duration,
    /// Refusals logged one by one in a window, its first included (at least 1).
    pub logged: u64,
}

impl Default for RefusalLimit {
    /// A minute, long enough that a flood costs a handful of entries a minute and short enough
    /// that its alert reaches the log while someone still cares; three refusals logged one by
    /// one, so a fixture retried by hand after its revocation still shows each attempt.
    fn default() -> Self {
        Self {
            window: Duration::seconds(60),
            logged: 3,
        }
    }
}

/// Whether refusals with `code` are counted per window beyond the first few instead of logged
/// one by one: the codes that say the station has no standing for its request, whatever it
/// holds (check 1's, and an order that does not exist).
pub fn is_limited(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::StationRevoked | ErrorCode::StationNotAuthorized | ErrorCode::OrderNotFound
    )
}

/// The refusals of one station with one code, from the first one logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalWindow {
    /// The station refused.
    pub station: StationId,
    /// Its factory.
    pub factory: FactoryId,
    /// The refusal code.
    pub code: ErrorCode,
    /// When the window opened: the time of its first refusal.
    pub opened: OffsetDateTime,
    /// Refusals logged one by one in it.
    pub logged: u64,
    /// Refusals answered `rate_limited` in it.
    pub suppressed: u64,
}

/// What to do with one refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Log it as its own `unit.refused` event, as one of its window's first.
    Log,
    /// Answer with this `rate_limited` refusal and log nothing now; it is counted into the
    /// window's alert.
    Limit {
        /// The `rate_limited` refusal, naming the code it stands for.
        refusal: Refusal,
        /// How long until the window ends.
        retry_after: Duration,
    },
}

impl RefusalWindow {
    /// When the window ends, for a window of `length`.
    pub fn ends_at(&self, length: Duration) -> OffsetDateTime {
        self.opened + length
    }

    /// Whether the window has ended at `now`.
    pub fn has_ended(&self, now: OffsetDateTime, length: Duration) -> bool {
        now >= self.ends_at(length)
    }

    /// The `station.refusal_flood` alert, logged at `at`, that records the window closed at
    /// `closed`, if it counted any refusal; `None` if its logged refusal was the only one.
    pub fn alert(&self, closed: OffsetDateTime, at: OffsetDateTime) -> Option<Event> {
        (self.suppressed > 0).then(|| {
            Event::new(
                at,
                EventBody::RefusalFlood {
                    station: self.station.clone(),
                    factory: self.factory.clone(),
                    reason: self.code,
                    count: self.suppressed,
                    window_start: format_timestamp(self.opened),
                    window_end: format_timestamp(closed),
                },
            )
        })
    }
}

/// Decides whether the refusal `refusal` of `station` (of `factory`) at `now` is logged or
/// limited, given the station's open window for that code, if any (`window`, updated in
/// place). Returns the decision and, when `window` had ended, the alert that closes it: the
/// caller records it whatever the decision.
pub fn admit(
    window: &mut Option<RefusalWindow>,
    station: &StationId,
    factory: &FactoryId,
    refusal: &Refusal,
    now: OffsetDateTime,
    limit: RefusalLimit,
) -> (Admission, Option<Event>) {
    let mut closed = None;
    if let Some(open) = window.as_ref().filter(|w| w.has_ended(now, limit.window)) {
        closed = open.alert(open.ends_at(limit.window), now);
        *window = None;
    }
    let open = window.get_or_insert_with(|| RefusalWindow {
        station: station.clone(),
        factory: factory.clone(),
        code: refusal.code,
        opened: now,
        logged: 0,
        suppressed: 0,
    });
    if open.logged < limit.logged.max(1) {
        open.logged += 1;
        return (Admission::Log, closed);
    }
    open.suppressed += 1;
    let ends = open.ends_at(limit.window);
    let admission = Admission::Limit {
        refusal: Refusal::new(
            ErrorCode::RateLimited,
            format!(
                "{} (refused {} times since {}; until {} further refusals are counted, not logged one by one)",
                refusal.message,
                open.logged + open.suppressed,
                format_timestamp(open.opened),
                format_timestamp(ends)
            ),
        ),
        retry_after: ends - now,
    };
    (admission, closed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
    const ONE: RefusalLimit = RefusalLimit {
        window: Duration::seconds(60),
        logged: 1,
    };

    fn revoked() -> Refusal {
        Refusal::new(ErrorCode::StationRevoked, "station line-1 is revoked")
    }

    fn step(
        window: &mut Option<RefusalWindow>,
        at: Duration,
        limit: RefusalLimit,
    ) -> (Admission, Option<Event>) {
        admit(
            window,
            &StationId::parse("line-1").unwrap(),
            &FactoryId::parse("fab").unwrap(),
            &revoked(),
            T0 + at,
            limit,
        )
    }

    /// Each case sends refusals at the given offsets (seconds from T0) under a limit, and names,
    /// for each, whether it is logged, and the alert counts that come out, in order.
    #[test]
    fn a_few_logged_refusals_per_window_and_one_alert_for_the_rest() {
        type Case = (
            &'static str,
            RefusalLimit,
            &'static [i64],
            &'static [bool],
            &'static [u64],
        );
        let three = RefusalLimit::default();
        let cases: [Case; 7] = [
            ("a single refusal", ONE, &[0], &[true], &[]),
            ("two in a window", ONE, &[0, 1], &[true, false], &[]),
            (
                "a flood, then the next window",
                ONE,
                &[0, 1, 2, 59, 60],
                &[true, false, false, false, true],
                &[3],
            ),
            (
                "a lone refusal per window raises no alert",
                ONE,
                &[0, 60, 120],
                &[true, true, true],
                &[],
            ),
            (
                "the window runs from its first refusal",
                ONE,
                &[0, 30, 61, 90, 121],
                &[true, false, true, false, true],
                &[1, 1],
            ),
            (
                "three logged, then counted",
                three,
                &[0, 1, 2, 3, 4, 60],
                &[true, true, true, false, false, true],
                &[2],
            ),
            (
                "three or fewer raise no alert",
                three,
                &[0, 1, 2, 60],
                &[true, true, true, true],
                &[],
            ),
        ];
        for (name, limit, offsets, logged, alerts) in cases {
            let mut window = None;
            let mut seen_alerts = Vec::new();
            for (offset, expect_logged) in offsets.iter().zip(logged) {
                let (admission, alert) = step(&mut window, Duration::seconds(*offset), limit);
                assert_eq!(
                    matches!(admission, Admission::Log),
                    *expect_logged,
                    "{name}: refusal at +{offset}s"
                );
                if let Some(alert) = alert {
                    let EventBody::RefusalFlood { count, .. } = alert.body else {
                        panic!("{name}: {alert:?}");
                    };
                    seen_alerts.push(count);
                }
            }
            assert_eq!(seen_alerts, alerts, "{name}");
        }
    }

    #[test]
    fn a_limited_refusal_says_why_and_until_when() {
        let mut window = None;
        step(&mut window, Duration::ZERO, ONE);
        let (admission, _) = step(&mut window, Duration::seconds(15), ONE);
        let Admission::Limit {
            refusal,
            retry_after,
        } = admission
        else {
            panic!("{admission:?}");
        };
        assert_eq!(refusal.code, ErrorCode::RateLimited);
        assert_eq!(
            refusal.message,
            "station line-1 is revoked (refused 2 times since 2026-06-01T12:00:00.000Z; until \
             2026-06-01T12:01:00.000Z further refusals are counted, not logged one by one)"
        );
        assert_eq!(retry_after, Duration::seconds(45));
    }

    #[test]
    fn the_alert_names_the_station_the_code_the_count_and_the_window() {
        let mut window = None;
        for at in 0..5 {
            step(&mut window, Duration::seconds(at), ONE);
        }
        let open = window.clone().unwrap();
        let closed = T0 + ONE.window;
        let logged = closed + Duration::seconds(1);
        assert_eq!(
            open.alert(closed, logged).unwrap(),
            Event::new(
                logged,
                EventBody::RefusalFlood {
                    station: StationId::parse("line-1").unwrap(),
                    factory: FactoryId::parse("fab").unwrap(),
                    reason: ErrorCode::StationRevoked,
                    count: 4,
                    window_start: "2026-06-01T12:00:00.000Z".into(),
                    window_end: "2026-06-01T12:01:00.000Z".into(),
                }
            )
        );
        assert!(!open.has_ended(closed - Duration::milliseconds(1), ONE.window));
        assert!(open.has_ended(closed, ONE.window));
    }

    #[test]
    fn only_the_codes_of_no_standing_are_limited() {
        let limited: Vec<ErrorCode> = ErrorCode::ALL
            .into_iter()
            .filter(|c| is_limited(*c))
            .collect();
        assert_eq!(
            limited,
            [
                ErrorCode::StationNotAuthorized,
                ErrorCode::StationRevoked,
                ErrorCode::OrderNotFound
            ]
        );
    }
}
