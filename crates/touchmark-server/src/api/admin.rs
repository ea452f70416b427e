//! Admin and auditor endpoints: products, factories, stations, orders, units, tokens, events.
//! Thin: read, validate, authorize, call the authority or the store, render.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use touchmark_core::api::{
    CaCsrBody, CreateFactory, CreateOrder, CreateProduct, CreateStation, CreateToken, ErrorBody,
    EventEntry, FactoryBody, InstallCa, OrderBody, OrderDetail, ProductBody, SetQuota, StationBody,
    StationCreated, TokenCreated, UnitBody,
};
use touchmark_core::order::OrderState;
use touchmark_core::{FactoryId, OrderId, ProductId, Serial, StationId};

use super::convert;
use super::extract::{self, ApiJson, ApiPath};
use crate::auth::{Admin, Reader};
use crate::error::ApiError;
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

fn path_id<T>(
    what: &str,
    raw: &str,
    parse: impl Fn(&str) -> Result<T, touchmark_core::id::IdError>,
) -> ApiResult<T> {
    parse(raw).map_err(|e| ApiError::invalid(format!("{what} in the path: {e}")))
}

/// Creates an API token (admin). The secret is returned once.
#[utoipa::path(post, path = "/v1/tokens", tag = "admin", request_body = CreateToken,
    responses((status = 201, body = TokenCreated), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(s): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let (id, role, token) = s
        .authority
        .create_token(admin.actor(), req.try_into()?)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: id.into(),
            role: role.as_str().to_owned(),
            token,
        }),
    ))
}

/// Creates a product and its issuing CA (admin).
#[utoipa::path(post, path = "/v1/products", tag = "admin", request_body = CreateProduct,
    responses((status = 201, body = ProductBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_product(
    State(s): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateProduct>,
) -> ApiResult<(StatusCode, Json<ProductBody>)> {
    let product = s
        .authority
        .create_product(admin.actor(), req.try_into()?)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::product(product))))
}

