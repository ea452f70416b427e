//! The vulnerability intake (issue 18): the public routes a researcher uses (submit a report,
//! read its status with its secret, fetch the key to encrypt to), rate-limited per source
//! address, and the admins' triage routes. Thin: parse, authorize, call the authority, render.
//! Every answer is JSON (or the recipient as plain text); a report's text is never markup.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use touchmark_core::api::{
    AffectedBody, AffectedUnitBody, AffectedUnitsBody, ChangeReportState, ClassifyReport,
    DeadlineBody, ErrorBody, LinkBody, LinkReport, RecordSubmission, ReportBody, ReportReceipt,
    ReportStatus, SubmitReport,
};
use touchmark_core::clock::format_timestamp;
use touchmark_core::code::ErrorCode;
use touchmark_core::policy::vuln::deadlines;
use touchmark_core::vuln::{Affected, AffectedCursor, Link, Report};

use super::extract::{ApiJson, ApiPath};
use crate::auth::Admin;
use crate::error::ApiError;
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// The largest body the intake reads: a report at every field's limit, JSON-escaped.
pub const MAX_REPORT_BODY: usize = 640 * 1024;

/// A caller of the public intake within its source address's rate: a bucket per IPv4
/// address, and per IPv6 /64 (what one host is usually given).
#[derive(Debug)]
pub struct IntakeCaller;

fn source_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl FromRequestParts<AppState> for IntakeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |ConnectInfo(a)| source_key(a.ip()));
        match state.report_rate.take(&key, state.clock.now()) {
            Ok(()) => Ok(Self),
            Err(retry_after) => {
                state.metrics.report_rate_limited();
                Err(ApiError::new(
                    ErrorCode::RateLimited,
                    "too many requests to the vulnerability intake from this address; send again later",
                )
                .with_retry_after(retry_after))
            }
        }
    }
}

fn link_body(l: Link) -> LinkBody {
    LinkBody {
        product: l.product.to_string(),
        release: l.release,
        version: l.version,
        purl: l.purl.map(|p| p.as_str().to_owned()),
        range: l.range.map(|r| r.as_str().to_owned()),
        status: l.status.as_str().to_owned(),
        justification: l.justification.map(|j| j.as_str().to_owned()),
        linked_at: format_timestamp(l.linked_at),
    }
}

fn report_body(r: Report, links: Vec<Link>, now: time::OffsetDateTime) -> ReportBody {
    let deadlines = deadlines(&r, now)
        .into_iter()
        .map(|d| DeadlineBody {
            deadline: d.deadline.as_str().to_owned(),
            due_at: d.due_at.map(format_timestamp),
            submitted_at: d.submitted_at.map(format_timestamp),
            status: d.status.as_str().to_owned(),
        })
        .collect();
    ReportBody {
        id: r.id,
        state: r.state.as_str().to_owned(),
        next_states: touchmark_core::policy::vuln::next_states(r.state)
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        product: r.content.product.map(|p| p.to_string()),
        version: r.content.version,
        description: r.content.description,
        encrypted: r.content.encrypted,
        cvss: r.content.cvss.map(|c| c.as_str().to_owned()),
        contact: r.content.contact,
        content_sha256: r.content_sha256.to_hex(),
        class: r.class.map(|c| c.as_str().to_owned()),
        aware_at: r.aware_at.map(format_timestamp),
        corrective_at: r.corrective_at.map(format_timestamp),
        deadlines,
        links: links.into_iter().map(link_body).collect(),
        received_at: format_timestamp(r.received_at),
        updated_at: format_timestamp(r.updated_at),
    }
}

async fn full(s: &AppState, report: Report) -> ApiResult<Json<ReportBody>> {
    let links = s.store.links(&report.id).await?;
    Ok(Json(report_body(report, links, s.clock.now())))
}

