//! The audit log on a shared database: reading sequenced events, electing the one sequencer
//! through the `log_lease` row, giving committed events their indices, and saving checkpoints
//! and tiles (design.md §6, §10).
//!
//! The lease's expiry is judged by the database server's clock (`clock_timestamp()`), so
//! replicas with skewed clocks agree on who holds it. Every sequencer write locks the lease row
//! and checks holder, epoch and expiry in the same transaction: a takeover waits for that
//! transaction, and a former holder's later write is refused ([`StoreError::Fenced`]).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool};
use time::OffsetDateTime;

use touchmark_store::log::{LeaseRow, SavedLog, check_save};
use touchmark_store::{
    Constraint, LogState, LogTile, SequencerLease, StoreError, StoredEvent, to_millis,
};

use crate::error::{Result, is_lock_timeout};
use crate::rows::{self, get};

pub(super) async fn events(pool: &PgPool, start: u64, limit: u32) -> Result<Vec<StoredEvent>> {
    // Past i64::MAX there is nothing: clamp rather than wrap to a negative index.
    let start = i64::try_from(start).unwrap_or(i64::MAX);
    sqlx::query(
        "SELECT idx, kind, bytes, leaf_hash FROM events WHERE idx >= $1 ORDER BY idx LIMIT $2",
    )
    .bind(start)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?
    .iter()
    .map(rows::event)
    .collect()
}

pub(super) async fn event_count(pool: &PgPool) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT coalesce(max(idx) + 1, 0) FROM events")
        .fetch_one(pool)
        .await?;
    rows::count(n)
}

pub(super) async fn is_empty(pool: &PgPool) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM events)")
            .fetch_one(pool)
            .await?,
    )
}

pub(super) async fn owner(pool: &PgPool) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT verifier FROM log_owner WHERE id = 1")
            .fetch_optional(pool)
            .await?,
    )
}

pub(super) async fn claim(pool: &PgPool, verifier: &str, at: OffsetDateTime) -> Result<String> {
    // One statement: the first claim wins, whoever races it; every caller reads the winner.
    Ok(sqlx::query_scalar(
        "WITH claimed AS (
             INSERT INTO log_owner (id, verifier, claimed_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING
             RETURNING verifier
         )
         SELECT verifier FROM claimed UNION ALL SELECT verifier FROM log_owner WHERE id = 1
         LIMIT 1",
    )
    .bind(verifier)
    .bind(to_millis(at))
    .fetch_one(pool)
    .await?)
}

