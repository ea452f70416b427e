//! Vulnerability reports, their links and their deadline alerts ([`VulnStore`]).

use std::sync::LazyLock;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use touchmark_core::ProductId;
use touchmark_core::clock::{format_timestamp, parse_timestamp};
use touchmark_core::csaf::Advisory;
use touchmark_core::event::{Event, Logged};
use touchmark_core::policy::vuln::ReportChange;
use touchmark_core::vuln::{
    AffectedStream, CraClass, CvssVector, Deadline, Justification, Link, LinkStatus, LotCount,
    PackageUrl, PerDeadline, Report, ReportContent, ReportState, StreamUnit, VersionRange,
};
use touchmark_store::{RecordKind, Rule, StoreError, VulnStore, codec, sql};

use crate::SqliteStore;
use crate::error::Result;
use crate::rows::corrupt;

const REPORT_SQL: &str = "SELECT id, secret_sha256, state, product, version, description, \
     encrypted, cvss, contact, content_sha256, class, aware_at, corrective_at, \
     early_warning_at, notification_at, final_report_at, early_warning_alerted_at, \
     notification_alerted_at, final_report_alerted_at, received_at, updated_at FROM vuln_reports";

const LINK_SQL: &str = "SELECT report_id, product, release_id, version, purl, version_range, \
     linked_at, status, justification FROM vuln_links";

const ADVISORY_SQL: &str = "SELECT tracking_id, version, report_id, vex, summary, initial_at, \
     published_at, document, sha256 FROM csaf_advisories";

fn time(what: &str, text: Option<String>) -> Result<Option<OffsetDateTime>> {
    text.map(|t| parse_timestamp(&t).map_err(|e| corrupt(what, e)))
        .transpose()
}

fn report_row(r: &Row<'_>) -> rusqlite::Result<Result<Report>> {
    let text = |i| r.get::<_, Option<String>>(i);
    let (id, secret, state): (String, Vec<u8>, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
    let (product, version, description, encrypted, cvss, contact) =
        (text(3)?, text(4)?, text(5)?, text(6)?, text(7)?, text(8)?);
    let content_sha: Vec<u8> = r.get(9)?;
    let class = text(10)?;
    let times: Vec<Option<String>> = (11..=20).map(text).collect::<rusqlite::Result<_>>()?;
    Ok((|| {
        let mut times = times.into_iter();
        let mut next = |what| time(what, times.next().flatten());
        Ok(Report {
            secret_sha256: codec::sha256("report secret hash", &secret)?,
            state: ReportState::parse(&state).ok_or_else(|| corrupt("report state", &state))?,
            content: ReportContent {
                product: product
                    .map(|p| ProductId::parse(&p).map_err(|e| corrupt("report product", e)))
                    .transpose()?,
                version,
                description,
                encrypted,
                cvss: cvss
                    .map(|c| CvssVector::parse("cvss", &c).map_err(|e| corrupt("report CVSS", e)))
                    .transpose()?,
                contact,
            },
            content_sha256: codec::sha256("report content hash", &content_sha)?,
            class: class
                .map(|c| CraClass::parse(&c).ok_or_else(|| corrupt("report class", &c)))
                .transpose()?,
            aware_at: next("report aware time")?,
            corrective_at: next("report corrective time")?,
            submitted: PerDeadline {
                early_warning: next("report submission time")?,
                notification: next("report submission time")?,
                final_report: next("report submission time")?,
            },
            alerted: PerDeadline {
                early_warning: next("report alert time")?,
                notification: next("report alert time")?,
                final_report: next("report alert time")?,
            },
            received_at: next("report time")?.ok_or_else(|| corrupt("report time", "null"))?,
            updated_at: next("report time")?.ok_or_else(|| corrupt("report time", "null"))?,
            id,
        })
    })())
}

/// The shared queries of the affected units ([`touchmark_store::sql`]) in SQLite's form; a
/// bound array of release ids is read as JSON.
static AFFECTED_LOTS_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    [false, true].map(|counted| sql::for_sqlite(&sql::affected_lots("json_each($2)", counted)))
});
static LOT_STREAM_SQL: LazyLock<String> = LazyLock::new(|| sql::for_sqlite(sql::LOT_STREAM));
static PRODUCT_STREAM_SQL: LazyLock<String> =
    LazyLock::new(|| sql::for_sqlite(sql::PRODUCT_STREAM));

