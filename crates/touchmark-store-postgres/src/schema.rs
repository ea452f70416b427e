//! The PostgreSQL schema: the optional per-installation schema name, and migrations applied in
//! order under an advisory lock, so that replicas starting together apply each one once.

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPool;

use touchmark_store::StoreError;

use crate::error::Result;

/// Migrations, applied in order; table `touchmark_schema` records the versions applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_log.sql"),
    include_str!("../migrations/0003_owner.sql"),
    include_str!("../migrations/0004_test_record.sql"),
    include_str!("../migrations/0005_revocation.sql"),
    include_str!("../migrations/0008_oversight.sql"),
    include_str!("../migrations/0009_firmware.sql"),
    include_str!("../migrations/0012_field.sql"),
    include_str!("../migrations/0014_unit_firmware.sql"),
    include_str!("../migrations/0015_field_updates.sql"),
    include_str!("../migrations/0016_attestation.sql"),
    include_str!("../migrations/0017_vulnerabilities.sql"),
    include_str!("../migrations/0018_units_revoked.sql"),
    include_str!("../migrations/0019_release_components.sql"),
    include_str!("../migrations/0020_advisories.sql"),
    include_str!("../migrations/0021_latest_release.sql"),
];

/// The first key of the migration advisory lock ("tm"); the second is the schema's hash, so
/// that installations in separate schemas of one database do not wait for each other.
const LOCK_CLASS: i32 = 0x746d;

/// Accepts a schema name that needs no quoting rules beyond double quotes: lower-case ASCII
/// letters, digits and underscores, not starting with a digit or `pg_`, at most 63 bytes
/// (PostgreSQL's identifier limit).
pub(super) fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with("pg_")
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Database(format!(
            "`{}` is not a valid schema name: use lower-case letters, digits and underscores",
            name.escape_debug()
        ))
        .into())
    }
}

/// `name` as a quoted identifier. Only for names [`check_name`] accepted.
pub(super) fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// Drops `schema` and everything in it, on a connection of its own. Waits at most 10 s for
/// locks (a transaction left open by a failed caller), rather than hang.
pub(super) async fn drop(url: &str, schema: &str) -> Result<()> {
    use sqlx::Connection;
    check_name(schema)?;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    // The name passed check_name: quoting it is enough.
    let sql = format!(
        "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
        quote(schema)
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// Creates `schema` if needed and applies the migrations this database lacks, in one
/// transaction under an advisory lock.
///
/// # Errors
/// [`StoreError::Corrupt`] if the database has a newer schema than this build knows.
pub(super) async fn migrate(pool: &PgPool, schema: Option<&str>) -> Result<()> {
    let mut tx = pool.begin().await?;
    // A migration may take longer than the sessions' short timeouts allow a transaction.
    crate::extend_timeouts(&mut tx, "60s", "60s").await?;
    // Held until the transaction ends: a replica that starts at the same time waits here, then
    // finds the migrations applied.
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(coalesce($2, current_schema(), '')))")
        .bind(LOCK_CLASS)
        .bind(schema)
        .execute(&mut *tx)
        .await?;
    if let Some(name) = schema {
        check_name(name)?;
        // The name is checked above; identifiers cannot be bound as parameters.
        sqlx::query(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote(name)
        )))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS touchmark_schema (
             version    integer PRIMARY KEY CHECK (version > 0),
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .execute(&mut *tx)
    .await?;
    let applied: i32 = sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM touchmark_schema")
        .fetch_one(&mut *tx)
        .await?;
    let applied = touchmark_store::codec::schema_version(applied.into(), MIGRATIONS.len())?;
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        let version =
            i32::try_from(n + 1).map_err(|_| StoreError::Database("too many migrations".into()))?;
        sqlx::query("INSERT INTO touchmark_schema (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
        tracing::info!(version, "database schema migrated");
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for (name, ok) in [
            ("touchmark", true),
            ("plant_a2", true),
            ("_t", true),
            ("", false),
            ("Plant", false),
            ("a-b", false),
            ("a\"; DROP TABLE orders; --", false),
            ("2fast", false),
            ("pg_catalog", false),
            (&"x".repeat(64), false),
        ] {
            assert_eq!(check_name(name).is_ok(), ok, "{name}");
        }
    }
}
