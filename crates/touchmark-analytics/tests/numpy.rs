//! The statistics against numpy, on a generated data set with known answers.

// Test code: a failed check is a panic, as in any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use touchmark_analytics::stats::{self, BINS};

/// 10,000 values from a fixed linear congruential generator, summed in fours (roughly normal),
/// scaled to a mean near 12 and a spread near 0.5, and a few exact repeats of the extremes.
fn data() -> Vec<f64> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut values: Vec<f64> = (0..10_000)
        .map(|_| 12.0 + ((next() + next() + next() + next()) - 2.0) * 0.9)
        .collect();
    let (min, max) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    values.extend([min, max, max]);
    values
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
#[cfg_attr(not(tm_numpy), ignore = "needs numpy: set TOUCHMARK_TEST_NUMPY_PYTHON")]
fn statistics_match_numpy() {
    let values = data();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.txt");
    let text: Vec<String> = values.iter().map(|v| format!("{v:e}")).collect();
    std::fs::write(&file, text.join("\n")).unwrap();
    let script = r#"
import json, sys
import numpy as np
x = np.loadtxt(sys.argv[1])
low, high = 10.0, 14.0
mean = float(np.mean(x)); sd = float(np.std(x, ddof=1))
within = float(np.mean(np.abs(np.diff(x)))) / 1.128
counts, edges = np.histogram(x, bins=10)
print(json.dumps({
    "count": int(x.size), "mean": mean, "stddev": sd,
    "min": float(np.min(x)), "max": float(np.max(x)),
    "sigma_within": within,
    "cp": (high - low) / (6 * within),
    "cpk": min(high - mean, mean - low) / (3 * within),
    "pp": (high - low) / (6 * sd),
    "ppk": min(high - mean, mean - low) / (3 * sd),
    "counts": [int(c) for c in counts], "edges": [float(e) for e in edges],
}))
"#;
    let python = touchmark_testenv::tool(&touchmark_testenv::NUMPY);
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| want[k].as_f64().unwrap();

    let got = stats::describe(&values).unwrap();
    assert_eq!(got.count, want["count"].as_u64().unwrap());
    assert!(close(got.mean, f("mean")), "{} vs {}", got.mean, f("mean"));
    let sd = got.stddev.unwrap();
    assert!(close(sd, f("stddev")), "{sd} vs {}", f("stddev"));
    assert_eq!((got.min, got.max), (f("min"), f("max")));
    // Cp and Cpk with the within sigma (moving range / d2), Pp and Ppk with the overall one.
    let c = stats::capability(&values, &got, Some(10.0), Some(14.0));
    for (name, value) in [
        ("sigma_within", c.sigma_within),
        ("cp", c.cp),
        ("cpk", c.cpk),
        ("pp", c.pp),
        ("ppk", c.ppk),
    ] {
        let value = value.unwrap();
        assert!(close(value, f(name)), "{name}: {value} vs {}", f(name));
    }
    // The extremes appended at the end make the last moving ranges large, yet the data are
    // independent draws: both sigmas estimate the same spread.
    let within = c.sigma_within.unwrap();
    assert!((within / sd - 1.0).abs() < 0.1, "{within} vs {sd}");
    // A known answer, independent of both: the spread is about 0.9 * sqrt(4/12) ≈ 0.52.
    assert!((0.45..0.6).contains(&sd), "{sd}");

    let h = stats::histogram(&values, BINS, got.min, got.max);
    let counts: Vec<u64> = want["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    assert_eq!(h.counts, counts);
    assert_eq!(h.counts.iter().sum::<u64>(), values.len() as u64);
    let edges: Vec<f64> = want["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_f64().unwrap())
        .collect();
    assert_eq!(h.edges.len(), edges.len());
    for (a, b) in h.edges.iter().zip(&edges) {
        assert!(close(*a, *b), "{a} vs {b}");
    }
}
