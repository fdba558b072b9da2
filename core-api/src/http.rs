//! HTTP transport: routes, request decoding, and the single place where errors become HTTP
//! statuses. Handlers decode, call one engine method, and encode; nothing else.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{
    ConnectInfo, DefaultBodyLimit, Extension, MatchedPath, Path, RawQuery, Request, State,
};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use shared_types::{
    ErrorBody, ErrorCode, InteractionEvent, ItemInput, ItemsUpserted, RecommendationQuery,
    SimilarQuery, TtlTier, CACHE_TIER_HEADER, DEFAULT_LIMIT,
};

use crate::auth::{Authenticator, Credentials, Denied, Principal, Scope};
use crate::config::Config;
use crate::edge_auth::SignedRequest;
use crate::engine::{Engine, ItemsSubmitted};
use crate::error::EngineError;
use crate::metrics::Metrics;
use shared_types::edge_auth::{
    body_digest, API_KEY_HEADER, EDGE_NONCE_HEADER, EDGE_SIGNATURE_HEADER, EDGE_TIMESTAMP_HEADER,
    EDGE_USER_HEADER,
};

/// Shared state of the HTTP layer. The engine is set once loading finishes; until then
/// the API answers 503 `not_ready` and `/readyz` reports not ready.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<OnceLock<Arc<Engine>>>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// Identifies callers and rate-limits them (see `auth.rs`).
    pub auth: Arc<Authenticator>,
}

impl AppState {
    fn engine(&self) -> Result<&Arc<Engine>, ApiError> {
        self.engine.get().ok_or(ApiError::NotReady)
    }
}

/// Everything that can go wrong in a request, mapped to a status in [`IntoResponse`].
#[derive(Debug)]
pub enum ApiError {
    Engine(EngineError),
    BadRequest { code: ErrorCode, message: String },
    PayloadTooLarge { limit: usize },
    UnsupportedMediaType,
    RouteNotFound,
    MethodNotAllowed,
    NotReady,
    Timeout,
    Denied(Denied),
    RateLimited { retry_after_secs: u64 },
    UriTooLong { limit: usize },
}