/// Receives a vulnerability report (public: no token). Answers its tracking id and the secret
/// that reads its status, once. Limited per source address; a flood is answered 429 with
/// `Retry-After`, and counted (`touchmark_vuln_reports_total{outcome="rate_limited"}`).
#[utoipa::path(post, path = "/v1/vulnerability-reports", tag = "vulnerabilities",
    request_body = SubmitReport,
    responses(
        (status = 201, body = ReportReceipt, description = "received: keep the secret"),
        (status = 400, body = ErrorBody, description = "a field the document forbids (`invalid_request`)"),
        (status = 413, body = ErrorBody, description = "the body is too large (`payload_too_large`)"),
        (status = 422, body = ErrorBody, description = "`cvss_invalid`, `product_unknown`, `report_encryption_invalid`, or `unprocessable` (neither description nor encrypted details)"),
        (status = 429, body = ErrorBody, description = "too many requests from this address (`rate_limited`)",
            headers(("Retry-After" = u64, description = "seconds to wait"))),
    ))]
pub async fn submit_report(
    State(s): State<AppState>,
    _: IntakeCaller,
    ApiJson(req): ApiJson<SubmitReport>,
) -> ApiResult<(StatusCode, Json<ReportReceipt>)> {
    let received = s.authority.submit_report(&req).await?;
    s.metrics.report_received();
    Ok((
        StatusCode::CREATED,
        Json(ReportReceipt {
            id: received.report.id,
            secret: received.secret,
            state: received.report.state.as_str().to_owned(),
            received_at: format_timestamp(received.report.received_at),
        }),
    ))
}

/// The secret of `Authorization: Bearer <secret>`.
fn secret(parts: &axum::http::HeaderMap) -> ApiResult<String> {
    let unauthorized = || {
        ApiError::new(
            ErrorCode::Unauthorized,
            "send the report's secret: `Authorization: Bearer <secret>`",
        )
    };
    let value = parts
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unauthorized)?;
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, secret)| secret.trim_start_matches(' '))
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .map(str::to_owned)
        .ok_or_else(unauthorized)
}

/// A report's status, for the researcher who holds its secret (as a bearer token). An unknown
/// id and a wrong secret are both `not_found`.
#[utoipa::path(get, path = "/v1/vulnerability-reports/{id}/status", tag = "vulnerabilities",
    params(("id" = String, Path)),
    responses(
        (status = 200, body = ReportStatus),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody, description = "no secret sent"),
        (status = 404, body = ErrorBody, description = "no such report, or not its secret"),
        (status = 429, body = ErrorBody, description = "too many requests from this address",
            headers(("Retry-After" = u64, description = "seconds to wait"))),
    ),
    security(("bearer" = [])))]
pub async fn report_status(
    State(s): State<AppState>,
    _: IntakeCaller,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ReportStatus>> {
    let secret = secret(&headers)?;
    let r = s.authority.report_for_reporter(&id, &secret).await?;
    Ok(Json(ReportStatus {
        id: r.id,
        state: r.state.as_str().to_owned(),
        received_at: format_timestamp(r.received_at),
        updated_at: format_timestamp(r.updated_at),
    }))
}

/// The age recipient reports may be encrypted to, as one line of text: what `age -R` reads
/// (`age -R recipient.txt -a < report.txt`). 404 when none is published.
#[utoipa::path(get, path = "/v1/vulnerability-reports/encryption-key", tag = "vulnerabilities",
    responses(
        (status = 200, content_type = "text/plain", body = String, description = "an age X25519 recipient, `age1…`"),
        (status = 404, body = ErrorBody, description = "no encryption key is published"),
    ))]
pub async fn encryption_key(State(s): State<AppState>) -> ApiResult<Response> {
    let recipient = s
        .authority
        .report_recipient()
        .ok_or_else(|| ApiError::not_found("an encryption key for reports"))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{recipient}\n"),
    )
        .into_response())
}

/// Which reports to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportFilter {
    /// `true`: only reports with a CRA deadline approaching or overdue now.
    pub due: Option<bool>,
}

