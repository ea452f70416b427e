//! Version ordering for the `vers` schemes Touchmark can compare (the package URL project's
//! version range specification): `semver`, `cargo` and `npm` by Semantic Versioning 2.0.0
//! precedence (pre-releases before their release, build metadata ignored), and `generic` by
//! dot-separated segments. [`crate::vuln::VersionRange::contains`] evaluates ranges with it.

use std::cmp::Ordering;

/// How a scheme orders its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Semantic Versioning 2.0.0 (`semver`, `cargo`, `npm`).
    SemVer,
    /// `generic`: segments split on `.`, numeric ones compared as numbers, others as text.
    Generic,
}

impl Scheme {
    /// The ordering of a `vers` scheme, or `None` for one not compared here.
    pub fn of(scheme: &str) -> Option<Self> {
        match scheme {
            "semver" | "cargo" | "npm" => Some(Self::SemVer),
            "generic" => Some(Self::Generic),
            _ => None,
        }
    }

    /// Orders `a` and `b`, or `None` when either is not a version of this scheme.
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            Self::SemVer => Some(SemVer::parse(a)?.cmp(&SemVer::parse(b)?)),
            Self::Generic => generic(a, b),
        }
    }
}

/// Orders two strings of ASCII digits (no leading zeros, or allowed) by their value, without
/// a width limit: a longer number (once leading zeros are gone) is larger.
fn numeric(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A Semantic Versioning 2.0.0 version, borrowed from its text.
#[derive(Debug)]
struct SemVer<'a> {
    core: [&'a str; 3],
    pre: Vec<&'a str>,
}

impl<'a> SemVer<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        // Build metadata does not take part in precedence (semver.org §10); it must still be
        // well formed.
        let (rest, build) = match text.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (text, None),
        };
        let ident_ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if let Some(build) = build
            && !build.split('.').all(ident_ok)
        {
            return None;
        }
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let mut parts = core.split('.');
        let mut three = [""; 3];
        for slot in &mut three {
            let part = parts.next()?;
            // Numeric identifiers have no leading zeros (semver.org §2).
            if !is_number(part) || (part.len() > 1 && part.starts_with('0')) {
                return None;
            }
            *slot = part;
        }
        if parts.next().is_some() {
            return None;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => {
                let ids: Vec<&str> = pre.split('.').collect();
                let ok = ids.iter().all(|id| {
                    ident_ok(id) && !(is_number(id) && id.len() > 1 && id.starts_with('0'))
                });
                if !ok {
                    return None;
                }
                ids
            }
        };
        Some(Self { core: three, pre })
    }
}

impl Ord for SemVer<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.core.iter().zip(&other.core) {
            match numeric(a, b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        // semver.org §11: a pre-release has lower precedence than its release; identifiers
        // compare numerically when both are numbers, numbers before text, and a longer list
        // after a shorter one it extends.
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        for (a, b) in self.pre.iter().zip(&other.pre) {
            let o = match (is_number(a), is_number(b)) {
                (true, true) => numeric(a, b),
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => a.cmp(b),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        self.pre.len().cmp(&other.pre.len())
    }
}

impl PartialOrd for SemVer<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SemVer<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SemVer<'_> {}

/// `generic`: segments split on `.`; two numeric segments compare as numbers, a number comes
/// before text, text compares byte by byte; a missing segment counts as `0`. So `1.0` equals
/// `1.0.0` and comes before `1.0.1`, and `1.0.0` comes before `1.0.rc1`. An empty version or
/// an empty segment is not a version.
fn generic(a: &str, b: &str) -> Option<Ordering> {
    let ok = |s: &str| !s.is_empty() && s.split('.').all(|p| !p.is_empty());
    if !ok(a) || !ok(b) {
        return None;
    }
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        let o = match (left.next(), right.next()) {
            (None, None) => return Some(Ordering::Equal),
            (Some(x), None) => segment(x, "0"),
            (None, Some(y)) => segment("0", y),
            (Some(x), Some(y)) => segment(x, y),
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
}

fn segment(a: &str, b: &str) -> Ordering {
    match (is_number(a), is_number(b)) {
        (true, true) => numeric(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_precedence_follows_semver_org_section_11() {
        // The example chain of semver.org §11, each before the next.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
            "10.0.0",
            "99999999999999999999999.0.0",
        ];
        for pair in chain.windows(2) {
            assert_eq!(
                Scheme::SemVer.compare(pair[0], pair[1]),
                Some(Ordering::Less),
                "{} < {}",
                pair[0],
                pair[1]
            );
            assert_eq!(
                Scheme::SemVer.compare(pair[1], pair[0]),
                Some(Ordering::Greater)
            );
        }
        assert_eq!(
            Scheme::SemVer.compare("1.0.0+build.1", "1.0.0+other"),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn what_is_not_semver_is_not_compared() {
        for bad in [
            "1",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.0.0-01",
            "1.0.0-",
            "1.0.0+",
            "v1.0.0",
            "1.0.0-a..b",
            "",
            "1.0.x",
        ] {
            assert_eq!(Scheme::SemVer.compare(bad, "1.0.0"), None, "{bad}");
            assert_eq!(Scheme::SemVer.compare("1.0.0", bad), None, "{bad}");
        }
    }

    #[test]
    fn generic_segments() {
        let cases = [
            ("1.0", "1.0.0", Ordering::Equal),
            ("1.0", "1.0.1", Ordering::Less),
            ("1.10", "1.9", Ordering::Greater),
            ("1.0.0", "1.0.rc1", Ordering::Less),
            ("2.a", "2.b", Ordering::Less),
            ("007", "7", Ordering::Equal),
        ];
        for (a, b, o) in cases {
            assert_eq!(Scheme::Generic.compare(a, b), Some(o), "{a} vs {b}");
        }
        assert_eq!(Scheme::Generic.compare("1..0", "1"), None);
        assert_eq!(Scheme::Generic.compare("", "1"), None);
    }

    #[test]
    fn schemes_known_and_unknown() {
        assert_eq!(Scheme::of("cargo"), Some(Scheme::SemVer));
        assert_eq!(Scheme::of("npm"), Some(Scheme::SemVer));
        assert_eq!(Scheme::of("generic"), Some(Scheme::Generic));
        assert_eq!(Scheme::of("pypi"), None);
        assert_eq!(Scheme::of("deb"), None);
    }
}
