//! A fresh PostgreSQL database for one test, on the server named by
//! `TOUCHMARK_TEST_POSTGRES_URL`, dropped when the test ends.

use sqlx::Connection;

/// A database created for one test.
pub struct Fresh {
    /// Its URL.
    pub url: String,
    server: String,
    name: String,
}

/// The server's URL, or `None` (with the reason printed) when none is configured. Under
/// `CI=true` a missing server is a failure, not a skip.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var("TOUCHMARK_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: CI=true but TOUCHMARK_TEST_POSTGRES_URL is not set")
        }
        _ => {
            eprintln!("{test}: skipped: set TOUCHMARK_TEST_POSTGRES_URL to a PostgreSQL server");
            None
        }
    }
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
    /// Creates an empty database, or returns `None` when no server is configured (see
    /// [`server_url`]).
    pub async fn create(test: &str) -> Option<Self> {
        let server = server_url(test)?;
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
        Some(Self {
            url: with_database(&server, &name),
            server,
            name,
        })
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
