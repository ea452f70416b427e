//! Oversight (design.md §9): a unit's history and an order's report, read through
//! `touchmark-analytics`. Thin: parse, authorize, read, render.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use touchmark_core::api::ErrorBody;
use touchmark_core::clock::parse_timestamp;
use touchmark_core::oversight::{OrderReport, UnitHistory};
use touchmark_core::{OrderId, Serial};
use touchmark_store::Window;

use super::extract::ApiPath;
use crate::auth::Reader;
use crate::error::ApiError;
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// A unit's history: its test attempts with their steps and measurements, and its
/// certificate, oldest first.
#[utoipa::path(get, path = "/v1/units/{serial}/history", tag = "audit",
    params(("serial" = String, Path)),
    responses((status = 200, body = UnitHistory), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unit_history(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(serial): ApiPath<String>,
) -> ApiResult<Json<UnitHistory>> {
    let serial = Serial::parse(&serial)
        .map_err(|e| ApiError::invalid(format!("serial in the path: {e}")))?;
    match touchmark_analytics::unit_history(s.store.as_ref(), &serial).await? {
        Some(history) => Ok(Json(history)),
        None => Err(ApiError::not_found(format!("unit {serial}"))),
    }
}

/// A window of time for a report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportWindow {
    /// From this instant, inclusive (RFC 3339); default: the beginning.
    pub from: Option<String>,
    /// Until this instant, exclusive (RFC 3339); default: now.
    pub until: Option<String>,
}

fn instant(what: &str, text: Option<&str>) -> ApiResult<Option<time::OffsetDateTime>> {
    text.map(|t| parse_timestamp(t).map_err(|e| ApiError::invalid(format!("{what}: {e}"))))
        .transpose()
}

/// An order's report over a window: quota used and left, first-pass and final yield, retest
/// rate, attempts per hour, failure Paretos by step and by measurement, each numeric
/// measurement's statistics (count, mean, standard deviation, extremes, histogram, Cp, Cpk),
/// and refusals by code.
#[utoipa::path(get, path = "/v1/orders/{order}/report", tag = "audit",
    params(("order" = String, Path), ReportWindow),
    responses((status = 200, body = OrderReport), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn order_report(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(order): ApiPath<String>,
    query: Result<Query<ReportWindow>, QueryRejection>,
) -> ApiResult<Json<OrderReport>> {
    let order = OrderId::parse(&order)
        .map_err(|e| ApiError::invalid(format!("order id in the path: {e}")))?;
    let Query(window) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let window = Window {
        from: instant("from", window.from.as_deref())?,
        until: instant("until", window.until.as_deref())?,
    };
    match touchmark_analytics::order_report(s.store.as_ref(), &order, window).await? {
        Some(report) => Ok(Json(report)),
        None => Err(ApiError::not_found(format!("order {order}"))),
    }
}
