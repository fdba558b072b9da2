//! The learning loop through the API: responses are logged as impressions, events that
//! reference them reward the policy, the operator endpoints report and evaluate it, and its
//! state survives a restart.

use std::sync::Arc;

use axum::http::StatusCode;
use core_api::metrics::Metrics;
use core_api::{app, AppState};

use crate::common::{demo_config, encoder, get, post, temp_dir};

#[tokio::test]
async fn rewards_teach_the_policy_which_is_reported_evaluated_and_persisted() {
    let dir = temp_dir("policy");
    let mut config = demo_config(&dir, 300);
    config.index.shards = 2;
    config.policy.epsilon = 0.2;
    config.policy.save_every = 1_000_000;
    let metrics = Arc::new(Metrics::new());
    let engine = core_api::bootstrap::open_embedded(config.clone(), encoder(), metrics.clone())
        .await
        .unwrap();
    let router = app(AppState::ready(engine.clone(), metrics.clone()));

    let mut rewarded = 0;
    for round in 0..30 {
        let user = format!("policy-user-{round}");
        let reply = get(
            &router,
            &format!("/v1/recommendations?user_id={user}&limit=5"),
        )
        .await
        .json_ok();
        let id = reply["recommendation_id"].as_str().unwrap().to_string();
        let lead = reply["items"][0]["item"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let second = reply["items"][1]["item"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let events = format!(
            r#"[{{"user_id":"{user}","item_id":"{lead}","action":"like","recommendation_id":"{id}"}},
                {{"user_id":"{user}","item_id":"{second}","action":"skip","recommendation_id":"{id}"}},
                {{"user_id":"{user}","item_id":"{second}","action":"skip","recommendation_id":"{id}"}}]"#
        );
        let posted = post(&router, "/v1/events", "application/json", events).await;
        assert_eq!(posted.status, StatusCode::ACCEPTED);
        rewarded += 2;
    }
    // An unknown response id is accepted (the event is stored) but teaches nothing.
    let stray =
        r#"{"user_id":"x","item_id":"tt0000001","action":"like","recommendation_id":"nope"}"#;
    let _ = post(&router, "/v1/events", "application/json", stray).await;

    let report = get(&router, "/admin/policy").await.json_ok();
    assert_eq!(report["enabled"], true);
    assert_eq!(
        report["updates"], rewarded,
        "one update per (impression, item, user): {report}"
    );
    assert_eq!(report["decisions"], 30);
    assert_eq!(report["observed_reward"], 1.0, "every lead was liked");
    assert!(report["weights"]["global"]["semantic"].is_number());
    assert!(report["static_ranker"]["ips"].is_number());
    let text = metrics.render();
    assert!(
        text.contains("reco_policy_rewards_total{outcome=\"positive\"} 30"),
        "{text}"
    );
    assert!(text.contains("reco_policy_rewards_total{outcome=\"negative\"} 30"));
    assert!(text.contains("reco_policy_decisions_total"));
    assert!(text.contains("reco_stage_duration_seconds_count{stage=\"policy\"}"));

    // Candidate weights are judged on the logged decisions before they serve.
    let evaluated = post(
        &router,
        "/admin/policy/evaluate",
        "application/json",
        r#"{"weights":{"semantic":1.0,"freshness":0.5}}"#.to_string(),
    )
    .await
    .json_ok();
    let candidate = &evaluated["candidate"];
    assert_eq!(candidate["decisions"], 30);
    assert!(candidate["ips"].as_f64().unwrap() >= 0.0);
    post(
        &router,
        "/admin/policy/evaluate",
        "application/json",
        r#"{"weights":{"charisma":1.0}}"#.to_string(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_weights");

    // The learned state survives a restart.
    let learned = engine.policy_report(None).await.unwrap().weights;
    assert!(learned.is_some());
    engine.persist_policy().await.unwrap();
    engine.graph_filled().await;
    drop(router);
    drop(engine);
    let reopened = core_api::bootstrap::open_embedded(config, encoder(), Arc::new(Metrics::new()))
        .await
        .unwrap();
    let restored = reopened.policy_report(None).await.unwrap();
    assert_eq!(restored.updates, rewarded as u64);
    assert_eq!(restored.weights, learned);
}

#[tokio::test]
async fn a_switched_off_policy_keeps_the_static_order() {
    let mut config = demo_config(&temp_dir("policy-off"), 200);
    config.policy.enabled = false;
    let engine = core_api::bootstrap::open_embedded(config, encoder(), Arc::new(Metrics::new()))
        .await
        .unwrap();
    let router = app(AppState::ready(engine, Arc::new(Metrics::new())));
    let reply = get(&router, "/v1/recommendations?limit=5").await.json_ok();
    let scores: Vec<f64> = reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert!(scores[0] >= scores[1..].iter().cloned().fold(f64::MIN, f64::max));
    let report = get(&router, "/admin/policy").await.json_ok();
    assert_eq!(report["enabled"], false);
    assert_eq!(report["decisions"], 0);
}
