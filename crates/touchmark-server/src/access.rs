//! The request log: one structured line per request at `info` (target
//! `touchmark_server::access`), refusals included, with the method, the route (its template,
//! never the raw path), the station and the order when there are any, the status, the error
//! code when there is one, the peer's address and the latency.
//!
//! The route and the order come from the router; the station is noted by
//! [`crate::auth::StationAuth`] once a certificate names one ([`RequestNotes`]); the code is set
//! on the response by [`crate::error::ApiError`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request};
use axum::middleware::Next;
use axum::response::Response;
use touchmark_core::code::ErrorCode;
use touchmark_core::{OrderId, StationId};

/// What the handlers learn about a request that its log line reports.
#[derive(Debug, Clone, Default)]
pub struct RequestNotes(Arc<Mutex<Option<StationId>>>);

impl RequestNotes {
    /// Notes the station a verified client certificate names.
    pub fn station(&self, id: &StationId) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
    }

    fn station_id(&self) -> Option<StationId> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The order a route names: `{order}`, or `{id}` under `/v1/orders/`. Only a well-formed order
/// id is reported.
fn order_of(route: Option<&str>, params: &RawPathParams) -> Option<OrderId> {
    let under_orders = route.is_some_and(|r| r.starts_with("/v1/orders/"));
    params
        .iter()
        .find(|(name, _)| *name == "order" || (under_orders && *name == "id"))
        .and_then(|(_, value)| OrderId::parse(value).ok())
}

/// The middleware that writes the line, after the response is ready.
pub async fn log_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let method = parts.method.clone();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let order = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|params| order_of(route.as_deref(), &params));
    let notes = RequestNotes::default();
    parts.extensions.insert(notes.clone());
    let response = next.run(Request::from_parts(parts, body)).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let code = response.extensions().get::<ErrorCode>().map(|c| c.as_str());
    // Text as Display, so the text format writes `route=/v1/…`, not a quoted Debug string;
    // absent values are left out of the line.
    let station = notes.station_id();
    tracing::info!(
        method = %method,
        route = %route.as_deref().unwrap_or("unmatched"),
        station = station.as_ref().map(display),
        order = order.as_ref().map(display),
        status = response.status().as_u16(),
        code = code.map(display),
        latency_ms,
        peer = peer.map(display),
        "request"
    );
    response
}
