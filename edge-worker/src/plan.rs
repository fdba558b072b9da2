//! What the edge does with a request: serve it from the cache (and which key and tier),
//! pass it through, or reject it, given who the caller is. Pure: the Workers glue
//! authenticates the caller, reads the body and then only executes the plan.
//!
//! Identity rules: a verified token's user is the only user a caller can be personalised
//! as or post events for; anonymous callers get only non-personalised answers; catalogue
//! writes are refused unless the deployment forwards them (the core then checks the
//! operator key).

use serde_json::Value;
use shared_types::{
    cache_key, cache_window, context_hash, effective_limit, parse_query, stable_hash,
    validate_item_id, validate_user_id, ErrorCode, RecommendationQuery, SimilarQuery, TtlTier,
    ValidationError,
};

use crate::{EdgeConfig, EdgeError};

/// Largest request body the edge buffers, digests and forwards.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Who is calling, as the glue established it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caller<'a> {
    /// The user of a verified token; `None` for anonymous callers.
    pub user: Option<&'a str>,
    /// Whether the request carries an operator API key (`x-api-key`). The core checks the
    /// key; the edge only lets such requests through to it.
    pub api_key: bool,
}

/// A request as the planner sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The whole body (at most [`MAX_BODY_BYTES`]); empty for reads.
    pub body: &'a [u8],
    pub caller: Caller<'a>,
}

/// A cacheable GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRoute {
    /// `rec:v{V}:u{user}:ctx{hash}:t{window_start}`.
    pub key: String,
    /// Where the last good answer for this request is kept, across windows, for STALE.
    pub stale_key: String,
    /// The tier the request's shape gives; the core may override it per response.
    pub tier: TtlTier,
    /// The user the answer is personalised for: the key's user and the user the forwarded
    /// request is signed for, so a shared (`u~`) entry is always an anonymous answer.
    /// A later event of that user invalidates it.
    pub user_id: Option<String>,
    /// End (unix seconds) of the key's window: the entry cannot be found after it.
    pub window_end: i64,
    /// The raw query forwarded to the core: the client's, plus `user_id` when the edge
    /// personalises for the token's user.
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Cached(CachedRoute),
    /// Forwarded uncached with the client's query and body, signed for `user` (the
    /// token's). Once the core acknowledges it, cached answers of the `invalidates` users
    /// (whose events it carried) are no longer served.
    PassThrough {
        user: Option<String>,
        invalidates: Vec<String>,
    },
    /// The edge's own liveness probe.
    Health,
}

impl Plan {
    fn pass_through(caller: Caller<'_>, invalidates: Vec<String>) -> Self {
        Self::PassThrough {
            user: caller.user.map(String::from),
            invalidates,
        }
    }
}

/// Plans a request.
pub fn plan(config: &EdgeConfig, req: &Incoming<'_>, now_secs: i64) -> Result<Plan, EdgeError> {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let method = req.method.to_ascii_uppercase();
    let only = |allowed: &str, plan: &dyn Fn() -> Result<Plan, EdgeError>| {
        if method == allowed {
            plan()
        } else {
            Err(EdgeError::MethodNotAllowed)
        }
    };
    let (query, caller) = (req.query, req.caller);
    match segments.as_slice() {
        ["healthz"] => only("GET", &|| Ok(Plan::Health)),
        ["v1", "recommendations"] => {
            only("GET", &|| recommendations(config, query, caller, now_secs))
        }
        ["v1", "similar", item] => only("GET", &|| similar(config, item, query, caller, now_secs)),
        ["v1", "items", item] => match method.as_str() {
            "GET" => item_page(config, item, query, now_secs),
            "DELETE" => {
                validate_item_id(item)?;
                catalog_write(config, caller)
            }
            _ => Err(EdgeError::MethodNotAllowed),
        },
        ["v1", "items"] => only("POST", &|| catalog_write(config, caller)),
        // A catalogue job's progress: as private as the write that started it.
        ["v1", "jobs", _] => only("GET", &|| catalog_write(config, caller)),
        ["v1", "events"] => only("POST", &|| events(req)),
        ["v1", "users", user] => only("DELETE", &|| user_data(caller, user, true)),
        ["v1", "users", user, "events"] => only("GET", &|| user_data(caller, user, false)),
        _ => Err(EdgeError::RouteNotFound),
    }
}