fn lot_row(r: &Row<'_>) -> Result<LotCount> {
    let text = |i| -> Result<&str> {
        r.get_ref(i)?
            .as_str()
            .map_err(|e| corrupt("affected lot", e))
    };
    LotCount::parse(
        [text(0)?, text(1)?, text(2)?],
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    )
    .map_err(|e| corrupt("affected lot", e))
}

fn stream_row(r: &Row<'_>) -> rusqlite::Result<StreamUnit> {
    Ok(StreamUnit {
        serial: r.get(0)?,
        order: r.get(1)?,
        revoked: r.get(2)?,
    })
}

fn link_row(r: &Row<'_>) -> rusqlite::Result<Result<Link>> {
    let text = |i| r.get::<_, Option<String>>(i);
    let (report, product): (String, String) = (r.get(0)?, r.get(1)?);
    let (release, version, purl, range) = (text(2)?, text(3)?, text(4)?, text(5)?);
    let linked: String = r.get(6)?;
    let (status, justification): (String, Option<String>) = (r.get(7)?, r.get(8)?);
    Ok((|| {
        Ok(Link {
            report,
            product: ProductId::parse(&product).map_err(|e| corrupt("link product", e))?,
            release,
            version,
            purl: purl
                .map(|p| PackageUrl::parse("purl", &p).map_err(|e| corrupt("link purl", e)))
                .transpose()?,
            range: range
                .map(|v| VersionRange::parse("range", &v).map_err(|e| corrupt("link range", e)))
                .transpose()?,
            status: LinkStatus::parse(&status).ok_or_else(|| corrupt("link status", &status))?,
            justification: justification
                .map(|j| Justification::parse(&j).ok_or_else(|| corrupt("link justification", &j)))
                .transpose()?,
            linked_at: parse_timestamp(&linked).map_err(|e| corrupt("link time", e))?,
        })
    })())
}

fn advisory_row(r: &Row<'_>) -> rusqlite::Result<Result<Advisory>> {
    let (tracking_id, version, report, vex, summary): (String, i64, String, bool, String) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    let (initial, published): (String, String) = (r.get(5)?, r.get(6)?);
    let (document, sha): (Vec<u8>, Vec<u8>) = (r.get(7)?, r.get(8)?);
    Ok((|| {
        Ok(Advisory {
            version: u32::try_from(version).map_err(|e| corrupt("advisory version", e))?,
            initial_at: parse_timestamp(&initial).map_err(|e| corrupt("advisory time", e))?,
            published_at: parse_timestamp(&published).map_err(|e| corrupt("advisory time", e))?,
            sha256: codec::sha256("advisory hash", &sha)?,
            tracking_id,
            report,
            vex,
            summary,
            document,
        })
    })())
}

fn read_report(conn: &Connection, id: &str) -> Result<Option<Report>> {
    conn.prepare_cached(&format!("{REPORT_SQL} WHERE id = ?1"))?
        .query_row([id], report_row)
        .optional()?
        .transpose()
}

fn known(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<bool> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params, |_| Ok(()))
        .optional()?
        .is_some())
}

fn ts(at: Option<OffsetDateTime>) -> Option<String> {
    at.map(format_timestamp)
}

/// The column that records when `deadline`'s alert was raised.
fn alerted_column(deadline: Deadline) -> &'static str {
    match deadline {
        Deadline::EarlyWarning => "early_warning_alerted_at",
        Deadline::Notification => "notification_alerted_at",
        Deadline::FinalReport => "final_report_alerted_at",
    }
}

