//! The units a report affects (`docs/vulnerabilities.md`, "Affected units"), answered in two
//! parts so that a million units cost no more than a page of them:
//!
//! - **the lots and their counts**: each order and release a link names (directly, or through
//!   an SBOM component of the release), and each order of a product a link names without a
//!   release, with how many of its units there are and how many are revoked. A store counts
//!   them in one query, from the index ranges, without reading a unit;
//! - **a page of serials**: the units after a cursor, by serial then order. Each lot's units
//!   come from an index in serial order (a *stream*); a store reads the first `limit + 1` of
//!   each stream from the cursor, and [`Affected::page`] merges them.

use std::collections::{BTreeMap, HashMap};

use super::{Link, LinkStatus};
use crate::field::FieldError;
use crate::firmware::ComponentRelease;
use crate::id::{FactoryId, OrderId, ProductId};
use crate::serial::Serial;

/// A lot of affected units: those of one order that run one release, or, for a link to a
/// product without a release, every unit of the order (then `release` and `version` are
/// `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedLot {
    /// The order the units were counted against.
    pub order: OrderId,
    /// Their product.
    pub product: ProductId,
    /// The factory that made them.
    pub factory: FactoryId,
    /// The release they run, when a link names it.
    pub release: Option<String>,
    /// That release's version.
    pub version: Option<String>,
}

/// A lot and how many units it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotCount {
    /// The lot.
    pub lot: AffectedLot,
    /// Its units.
    pub units: u64,
    /// Of them, those whose certificate is revoked (in the field, but sent no update).
    pub revoked: u64,
}

impl LotCount {
    /// A lot as a store reads it (order, product, factory, release, version, and its
    /// counts), checked.
    ///
    /// # Errors
    /// The field that does not parse, and why.
    pub fn parse(
        [order, product, factory]: [&str; 3],
        release: Option<String>,
        version: Option<String>,
        units: i64,
        revoked: i64,
    ) -> Result<Self, String> {
        let count = |what: &str, n: i64| u64::try_from(n).map_err(|_| format!("{what}: {n}"));
        Ok(Self {
            lot: AffectedLot {
                order: OrderId::parse(order).map_err(|e| format!("order: {e}"))?,
                product: ProductId::parse(product).map_err(|e| format!("product: {e}"))?,
                factory: FactoryId::parse(factory).map_err(|e| format!("factory: {e}"))?,
                release,
                version,
            },
            units: count("units", units)?,
            revoked: count("revoked", revoked)?,
        })
    }
}

/// The counts of an answer: all units, the revoked, and by order, factory and release version
/// (`*` for a product-wide link).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AffectedCounts {
    /// Every affected unit.
    pub total: u64,
    /// Of them, those whose certificate is revoked.
    pub revoked: u64,
    /// By order.
    pub by_order: BTreeMap<String, u64>,
    /// By factory.
    pub by_factory: BTreeMap<String, u64>,
    /// By release version; `*` for the units of a product-wide link.
    pub by_release: BTreeMap<String, u64>,
}

impl AffectedCounts {
    /// The lots' counts, folded by order, factory and release.
    pub fn of(lots: &[LotCount]) -> Self {
        let mut counts = Self::default();
        for LotCount {
            lot,
            units,
            revoked,
        } in lots
        {
            counts.total += units;
            counts.revoked += revoked;
            *counts.by_order.entry(lot.order.to_string()).or_default() += units;
            *counts
                .by_factory
                .entry(lot.factory.to_string())
                .or_default() += units;
            let version = lot.version.as_deref().unwrap_or("*");
            *counts.by_release.entry(version.to_owned()).or_default() += units;
        }
        counts
    }
}

/// Where a page of affected units starts: after this unit, by serial then order. Written
/// `SERIAL/ORDER` (a serial holds no `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedCursor {
    /// The serial of the last unit of the previous page.
    pub serial: Serial,
    /// Its order.
    pub order: OrderId,
}

/// What [`AffectedCursor::parse`] accepts, as a regular expression: a serial and an order id
/// (each as `crate::id::ID_PATTERN` says), with a `/` between.
pub const CURSOR_PATTERN: &str =
    "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

impl AffectedCursor {
    /// Reads a cursor as the API's `after` gives it.
    ///
    /// # Errors
    /// [`FieldError`] on `field` when it is not `SERIAL/ORDER`.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FieldError> {
        let (serial, order) = text.split_once('/').ok_or_else(|| {
            FieldError::new(
                field,
                "expected SERIAL/ORDER, as the previous page's `next` gives it",
            )
        })?;
        Ok(Self {
            serial: Serial::parse(serial).map_err(|e| FieldError::new(field, e.to_string()))?,
            order: OrderId::parse(order).map_err(|e| FieldError::new(field, e.to_string()))?,
        })
    }

    /// Whether the unit `serial` of order `order` comes after this cursor.
    fn precedes(&self, serial: &str, order: &str) -> bool {
        (self.serial.as_str(), self.order.as_str()) < (serial, order)
    }
}

