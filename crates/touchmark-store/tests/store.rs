//! Integration tests for touchmark-store: the backend conformance suite (`conformance/`), run
//! against every backend.
//!
//! Each backend is one `conformance_suite!` invocation naming a function that opens a fresh,
//! empty store (a [`conformance::Harness`]). It generates a module named after the backend with
//! one test per suite function, so `cargo test -p touchmark-store sqlite::` runs one backend.
//!
//! The PostgreSQL tests need a server: `TOUCHMARK_TEST_POSTGRES_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/test`). Without it they print why and pass, except when
//! `CI=true`, where a missing server fails them. Each test works in a schema of its own,
//! dropped when it ends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use touchmark_store::Store;
use touchmark_store::postgres::PostgresStore;
use touchmark_store::sqlite::SqliteStore;

mod conformance;

use conformance::indexed_at_commit::IndexedAtCommit;
use conformance::{Harness, Reopen, StoreFuture};

/// Generates, in module `$backend`, one multi-threaded test per conformance test, each on a
/// fresh store from `$harness` (an `async fn() -> Option<Harness>` beside the invocation;
/// `None` skips the test). The list of tests lives here once, for every backend; a test that
/// exposes a bug carries its `#[ignore = "BUG: …"]` here too.
///
/// - `store`: tests of one store.
/// - `reopen`: tests that also reopen the storage, as a restarted server would.
/// - `postgres_only`: tests that run several store instances on one storage at once, as
///   several server replicas share one PostgreSQL database. SQLite is one server process by
///   design (DESIGN §10): its single writer thread keeps the log's next index in memory and
///   serialises checks 6 to 8 in-process, so a second `SqliteStore` writing the same file
///   would hand out indices the first one also hands out (its inserts then fail). These tests
///   are generated for the `postgres` backend only.
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
                log::stale_previous_is_a_conflict,
                sequencer::lease_is_exclusive,
                sequencer::expired_lease_is_fenced,
                sequencer::sequence_entries_respects_max,
                sequencer::sequencing_is_dense_and_complete,
            ],
            reopen: [
                durability::everything_survives_reopen,
            ],
            postgres_only: [
                replicas::quota_holds_across_replicas,
                replicas::retries_and_clones_across_replicas,
                replicas::sequencers_take_turns_across_replicas,
            ],
        );
    };
    (@module $backend:ident, $harness:ident;
        store: [$($(#[$sattr:meta])* $smod:ident :: $stest:ident),* $(,)?],
        reopen: [$($(#[$rattr:meta])* $rmod:ident :: $rtest:ident),* $(,)?],
        postgres_only: [$($(#[$pattr:meta])* $pmod:ident :: $ptest:ident),* $(,)?] $(,)?
    ) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                $(#[$sattr])*
                async fn $stest() {
                    let Some(harness) = super::$harness().await else { return };
                    crate::conformance::$smod::$stest(harness.store).await;
                    drop(harness.guard);
                }
            )*
            conformance_suite!(@reopen $harness;
                $($(#[$rattr])* $rmod :: $rtest),*);
            conformance_suite!(@postgres_only $backend, $harness;
                $($(#[$pattr])* $pmod :: $ptest),*);
        }
    };
    (@reopen $harness:ident; $($(#[$attr:meta])* $m:ident :: $test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            $(#[$attr])*
            async fn $test() {
                let Some(harness) = super::$harness().await else { return };
                crate::conformance::$m::$test(harness.store, harness.reopen).await;
                drop(harness.guard);
            }
        )*
    };
    (@postgres_only postgres, $harness:ident; $($tests:tt)*) => {
        conformance_suite!(@reopen $harness; $($tests)*);
    };
    (@postgres_only $other:ident, $harness:ident; $($tests:tt)*) => {};
}

/// A fresh SQLite database in its own temporary directory. SQLite gives every event its
/// index at commit: [`IndexedAtCommit`] holds every `Logged` it hands back to that.
async fn sqlite() -> Option<Harness> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("touchmark.db");
    let open =
        move || -> Arc<dyn Store> { Arc::new(IndexedAtCommit(SqliteStore::open(&path).unwrap())) };
    let store = open();
    let reopen: Reopen = Box::new(move || {
        let store = open();
        Box::pin(async move { store })
    });
    Some(Harness {
        store,
        reopen,
        guard: Box::new(dir),
    })
}

conformance_suite!(sqlite, sqlite);

/// The variable that names the PostgreSQL server to test against.
const POSTGRES_URL: &str = "TOUCHMARK_TEST_POSTGRES_URL";

/// A fresh, empty schema `tm_test_<16 hex>` in the database at `TOUCHMARK_TEST_POSTGRES_URL`,
/// dropped when the test ends. Reopening connects a new [`PostgresStore`] (a pool of its own)
/// to the same schema, as a restarted server or another replica would. `None` (the test is
/// skipped) when the variable is unset, unless `CI=true`: CI must never pass without the
/// server.
async fn postgres() -> Option<Harness> {
    let url = match std::env::var(POSTGRES_URL) {
        Ok(url) if !url.trim().is_empty() => url,
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "{POSTGRES_URL} is not set, and CI=true: the PostgreSQL conformance suite must run \
             in CI (set it to a server's URL, e.g. postgres://postgres@127.0.0.1:5432/test)"
        ),
        _ => {
            eprintln!(
                "skipped: {POSTGRES_URL} is not set (e.g. \
                 postgres://postgres@127.0.0.1:5432/test), so the PostgreSQL suite cannot run"
            );
            return None;
        }
    };
    let schema = format!("tm_test_{:016x}", random_u64());
    // Armed before the first connection, so that a failing migration is cleaned up too.
    let guard = DropSchema {
        url: url.clone(),
        schema: schema.clone(),
    };
    let reopen: Reopen = Box::new(move || -> StoreFuture {
        let (url, schema) = (url.clone(), schema.clone());
        Box::pin(async move {
            let store = PostgresStore::connect(&url, Some(&schema))
                .await
                .unwrap_or_else(|e| panic!("cannot open schema {schema} at {POSTGRES_URL}: {e}"));
            Arc::new(store) as Arc<dyn Store>
        })
    });
    let store = reopen().await;
    Some(Harness {
        store,
        reopen,
        guard: Box::new(guard),
    })
}

/// 64 random bits from the standard library's per-process random hasher keys (no extra
/// dependency), mixed with the time: schema names of concurrent test runs never collide.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Drops a test's schema, and everything in it, when the test ends (even by a panic).
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // `Drop` cannot await, and the test's runtime cannot be blocked on from inside: a
        // thread of its own, with a runtime of its own, on a connection of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(PostgresStore::drop_schema(&url, &schema))
                .map_err(|e| e.to_string())
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("schema {} was left behind: {e}", self.schema),
            Err(_) => eprintln!(
                "schema {} was left behind: the cleanup panicked",
                self.schema
            ),
        }
    }
}

conformance_suite!(postgres, postgres);
