//! The closed-loop load generator: workers pull the next unit from a shared index, send it, and
//! time each answer. The same driver runs Touchmark and cfssl, so both see the same load.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cpu::process_cpu;
use crate::error::Error;
use crate::units::Unit;

/// How many failure messages a sample keeps to show; the count is always exact.
const KEPT_FAILURES: usize = 5;

/// What one round measured.
#[derive(Debug)]
pub(crate) struct Sample {
    /// Units sent.
    pub units: usize,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Every successful request's latency, sorted.
    pub latencies: Vec<Duration>,
    /// Requests that did not end as expected.
    pub failed: usize,
    /// The first few failures, for the error message.
    pub failures: Vec<String>,
    /// CPU time this process used during the round (server and load generator together), where
    /// the OS reports it.
    pub cpu: Option<Duration>,
    /// CPU time a server in another process used during the round, when it is measured.
    pub server_cpu: Option<Duration>,
}

impl Sample {
    /// Requests that succeeded.
    pub fn succeeded(&self) -> usize {
        self.units - self.failed
    }

    /// Successful units per second over the whole round.
    pub fn units_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.succeeded() as f64 / secs
        } else {
            0.0
        }
    }

    /// The `p`-quantile latency (nearest rank), or zero for an empty sample.
    pub fn quantile(&self, p: f64) -> Duration {
        quantile(&self.latencies, p)
    }

    /// Fails unless every request succeeded: a benchmark that measured errors is worthless.
    ///
    /// # Errors
    /// [`Error::Void`], naming how many failed and the first failures.
    pub fn check(&self, what: &str) -> Result<(), Error> {
        if self.failed == 0 {
            return Ok(());
        }
        Err(Error::Void(format!(
            "{what}: {} of {} requests failed; the figures would be meaningless. First failures:\n  {}",
            self.failed,
            self.units,
            self.failures.join("\n  ")
        )))
    }
}

/// The `p`-quantile (nearest rank) of `sorted`, or zero when it is empty.
pub(crate) fn quantile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends every unit of `units` once, with one worker per client, and times each request.
///
/// `call(client, units, i)` sends unit `i` and says whether the answer was the expected one.
///
/// # Errors
/// When a worker task dies (a bug, not a failed request: those are counted in the sample).
pub(crate) async fn drive<C, F, Fut>(
    clients: &[C],
    units: Arc<Vec<Unit>>,
    call: F,
) -> Result<Sample, Error>
where
    C: Clone + Send + 'static,
    F: Fn(C, Arc<Vec<Unit>>, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let total = units.len();
    let cpu_before = process_cpu();
    let start = Instant::now();
    let mut workers = Vec::with_capacity(clients.len());
    for client in clients {
        let (client, units, next, call) = (
            client.clone(),
            Arc::clone(&units),
            Arc::clone(&next),
            call.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total / 2 + 1);
            let mut failures = Vec::new();
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let sent = Instant::now();
                match call(client.clone(), Arc::clone(&units), i).await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(e) => {
                        failed += 1;
                        if failures.len() < KEPT_FAILURES {
                            failures.push(e);
                        }
                    }
                }
            }
            (latencies, failed, failures)
        }));
    }
    let mut sample = Sample {
        units: total,
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(total),
        failed: 0,
        failures: Vec::new(),
        cpu: None,
        server_cpu: None,
    };
    for worker in workers {
        let (latencies, failed, failures) =
            worker.await.map_err(|_| Error::Died("a load worker"))?;
        sample.latencies.extend(latencies);
        sample.failed += failed;
        sample.failures.extend(
            failures
                .into_iter()
                .take(KEPT_FAILURES - sample.failures.len().min(KEPT_FAILURES)),
        );
    }
    sample.elapsed = start.elapsed();
    sample.cpu = cpu_before
        .zip(process_cpu())
        .map(|(before, after)| after.saturating_sub(before));
    sample.latencies.sort_unstable();
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: &[u64]) -> Sample {
        Sample {
            units: ms.len(),
            elapsed: Duration::from_secs(1),
            latencies: ms.iter().map(|&m| Duration::from_millis(m)).collect(),
            failed: 0,
            failures: Vec::new(),
            cpu: None,
            server_cpu: None,
        }
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let s = sample(&(1..=100).collect::<Vec<_>>());
        assert_eq!(s.quantile(0.5), Duration::from_millis(50));
        assert_eq!(s.quantile(0.99), Duration::from_millis(99));
        assert_eq!(s.quantile(1.0), Duration::from_millis(100));
        assert_eq!(sample(&[7]).quantile(0.99), Duration::from_millis(7));
        assert_eq!(sample(&[]).quantile(0.5), Duration::ZERO);
    }
}
