//! A user's data is theirs: the export returns every stored interaction of the user, and the
//! erasure removes them and everything kept per user, at once and for good (after a restart
//! too). Erasure on the production backends is in `backends.rs`.

use shared_types::{Action, InteractionEvent, RecommendationResponse};

use crate::common::{demo_config, item_ids, open_engine, recommend_for, temp_dir};

/// The answer as ranked: items and scores.
fn ranked(reply: &RecommendationResponse) -> Vec<(String, f32)> {
    reply
        .items
        .iter()
        .map(|i| (i.item.id.clone(), i.score))
        .collect()
}

fn event(user: &str, item: &str, action: Action, at: i64, rec: Option<&str>) -> InteractionEvent {
    InteractionEvent {
        user_id: user.to_string(),
        item_id: item.to_string(),
        action,
        timestamp: Some(at),
        recommendation_id: rec.map(str::to_string),
        event_id: None,
    }
}

/// Fails if the erasure left any of: the stored events (export, or history used by the
/// ranking), the cached taste vector (the answer would stay personalised), the seen set (the
/// films the user had seen would stay out of an otherwise cold-start answer), or events only
/// removed in memory (they would come back with the replay at restart).
#[tokio::test]
async fn an_erased_user_gets_cold_start_answers_at_once_and_after_a_restart() {
    let config = demo_config(&temp_dir("erasure"), 300);
    let engine = open_engine(&config).await;
    let user = "erase-me";

    // The user acts on the most popular films, which a cold-start answer leads with.
    let films: Vec<String> =
        item_ids(&recommend_for(&engine, "erasure-probe", 10).await)[..3].to_vec();
    let now = core_api::clock::now_secs();
    engine
        .record_events(vec![
            event(user, &films[0], Action::Like, now - 300, None),
            event(user, &films[1], Action::Complete, now - 200, None),
        ])
        .await
        .unwrap();
    let personal = recommend_for(&engine, user, 10).await;
    assert!(!personal.cold_start, "personalised before the erasure");
    // A reward from this answer: the policy's impression of the user is involved too.
    let clicked = &personal
        .items
        .iter()
        .find(|i| !films.contains(&i.item.id))
        .unwrap()
        .item
        .id;
    let rec = Some(personal.recommendation_id.as_str());
    engine
        .record_events(vec![
            event(user, &films[2], Action::View, now - 100, None),
            event(user, clicked, Action::Like, now - 50, rec),
        ])
        .await
        .unwrap();

    // Every event invalidates the vector: this answer caches it again.
    assert!(!recommend_for(&engine, user, 10).await.cold_start);
    assert!(
        engine.backends().user_cache.get(user).await.is_some(),
        "taste vector cached"
    );

    let export = engine.export_user(user).await.unwrap();
    let exported: Vec<(&str, Action, i64)> = export
        .iter()
        .map(|e| (e.item_id.as_str(), e.action, e.timestamp))
        .collect();
    assert_eq!(
        exported,
        [
            (films[0].as_str(), Action::Like, now - 300),
            (films[1].as_str(), Action::Complete, now - 200),
            (films[2].as_str(), Action::View, now - 100),
            (clicked.as_str(), Action::Like, now - 50),
        ],
        "every event, oldest first"
    );
    assert_eq!(export[3].recommendation_id.as_deref(), rec);
    assert!(export.iter().all(|e| e.user_id == user));

    let report = engine.erase_user(user).await.unwrap();
    assert_eq!(report.user_id, user);
    assert_eq!(report.events, 4);
    assert_eq!(report.seen_items, 4);
    assert!(report.impressions >= 1, "{report:?}");
    assert_eq!(report.graph_edges, 0, "the in-process graph keeps no user");

    assert!(engine.export_user(user).await.unwrap().is_empty());
    assert!(
        engine.backends().user_cache.get(user).await.is_none(),
        "taste vector forgotten"
    );
    let after = recommend_for(&engine, user, 10).await;
    let fresh = recommend_for(&engine, "never-seen-user", 10).await;
    assert!(after.cold_start && fresh.cold_start);
    assert_eq!(ranked(&after), ranked(&fresh), "the cold-start answer");
    assert!(
        item_ids(&after).iter().any(|id| films.contains(id)),
        "films the user had seen are no longer filtered out: {:?}",
        item_ids(&after)
    );
    assert!(
        engine.backends().user_cache.get(user).await.is_none(),
        "nothing to cache from an empty history"
    );
    let again = engine.erase_user(user).await.unwrap();
    assert_eq!((again.events, again.seen_items), (0, 0), "idempotent");
    assert!(
        engine.export_user("").await.is_err(),
        "user ids are validated"
    );

    // Durable: the replay at start does not bring the events back.
    drop(engine);
    let engine = open_engine(&config).await;
    assert!(engine.export_user(user).await.unwrap().is_empty());
    let after = recommend_for(&engine, user, 10).await;
    let fresh = recommend_for(&engine, "another-new-user", 10).await;
    assert!(after.cold_start);
    assert_eq!(
        ranked(&after),
        ranked(&fresh),
        "cold start after the restart"
    );
}
