//! The backend-independent conformance suite (design.md §4 invariants, §10).
//!
//! Every test is a plain `pub async fn name(store: Arc<dyn Store>)` (the durability and
//! replica tests also take a [`Reopen`]). A backend crate runs them all from its own tests with
//! one [`conformance_suite!`](crate::conformance_suite) invocation. Tests build domain values
//! directly with [`kit`] and assert outcomes: counts, codes, rows and the log. The decisions
//! themselves are tested as tables in `touchmark_core::policy`; this suite tests that a backend
//! applies them atomically, under concurrency and across a reopen.
//!
//! A receipt's index may be `None` (a backend shared by replicas commits entries without one
//! and sequences them later), so tests read indices through [`kit::index_of`] and log sizes
//! through [`kit::log_size`], which sequence first: every "the next index, no gap" check holds
//! on every backend once the log is sequenced.

// Test code: a failed check is a panic, as in any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::Store;

pub mod admin;
pub mod alert;
pub mod alerts;
pub mod durability;
pub mod events;
pub mod field;
pub mod firmware;
pub mod group_commit;
pub mod issue;
pub mod kit;
pub mod log;
pub mod records;
pub mod rejection;
pub mod replicas;
pub mod revocation;
pub mod sequencer;
pub mod vuln;

/// A store being opened.
pub type StoreFuture = Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send>>;

/// Opens the harness's storage again (the same file or database), as a restarted server, or
/// another replica, would.
pub type Reopen = Box<dyn Fn() -> StoreFuture + Send + Sync>;

/// A fresh, empty store for one test, with what it takes to reopen it.
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Opens the same storage again.
    pub reopen: Reopen,
    /// Whatever must live as long as the test (a temporary directory, a database to drop).
    pub guard: Box<dyn Any + Send>,
}

/// Generates, in module `$backend`, one multi-threaded test per conformance test, each on a
/// fresh store from `$harness` (an `async fn() -> Harness` in scope at the invocation). The list
/// of tests lives here once, for every backend.
///
/// - `store`: tests of one store;
/// - `reopen`: tests that also reopen the storage, as a restarted server would;
/// - `replicas`: tests that run several store instances on one storage at once, as several
///   server replicas share one PostgreSQL database. Only a backend invoked with `replicas`
///   runs them: SQLite is one server process by design (design.md §10).
///
/// Attributes after the harness go on every test: a backend whose service may be missing puts
/// `#[cfg_attr(not(...), ignore = "why")]` there, so a run without it reports the tests as
/// ignored, with the reason, never as passed.
#[macro_export]
macro_rules! conformance_suite {
    ($backend:ident, $harness:ident, replicas $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_suite!(@module $backend, $harness, [$(#[$attr])*], [
            replicas::quota_holds_across_replicas,
            replicas::retries_and_clones_across_replicas,
            replicas::sequencers_take_turns_across_replicas,
        ]);
    };
    ($backend:ident, $harness:ident $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_suite!(@module $backend, $harness, [$(#[$attr])*], []);
    };
    (@module $backend:ident, $harness:ident, $attrs:tt, [$($rmod:ident :: $rtest:ident),* $(,)?]) => {
        mod $backend {
            $crate::conformance_suite!(@store $harness, $attrs;
                issue::quota_holds_under_concurrency,
                issue::retry_returns_the_same_certificate,
                issue::serial_conflict_is_refused,
                issue::key_reused_is_refused,
                issue::quota_exhausted_is_refused,
                issue::order_not_open_is_refused,
                issue::station_not_active_is_refused,
                issue::clone_races_issue_once,
                issue::order_closes_between_issues,
                issue::station_revoked_between_issues,
                issue::quota_changes_race_with_issues,
                issue::issued_unit_reads_back_as_returned,
                issue::order_window_is_judged_at_commit,
                issue::test_record_reused_is_refused,
                issue::test_record_race_issues_once,
                rejection::failed_test_consumes_nothing,
                rejection::refusal_is_recorded_and_counts_nothing,
                rejection::unit_attempts_are_counted_per_product,
                rejection::unknown_order_is_recorded_alone,
                alert::an_alert_is_logged_and_changes_nothing_else,
                events::every_change_appends_one_event,
                events::failed_operations_append_nothing,
                admin::products_round_trip,
                admin::a_product_ca_is_installed_once,
                admin::factories_round_trip,
                admin::stations_round_trip,
                admin::orders_round_trip,
                admin::orders_are_created_in_draft,
                admin::order_state_machine,
                admin::change_quota_rules,
                admin::enrollment_is_one_time,
                admin::bad_enrollment_tokens_are_refused,
                admin::revoke_station_once,
                admin::tokens_by_secret,
                group_commit::failing_job_leaves_no_trace,
                log::checkpoints_only_move_forward,
                log::stale_previous_is_a_conflict,
                sequencer::lease_is_exclusive,
                sequencer::expired_lease_is_fenced,
                sequencer::take_over_fences_a_live_holder,
                sequencer::sequence_entries_respects_max,
                sequencer::sequencing_is_dense_and_complete,
                records::attempts_are_stored_as_data,
                records::measurements_are_tailed_by_attempt,
                alerts::alerts_are_raised_once_per_key_and_move_by_rule,
                alerts::deliveries_and_cursors_are_kept,
                firmware::firmware_keys_are_kept_per_product,
                firmware::release_components_are_found_by_key,
                revocation::a_revoked_unit_stays_taken,
                revocation::a_hold_is_released_once,
                revocation::an_order_revocation_closes_it,
                revocation::a_revoked_ca_issues_nothing,
                revocation::provenance_takes_one_station_in_its_span,
                field::field_tokens_round_trip,
                field::challenges_are_used_once,
                vuln::reports_round_trip_and_move_by_rule,
                vuln::links_are_checked_and_kept,
                vuln::deadline_alerts_are_marked_once,
                vuln::advisories_are_versioned,
            );
            $crate::conformance_suite!(@reopen $harness, $attrs;
                durability::everything_survives_reopen,
                $($rmod :: $rtest,)*
            );
        }
    };
    (@store $harness:ident, $attrs:tt; $($m:ident :: $test:ident),* $(,)?) => {
        $( $crate::conformance_suite!(@one store, $harness, $attrs, $m, $test); )*
    };
    (@reopen $harness:ident, $attrs:tt; $($m:ident :: $test:ident),* $(,)?) => {
        $( $crate::conformance_suite!(@one reopen, $harness, $attrs, $m, $test); )*
    };
    (@one store, $harness:ident, [$(#[$attr:meta])*], $m:ident, $test:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn $test() {
            let harness = super::$harness().await;
            $crate::testsuite::$m::$test(harness.store).await;
            drop(harness.guard);
        }
    };
    (@one reopen, $harness:ident, [$(#[$attr:meta])*], $m:ident, $test:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn $test() {
            let harness = super::$harness().await;
            $crate::testsuite::$m::$test(harness.store, harness.reopen).await;
            drop(harness.guard);
        }
    };
}
