//! Per-token rate limits for the field backends' routes (issue 17): a token bucket per API
//! token, filled at a configured rate up to a burst, on the server's clock. A request that
//! finds its bucket empty is answered `429 rate_limited` with the wait in `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// How many requests a token may make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed at once, after a pause.
    pub burst: u32,
}

impl Default for RateLimit {
    /// 2,000 requests a second per field backend, 4,000 at once: room for a fleet's check-ins
    /// through one backend, and a bound on what one leaked token can cost.
    fn default() -> Self {
        Self {
            per_second: 2_000.0,
            burst: 4_000,
        }
    }
}

/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;

/// The buckets, one per token id.
#[derive(Debug)]
pub struct TokenRates {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, OffsetDateTime)>>,
}

impl TokenRates {
    /// Buckets under `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `token`'s bucket at `now`, or says how long to wait for one.
    ///
    /// # Errors
    /// The wait, when the bucket is empty.
    pub fn take(&self, token: &str, now: OffsetDateTime) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst.max(1));
        let rate = if self.limit.per_second.is_finite() && self.limit.per_second > 0.0 {
            self.limit.per_second
        } else {
            f64::MIN_POSITIVE
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(token) {
            // Full buckets are the same as no bucket: drop them.
            let full_after = burst / rate;
            buckets.retain(|_, (level, at)| {
                *level < burst && (now - *at).as_seconds_f64() < full_after
            });
        }
        let (level, at) = buckets.entry(token.to_owned()).or_insert((burst, now));
        let elapsed = (now - *at).as_seconds_f64().max(0.0);
        *level = (*level + elapsed * rate).min(burst);
        *at = now.max(*at);
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - *level) / rate;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(3600)))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_token() {
        let rates = TokenRates::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for _ in 0..3 {
            assert_eq!(rates.take("a", t0), Ok(()));
        }
        let wait = rates.take("a", t0).expect_err("the burst is spent");
        assert_eq!(wait, Duration::from_millis(500));
        // Another token has a bucket of its own.
        assert_eq!(rates.take("b", t0), Ok(()));
        let later = t0 + time::Duration::milliseconds(500);
        assert_eq!(rates.take("a", later), Ok(()));
        assert!(rates.take("a", later).is_err());
    }
}