/// The user a personalised read may name: only the caller's own, and only with a token.
fn own_user(caller: Caller<'_>, asked: Option<&str>) -> Result<Option<String>, EdgeError> {
    match (caller.user, asked) {
        (_, None) => Ok(None),
        (None, Some(_)) => Err(EdgeError::Unauthorized(
            "personalised answers need a token for that user_id".into(),
        )),
        (Some(me), Some(asked)) if me == asked => Ok(Some(me.into())),
        (Some(_), Some(_)) => Err(EdgeError::Forbidden(
            "user_id must be the user of the token".into(),
        )),
    }
}

/// A user's data export or erasure: their own token, or an operator key (the core checks its
/// scope). An erasure drops the user's cached answers once the core acknowledges it.
fn user_data(caller: Caller<'_>, user: &str, erase: bool) -> Result<Plan, EdgeError> {
    validate_user_id(user)?;
    match caller.user {
        Some(me) if me != user => Err(EdgeError::Forbidden(
            "you may only export or erase your own data".into(),
        )),
        None if !caller.api_key => Err(EdgeError::Unauthorized(
            "exporting or erasing data needs a token for that user".into(),
        )),
        _ => Ok(Plan::pass_through(
            caller,
            if erase {
                vec![user.to_string()]
            } else {
                Vec::new()
            },
        )),
    }
}

fn catalog_write(config: &EdgeConfig, caller: Caller<'_>) -> Result<Plan, EdgeError> {
    if config.forward_catalog_writes {
        Ok(Plan::pass_through(caller, Vec::new()))
    } else {
        Err(EdgeError::Forbidden(
            "catalogue writes are not accepted on this endpoint".into(),
        ))
    }
}

/// Events: with a token, every event must be the token user's (the body is read the way
/// the core reads it, so the edge checks the events the core would record); without one,
/// only API-key callers (server-side ingestion) go through, and the core checks the key.
fn events(req: &Incoming<'_>) -> Result<Plan, EdgeError> {
    let caller = req.caller;
    let Some(me) = caller.user else {
        if !caller.api_key {
            return Err(EdgeError::Unauthorized(
                "posting events needs a token (or an API key)".into(),
            ));
        }
        // Unreadable bodies invalidate nothing: the core refuses them.
        let mut users: Vec<String> = event_users(req.content_type, req.body)
            .unwrap_or_default()
            .into_iter()
            .flatten()
            .filter(|u| validate_user_id(u).is_ok())
            .collect();
        users.sort();
        users.dedup();
        return Ok(Plan::pass_through(caller, users));
    };
    let users = event_users(req.content_type, req.body)?;
    if users.iter().any(|u| u.as_deref() != Some(me)) {
        return Err(EdgeError::Forbidden(
            "every event's user_id must be the user of the token".into(),
        ));
    }
    let invalidates = if users.is_empty() {
        Vec::new()
    } else {
        vec![me.to_string()]
    };
    Ok(Plan::pass_through(caller, invalidates))
}

/// The `user_id` of each event in a body, split the way the core splits it, by content
/// type: `application/json` (one event, an array, or `{"events": [...]}`) or NDJSON (one
/// event per non-blank line). `None` for an event without a string `user_id`.
///
/// Read as untyped JSON (typed decoding would pull float formatting into the worker for
/// its error messages): for every body the core accepts, these are the users it records.
pub fn event_users(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<Option<String>>, EdgeError> {
    fn user(event: &Value) -> Option<String> {
        event.get("user_id")?.as_str().map(String::from)
    }
    let parse = |bytes: &[u8], line: Option<usize>| {
        serde_json::from_slice::<Value>(bytes).map_err(|e| {
            let message = match line {
                Some(n) => format!("line {n}: {e}"),
                None => e.to_string(),
            };
            EdgeError::Invalid(ValidationError {
                code: ErrorCode::InvalidJson,
                message,
            })
        })
    };
    let media_type = content_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media_type.as_str() {
        "application/json" => Ok(match parse(body, None)? {
            Value::Array(events) => events.iter().map(user).collect(),
            Value::Object(fields) if fields.len() == 1 && fields.contains_key("events") => {
                match &fields["events"] {
                    Value::Array(events) => events.iter().map(user).collect(),
                    _ => vec![None],
                }
            }
            event => vec![user(&event)],
        }),
        "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => body
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(i, line)| parse(line, Some(i + 1)).map(|event| user(&event)))
            .collect(),
        _ => Err(EdgeError::UnsupportedMediaType),
    }
}

