//! The single writer thread with group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. All writes go to one
//! thread, which takes every job waiting in its queue, runs each in its own savepoint inside one
//! transaction, commits once, and only then answers each caller. While one commit's fsync runs,
//! the next batch gathers by itself, so there is no timer to tune: one request commits alone, and
//! thirty-two concurrent ones share a commit. A job that fails rolls back to its savepoint and
//! leaves the others untouched. Serialising writes here also makes checks 6 to 8 race-free.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use touchmark_core::event::{Event, Logged};

use touchmark_store::StoreError;

use crate::error::Error;

/// Most jobs committed together. Bounds a batch's latency and its transaction's size.
const MAX_BATCH: usize = 256;

/// What a job sees: the connection inside the open transaction, and the log's next index.
pub(crate) struct WriteCtx<'a> {
    pub(crate) conn: &'a Connection,
    next_index: u64,
}

impl WriteCtx<'_> {
    /// Appends an event to the log inside the current transaction, at the next index; returns
    /// that index and where the event was logged.
    pub(crate) fn append(&mut self, event: &Event) -> Result<(u64, Logged), Error> {
        let leaf = touchmark_store::codec::leaf(event)?;
        let index = self.next_index;
        self.conn
            .prepare_cached("INSERT INTO events (idx, kind, order_id, bytes, leaf_hash) VALUES (?1, ?2, ?3, ?4, ?5)")?
            .execute(rusqlite::params![
                index as i64,
                leaf.kind,
                leaf.order.as_ref().map(|o| o.as_str()),
                leaf.bytes,
                leaf.hash.as_bytes().as_slice()
            ])?;
        self.next_index += 1;
        Ok((index, leaf.logged(Some(index))))
    }
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(Result<&mut WriteCtx<'_>, StoreError>) -> (bool, Completion) + Send>;

/// The handle through which async code submits writes.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection) -> Result<Self, Error> {
        let next_index: i64 =
            conn.query_row("SELECT coalesce(max(idx) + 1, 0) FROM events", [], |r| {
                r.get(0)
            })?;
        let (jobs, rx) = mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name("touchmark-sqlite-writer".into())
            .spawn(move || run(conn, rx, next_index as u64))
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `f` inside a write transaction and returns its result once the transaction is
    /// durably committed. If `f` fails, its changes are rolled back and nothing else is.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let result = ctx.and_then(|ctx| f(ctx).map_err(StoreError::from));
            let ok = result.is_ok();
            let done: Completion = Box::new(move |commit| {
                // The caller may have gone away (its request was cancelled): nothing to tell.
                let _ = tx.send(commit.and(result));
            });
            (ok, done)
        });
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>, mut next_index: u64) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain(&mut rx, &mut batch);
        let (jobs, started) = (batch.len(), std::time::Instant::now());
        next_index = commit_batch(&conn, &mut batch, next_index);
        tracing::debug!(
            jobs,
            micros = started.elapsed().as_micros() as u64,
            "batch committed"
        );
    }
}

/// Takes every job already waiting, up to the batch limit.
fn drain(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Runs and commits one batch; returns the log's next index afterwards.
fn commit_batch(conn: &Connection, batch: &mut Vec<Job>, next_index: u64) -> u64 {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = Error::from(e).0;
        for job in batch.drain(..) {
            fail_without_running(job, err.clone());
        }
        return next_index;
    }
    let mut ctx = WriteCtx { conn, next_index };
    let mut completions = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        let before = ctx.next_index;
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            fail_without_running(job, Error::from(e).0);
            continue;
        }
        let (ok, done) = job(Ok(&mut ctx));
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if !ok {
            ctx.next_index = before;
        }
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "savepoint could not be closed; the batch is abandoned");
            completions.push(done);
            abandon(conn, completions, Error::from(e).0);
            return next_index;
        }
        completions.push(done);
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for done in completions {
                done(Ok(()));
            }
            ctx.next_index
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed; the batch is rolled back");
            abandon(conn, completions, Error::from(e).0);
            next_index
        }
    }
}

fn abandon(conn: &Connection, completions: Vec<Completion>, err: StoreError) {
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::error!(error = %e, "rollback failed");
    }
    for done in completions {
        done(Err(err.clone()));
    }
}

fn fail_without_running(job: Job, err: StoreError) {
    tracing::error!(error = %err, "write job not run");
    let (_, done) = job(Err(err.clone()));
    done(Err(err));
}
