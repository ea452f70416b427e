//! A schema of its own for one test or benchmark run, in a shared PostgreSQL database, dropped
//! with everything in it when the run ends, even by a panic.

use std::hash::{BuildHasher, Hasher};

use crate::PostgresStore;

/// A fresh schema `tm_scratch_<16 hex>`; dropped when this is dropped.
#[derive(Debug)]
pub struct ScratchSchema {
    url: String,
    name: String,
}

impl ScratchSchema {
    /// A new, unique schema name in the database at `url`. Nothing is created until a store
    /// connects to it ([`ScratchSchema::connect`]); the guard drops it either way.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            name: format!("tm_scratch_{:016x}", random_u64()),
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A store on this schema, creating and migrating it on first use. Each call opens a pool
    /// of its own, as another server replica would.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn connect(&self) -> touchmark_store::Result<PostgresStore> {
        PostgresStore::connect(&self.url, Some(&self.name)).await
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.name.clone());
        // `Drop` cannot await, and the caller's runtime cannot be blocked on from inside: a
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
            Ok(Err(e)) => {
                tracing::warn!(schema = %self.name, error = %e, "a scratch schema was left behind")
            }
            Err(_) => {
                tracing::warn!(schema = %self.name, "a scratch schema was left behind: its cleanup panicked")
            }
        }
    }
}

/// 64 random bits from the standard library's per-process random hasher keys, mixed with the
/// time and the process id: names of concurrent runs never collide.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// What a benchmark reads of the database next to the store: the space a schema takes, and the
/// transactions the whole database has run.
pub mod usage {
    use sqlx::Connection as _;

    use crate::error::Result;

    /// The bytes the tables of `schema` take on disk, with their indexes and TOAST.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn schema_bytes(url: &str, schema: &str) -> touchmark_store::Result<u64> {
        Ok(scalar(
            url,
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
            Some(schema),
        )
        .await?)
    }

    /// The transactions (committed and rolled back) the database of `url` has run, by
    /// `pg_stat_database`. A server process reports its counts when it ends, or at most a
    /// second after its last transaction once it has stayed idle for ten seconds: read this
    /// after the servers' pools have closed.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn transactions(url: &str) -> touchmark_store::Result<u64> {
        Ok(scalar(
            url,
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database
             WHERE datname = current_database()",
            None,
        )
        .await?)
    }

    /// One `bigint` read on a connection of its own.
    async fn scalar(url: &str, sql: &'static str, arg: Option<&str>) -> Result<u64> {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let mut query = sqlx::query_scalar::<_, i64>(sql);
        if let Some(arg) = arg {
            query = query.bind(arg);
        }
        let n = query.fetch_one(&mut conn).await?;
        conn.close().await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
