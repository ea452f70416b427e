//! The statistics of a measurement: mean, sample standard deviation, extremes, a histogram
//! binned as numpy's `histogram` bins, and the process capability and performance indices:
//! Cp and Cpk with the within-subgroup (short-term) sigma, Pp and Ppk with the overall sample
//! standard deviation.

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

/// d2 for subgroups of two: the within-subgroup sigma of individuals is the mean moving range
/// over d2.
pub const D2: f64 = 1.128;

/// The within-subgroup (short-term) sigma of individual values in the order they were taken:
/// the mean absolute difference of consecutive values over [`D2`]; `None` under two values.
pub fn within_sigma(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let ranges = values.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>();
    Some(ranges / (values.len() - 1) as f64 / D2)
}

/// `(high − low) / 6σ`, with both limits and a spread: Cp with the within sigma, Pp with the
/// overall one.
pub fn spread_index(sigma: Option<f64>, low: Option<f64>, high: Option<f64>) -> Option<f64> {
    let sigma = sigma.filter(|s| *s > 0.0)?;
    Some((high? - low?) / (6.0 * sigma))
}

/// `min(high − mean, mean − low) / 3σ` over the limits there are, with a spread: Cpk with the
/// within sigma, Ppk with the overall one.
pub fn centred_index(
    mean: f64,
    sigma: Option<f64>,
    low: Option<f64>,
    high: Option<f64>,
) -> Option<f64> {
    let sigma = sigma.filter(|s| *s > 0.0)?;
    let upper = high.map(|h| (h - mean) / (3.0 * sigma));
    let lower = low.map(|l| (mean - l) / (3.0 * sigma));
    match (upper, lower) {
        (Some(u), Some(l)) => Some(u.min(l)),
        (one, other) => one.or(other),
    }
}

/// A measurement's capability (within sigma) and performance (overall sigma) against its
/// limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capability {
    /// The within-subgroup sigma ([`within_sigma`]).
    pub sigma_within: Option<f64>,
    /// Cp, within sigma.
    pub cp: Option<f64>,
    /// Cpk, within sigma.
    pub cpk: Option<f64>,
    /// Pp, overall sigma.
    pub pp: Option<f64>,
    /// Ppk, overall sigma.
    pub ppk: Option<f64>,
}

/// The indices of `values` (in the order taken), described by `summary`, against `low` and
/// `high`.
pub fn capability(
    values: &[f64],
    summary: &Summary,
    low: Option<f64>,
    high: Option<f64>,
) -> Capability {
    let within = within_sigma(values);
    Capability {
        sigma_within: within,
        cp: spread_index(within, low, high),
        cpk: centred_index(summary.mean, within, low, high),
        pp: spread_index(summary.stddev, low, high),
        ppk: centred_index(summary.mean, summary.stddev, low, high),
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
    fn indices_need_spread_and_limits() {
        // sigma 0.5, limits 10..14: (14 - 10) / 3 = 4/3; mean 12.5: 1.5 / 1.5.
        let spread = spread_index(Some(0.5), Some(10.0), Some(14.0)).unwrap();
        assert!((spread - 4.0 / 3.0).abs() < 1e-12);
        let centred = centred_index(12.5, Some(0.5), Some(10.0), Some(14.0)).unwrap();
        assert!((centred - 1.0).abs() < 1e-12);
        let one_sided = centred_index(12.5, Some(0.5), None, Some(14.0)).unwrap();
        assert!((one_sided - 1.0).abs() < 1e-12);
        assert_eq!(spread_index(Some(0.5), None, Some(14.0)), None);
        assert_eq!(spread_index(Some(0.0), Some(10.0), Some(14.0)), None);
        assert_eq!(centred_index(12.0, None, Some(10.0), Some(14.0)), None);
        assert_eq!(centred_index(12.0, Some(1.0), None, None), None);
    }

    #[test]
    fn cpk_and_ppk_part_on_a_drift() {
        // A steady ramp 10.0, 10.1, ... 11.9: moving ranges of 0.1, so the within sigma is
        // 0.1 / 1.128, far below the overall spread: Cpk well above Ppk.
        let ramp: Vec<f64> = (0..20).map(|i| 10.0 + f64::from(i) * 0.1).collect();
        let summary = describe(&ramp).unwrap();
        let c = capability(&ramp, &summary, Some(8.0), Some(16.0));
        let within = 0.1 / D2;
        assert!((c.sigma_within.unwrap() - within).abs() < 1e-12);
        let mean = summary.mean;
        assert!((c.cpk.unwrap() - (mean - 8.0) / (3.0 * within)).abs() < 1e-9);
        assert!((c.cp.unwrap() - 8.0 / (6.0 * within)).abs() < 1e-9);
        let sd = summary.stddev.unwrap();
        assert!((c.ppk.unwrap() - (mean - 8.0) / (3.0 * sd)).abs() < 1e-9);
        assert!((c.pp.unwrap() - 8.0 / (6.0 * sd)).abs() < 1e-9);
        assert!(c.cpk.unwrap() > c.ppk.unwrap());
        assert_eq!(within_sigma(&[1.0]), None);
        // Constant values: no spread, no index.
        let flat = [3.0, 3.0, 3.0];
        let c = capability(&flat, &describe(&flat).unwrap(), Some(1.0), Some(5.0));
        assert_eq!((c.cp, c.cpk, c.pp, c.ppk), (None, None, None, None));
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
