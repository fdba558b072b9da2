//! Workers runtime glue: executes a [`Plan`] with the Cache API and `fetch`. Decisions live
//! in the pure modules; this file only moves bytes and headers, fetches the token keys and
//! asks WebCrypto about RS256/ES256 signatures.

use std::cell::RefCell;
use std::time::Duration;

use futures_util::future::{join, select, Either, FutureExt, LocalBoxFuture, Shared};
use futures_util::StreamExt;
use shared_types::edge_auth::{
    body_digest, SignedParts, API_KEY_HEADER, EDGE_NONCE_HEADER, EDGE_SIGNATURE_HEADER,
    EDGE_TIMESTAMP_HEADER, EDGE_USER_HEADER,
};
use shared_types::{TtlTier, CACHE_TIER_HEADER};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    event, js_sys, web_sys, AbortController, Cache, Context, Date, Delay, Env, Fetch, Headers,
    Method, Request, RequestInit, Response, Url,
};

use crate::auth::{bearer_token, Alg, JwksCache, KeySet, PublicKey, Token};
use crate::entry::{
    storage_plan, CacheStatus, StoredEntry, CACHE_KEY_HEADER, EDGE_CACHE_HEADER,
    FRESH_UNTIL_HEADER, STORED_AT_HEADER,
};
use crate::plan::{user_marker_key, MAX_BODY_BYTES};
use crate::ratelimit::{identity, FixedWindow};
use crate::{plan, CachedRoute, Caller, EdgeConfig, EdgeError, Incoming, JwtConfig, Plan};

/// Headers of the core's answer worth keeping on the way to the client.
const FORWARDED_RESPONSE_HEADERS: [&str; 2] = ["content-type", "retry-after"];
/// Deadline of one fetch of the token keys (JWKS).
const JWKS_TIMEOUT_MS: u32 = 3_000;

/// The Workers rate-limiting binding (`[[ratelimits]]` in `wrangler.toml`).
const RATE_LIMITER_BINDING: &str = "RATE_LIMITER";
/// Retry-After of a refusal by the binding, which does not say when its window ends.
const BINDING_PERIOD_SECS: u32 = 60;

thread_local! {
    /// The isolate's own counts, where the runtime has no rate-limiting binding.
    static LOCAL_LIMITS: RefCell<Option<FixedWindow>> = const { RefCell::new(None) };
}

/// Why a request ends early: an answer for the client, or a failure of the runtime itself.
enum Fail {
    Edge(EdgeError),
    Runtime(worker::Error),
}

impl From<EdgeError> for Fail {
    fn from(e: EdgeError) -> Self {
        Self::Edge(e)
    }
}

impl From<worker::Error> for Fail {
    fn from(e: worker::Error) -> Self {
        Self::Runtime(e)
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    match handle(req, &env, &ctx).await {
        Ok(resp) => Ok(resp),
        Err(Fail::Edge(e)) => error_response(&e),
        Err(Fail::Runtime(e)) => Err(e),
    }
}

async fn handle(mut req: Request, env: &Env, ctx: &Context) -> Result<Response, Fail> {
    let config = EdgeConfig::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))?;
    let url = req.url()?;
    let now_ms = Date::now().as_millis();
    let now_secs = (now_ms / 1000) as i64;
    let headers = req.headers();
    let authorization = headers.get("authorization")?;
    let api_key = headers.get(API_KEY_HEADER)?;
    let content_type = headers.get("content-type")?;
    let user = authenticate(&config, authorization.as_deref(), now_ms).await?;
    if url.path() != "/healthz" {
        let client = headers.get("cf-connecting-ip")?;
        let key = identity(user.as_deref(), client.as_deref());
        check_rate(&config, env, &key, now_secs).await?;
    }
    let body = read_body(&mut req).await?;
    let method = req.method();
    let incoming = Incoming {
        method: method.as_ref(),
        path: url.path(),
        query: url.query(),
        content_type: content_type.as_deref(),
        body: &body,
        caller: Caller {
            user: user.as_deref(),
            api_key: api_key.is_some(),
        },
    };
    Ok(match plan(&config, &incoming, now_secs)? {
        Plan::Health => Response::ok("ok")?,
        Plan::Cached(route) => serve_cached(&config, &url, &route, ctx, now_ms).await?,
        Plan::PassThrough { user, invalidates } => {
            let idempotent = matches!(method, Method::Get | Method::Delete);
            let write = !matches!(method, Method::Get | Method::Head);
            let outgoing = Outgoing {
                timeout_ms: if write {
                    config.write_timeout_ms
                } else {
                    config.origin_timeout_ms
                },
                write,
                method,
                query: url.query().unwrap_or(""),
                user: user.as_deref(),
                body: &body,
                content_type: content_type.as_deref(),
                api_key: api_key.as_deref(),
                idempotent,
            };
            pass_through(&config, &url, &outgoing, &invalidates, now_ms).await?
        }
    })
}