impl From<Denied> for ApiError {
    fn from(e: Denied) -> Self {
        Self::Denied(e)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

impl ApiError {
    fn bad(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let (code, message): (ErrorCode, String) = match self {
            Self::Engine(
                EngineError::Invalid { code, message }
                | EngineError::NotFound { code, message }
                | EngineError::Conflict { code, message },
            ) => (code, message),
            Self::Engine(EngineError::Overloaded(why)) => {
                tracing::warn!(%why, "shedding load");
                (
                    ErrorCode::Overloaded,
                    "the service is busy; try again shortly".into(),
                )
            }
            Self::Engine(
                e @ (EngineError::Store(_) | EngineError::Embed(_) | EngineError::Internal(_)),
            ) => {
                tracing::error!(error = %e, "request failed");
                let code = match e {
                    EngineError::Store(_) => ErrorCode::StorageUnavailable,
                    _ => ErrorCode::Internal,
                };
                (
                    code,
                    "the request could not be completed; try again later".into(),
                )
            }
            Self::BadRequest { code, message } => (code, message),
            Self::PayloadTooLarge { limit } => (
                ErrorCode::PayloadTooLarge,
                format!("request body exceeds {limit} bytes"),
            ),
            Self::UnsupportedMediaType => (
                ErrorCode::UnsupportedMediaType,
                "send application/json or application/x-ndjson".into(),
            ),
            Self::RouteNotFound => (ErrorCode::RouteNotFound, "no such endpoint".into()),
            Self::MethodNotAllowed => (
                ErrorCode::MethodNotAllowed,
                "method not allowed on this endpoint".into(),
            ),
            Self::NotReady => (ErrorCode::NotReady, "the index is still loading".into()),
            Self::Timeout => (ErrorCode::Timeout, "the request took too long".into()),
            Self::Denied(Denied::Unauthenticated(why)) => (ErrorCode::Unauthorized, why),
            Self::Denied(Denied::Forbidden(why)) => (ErrorCode::Forbidden, why),
            Self::RateLimited { .. } => (
                ErrorCode::RateLimited,
                "too many requests; retry after the Retry-After delay".into(),
            ),
            Self::UriTooLong { limit } => (
                ErrorCode::UriTooLong,
                format!("the request URI exceeds {limit} bytes"),
            ),
        };
        let status = status_of(code);
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The HTTP status of an error code (every code's status is a valid one).
fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Every route the router serves, as (method, path template). [`app`] registers routes only
/// through `listed`, which refuses one missing here, and the tests check this list against
/// `docs/openapi.json` both ways: no route is served undocumented.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/recommendations"),
    ("GET", "/v1/similar/{item_id}"),
    ("POST", "/v1/events"),
    ("POST", "/v1/items"),
    ("GET", "/v1/items/{item_id}"),
    ("DELETE", "/v1/items/{item_id}"),
    ("GET", "/v1/jobs/{job_id}"),
    ("DELETE", "/v1/users/{user_id}"),
    ("GET", "/v1/users/{user_id}/events"),
    ("GET", "/admin/policy"),
    ("GET", "/admin/model"),
    ("POST", "/admin/model/retrain"),
    ("POST", "/admin/policy/evaluate"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// The OpenAPI 3.1 description of [`ROUTES`], served at `GET /openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// Route registration that keeps [`ROUTES`] complete.
trait Listed {
    fn listed<H: Handler<T, AppState>, T: 'static>(
        self,
        method: &str,
        path: &str,
        handler: H,
    ) -> Self;
}

impl Listed for Router<AppState> {
    /// Adds `handler` for `method` on `path`; panics (so every router test fails) when the
    /// route is not in [`ROUTES`].
    fn listed<H: Handler<T, AppState>, T: 'static>(
        self,
        method: &str,
        path: &str,
        handler: H,
    ) -> Self {
        assert!(
            ROUTES.contains(&(method, path)),
            "{method} {path} is missing from http::ROUTES and docs/openapi.json"
        );
        let filter = axum::http::Method::from_bytes(method.as_bytes())
            .ok()
            .and_then(|m| MethodFilter::try_from(m).ok())
            .unwrap_or_else(|| panic!("{method} is not a routable method"));
        self.route(path, on(filter, handler))
    }
}

/// Builds the router; tests drive it with `oneshot`, `main` serves it.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.server.max_body_bytes;
    Router::new()
        .listed("GET", "/v1/recommendations", recommendations)
        .listed("GET", "/v1/similar/{item_id}", similar)
        .listed("POST", "/v1/events", post_events)
        .listed("POST", "/v1/items", post_items)
        .listed("GET", "/v1/items/{item_id}", get_item)
        .listed("DELETE", "/v1/items/{item_id}", delete_item)
        .listed("GET", "/v1/jobs/{job_id}", get_job)
        .listed("DELETE", "/v1/users/{user_id}", erase_user)
        .listed("GET", "/v1/users/{user_id}/events", export_user)
        .listed("GET", "/admin/policy", policy_report)
        .listed("GET", "/admin/model", model_status)
        .listed("POST", "/admin/model/retrain", retrain_model)
        .listed("POST", "/admin/policy/evaluate", evaluate_policy)
        .listed("GET", "/healthz", || async { "ok" })
        .listed("GET", "/readyz", readyz)
        .listed("GET", "/metrics", metrics)
        .listed("GET", "/openapi.json", openapi)
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Per-request deadline plus request metrics labelled by matched route (bounded labels).
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(req.method());
    let deadline = Duration::from_millis(state.config.server.request_timeout_ms);
    let too_long = req.uri().to_string().len() > MAX_URI_BYTES;
    let run = async {
        if too_long {
            ApiError::UriTooLong {
                limit: MAX_URI_BYTES,
            }
            .into_response()
        } else {
            next.run(req).await
        }
    };
    let response = match tokio::time::timeout(deadline, run).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout.into_response(),
    };
    state.metrics.observe_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Longest request URI served; longer ones get a JSON 414 (hyper's own limit is far higher).
const MAX_URI_BYTES: usize = 8 * 1024;

/// Metric label of a method: a fixed set, so invented methods cannot create new series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Probes, metrics and the API description are open to the cluster network; everything else
/// is identified.
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
}

/// Identifies the caller (operator key, edge-signed user, anonymous; see `auth.rs`), applies
/// the per-identity rate limit, and hands the [`Principal`] to the handlers.
async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if is_open(req.uri().path()) {
        return next.run(req).await;
    }
    match identify(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn identify(state: &AppState, req: Request) -> Result<Request, ApiError> {
    let auth = &state.auth;
    let (mut parts, body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let signed = auth.verifies_edge() && header(EDGE_SIGNATURE_HEADER).is_some();
    // The signature covers the body: buffer it (within the body limit) to hash it.
    let (body, digest) = if signed {
        let limit = state.config.server.max_body_bytes;
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit })?;
        let digest = body_digest(&bytes);
        (axum::body::Body::from(bytes), digest)
    } else {
        (body, String::new())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let principal = auth.identify(
        &Credentials {
            api_key: header(API_KEY_HEADER),
            signed: signed.then(|| SignedRequest {
                method: parts.method.as_str(),
                host: header(header::HOST.as_str()).unwrap_or(""),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                body_sha256: &digest,
                user: header(EDGE_USER_HEADER),
                timestamp: header(EDGE_TIMESTAMP_HEADER),
                nonce: header(EDGE_NONCE_HEADER),
                signature: header(EDGE_SIGNATURE_HEADER),
            }),
        },
        now,
    )?;
    if signed {
        auth.claim_shared_nonce(header(EDGE_NONCE_HEADER).unwrap_or(""))
            .await?;
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let rate_key = principal.rate_key().or_else(|| {
        // Anonymous callers through the edge are limited there, per client address.
        (!signed && !auth.is_trusted())
            .then_some(peer)
            .flatten()
            .map(|ip| format!("ip:{ip}"))
    });
    if let Some(key) = rate_key {
        auth.requests
            .take(&key, 1.0, Instant::now())
            .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    }
    parts.extensions.insert(principal);
    Ok(Request::from_parts(parts, body))
}

fn parse_query<T: DeserializeOwned + Default>(raw: Option<String>) -> Result<T, ApiError> {
    shared_types::parse_query(raw.as_deref()).map_err(|e| ApiError::bad(e.code, e.message))
}

fn path_param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad(ErrorCode::InvalidPath, e.body_text()))
}

fn with_tier(tier: TtlTier, body: impl IntoResponse) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(CACHE_TIER_HEADER, HeaderValue::from_static(tier.as_str()));
    r
}

async fn recommendations(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query: RecommendationQuery = parse_query(raw)?;
    let req = query.normalise().map_err(EngineError::from)?;
    if let Some(user) = &req.user_id {
        caller.may_read_user(user)?;
    }
    let engine = state.engine()?;
    let response = engine.recommend(&req).await?;
    Ok(ranked(TtlTier::for_recommendation(&req), response))
}

async fn similar(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    item_id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let item_id = path_param(item_id)?;
    let query: SimilarQuery = parse_query(raw)?;
    if let Some(user) = &query.user_id {
        caller.may_read_user(user)?;
    }
    let engine = state.engine()?;
    let response = engine
        .similar(
            &item_id,
            query.limit.unwrap_or(DEFAULT_LIMIT),
            query.user_id.as_deref(),
        )
        .await?;
    Ok(ranked(TtlTier::Popular, response))
}

/// A ranked answer: cacheable for its tier, unless it is partial or degraded, which no
/// cache should keep serving once the failure is over.
fn ranked(tier: TtlTier, response: shared_types::RecommendationResponse) -> Response {
    let incomplete = response.partial || !response.degraded.is_empty();
    let mut r = with_tier(tier, Json(response));
    if incomplete {
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

async fn get_item(
    State(state): State<AppState>,
    item_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let item_id = path_param(item_id)?;
    Ok(with_tier(
        TtlTier::Popular,
        Json(state.engine()?.get_item(&item_id)?),
    ))
}

async fn delete_item(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    item_id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::CatalogWrite)?;
    let item_id = path_param(item_id)?;
    state.engine()?.delete_item(&item_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything stored about a user (their data export): theirs, or `admin:read`.
async fn export_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    user_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let user_id = path_param(user_id)?;
    caller.may_read_user(&user_id)?;
    let events = state.engine()?.export_user(&user_id).await?;
    let mut r = Json(serde_json::json!({ "user_id": user_id, "events": events })).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Erases a user's data in every backend: theirs, or `admin:write`.
async fn erase_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    user_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let user_id = path_param(user_id)?;
    caller.may_erase_user(&user_id)?;
    let report = state.engine()?.erase_user(&user_id).await?;
    Ok(Json(report).into_response())
}

/// Decodes a body holding one object, a JSON array of objects, or NDJSON (one per line).
fn decode_many<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Vec<T>, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit },
        _ => ApiError::bad(ErrorCode::InvalidBody, e.body_text()),
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let invalid = |e: serde_json::Error| ApiError::bad(ErrorCode::InvalidJson, e.to_string());
    match content_type.as_str() {
        "application/json" => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first == Some(&b'[') {
                serde_json::from_slice(&body).map_err(invalid)
            } else {
                Ok(vec![serde_json::from_slice(&body).map_err(invalid)?])
            }
        }
        "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => body
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(i, line)| {
                serde_json::from_slice(line).map_err(|e| {
                    ApiError::bad(ErrorCode::InvalidJson, format!("line {}: {e}", i + 1))
                })
            })
            .collect(),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// The served model (version, training report) and the online learning state.
async fn model_status(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AdminRead)?;
    Ok(Json(state.engine()?.model_status()).into_response())
}

/// Starts a training in the background: 202, or 409 `training_in_progress` while one runs
/// and `not_enough_data` before `learning.min_positives` positive interactions.
async fn retrain_model(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AdminWrite)?;
    let engine = state.engine()?;
    engine.retrain_in_background()?;
    let status = engine.model_status();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "training": true, "serving_version": status.version })),
    )
        .into_response())
}

