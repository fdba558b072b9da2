//! What the edge does with a request: serve it from the cache (and which key and tier),
//! pass it through, or reject it. Pure: the Workers glue only executes the plan.

use shared_types::{
    cache_key, cache_window, context_hash, effective_limit, parse_query, stable_hash,
    validate_item_id, validate_user_id, RecommendationQuery, SimilarQuery, TtlTier,
};

use crate::{EdgeConfig, EdgeError};

/// A cacheable GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRoute {
    /// `rec:v{V}:u{user}:ctx{hash}:t{window_start}`.
    pub key: String,
    /// Where the last good answer for this request is kept, across windows, for STALE.
    pub stale_key: String,
    /// The tier the request's shape gives; the core may override it per response.
    pub tier: TtlTier,
    /// Set for per-user answers, which a later event of that user invalidates.
    pub user_id: Option<String>,
    /// End (unix seconds) of the key's window: the entry cannot be found after it.
    pub window_end: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Cached(CachedRoute),
    /// Forwarded uncached. `records_events`: the body holds user events, so the users'
    /// cached answers must be invalidated once the core acknowledges them.
    PassThrough {
        records_events: bool,
    },
    /// The edge's own liveness probe.
    Health,
}

/// Plans a request from its method, path and raw query (without `?`).
pub fn plan(
    config: &EdgeConfig,
    method: &str,
    path: &str,
    query: Option<&str>,
    now_secs: i64,
) -> Result<Plan, EdgeError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let is_get = method.eq_ignore_ascii_case("GET");
    let only = |allowed: bool, plan: Result<Plan, EdgeError>| {
        if allowed {
            plan
        } else {
            Err(EdgeError::MethodNotAllowed)
        }
    };
    match segments.as_slice() {
        ["healthz"] => only(is_get, Ok(Plan::Health)),
        ["v1", "recommendations"] => only(is_get, recommendations(config, query, now_secs)),
        ["v1", "similar", item] => only(is_get, similar(config, item, query, now_secs)),
        ["v1", "items", item] => match method.to_ascii_uppercase().as_str() {
            "GET" => item_page(config, item, query, now_secs),
            "DELETE" => {
                validate_item_id(item)?;
                Ok(Plan::PassThrough {
                    records_events: false,
                })
            }
            _ => Err(EdgeError::MethodNotAllowed),
        },
        ["v1", "items"] => only(
            method.eq_ignore_ascii_case("POST"),
            Ok(Plan::PassThrough {
                records_events: false,
            }),
        ),
        ["v1", "events"] => only(
            method.eq_ignore_ascii_case("POST"),
            Ok(Plan::PassThrough {
                records_events: true,
            }),
        ),
        _ => Err(EdgeError::RouteNotFound),
    }
}

fn cached(
    config: &EdgeConfig,
    user_id: Option<String>,
    ctx_hash: &str,
    tier: TtlTier,
    now_secs: i64,
) -> Plan {
    let version = config.cache_version;
    let (start, end) = cache_window(config.ttl_secs(tier), now_secs);
    let user = user_id.as_deref();
    Plan::Cached(CachedRoute {
        key: cache_key(version, user, ctx_hash, start),
        stale_key: format!(
            "rec:v{version}:u{}:ctx{ctx_hash}:stale",
            user.unwrap_or("~")
        ),
        tier,
        user_id,
        window_end: end,
    })
}

fn recommendations(
    config: &EdgeConfig,
    query: Option<&str>,
    now_secs: i64,
) -> Result<Plan, EdgeError> {
    let req = parse_query::<RecommendationQuery>(query)?.normalise()?;
    let tier = TtlTier::for_recommendation(&req);
    let hash = context_hash(&req);
    Ok(cached(config, req.user_id, &hash, tier, now_secs))
}

