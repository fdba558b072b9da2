//! Who may read or write what: edge-signed end users, operator keys with scopes, rate
//! limits, and the hygiene rules of the HTTP layer. Each test fails without its rule.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use core_api::auth::{key_digest, Authenticator, OperatorKey, Scope};
use core_api::{app, AppState};
use shared_types::edge_auth::{API_KEY_HEADER, EDGE_USER_HEADER};
use test_support::edge::Forwarded;

use crate::common::*;

const SECRET: &[u8] = b"edge-secret-for-tests";
const HOST: &str = "core.internal:8080";
const CATALOG_KEY: &str = "rk_catalog-key-for-tests";
const INGEST_KEY: &str = "rk_ingest-key-for-tests";
const SUPPORT_KEY: &str = "rk_support-key-for-tests";

/// The demo engine behind an app that requires edge signatures and knows three operator
/// keys; `burst` bounds each identity's requests (which do not refill within a test).
fn secured_app(burst: f64) -> axum::Router {
    secured_app_with(|auth| {
        auth.burst = burst;
        auth.requests_per_sec = 0.001;
    })
}

fn secured_app_with(limits: impl FnOnce(&mut core_api::config::AuthConfig)) -> axum::Router {
    let (engine, metrics) = demo_engine();
    let mut config = engine.config().clone();
    config.edge.shared_secret = String::from_utf8(SECRET.to_vec()).unwrap();
    limits(&mut config.auth);
    config.auth.operator_keys = [
        ("catalog", CATALOG_KEY, vec![Scope::CatalogWrite]),
        ("ingest", INGEST_KEY, vec![Scope::EventsWrite]),
        ("support", SUPPORT_KEY, vec![Scope::AdminRead]),
    ]
    .into_iter()
    .map(|(id, key, scopes)| OperatorKey {
        id: id.into(),
        sha256: key_digest(key),
        scopes,
    })
    .collect();
    let mut state = AppState::ready(engine, metrics);
    state.auth = Arc::new(Authenticator::new(&config));
    app(state)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request as the edge forwards it: signed over method, host, path, query, body and user.
struct Edge<'a> {
    method: &'a str,
    uri: &'a str,
    body: &'a str,
    user: Option<&'a str>,
    timestamp: i64,
    nonce: String,
    secret: &'a [u8],
}

impl<'a> Edge<'a> {
    fn new(method: &'a str, uri: &'a str) -> Self {
        Self {
            method,
            uri,
            body: "",
            user: None,
            timestamp: now(),
            nonce: unique("nonce"),
            secret: SECRET,
        }
    }

    fn user(mut self, user: &'a str) -> Self {
        self.user = Some(user);
        self
    }

    fn body(mut self, body: &'a str) -> Self {
        self.body = body;
        self
    }

    fn request(&self) -> Request<Body> {
        self.request_with_body(self.body)
    }

    /// Signed for `self.body` but carrying `body`.
    fn request_with_body(&self, body: &str) -> Request<Body> {
        let signed = Forwarded {
            method: self.method,
            host: HOST,
            target: self.uri,
            body: self.body.as_bytes(),
            user: self.user,
            timestamp: self.timestamp,
            nonce: &self.nonce,
        };
        let mut req = Request::builder()
            .method(self.method)
            .uri(self.uri)
            .header("host", HOST)
            .header("content-type", "application/json");
        for (name, value) in signed.headers(self.secret) {
            req = req.header(name, value);
        }
        req.body(Body::from(body.to_string())).unwrap()
    }
}

fn with_key(method: &str, uri: &str, key: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header(API_KEY_HEADER, key)
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn event(user: &str) -> String {
    format!(
        r#"{{"user_id":"{user}","item_id":"tt0062622","action":"like","timestamp":1700000000}}"#
    )
}

#[tokio::test]
async fn signatures_bind_the_request_and_cannot_be_replayed() {
    let app = secured_app(1_000.0);
    get(&app, "/v1/recommendations?limit=3")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let ok = Edge::new("GET", "/v1/recommendations?limit=3");
    send(&app, ok.request()).await.json_ok();
    send(&app, ok.request())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let mut wrong_secret = Edge::new("GET", "/v1/recommendations?limit=3");
    wrong_secret.secret = b"not-the-secret";
    let mut stale = Edge::new("GET", "/v1/recommendations?limit=3");
    stale.timestamp -= 120;
    let mut other_host = Edge::new("GET", "/v1/recommendations?limit=3").request();
    other_host
        .headers_mut()
        .insert("host", "evil.example".parse().unwrap());
    let mut other_query = Edge::new("GET", "/v1/recommendations?limit=3").request();
    *other_query.uri_mut() = "/v1/recommendations?limit=50".parse().unwrap();
    // A user header added to an anonymous signature.
    let mut added_user = Edge::new("GET", "/v1/recommendations?limit=3").request();
    added_user
        .headers_mut()
        .insert(EDGE_USER_HEADER, "alice".parse().unwrap());
    let alice = unique("alice");
    let body = format!("[{}]", event(&alice));
    let changed_body = Edge::new("POST", "/v1/events")
        .user(&alice)
        .body(&body)
        .request_with_body(&format!("[{},{}]", event(&alice), event(&alice)));
    for bad in [
        wrong_secret.request(),
        stale.request(),
        other_host,
        other_query,
        added_user,
        changed_body,
    ] {
        send(&app, bad)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // The same body as signed is accepted.
    let r = send(
        &app,
        Edge::new("POST", "/v1/events")
            .user(&alice)
            .body(&body)
            .request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.json());
    // Probes and metrics stay open to the cluster network.
    for probe in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&app, probe).await.status, StatusCode::OK, "{probe}");
    }
}

