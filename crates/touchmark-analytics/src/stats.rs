//! The statistics of a measurement: mean, sample standard deviation, extremes, a histogram
//! binned as numpy's `histogram` bins, and the process capability indices Cp and Cpk.

use touchmark_core::oversight::Histogram;

/// Bins of a measurement's histogram.
pub const BINS: usize = 10;

/// What [`describe`] computes from a set of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Values.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (n − 1); `None` under two values.
    pub stddev: Option<f64>,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

/// Count, mean, sample standard deviation (Welford's update, stable for large sets), min and
/// max; `None` for no values.
pub fn describe(values: &[f64]) -> Option<Summary> {
    let (&first, _) = values.split_first()?;
    let (mut mean, mut m2, mut min, mut max) = (0.0f64, 0.0f64, first, first);
    for (i, &x) in values.iter().enumerate() {
        let delta = x - mean;
        mean += delta / (i + 1) as f64;
        m2 += delta * (x - mean);
        min = min.min(x);
        max = max.max(x);
    }
    let n = values.len();
    Some(Summary {
        count: n as u64,
        mean,
        stddev: (n > 1).then(|| (m2 / (n - 1) as f64).sqrt()),
        min,
        max,
    })
}

/// `bins` equal bins from `min` to `max`, the last closed, as `numpy.histogram(values, bins)`
/// makes them (one value, or all equal: the range `[v − 0.5, v + 0.5]`).
pub fn histogram(values: &[f64], bins: usize, min: f64, max: f64) -> Histogram {
    let (lo, hi) = if min == max {
        (min - 0.5, max + 0.5)
    } else {
        (min, max)
    };
    let step = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..bins).map(|i| lo + i as f64 * step).collect();
    edges.push(hi);
    let mut counts = vec![0u64; bins];
    let norm = bins as f64 / (hi - lo);
    for &x in values {
        if !(lo..=hi).contains(&x) {
            continue;
        }
        // numpy's computation, then its correction of rounding at the edges.
        let mut i = (((x - lo) * norm) as usize).min(bins - 1);
        if x < edges[i] {
            i = i.saturating_sub(1);
        } else if i != bins - 1 && x >= edges[i + 1] {
            i += 1;
        }
        counts[i] += 1;
    }
    Histogram { edges, counts }
}

/// Cp `(high − low) / 6σ`, with both limits and a spread.
pub fn cp(stddev: Option<f64>, low: Option<f64>, high: Option<f64>) -> Option<f64> {
    let sigma = stddev.filter(|s| *s > 0.0)?;
    Some((high? - low?) / (6.0 * sigma))
}

/// Cpk `min(high − mean, mean − low) / 3σ` over the limits there are, with a spread.
pub fn cpk(mean: f64, stddev: Option<f64>, low: Option<f64>, high: Option<f64>) -> Option<f64> {
    let sigma = stddev.filter(|s| *s > 0.0)?;
    let upper = high.map(|h| (h - mean) / (3.0 * sigma));
    let lower = low.map(|l| (mean - l) / (3.0 * sigma));
    match (upper, lower) {
        (Some(u), Some(l)) => Some(u.min(l)),
        (one, other) => one.or(other),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn describes_a_small_set() {
        let s = describe(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!((s.count, s.mean, s.min, s.max), (8, 5.0, 2.0, 9.0));
        assert!((s.stddev.unwrap() - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(describe(&[]), None);
        assert_eq!(describe(&[3.0]).unwrap().stddev, None);
    }

    #[test]
    fn capability_needs_spread_and_limits() {
        // mean 12, sigma 0.5, limits 10..14: Cp = 4/3, Cpk = 2/1.5.
        assert!((cp(Some(0.5), Some(10.0), Some(14.0)).unwrap() - 4.0 / 3.0).abs() < 1e-12);
        assert!((cpk(12.5, Some(0.5), Some(10.0), Some(14.0)).unwrap() - 1.5 / 1.5).abs() < 1e-12);
        assert!((cpk(12.5, Some(0.5), None, Some(14.0)).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(cp(Some(0.5), None, Some(14.0)), None);
        assert_eq!(cp(Some(0.0), Some(10.0), Some(14.0)), None);
        assert_eq!(cpk(12.0, None, Some(10.0), Some(14.0)), None);
        assert_eq!(cpk(12.0, Some(1.0), None, None), None);
    }

    #[test]
    fn histogram_closes_the_last_bin() {
        let h = histogram(&[0.0, 1.0, 2.0, 10.0], 10, 0.0, 10.0);
        assert_eq!(h.counts, [1, 1, 1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(h.edges.len(), 11);
        let h = histogram(&[3.0, 3.0], 10, 3.0, 3.0);
        assert_eq!(h.counts.iter().sum::<u64>(), 2);
        assert_eq!((h.edges[0], h.edges[10]), (2.5, 3.5));
    }
}
