//! Integration tests for touchmark-store: the backend conformance suite (`conformance/`), run
//! against every backend.
//!
//! Each backend is one `conformance_suite!` invocation naming a function that opens a fresh,
//! empty store (a [`conformance::Harness`]). It generates a module named after the backend with
//! one test per suite function, so `cargo test -p touchmark-store sqlite::` runs one backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use touchmark_store::Store;
use touchmark_store::sqlite::SqliteStore;

mod conformance;

use conformance::{Harness, Reopen};

/// Generates, in module `$backend`, one multi-threaded test per conformance test, each on a
/// fresh store from `$harness` (an `async fn() -> Harness` beside the invocation). The list of tests lives here once,
/// for every backend; a test that exposes a bug carries its `#[ignore = "BUG: …"]` here too.
macro_rules! conformance_suite {
    ($backend:ident, $harness:ident) => {
        conformance_suite!(@module $backend, $harness;
            store: [
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
                rejection::failed_test_consumes_nothing,
                rejection::refusal_is_recorded_and_counts_nothing,
                rejection::unit_attempts_are_counted_per_product,
                events::every_change_appends_one_event,
                events::failed_operations_append_nothing,
                admin::products_round_trip,
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
            ],
            reopen: [
                durability::everything_survives_reopen,
            ],
        );
    };
    (@module $backend:ident, $harness:ident;
        store: [$($(#[$sattr:meta])* $smod:ident :: $stest:ident),* $(,)?],
        reopen: [$($(#[$rattr:meta])* $rmod:ident :: $rtest:ident),* $(,)?] $(,)?
    ) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                $(#[$sattr])*
                async fn $stest() {
                    let harness = super::$harness().await;
                    crate::conformance::$smod::$stest(harness.store).await;
                    drop(harness.guard);
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                $(#[$rattr])*
                async fn $rtest() {
                    let harness = super::$harness().await;
                    crate::conformance::$rmod::$rtest(harness.store, harness.reopen).await;
                    drop(harness.guard);
                }
            )*
        }
    };
}

/// A fresh SQLite database in its own temporary directory.
async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("touchmark.db");
    let open = move || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path).unwrap()) };
    let store = open();
    let reopen: Reopen = Box::new(move || {
        let store = open();
        Box::pin(async move { store })
    });
    Harness {
        store,
        reopen,
        guard: Box::new(dir),
    }
}

conformance_suite!(sqlite, sqlite);