/// Counts the request against its identity's budget: through the rate-limiting binding where
/// the runtime has one, else in this isolate.
async fn check_rate(config: &EdgeConfig, env: &Env, key: &str, now_secs: i64) -> Result<(), Fail> {
    if config.rate_limit_per_minute == 0 {
        return Ok(());
    }
    let refused = |retry_after_secs| Fail::Edge(EdgeError::RateLimited { retry_after_secs });
    if let Ok(binding) = env.rate_limiter(RATE_LIMITER_BINDING) {
        return match binding.limit(key.to_string()).await?.success {
            true => Ok(()),
            false => Err(refused(BINDING_PERIOD_SECS)),
        };
    }
    LOCAL_LIMITS.with(|limits| {
        limits
            .borrow_mut()
            .get_or_insert_with(|| FixedWindow::new(config.rate_limit_per_minute, 60))
            .allow(key, now_secs)
            .map_err(refused)
    })
}

/// The whole request body, refused past [`MAX_BODY_BYTES`] (by its declared length, or
/// while reading it), so the digest the core checks is over exactly what is forwarded.
async fn read_body(req: &mut Request) -> Result<Vec<u8>, Fail> {
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let declared = req.headers().get("content-length")?;
    if declared.and_then(|n| n.trim().parse::<usize>().ok()) > Some(MAX_BODY_BYTES) {
        return Err(EdgeError::PayloadTooLarge.into());
    }
    let mut stream = req.stream()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(EdgeError::PayloadTooLarge.into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The verified user of the request's bearer token; `None` for an anonymous caller.
async fn authenticate(
    config: &EdgeConfig,
    authorization: Option<&str>,
    now_ms: u64,
) -> Result<Option<String>, EdgeError> {
    let Some(raw) = bearer_token(authorization)? else {
        return Ok(None);
    };
    let jwt = config
        .jwt
        .as_ref()
        .ok_or_else(|| EdgeError::Unauthorized("tokens are not accepted here".into()))?;
    let token = Token::parse(raw)?;
    if token.alg == Alg::Hs256 {
        token.verify_hs256(jwt)?;
    } else {
        let key = published_key(jwt, &token, now_ms).await?;
        if !verify_published(&key, &token).await {
            return Err(EdgeError::Unauthorized("bad token signature".into()));
        }
    }
    token.user(jwt, (now_ms / 1000) as i64).map(Some)
}

/// A fetch of the key set, shared by the requests of the isolate that wait for it.
type KeysFetch = Shared<LocalBoxFuture<'static, Option<KeySet>>>;

/// The isolate's key set, and the fetch under way, if any.
#[derive(Default)]
struct Keys {
    cache: JwksCache,
    fetching: Option<KeysFetch>,
}

thread_local! {
    static KEYS: RefCell<Keys> = RefCell::default();
}

/// The published key for an RS256/ES256 token, fetching the key set when the policy in
/// [`JwksCache`] says so; requests the cached set cannot serve join a fetch under way.
async fn published_key(
    jwt: &JwtConfig,
    token: &Token<'_>,
    now_ms: u64,
) -> Result<PublicKey, EdgeError> {
    let url = jwt.jwks_url.as_deref().ok_or_else(|| {
        EdgeError::Unauthorized(format!(
            "token algorithm '{}' is not accepted",
            token.alg.name()
        ))
    })?;
    let (alg, kid) = (token.alg, token.kid.as_deref());
    let fetch = KEYS.with_borrow_mut(|keys| {
        if let Some(fetch) = &keys.fetching {
            return keys.cache.key(alg, kid).is_err().then(|| fetch.clone());
        }
        if !keys.cache.refresh_due(alg, kid, now_ms, jwt.jwks_ttl_secs) {
            return None;
        }
        keys.cache.attempted(now_ms);
        let fetch = fetch_keys(url.to_string()).boxed_local().shared();
        keys.fetching = Some(fetch.clone());
        Some(fetch)
    });
    if let Some(fetch) = fetch {
        let fetched = fetch.clone().await;
        KEYS.with_borrow_mut(|keys| {
            if keys.fetching.as_ref().is_some_and(|f| f.ptr_eq(&fetch)) {
                keys.fetching = None;
                if let Some(set) = fetched {
                    keys.cache.store(set, now_ms);
                }
            }
        });
    }
    KEYS.with_borrow(|keys| keys.cache.key(alg, kid))
}

async fn fetch_keys(url: String) -> Option<KeySet> {
    let request = Request::new(&url, Method::Get).ok()?;
    let answer = match fetch_within(request, JWKS_TIMEOUT_MS).await {
        Some(Ok(resp)) if resp.status_code() == 200 => Ok(resp),
        Some(Ok(resp)) => Err(format!("status {}", resp.status_code())),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(format!("no answer within {JWKS_TIMEOUT_MS} ms")),
    };
    let keys = match answer {
        Ok(mut resp) => match resp.bytes().await {
            Ok(bytes) => KeySet::parse(&bytes),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e),
    };
    keys.map_err(|e| worker::console_warn!("token keys not fetched from {url}: {e}"))
        .ok()
}

/// RS256/ES256 by the runtime's WebCrypto; a key it refuses is a failed check.
async fn verify_published(key: &PublicKey, token: &Token<'_>) -> bool {
    let verdict = async {
        let json =
            |text: &str| js_sys::JSON::parse(text).map(JsValue::unchecked_into::<js_sys::Object>);
        let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let subtle = scope.crypto()?.subtle();
        let (import, verify) = key.webcrypto_params();
        let usages = js_sys::Array::of1(&JsValue::from_str("verify"));
        let imported = subtle.import_key_with_object(
            "jwk",
            &json(&key.webcrypto_jwk())?,
            &json(import)?,
            false,
            &usages,
        )?;
        let crypto_key: web_sys::CryptoKey = JsFuture::from(imported).await?.unchecked_into();
        let checked = subtle.verify_with_object_and_u8_array_and_u8_array(
            &json(verify)?,
            &crypto_key,
            &token.signature,
            token.signing_input.as_bytes(),
        )?;
        Ok::<bool, JsValue>(JsFuture::from(checked).await?.as_bool() == Some(true))
    };
    verdict.await.unwrap_or_else(|e| {
        let why = js_sys::Reflect::get(&e, &JsValue::from_str("message")).ok();
        let why = why.and_then(|m| m.as_string()).unwrap_or_default();
        worker::console_warn!("token signature not checked: {why}");
        false
    })
}

/// Cache entries live under a reserved path of the worker's own host.
fn cache_url(url: &Url, key: &str) -> String {
    format!(
        "https://{}/__edge-cache/{key}",
        url.host_str().unwrap_or("edge")
    )
}

async fn serve_cached(
    config: &EdgeConfig,
    url: &Url,
    route: &CachedRoute,
    ctx: &Context,
    now_ms: u64,
) -> worker::Result<Response> {
    let cache = Cache::default();
    let entry_url = cache_url(url, &route.key);
    let stale_url = cache_url(url, &route.stale_key);
    let marker = async {
        let user = route.user_id.as_deref()?;
        let mut found = cache
            .get(
                cache_url(url, &user_marker_key(config, user)).as_str(),
                false,
            )
            .await
            .ok()??;
        found.text().await.ok()?.trim().parse::<u64>().ok()
    };
    let (entry, events_at) = join(cache.get(entry_url.as_str(), false), marker).await;
    if let Ok(Some(mut hit)) = entry {
        let headers = hit.headers();
        let meta = StoredEntry::parse(
            headers.get(STORED_AT_HEADER)?.as_deref(),
            headers.get(FRESH_UNTIL_HEADER)?.as_deref(),
        );
        if let Some(meta) = meta.filter(|m| m.is_fresh(now_ms, events_at)) {
            let tier = headers.get(CACHE_TIER_HEADER)?.unwrap_or_default();
            let max_age = (meta.fresh_until_secs - (now_ms / 1000) as i64).max(0);
            let body = hit.bytes().await?;
            return cached_answer(200, body, CacheStatus::Hit, route, tier, max_age);
        }
    }

    let outgoing = Outgoing {
        method: Method::Get,
        query: &route.query,
        user: route.user_id.as_deref(),
        body: &[],
        content_type: None,
        api_key: None,
        idempotent: true,
        timeout_ms: config.origin_timeout_ms,
        write: false,
    };
    let origin = forward(config, url.path(), &outgoing).await;
    let now_secs = (now_ms / 1000) as i64;
    match origin {
        Some(mut resp) if (200..300).contains(&resp.status_code()) => {
            let status = resp.status_code();
            let core_tier = resp
                .headers()
                .get(CACHE_TIER_HEADER)?
                .and_then(|t| TtlTier::parse(&t));
            // The core marks partial and degraded answers no-store: they must not outlive
            // the failure behind them.
            let storable = !resp.headers().has("set-cookie")?
                && !resp
                    .headers()
                    .get("cache-control")?
                    .is_some_and(|c| c.contains("no-store"));
            let body = resp.bytes().await?;
            let storage = storage_plan(config, route, core_tier, now_secs);
            if storable && storage.fresh_max_age > 0 {
                let stored = |max_age: u32| {
                    respond(
                        status,
                        body.clone(),
                        &[
                            ("content-type", "application/json".into()),
                            (CACHE_TIER_HEADER, storage.tier.as_str().into()),
                            (STORED_AT_HEADER, now_ms.to_string()),
                            (FRESH_UNTIL_HEADER, storage.fresh_until_secs.to_string()),
                            ("cache-control", format!("s-maxage={max_age}")),
                        ],
                    )
                };
                let fresh = stored(storage.fresh_max_age)?;
                let stale = stored(storage.stale_max_age)?;
                ctx.wait_until(async move {
                    let cache = Cache::default();
                    if let Err(e) = cache.put(entry_url.as_str(), fresh).await {
                        worker::console_warn!("cache put failed: {e}");
                    }
                    if let Err(e) = cache.put(stale_url.as_str(), stale).await {
                        worker::console_warn!("stale cache put failed: {e}");
                    }
                });
            }
            cached_answer(
                status,
                body,
                CacheStatus::Miss,
                route,
                storage.tier.as_str().into(),
                i64::from(storage.fresh_max_age),
            )
        }
        // The core judged the request (4xx): pass its answer on, uncached.
        Some(resp) if resp.status_code() < 500 => {
            relay(resp, CacheStatus::Miss, Some(&route.key)).await
        }
        failed => {
            if let Ok(Some(mut stale)) = cache.get(stale_url.as_str(), false).await {
                let tier = stale.headers().get(CACHE_TIER_HEADER)?.unwrap_or_default();
                let body = stale.bytes().await?;
                return cached_answer(200, body, CacheStatus::Stale, route, tier, 0);
            }
            match failed {
                Some(resp) => relay(resp, CacheStatus::Miss, Some(&route.key)).await,
                None => error_response(&EdgeError::OriginUnavailable),
            }
        }
    }
}

async fn pass_through(
    config: &EdgeConfig,
    url: &Url,
    outgoing: &Outgoing<'_>,
    invalidates: &[String],
    now_ms: u64,
) -> worker::Result<Response> {
    let Some(resp) = forward(config, url.path(), outgoing).await else {
        // A write may have been stored although no answer came: say so, so the client
        // retries with the same ids instead of assuming either outcome.
        return error_response(if outgoing.write {
            &EdgeError::WriteOutcomeUnknown
        } else {
            &EdgeError::OriginUnavailable
        });
    };
    if (200..300).contains(&resp.status_code()) && !invalidates.is_empty() {
        // Written before the client hears "accepted", so its next read at this location
        // cannot be answered from a pre-event entry.
        let cache = Cache::default();
        let max_age = [TtlTier::Popular, TtlTier::UserSession, TtlTier::Zeitgeist]
            .into_iter()
            .map(|t| config.ttl_secs(t))
            .max()
            .unwrap_or(3600)
            .saturating_add(600);
        for user in invalidates {
            let marker = respond(
                200,
                now_ms.to_string().into_bytes(),
                &[("cache-control", format!("s-maxage={max_age}"))],
            )?;
            let key = cache_url(url, &user_marker_key(config, user));
            if let Err(e) = cache.put(key.as_str(), marker).await {
                worker::console_warn!("invalidation marker not written for {user}: {e}");
            }
        }
    }
    relay(resp, CacheStatus::Bypass, None).await
}

/// A request to the core, as the plan shaped it.
struct Outgoing<'a> {
    method: Method,
    /// Raw query without `?`.
    query: &'a str,
    /// The authenticated user the request is signed for ([`EDGE_USER_HEADER`]).
    user: Option<&'a str>,
    body: &'a [u8],
    content_type: Option<&'a str>,
    /// The client's operator key, passed on for the core to check.
    api_key: Option<&'a str>,
    /// Safe to send twice (one retry after a timeout or a 502-504).
    idempotent: bool,
    /// Deadline of one attempt.
    timeout_ms: u32,
    /// Changes state at the core (anything but GET and HEAD).
    write: bool,
}

/// Sends the request to the core, signed, with a deadline per attempt and one retry for
/// idempotent requests. `None`: no answer at all (unreachable or too slow).
///
/// The headers are built here from nothing: a client's `authorization`, `x-edge-user` or
/// `x-edge-*` signature headers never reach the core.
async fn forward(config: &EdgeConfig, path: &str, out: &Outgoing<'_>) -> Option<Response> {
    let target = if out.query.is_empty() {
        format!("{}{path}", config.core_origin)
    } else {
        format!("{}{path}?{}", config.core_origin, out.query)
    };
    let digest = body_digest(out.body);
    let attempts = if out.idempotent { 2 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let headers = Headers::new();
        if let Some(ct) = out.content_type {
            headers.set("content-type", ct).ok()?;
        }
        headers.set("accept", "application/json").ok()?;
        if let Some(key) = out.api_key {
            headers.set(API_KEY_HEADER, key).ok()?;
        }
        if let Some(user) = out.user {
            headers.set(EDGE_USER_HEADER, user).ok()?;
        }
        if let Some(secret) = &config.shared_secret {
            let timestamp = (Date::now().as_millis() / 1000) as i64;
            let nonce = format!(
                "{:013x}{:013x}",
                (js_sys::Math::random() * 4_503_599_627_370_496.0) as u64,
                (js_sys::Math::random() * 4_503_599_627_370_496.0) as u64
            );
            let signature = SignedParts {
                method: out.method.as_ref(),
                host: &config.core_host,
                path,
                query: out.query,
                body_sha256: &digest,
                user: out.user.unwrap_or(""),
                timestamp,
                nonce: &nonce,
            }
            .sign(secret.as_bytes());
            headers
                .set(EDGE_TIMESTAMP_HEADER, &timestamp.to_string())
                .ok()?;
            headers.set(EDGE_NONCE_HEADER, &nonce).ok()?;
            headers.set(EDGE_SIGNATURE_HEADER, &signature).ok()?;
        }
        let mut init = RequestInit::new();
        init.with_method(out.method.clone()).with_headers(headers);
        if !out.body.is_empty() {
            init.with_body(Some(js_sys::Uint8Array::from(out.body).into()));
        }
        let request = Request::new_with_init(&target, &init).ok()?;
        match fetch_within(request, out.timeout_ms).await {
            Some(Ok(resp)) => {
                if !matches!(resp.status_code(), 502..=504) {
                    return Some(resp);
                }
                last = Some(resp);
            }
            Some(Err(e)) => worker::console_warn!("core unreachable: {e}"),
            None => {
                worker::console_warn!("core did not answer within {} ms", out.timeout_ms);
            }
        }
    }
    last
}

/// Sends `request`, aborting it at the deadline; `None` when the deadline came first.
async fn fetch_within(request: Request, timeout_ms: u32) -> Option<worker::Result<Response>> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let send = Fetch::Request(request);
    let attempt = Box::pin(send.send_with_signal(&signal));
    let deadline = Box::pin(Delay::from(Duration::from_millis(u64::from(timeout_ms))));
    let outcome = match select(attempt, deadline).await {
        Either::Left((result, _)) => Some(result),
        Either::Right(_) => None,
    };
    if outcome.is_none() {
        controller.abort();
    }
    outcome
}

