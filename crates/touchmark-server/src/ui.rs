//! The dashboard (design.md §9): `/ui`, served by `touchmark serve` itself, every asset
//! embedded in the binary (no CDN: it works offline in a factory network).
//!
//! - `POST /ui/login` takes an API token (admin or auditor) and answers with an HttpOnly,
//!   Secure, `SameSite=Strict` session cookie and the session's CSRF token; the token itself
//!   is never stored in the browser. With the cookie, the dashboard calls the `/v1` API
//!   ([`session_token`]); a request that changes something (acknowledging an alert) must also
//!   carry the CSRF token in `X-CSRF-Token`. Auditors see everything read-only.
//! - `GET /ui/events` streams the projector's live snapshots as server-sent events.
//! - Every page is served with a strict Content-Security-Policy: scripts, styles and
//!   connections from the server itself only, nothing inline, no framing.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use touchmark_core::code::ErrorCode;
use touchmark_core::entity::ApiToken;
use touchmark_core::event::Sha256Hash;

use crate::api::extract::ApiJson;
use crate::error::ApiError;
use crate::state::AppState;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// The session cookie's name.
pub const COOKIE_NAME: &str = "tm_session";

/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Most sessions kept; past it, the oldest goes.
const MAX_SESSIONS: usize = 1024;

/// The Content-Security-Policy of every dashboard response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

#[derive(Debug, Clone)]
struct Session {
    /// The token's secret hash: the token is looked up again on each request, so revoking it
    /// ends its sessions.
    secret_sha256: Sha256Hash,
    csrf: String,
    created: Instant,
}

/// The dashboard's sessions, in memory: a restart logs everyone out.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn insert(&self, secret_sha256: Sha256Hash) -> (String, String) {
        let id = random(32);
        let csrf = random(24);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                secret_sha256,
                csrf: csrf.clone(),
                created: Instant::now(),
            },
        );
        (id, csrf)
    }

    fn get(&self, id: &str) -> Option<Session> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .filter(|s| s.created.elapsed() < SESSION_TTL)
            .cloned()
    }

    fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The session id in the request's cookies, if any.
fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
}

/// The API token of the request's dashboard session, when it has one and no `Authorization`
/// header: `None` without a session cookie. A request that is not `GET` or `HEAD` must carry
/// the session's CSRF token.
///
/// # Errors
/// `unauthorized` for an unknown or expired session, or a revoked token; `forbidden` for a
/// missing or wrong CSRF token.
pub async fn session_token(parts: &Parts, state: &AppState) -> Result<Option<ApiToken>, ApiError> {
    let Some(id) = session_id(&parts.headers) else {
        return Ok(None);
    };
    let session = state.sessions.get(&id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "the dashboard session is unknown or expired: log in again",
        )
    })?;
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "this request needs the session's CSRF token in X-CSRF-Token",
            ));
        }
    }
    let token = state
        .store
        .token_by_secret(session.secret_sha256)
        .await?
        .filter(|t| !t.revoked)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "the API token is revoked"))?;
    Ok(Some(token))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                axum::http::header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `GET /ui`: the dashboard.
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// `GET /ui/app.js`.
pub async fn script() -> Response {
    page("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /ui/app.css`.
pub async fn style() -> Response {
    page("text/css; charset=utf-8", STYLE)
}

/// A login.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// An API token.
    pub token: String,
}

/// A session as the page sees it.
#[derive(Debug, Serialize)]
pub struct SessionBody {
    /// `admin` or `auditor`.
    pub role: String,
    /// The token's id.
    pub token_id: String,
    /// The CSRF token to send in `X-CSRF-Token`.
    pub csrf: String,
}

/// `POST /ui/login`: a token for a session cookie.
pub async fn login(
    State(s): State<AppState>,
    ApiJson(login): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let secret = login.token.trim();
    let unknown = || {
        ApiError::new(
            ErrorCode::Unauthorized,
            "the API token is unknown or revoked",
        )
    };
    if secret.is_empty() || secret.len() > 256 {
        return Err(unknown());
    }
    let hash = Sha256Hash::of(secret.as_bytes());
    let token = s
        .store
        .token_by_secret(hash)
        .await?
        .filter(|t| !t.revoked)
        .ok_or_else(unknown)?;
    if token.role == touchmark_core::entity::Role::Field {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "token {} has role field; it may only call /v1/field/*",
                token.id
            ),
        ));
    }
    let (id, csrf) = s.sessions.insert(hash);
    let cookie = format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut response = Json(SessionBody {
        role: token.role.as_str().to_owned(),
        token_id: token.id.to_string(),
        csrf,
    })
    .into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    response.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    Ok(response)
}

/// `GET /ui/session`: the current session, for a page loaded again.
pub async fn session(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let none = || ApiError::new(ErrorCode::Unauthorized, "no dashboard session: log in");
    let id = session_id(&headers).ok_or_else(none)?;
    let session = s.sessions.get(&id).ok_or_else(none)?;
    let token = s
        .store
        .token_by_secret(session.secret_sha256)
        .await?
        .filter(|t| !t.revoked)
        .ok_or_else(none)?;
    Ok(Json(SessionBody {
        role: token.role.as_str().to_owned(),
        token_id: token.id.to_string(),
        csrf: session.csrf,
    })
    .into_response())
}

/// `POST /ui/logout`: ends the session (needs its CSRF token).
pub async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers)
        && let Some(session) = s.sessions.get(&id)
    {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
            s.sessions.remove(&id);
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "tm_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

/// `GET /ui/events`: the live snapshots, as server-sent events (`event: snapshot`), the latest
/// first; a session (or a bearer token) is needed.
pub async fn events(
    State(s): State<AppState>,
    _: crate::auth::Reader,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let (latest, rx) = s.projector.subscribe();
    let stream = futures_util::stream::unfold((latest, rx), |(mut pending, mut rx)| async move {
        loop {
            if let Some(snapshot) = pending.take() {
                let event = Event::default().event("snapshot").data(&*snapshot);
                return Some((Ok(event), (None, rx)));
            }
            match rx.recv().await {
                Ok(snapshot) => pending = Some(snapshot),
                // A slow client skips to the newest.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