/// Grants the sequencer lease to `holder` for `ttl`: when there is none, when it has expired,
/// when it is the holder's own (a live one is renewed in its epoch), or, with `take_over`,
/// whatever holds it (for a holder that knows the other is dead). Any grant but a renewal starts
/// a new epoch, which fences the former holder.
pub(super) async fn claim_sequencer(
    pool: &PgPool,
    holder: &str,
    ttl: Duration,
    take_over: bool,
) -> Result<Option<SequencerLease>> {
    let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    // Taking over depends only on the lease's age by the database's clock, never on a row lock
    // a stalled holder keeps (finding 2 of the fault review): a lease row locked for longer
    // than this is "held by someone else" for now.
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '200ms'")
        .execute(&mut *tx)
        .await?;
    // One statement. While another holder's lease runs (and `take_over` is false), the WHERE
    // leaves the row as it is and nothing returns.
    let granted: std::result::Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
        "INSERT INTO log_lease (id, holder, epoch, expires_at)
         VALUES (1, $1, 1, clock_timestamp() + $2 * interval '1 millisecond')
         ON CONFLICT (id) DO UPDATE SET
             holder = excluded.holder,
             epoch = CASE WHEN NOT $3
                               AND log_lease.holder = excluded.holder
                               AND log_lease.expires_at > clock_timestamp()
                          THEN log_lease.epoch ELSE log_lease.epoch + 1 END,
             expires_at = excluded.expires_at
         WHERE $3 OR log_lease.holder = excluded.holder
               OR log_lease.expires_at <= clock_timestamp()
         RETURNING epoch",
    )
    .bind(holder)
    .bind(ttl)
    .bind(take_over)
    .fetch_optional(&mut *tx)
    .await;
    let epoch = match granted {
        Ok(epoch) => epoch,
        Err(e) if is_lock_timeout(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    epoch
        .map(|epoch| {
            Ok(SequencerLease {
                holder: holder.to_owned(),
                epoch: rows::count(epoch)?,
            })
        })
        .transpose()
}

pub(super) async fn release_sequencer(pool: &PgPool, lease: &SequencerLease) -> Result<()> {
    sqlx::query(
        "UPDATE log_lease SET expires_at = clock_timestamp()
         WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()",
    )
    .bind(&lease.holder)
    .bind(epoch(lease)?)
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives the oldest waiting events (by `seq`) the next indices, densely. Only committed events
/// are visible to the statement, so an event that commits later takes a later index: the log
/// never gets an index before an entry that precedes it.
const SEQUENCE_SQL: &str = "
WITH base AS (
    SELECT coalesce(max(idx) + 1, 0) AS next FROM events
), batch AS (
    SELECT seq, row_number() OVER (ORDER BY seq) - 1 AS n
    FROM (SELECT seq FROM events WHERE idx IS NULL ORDER BY seq LIMIT $1) AS waiting
), numbered AS (
    UPDATE events e SET idx = base.next + batch.n
    FROM batch, base
    WHERE e.seq = batch.seq
    RETURNING e.idx
)
SELECT coalesce(max(idx) + 1, (SELECT next FROM base)) FROM numbered";

pub(super) async fn sequence_entries(
    pool: &PgPool,
    lease: &SequencerLease,
    max: u64,
) -> Result<u64> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    check_lease(&mut tx, lease).await?;
    let size: i64 = sqlx::query_scalar(SEQUENCE_SQL)
        .bind(max)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    rows::count(size)
}

pub(super) async fn log_state(pool: &PgPool) -> Result<Option<LogState>> {
    let Some(row) = sqlx::query(
        "SELECT s.size, s.tree, c.root, c.note
         FROM log_state s LEFT JOIN log_checkpoints c ON c.size = s.size
         WHERE s.id = 1",
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let size: i64 = get(&row, 0)?;
    let (Some(root), Some(note)) = (
        get::<Option<Vec<u8>>>(&row, 2)?,
        get::<Option<String>>(&row, 3)?,
    ) else {
        return Err(touchmark_store::codec::checkpoint_missing(rows::count(size)?).into());
    };
    Ok(Some(LogState {
        size: rows::count(size)?,
        root: rows::tree_hash("checkpoint root", root)?,
        note,
        tree: get(&row, 1)?,
    }))
}

pub(super) async fn save_log_state(
    pool: &PgPool,
    lease: &SequencerLease,
    previous: Option<u64>,
    state: LogState,
    tiles: Vec<LogTile>,
    at: OffsetDateTime,
) -> Result<()> {
    let size =
        i64::try_from(state.size).map_err(|_| StoreError::Constraint(Constraint::InvalidValue))?;
    let tiles = Tiles::of(tiles)?;
    let mut tx = pool.begin().await?;
    check_lease(&mut tx, lease).await?;
    let row = sqlx::query(
        "SELECT (SELECT size FROM log_state WHERE id = 1),
                (SELECT max(size) FROM log_checkpoints),
                (SELECT coalesce(max(idx) + 1, 0) FROM events)",
    )
    .fetch_one(&mut *tx)
    .await?;
    let log = SavedLog {
        saved: get::<Option<i64>>(&row, 0)?.map(rows::count).transpose()?,
        signed: get::<Option<i64>>(&row, 1)?.map(rows::count).transpose()?,
        events: rows::count(get(&row, 2)?)?,
    };
    check_save(log, previous, state.size)?;
    sqlx::query(
        "INSERT INTO log_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(size)
    .bind(state.root.as_bytes().as_slice())
    .bind(&state.note)
    .bind(to_millis(at))
    .execute(&mut *tx)
    .await?;
    if !tiles.levels.is_empty() {
        // A tile only grows: a shorter (older) version never replaces a longer one.
        sqlx::query(
            "INSERT INTO log_tiles (level, idx, data)
             SELECT * FROM UNNEST($1::smallint[], $2::bigint[], $3::bytea[])
             ON CONFLICT (level, idx) DO UPDATE SET data = excluded.data
             WHERE octet_length(excluded.data) >= octet_length(log_tiles.data)",
        )
        .bind(&tiles.levels)
        .bind(&tiles.indices)
        .bind(&tiles.data)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO log_state (id, size, tree) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET size = excluded.size, tree = excluded.tree",
    )
    .bind(size)
    .bind(state.tree.as_slice())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Tiles as the columns of one multi-row upsert, at most one per (level, index): an upsert
/// cannot touch one row twice, so of several versions of a tile the longest is kept (the last
/// of equal ones), which is what upserting them one by one would leave.
struct Tiles {
    levels: Vec<i16>,
    indices: Vec<i64>,
    data: Vec<Vec<u8>>,
}

impl Tiles {
    fn of(tiles: Vec<LogTile>) -> Result<Self> {
        let mut latest: BTreeMap<(i16, i64), Vec<u8>> = BTreeMap::new();
        for tile in tiles {
            let index = i64::try_from(tile.index)
                .map_err(|_| StoreError::Constraint(Constraint::InvalidValue))?;
            let key = (i16::from(tile.level), index);
            match latest.get(&key) {
                Some(kept) if kept.len() > tile.data.len() => {}
                _ => {
                    latest.insert(key, tile.data);
                }
            }
        }
        let mut out = Tiles {
            levels: Vec::with_capacity(latest.len()),
            indices: Vec::with_capacity(latest.len()),
            data: Vec::with_capacity(latest.len()),
        };
        for ((level, index), data) in latest {
            out.levels.push(level);
            out.indices.push(index);
            out.data.push(data);
        }
        Ok(out)
    }
}

pub(super) async fn log_tile(pool: &PgPool, level: u8, index: u64) -> Result<Option<Vec<u8>>> {
    let Ok(index) = i64::try_from(index) else {
        return Ok(None);
    };
    Ok(
        sqlx::query_scalar("SELECT data FROM log_tiles WHERE level = $1 AND idx = $2")
            .bind(i16::from(level))
            .bind(index)
            .fetch_optional(pool)
            .await?,
    )
}

pub(super) async fn checkpoint_at(pool: &PgPool, size: u64) -> Result<Option<String>> {
    let Ok(size) = i64::try_from(size) else {
        return Ok(None);
    };
    Ok(
        sqlx::query_scalar("SELECT note FROM log_checkpoints WHERE size = $1")
            .bind(size)
            .fetch_optional(pool)
            .await?,
    )
}

fn epoch(lease: &SequencerLease) -> Result<i64> {
    Ok(i64::try_from(lease.epoch)
        .map_err(|_| StoreError::Fenced(format!("epoch {} was never granted", lease.epoch)))?)
}

/// Locks the lease row until the transaction ends and fails with `Fenced` unless `lease` is
/// the live lease, by the database's clock.
async fn check_lease(conn: &mut PgConnection, lease: &SequencerLease) -> Result<()> {
    let current: Option<(String, i64, bool)> = sqlx::query_as(
        "SELECT holder, epoch, expires_at > clock_timestamp() FROM log_lease WHERE id = 1
         FOR UPDATE",
    )
    .fetch_optional(conn)
    .await?;
    let current = current
        .map(|(holder, epoch, live)| {
            Ok::<_, StoreError>(LeaseRow {
                holder,
                epoch: rows::count(epoch)?,
                live,
            })
        })
        .transpose()?;
    Ok(touchmark_store::log::check_lease(lease, current)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tile(level: u8, index: u64, len: usize, byte: u8) -> LogTile {
        LogTile {
            level,
            index,
            data: vec![byte; len],
        }
    }

    #[test]
    fn repeated_tiles_keep_their_longest_version() {
        let tiles = Tiles::of(vec![
            tile(0, 1, 64, 1),
            tile(0, 0, 96, 2),
            tile(0, 1, 32, 3),
            tile(1, 0, 32, 4),
            tile(0, 0, 96, 5),
        ])
        .unwrap();
        assert_eq!(tiles.levels, vec![0, 0, 1]);
        assert_eq!(tiles.indices, vec![0, 1, 0]);
        assert_eq!(
            tiles.data,
            vec![vec![5; 96], vec![1; 64], vec![4; 32]],
            "the longest, and the last of equals"
        );
    }
}
