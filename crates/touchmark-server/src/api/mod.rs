//! The HTTP API: the `/v1` routes, `/healthz`, and the OpenAPI document generated from the
//! handlers' annotations.

mod admin;
mod alerts;
mod convert;
mod csaf;
mod device;
mod document;
pub mod extract;
mod field;
mod firmware;
mod image;
pub mod log;
mod oversight;
mod pkix;
mod revocation;
mod station;
mod vuln;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router};
use touchmark_core::api::{ErrorBody, Health};
use touchmark_store::StoreError;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, ObjectBuilder, Ref, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// How long `/healthz` waits for the database before it answers `unavailable`.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(OpenApi)]
#[openapi(
    info(title = "Touchmark", description = "Factory provisioning with quota control and a verifiable audit log."),
    paths(log::tile, pkix::crl, pkix::ocsp_post, pkix::ocsp_get),
    modifiers(&Security),
    tags((name = "station", description = "Fixture stations: enrollment and provisioning (mTLS)"),
         (name = "admin", description = "Brand-owner administration (bearer token)"),
         (name = "audit", description = "Read-only audit access"),
         (name = "field", description = "Field backends: the verdict on a device (bearer token, role field)"),
         (name = "device", description = "Units in the field: updates over their own device certificate (mTLS)"),
         (name = "vulnerabilities", description = "Vulnerability reports: the public intake (no token; the report's secret as bearer for its status) and triage (admin)"))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "mutual_tls",
            SecurityScheme::MutualTls {
                description: Some("A station certificate from `touchmark station enroll`".into()),
                extensions: None,
            },
        );
    }
}

/// The server's health and version.
#[utoipa::path(get, path = "/healthz", tag = "audit", responses((status = 200, body = Health), (status = 503, description = "the database is unreachable", body = ErrorBody), (status = 500, body = ErrorBody)))]
async fn healthz(State(s): State<AppState>) -> Result<Json<Health>, ApiError> {
    // A load balancer must hear of a database outage at once, not after the pool gives up.
    let log_size = tokio::time::timeout(HEALTH_TIMEOUT, s.store.event_count())
        .await
        .map_err(|_| {
            ApiError::from(StoreError::Unavailable(
                "the database did not answer the health check in time".into(),
            ))
        })??;
    let log_halted = s.log.halted();
    Ok(Json(Health {
        status: if log_halted.is_some() {
            "degraded"
        } else {
            "ok"
        }
        .into(),
        version: env!("CARGO_PKG_VERSION").into(),
        log_size,
        checkpoint_size: s.log.latest().map_or(0, |l| l.size()),
        log_halted,
        sequencer: s.log.is_sequencer(),
    }))
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

async fn not_found() -> ApiError {
    ApiError::not_found("this route")
}

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    routes_and_doc().1
}

/// The routes and their document, in which every operation also lists the `503 unavailable`
/// that any request may meet while the database is busy or unreachable, and every parameter
/// and body property the rules that the server checks ([`document`]).
fn routes_and_doc() -> (Router<AppState>, serde_json::Value) {
    let (router, mut doc) = routes_with_doc().split_for_parts();
    let unavailable = ResponseBuilder::new()
        .description("the database is busy or unreachable; nothing was done")
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("seconds to wait before sending the request again"))
                .build(),
        )
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .responses
                .responses
                .entry("503".into())
                .or_insert_with(|| unavailable.clone().into());
        }
    }
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    document::constrain(&mut doc);
    (router, doc)
}