async fn policy_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AdminRead)?;
    Ok(Json(state.engine()?.policy_report(None).await?).into_response())
}

/// Off-policy estimate of candidate ranking weights on the logged decisions, before they
/// serve any traffic: `{"weights": {"semantic": 0.6, "freshness": 0.2, ...}}` (missing = 0).
async fn evaluate_policy(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::AdminRead)?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Candidate {
        weights: std::collections::HashMap<String, f32>,
    }
    let [candidate]: [Candidate; 1] =
        decode_many(&headers, body, state.config.server.max_body_bytes)?
            .try_into()
            .map_err(|_| ApiError::bad(ErrorCode::InvalidBody, "send one object"))?;
    let mut weights = [0.0f32; crate::policy::FEATURES];
    for (name, value) in candidate.weights {
        let i = crate::policy::FEATURE_NAMES
            .iter()
            .position(|n| *n == name)
            .ok_or_else(|| {
                ApiError::bad(
                    ErrorCode::InvalidWeights,
                    format!(
                        "unknown feature '{name}'; known: {}",
                        crate::policy::FEATURE_NAMES.join(", ")
                    ),
                )
            })?;
        if !value.is_finite() {
            return Err(ApiError::bad(
                ErrorCode::InvalidWeights,
                format!("'{name}' must be a finite number"),
            ));
        }
        weights[i] = value;
    }
    Ok(Json(state.engine()?.policy_report(Some(&weights)).await?).into_response())
}