impl std::fmt::Display for AffectedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.serial, self.order)
    }
}

/// Units in serial order that a store reads a page at a time: the units of one order that
/// run one release, or every issued unit of one product (for a product-wide link; each unit
/// names its order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AffectedStream {
    /// A lot named by its release.
    Lot {
        /// The release.
        release: String,
        /// The order.
        order: OrderId,
        /// The order's product.
        product: ProductId,
    },
    /// The units of a product a link names without a release.
    Product(ProductId),
}

/// A unit as a store reads it from a stream: its serial, its order, whether it is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamUnit {
    /// The serial, unchecked.
    pub serial: String,
    /// The order, unchecked.
    pub order: String,
    /// Whether its certificate is revoked.
    pub revoked: bool,
}

/// One affected unit of a page: its serial, its lot (an index into [`Affected::lots`]), and
/// whether it is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AffectedUnit {
    serial: Serial,
    lot: usize,
    revoked: bool,
}

/// The units a report affects: every lot with its counts, and one page of the units by
/// serial then order, with the cursor of the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    lots: Vec<LotCount>,
    units: Vec<AffectedUnit>,
    next: Option<AffectedCursor>,
}

impl Affected {
    /// The streams that hold the lots' units: one per lot a release names, one per product
    /// of the product-wide lots.
    pub fn streams(lots: &[LotCount]) -> Vec<AffectedStream> {
        let mut streams = Vec::new();
        for LotCount { lot, .. } in lots {
            let stream = match &lot.release {
                Some(release) => AffectedStream::Lot {
                    release: release.clone(),
                    order: lot.order.clone(),
                    product: lot.product.clone(),
                },
                None => AffectedStream::Product(lot.product.clone()),
            };
            if !streams.contains(&stream) {
                streams.push(stream);
            }
        }
        streams
    }

