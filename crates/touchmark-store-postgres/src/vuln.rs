//! Vulnerability reports, their links and their deadline alerts ([`VulnStore`]). A report's
//! row is locked while a rule moves it, so two replicas moving one report at once apply their
//! rules one after the other.

use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use touchmark_core::ProductId;
use touchmark_core::csaf::Advisory;
use touchmark_core::event::{Event, Logged};
use touchmark_core::policy::vuln::ReportChange;
use touchmark_core::vuln::{
    AffectedStream, CraClass, CvssVector, Deadline, Justification, Link, LinkStatus, LotCount,
    PackageUrl, PerDeadline, Report, ReportContent, ReportState, StreamUnit, VersionRange,
};
use touchmark_store::{RecordKind, Rule, StoreError, VulnStore, codec, sql, to_millis};

use crate::error::{Error, Result};
use crate::rows::{corrupt, get};
use crate::{PostgresStore, append, append_and_commit};

macro_rules! report_sql {
    ($rest:literal) => {
        concat!(
            "SELECT id, secret_sha256, state, product, version, description, encrypted, cvss, \
             contact, content_sha256, class, aware_at, corrective_at, early_warning_at, \
             notification_at, final_report_at, early_warning_alerted_at, \
             notification_alerted_at, final_report_alerted_at, received_at, updated_at \
             FROM vuln_reports",
            $rest
        )
    };
}

fn report(r: &PgRow) -> Result<Report> {
    let state: String = get(r, 2)?;
    let product: Option<String> = get(r, 3)?;
    let cvss: Option<String> = get(r, 7)?;
    let class: Option<String> = get(r, 10)?;
    let at = |i| get::<Option<OffsetDateTime>>(r, i);
    Ok(Report {
        id: get(r, 0)?,
        secret_sha256: codec::sha256("report secret hash", &get::<Vec<u8>>(r, 1)?)?,
        state: ReportState::parse(&state).ok_or_else(|| corrupt("report state", &state))?,
        content: ReportContent {
            product: product
                .map(|p| ProductId::parse(&p).map_err(|e| corrupt("report product", e)))
                .transpose()?,
            version: get(r, 4)?,
            description: get(r, 5)?,
            encrypted: get(r, 6)?,
            cvss: cvss
                .map(|c| CvssVector::parse("cvss", &c).map_err(|e| corrupt("report CVSS", e)))
                .transpose()?,
            contact: get(r, 8)?,
        },
        content_sha256: codec::sha256("report content hash", &get::<Vec<u8>>(r, 9)?)?,
        class: class
            .map(|c| CraClass::parse(&c).ok_or_else(|| corrupt("report class", &c)))
            .transpose()?,
        aware_at: at(11)?,
        corrective_at: at(12)?,
        submitted: PerDeadline {
            early_warning: at(13)?,
            notification: at(14)?,
            final_report: at(15)?,
        },
        alerted: PerDeadline {
            early_warning: at(16)?,
            notification: at(17)?,
            final_report: at(18)?,
        },
        received_at: get(r, 19)?,
        updated_at: get(r, 20)?,
    })
}

/// The shared query of the affected lots ([`touchmark_store::sql`]); a bound array of release
/// ids is read by `unnest`.
static AFFECTED_LOTS_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    [false, true]
        .map(|counted| sql::affected_lots("unnest($2::text[]) AS released (value)", counted))
});

fn lot_row(r: &PgRow) -> Result<LotCount> {
    LotCount::parse(
        [get(r, 0)?, get(r, 1)?, get(r, 2)?],
        get(r, 3)?,
        get(r, 4)?,
        get(r, 5)?,
        get(r, 6)?,
    )
    .map_err(|e| corrupt("affected lot", e))
}

fn stream_row(r: &PgRow) -> Result<StreamUnit> {
    Ok(StreamUnit {
        serial: get(r, 0)?,
        order: get(r, 1)?,
        revoked: get(r, 2)?,
    })
}

