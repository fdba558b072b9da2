//! The HTTP API through the router (`oneshot`), plus one request over a real socket.

use axum::http::StatusCode;
use core_api::metrics::Metrics;
use core_api::{app, AppState, Config};
use std::future::IntoFuture;
use std::sync::Arc;

use crate::common::*;

#[tokio::test]
async fn health_and_readiness() {
    let loading = app(AppState::loading(
        Config::default(),
        Arc::new(Metrics::new()),
    ));
    assert_eq!(get(&loading, "/healthz").await.status, StatusCode::OK);
    get(&loading, "/readyz")
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    let r = get(&loading, "/v1/recommendations").await;
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert!(r.headers.contains_key("retry-after"));

    let app = demo_app();
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    let items = ready.json()["items"].as_u64().unwrap() as usize;
    assert_eq!(items, demo_engine().0.catalog_len());
    assert!(
        items > DEMO_FILMS - 10,
        "the demo films are loaded: {items}"
    );
}

#[tokio::test]
async fn anonymous_recommendations_are_popular_and_cacheable() {
    let app = demo_app();
    let r = get(&app, "/v1/recommendations?limit=7").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-cache-tier"], "popular");
    let body = r.json();
    assert_eq!(body["items"].as_array().unwrap().len(), 7);
    assert_eq!(body["cold_start"], true);
    assert!(body["recommendation_id"]
        .as_str()
        .is_some_and(|s| s.len() >= 16));
    let first = &body["items"][0];
    for c in ["semantic", "graph", "popularity", "freshness", "quality"] {
        assert!(first["components"][c].is_number(), "component {c}");
    }
    assert!(first["reason"].as_str().is_some_and(|r| !r.is_empty()));
    // Popular: the first results are items with engagement.
    assert!(first["components"]["popularity"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn filters_are_hard() {
    let app = demo_app();
    let r = get(
        &app,
        "/v1/recommendations?limit=30&q=scary%20monsters&exclude_genres=Horror,Thriller",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-cache-tier"], "zeitgeist");
    for genres in genres_of(&r.json()) {
        assert!(
            !genres.iter().any(|g| g == "Horror" || g == "Thriller"),
            "{genres:?}"
        );
    }
    let family = get(
        &app,
        "/v1/recommendations?limit=20&q=adventure&max_maturity=all",
    )
    .await
    .json_ok();
    assert!(!family["items"].as_array().unwrap().is_empty());
    for item in family["items"].as_array().unwrap() {
        assert_eq!(item["item"]["maturity"], "all", "{item}");
    }
}

#[tokio::test]
async fn events_personalise_and_exclude_seen_items() {
    let app = demo_app();
    let user = "http-user-1";
    let before = get(&app, &format!("/v1/recommendations?user_id={user}"))
        .await
        .json_ok();
    assert_eq!(before["cold_start"], true);

    let events = r#"[{"user_id":"http-user-1","item_id":"tt0076759","action":"like"},
                     {"user_id":"http-user-1","item_id":"tt0080684","action":"complete","timestamp":1364690142}]"#;
    let r = post(&app, "/v1/events", "application/json", events).await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["accepted"], 2);
    assert_eq!(r.json()["duplicates"], 0);
    // The same batch again (a client retrying after a lost answer): the event with its own
    // timestamp is recognised; the other, with neither id nor timestamp, cannot be.
    let again = post(&app, "/v1/events", "application/json", events).await;
    assert_eq!(again.json()["accepted"], 2);
    assert_eq!(again.json()["duplicates"], 1);
    let with_ids =
        r#"[{"user_id":"http-user-1","item_id":"tt0076759","action":"view","event_id":"v-1"}]"#;
    for duplicates in [0, 1] {
        let r = post(&app, "/v1/events", "application/json", with_ids).await;
        assert_eq!(r.json()["duplicates"], duplicates);
    }
    post(
        &app,
        "/v1/events",
        "application/json",
        r#"{"user_id":"http-user-1","item_id":"tt0076759","action":"view","event_id":"a b"}"#,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_event_id");

    let after = get(
        &app,
        &format!("/v1/recommendations?user_id={user}&limit=10"),
    )
    .await;
    assert_eq!(after.headers["x-cache-tier"], "user-session");
    let after = after.json();
    assert_eq!(after["cold_start"], false);
    let ids: Vec<&str> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"]["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&"tt0076759") && !ids.contains(&"tt0080684"),
        "seen items excluded: {ids:?}"
    );
    assert_ne!(
        titles(&before),
        titles(&after),
        "history changes the answer"
    );

    // NDJSON works too.
    let nd = "{\"user_id\":\"http-user-1\",\"item_id\":\"tt0086190\",\"action\":\"skip\"}\n\n";
    assert_eq!(
        post(&app, "/v1/events", "application/x-ndjson", nd)
            .await
            .status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn items_can_be_created_read_and_deleted() {
    let app = demo_app();
    let body = r#"{"id":"custom-space-1","title":"Voyage to the Outer Planets","genres":["Sci-Fi","Adventure"],"year":2024,"description":"An astronaut crew travels to Neptune."}
{"id":"custom-cook-1","title":"The Pancake Kitchen","genres":["Documentary"],"language":"en"}"#;
    let r = post(&app, "/v1/items", "application/x-ndjson", body).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["upserted"], 2);

    let item = get(&app, "/v1/items/custom-space-1").await;
    assert_eq!(item.status, StatusCode::OK);
    assert_eq!(item.json()["title"], "Voyage to the Outer Planets");

    // Searchable at once (from the shard delta): a matching intent finds it.
    let found = get(
        &app,
        "/v1/recommendations?q=astronauts%20travel%20to%20neptune&limit=10",
    )
    .await
    .json_ok();
    assert!(
        titles(&found).contains(&"Voyage to the Outer Planets".to_string()),
        "{:?}",
        titles(&found)
    );
    let similar = get(&app, "/v1/similar/custom-space-1?limit=5").await;
    assert_eq!(similar.status, StatusCode::OK);
    assert!(similar.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["item"]["id"] != "custom-space-1"));

    let del = crate::common::send(
        &app,
        axum::http::Request::delete("/v1/items/custom-space-1")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    get(&app, "/v1/items/custom-space-1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "item_not_found");
    let gone = get(
        &app,
        "/v1/recommendations?q=astronauts%20travel%20to%20neptune&limit=10",
    )
    .await
    .json_ok();
    assert!(!titles(&gone).contains(&"Voyage to the Outer Planets".to_string()));
    let again = crate::common::send(
        &app,
        axum::http::Request::delete("/v1/items/custom-space-1")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    again.assert_error(StatusCode::NOT_FOUND, "item_not_found");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_json_error() {
    let app = demo_app();
    for (uri, status, code) in [
        (
            "/v1/recommendations?limit=0",
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            "/v1/recommendations?limit=1000",
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            "/v1/recommendations?limit=abc",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/recommendations?limit=-1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/recommendations?bogus=1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/recommendations?user_id=a&user_id=b",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/recommendations?user_id=bad:id",
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
        (
            "/v1/recommendations?user_id=",
            StatusCode::BAD_REQUEST,
            "invalid_user_id",
        ),
        (
            "/v1/recommendations?time_of_day=noon",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/recommendations?max_maturity=x",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/recommendations?locale=en%20US",
            StatusCode::BAD_REQUEST,
            "invalid_context",
        ),
        (
            "/v1/recommendations?q=%FF%FE",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/similar/nope-404",
            StatusCode::NOT_FOUND,
            "item_not_found",
        ),
        (
            "/v1/similar/bad%20id",
            StatusCode::BAD_REQUEST,
            "invalid_item_id",
        ),
        ("/v1/similar/%FF", StatusCode::BAD_REQUEST, "invalid_path"),
        (
            "/v1/similar/tt0076759?limit=500",
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        ),
        (
            "/v1/items/nope-404",
            StatusCode::NOT_FOUND,
            "item_not_found",
        ),
        ("/v1/nothing", StatusCode::NOT_FOUND, "route_not_found"),
    ] {
        get(&app, uri).await.assert_error(status, code);
    }
    let long_q = format!("/v1/recommendations?q={}", "a".repeat(600));
    get(&app, &long_q)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "query_too_long");

    for (body, code) in [
        ("{not json", "invalid_json"),
        ("[]", "invalid_batch"),
        (
            r#"{"user_id":"u","item_id":"tt0076759","action":"love"}"#,
            "invalid_json",
        ),
        (
            r#"{"user_id":"u","item_id":"tt0076759","action":"like","extra":1}"#,
            "invalid_json",
        ),
        (
            r#"{"user_id":"u:x","item_id":"tt0076759","action":"like"}"#,
            "invalid_user_id",
        ),
        (
            r#"{"user_id":"u","item_id":"tt0076759","action":"like","timestamp":99999999999}"#,
            "invalid_timestamp",
        ),
    ] {
        post(&app, "/v1/events", "application/json", body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, code);
    }
    post(
        &app,
        "/v1/events",
        "application/json",
        r#"{"user_id":"u","item_id":"tt9999999","action":"like"}"#,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "item_not_found");
    post(
        &app,
        "/v1/events",
        "application/json",
        vec![0xffu8, 0xfe, 0x00],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_json");
    post(&app, "/v1/events", "text/plain", "hello")
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    post(
        &app,
        "/v1/events",
        "application/json",
        vec![b' '; 70 * 1024],
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    for (body, code) in [
        (r#"{"id":"x1","title":""}"#, "invalid_item"),
        (
            r#"{"id":"x1","title":"t","embedding":[1.0,2.0]}"#,
            "invalid_item",
        ),
        (r#"{"id":"x1","title":"t","quality":3}"#, "invalid_item"),
        (r#"{"id":"x 1","title":"t"}"#, "invalid_item_id"),
        (r#"{"title":"t"}"#, "invalid_json"),
    ] {
        post(&app, "/v1/items", "application/json", body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, code);
    }
    let wrong_method = crate::common::send(
        &app,
        axum::http::Request::put("/v1/events")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    wrong_method.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn metrics_cover_stages_routes_and_shards() {
    let app = demo_app();
    get(
        &app,
        "/v1/recommendations?q=romantic%20comedy&user_id=metrics-user",
    )
    .await;
    get(&app, "/v1/similar/tt0076759").await;
    let text = String::from_utf8(get(&app, "/metrics").await.body).unwrap();
    for needle in [
        "reco_stage_duration_seconds_bucket{stage=\"vector_search\"",
        "stage=\"context\"",
        "stage=\"candidate_generation\"",
        "stage=\"filter\"",
        "stage=\"rank\"",
        "stage=\"diversity\"",
        "reco_http_requests_total{method=\"GET\",route=\"/v1/similar/{item_id}\",status=\"200\"}",
        "reco_index_shard_items{shard=\"0\"}",
        "reco_embedding_batch_size_bucket{path=\"query\"",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}");
    }
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, demo_app()).into_future());
    let response = tokio::task::spawn_blocking(move || {
        test_support::http::http(addr, "GET", "/v1/similar/tt0076759?limit=3", None)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("x-cache-tier"), "popular");
    assert_eq!(response.json()["items"].as_array().unwrap().len(), 3);
    server.abort();
}