fn routes_with_doc() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(admin::create_token))
        .routes(routes!(admin::create_product, admin::list_products))
        .routes(routes!(admin::get_product))
        .routes(routes!(
            firmware::create_release_key,
            firmware::list_release_keys
        ))
        .routes(routes!(
            firmware::add_firmware_key,
            firmware::list_firmware_keys
        ))
        .routes(
            routes!(firmware::upload_release, firmware::list_releases)
                .layer(DefaultBodyLimit::max(firmware::MAX_UPLOAD_BODY)),
        )
        .routes(routes!(firmware::get_release))
        .routes(routes!(firmware::get_release_sbom))
        .routes(routes!(firmware::withdraw_release))
        .routes(routes!(firmware::set_order_release))
        .routes(routes!(admin::product_ca_csr))
        .routes(routes!(admin::install_product_ca))
        .routes(routes!(admin::create_factory, admin::list_factories))
        .routes(routes!(admin::get_factory))
        .routes(routes!(admin::create_station, admin::list_stations))
        .routes(routes!(admin::get_station))
        .routes(routes!(admin::revoke_station))
        .routes(routes!(admin::create_order, admin::list_orders))
        .routes(routes!(admin::get_order))
        .routes(routes!(admin::open_order))
        .routes(routes!(admin::close_order))
        .routes(routes!(admin::cancel_order))
        .routes(routes!(admin::set_quota))
        .routes(routes!(admin::list_units, station::provision))
        .routes(routes!(admin::get_unit))
        .routes(routes!(station::unit_firmware))
        .routes(routes!(device::latest_firmware))
        .routes(routes!(admin::list_events))
        .routes(routes!(station::enroll))
        .routes(routes!(log::checkpoint))
        .routes(routes!(log::key))
        .routes(routes!(log::inclusion))
        .routes(routes!(log::consistency))
        .routes(routes!(log::unit_receipt_for_reader))
        .routes(routes!(log::unit_receipt_for_station))
        .routes(routes!(oversight::unit_history))
        .routes(routes!(oversight::order_report))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::get_alert))
        .routes(routes!(alerts::acknowledge_alert))
        .routes(routes!(alerts::resolve_alert))
        .routes(routes!(alerts::create_webhook, alerts::list_webhooks))
        .routes(routes!(revocation::revoke_unit))
        .routes(routes!(revocation::release_unit))
        .routes(routes!(revocation::revoke_order))
        .routes(routes!(revocation::revoke_ca))
        .routes(routes!(revocation::revoke_station))
        .routes(routes!(revocation::revoke_provenance))
        .routes(routes!(field::challenge))
        .routes(routes!(field::verify))
        // Vulnerability reports (issue 18).
        .routes(
            routes!(vuln::submit_report, vuln::list_reports)
                .layer(DefaultBodyLimit::max(vuln::MAX_REPORT_BODY)),
        )
        .routes(routes!(vuln::encryption_key))
        .routes(routes!(vuln::get_report))
        .routes(routes!(vuln::report_status))
        .routes(routes!(vuln::change_state))
        .routes(routes!(vuln::classify))
        .routes(routes!(vuln::record_submission))
        .routes(routes!(vuln::link_report))
        .routes(routes!(vuln::affected))
        .routes(routes!(vuln::affected_units))
        // CSAF advisories, and the provider's public files (CSAF 2.0 §7).
        .routes(routes!(csaf::write_advisory))
        .routes(routes!(csaf::provider_metadata))
        .routes(routes!(csaf::index_txt))
        .routes(routes!(csaf::changes_csv))
        .routes(routes!(csaf::advisory_file))
}

/// The complete router.
pub fn router(state: AppState) -> Router {
    let (router, doc) = routes_and_doc();
    let doc = Arc::new(doc);
    router
        .route(
            "/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()) }),
        )
        .route("/log/tile/{*path}", get(log::tile))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/ui", get(crate::ui::index))
        .route("/ui/app.js", get(crate::ui::script))
        .route("/ui/app.css", get(crate::ui::style))
        .route("/ui/session", get(crate::ui::session))
        .route("/ui/login", axum::routing::post(crate::ui::login))
        .route("/ui/logout", axum::routing::post(crate::ui::logout))
        .route("/ui/events", get(crate::ui::events))
        .route("/crl/{*name}", get(pkix::crl))
        .route("/ocsp", axum::routing::post(pkix::ocsp_post))
        .route("/ocsp/{*request}", get(pkix::ocsp_get))
        .route("/.well-known/security.txt", get(vuln::security_txt))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(axum::middleware::from_fn(crate::access::log_requests))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::observe,
        ))
        .with_state(state)
}
