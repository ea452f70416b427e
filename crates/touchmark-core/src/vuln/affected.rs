//! The units a report affects (`docs/vulnerabilities.md`, "Affected units"), answered in two
//! parts so that a million units cost no more than a page of them:
//!
//! - **the lots and their counts**: each order and release a link names (directly, or through
//!   an SBOM component of the release), and each order of a product a link names without a
//!   release, with how many of its units there are and how many are revoked. A store counts
//!   them in one query, from the index ranges, without reading a unit;
//! - **a page of serials**: the units after a cursor, by serial then order. Each lot's units
//!   come from an index in serial order (a *stream*); [`PageMerge`] merges them, asking a
//!   store for a share of the page from each stream first, and for more of a stream only
//!   when the page has taken all that was read of it.

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

/// The streams that hold the lots' units: one per lot a release names, one per product
/// of the product-wide lots.
fn streams(lots: &[LotCount]) -> Vec<AffectedStream> {
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

/// What a [`PageMerge`] needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeStep {
    /// The units of these streams (by index into the merge's streams), each from its serial
    /// (inclusive), by serial, at most `limit` per stream: [`PageMerge::fill`] takes them, in
    /// this order.
    Read {
        /// (stream index, the stream, the serial to read from).
        streams: Vec<(usize, AffectedStream, String)>,
        /// Units per stream.
        limit: usize,
    },
    /// The page is made: [`PageMerge::finish`].
    Done,
}

/// One page of affected units merged from the lots' streams, each already in serial order,
/// reading a stream again only when the page has taken every unit read of it: a page costs
/// about its own units, however many lots there are.
#[derive(Debug)]
pub struct PageMerge {
    lots: Vec<LotCount>,
    streams: Vec<AffectedStream>,
    /// What was read of each stream and not taken yet.
    buffers: Vec<std::collections::VecDeque<StreamUnit>>,
    /// Whether a stream may hold units after those read (its last read was full).
    open: Vec<bool>,
    /// The last unit read of each stream (or the cursor): a read starts from its serial, and
    /// what is not after it is read again.
    floor: Vec<Option<(String, String)>>,
    /// Units per stream of the next read of each.
    chunk: Vec<usize>,
    limit: usize,
    taken: Vec<AffectedUnit>,
}

impl PageMerge {
    /// A merge of the page of at most `limit` units after `after`, over `lots`' streams. The
    /// first read asks each stream for its share of the page, and a stream read again gets
    /// twice as many, up to `limit + 1`.
    pub fn new(lots: Vec<LotCount>, after: Option<&AffectedCursor>, limit: usize) -> Self {
        let streams = streams(&lots);
        let n = streams.len().max(1);
        let first =
            (limit.saturating_add(1).div_ceil(n) + 1).clamp(16, limit.saturating_add(1).max(16));
        let floor = after.map(|a| (a.serial.to_string(), a.order.to_string()));
        Self {
            buffers: vec![std::collections::VecDeque::new(); streams.len()],
            open: vec![true; streams.len()],
            floor: vec![floor; streams.len()],
            chunk: vec![first; streams.len()],
            lots,
            streams,
            limit,
            taken: Vec::new(),
        }
    }

    /// Takes units while it can: what it needs next.
    ///
    /// # Errors
    /// A serial that does not parse, and why.
    pub fn step(&mut self) -> Result<MergeStep, String> {
        let index: HashMap<(&str, Option<&str>), usize> = self
            .lots
            .iter()
            .enumerate()
            .map(|(i, l)| ((l.lot.order.as_str(), l.lot.release.as_deref()), i))
            .collect();
        while self.taken.len() < self.limit {
            // A stream that may hold more, and of which nothing read is left, must be read
            // before the smallest unit is known.
            let dry: Vec<usize> = (0..self.streams.len())
                .filter(|&i| self.open[i] && self.buffers[i].is_empty())
                .collect();
            if !dry.is_empty() {
                let limit = dry.iter().map(|&i| self.chunk[i]).max().unwrap_or(1);
                let streams = dry
                    .into_iter()
                    .map(|i| {
                        let from = self.floor[i]
                            .as_ref()
                            .map_or_else(String::new, |f| f.0.clone());
                        (i, self.streams[i].clone(), from)
                    })
                    .collect();
                return Ok(MergeStep::Read { streams, limit });
            }
            let Some(next) = (0..self.streams.len())
                .filter_map(|i| self.buffers[i].front().map(|u| (i, u)))
                .min_by(|(_, a), (_, b)| {
                    (a.serial.as_str(), a.order.as_str())
                        .cmp(&(b.serial.as_str(), b.order.as_str()))
                })
                .map(|(i, _)| i)
            else {
                break;
            };
            let Some(unit) = self.buffers[next].pop_front() else {
                break;
            };
            let release = match &self.streams[next] {
                AffectedStream::Lot { release, .. } => Some(release.as_str()),
                AffectedStream::Product(_) => None,
            };
            // A unit of a lot not counted (issued after the counts) is left out.
            if let Some(&lot) = index.get(&(unit.order.as_str(), release)) {
                self.taken.push(AffectedUnit {
                    serial: Serial::parse(&unit.serial).map_err(|e| format!("serial: {e}"))?,
                    lot,
                    revoked: unit.revoked,
                });
            }
        }
        Ok(MergeStep::Done)
    }

