//! Alerts and their webhooks (design.md §9). Thin: parse, authorize, call the authority or the
//! store, render.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use touchmark_core::alert::Alert;
use touchmark_core::api::ErrorBody;
use touchmark_core::clock::format_timestamp;
use touchmark_core::oversight::{AlertBody, CreateWebhook, WebhookBody};
use touchmark_store::Webhook;

use super::extract::{ApiJson, ApiPath};
use crate::auth::{Admin, Reader};
use crate::error::ApiError;
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn body(a: Alert) -> AlertBody {
    AlertBody {
        id: a.id,
        kind: a.kind.as_str().to_owned(),
        state: a.state.as_str().to_owned(),
        order: a.order.map(|o| o.to_string()),
        station: a.station.map(|s| s.to_string()),
        evidence: a.evidence,
        raised_at: format_timestamp(a.raised_at),
        updated_at: format_timestamp(a.updated_at),
    }
}

fn webhook_body(w: Webhook) -> WebhookBody {
    WebhookBody {
        id: w.id,
        url: w.url,
        kinds: w.kinds,
        created_at: format_timestamp(w.created_at),
    }
}

/// Which alerts to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertFilter {
    /// `unresolved` (open or acknowledged; the default) or `all`.
    pub state: Option<String>,
}

/// Lists alerts, newest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "audit", params(AlertFilter),
    responses((status = 200, body = Vec<AlertBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_alerts(
    State(s): State<AppState>,
    _: Reader,
    query: Result<Query<AlertFilter>, QueryRejection>,
) -> ApiResult<Json<Vec<AlertBody>>> {
    let Query(filter) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let unresolved = match filter.state.as_deref() {
        None | Some("unresolved") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "state: {other:?} is not `unresolved` or `all`"
            )));
        }
    };
    Ok(Json(
        s.store
            .alerts(unresolved)
            .await?
            .into_iter()
            .map(body)
            .collect(),
    ))
}

/// Shows an alert.
#[utoipa::path(get, path = "/v1/alerts/{id}", tag = "audit", params(("id" = String, Path)),
    responses((status = 200, body = AlertBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_alert(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AlertBody>> {
    match s.store.alert(&id).await? {
        Some(a) => Ok(Json(body(a))),
        None => Err(ApiError::not_found(format!("alert {id}"))),
    }
}

/// Acknowledges an open alert (admin; logged).
#[utoipa::path(post, path = "/v1/alerts/{id}/acknowledge", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = AlertBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn acknowledge_alert(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AlertBody>> {
    Ok(Json(body(
        s.authority.acknowledge_alert(admin.actor(), &id).await?,
    )))
}

/// Resolves an open or acknowledged alert (admin; logged).
#[utoipa::path(post, path = "/v1/alerts/{id}/resolve", tag = "admin",
    params(("id" = String, Path)),
    responses((status = 200, body = AlertBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resolve_alert(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<AlertBody>> {
    Ok(Json(body(
        s.authority.resolve_alert(admin.actor(), &id).await?,
    )))
}

/// Registers a webhook for alerts (admin; logged without its secret).
#[utoipa::path(post, path = "/v1/webhooks", tag = "admin", request_body = CreateWebhook,
    responses((status = 201, body = WebhookBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(s): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> ApiResult<(StatusCode, Json<WebhookBody>)> {
    let hook = s
        .authority
        .add_webhook(admin.actor(), &req.url, &req.secret, &req.kinds)
        .await?;
    Ok((StatusCode::CREATED, Json(webhook_body(hook))))
}

/// Lists the webhooks (admin).
#[utoipa::path(get, path = "/v1/webhooks", tag = "admin",
    responses((status = 200, body = Vec<WebhookBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    _: Admin,
) -> ApiResult<Json<Vec<WebhookBody>>> {
    Ok(Json(
        s.store
            .webhooks()
            .await?
            .into_iter()
            .map(webhook_body)
            .collect(),
    ))
}