async fn post_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let events: Vec<InteractionEvent> =
        decode_many(&headers, body, state.config.server.max_body_bytes)?;
    caller.may_write_events(events.iter().map(|e| e.user_id.as_str()))?;
    if let Principal::User(user) = &caller {
        // A cap per user on top of the request rate: a batch costs one token per event.
        state
            .auth
            .events
            .take(user, events.len() as f64, Instant::now())
            .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    }
    let accepted = state.engine()?.record_events(events).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

async fn post_items(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::CatalogWrite)?;
    let items: Vec<ItemInput> = decode_many(&headers, body, state.config.server.max_body_bytes)?;
    Ok(match state.engine()?.submit_items(items).await? {
        ItemsSubmitted::Stored(upserted) => {
            (StatusCode::OK, Json(ItemsUpserted { upserted })).into_response()
        }
        ItemsSubmitted::Job(job) => {
            let location = format!("/v1/jobs/{}", job.job_id);
            (
                StatusCode::ACCEPTED,
                [(axum::http::header::LOCATION, location)],
                Json(job),
            )
                .into_response()
        }
    })
}

async fn get_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    job_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::CatalogWrite)?;
    let job_id = path_param(job_id)?;
    let job = state.engine()?.job(&job_id).ok_or_else(|| {
        ApiError::from(EngineError::not_found(
            ErrorCode::JobNotFound,
            format!("no catalogue job '{job_id}' on this node"),
        ))
    })?;
    Ok(Json(job).into_response())
}