    /// Takes what a [`MergeStep::Read`] asked for: the units of each stream it named, in its
    /// order, from the serial it named on.
    pub fn fill(&mut self, asked: &MergeStep, read: Vec<Vec<StreamUnit>>) {
        let MergeStep::Read { streams, limit } = asked else {
            return;
        };
        for ((i, _, _), units) in streams.iter().zip(read) {
            let i = *i;
            self.open[i] = units.len() >= *limit;
            self.chunk[i] = limit
                .saturating_mul(2)
                .min(self.limit.saturating_add(1).max(16));
            let floor = self.floor[i].clone();
            let fresh = units.into_iter().filter(|u| {
                floor.as_ref().is_none_or(|(s, o)| {
                    (s.as_str(), o.as_str()) < (u.serial.as_str(), u.order.as_str())
                })
            });
            self.buffers[i].extend(fresh);
            if let Some(last) = self.buffers[i].back() {
                self.floor[i] = Some((last.serial.clone(), last.order.clone()));
            }
        }
    }

    /// The page, with the cursor of the next when units may remain.
    pub fn finish(self) -> Affected {
        let more = self.taken.len() >= self.limit
            && (self.open.iter().any(|o| *o) || self.buffers.iter().any(|b| !b.is_empty()));
        let next = match self.taken.last() {
            Some(last) if more => self.lots.get(last.lot).map(|l| AffectedCursor {
                serial: last.serial.clone(),
                order: l.lot.order.clone(),
            }),
            _ => None,
        };
        Affected {
            lots: self.lots,
            units: self.taken,
            next,
        }
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

    /// What each stream of [`lots`] holds.
    fn held() -> Vec<Vec<StreamUnit>> {
        vec![
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
        ]
    }

    /// The page of `limit` after `after`, read from `streams` as a store reads them; with the
    /// units read in all.
    fn page(
        streams: &[Vec<StreamUnit>],
        lots: Vec<LotCount>,
        after: Option<&AffectedCursor>,
        limit: usize,
    ) -> (Affected, usize) {
        let mut merge = PageMerge::new(lots, after, limit);
        let mut read = 0;
        loop {
            let step = merge.step().unwrap();
            let MergeStep::Read {
                streams: asked,
                limit: n,
            } = &step
            else {
                break;
            };
            let units: Vec<Vec<StreamUnit>> = asked
                .iter()
                .map(|(i, _, from)| {
                    streams[*i]
                        .iter()
                        .filter(|u| u.serial.as_str() >= from.as_str())
                        .take(*n)
                        .cloned()
                        .collect()
                })
                .collect();
            read += units.iter().map(Vec::len).sum::<usize>();
            merge.fill(&step, units);
        }
        (merge.finish(), read)
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
        let streams = streams(&lots());
        assert_eq!(streams.len(), 4);
        let (whole, _) = page(&held(), lots(), None, 100);
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
            let (page, _) = page(&held(), lots(), after.as_ref(), 2);
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
        let one = vec![lot("PO-1", Some("rel-a"), 1, 0)];
        let mut merge = PageMerge::new(one, None, 10);
        let step = merge.step().unwrap();
        merge.fill(&step, vec![vec![unit("not a serial!", "PO-1", false)]]);
        assert!(merge.step().is_err());
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

    /// A hundred lots of a hundred units each, in serial ranges one after the other: a page
    /// of 50 reads its share of each stream and then what it takes, not 51 of every one, and
    /// pages of 50 walk all 10,000 in order.
    #[test]
    fn a_page_reads_about_its_own_units_however_many_lots() {
        let lots: Vec<LotCount> = (0..100)
            .map(|o| {
                let mut l = lot("PO-1", Some("rel-a"), 100, 0);
                l.lot.order = OrderId::parse(&format!("PO-{o:03}")).unwrap();
                l
            })
            .collect();
        let streams: Vec<Vec<StreamUnit>> = (0..100)
            .map(|o| {
                (0..100)
                    .map(|n| {
                        unit(
                            &format!("SN-{:05}", o * 100 + n),
                            &format!("PO-{o:03}"),
                            false,
                        )
                    })
                    .collect()
            })
            .collect();
        let (first, read) = page(&streams, lots.clone(), None, 50);
        assert_eq!(first.len(), 50);
        // 16 of each stream at first, then the first stream again, twice (32, then 51): a
        // third of the 51 of each stream that reading every stream for the page would take.
        assert_eq!(read, 100 * 16 + 32 + 51);
        let (mut after, mut walked, mut last) = (first.next().cloned(), first.len(), None);
        while let Some(cursor) = after {
            let (next, _) = page(&streams, lots.clone(), Some(&cursor), 50);
            for (serial, _, _) in next.units() {
                assert!(
                    last.as_ref()
                        .is_none_or(|l: &String| l.as_str() < serial.as_str())
                );
                last = Some(serial.to_string());
            }
            walked += next.len();
            after = next.next().cloned();
        }
        assert_eq!(walked, 10_000);
    }
}
