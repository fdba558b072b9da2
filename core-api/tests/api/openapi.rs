//! The OpenAPI document (`docs/openapi.json`, served at `GET /openapi.json`) against the
//! router: every documented operation is served, every route is documented, and real
//! responses carry exactly the fields, with the JSON types, that their schemas describe.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use core_api::http::{OPENAPI_JSON, ROUTES};
use core_api::metrics::Metrics;
use core_api::{app, AppState, Config};
use serde_json::Value;

use crate::common::*;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("docs/openapi.json is JSON")
}

/// (METHOD, path template) of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

/// A request target for a path template: a demo film and a user for the parameters.
fn concrete(path: &str) -> String {
    path.replace("{item_id}", "tt0076759")
        .replace("{user_id}", "openapi-user")
}

/// Every `$ref` of `value` that does not point into `doc`.
fn dangling_refs(doc: &Value, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                if doc.pointer(r.trim_start_matches('#')).is_none() {
                    out.push(r.to_string());
                }
            }
            map.values().for_each(|v| dangling_refs(doc, v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| dangling_refs(doc, v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_lists_exactly_the_routes() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "openapi: {}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routes.len(), ROUTES.len(), "a route is listed twice");
    let documented = operations(&doc);
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not in http::ROUTES: {unrouted:?}"
    );
    let mut dangling = Vec::new();
    dangling_refs(&doc, &doc, &mut dangling);
    assert!(dangling.is_empty(), "unresolved $refs: {dangling:?}");
    // Every operation names its security (open ones with an empty list).
    for (method, path) in &documented {
        let op = &doc["paths"][path][method.to_ascii_lowercase()];
        assert!(op["security"].is_array(), "{method} {path}: no security");
        assert!(op["responses"].is_object(), "{method} {path}: no responses");
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    // A node still loading: handlers stop at `503 not_ready`, so nothing changes, while the
    // routing (and its 404 and 405) is that of a serving node.
    let router = app(AppState::loading(
        Config::default(),
        Arc::new(Metrics::new()),
    ));
    for (method, path) in operations(&document()) {
        let uri = concrete(&path);
        let request = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let r = send(&router, request).await;
        assert!(
            r.status != StatusCode::NOT_FOUND && r.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri} is documented but not served: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    // The check above can fail: what is not routed gets 404 or 405 here too.
    get(&router, "/v1/undocumented")
        .await
        .assert_error(StatusCode::NOT_FOUND, "route_not_found");
    let put = Request::put("/v1/recommendations")
        .body(Body::empty())
        .unwrap();
    send(&router, put)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn the_document_is_served_without_credentials() {
    // A core that requires edge signatures still hands out its description.
    let mut config = Config::default();
    config.edge.shared_secret = "edge-secret-for-tests".into();
    let router = app(AppState::loading(config, Arc::new(Metrics::new())));
    let r = get(&router, "/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.body, OPENAPI_JSON.as_bytes());
    get(&router, "/v1/recommendations")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

/// The schema `schema` points at, following `$ref`s into `doc`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(
            doc,
            doc.pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved {r}")),
        ),
        None => schema,
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        other => panic!("unknown JSON type {other}"),
    }
}

/// Checks `value` against `schema`, for the keywords the document uses: `type`, `const`,
/// `enum`, `anyOf`/`oneOf`, `required`, `properties`, `additionalProperties`, `items` and
/// `prefixItems`. A key that an object schema with `properties` does not name is an error
/// too (unless `additionalProperties` gives a schema): the document must name every field.
fn conform(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(options) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        let matching = options
            .iter()
            .filter(|option| {
                let mut e = Vec::new();
                conform(doc, option, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching == 0 || (schema.get("oneOf").is_some() && matching > 1) {
            errors.push(format!("{at}: {matching} alternatives match {value}"));
        }
        return;
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            name => name.as_str().into_iter().collect(),
        };
        if !types.iter().any(|t| has_type(value, t)) {
            errors.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
    }
    if schema.get("const").is_some_and(|c| c != value) {
        errors.push(format!("{at}: {value} is not {}", schema["const"]));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    match value {
        Value::Object(map) => {
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().expect("required names are strings");
                if !map.contains_key(key) {
                    errors.push(format!("{at}: required `{key}` is missing"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, v) in map {
                let at = format!("{at}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) | (None, Some(s)) => conform(doc, s, v, &at, errors),
                    (None, None) if properties.is_some() => {
                        errors.push(format!("{at}: not in the schema"));
                    }
                    (None, None) => {}
                }
            }
        }
        Value::Array(items) => {
            let prefix = schema["prefixItems"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            for (i, (s, v)) in prefix.iter().zip(items).enumerate() {
                conform(doc, s, v, &format!("{at}[{i}]"), errors);
            }
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate().skip(prefix.len()) {
                    conform(doc, s, v, &format!("{at}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

/// Sends a request and checks the reply against the document: its status must be one the
/// operation lists, and a JSON body must conform to that response's schema. Returns the body.
async fn check(
    doc: &Value,
    router: &axum::Router,
    method: &str,
    template: &str,
    uri: &str,
    body: Option<(&str, String)>,
) -> Value {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some((content_type, _)) = &body {
        request = request.header("content-type", *content_type);
    }
    let body = body.map_or_else(Body::empty, |(_, b)| Body::from(b));
    let r = send(router, request.body(body).unwrap()).await;
    let op = &doc["paths"][template][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let documented = &op["responses"][r.status.as_str()];
    assert!(
        documented.is_object(),
        "{method} {uri}: status {} is not documented: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    let documented = resolve(doc, documented);
    let Some(schema) = documented.pointer("/content/application~1json/schema") else {
        return Value::Null;
    };
    let content_type = r.headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("application/json"), "{method} {uri}");
    let value = r.json();
    let mut errors = Vec::new();
    conform(doc, schema, &value, &format!("{method} {uri}"), &mut errors);
    assert!(
        errors.is_empty(),
        "response differs from docs/openapi.json:\n{}\n{value}",
        errors.join("\n")
    );
    value
}

#[tokio::test]
async fn real_responses_match_their_schemas() {
    let doc = document();
    let router = demo_app();
    let user = unique("openapi");
    let json = |body: String| Some(("application/json", body));

    let events = format!(
        r#"[{{"user_id":"{user}","item_id":"tt0076759","action":"like"}},
            {{"user_id":"{user}","item_id":"tt0062622","action":"complete","recommendation_id":"r-1"}}]"#
    );
    let accepted = check(
        &doc,
        &router,
        "POST",
        "/v1/events",
        "/v1/events",
        json(events),
    )
    .await;
    assert_eq!(accepted["accepted"], 2);

    let recs = "/v1/recommendations";
    let personal = format!("{recs}?user_id={user}&limit=5&q=something%20funny%20and%20light");
    let personal = check(&doc, &router, "GET", recs, &personal, None).await;
    assert_eq!(personal["user_id"], user.as_str());
    assert!(personal["intent"].is_object(), "{personal}");
    assert_eq!(personal["items"].as_array().unwrap().len(), 5);
    let anonymous = check(&doc, &router, "GET", recs, &format!("{recs}?limit=3"), None).await;
    assert_eq!(anonymous["cold_start"], true);

    let similar = "/v1/similar/{item_id}";
    let uri = format!("/v1/similar/tt0076759?limit=3&user_id={user}");
    check(&doc, &router, "GET", similar, &uri, None).await;
    let item = "/v1/items/{item_id}";
    let film = check(&doc, &router, "GET", item, "/v1/items/tt0076759", None).await;
    assert_eq!(film["id"], "tt0076759");

    let export = format!("/v1/users/{user}/events");
    let export = check(
        &doc,
        &router,
        "GET",
        "/v1/users/{user_id}/events",
        &export,
        None,
    )
    .await;
    assert_eq!(export["events"].as_array().unwrap().len(), 2);

    check(&doc, &router, "GET", "/admin/model", "/admin/model", None).await;
    check(&doc, &router, "GET", "/admin/policy", "/admin/policy", None).await;
    let weights = r#"{"weights":{"semantic":0.7,"popularity":0.3}}"#.to_string();
    let evaluate = "/admin/policy/evaluate";
    let report = check(&doc, &router, "POST", evaluate, evaluate, json(weights)).await;
    assert!(report["candidate"].is_object(), "{report}");
    check(&doc, &router, "GET", "/readyz", "/readyz", None).await;

    let erase = format!("/v1/users/{user}");
    let erased = check(&doc, &router, "DELETE", "/v1/users/{user_id}", &erase, None).await;
    assert_eq!(erased["events"], 2);

    // Error bodies, through the operations that return them.
    let bad_limit = check(
        &doc,
        &router,
        "GET",
        recs,
        "/v1/recommendations?limit=0",
        None,
    )
    .await;
    assert_eq!(bad_limit["code"], "invalid_limit");
    let missing = "/v1/items/openapi-no-such-item";
    let missing = check(&doc, &router, "GET", item, missing, None).await;
    assert_eq!(missing["code"], "item_not_found");
    let uri = "/v1/similar/openapi-no-such-item";
    check(&doc, &router, "GET", similar, uri, None).await;
    let plain = Some(("text/plain", "hello".to_string()));
    let unsupported = check(&doc, &router, "POST", "/v1/events", "/v1/events", plain).await;
    assert_eq!(unsupported["code"], "unsupported_media_type");
    // And the error of no route at all, against the schema itself.
    let r = get(&router, "/v1/undocumented").await;
    let mut errors = Vec::new();
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    conform(&doc, error_body, &r.json(), "404", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn the_schema_check_catches_missing_mistyped_and_undocumented_fields() {
    let doc = document();
    let schema = &doc["components"]["schemas"]["RecommendationResponse"];
    let good = serde_json::json!({
        "recommendation_id": "r1",
        "items": [{
            "item": {"id": "tt1", "title": "A", "genres": []},
            "score": 0.5,
            "components": {"semantic": 1, "graph": 0, "popularity": 0, "freshness": 0,
                           "quality": 0, "collaborative": 0, "transition": 0},
            "reason": "because",
        }],
        "cold_start": false,
    });
    let errors = |value: &Value| {
        let mut errors = Vec::new();
        conform(&doc, schema, value, "response", &mut errors);
        errors
    };
    assert_eq!(errors(&good), Vec::<String>::new());
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("cold_start");
    let mut mistyped = good.clone();
    mistyped["items"][0]["score"] = "high".into();
    let mut undocumented = good.clone();
    undocumented["items"][0]["item"]["rating"] = 5.into();
    let mut bad_enum = good.clone();
    bad_enum["items"][0]["item"]["maturity"] = "r".into();
    for (bad, expected) in [
        (missing, "required `cold_start`"),
        (mistyped, "response.items[0].score"),
        (
            undocumented,
            "response.items[0].item.rating: not in the schema",
        ),
        (bad_enum, "response.items[0].item.maturity"),
    ] {
        let found = errors(&bad);
        assert!(
            found.iter().any(|e| e.contains(expected)),
            "{expected}: {found:?}"
        );
    }
}

/// The `backquoted` words of a description.
fn backquoted(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// Every error code the document names (a response's `Codes: ...` and backquoted codes, the
/// overview's `NNN code`) is a public code answered with that status, and every code the core
/// answers is named somewhere, so the document follows `ErrorCode`.
#[test]
fn the_documented_error_codes_match_the_error_code_table() {
    use shared_types::{ErrorCode, Exposure};
    let doc = document();
    // (code, documented status, where) of every mention.
    let mut mentions: Vec<(ErrorCode, u16, String)> = Vec::new();
    let mut errors = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let responses = item[*method]["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let at = format!("{method} {path} {status}");
                let description = resolve(&doc, response)["description"]
                    .as_str()
                    .unwrap_or("");
                let Ok(status) = status.parse::<u16>() else {
                    continue;
                };
                for word in backquoted(description) {
                    if let Some(code) = ErrorCode::parse(word) {
                        mentions.push((code, status, at.clone()));
                    }
                }
                if let Some((_, listed)) = description.split_once("Codes:") {
                    for word in backquoted(listed).filter(|w| ErrorCode::parse(w).is_none()) {
                        errors.push(format!("{at}: `{word}` is not an error code"));
                    }
                }
            }
        }
    }
    let overview = doc["info"]["description"]
        .as_str()
        .expect("info.description");
    for word in backquoted(overview) {
        if let Some((status, code)) = word.split_once(' ') {
            if let (Ok(status), Some(code)) = (status.parse::<u16>(), ErrorCode::parse(code)) {
                mentions.push((code, status, "info.description".into()));
            }
        }
    }
    for (code, status, at) in &mentions {
        if code.status() != *status || !code.is_public() {
            errors.push(format!(
                "{at}: `{code}` is answered {} ({:?}), documented {status}",
                code.status(),
                code.exposure()
            ));
        }
    }
    let named: BTreeSet<ErrorCode> = mentions.iter().map(|(c, ..)| *c).collect();
    let unnamed: Vec<&str> = ErrorCode::ALL
        .iter()
        .filter(|c| c.exposure() == Exposure::Core && !named.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(
        unnamed.is_empty(),
        "codes the document never names: {unnamed:?}"
    );
}
