//! The rules of a vulnerability report (issue 18, `docs/vulnerabilities.md`): the moves between
//! its states, its CRA classification, the notifications submitted, and the CRA's clocks: when
//! each notification is due, and which are approaching or overdue at a given time.
//!
//! The clocks are those of the Cyber Resilience Act, Article 14:
//! - an actively exploited vulnerability: an early warning within 24 hours of becoming aware,
//!   a vulnerability notification within 72 hours, and a final report within 14 days of a
//!   corrective or mitigating measure being available;
//! - a severe incident: an early warning within 24 hours, an incident notification within 72
//!   hours, and a final report within one month of the notification.
//!
//! Each due time is an exact instant, never later than the Regulation's: hours and days are
//! counted from the instant that starts them (24 h, 72 h, 14 × 24 h), and a month runs to the
//! same day and time of the next month, or to the last day of that month when it has no such
//! day (31 January → 28 or 29 February). A deadline is overdue strictly after its due time: a
//! notification submitted at the due time itself is on time.

use time::{Duration, OffsetDateTime};

use crate::alert::AlertKind;
use crate::clock::format_timestamp;
use crate::code::{ErrorCode, Refusal};
use crate::event::{Actor, Event, EventBody};
use crate::policy::alerts::Raise;
use crate::vuln::{CraClass, Deadline, Report, ReportState};

/// A change to a report, and the event that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportChange {
    /// The report after the change.
    pub report: Report,
    /// The event that records it.
    pub event: Event,
}

/// The states a report in `from` may move to.
pub fn next_states(from: ReportState) -> &'static [ReportState] {
    use ReportState::{Confirmed, Disclosed, Fixed, Received, Rejected, Triaged};
    match from {
        Received => &[Triaged],
        Triaged => &[Confirmed, Rejected],
        Confirmed => &[Fixed],
        Fixed => &[Disclosed],
        Rejected | Disclosed => &[],
    }
}

/// Moves `report` to `to` at `at`. A report becoming `fixed` records its corrective measure's
/// time: `corrective_at` when given (an instant not after `at`), else `at`.
///
/// # Errors
/// `report_transition_invalid` for a move its state does not allow; `unprocessable` for a
/// `corrective_at` on another move, or one in the future.
pub fn transition(
    report: &Report,
    to: ReportState,
    corrective_at: Option<OffsetDateTime>,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<ReportChange, Refusal> {
    let allowed = next_states(report.state);
    if !allowed.contains(&to) {
        let next = if allowed.is_empty() {
            "it moves no further".to_owned()
        } else {
            format!(
                "it may move to {}",
                allowed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        };
        return Err(Refusal::new(
            ErrorCode::ReportTransitionInvalid,
            format!(
                "report {} is {}: {next}, not to {to}",
                report.id, report.state
            ),
        ));
    }
    if corrective_at.is_some() && to != ReportState::Fixed {
        return Err(Refusal::new(
            ErrorCode::Unprocessable,
            "corrective_at is the time of the corrective measure: only for a move to fixed",
        ));
    }
    if corrective_at.is_some_and(|c| c > at) {
        return Err(Refusal::new(
            ErrorCode::Unprocessable,
            "corrective_at is in the future: record the measure once it is available",
        ));
    }
    let corrective = (to == ReportState::Fixed).then(|| corrective_at.unwrap_or(at));
    let event = Event::new(
        at,
        EventBody::VulnStateChanged {
            report: report.id.clone(),
            from: report.state.as_str().to_owned(),
            to: to.as_str().to_owned(),
            corrective_at: corrective.map(format_timestamp),
            actor,
        },
    );
    Ok(ReportChange {
        report: Report {
            state: to,
            corrective_at: corrective.or(report.corrective_at),
            updated_at: at,
            ..report.clone()
        },
        event,
    })
}

/// Classifies `report` under the CRA, which starts its clocks from `aware_at` (the time of
/// the change when `None`).
///
/// # Errors
/// `conflict` for a report classified already, or rejected; `unprocessable` for an
/// `aware_at` in the future.
pub fn classify(
    report: &Report,
    class: CraClass,
    aware_at: Option<OffsetDateTime>,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<ReportChange, Refusal> {
    if let Some(given) = report.class {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!(
                "report {} is classified already, as {given}: its clocks run",
                report.id
            ),
        ));
    }
    if report.state == ReportState::Rejected {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!("report {} is rejected: it owes no notification", report.id),
        ));
    }
    let aware = aware_at.unwrap_or(at);
    if aware > at {
        return Err(Refusal::new(
            ErrorCode::Unprocessable,
            "aware_at is in the future",
        ));
    }
    let event = Event::new(
        at,
        EventBody::VulnClassified {
            report: report.id.clone(),
            class: class.as_str().to_owned(),
            aware_at: format_timestamp(aware),
            actor,
        },
    );
    Ok(ReportChange {
        report: Report {
            class: Some(class),
            aware_at: Some(aware),
            updated_at: at,
            ..report.clone()
        },
        event,
    })
}