fn cached(
    config: &EdgeConfig,
    user_id: Option<String>,
    ctx_hash: &str,
    tier: TtlTier,
    now_secs: i64,
    query: String,
) -> Plan {
    let version = config.cache_version;
    let user = user_id.as_deref();
    // Each user's (or anonymous context's) long windows end at their own five-minute mark.
    let (start, end) = cache_window(config.ttl_secs(tier), now_secs, user.unwrap_or(ctx_hash));
    Plan::Cached(CachedRoute {
        key: cache_key(version, user, ctx_hash, start),
        stale_key: format!(
            "rec:v{version}:u{}:ctx{ctx_hash}:stale",
            user.unwrap_or("~")
        ),
        tier,
        user_id,
        window_end: end,
        query,
    })
}

/// With a token, recommendations are always the token user's: named in the query or not.
fn recommendations(
    config: &EdgeConfig,
    query: Option<&str>,
    caller: Caller<'_>,
    now_secs: i64,
) -> Result<Plan, EdgeError> {
    let mut req = parse_query::<RecommendationQuery>(query)?.normalise()?;
    let raw = query.unwrap_or_default().to_string();
    let forwarded = match (own_user(caller, req.user_id.as_deref())?, caller.user) {
        (Some(_), _) | (None, None) => raw,
        (None, Some(me)) => {
            req.user_id = Some(me.into());
            if raw.is_empty() {
                format!("user_id={me}")
            } else {
                format!("{raw}&user_id={me}")
            }
        }
    };
    let tier = TtlTier::for_recommendation(&req);
    let hash = context_hash(&req);
    Ok(cached(
        config,
        req.user_id,
        &hash,
        tier,
        now_secs,
        forwarded,
    ))
}