#[tokio::test]
async fn end_users_read_and_write_only_their_own_data() {
    let app = secured_app(1_000.0);
    let alice = unique("alice");
    let bob = unique("bob");
    let own = format!("/v1/recommendations?user_id={alice}&limit=3");
    let others = format!("/v1/recommendations?user_id={bob}&limit=3");
    send(&app, Edge::new("GET", &own).user(&alice).request())
        .await
        .json_ok();
    send(&app, Edge::new("GET", &others).user(&alice).request())
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    send(&app, Edge::new("GET", &others).request())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let similar = format!("/v1/similar/tt0062622?user_id={bob}");
    send(&app, Edge::new("GET", &similar).user(&alice).request())
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");

    let mixed = format!("[{},{}]", event(&alice), event(&bob));
    send(
        &app,
        Edge::new("POST", "/v1/events")
            .user(&alice)
            .body(&mixed)
            .request(),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let anonymous = event(&bob);
    send(
        &app,
        Edge::new("POST", "/v1/events").body(&anonymous).request(),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Server-to-server ingestion writes for anyone with events:write.
    let r = send(&app, with_key("POST", "/v1/events", INGEST_KEY, &mixed)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.json());
    // Support staff read any user's answers with admin:read.
    send(&app, with_key("GET", &others, SUPPORT_KEY, ""))
        .await
        .json_ok();
}

#[tokio::test]
async fn catalogue_and_admin_need_operator_scopes() {
    let app = secured_app(1_000.0);
    let item = r#"{"id":"tt-secure-1","title":"Secure Title","year":2001,"genres":["Drama"]}"#;
    // Through the edge, as an end user or anonymously: never.
    send(
        &app,
        Edge::new("POST", "/v1/items")
            .user("alice")
            .body(item)
            .request(),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    send(&app, Edge::new("DELETE", "/v1/items/tt0080684").request())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A key without the scope, an unknown key.
    send(
        &app,
        with_key("DELETE", "/v1/items/tt0080684", INGEST_KEY, ""),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    send(
        &app,
        with_key("DELETE", "/v1/items/tt0080684", "rk_guessed", ""),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // The key's digest is not the key.
    send(
        &app,
        with_key(
            "DELETE",
            "/v1/items/tt0080684",
            &key_digest(CATALOG_KEY),
            "",
        ),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    send(&app, with_key("POST", "/v1/items", CATALOG_KEY, item))
        .await
        .json_ok();
    // A catalogue job's status is as private as the write: refused to end users and to keys
    // without the scope; the catalogue key gets past the check (to an unknown job here).
    let job = "/v1/jobs/items-0-0";
    send(&app, Edge::new("GET", job).user("alice").request())
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    send(&app, Edge::new("GET", job).request())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    send(&app, with_key("GET", job, INGEST_KEY, ""))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    send(&app, with_key("GET", job, CATALOG_KEY, ""))
        .await
        .assert_error(StatusCode::NOT_FOUND, "job_not_found");

    send(
        &app,
        Edge::new("GET", "/admin/model").user("alice").request(),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    get(&app, "/admin/policy")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    send(&app, with_key("GET", "/admin/model", SUPPORT_KEY, ""))
        .await
        .json_ok();
    send(
        &app,
        with_key("POST", "/admin/model/retrain", SUPPORT_KEY, ""),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn identities_are_rate_limited_with_retry_after() {
    let app = secured_app(3.0);
    let carol = unique("carol");
    let uri = format!("/v1/recommendations?user_id={carol}&limit=2");
    for _ in 0..3 {
        send(&app, Edge::new("GET", &uri).user(&carol).request())
            .await
            .json_ok();
    }
    let r = send(&app, Edge::new("GET", &uri).user(&carol).request()).await;
    r.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(r.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .is_ok_and(|s| s >= 1));
    // Another user has their own budget.
    let dave = unique("dave");
    let uri = format!("/v1/recommendations?user_id={dave}&limit=2");
    send(&app, Edge::new("GET", &uri).user(&dave).request())
        .await
        .json_ok();
}

#[tokio::test]
async fn events_per_user_are_capped() {
    let app = secured_app_with(|auth| auth.events_per_minute = 5);
    let erin = unique("erin");
    let batch = |n: usize| format!("[{}]", vec![event(&erin); n].join(","));
    let four = batch(4);
    let r = send(
        &app,
        Edge::new("POST", "/v1/events")
            .user(&erin)
            .body(&four)
            .request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let two = batch(2);
    send(
        &app,
        Edge::new("POST", "/v1/events")
            .user(&erin)
            .body(&two)
            .request(),
    )
    .await
    .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn metric_labels_and_long_uris_stay_bounded() {
    let app = demo_app();
    let r = send(
        &app,
        Request::builder()
            .method("FROBNICATE")
            .uri("/v1/recommendations")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let metrics = String::from_utf8(get(&app, "/metrics").await.body).unwrap();
    assert!(!metrics.contains("FROBNICATE"));
    assert!(metrics.contains("method=\"other\""), "other label present");
    let long = format!("/v1/recommendations?q={}", "a".repeat(10_000));
    get(&app, &long)
        .await
        .assert_error(StatusCode::URI_TOO_LONG, "uri_too_long");
}

#[tokio::test]
async fn events_from_the_future_are_refused() {
    let app = demo_app();
    let user = unique("future");
    let at = |t: i64| {
        format!(r#"{{"user_id":"{user}","item_id":"tt0062622","action":"like","timestamp":{t}}}"#)
    };
    post(&app, "/v1/events", "application/json", at(now() + 3_600))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_timestamp");
    let r = post(&app, "/v1/events", "application/json", at(now() + 60)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "within the clock skew");
}

#[tokio::test]
async fn users_export_and_erase_only_their_own_data() {
    let app = secured_app(1_000.0);
    let frank = unique("frank");
    let grace = unique("grace");
    let body = format!("[{}]", event(&frank));
    let r = send(
        &app,
        Edge::new("POST", "/v1/events")
            .user(&frank)
            .body(&body)
            .request(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let export = format!("/v1/users/{frank}/events");
    let mine = send(&app, Edge::new("GET", &export).user(&frank).request())
        .await
        .json_ok();
    assert_eq!(mine["events"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["events"][0]["item_id"], "tt0062622");
    send(&app, Edge::new("GET", &export).user(&grace).request())
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    send(&app, Edge::new("GET", &export).request())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let erase = format!("/v1/users/{frank}");
    send(&app, Edge::new("DELETE", &erase).user(&grace).request())
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    // Support staff may read but not erase.
    send(&app, with_key("DELETE", &erase, SUPPORT_KEY, ""))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let report = send(&app, Edge::new("DELETE", &erase).user(&frank).request())
        .await
        .json_ok();
    assert_eq!(report["events"], 1, "{report}");
    let after = send(&app, Edge::new("GET", &export).user(&frank).request())
        .await
        .json_ok();
    assert_eq!(after["events"].as_array().unwrap().len(), 0);
    let answer = send(
        &app,
        Edge::new(
            "GET",
            &format!("/v1/recommendations?user_id={frank}&limit=3"),
        )
        .user(&frank)
        .request(),
    )
    .await
    .json_ok();
    assert_eq!(answer["cold_start"], true, "{answer}");
}

#[tokio::test]
async fn a_request_replayed_to_another_core_process_is_refused_through_redis() {
    let redis = crate::stores::RedisServer::start(free_port());
    // Two core processes behind one edge, sharing Redis: each its own app and authenticator.
    let process = |redis_url: &str| {
        let (engine, metrics) = demo_engine();
        let mut config = engine.config().clone();
        config.edge.shared_secret = String::from_utf8(SECRET.to_vec()).unwrap();
        config.redis.url = redis_url.to_string();
        let mut state = AppState::ready(engine, metrics);
        state.auth = Arc::new(Authenticator::new(&config));
        app(state)
    };
    let (a, b) = (process(&redis.url()), process(&redis.url()));
    let signed = Edge::new("GET", "/v1/recommendations?limit=3");
    send(&a, signed.request()).await.json_ok();
    send(&b, signed.request())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // Without the shared memory the other process would have served the replay.
    let alone = process("");
    let another = Edge::new("GET", "/v1/recommendations?limit=4");
    send(&a, another.request()).await.json_ok();
    send(&alone, another.request()).await.json_ok();
}