/// Records that `deadline`'s notification was submitted at `submitted_at` (the time of the
/// change when `None`).
///
/// # Errors
/// `conflict` for a report not classified, or whose notification was recorded already;
/// `unprocessable` for a time in the future or before the report's awareness.
pub fn submit(
    report: &Report,
    deadline: Deadline,
    submitted_at: Option<OffsetDateTime>,
    actor: Actor,
    at: OffsetDateTime,
) -> Result<ReportChange, Refusal> {
    let Some(aware) = report.aware_at.filter(|_| report.class.is_some()) else {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!(
                "report {} is not classified: it owes no CRA notification",
                report.id
            ),
        ));
    };
    if let Some(done) = report.submitted.of(deadline) {
        return Err(Refusal::new(
            ErrorCode::Conflict,
            format!(
                "report {}'s {deadline} was recorded already, as submitted at {}",
                report.id,
                format_timestamp(done)
            ),
        ));
    }
    let when = submitted_at.unwrap_or(at);
    if when > at {
        return Err(Refusal::new(
            ErrorCode::Unprocessable,
            "submitted_at is in the future",
        ));
    }
    if when < aware {
        return Err(Refusal::new(
            ErrorCode::Unprocessable,
            "submitted_at is before the report's aware_at",
        ));
    }
    let event = Event::new(
        at,
        EventBody::VulnSubmitted {
            report: report.id.clone(),
            deadline: deadline.as_str().to_owned(),
            submitted_at: format_timestamp(when),
            actor,
        },
    );
    Ok(ReportChange {
        report: Report {
            submitted: report.submitted.with(deadline, when),
            updated_at: at,
            ..report.clone()
        },
        event,
    })
}

/// Where a deadline stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DueStatus {
    /// Its due time is not known yet: a vulnerability's final report before a corrective
    /// measure.
    Waiting,
    /// Due, not yet within its lead time.
    Pending,
    /// Due within its lead time ([`lead`]), or at this very instant.
    Approaching,
    /// Past its due time and not submitted.
    Overdue,
    /// Submitted on time (at or before the due time).
    Met,
    /// Submitted after the due time.
    Late,
}

impl DueStatus {
    /// The name as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Pending => "pending",
            Self::Approaching => "approaching",
            Self::Overdue => "overdue",
            Self::Met => "met",
            Self::Late => "late",
        }
    }

    /// Whether it needs someone's attention now: approaching or overdue.
    pub fn is_alarming(self) -> bool {
        matches!(self, Self::Approaching | Self::Overdue)
    }
}

/// One deadline of a classified report, judged at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Which notification.
    pub deadline: Deadline,
    /// When it is due, once that is known.
    pub due_at: Option<OffsetDateTime>,
    /// When it was submitted, if it was.
    pub submitted_at: Option<OffsetDateTime>,
    /// Where it stands.
    pub status: DueStatus,
}

/// How long before its due time a deadline counts as approaching, and raises its alert: a
/// quarter of the early warning's 24 hours, a third of the notification's 72, and three days
/// of the final report's fourteen days or month.
pub fn lead(deadline: Deadline) -> Duration {
    match deadline {
        Deadline::EarlyWarning => Duration::hours(6),
        Deadline::Notification => Duration::hours(24),
        Deadline::FinalReport => Duration::days(3),
    }
}

/// `at` plus one calendar month: the same day and time of the next month, or the last day
/// of that month when it is shorter.
pub fn add_month(at: OffsetDateTime) -> OffsetDateTime {
    let (year, month) = match at.month() {
        time::Month::December => (at.year() + 1, time::Month::January),
        m => (at.year(), m.next()),
    };
    let day = at.day().min(time::util::days_in_month(month, year));
    // Valid by construction: the day is clamped to the month's length.
    time::Date::from_calendar_date(year, month, day)
        .map(|date| at.replace_date(date))
        .unwrap_or(at)
}

