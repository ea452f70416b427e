//! Group commit for issuances: one statement, one commit, for every issuance that is ready at
//! the same moment in this replica.
//!
//! Each issuance moves its order's count, and the order's row stays locked from that update
//! until the commit has flushed. Committed one by one, issuances of one order therefore run one
//! flush at a time, whatever the concurrency. Here a single task takes every issuance that has
//! passed its checks and is waiting, and records them all with one statement over arrays
//! (`issue::RECORD_SQL`), which commits once: the row is locked once and flushed once for the
//! whole batch, and never across a round trip to this process. While a batch commits, the next
//! one gathers by itself, so a lone request is never held back by a timer.
//!
//! Nothing about the rules changes: the statement counts each order's issuances only if they
//! all fit its quota, locks orders in id order (so two replicas' batches never wait for each
//! other in a cycle), and inserts the events after those locks. An issuance it did not count
//! goes back to its caller, which decides again under locks. When the statement fails, nothing
//! of the batch stays: after a race on a serial or key each issuance runs again on its own;
//! after anything else (a lock held past the timeout, a lost connection) each answers with
//! that error, which a station may send again.

use std::sync::Arc;

use sqlx::postgres::PgPool;
use tokio::sync::{mpsc, oneshot};

use touchmark_store::StoreError;

use crate::error::{is_retryable, store_error};
use crate::issue::{Prepared, record};

/// Most issuances in one statement: bounds a batch's latency and how long it holds the rows.
const MAX_BATCH: usize = 64;

/// What became of one issuance in a batch.
#[derive(Debug)]
pub(super) enum Counted {
    /// Counted and recorded, and committed.
    Yes,
    /// The count did not move (no quota left, order not open, station not active): nothing
    /// was written; the caller decides again under locks.
    No,
    /// The batch lost a race (on a serial or key) and did not commit; nothing of it stays. The
    /// caller runs the issuance on its own.
    Again(String),
    /// The batch did not commit for a reason that running again at once would meet too (a row
    /// locked past the lock timeout, a lost connection); nothing of it stays. The caller
    /// answers with it.
    Failed(StoreError),
}

struct Job {
    issuance: Arc<Prepared>,
    done: oneshot::Sender<Counted>,
}

/// The handle through which issuances join a batch.
#[derive(Debug, Clone)]
pub(super) struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    /// Starts the batching task on `pool`. It ends when every handle is dropped.
    pub(super) fn start(pool: PgPool) -> Self {
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(run(pool, rx));
        Self { jobs }
    }

    /// Counts and records `request` in the next batch, and answers once that batch committed
    /// or failed.
    pub(super) async fn count(&self, issuance: Arc<Prepared>) -> Counted {
        let (done, answer) = oneshot::channel();
        if self.jobs.send(Job { issuance, done }).await.is_err() {
            return Counted::Again("the batching task has stopped".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Counted::Again("the batching task has stopped".into()))
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let jobs = batch.len();
        match commit(&pool, &batch).await {
            Ok(counted) => {
                for (job, counted) in batch.drain(..).zip(counted) {
                    let _ = job
                        .done
                        .send(if counted { Counted::Yes } else { Counted::No });
                }
            }
            Err(e) if is_retryable(&e) => {
                tracing::debug!(error = %e, jobs, "issuance batch rolled back; each runs alone");
                for job in batch.drain(..) {
                    let _ = job.done.send(Counted::Again(e.to_string()));
                }
            }
            Err(e) => {
                let e = store_error(e);
                tracing::debug!(error = %e, jobs, "issuance batch failed");
                for job in batch.drain(..) {
                    let _ = job.done.send(Counted::Failed(e.clone()));
                }
            }
        }
    }
}

/// Records the batch in one statement; whether each issuance was counted.
async fn commit(pool: &PgPool, batch: &[Job]) -> Result<Vec<bool>, sqlx::Error> {
    let issuances: Vec<&Prepared> = batch.iter().map(|job| job.issuance.as_ref()).collect();
    record(pool, &issuances).await
}