/// Lists products.
#[utoipa::path(get, path = "/v1/products", tag = "admin",
    responses((status = 200, body = Vec<ProductBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_products(
    State(s): State<AppState>,
    _: Reader,
) -> ApiResult<Json<Vec<ProductBody>>> {
    Ok(Json(
        s.store
            .products()
            .await?
            .into_iter()
            .map(convert::product)
            .collect(),
    ))
}

/// Shows one product.
#[utoipa::path(get, path = "/v1/products/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = ProductBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_product(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ProductBody>> {
    let id = path_id("product id", &id, ProductId::parse)?;
    let product = s
        .store
        .product(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product {id}")))?;
    Ok(Json(convert::product(product)))
}

/// A PKCS#10 request for the product's issuing CA, signed by its key, for the offline device
/// root to sign (admin).
#[utoipa::path(get, path = "/v1/products/{id}/ca/csr", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = CaCsrBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn product_ca_csr(
    State(s): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<CaCsrBody>> {
    let id = path_id("product id", &id, ProductId::parse)?;
    let csr_pem = s.authority.product_ca_csr(&id).await?;
    Ok(Json(CaCsrBody { csr_pem }))
}

/// Installs the product's issuing CA certificate, signed by the offline device root: checked
/// against the product's key, its profile and the device root first (admin).
#[utoipa::path(post, path = "/v1/products/{id}/ca", tag = "admin", params(("id" = String, Path)),
    request_body = InstallCa,
    responses((status = 200, body = ProductBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn install_product_ca(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<InstallCa>,
) -> ApiResult<Json<ProductBody>> {
    let id = path_id("product id", &id, ProductId::parse)?;
    let product = s
        .authority
        .install_product_ca(
            admin.actor(),
            &id,
            &req.certificate_pem,
            req.chain_pem.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok(Json(convert::product(product)))
}

/// Creates a factory (admin).
#[utoipa::path(post, path = "/v1/factories", tag = "admin", request_body = CreateFactory,
    responses((status = 201, body = FactoryBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_factory(
    State(s): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateFactory>,
) -> ApiResult<(StatusCode, Json<FactoryBody>)> {
    let factory = s
        .authority
        .create_factory(admin.actor(), req.try_into()?)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::factory(factory))))
}

/// Lists factories.
#[utoipa::path(get, path = "/v1/factories", tag = "admin",
    responses((status = 200, body = Vec<FactoryBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_factories(
    State(s): State<AppState>,
    _: Reader,
) -> ApiResult<Json<Vec<FactoryBody>>> {
    Ok(Json(
        s.store
            .factories()
            .await?
            .into_iter()
            .map(convert::factory)
            .collect(),
    ))
}

/// Shows one factory.
#[utoipa::path(get, path = "/v1/factories/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = FactoryBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_factory(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<FactoryBody>> {
    let id = path_id("factory id", &id, FactoryId::parse)?;
    let factory = s
        .store
        .factory(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("factory {id}")))?;
    Ok(Json(convert::factory(factory)))
}

/// Creates a station and its one-time enrollment token (admin).
#[utoipa::path(post, path = "/v1/stations", tag = "admin", request_body = CreateStation,
    responses((status = 201, body = StationCreated), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_station(
    State(s): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateStation>,
) -> ApiResult<(StatusCode, Json<StationCreated>)> {
    let (station, token) = s
        .authority
        .create_station(admin.actor(), req.try_into()?)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(StationCreated {
            station: convert::station(station),
            enrollment_token: token,
        }),
    ))
}

/// Filters for the station list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StationFilter {
    /// Only stations of this factory.
    pub factory: Option<String>,
}

/// Lists stations.
#[utoipa::path(get, path = "/v1/stations", tag = "admin", params(StationFilter),
    responses((status = 200, body = Vec<StationBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_stations(
    State(s): State<AppState>,
    _: Reader,
    query: Result<Query<StationFilter>, QueryRejection>,
) -> ApiResult<Json<Vec<StationBody>>> {
    let Query(filter) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let factory = filter
        .factory
        .map(|f| path_id("factory", &f, FactoryId::parse))
        .transpose()?;
    Ok(Json(
        s.store
            .stations(factory.as_ref())
            .await?
            .into_iter()
            .map(convert::station)
            .collect(),
    ))
}

/// Shows one station.
#[utoipa::path(get, path = "/v1/stations/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = StationBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_station(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<StationBody>> {
    let id = path_id("station id", &id, StationId::parse)?;
    let station = s
        .store
        .station(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("station {id}")))?;
    Ok(Json(convert::station(station)))
}

/// Revokes a station (admin). It is refused at once, on every open connection too.
#[utoipa::path(post, path = "/v1/stations/{id}/revoke", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = StationBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_station(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<StationBody>> {
    let id = path_id("station id", &id, StationId::parse)?;
    let station = s.authority.revoke_station(admin.actor(), &id).await?;
    Ok(Json(convert::station(station)))
}

/// Creates an order (admin), in draft unless `open` is true.
#[utoipa::path(post, path = "/v1/orders", tag = "admin", request_body = CreateOrder,
    responses((status = 201, body = OrderBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_order(
    State(s): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateOrder>,
) -> ApiResult<(StatusCode, Json<OrderBody>)> {
    let order = s
        .authority
        .create_order(admin.actor(), req.try_into()?)
        .await?;
    Ok((StatusCode::CREATED, Json(convert::order(order))))
}

/// Lists orders.
#[utoipa::path(get, path = "/v1/orders", tag = "admin",
    responses((status = 200, body = Vec<OrderBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_orders(State(s): State<AppState>, _: Reader) -> ApiResult<Json<Vec<OrderBody>>> {
    Ok(Json(
        s.store
            .orders()
            .await?
            .into_iter()
            .map(convert::order)
            .collect(),
    ))
}

/// Shows an order with its counts from every table that records them.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = OrderDetail), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_order(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrderDetail>> {
    let id = path_id("order id", &id, OrderId::parse)?;
    let order = s
        .store
        .order(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("order {id}")))?;
    let counts = s.store.order_counts(&id).await?;
    Ok(Json(OrderDetail {
        order: convert::order(order),
        certificates: counts.certificates,
        issued_events: counts.issued_events,
        failed_tests: counts.failed_tests,
        refusals: counts.refusals,
    }))
}

async fn transition(
    s: &AppState,
    admin: &Admin,
    id: &str,
    to: OrderState,
) -> ApiResult<Json<OrderBody>> {
    let id = path_id("order id", id, OrderId::parse)?;
    Ok(Json(convert::order(
        s.authority.set_order_state(admin.actor(), &id, to).await?,
    )))
}

/// Opens an order (admin).
#[utoipa::path(post, path = "/v1/orders/{id}/open", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn open_order(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrderBody>> {
    transition(&s, &admin, &id, OrderState::Open).await
}

/// Closes an order (admin).
#[utoipa::path(post, path = "/v1/orders/{id}/close", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn close_order(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrderBody>> {
    transition(&s, &admin, &id, OrderState::Closed).await
}

/// Cancels an order (admin).
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = OrderBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_order(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<OrderBody>> {
    transition(&s, &admin, &id, OrderState::Cancelled).await
}

/// Changes an order's quota (admin). Logged with the old and new value.
#[utoipa::path(put, path = "/v1/orders/{id}/quota", tag = "admin", params(("id" = String, Path)), request_body = SetQuota,
    responses((status = 200, body = OrderBody), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_quota(
    State(s): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SetQuota>,
) -> ApiResult<Json<OrderBody>> {
    let id = path_id("order id", &id, OrderId::parse)?;
    Ok(Json(convert::order(
        s.authority.set_quota(admin.actor(), &id, req.quota).await?,
    )))
}

/// Lists an order's units.
#[utoipa::path(get, path = "/v1/orders/{order}/units", tag = "admin", params(("order" = String, Path)),
    responses((status = 200, body = Vec<UnitBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_units(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Vec<UnitBody>>> {
    let id = path_id("order id", &id, OrderId::parse)?;
    if s.store.order(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("order {id}")));
    }
    Ok(Json(
        s.store
            .units(&id)
            .await?
            .into_iter()
            .map(convert::unit)
            .collect(),
    ))
}

/// Shows a unit by serial (one entry per product that has the serial).
#[utoipa::path(get, path = "/v1/units/{serial}", tag = "admin", params(("serial" = String, Path)),
    responses((status = 200, body = Vec<UnitBody>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_unit(
    State(s): State<AppState>,
    _: Reader,
    ApiPath(serial): ApiPath<String>,
) -> ApiResult<Json<Vec<UnitBody>>> {
    let serial = Serial::parse(&serial)
        .map_err(|e| ApiError::invalid(format!("serial in the path: {e}")))?;
    let units = s.store.unit(&serial).await?;
    if units.is_empty() {
        return Err(ApiError::not_found(format!("unit {serial}")));
    }
    Ok(Json(units.into_iter().map(convert::unit).collect()))
}

/// A page of the event log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventPage {
    /// First index (default 0).
    #[serde(default, deserialize_with = "extract::log_position")]
    pub start: Option<u64>,
    /// Most events returned (default and maximum 1000).
    #[serde(default, deserialize_with = "extract::page_size")]
    pub limit: Option<u32>,
}

/// Lists events with their canonical bytes and leaf hashes.
#[utoipa::path(get, path = "/v1/events", tag = "audit", params(EventPage),
    responses((status = 200, body = Vec<EventEntry>), (status = "4XX", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_events(
    State(s): State<AppState>,
    _: Reader,
    query: Result<Query<EventPage>, QueryRejection>,
) -> ApiResult<Json<Vec<EventEntry>>> {
    let Query(page) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = page.limit.unwrap_or(extract::MAX_PAGE);
    let events = s.store.events(page.start.unwrap_or(0), limit).await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| EventEntry {
                index: e.index,
                kind: e.kind,
                leaf_hash: e.leaf_hash.to_hex(),
                canonical: String::from_utf8_lossy(&e.bytes).into_owned(),
            })
            .collect(),
    ))
}
