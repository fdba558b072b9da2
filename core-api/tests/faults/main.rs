//! Fault tests against real servers: a backend is crashed while the core serves, the core
//! keeps answering (degraded, named in `/readyz`), and recovers by itself when the server
//! returns; acknowledged events survive a CQL server crash. These stop and start the shared
//! test servers (`scripts/servers/*.sh`), so they live in their own test binary, which cargo
//! runs after the contract tests, never beside them.

#[allow(dead_code)]
#[path = "../api/common.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{
    demo_config, encoder, get, neo4j_test_config, post, repo_root, scylla_test_config, temp_dir,
    test_server, unique,
};
use core_api::metrics::Metrics;
use core_api::store::{InteractionStore, ScyllaInteractionStore};
use core_api::{app, AppState};

/// Runs `scripts/servers/{server}.sh {args}` for the server listening on `address`.
async fn server_ctl(server: &str, address: &str, args: &[&str]) {
    let port = address.rsplit(':').next().unwrap().to_string();
    let port_var = match server {
        "cassandra" => "CASSANDRA_PORT",
        _ => "NEO4J_BOLT_PORT",
    };
    let script = repo_root().join(format!("scripts/servers/{server}.sh"));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let status = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(script)
            .args(args)
            .env(port_var, port)
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "{server}.sh failed: {status}");
}

async fn wait_ready(router: &axum::Router, dependency: &str) {
    let started = Instant::now();
    loop {
        let ready = get(router, "/readyz").await.json();
        if ready["dependencies"][dependency] == "ok" {
            assert_eq!(ready["status"], "ready", "{ready}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{dependency} not back: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_server_crash_degrades_then_recovers_and_loses_no_acknowledged_event() {
    let Some(nodes) = test_server("SEMREC_TEST_CQL") else {
        return;
    };
    let mut config = demo_config(&temp_dir("cql-fault"), 300);
    config.index.shards = 2;
    config.scylla = scylla_test_config(&nodes);
    config.scylla.timeout_ms = 2_000;
    let metrics = Arc::new(Metrics::new());
    let engine = core_api::bootstrap::open_embedded(config, encoder(), metrics.clone())
        .await
        .unwrap();
    engine.graph_filled().await;
    let router = app(AppState::ready(engine, metrics.clone()));
    wait_ready(&router, "scylla").await;

    let user = unique("cql-fault");
    let popular = get(&router, "/v1/recommendations?limit=20").await.json_ok();
    let ids: Vec<String> = popular["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"]["id"].as_str().unwrap().to_string())
        .collect();
    for (n, id) in ids.iter().enumerate() {
        let action = if n % 3 == 0 { "view" } else { "like" };
        let event = format!(r#"{{"user_id":"{user}","item_id":"{id}","action":"{action}"}}"#);
        let posted = post(&router, "/v1/events", "application/json", event).await;
        assert!(posted.status.is_success(), "{}", posted.status);
    }
    let before = get(
        &router,
        &format!("/v1/recommendations?user_id={user}&limit=5"),
    )
    .await
    .json_ok();
    assert_eq!(before["cold_start"], false);

    // Crash (SIGKILL) the CQL server right after the acknowledgements.
    server_ctl("cassandra", &nodes, &["stop", "--kill"]).await;
    let during = get(
        &router,
        &format!("/v1/recommendations?user_id={user}&limit=5"),
    )
    .await;
    assert_eq!(during.status, StatusCode::OK);
    let during = during.json();
    assert_eq!(during["degraded"], serde_json::json!(["interactions"]));
    assert!(!during["items"].as_array().unwrap().is_empty());
    let ready = get(&router, "/readyz").await.json_ok();
    assert_eq!(ready["status"], "degraded");
    assert_ne!(ready["dependencies"]["scylla"], "ok");
    assert!(metrics
        .render()
        .contains("reco_degraded_responses_total{source=\"interactions\"}"));
    // A write that cannot be confirmed is refused, never acknowledged.
    let event = format!(
        r#"{{"user_id":"{user}","item_id":"{}","action":"like"}}"#,
        ids[0]
    );
    post(&router, "/v1/events", "application/json", event)
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable");

    server_ctl("cassandra", &nodes, &["start"]).await;
    wait_ready(&router, "scylla").await;
    let history = ScyllaInteractionStore::new(scylla_test_config(&nodes))
        .unwrap()
        .recent(&user, 100)
        .await
        .unwrap();
    assert_eq!(
        history.len(),
        ids.len(),
        "every acknowledged event survived"
    );
    let after = get(
        &router,
        &format!("/v1/recommendations?user_id={user}&limit=5"),
    )
    .await
    .json_ok();
    assert!(after.get("degraded").is_none(), "{after}");
    assert_eq!(after["items"], before["items"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_crash_degrades_graph_candidates_then_recovers() {
    let Some(uri) = test_server("SEMREC_TEST_BOLT") else {
        return;
    };
    let mut config = demo_config(&temp_dir("neo4j-fault"), 300);
    config.index.shards = 2;
    config.neo4j = neo4j_test_config(&uri);
    config.neo4j.timeout_ms = 2_000;
    let metrics = Arc::new(Metrics::new());
    let engine = core_api::bootstrap::open_embedded(config, encoder(), metrics.clone())
        .await
        .unwrap();
    engine.graph_filled().await;
    let router = app(AppState::ready(engine, metrics));
    wait_ready(&router, "neo4j").await;

    let user = unique("neo4j-fault");
    let popular = get(&router, "/v1/recommendations?limit=3").await.json_ok();
    for item in popular["items"].as_array().unwrap() {
        let id = item["item"]["id"].as_str().unwrap();
        let event = format!(r#"{{"user_id":"{user}","item_id":"{id}","action":"like"}}"#);
        let posted = post(&router, "/v1/events", "application/json", event).await;
        assert!(posted.status.is_success(), "{}", posted.status);
    }
    let url = format!("/v1/recommendations?user_id={user}&limit=5");
    assert!(get(&router, &url).await.json_ok().get("degraded").is_none());

    server_ctl("neo4j", &uri, &["stop", "--kill"]).await;
    let during = get(&router, &url).await;
    assert_eq!(during.status, StatusCode::OK);
    let during = during.json();
    assert_eq!(during["degraded"], serde_json::json!(["graph"]), "{during}");
    assert_eq!(during["cold_start"], false, "history still personalises");
    let ready = get(&router, "/readyz").await.json_ok();
    assert_eq!(ready["status"], "degraded");
    assert_ne!(ready["dependencies"]["neo4j"], "ok");

    server_ctl("neo4j", &uri, &["start"]).await;
    wait_ready(&router, "neo4j").await;
    let after = get(&router, &url).await.json_ok();
    assert!(after.get("degraded").is_none(), "{after}");
}