/// An answer on a cacheable route, with the edge's cache headers.
fn cached_answer(
    status: u16,
    body: Vec<u8>,
    cache: CacheStatus,
    route: &CachedRoute,
    tier: String,
    max_age: i64,
) -> worker::Result<Response> {
    respond(
        status,
        body,
        &[
            (EDGE_CACHE_HEADER, cache.as_str().into()),
            (CACHE_KEY_HEADER, route.key.clone()),
            (CACHE_TIER_HEADER, tier),
            ("cache-control", format!("s-maxage={max_age}")),
            ("content-type", "application/json".into()),
        ],
    )
}

fn respond(status: u16, body: Vec<u8>, headers: &[(&str, String)]) -> worker::Result<Response> {
    let mut resp = Response::from_bytes(body)?.with_status(status);
    for (name, value) in headers {
        if !value.is_empty() {
            resp.headers_mut().set(name, value)?;
        }
    }
    Ok(resp)
}

/// Re-emits the core's answer (status, body, content type) with the edge's headers.
async fn relay(
    mut resp: Response,
    status: CacheStatus,
    key: Option<&str>,
) -> worker::Result<Response> {
    let mut headers: Vec<(&str, String)> = vec![
        (EDGE_CACHE_HEADER, status.as_str().into()),
        ("cache-control", "no-store".into()),
    ];
    for name in FORWARDED_RESPONSE_HEADERS {
        if let Some(v) = resp.headers().get(name)? {
            headers.push((name, v));
        }
    }
    if let Some(key) = key {
        headers.push((CACHE_KEY_HEADER, key.into()));
    }
    let code = resp.status_code();
    respond(code, resp.bytes().await?, &headers)
}

fn error_response(error: &EdgeError) -> worker::Result<Response> {
    let (status, body, extra) = error.response_parts();
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("cache-control", "no-store".into()),
    ];
    headers.extend(extra);
    let json = serde_json::to_vec(&body).map_err(|e| worker::Error::RustError(e.to_string()))?;
    respond(status, json, &headers)
}