fn link(r: &PgRow) -> Result<Link> {
    let product: String = get(r, 1)?;
    let purl: Option<String> = get(r, 4)?;
    let range: Option<String> = get(r, 5)?;
    let status: String = get(r, 7)?;
    let justification: Option<String> = get(r, 8)?;
    Ok(Link {
        report: get(r, 0)?,
        product: ProductId::parse(&product).map_err(|e| corrupt("link product", e))?,
        release: get(r, 2)?,
        version: get(r, 3)?,
        purl: purl
            .map(|p| PackageUrl::parse("purl", &p).map_err(|e| corrupt("link purl", e)))
            .transpose()?,
        range: range
            .map(|v| VersionRange::parse("range", &v).map_err(|e| corrupt("link range", e)))
            .transpose()?,
        linked_at: get(r, 6)?,
        status: LinkStatus::parse(&status).ok_or_else(|| corrupt("link status", &status))?,
        justification: justification
            .map(|j| Justification::parse(&j).ok_or_else(|| corrupt("link justification", &j)))
            .transpose()?,
    })
}

macro_rules! advisory_sql {
    ($rest:literal) => {
        concat!(
            "SELECT tracking_id, version, report_id, vex, summary, initial_at, published_at, \
             document, sha256 FROM csaf_advisories",
            $rest
        )
    };
}

fn advisory(r: &PgRow) -> Result<Advisory> {
    let version: i32 = get(r, 1)?;
    let sha: Vec<u8> = get(r, 8)?;
    Ok(Advisory {
        tracking_id: get(r, 0)?,
        version: u32::try_from(version).map_err(|e| corrupt("advisory version", e))?,
        report: get(r, 2)?,
        vex: get(r, 3)?,
        summary: get(r, 4)?,
        initial_at: get(r, 5)?,
        published_at: get(r, 6)?,
        document: get(r, 7)?,
        sha256: codec::sha256("advisory hash", &sha)?,
    })
}

async fn exists(conn: &mut PgConnection, sql: &'static str, keys: &[&str]) -> Result<bool> {
    let mut query = sqlx::query_scalar::<_, i32>(sql);
    for key in keys {
        query = query.bind(*key);
    }
    Ok(query.fetch_optional(conn).await?.is_some())
}

