//! Workers runtime glue: executes a [`Plan`] with the Cache API and `fetch`. Decisions live
//! in the pure modules; this file only moves bytes and headers.

use std::time::Duration;

use futures_util::future::{join, select, Either};
use shared_types::edge_auth::{
    SignedParts, EDGE_NONCE_HEADER, EDGE_SIGNATURE_HEADER, EDGE_TIMESTAMP_HEADER,
};
use shared_types::{TtlTier, CACHE_TIER_HEADER};
use worker::{
    event, js_sys, AbortController, Cache, Context, Date, Delay, Env, Fetch, Headers, Method,
    Request, RequestInit, Response, Url,
};

use crate::entry::{
    storage_plan, CacheStatus, StoredEntry, CACHE_KEY_HEADER, EDGE_CACHE_HEADER,
    FRESH_UNTIL_HEADER, STORED_AT_HEADER,
};
use crate::plan::{event_user_ids, user_marker_key};
use crate::{plan, CachedRoute, EdgeConfig, EdgeError, Plan};

/// Headers of the core's answer worth keeping on the way to the client.
const FORWARDED_RESPONSE_HEADERS: [&str; 2] = ["content-type", "retry-after"];

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let config = match EdgeConfig::from_vars(|name| env.var(name).ok().map(|v| v.to_string())) {
        Ok(c) => c,
        Err(e) => return error_response(&e),
    };
    let url = req.url()?;
    let now_ms = Date::now().as_millis();
    let now_secs = (now_ms / 1000) as i64;
    let method = req.method();
    match plan(&config, method.as_ref(), url.path(), url.query(), now_secs) {
        Err(e) => error_response(&e),
        Ok(Plan::Health) => Response::ok("ok"),
        Ok(Plan::Cached(route)) => serve_cached(&config, &url, &route, &ctx, now_ms).await,
        Ok(Plan::PassThrough { records_events }) => {
            let body = req.bytes().await.unwrap_or_default();
            let content_type = req.headers().get("content-type")?;
            pass_through(
                &config,
                &url,
                method,
                body,
                content_type,
                records_events,
                now_ms,
            )
            .await
        }
    }
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

    let origin = forward(config, url, Method::Get, None, None, true).await;
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
    method: Method,
    body: Vec<u8>,
    content_type: Option<String>,
    records_events: bool,
    now_ms: u64,
) -> worker::Result<Response> {
    let idempotent = matches!(method, Method::Get | Method::Delete);
    let users = if records_events {
        event_user_ids(&body)
    } else {
        Vec::new()
    };
    let Some(resp) = forward(config, url, method, Some(body), content_type, idempotent).await
    else {
        return error_response(&EdgeError::OriginUnavailable);
    };
    if (200..300).contains(&resp.status_code()) && !users.is_empty() {
        // Written before the client hears "accepted", so its next read at this location
        // cannot be answered from a pre-event entry.
        let cache = Cache::default();
        let max_age = [TtlTier::Popular, TtlTier::UserSession, TtlTier::Zeitgeist]
            .into_iter()
            .map(|t| config.ttl_secs(t))
            .max()
            .unwrap_or(3600)
            .saturating_add(600);
        for user in users {
            let marker = respond(
                200,
                now_ms.to_string().into_bytes(),
                &[("cache-control", format!("s-maxage={max_age}"))],
            )?;
            let key = cache_url(url, &user_marker_key(config, &user));
            if let Err(e) = cache.put(key.as_str(), marker).await {
                worker::console_warn!("invalidation marker not written for {user}: {e}");
            }
        }
    }
    relay(resp, CacheStatus::Bypass, None).await
}

/// Sends the request to the core, signed, with a deadline per attempt and one retry for
/// idempotent requests. `None`: no answer at all (unreachable or too slow).
async fn forward(
    config: &EdgeConfig,
    url: &Url,
    method: Method,
    body: Option<Vec<u8>>,
    content_type: Option<String>,
    idempotent: bool,
) -> Option<Response> {
    let path = url.path();
    let query = url.query().unwrap_or("");
    let target = if query.is_empty() {
        format!("{}{path}", config.core_origin)
    } else {
        format!("{}{path}?{query}", config.core_origin)
    };
    let attempts = if idempotent { 2 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let headers = Headers::new();
        if let Some(ct) = &content_type {
            headers.set("content-type", ct).ok()?;
        }
        headers.set("accept", "application/json").ok()?;
        if let Some(secret) = &config.shared_secret {
            let timestamp = (Date::now().as_millis() / 1000) as i64;
            let nonce = format!(
                "{:013x}{:013x}",
                (js_sys::Math::random() * 4_503_599_627_370_496.0) as u64,
                (js_sys::Math::random() * 4_503_599_627_370_496.0) as u64
            );
            let signature = SignedParts {
                method: method.as_ref(),
                path,
                query,
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
        init.with_method(method.clone()).with_headers(headers);
        if let Some(bytes) = body.as_deref().filter(|b| !b.is_empty()) {
            init.with_body(Some(js_sys::Uint8Array::from(bytes).into()));
        }
        let request = Request::new_with_init(&target, &init).ok()?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let send = Fetch::Request(request);
        let attempt = Box::pin(send.send_with_signal(&signal));
        let deadline = Box::pin(Delay::from(Duration::from_millis(u64::from(
            config.origin_timeout_ms,
        ))));
        // `None`: the deadline passed first.
        let outcome = match select(attempt, deadline).await {
            Either::Left((result, _)) => Some(result),
            Either::Right(_) => None,
        };
        match outcome {
            Some(Ok(resp)) => {
                if !matches!(resp.status_code(), 502..=504) {
                    return Some(resp);
                }
                last = Some(resp);
            }
            Some(Err(e)) => worker::console_warn!("core unreachable: {e}"),
            None => {
                controller.abort();
                worker::console_warn!("core did not answer within {} ms", config.origin_timeout_ms);
            }
        }
    }
    last
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
    let (status, body, retry_after) = error.response_parts();
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("cache-control", "no-store".into()),
    ];
    if let Some(secs) = retry_after {
        headers.push(("retry-after", secs.to_string()));
    }
    let json = serde_json::to_vec(&body).map_err(|e| worker::Error::RustError(e.to_string()))?;
    respond(status, json, &headers)
}