/// Similar items are personalised only when the query names the (token's) user, so item
/// pages stay shared entries for signed-in callers too.
fn similar(
    config: &EdgeConfig,
    item: &str,
    query: Option<&str>,
    caller: Caller<'_>,
    now_secs: i64,
) -> Result<Plan, EdgeError> {
    validate_item_id(item)?;
    let q: SimilarQuery = parse_query(query)?;
    let limit = effective_limit(q.limit)?;
    if let Some(user) = &q.user_id {
        validate_user_id(user)?;
    }
    let user = own_user(caller, q.user_id.as_deref())?;
    let hash = stable_hash(&format!("similar:{item};limit={limit}"));
    let raw = query.unwrap_or_default().to_string();
    Ok(cached(config, user, &hash, TtlTier::Popular, now_secs, raw))
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
            code: ErrorCode::InvalidQuery,
            message: "item pages take no query parameters".into(),
        }));
    }
    let hash = stable_hash(&format!("item:{item}"));
    Ok(cached(
        config,
        None,
        &hash,
        TtlTier::Popular,
        now_secs,
        String::new(),
    ))
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

    fn get<'a>(path: &'a str, query: &'a str, user: Option<&'a str>) -> Incoming<'a> {
        Incoming {
            method: "GET",
            path,
            query: Some(query),
            caller: Caller {
                user,
                api_key: false,
            },
            ..Incoming::default()
        }
    }

    fn cached_as(user: Option<&str>, path: &str, query: &str, now: i64) -> CachedRoute {
        match plan(&config(), &get(path, query, user), now).unwrap() {
            Plan::Cached(c) => c,
            other => panic!("expected a cached plan, got {other:?}"),
        }
    }

    fn cached_route(path: &str, query: &str, now: i64) -> CachedRoute {
        // Personalised reads come with the token of the user they name.
        let user = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("user_id="))
            .filter(|u| validate_user_id(u).is_ok());
        cached_as(user, path, query, now)
    }

    fn code(result: Result<Plan, EdgeError>) -> (u16, String) {
        let (status, body, _) = result.unwrap_err().response_parts();
        (status, body.code)
    }

    fn error(method: &str, path: &str, query: &str) -> (u16, String) {
        let req = Incoming {
            method,
            ..get(path, query, None)
        };
        code(plan(&config(), &req, 0))
    }

    #[test]
    fn personalised_requests_get_user_session_keys() {
        let c = cached_route("/v1/recommendations", "user_id=u42&limit=5", 1_000_000);
        assert_eq!(c.tier, TtlTier::UserSession);
        assert_eq!(c.user_id.as_deref(), Some("u42"));
        let hash = &c.key["rec:v1:uu42:ctx".len()..][..16];
        // The user's hour window, offset by the user's stable hash.
        let (start, end) = shared_types::cache_window(3600, 1_000_000, "u42");
        assert_eq!(c.key, format!("rec:v1:uu42:ctx{hash}:t{start}"));
        assert_eq!(c.window_end, end);
        assert_eq!(c.stale_key, format!("rec:v1:uu42:ctx{hash}:stale"));
        assert_eq!(c.query, "user_id=u42&limit=5");
    }

    #[test]
    fn key_follows_user_context_and_time() {
        let base = cached_route("/v1/recommendations", "user_id=u1", 3_600).key;
        let other_user = cached_route("/v1/recommendations", "user_id=u2", 3_600).key;
        let other_ctx =
            cached_route("/v1/recommendations", "user_id=u1&time_of_day=night", 3_600).key;
        let same_spelled_differently =
            cached_route("/v1/recommendations", "limit=10&user_id=u1", 3_600).key;
        let next_hour = cached_route("/v1/recommendations", "user_id=u1", 7_200).key;
        assert_ne!(base, other_user);
        assert_ne!(base, other_ctx);
        assert_eq!(base, same_spelled_differently);
        assert_ne!(base, next_hour);
        // Anonymous popular requests roll over with every five-minute bucket.
        let a = cached_route("/v1/recommendations", "", 600);
        let b = cached_route("/v1/recommendations", "", 899);
        let c = cached_route("/v1/recommendations", "", 900);
        assert_eq!(a.tier, TtlTier::Popular);
        assert_eq!(a.key, b.key);
        assert_ne!(b.key, c.key);
        assert!(a.key.starts_with("rec:v1:u~:ctx"));
    }

    #[test]
    fn tiers_follow_the_request_shape() {
        let tier = |path: &str, q: &str| cached_route(path, q, 0).tier;
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
        let similar = cached_route("/v1/similar/tt1", "limit=3", 0);
        assert_ne!(
            similar.key,
            cached_route("/v1/similar/tt2", "limit=3", 0).key
        );
    }

    #[test]
    fn a_token_personalises_for_its_user_only() {
        // No user_id: the token's user, in the key and in the query the core receives.
        let mine = cached_as(Some("alice"), "/v1/recommendations", "limit=5", 3_600);
        assert_eq!(mine.user_id.as_deref(), Some("alice"));
        assert!(mine.key.starts_with("rec:v1:ualice:ctx"), "{}", mine.key);
        assert_eq!(mine.tier, TtlTier::UserSession);
        assert_eq!(mine.query, "limit=5&user_id=alice");
        let named = cached_as(
            Some("alice"),
            "/v1/recommendations",
            "user_id=alice&limit=5",
            3_600,
        );
        assert_eq!(named.key, mine.key, "naming yourself is the same request");
        assert_eq!(
            cached_as(Some("alice"), "/v1/recommendations", "", 0).query,
            "user_id=alice"
        );
        // User A asking for user B; anyone asking for a user without a token.
        let as_user = |user: Option<&str>, path: &str, query: &str| {
            code(plan(&config(), &get(path, query, user), 0))
        };
        assert_eq!(
            as_user(Some("alice"), "/v1/recommendations", "user_id=bob"),
            (403, "forbidden".into())
        );
        assert_eq!(
            as_user(None, "/v1/recommendations", "user_id=bob"),
            (401, "unauthorized".into())
        );
        assert_eq!(
            as_user(Some("alice"), "/v1/similar/tt1", "user_id=bob"),
            (403, "forbidden".into())
        );
        assert_eq!(
            as_user(None, "/v1/similar/tt1", "user_id=bob"),
            (401, "unauthorized".into())
        );
        // Anonymous callers get shared answers; so do item pages for signed-in callers.
        let anonymous = cached_as(None, "/v1/recommendations", "limit=5", 0);
        assert_eq!(
            (anonymous.user_id, anonymous.query.as_str()),
            (None, "limit=5")
        );
        let similar = cached_as(Some("alice"), "/v1/similar/tt1", "limit=3", 0);
        assert_eq!(similar.user_id, None, "signed as anonymous: a shared entry");
        assert!(similar.key.starts_with("rec:v1:u~:"));
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
        assert_eq!(error("DELETE", "/v1/items/bad%2Fid", "").0, 400);
    }

    fn post<'a>(body: &'a str, user: Option<&'a str>, api_key: bool) -> Incoming<'a> {
        Incoming {
            method: "POST",
            path: "/v1/events",
            content_type: Some("application/json; charset=utf-8"),
            body: body.as_bytes(),
            caller: Caller { user, api_key },
            ..Incoming::default()
        }
    }

    #[test]
    fn users_export_and_erase_only_their_own_data() {
        let req = |method, path, user, api_key| Incoming {
            method,
            caller: Caller { user, api_key },
            ..get(path, "", user)
        };
        assert_eq!(
            plan(
                &config(),
                &req("DELETE", "/v1/users/alice", Some("alice"), false),
                0
            ),
            Ok(Plan::PassThrough {
                user: Some("alice".into()),
                invalidates: vec!["alice".into()],
            })
        );
        assert_eq!(
            plan(
                &config(),
                &req("GET", "/v1/users/alice/events", Some("alice"), false),
                0
            ),
            Ok(Plan::PassThrough {
                user: Some("alice".into()),
                invalidates: Vec::new(),
            })
        );
        for (method, path) in [("DELETE", "/v1/users/bob"), ("GET", "/v1/users/bob/events")] {
            assert_eq!(
                code(plan(&config(), &req(method, path, Some("alice"), false), 0)),
                (403, "forbidden".into())
            );
            assert_eq!(
                code(plan(&config(), &req(method, path, None, false), 0)),
                (401, "unauthorized".into())
            );
            assert!(plan(&config(), &req(method, path, None, true), 0).is_ok());
        }
        assert_eq!(
            code(plan(
                &config(),
                &req("GET", "/v1/users/bob", Some("bob"), false),
                0
            )),
            (405, "method_not_allowed".into())
        );
    }

    #[test]
    fn events_belong_to_the_token_user() {
        let one = r#"{"user_id":"alice","item_id":"i1","action":"like"}"#;
        let mixed = r#"[{"user_id":"alice","item_id":"i1","action":"like"},
                        {"user_id":"bob","item_id":"i2","action":"view"}]"#;
        let own = Ok(Plan::PassThrough {
            user: Some("alice".into()),
            invalidates: vec!["alice".into()],
        });
        assert_eq!(plan(&config(), &post(one, Some("alice"), false), 0), own);
        assert_eq!(
            code(plan(&config(), &post(mixed, Some("alice"), false), 0)),
            (403, "forbidden".into())
        );
        assert_eq!(
            code(plan(&config(), &post(one, Some("bob"), false), 0)),
            (403, "forbidden".into())
        );
        // Anonymous: refused, unless an API key (server-side ingestion) goes to the core.
        assert_eq!(
            code(plan(&config(), &post(one, None, false), 0)),
            (401, "unauthorized".into())
        );
        assert_eq!(
            plan(&config(), &post(mixed, None, true), 0),
            Ok(Plan::PassThrough {
                user: None,
                invalidates: vec!["alice".into(), "bob".into()],
            })
        );
        // An API key does not widen a token: the token's rules still apply.
        assert_eq!(
            code(plan(&config(), &post(mixed, Some("alice"), true), 0)).0,
            403
        );
        // With a token the edge must read every event, so what it cannot read is refused.
        assert_eq!(
            code(plan(&config(), &post("not json", Some("alice"), false), 0)),
            (400, "invalid_json".into())
        );
        let mut unknown_type = post(one, Some("alice"), false);
        unknown_type.content_type = Some("text/plain");
        assert_eq!(code(plan(&config(), &unknown_type, 0)).0, 415);
        // Events without a user are not the token user's.
        let anonymous_event = r#"[{"item_id":"i1","action":"like"}]"#;
        assert_eq!(
            code(plan(
                &config(),
                &post(anonymous_event, Some("alice"), false),
                0
            ))
            .0,
            403
        );
        let wrapped = r#"{"events":[{"user_id":"bob","item_id":"i1","action":"like"}]}"#;
        assert_eq!(
            code(plan(&config(), &post(wrapped, Some("alice"), false), 0)).0,
            403
        );
    }

    #[test]
    fn event_bodies_are_read_as_the_core_reads_them() {
        let json = Some("application/json");
        let users = |ct: Option<&str>, body: &str| -> Vec<Option<String>> {
            event_users(ct, body.as_bytes()).unwrap()
        };
        let some = |users: &[&str]| -> Vec<Option<String>> {
            users.iter().map(|u| Some(u.to_string())).collect()
        };
        let e = |u: &str| format!(r#"{{"user_id":"{u}","item_id":"i","action":"like"}}"#);
        assert_eq!(users(json, &e("u1")), some(&["u1"]));
        assert_eq!(
            users(json, &format!(" [{},{}]", e("u2"), e("u1"))),
            some(&["u2", "u1"])
        );
        assert_eq!(
            users(json, &format!(r#"{{"events":[{}]}}"#, e("u3"))),
            some(&["u3"])
        );
        // An object with more than `events` is one (invalid) event, not an envelope.
        let mixed = format!(r#"{{"user_id":"u1","events":[{}]}}"#, e("u2"));
        assert_eq!(users(json, &mixed), some(&["u1"]));
        assert_eq!(users(json, r#"[{"user_id":7}]"#), vec![None]);
        let ndjson = format!("{}\n\n{}\n", e("u3"), e("u1"));
        assert_eq!(
            users(Some("application/x-ndjson"), &ndjson),
            some(&["u3", "u1"])
        );
        // NDJSON sent as JSON is not JSON, and a JSON array is not NDJSON.
        assert!(event_users(json, ndjson.as_bytes()).is_err());
        let array = format!("[\n{},\n{}\n]", e("u1"), e("u2"));
        assert!(event_users(Some("application/x-ndjson"), array.as_bytes()).is_err());
        assert_eq!(
            event_users(None, b"{}"),
            Err(EdgeError::UnsupportedMediaType)
        );
    }

    #[test]
    fn catalogue_writes_are_refused_unless_forwarded() {
        let write = |config: &EdgeConfig, method: &'static str, path: &'static str| {
            let caller = Caller {
                user: Some("alice"),
                api_key: true,
            };
            plan(
                config,
                &Incoming {
                    method,
                    path,
                    body: b"{}",
                    caller,
                    ..Incoming::default()
                },
                0,
            )
        };
        for (method, path) in [
            ("POST", "/v1/items"),
            ("DELETE", "/v1/items/tt1"),
            ("GET", "/v1/jobs/items-1"),
        ] {
            assert_eq!(
                code(write(&config(), method, path)),
                (403, "forbidden".into())
            );
        }
        let forwarding = EdgeConfig {
            forward_catalog_writes: true,
            ..config()
        };
        assert_eq!(
            write(&forwarding, "DELETE", "/v1/items/tt1"),
            Ok(Plan::PassThrough {
                user: Some("alice".into()),
                invalidates: vec![],
            })
        );
        assert!(write(&forwarding, "POST", "/v1/items").is_ok());
        assert!(write(&forwarding, "GET", "/v1/jobs/items-1").is_ok());
        assert_eq!(
            plan(&config(), &get("/healthz", "", None), 0),
            Ok(Plan::Health)
        );
    }
}