#[async_trait]
impl VulnStore for PostgresStore {
    async fn create_report(&self, report: Report, event: Event) -> touchmark_store::Result<Logged> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            let c = &report.content;
            if let Some(product) = &c.product
                && !exists(
                    &mut tx,
                    "SELECT 1 FROM products WHERE id = $1",
                    &[product.as_str()],
                )
                .await?
            {
                return Err(StoreError::not_found(RecordKind::Product, product).into());
            }
            let inserted = sqlx::query(
                "INSERT INTO vuln_reports (id, secret_sha256, state, product, version,
                     description, encrypted, cvss, contact, content_sha256, received_at,
                     updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&report.id)
            .bind(&report.secret_sha256.0[..])
            .bind(report.state.as_str())
            .bind(c.product.as_ref().map(ProductId::as_str))
            .bind(&c.version)
            .bind(&c.description)
            .bind(&c.encrypted)
            .bind(c.cvss.as_ref().map(CvssVector::as_str))
            .bind(&c.contact)
            .bind(&report.content_sha256.0[..])
            .bind(to_millis(report.received_at))
            .bind(to_millis(report.updated_at))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::exists(RecordKind::VulnReport, &report.id).into());
            }
            append_and_commit(tx, &event).await
        };
        Ok(run.await?)
    }

    async fn report(&self, id: &str) -> touchmark_store::Result<Option<Report>> {
        let run = async {
            sqlx::query(report_sql!(" WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .map(|r| report(&r))
                .transpose()
        };
        Ok(run.await?)
    }

    async fn reports(&self) -> touchmark_store::Result<Vec<Report>> {
        let run = async {
            sqlx::query(report_sql!(" ORDER BY received_at DESC, id DESC"))
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(report)
                .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn update_report(
        &self,
        id: &str,
        rule: Rule<Report, ReportChange>,
    ) -> touchmark_store::Result<Report> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            let row = sqlx::query(report_sql!(" WHERE id = $1 FOR NO KEY UPDATE"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::not_found(RecordKind::VulnReport, id))?;
            let current = report(&row)?;
            let ReportChange {
                report: after,
                event,
            } = rule.apply(&current)?;
            // The rule changes the state, the classification and the clocks; never what the
            // reporter sent.
            sqlx::query(
                "UPDATE vuln_reports SET state = $2, class = $3, aware_at = $4,
                     corrective_at = $5, early_warning_at = $6, notification_at = $7,
                     final_report_at = $8, updated_at = $9
                 WHERE id = $1",
            )
            .bind(id)
            .bind(after.state.as_str())
            .bind(after.class.map(CraClass::as_str))
            .bind(after.aware_at.map(to_millis))
            .bind(after.corrective_at.map(to_millis))
            .bind(after.submitted.early_warning.map(to_millis))
            .bind(after.submitted.notification.map(to_millis))
            .bind(after.submitted.final_report.map(to_millis))
            .bind(to_millis(after.updated_at))
            .execute(&mut *tx)
            .await?;
            append(&mut tx, &event).await?;
            tx.commit().await?;
            Ok::<_, Error>(Report {
                content: current.content,
                secret_sha256: current.secret_sha256,
                content_sha256: current.content_sha256,
                alerted: current.alerted,
                received_at: current.received_at,
                ..after
            })
        };
        Ok(run.await?)
    }

    async fn add_link(&self, link: Link, event: Event) -> touchmark_store::Result<Logged> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            if !exists(
                &mut tx,
                "SELECT 1 FROM vuln_reports WHERE id = $1",
                &[&link.report],
            )
            .await?
            {
                return Err(StoreError::not_found(RecordKind::VulnReport, &link.report).into());
            }
            if !exists(
                &mut tx,
                "SELECT 1 FROM products WHERE id = $1",
                &[link.product.as_str()],
            )
            .await?
            {
                return Err(StoreError::not_found(RecordKind::Product, &link.product).into());
            }
            if let Some(release) = &link.release
                && !exists(
                    &mut tx,
                    "SELECT 1 FROM releases WHERE id = $1 AND product = $2",
                    &[release.as_str(), link.product.as_str()],
                )
                .await?
            {
                return Err(StoreError::not_found(RecordKind::Release, release).into());
            }
            let inserted = sqlx::query(
                "INSERT INTO vuln_links (report_id, product, release_id, version, purl,
                     version_range, linked_at, status, justification)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(&link.report)
            .bind(link.product.as_str())
            .bind(&link.release)
            .bind(&link.version)
            .bind(link.purl.as_ref().map(PackageUrl::as_str))
            .bind(link.range.as_ref().map(VersionRange::as_str))
            .bind(to_millis(link.linked_at))
            .bind(link.status.as_str())
            .bind(link.justification.map(Justification::as_str))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::exists(
                    RecordKind::VulnLink,
                    format!("{} to product {}", link.report, link.product),
                )
                .into());
            }
            append_and_commit(tx, &event).await
        };
        Ok(run.await?)
    }

    async fn links(&self, report: &str) -> touchmark_store::Result<Vec<Link>> {
        let run = async {
            sqlx::query(
                "SELECT report_id, product, release_id, version, purl, version_range, linked_at,
                        status, justification
                 FROM vuln_links WHERE report_id = $1 ORDER BY linked_at, coalesce(release_id, ''), coalesce(purl, ''),
                          coalesce(version_range, '')",
            )
            .bind(report)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(link)
            .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn affected_lots(
        &self,
        report: &str,
        releases: &[String],
        counted: bool,
    ) -> touchmark_store::Result<Vec<LotCount>> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            // Compiling the plan to machine code costs more than it saves on this query, whose
            // estimated cost (counting a million index entries) would pass JIT's threshold.
            sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
            let rows = sqlx::query(AFFECTED_LOTS_SQL[usize::from(counted)].as_str())
                .bind(report)
                .bind(releases)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.iter().map(lot_row).collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn affected_streams(
        &self,
        streams: &[(AffectedStream, String)],
        limit: usize,
    ) -> touchmark_store::Result<Vec<Vec<StreamUnit>>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let run = async {
            let mut conn = self.pool().acquire().await?;
            let mut read = Vec::with_capacity(streams.len());
            for (stream, from) in streams {
                let query = match stream {
                    AffectedStream::Lot {
                        release,
                        order,
                        product,
                    } => sqlx::query(sql::LOT_STREAM)
                        .bind(release)
                        .bind(order.as_str())
                        .bind(from)
                        .bind(limit)
                        .bind(product.as_str()),
                    AffectedStream::Product(product) => sqlx::query(sql::PRODUCT_STREAM)
                        .bind(product.as_str())
                        .bind(from)
                        .bind(limit),
                };
                let rows = query.fetch_all(&mut *conn).await?;
                read.push(rows.iter().map(stream_row).collect::<Result<Vec<_>>>()?);
            }
            Ok::<_, Error>(read)
        };
        Ok(run.await?)
    }

    async fn mark_alerted(
        &self,
        id: &str,
        deadline: Deadline,
        at: OffsetDateTime,
    ) -> touchmark_store::Result<bool> {
        let sql = match deadline {
            Deadline::EarlyWarning => {
                "UPDATE vuln_reports SET early_warning_alerted_at = $2
                 WHERE id = $1 AND early_warning_alerted_at IS NULL"
            }
            Deadline::Notification => {
                "UPDATE vuln_reports SET notification_alerted_at = $2
                 WHERE id = $1 AND notification_alerted_at IS NULL"
            }
            Deadline::FinalReport => {
                "UPDATE vuln_reports SET final_report_alerted_at = $2
                 WHERE id = $1 AND final_report_alerted_at IS NULL"
            }
        };
        let run = async {
            let marked = sqlx::query(sql)
                .bind(id)
                .bind(to_millis(at))
                .execute(self.pool())
                .await?
                .rows_affected();
            Ok::<_, Error>(marked == 1)
        };
        Ok(run.await?)
    }

    async fn publish_advisory(
        &self,
        advisory: Advisory,
        event: Event,
    ) -> touchmark_store::Result<Logged> {
        let run = async {
            let mut tx = self.pool().begin().await?;
            // The report's row is locked, so two replicas publishing the same advisory take
            // turns: the second sees the first's version and is refused.
            let found = sqlx::query_scalar::<_, i32>(
                "SELECT 1 FROM vuln_reports WHERE id = $1 FOR NO KEY UPDATE",
            )
            .bind(&advisory.report)
            .fetch_optional(&mut *tx)
            .await?;
            if found.is_none() {
                return Err(StoreError::not_found(RecordKind::VulnReport, &advisory.report).into());
            }
            let last: i32 = sqlx::query_scalar(
                "SELECT coalesce(max(version), 0) FROM csaf_advisories WHERE tracking_id = $1",
            )
            .bind(&advisory.tracking_id)
            .fetch_one(&mut *tx)
            .await?;
            let version = i32::try_from(advisory.version).unwrap_or(i32::MAX);
            if last.checked_add(1) != Some(version) {
                return Err(StoreError::exists(
                    RecordKind::Advisory,
                    format!("{} version {}", advisory.tracking_id, advisory.version),
                )
                .into());
            }
            sqlx::query(
                "INSERT INTO csaf_advisories (tracking_id, version, report_id, vex, summary,
                     initial_at, published_at, document, sha256)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&advisory.tracking_id)
            .bind(version)
            .bind(&advisory.report)
            .bind(advisory.vex)
            .bind(&advisory.summary)
            .bind(to_millis(advisory.initial_at))
            .bind(to_millis(advisory.published_at))
            .bind(&advisory.document)
            .bind(&advisory.sha256.0[..])
            .execute(&mut *tx)
            .await?;
            append_and_commit(tx, &event).await
        };
        Ok(run.await?)
    }

    async fn advisories(&self, report: &str) -> touchmark_store::Result<Vec<Advisory>> {
        let run = async {
            sqlx::query(advisory_sql!(
                " WHERE report_id = $1 ORDER BY tracking_id, version"
            ))
            .bind(report)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(advisory)
            .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }

    async fn latest_advisories(&self) -> touchmark_store::Result<Vec<Advisory>> {
        let run = async {
            sqlx::query(advisory_sql!(
                " a WHERE version = (SELECT max(version) FROM csaf_advisories b \
                 WHERE b.tracking_id = a.tracking_id) ORDER BY tracking_id"
            ))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(advisory)
            .collect::<Result<Vec<_>>>()
        };
        Ok(run.await?)
    }
}