#[async_trait]
impl VulnStore for SqliteStore {
    async fn create_report(&self, report: Report, event: Event) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            let c = &report.content;
            if let Some(product) = &c.product
                && !known(
                    ctx.conn,
                    "SELECT 1 FROM products WHERE id = ?1",
                    [product.as_str()],
                )?
            {
                return Err(StoreError::not_found(RecordKind::Product, product).into());
            }
            let inserted = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO vuln_reports (id, secret_sha256, state, product, version,
                         description, encrypted, cvss, contact, content_sha256, received_at,
                         updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    report.id,
                    &report.secret_sha256.0[..],
                    report.state.as_str(),
                    c.product.as_ref().map(ProductId::as_str),
                    c.version,
                    c.description,
                    c.encrypted,
                    c.cvss.as_ref().map(CvssVector::as_str),
                    c.contact,
                    &report.content_sha256.0[..],
                    format_timestamp(report.received_at),
                    format_timestamp(report.updated_at),
                ])?;
            if inserted == 0 {
                return Err(StoreError::exists(RecordKind::VulnReport, &report.id).into());
            }
            Ok(ctx.append(&event)?.1)
        })
        .await
    }

    async fn report(&self, id: &str) -> touchmark_store::Result<Option<Report>> {
        self.lookup(|conn| read_report(conn, id))
    }

    async fn reports(&self) -> touchmark_store::Result<Vec<Report>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached(&format!("{REPORT_SQL} ORDER BY received_at DESC, id DESC"))?;
            let rows = stmt.query_map([], report_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn update_report(
        &self,
        id: &str,
        rule: Rule<Report, ReportChange>,
    ) -> touchmark_store::Result<Report> {
        let id = id.to_owned();
        self.write(move |ctx| {
            let report = read_report(ctx.conn, &id)?
                .ok_or_else(|| StoreError::not_found(RecordKind::VulnReport, &id))?;
            let ReportChange {
                report: after,
                event,
            } = rule.apply(&report)?;
            // The rule changes the state, the classification and the clocks; never what the
            // reporter sent.
            ctx.conn
                .prepare_cached(
                    "UPDATE vuln_reports SET state = ?2, class = ?3, aware_at = ?4,
                         corrective_at = ?5, early_warning_at = ?6, notification_at = ?7,
                         final_report_at = ?8, updated_at = ?9
                     WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    after.state.as_str(),
                    after.class.map(CraClass::as_str),
                    ts(after.aware_at),
                    ts(after.corrective_at),
                    ts(after.submitted.early_warning),
                    ts(after.submitted.notification),
                    ts(after.submitted.final_report),
                    format_timestamp(after.updated_at),
                ])?;
            ctx.append(&event)?;
            Ok(Report {
                content: report.content,
                secret_sha256: report.secret_sha256,
                content_sha256: report.content_sha256,
                alerted: report.alerted,
                received_at: report.received_at,
                ..after
            })
        })
        .await
    }

    async fn add_link(&self, link: Link, event: Event) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            if !known(
                ctx.conn,
                "SELECT 1 FROM vuln_reports WHERE id = ?1",
                [&link.report],
            )? {
                return Err(StoreError::not_found(RecordKind::VulnReport, &link.report).into());
            }
            if !known(
                ctx.conn,
                "SELECT 1 FROM products WHERE id = ?1",
                [link.product.as_str()],
            )? {
                return Err(StoreError::not_found(RecordKind::Product, &link.product).into());
            }
            if let Some(release) = &link.release
                && !known(
                    ctx.conn,
                    "SELECT 1 FROM releases WHERE id = ?1 AND product = ?2",
                    [release.as_str(), link.product.as_str()],
                )?
            {
                return Err(StoreError::not_found(RecordKind::Release, release).into());
            }
            let inserted = ctx
                .conn
                .prepare_cached(
                    "INSERT INTO vuln_links (report_id, product, release_id, version, purl,
                         version_range, linked_at, status, justification)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    link.report,
                    link.product.as_str(),
                    link.release,
                    link.version,
                    link.purl.as_ref().map(PackageUrl::as_str),
                    link.range.as_ref().map(VersionRange::as_str),
                    format_timestamp(link.linked_at),
                    link.status.as_str(),
                    link.justification.map(Justification::as_str),
                ])?;
            if inserted == 0 {
                return Err(StoreError::exists(
                    RecordKind::VulnLink,
                    format!("{} to product {}", link.report, link.product),
                )
                .into());
            }
            Ok(ctx.append(&event)?.1)
        })
        .await
    }

    async fn links(&self, report: &str) -> touchmark_store::Result<Vec<Link>> {
        let report = report.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{LINK_SQL} WHERE report_id = ?1 ORDER BY linked_at, coalesce(release_id, ''), \
                 coalesce(purl, ''), coalesce(version_range, '')"
            ))?;
            let rows = stmt.query_map([report.as_str()], link_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn affected_lots(
        &self,
        report: &str,
        releases: &[String],
        counted: bool,
    ) -> touchmark_store::Result<Vec<LotCount>> {
        let report = report.to_owned();
        let releases = serde_json::to_string(releases)
            .map_err(|e| StoreError::Database(format!("release ids: {e}")))?;
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&AFFECTED_LOTS_SQL[usize::from(counted)])?;
            let mut rows = stmt.query([report.as_str(), releases.as_str()])?;
            let mut lots = Vec::new();
            while let Some(row) = rows.next()? {
                lots.push(lot_row(row)?);
            }
            Ok(lots)
        })
        .await
    }

    async fn affected_streams(
        &self,
        streams: &[(AffectedStream, String)],
        limit: usize,
    ) -> touchmark_store::Result<Vec<Vec<StreamUnit>>> {
        let streams = streams.to_vec();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            streams
                .iter()
                .map(|(stream, from)| {
                    let units = match stream {
                        AffectedStream::Lot {
                            release,
                            order,
                            product,
                        } => {
                            let mut stmt = conn.prepare_cached(&LOT_STREAM_SQL)?;
                            let args =
                                params![release, order.as_str(), from, limit, product.as_str()];
                            let rows = stmt.query_map(args, stream_row)?;
                            rows.collect::<rusqlite::Result<Vec<_>>>()?
                        }
                        AffectedStream::Product(product) => {
                            let mut stmt = conn.prepare_cached(&PRODUCT_STREAM_SQL)?;
                            let args = params![product.as_str(), from, limit];
                            let rows = stmt.query_map(args, stream_row)?;
                            rows.collect::<rusqlite::Result<Vec<_>>>()?
                        }
                    };
                    Ok(units)
                })
                .collect()
        })
        .await
    }

    async fn mark_alerted(
        &self,
        id: &str,
        deadline: Deadline,
        at: OffsetDateTime,
    ) -> touchmark_store::Result<bool> {
        let id = id.to_owned();
        self.write(move |ctx| {
            let column = alerted_column(deadline);
            let marked = ctx
                .conn
                .prepare_cached(&format!(
                    "UPDATE vuln_reports SET {column} = ?2 WHERE id = ?1 AND {column} IS NULL"
                ))?
                .execute([id.as_str(), format_timestamp(at).as_str()])?;
            Ok(marked == 1)
        })
        .await
    }

    async fn publish_advisory(
        &self,
        advisory: Advisory,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        self.write(move |ctx| {
            if !known(
                ctx.conn,
                "SELECT 1 FROM vuln_reports WHERE id = ?1",
                [&advisory.report],
            )? {
                return Err(StoreError::not_found(RecordKind::VulnReport, &advisory.report).into());
            }
            let last: i64 = ctx
                .conn
                .prepare_cached(
                    "SELECT coalesce(max(version), 0) FROM csaf_advisories WHERE tracking_id = ?1",
                )?
                .query_row([&advisory.tracking_id], |r| r.get(0))?;
            if last + 1 != i64::from(advisory.version) {
                return Err(StoreError::exists(
                    RecordKind::Advisory,
                    format!("{} version {}", advisory.tracking_id, advisory.version),
                )
                .into());
            }
            ctx.conn
                .prepare_cached(
                    "INSERT INTO csaf_advisories (tracking_id, version, report_id, vex, summary,
                         initial_at, published_at, document, sha256)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    advisory.tracking_id,
                    advisory.version,
                    advisory.report,
                    advisory.vex,
                    advisory.summary,
                    format_timestamp(advisory.initial_at),
                    format_timestamp(advisory.published_at),
                    advisory.document,
                    &advisory.sha256.0[..],
                ])?;
            Ok(ctx.append(&event)?.1)
        })
        .await
    }

    async fn advisories(&self, report: &str) -> touchmark_store::Result<Vec<Advisory>> {
        let report = report.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{ADVISORY_SQL} WHERE report_id = ?1 ORDER BY tracking_id, version"
            ))?;
            let rows = stmt.query_map([report.as_str()], advisory_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }

    async fn latest_advisories(&self) -> touchmark_store::Result<Vec<Advisory>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{ADVISORY_SQL} a WHERE version = (SELECT max(version) FROM csaf_advisories b \
                 WHERE b.tracking_id = a.tracking_id) ORDER BY tracking_id"
            ))?;
            let rows = stmt.query_map([], advisory_row)?;
            rows.map(|r| r?).collect()
        })
        .await
    }
}
