//! A fresh PostgreSQL database for one test, on the server named by
//! `TOUCHMARK_TEST_POSTGRES_URL`, dropped when the test ends. A test that uses one carries
//! `#[cfg_attr(not(tm_postgres), ignore = "…")]`: without a server it is reported as ignored.

use sqlx::Connection;

/// A database created for one test.
pub struct Fresh {
    /// Its URL.
    pub url: String,
    server: String,
    name: String,
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap();
    format!("{scheme}://{authority}/{name}{query}")
}

impl Fresh {
    /// Creates an empty database on the server at `TOUCHMARK_TEST_POSTGRES_URL`, for a test
    /// that runs only with `tm_postgres` (see `touchmark-testenv`).
    pub async fn create() -> Self {
        let server = touchmark_testenv::postgres_url();
        let mut nonce = [0u8; 6];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let name = format!("touchmark_cli_{}", hex::encode(nonce));
        let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
        // The name is ours: a fixed prefix and hex digits.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        Self {
            url: with_database(&server, &name),
            server,
            name,
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

#[test]
fn database_urls_are_rewritten() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
}
