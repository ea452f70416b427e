//! The test kit of Touchmark's suites: a real server in this process on `127.0.0.1:0`, on
//! either storage backend, driven by the typed client and by raw requests; fixture builders
//! (products, factories, orders, enrolled stations, units with keys of their own); test
//! records; and snapshots of what a refusal must leave unchanged.
//!
//! A test that should run on both backends takes a [`Backend`], and [`both_backends!`]
//! generates one test per backend, the PostgreSQL one ignored, with its reason, where no server
//! is configured.

// Test support: a failed step is a panic, as in any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod firmware;
pub mod fixtures;
pub mod http;
pub mod proxy;
pub mod records;
pub mod server;
pub mod snapshot;

pub use fixtures::{Line, Station, Unit, order_request, pem_sha256};
pub use http::{Raw, Reply, client_tls};
pub use proxy::TcpProxy;
pub use records::{
    failing_test, openhtf_passing_test, openhtf_real_sn_000400, openhtf_real_unknown_dut,
    passing_test,
};
pub use server::{Backend, TestServer, installation, open_store};
pub use snapshot::Snapshot;

/// Generates, for each `async fn name(backend: Backend)` in scope listed, the tests
/// `sqlite::name` and `postgres::name`. The PostgreSQL one needs `tm_postgres` (see
/// `touchmark-testenv`), set by the invoking crate's build script; without it, it is reported
/// as ignored with the reason. Attributes before a name (another need's
/// `#[cfg_attr(not(tm_openssl), ignore = "…")]`) go on both of its tests.
#[macro_export]
macro_rules! both_backends {
    ($($(#[$attr:meta])* $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                $(#[$attr])*
                async fn $test() {
                    super::$test($crate::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[cfg_attr(
                    not(tm_postgres),
                    ignore = "needs PostgreSQL: set TOUCHMARK_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
                )]
                $(#[$attr])*
                async fn $test() {
                    super::$test($crate::Backend::Postgres).await;
                }
            )*
        }
    };
}
