//! The CVSS v3.1 base score of a vector (FIRST, CVSS v3.1 specification, §7.1 and Appendix A),
//! as a CSAF advisory carries it beside the vector (`csaf`). Only the base metrics count; the
//! temporal and environmental metrics a vector may carry are not scored.

use crate::vuln::CvssVector;

/// A CVSS v3 severity rating (specification §5, Table 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// 0.0.
    None,
    /// 0.1 to 3.9.
    Low,
    /// 4.0 to 6.9.
    Medium,
    /// 7.0 to 8.9.
    High,
    /// 9.0 to 10.0.
    Critical,
}

impl Severity {
    /// The rating of a score in tenths (0 to 100).
    pub fn of_tenths(tenths: u8) -> Self {
        match tenths {
            0 => Self::None,
            1..=39 => Self::Low,
            40..=69 => Self::Medium,
            70..=89 => Self::High,
            _ => Self::Critical,
        }
    }

    /// The name as CSAF's `cvss_v3` object spells it (`baseSeverity`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }
}

/// A v3.1 base score: tenths (0 to 100), so that it compares and prints exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseScore {
    /// The score times ten.
    pub tenths: u8,
}

impl BaseScore {
    /// The score as a number, one decimal.
    pub fn value(self) -> f64 {
        f64::from(self.tenths) / 10.0
    }

    /// Its severity rating.
    pub fn severity(self) -> Severity {
        Severity::of_tenths(self.tenths)
    }
}

/// Roundup, as Appendix A defines it to avoid floating-point surprises: the smallest number,
/// to one decimal, equal to or higher than its input; returned in tenths.
fn roundup_tenths(input: f64) -> u8 {
    // The inputs are in 0..=10.8 (the formulas cap them at 10 before rounding), so the
    // conversions below never truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let int_input = (input * 100_000.0).round() as u64;
    let tenths = if int_input.is_multiple_of(10_000) {
        int_input / 10_000
    } else {
        int_input / 10_000 + 1
    };
    u8::try_from(tenths.min(100)).unwrap_or(100)
}

/// The base score of `vector` if it is a v3.1 vector; `None` for v4.0, whose score CSAF 2.0
/// has no object for.
pub fn base_score_v31(vector: &CvssVector) -> Option<BaseScore> {
    let rest = vector.as_str().strip_prefix("CVSS:3.1/")?;
    let metric = |name: &str| {
        rest.split('/')
            .filter_map(|m| m.split_once(':'))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    };
    // Every base metric is present with an allowed value: `CvssVector::parse` checked it.
    let changed = metric("S")? == "C";
    let av = match metric("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        _ => 0.2,
    };
    let ac = if metric("AC")? == "L" { 0.77 } else { 0.44 };
    let pr = match (metric("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        (_, false) => 0.27,
        (_, true) => 0.5,
    };
    let ui = if metric("UI")? == "N" { 0.85 } else { 0.62 };
    let cia = |name: &str| {
        metric(name).map(|v| match v {
            "H" => 0.56,
            "L" => 0.22,
            _ => 0.0,
        })
    };
    let iss = 1.0 - (1.0 - cia("C")?) * (1.0 - cia("I")?) * (1.0 - cia("A")?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02_f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    let tenths = if impact <= 0.0 {
        0
    } else if changed {
        roundup_tenths((1.08 * (impact + exploitability)).min(10.0))
    } else {
        roundup_tenths((impact + exploitability).min(10.0))
    };
    Some(BaseScore { tenths })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn score(v: &str) -> Option<u8> {
        base_score_v31(&CvssVector::parse("cvss", v).unwrap()).map(|s| s.tenths)
    }

    /// Scores FIRST's calculator gives (and the `cvss` package, which the server tests use as
    /// an oracle over many vectors).
    #[test]
    fn base_scores_of_known_vectors() {
        let cases = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 98),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 100),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 61),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 55),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 16),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0),
            ("CVSS:3.1/AV:A/AC:H/PR:L/UI:N/S:C/C:L/I:H/A:L", 71),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O", 81),
        ];
        for (v, tenths) in cases {
            assert_eq!(score(v), Some(tenths), "{v}");
        }
        assert_eq!(
            score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
            None
        );
    }

    #[test]
    fn roundup_and_severity_follow_appendix_a_and_table_14() {
        assert_eq!(roundup_tenths(4.02), 41);
        assert_eq!(roundup_tenths(4.0), 40);
        assert_eq!(roundup_tenths(4.000_000_1), 40);
        assert_eq!(roundup_tenths(10.0), 100);
        assert_eq!(Severity::of_tenths(0), Severity::None);
        assert_eq!(Severity::of_tenths(39), Severity::Low);
        assert_eq!(Severity::of_tenths(40), Severity::Medium);
        assert_eq!(Severity::of_tenths(89), Severity::High);
        assert_eq!(Severity::of_tenths(90), Severity::Critical);
    }
}