/// When `deadline` falls due for a report of `class` aware at `aware_at`, given its corrective
/// measure's time and the notification's submission; `None` while that is not known.
pub fn due_at(
    class: CraClass,
    deadline: Deadline,
    aware_at: OffsetDateTime,
    corrective_at: Option<OffsetDateTime>,
    notification_at: Option<OffsetDateTime>,
) -> Option<OffsetDateTime> {
    match (deadline, class) {
        (Deadline::EarlyWarning, _) => Some(aware_at + Duration::hours(24)),
        (Deadline::Notification, _) => Some(aware_at + Duration::hours(72)),
        (Deadline::FinalReport, CraClass::ExploitedVulnerability) => {
            corrective_at.map(|c| c + Duration::days(14))
        }
        // One month after the notification: after its submission once recorded, else after
        // the latest it may be made, its due time.
        (Deadline::FinalReport, CraClass::SevereIncident) => Some(add_month(
            notification_at.unwrap_or(aware_at + Duration::hours(72)),
        )),
    }
}

/// The deadlines of `report` judged at `now`: none for a report not classified, or rejected
/// (it owes nothing).
pub fn deadlines(report: &Report, now: OffsetDateTime) -> Vec<Due> {
    let (Some(class), Some(aware)) = (report.class, report.aware_at) else {
        return Vec::new();
    };
    if report.state == ReportState::Rejected {
        return Vec::new();
    }
    Deadline::ALL
        .into_iter()
        .map(|deadline| {
            let due_at = due_at(
                class,
                deadline,
                aware,
                report.corrective_at,
                report.submitted.notification,
            );
            let submitted_at = report.submitted.of(deadline);
            let status = match (due_at, submitted_at) {
                (Some(due), Some(done)) if done <= due => DueStatus::Met,
                (Some(_), Some(_)) => DueStatus::Late,
                (None, Some(_)) => DueStatus::Met,
                (None, None) => DueStatus::Waiting,
                (Some(due), None) if now > due => DueStatus::Overdue,
                (Some(due), None) if now >= due - lead(deadline) => DueStatus::Approaching,
                (Some(_), None) => DueStatus::Pending,
            };
            Due {
                deadline,
                due_at,
                submitted_at,
                status,
            }
        })
        .collect()
}

/// The deadlines of `report` that need an alert at `now`: approaching or overdue, and not
/// alerted before. Each deadline raises one alert, once.
pub fn alerts_due(report: &Report, now: OffsetDateTime) -> Vec<Due> {
    deadlines(report, now)
        .into_iter()
        .filter(|d| d.status.is_alarming() && report.alerted.of(d.deadline).is_none())
        .collect()
}