/// Lists vulnerability reports, newest first, with their CRA deadlines judged now (admin).
#[utoipa::path(get, path = "/v1/vulnerability-reports", tag = "vulnerabilities",
    params(ReportFilter),
    responses((status = 200, body = Vec<ReportBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_reports(
    State(s): State<AppState>,
    _: Admin,
    query: Result<Query<ReportFilter>, QueryRejection>,
) -> ApiResult<Json<Vec<ReportBody>>> {
    let Query(filter) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let now = s.clock.now();
    let mut out = Vec::new();
    for report in s.store.reports().await? {
        if filter.due == Some(true)
            && !deadlines(&report, now)
                .iter()
                .any(|d| d.status.is_alarming())
        {
            continue;
        }
        let links = s.store.links(&report.id).await?;
        out.push(report_body(report, links, now));
    }
    Ok(Json(out))
}

/// Shows a vulnerability report: what was sent, its state, CRA deadlines and links (admin).
#[utoipa::path(get, path = "/v1/vulnerability-reports/{id}", tag = "vulnerabilities",
    params(("id" = String, Path)),
    responses((status = 200, body = ReportBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_report(
    State(s): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ReportBody>> {
    let report = s
        .store
        .report(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("vulnerability report {id}")))?;
    full(&s, report).await
}

/// Moves a report to another state (admin; logged). A move its state does not allow is
/// `report_transition_invalid` (409).
#[utoipa::path(post, path = "/v1/vulnerability-reports/{id}/state", tag = "vulnerabilities",
    params(("id" = String, Path)), request_body = ChangeReportState,
    responses((status = 200, body = ReportBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn change_state(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ChangeReportState>,
) -> ApiResult<Json<ReportBody>> {
    let report = s
        .authority
        .change_report_state(admin.actor(), &id, &req.state, req.corrective_at.as_deref())
        .await?;
    full(&s, report).await
}

/// Classifies a report under the CRA, which starts its clocks (admin; logged).
#[utoipa::path(post, path = "/v1/vulnerability-reports/{id}/classification", tag = "vulnerabilities",
    params(("id" = String, Path)), request_body = ClassifyReport,
    responses((status = 200, body = ReportBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn classify(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ClassifyReport>,
) -> ApiResult<Json<ReportBody>> {
    let report = s
        .authority
        .classify_report(admin.actor(), &id, &req.class, req.aware_at.as_deref())
        .await?;
    full(&s, report).await
}

/// Records that a CRA notification was submitted (admin; logged).
#[utoipa::path(post, path = "/v1/vulnerability-reports/{id}/submissions", tag = "vulnerabilities",
    params(("id" = String, Path)), request_body = RecordSubmission,
    responses((status = 200, body = ReportBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_submission(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RecordSubmission>,
) -> ApiResult<Json<ReportBody>> {
    let report = s
        .authority
        .record_submission(
            admin.actor(),
            &id,
            &req.deadline,
            req.submitted_at.as_deref(),
        )
        .await?;
    full(&s, report).await
}

/// Links a report to a product, optionally a release of it (by version) and an SBOM
/// component (admin; logged).
#[utoipa::path(post, path = "/v1/vulnerability-reports/{id}/links", tag = "vulnerabilities",
    params(("id" = String, Path)), request_body = LinkReport,
    responses((status = 201, body = LinkBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn link_report(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<LinkReport>,
) -> ApiResult<(StatusCode, Json<LinkBody>)> {
    let link = s.authority.link_report(admin.actor(), &id, &req).await?;
    Ok((StatusCode::CREATED, Json(link_body(link))))
}

/// `/.well-known/security.txt` (RFC 9116), as configured; 404 when it is not.
pub async fn security_txt(State(s): State<AppState>) -> ApiResult<Response> {
    let txt = s
        .security_txt
        .as_ref()
        .ok_or_else(|| ApiError::not_found("security.txt (no [security_txt] is configured)"))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        txt.render(s.clock.now()),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_addresses_and_ipv6_prefixes() {
        let key = |s: &str| source_key(s.parse().unwrap_or(IpAddr::V4([0; 4].into())));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
    }
}

/// Which page of the affected units an answer lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AffectedQuery {
    /// List at most this many units, 1 to 10,000 [default: 1,000]; the counts are of all of
    /// them.
    #[serde(default, deserialize_with = "affected_page_size")]
    pub limit: Option<u32>,
    /// List the units after this one: the previous page's `next` (`SERIAL/ORDER`).
    #[serde(default)]
    pub after: Option<String>,
}

/// Units an answer lists when the request does not say.
const AFFECTED_PAGE: usize = 1000;
/// The most units an answer lists: a page of units is smaller than one of events.
pub(crate) const AFFECTED_MAX_PAGE: u32 = 10_000;

fn affected_page_size<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
    match <Option<u32> as Deserialize>::deserialize(de)? {
        Some(v) if !(1..=AFFECTED_MAX_PAGE).contains(&v) => Err(serde::de::Error::custom(format!(
            "a page holds 1 to {AFFECTED_MAX_PAGE} units, not {v}"
        ))),
        other => Ok(other),
    }
}

/// The units a report affects (admin): by serial, with counts per order, factory and release.
/// A unit is affected when the release it received last (at provisioning, or by a field
/// update) is one a link names (directly, or as a release whose SBOM holds a linked component
/// in its range), or when a link names its product without a release. One page of units, by
/// serial then order; `next` is the `after` of the page after it (read it from
/// `…/affected/units`, which does not count again).
#[utoipa::path(get, path = "/v1/vulnerability-reports/{id}/affected", tag = "vulnerabilities",
    params(("id" = String, Path), AffectedQuery),
    responses((status = 200, body = AffectedBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn affected(
    State(s): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    query: Result<Query<AffectedQuery>, QueryRejection>,
) -> ApiResult<Json<AffectedBody>> {
    let (affected, unresolved_links) = affected_page(&s, &id, query, true).await?;
    let counts = affected.counts();
    Ok(Json(AffectedBody {
        total: counts.total,
        revoked: counts.revoked,
        by_order: counts.by_order,
        by_factory: counts.by_factory,
        by_release: counts.by_release,
        unresolved_links,
        units: unit_bodies(&affected),
        next: affected.next().map(ToString::to_string),
        report: id,
    }))
}

/// A page of the units a report affects (admin), as `…/affected` lists them, without
/// counting them: the pages after the first of a client that has the counts.
#[utoipa::path(get, path = "/v1/vulnerability-reports/{id}/affected/units", tag = "vulnerabilities",
    params(("id" = String, Path), AffectedQuery),
    responses((status = 200, body = AffectedUnitsBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn affected_units(
    State(s): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
    query: Result<Query<AffectedQuery>, QueryRejection>,
) -> ApiResult<Json<AffectedUnitsBody>> {
    let (affected, _) = affected_page(&s, &id, query, false).await?;
    Ok(Json(AffectedUnitsBody {
        units: unit_bodies(&affected),
        next: affected.next().map(ToString::to_string),
        report: id,
    }))
}

/// The page `query` asks for of the units report `id` affects, counted or not.
async fn affected_page(
    s: &AppState,
    id: &str,
    query: Result<Query<AffectedQuery>, QueryRejection>,
    counted: bool,
) -> ApiResult<(Affected, u64)> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let after = query
        .after
        .as_deref()
        .map(|a| AffectedCursor::parse("after", a))
        .transpose()?;
    let limit = query.limit.map_or(AFFECTED_PAGE, |l| {
        usize::try_from(l).unwrap_or(AFFECTED_PAGE)
    });
    Ok(s.authority
        .affected_units(id, after.as_ref(), limit, counted)
        .await?)
}

fn unit_bodies(affected: &Affected) -> Vec<AffectedUnitBody> {
    affected
        .units()
        .map(|(serial, lot, revoked)| AffectedUnitBody {
            serial: serial.to_string(),
            order: lot.order.to_string(),
            product: lot.product.to_string(),
            factory: lot.factory.to_string(),
            release: lot.release.clone(),
            version: lot.version.clone(),
            revoked,
        })
        .collect()
}