    /// The page of at most `limit` units after `after` (from the first without it), merged
    /// from what each stream of [`Affected::streams`] gave, in that order: its units from
    /// the cursor's serial on (inclusive), sorted by serial, at most `limit + 1` of them.
    /// A unit whose lot is not among `lots` (issued after they were counted) is left out, so
    /// that a page agrees with its counts.
    ///
    /// # Errors
    /// A serial that does not parse, and why.
    pub fn page(
        lots: Vec<LotCount>,
        read: Vec<Vec<StreamUnit>>,
        after: Option<&AffectedCursor>,
        limit: usize,
    ) -> Result<Self, String> {
        let streams = Self::streams(&lots);
        let index: HashMap<(&str, Option<&str>), usize> = lots
            .iter()
            .enumerate()
            .map(|(i, l)| ((l.lot.order.as_str(), l.lot.release.as_deref()), i))
            .collect();
        // A stream that gave all it was asked for may hold more after its last.
        let mut more = false;
        let mut merged: Vec<(&StreamUnit, usize)> = Vec::new();
        for (stream, units) in streams.iter().zip(&read) {
            more |= units.len() > limit;
            let release = match stream {
                AffectedStream::Lot { release, .. } => Some(release.as_str()),
                AffectedStream::Product(_) => None,
            };
            merged.extend(units.iter().filter_map(|u| {
                let lot = *index.get(&(u.order.as_str(), release))?;
                after
                    .is_none_or(|a| a.precedes(&u.serial, &u.order))
                    .then_some((u, lot))
            }));
        }
        merged.sort_unstable_by(|(a, _), (b, _)| {
            (a.serial.as_str(), a.order.as_str()).cmp(&(b.serial.as_str(), b.order.as_str()))
        });
        more |= merged.len() > limit;
        merged.truncate(limit);
        let units = merged
            .into_iter()
            .map(|(u, lot)| {
                Ok(AffectedUnit {
                    serial: Serial::parse(&u.serial).map_err(|e| format!("serial: {e}"))?,
                    lot,
                    revoked: u.revoked,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let next = match units.last() {
            Some(last) if more => lots.get(last.lot).map(|l| AffectedCursor {
                serial: last.serial.clone(),
                order: l.lot.order.clone(),
            }),
            _ => None,
        };
        Ok(Self { lots, units, next })
    }

    /// The lots and their counts.
    pub fn lots(&self) -> &[LotCount] {
        &self.lots
    }

    /// The counts of every affected unit, not of this page alone.
    pub fn counts(&self) -> AffectedCounts {
        AffectedCounts::of(&self.lots)
    }

    /// The page's units, by serial then order: serial, lot, revoked.
    pub fn units(&self) -> impl Iterator<Item = (&Serial, &AffectedLot, bool)> {
        self.units
            .iter()
            .filter_map(|u| self.lots.get(u.lot).map(|l| (&u.serial, &l.lot, u.revoked)))
    }

    /// How many units the page holds.
    pub fn len(&self) -> usize {
        self.units.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// Where the next page starts, when there may be one.
    pub fn next(&self) -> Option<&AffectedCursor> {
        self.next.as_ref()
    }
}

impl Link {
    /// Whether this link is an affected component link (an SBOM component, no release).
    pub fn is_component(&self) -> bool {
        self.status == LinkStatus::Affected && self.release.is_none() && self.purl.is_some()
    }

    /// Whether release component `c` (found by this link's package key) is the component
    /// this link names: a release of the link's product, whose component version is in the
    /// link's range, or, without a range, is the version of the link's package URL, or any
    /// version when that names none. A version the range cannot compare is not in it.
    pub fn names_component(&self, c: &ComponentRelease) -> bool {
        let Some(purl) = &self.purl else {
            return false;
        };
        if c.product != self.product {
            return false;
        }
        let version = c.component_version.clone().or_else(|| {
            super::PackageUrl::parse("purl", &c.purl)
                .ok()
                .and_then(|p| p.version())
        });
        match (&self.range, purl.version()) {
            (Some(range), _) => version.is_some_and(|v| range.contains(&v) == Some(true)),
            (None, Some(wanted)) => version.is_some_and(|v| v == wanted),
            (None, None) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn lot(order: &str, release: Option<&str>, units: u64, revoked: u64) -> LotCount {
        LotCount {
            lot: AffectedLot {
                order: OrderId::parse(order).unwrap(),
                product: ProductId::parse(if order == "PO-3" { "hub" } else { "sensor" }).unwrap(),
                factory: FactoryId::parse(if order == "PO-2" { "cm-2" } else { "cm" }).unwrap(),
                release: release.map(str::to_owned),
                version: release.map(|r| if r == "rel-a" { "1.0.0" } else { "1.1.0" }.into()),
            },
            units,
            revoked,
        }
    }

    fn unit(serial: &str, order: &str, revoked: bool) -> StreamUnit {
        StreamUnit {
            serial: serial.into(),
            order: order.into(),
            revoked,
        }
    }

    fn lots() -> Vec<LotCount> {
        vec![
            lot("PO-1", Some("rel-a"), 3, 1),
            lot("PO-2", Some("rel-a"), 1, 0),
            lot("PO-1", Some("rel-b"), 1, 0),
            lot("PO-3", None, 2, 0),
        ]
    }

    /// What each stream of [`lots`] holds, from `from` on, at most `n`.
    fn read(from: &str, n: usize) -> Vec<Vec<StreamUnit>> {
        let all = [
            vec![
                unit("SN-3", "PO-1", false),
                unit("SN-4", "PO-1", false),
                unit("SN-5", "PO-1", true),
            ],
            vec![unit("SN-2", "PO-2", false)],
            vec![unit("SN-1", "PO-1", false)],
            // A product-wide stream: PO-3's units, and one of an order issued after the
            // counts (PO-9), which no page lists.
            vec![
                unit("SN-3", "PO-3", false),
                unit("SN-35", "PO-9", false),
                unit("SN-6", "PO-3", false),
            ],
        ];
        all.into_iter()
            .map(|s| {
                s.into_iter()
                    .filter(|u| u.serial.as_str() >= from)
                    .take(n)
                    .collect()
            })
            .collect()
    }

    fn listed(a: &Affected) -> Vec<(String, String, Option<String>, bool)> {
        a.units()
            .map(|(s, l, r)| (s.to_string(), l.order.to_string(), l.version.clone(), r))
            .collect()
    }

    /// The streams' units merged by serial then order, counted per lot, and paged with a
    /// cursor that neither repeats nor skips a unit, a serial of two products included.
    #[test]
    fn affected_units_are_merged_paged_and_counted() {
        let streams = Affected::streams(&lots());
        assert_eq!(streams.len(), 4);
        let whole = Affected::page(lots(), read("", 101), None, 100).unwrap();
        let v = |s: &str| Some(s.to_owned());
        assert_eq!(
            listed(&whole),
            [
                ("SN-1".into(), "PO-1".into(), v("1.1.0"), false),
                ("SN-2".into(), "PO-2".into(), v("1.0.0"), false),
                ("SN-3".into(), "PO-1".into(), v("1.0.0"), false),
                ("SN-3".into(), "PO-3".into(), None, false),
                ("SN-4".into(), "PO-1".into(), v("1.0.0"), false),
                ("SN-5".into(), "PO-1".into(), v("1.0.0"), true),
                ("SN-6".into(), "PO-3".into(), None, false),
            ]
        );
        assert_eq!(whole.next(), None);
        let c = whole.counts();
        assert_eq!((c.total, c.revoked), (7, 1));
        let map = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(c.by_order, map(&[("PO-1", 4), ("PO-2", 1), ("PO-3", 2)]));
        assert_eq!(c.by_factory, map(&[("cm", 6), ("cm-2", 1)]));
        assert_eq!(c.by_release, map(&[("1.0.0", 4), ("1.1.0", 1), ("*", 2)]));

        // Pages of two, each read from its cursor's serial on as a store would.
        let mut after: Option<AffectedCursor> = None;
        let mut paged = Vec::new();
        for _ in 0..10 {
            let from = after
                .as_ref()
                .map_or(String::new(), |a| a.serial.to_string());
            let page = Affected::page(lots(), read(&from, 3), after.as_ref(), 2).unwrap();
            assert!(page.len() <= 2);
            assert_eq!(page.counts(), c, "every page carries the whole counts");
            paged.extend(listed(&page));
            match page.next() {
                Some(next) => after = Some(next.clone()),
                None => break,
            }
        }
        assert_eq!(paged, listed(&whole));
        assert_eq!(
            after.map(|a| a.to_string()).as_deref(),
            Some("SN-5/PO-1"),
            "the last full page's cursor"
        );
    }

    #[test]
    fn cursors_are_read_and_written_as_serial_slash_order() {
        let c = AffectedCursor::parse("after", "SN-3/PO-1").unwrap();
        assert_eq!(c.to_string(), "SN-3/PO-1");
        let pattern = regex::Regex::new(CURSOR_PATTERN).unwrap();
        let long = "S".repeat(65);
        for bad in [
            "SN-3",
            "/PO-1",
            "SN-3/",
            "SN 3/PO-1",
            "SN-3/PO 1",
            "SN-3/PO/1",
            &format!("{long}/PO-1"),
        ] {
            let e = AffectedCursor::parse("after", bad).unwrap_err();
            assert_eq!(e.field, "after", "{bad}");
            assert!(!pattern.is_match(bad), "{bad}");
        }
        for good in [
            "SN-3/PO-1",
            "a/b",
            "0.x_y-z/9",
            &format!("{}/PO-1", &long[1..]),
        ] {
            assert!(AffectedCursor::parse("after", good).is_ok(), "{good}");
            assert!(pattern.is_match(good), "{good}");
        }
        let bad = vec![vec![unit("not a serial!", "PO-1", false)]];
        let one = vec![lot("PO-1", Some("rel-a"), 1, 0)];
        assert!(Affected::page(one, bad, None, 10).is_err());
    }

    #[test]
    fn component_links_name_releases_by_product_and_version_range() {
        let link = |purl: &str, range: Option<&str>| Link {
            report: "vr-1".into(),
            product: ProductId::parse("sensor").unwrap(),
            release: None,
            version: None,
            purl: Some(super::super::PackageUrl::parse("purl", purl).unwrap()),
            range: range.map(|r| super::super::VersionRange::parse("range", r).unwrap()),
            status: LinkStatus::Affected,
            justification: None,
            linked_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let component = |product: &str, version: Option<&str>| ComponentRelease {
            release: "rel-a".into(),
            product: ProductId::parse(product).unwrap(),
            version: "1.0.0".into(),
            purl: format!("pkg:cargo/zlib@{}", version.unwrap_or("1.2.11")),
            component_version: version.map(str::to_owned),
        };
        let ranged = link("pkg:cargo/zlib", Some("vers:semver/>=1.2.0|<1.3.0"));
        assert!(ranged.is_component());
        assert!(ranged.names_component(&component("sensor", Some("1.2.11"))));
        assert!(!ranged.names_component(&component("sensor", Some("1.3.1"))));
        assert!(!ranged.names_component(&component("hub", Some("1.2.11"))));
        // No version apart: the one in the component's package URL.
        assert!(ranged.names_component(&component("sensor", None)));
        let exact = link("pkg:cargo/zlib@1.2.11", None);
        assert!(exact.names_component(&component("sensor", Some("1.2.11"))));
        assert!(!exact.names_component(&component("sensor", Some("1.2.12"))));
        assert!(link("pkg:cargo/zlib", None).names_component(&component("sensor", Some("9"))));
        let mut fixed = ranged.clone();
        fixed.status = LinkStatus::Fixed;
        assert!(!fixed.is_component());
    }
}