async fn readyz(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let api_key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok());
    let detailed = state.auth.may_see_details(api_key);
    match state.engine.get() {
        Some(engine) => {
            // A store of record that refuses writes would lose (refuse) every write sent
            // here: not ready, until a write succeeds again.
            if let Err(e) = engine.storage_writable().await {
                tracing::error!(error = %e, "not ready: storage refuses writes");
                let message = if detailed {
                    e.to_string()
                } else {
                    "storage refuses writes".to_string()
                };
                return (
                    status_of(ErrorCode::StorageUnavailable),
                    Json(ErrorBody::new(ErrorCode::StorageUnavailable, message)),
                )
                    .into_response();
            }
            // Dependencies only degrade answers (a cache miss, fewer candidates), so a failing
            // one is reported by name but the node stays ready.
            let mut dependencies = serde_json::Map::new();
            let mut degraded = false;
            for (name, health) in engine.dependencies().await {
                let status = match health {
                    Ok(()) => "ok".to_string(),
                    Err(e) => {
                        // The reason goes to the log and to operators, not to anyone.
                        tracing::warn!(dependency = name, error = %e, "dependency unhealthy");
                        degraded = true;
                        if detailed {
                            e.to_string()
                        } else {
                            "unavailable".to_string()
                        }
                    }
                };
                dependencies.insert(name.into(), status.into());
            }
            let (items, load) = (engine.catalog_len(), engine.catalogue_load());
            Json(serde_json::json!({
                "status": if degraded { "degraded" } else { "ready" },
                "items": items,
                "shards": engine.shard_count(),
                "graph_backlog": engine.graph_backlog(),
                "graph_filled": engine.is_graph_filled(),
                "catalogue": {
                    "loaded": items,
                    "total": items + load.pending,
                    "loading": load.running,
                },
                "dependencies": dependencies,
            }))
            .into_response()
        }
        None => (
            status_of(ErrorCode::NotReady),
            Json(ErrorBody::new(
                ErrorCode::NotReady,
                "the index is still loading",
            )),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The API description, `docs/openapi.json` as compiled in.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