fn similar(
    config: &EdgeConfig,
    item: &str,
    query: Option<&str>,
    now_secs: i64,
) -> Result<Plan, EdgeError> {
    validate_item_id(item)?;
    let q: SimilarQuery = parse_query(query)?;
    let limit = effective_limit(q.limit)?;
    if let Some(user) = &q.user_id {
        validate_user_id(user)?;
    }
    let hash = stable_hash(&format!("similar:{item};limit={limit}"));
    Ok(cached(config, q.user_id, &hash, TtlTier::Popular, now_secs))
}

fn item_page(
    config: &EdgeConfig,
    item: &str,
    query: Option<&str>,
    now_secs: i64,
) -> Result<Plan, EdgeError> {
    validate_item_id(item)?;
    if query.is_some_and(|q| !q.is_empty()) {
        return Err(EdgeError::Invalid(shared_types::ValidationError {
            code: "invalid_query",
            message: "item pages take no query parameters".into(),
        }));
    }
    let hash = stable_hash(&format!("item:{item}"));
    Ok(cached(config, None, &hash, TtlTier::Popular, now_secs))
}

/// Distinct, valid `user_id`s of an events body (one JSON object, an array, or NDJSON), so
/// their cached answers can be invalidated. Unparseable bodies give none: the core rejects them.
pub fn event_user_ids(body: &[u8]) -> Vec<String> {
    fn collect(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            serde_json::Value::Object(fields) => {
                if let Some(serde_json::Value::String(user)) = fields.get("user_id") {
                    if validate_user_id(user).is_ok() {
                        out.push(user.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let mut users = Vec::new();
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => collect(&value, &mut users),
        Err(_) => body
            .split(|&b| b == b'\n')
            .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
            .for_each(|v| collect(&v, &mut users)),
    }
    users.sort();
    users.dedup();
    users
}

/// Key of the marker recording when `user_id` last sent events: per-user answers stored
/// before it are no longer served.
pub fn user_marker_key(config: &EdgeConfig, user_id: &str) -> String {
    format!("rec:v{}:u{user_id}:events", config.cache_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EdgeConfig {
        EdgeConfig::from_vars(|name| (name == "CORE_ORIGIN").then(|| "http://core".into())).unwrap()
    }

    fn cached_route(method: &str, path: &str, query: &str, now: i64) -> CachedRoute {
        match plan(&config(), method, path, Some(query), now).unwrap() {
            Plan::Cached(c) => c,
            other => panic!("expected a cached plan, got {other:?}"),
        }
    }

    fn error(method: &str, path: &str, query: &str) -> (u16, String) {
        let err = plan(&config(), method, path, Some(query), 0).unwrap_err();
        let (status, body, _) = err.response_parts();
        (status, body.code)
    }

    #[test]
    fn personalised_requests_get_user_session_keys() {
        let c = cached_route(
            "GET",
            "/v1/recommendations",
            "user_id=u42&limit=5",
            1_000_000,
        );
        assert_eq!(c.tier, TtlTier::UserSession);
        assert_eq!(c.user_id.as_deref(), Some("u42"));
        let hash = &c.key["rec:v1:uu42:ctx".len()..][..16];
        assert_eq!(c.key, format!("rec:v1:uu42:ctx{hash}:t997200"));
        assert_eq!(c.window_end, 1_000_800);
        assert_eq!(c.stale_key, format!("rec:v1:uu42:ctx{hash}:stale"));
    }

    #[test]
    fn key_follows_user_context_and_time() {
        let base = cached_route("GET", "/v1/recommendations", "user_id=u1", 3_600).key;
        let other_user = cached_route("GET", "/v1/recommendations", "user_id=u2", 3_600).key;
        let other_ctx = cached_route(
            "GET",
            "/v1/recommendations",
            "user_id=u1&time_of_day=night",
            3_600,
        )
        .key;
        let same_spelled_differently =
            cached_route("GET", "/v1/recommendations", "limit=10&user_id=u1", 3_600).key;
        let next_hour = cached_route("GET", "/v1/recommendations", "user_id=u1", 7_200).key;
        assert_ne!(base, other_user);
        assert_ne!(base, other_ctx);
        assert_eq!(base, same_spelled_differently);
        assert_ne!(base, next_hour);
        // Anonymous popular requests roll over with every five-minute bucket.
        let a = cached_route("GET", "/v1/recommendations", "", 600);
        let b = cached_route("GET", "/v1/recommendations", "", 899);
        let c = cached_route("GET", "/v1/recommendations", "", 900);
        assert_eq!(a.tier, TtlTier::Popular);
        assert_eq!(a.key, b.key);
        assert_ne!(b.key, c.key);
        assert!(a.key.starts_with("rec:v1:u~:ctx"));
    }

    #[test]
    fn tiers_follow_the_request_shape() {
        let tier = |path: &str, q: &str| cached_route("GET", path, q, 0).tier;
        assert_eq!(tier("/v1/recommendations", ""), TtlTier::Popular);
        assert_eq!(tier("/v1/recommendations", "q=space"), TtlTier::Zeitgeist);
        assert_eq!(
            tier("/v1/recommendations", "locale=fr-FR"),
            TtlTier::Zeitgeist
        );
        assert_eq!(
            tier("/v1/recommendations", "user_id=a"),
            TtlTier::UserSession
        );
        assert_eq!(tier("/v1/similar/tt1", "limit=3"), TtlTier::Popular);
        assert_eq!(tier("/v1/items/tt1", ""), TtlTier::Popular);
        let similar = cached_route("GET", "/v1/similar/tt1", "limit=3", 0);
        assert_ne!(
            similar.key,
            cached_route("GET", "/v1/similar/tt2", "limit=3", 0).key
        );
    }

    #[test]
    fn malformed_input_is_rejected_at_the_edge() {
        assert_eq!(
            error("GET", "/v1/recommendations", "user_id=a%20b"),
            (400, "invalid_user_id".into())
        );
        assert_eq!(
            error("GET", "/v1/recommendations", "limit=1000"),
            (400, "invalid_limit".into())
        );
        let long = format!("q={}", "a".repeat(600));
        assert_eq!(error("GET", "/v1/recommendations", &long).0, 400);
        assert_eq!(
            error("GET", "/v1/recommendations", "colour=red"),
            (400, "invalid_query".into())
        );
        assert_eq!(error("GET", "/v1/similar/bad%2Fid", "").0, 400);
        assert_eq!(error("GET", "/v1/similar/tt1", "limit=0").0, 400);
        assert_eq!(
            error("GET", "/v1/nope", ""),
            (404, "route_not_found".into())
        );
        assert_eq!(error("PUT", "/v1/recommendations", "").0, 405);
        assert_eq!(error("GET", "/v1/events", "").0, 405);
    }

    #[test]
    fn writes_pass_through() {
        assert_eq!(
            plan(&config(), "POST", "/v1/events", None, 0),
            Ok(Plan::PassThrough {
                records_events: true
            })
        );
        assert_eq!(
            plan(&config(), "DELETE", "/v1/items/tt1", None, 0),
            Ok(Plan::PassThrough {
                records_events: false
            })
        );
        assert_eq!(
            plan(&config(), "GET", "/healthz", None, 0),
            Ok(Plan::Health)
        );
    }

    #[test]
    fn event_bodies_name_their_users() {
        let one = br#"{"user_id":"u1","item_id":"i","action":"like"}"#;
        let many = br#"[{"user_id":"u2"},{"user_id":"u1"},{"user_id":"u2"},{"user_id":"bad id"}]"#;
        let ndjson = b"{\"user_id\":\"u3\"}\n\n{\"user_id\":\"u1\"}\n";
        assert_eq!(event_user_ids(one), ["u1"]);
        assert_eq!(event_user_ids(many), ["u1", "u2"]);
        assert_eq!(event_user_ids(ndjson), ["u1", "u3"]);
        assert!(event_user_ids(b"not json").is_empty());
    }
}