/// The `cra_deadline` alert of `due`, a deadline of `report`: keyed by the report and the
/// deadline, with the due time and the status as evidence. The evidence names the report by
/// id only: the alert's event goes into the public log.
pub fn deadline_alert(report: &Report, due: &Due) -> Raise {
    let mut evidence = std::collections::BTreeMap::new();
    evidence.insert("report".to_owned(), report.id.clone());
    evidence.insert("deadline".to_owned(), due.deadline.as_str().to_owned());
    evidence.insert("status".to_owned(), due.status.as_str().to_owned());
    if let Some(at) = due.due_at {
        evidence.insert("due_at".to_owned(), format_timestamp(at));
    }
    if let Some(class) = report.class {
        evidence.insert("class".to_owned(), class.as_str().to_owned());
    }
    Raise {
        kind: AlertKind::CraDeadline,
        key: format!("{}/{}/{}", AlertKind::CraDeadline, report.id, due.deadline),
        order: None,
        station: None,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use time::macros::datetime;

    use super::*;
    use crate::event::Sha256Hash;
    use crate::vuln::{PerDeadline, ReportContent};

    const MS: Duration = Duration::milliseconds(1);

    fn report(state: ReportState) -> Report {
        let at = datetime!(2026-10-01 09:00:00 UTC);
        Report {
            id: "vr-0123456789abcdef".into(),
            secret_sha256: Sha256Hash([1; 32]),
            state,
            content: ReportContent {
                product: None,
                version: None,
                description: Some("overflow".into()),
                encrypted: None,
                cvss: None,
                contact: None,
            },
            content_sha256: Sha256Hash([2; 32]),
            class: None,
            aware_at: None,
            corrective_at: None,
            submitted: PerDeadline::default(),
            alerted: PerDeadline::default(),
            received_at: at,
            updated_at: at,
        }
    }

    fn classified(class: CraClass, aware: OffsetDateTime) -> Report {
        Report {
            class: Some(class),
            aware_at: Some(aware),
            ..report(ReportState::Confirmed)
        }
    }

    fn status(
        r: &Report,
        deadline: Deadline,
        now: OffsetDateTime,
    ) -> (Option<OffsetDateTime>, DueStatus) {
        let d = deadlines(r, now)
            .into_iter()
            .find(|d| d.deadline == deadline)
            .unwrap();
        (d.due_at, d.status)
    }

    #[test]
    fn states_move_only_along_the_lifecycle() {
        use ReportState::*;
        let at = datetime!(2026-10-02 09:00:00 UTC);
        for from in ReportState::ALL {
            for to in ReportState::ALL {
                let allowed = matches!(
                    (from, to),
                    (Received, Triaged)
                        | (Triaged, Confirmed)
                        | (Triaged, Rejected)
                        | (Confirmed, Fixed)
                        | (Fixed, Disclosed)
                );
                let result = transition(&report(from), to, None, Actor::System, at);
                match result {
                    Ok(change) => {
                        assert!(allowed, "{from} -> {to}");
                        assert_eq!(change.report.state, to);
                        assert_eq!(change.event.body.kind(), "vuln.state_changed");
                        assert_eq!(change.report.corrective_at, (to == Fixed).then_some(at));
                    }
                    Err(refusal) => {
                        assert!(!allowed, "{from} -> {to}");
                        assert_eq!(refusal.code, ErrorCode::ReportTransitionInvalid);
                    }
                }
            }
        }
    }

    #[test]
    fn a_corrective_measure_is_recorded_with_fixed_only_and_not_in_the_future() {
        let at = datetime!(2026-10-05 09:00:00 UTC);
        let earlier = at - Duration::days(2);
        let fixed = transition(
            &report(ReportState::Confirmed),
            ReportState::Fixed,
            Some(earlier),
            Actor::System,
            at,
        )
        .unwrap();
        assert_eq!(fixed.report.corrective_at, Some(earlier));
        for (from, to, when) in [
            (ReportState::Received, ReportState::Triaged, earlier),
            (ReportState::Confirmed, ReportState::Fixed, at + MS),
        ] {
            let refused = transition(&report(from), to, Some(when), Actor::System, at);
            assert_eq!(refused.unwrap_err().code, ErrorCode::Unprocessable);
        }
    }

    #[test]
    fn classification_once_and_submissions_once() {
        let at = datetime!(2026-10-02 09:00:00 UTC);
        let r = report(ReportState::Triaged);
        assert_eq!(
            submit(&r, Deadline::EarlyWarning, None, Actor::System, at)
                .unwrap_err()
                .code,
            ErrorCode::Conflict
        );
        assert_eq!(
            classify(
                &r,
                CraClass::SevereIncident,
                Some(at + MS),
                Actor::System,
                at
            )
            .unwrap_err()
            .code,
            ErrorCode::Unprocessable
        );
        let c = classify(&r, CraClass::SevereIncident, None, Actor::System, at).unwrap();
        assert_eq!(c.report.aware_at, Some(at));
        assert_eq!(
            classify(&c.report, CraClass::SevereIncident, None, Actor::System, at)
                .unwrap_err()
                .code,
            ErrorCode::Conflict
        );
        let rejected = report(ReportState::Rejected);
        assert_eq!(
            classify(&rejected, CraClass::SevereIncident, None, Actor::System, at)
                .unwrap_err()
                .code,
            ErrorCode::Conflict
        );
        let s = submit(&c.report, Deadline::EarlyWarning, None, Actor::System, at).unwrap();
        assert_eq!(s.report.submitted.early_warning, Some(at));
        assert_eq!(
            submit(&s.report, Deadline::EarlyWarning, None, Actor::System, at)
                .unwrap_err()
                .code,
            ErrorCode::Conflict
        );
        for when in [at + MS, at - MS] {
            let refused = submit(
                &c.report,
                Deadline::Notification,
                Some(when),
                Actor::System,
                at,
            );
            assert_eq!(
                refused.unwrap_err().code,
                ErrorCode::Unprocessable,
                "{when}"
            );
        }
    }

    #[test]
    fn the_early_warning_and_notification_fall_due_at_24_and_72_hours_to_the_millisecond() {
        let aware = datetime!(2026-10-01 10:30:00.250 UTC);
        for class in CraClass::ALL {
            let r = classified(class, aware);
            for (deadline, hours) in [(Deadline::EarlyWarning, 24), (Deadline::Notification, 72)] {
                let due = aware + Duration::hours(hours);
                let cases = [
                    (due - lead(deadline) - MS, DueStatus::Pending),
                    (due - lead(deadline), DueStatus::Approaching),
                    (due - MS, DueStatus::Approaching),
                    (due, DueStatus::Approaching),
                    (due + MS, DueStatus::Overdue),
                ];
                for (now, expected) in cases {
                    assert_eq!(
                        status(&r, deadline, now),
                        (Some(due), expected),
                        "{class} {deadline} at {now}"
                    );
                }
                // Submitted exactly at the due time is on time; a millisecond after is late.
                for (done, expected) in [
                    (due, DueStatus::Met),
                    (due + MS, DueStatus::Late),
                    (due - MS, DueStatus::Met),
                ] {
                    let r = Report {
                        submitted: PerDeadline::default().with(deadline, done),
                        ..r.clone()
                    };
                    assert_eq!(status(&r, deadline, due + Duration::days(400)).1, expected);
                }
            }
        }
    }

    #[test]
    fn a_vulnerabilitys_final_report_waits_for_the_corrective_measure_then_runs_14_days() {
        let aware = datetime!(2026-10-01 10:00:00 UTC);
        let r = classified(CraClass::ExploitedVulnerability, aware);
        let now = aware + Duration::days(30);
        assert_eq!(
            status(&r, Deadline::FinalReport, now),
            (None, DueStatus::Waiting)
        );
        let fixed = transition(
            &r,
            ReportState::Fixed,
            Some(datetime!(2026-10-20 23:59:59.999 UTC)),
            Actor::System,
            now,
        )
        .unwrap()
        .report;
        let due = datetime!(2026-11-03 23:59:59.999 UTC);
        assert_eq!(
            status(&fixed, Deadline::FinalReport, due),
            (Some(due), DueStatus::Approaching)
        );
        assert_eq!(
            status(&fixed, Deadline::FinalReport, due + MS),
            (Some(due), DueStatus::Overdue)
        );
        assert_eq!(
            status(&fixed, Deadline::FinalReport, due - Duration::days(3) - MS).1,
            DueStatus::Pending
        );
    }

    #[test]
    fn an_incidents_final_report_is_due_a_calendar_month_after_the_notification() {
        // Without a recorded notification: a month after its due time.
        let aware = datetime!(2027-01-28 12:00:00 UTC);
        let r = classified(CraClass::SevereIncident, aware);
        // The notification is due 31 January 12:00; February has no 31st: the 28th (2027).
        assert_eq!(
            status(&r, Deadline::FinalReport, aware).0,
            Some(datetime!(2027-02-28 12:00:00 UTC))
        );
        // Once recorded, a month after the submission.
        let cases = [
            (
                datetime!(2027-01-31 08:00:00 UTC),
                datetime!(2027-02-28 08:00:00 UTC),
            ),
            (
                datetime!(2028-01-31 08:00:00 UTC),
                datetime!(2028-02-29 08:00:00 UTC),
            ),
            (
                datetime!(2027-03-31 23:59:59.999 UTC),
                datetime!(2027-04-30 23:59:59.999 UTC),
            ),
            (
                datetime!(2027-12-15 00:00:00 UTC),
                datetime!(2028-01-15 00:00:00 UTC),
            ),
            (
                datetime!(2027-02-28 10:00:00 UTC),
                datetime!(2027-03-28 10:00:00 UTC),
            ),
        ];
        for (notified, due) in cases {
            assert_eq!(add_month(notified), due, "{notified}");
            let aware = notified - Duration::hours(1);
            let r = Report {
                submitted: PerDeadline::default().with(Deadline::Notification, notified),
                ..classified(CraClass::SevereIncident, aware)
            };
            assert_eq!(
                status(&r, Deadline::FinalReport, due),
                (Some(due), DueStatus::Approaching)
            );
            assert_eq!(
                status(&r, Deadline::FinalReport, due + MS).1,
                DueStatus::Overdue
            );
        }
    }

    #[test]
    fn each_deadline_alerts_once_and_a_rejected_report_owes_nothing() {
        let aware = datetime!(2026-10-01 10:00:00 UTC);
        let r = classified(CraClass::ExploitedVulnerability, aware);
        let now = aware + Duration::hours(20);
        let due: Vec<Deadline> = alerts_due(&r, now).iter().map(|d| d.deadline).collect();
        assert_eq!(due, [Deadline::EarlyWarning]);
        let alerted = Report {
            alerted: PerDeadline::default().with(Deadline::EarlyWarning, now),
            ..r.clone()
        };
        assert!(alerts_due(&alerted, now).is_empty());
        let later = aware + Duration::hours(60);
        let due: Vec<Deadline> = alerts_due(&alerted, later)
            .iter()
            .map(|d| d.deadline)
            .collect();
        assert_eq!(due, [Deadline::Notification]);
        let rejected = Report {
            state: ReportState::Rejected,
            ..r
        };
        assert!(deadlines(&rejected, later).is_empty());
    }
}
