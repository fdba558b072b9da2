//! What the engine learns from interactions, end to end: the whole-history seen filter (also
//! after a restart), next-item transitions updated online by each event, the collaborative
//! model and ranker retrained in the background and swapped in without a restart, and the
//! saved model loaded at start.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use core_api::metrics::Metrics;
use core_api::{app, AppState, Config, Engine, EngineError};
use shared_types::{Action, InteractionEvent, Item, RecommendationResponse};

use crate::common::{
    demo_config, get, item_ids, open_engine, post, recommend_for, repo_root, temp_dir,
};

/// Every film of the demo catalogue file, in file order.
fn movies() -> &'static [Item] {
    static MOVIES: OnceLock<Vec<Item>> = OnceLock::new();
    MOVIES.get_or_init(|| {
        std::fs::read_to_string(repo_root().join("data/movietweetings/catalog-movies.dat"))
            .unwrap()
            .lines()
            .filter_map(core_api::demo::parse_movie)
            .collect()
    })
}

/// `n` films of 1995–2012 (so titles and genres mean something to the model).
fn pool(n: usize) -> Vec<Item> {
    let pool: Vec<Item> = movies()
        .iter()
        .filter(|m| m.year.is_some_and(|y| (1995..=2012).contains(&y)) && !m.genres.is_empty())
        .take(n)
        .cloned()
        .collect();
    assert_eq!(pool.len(), n, "enough films in the catalogue file");
    pool
}

fn has_genre(item: &Item, genre: &str) -> bool {
    item.genres.iter().any(|g| g == genre)
}

/// One line of a MovieTweetings `ratings.dat`: 8–10 is a like, 6–7 complete, 4–5 view.
struct Rating {
    user: String,
    item: String,
    rating: u8,
    at: i64,
}

fn rating(user: impl Into<String>, item: &Item, rating: u8, at: i64) -> Rating {
    Rating {
        user: user.into(),
        item: item.id.clone(),
        rating,
        at,
    }
}

/// Writes `ratings` plus one "view" (not a positive interaction) of every film of `pool` by
/// a keeper user, so the demo loader keeps exactly `pool` when `max_items = pool.len()`
/// (it keeps rated films first).
fn write_ratings(dir: &Path, pool: &[Item], ratings: &[Rating]) -> PathBuf {
    let path = dir.join("ratings.dat");
    let mut text = String::new();
    let keeper = pool.iter().map(|i| rating("keeper", i, 5, 1_300_000_000));
    for r in keeper.chain(ratings.iter().map(|r| Rating {
        user: r.user.clone(),
        item: r.item.clone(),
        rating: r.rating,
        at: r.at,
    })) {
        let numeric = r.item.trim_start_matches("tt");
        text.push_str(&format!("{}::{numeric}::{}::{}\n", r.user, r.rating, r.at));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// A config over exactly `pool` with the given ratings.
fn pool_config(dir: &Path, pool: &[Item], ratings: &[Rating]) -> Config {
    let mut c = demo_config(dir, pool.len());
    c.demo.ratings = write_ratings(dir, pool, ratings);
    c
}

/// Waits until no training runs and `done(status)` holds.
async fn wait_model(
    engine: &Engine,
    what: &str,
    done: impl Fn(&core_api::learn::learner::ModelStatus) -> bool,
) -> core_api::learn::learner::ModelStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = engine.model_status();
        if !status.training && done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn event(user: &str, item: &str, action: Action, timestamp: i64) -> InteractionEvent {
    InteractionEvent {
        user_id: user.to_string(),
        item_id: item.to_string(),
        action,
        timestamp: Some(timestamp),
        recommendation_id: None,
        event_id: None,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Versions of the model files in `<data_dir>/models` (`model-<version>.bin`).
fn saved_versions(data_dir: &Path) -> Vec<u64> {
    let mut versions: Vec<u64> = std::fs::read_dir(data_dir.join("models"))
        .map(|entries| {
            entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name().to_string_lossy().to_string();
                    name.strip_prefix("model-")?
                        .strip_suffix(".bin")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_unstable();
    versions
}

/// Ten films that users walk through in order (0 → 1 → … → 9 → 0), for the trained model.
fn cycle_of(pool: &[Item]) -> Vec<Item> {
    pool[..10].to_vec()
}

/// `users` users each like `steps` consecutive films of the cycle, from different starts.
fn cyclic_events(prefix: &str, cycle: &[Item], users: usize, steps: usize, t0: i64) -> Vec<Rating> {
    let mut out = Vec::new();
    for step in 0..steps {
        for u in 0..users {
            out.push(rating(
                format!("{prefix}{u}"),
                &cycle[(u + step) % cycle.len()],
                9,
                t0 + (step * 1_000 + u) as i64,
            ));
        }
    }
    out
}

/// A user with hundreds of events never gets any of their items back, not even those far
/// outside the `history_limit` latest events, through the engine, the HTTP API, `similar`,
/// and after a restart (seen sets replayed from the store).
///
/// Fails if the seen filter covered only the latest `history_limit` (50) events: a twin user
/// who has exactly those 50 events is shown to be recommended the long user's older items,
/// so without the whole-history filter the long user would get them too.
#[tokio::test]
async fn a_long_history_never_gets_a_seen_item_back() {
    let dir = temp_dir("learn-seen");
    // The real demo ratings over 600 films: real popularity, and a model trained at start.
    let config = demo_config(&dir, 600);
    assert_eq!(config.ranking.history_limit, 50);
    let engine = open_engine(&config).await;
    let catalogue: Vec<&Item> = movies()
        .iter()
        .filter(|m| engine.get_item(&m.id).is_ok())
        .collect();
    assert_eq!(catalogue.len(), engine.catalog_len());

    // 550 events over 450 distinct films, oldest first, a minute apart, a month ago.
    let user = "long-history-user";
    let seen: Vec<&Item> = catalogue[..450].to_vec();
    let start = now() - 30 * 86_400;
    let events: Vec<InteractionEvent> = (0..550)
        .map(|i| {
            let action = match i % 5 {
                0 | 1 => Action::Like,
                2 | 3 => Action::View,
                _ => Action::Dislike,
            };
            event(
                user,
                &seen[i % seen.len()].id,
                action,
                start + 60 * i as i64,
            )
        })
        .collect();
    for batch in events.chunks(200) {
        assert_eq!(
            engine.record_events(batch.to_vec()).await.unwrap().accepted,
            batch.len()
        );
    }
    let seen_ids: HashSet<String> = seen.iter().map(|i| i.id.clone()).collect();
    let newest: HashSet<String> = events[events.len() - 50..]
        .iter()
        .map(|e| e.item_id.clone())
        .collect();
    let older_only: HashSet<String> = seen_ids.difference(&newest).cloned().collect();
    assert_eq!(older_only.len(), 400);

    let check = |reply: &RecommendationResponse, via: &str| {
        let got = item_ids(reply);
        assert!(
            got.len() >= 20,
            "{via}: enough unseen films remain: {got:?}"
        );
        let back: Vec<&String> = got.iter().filter(|id| seen_ids.contains(*id)).collect();
        assert!(back.is_empty(), "{via}: seen films came back: {back:?}");
    };
    let reply = recommend_for(&engine, user, 50).await;
    assert!(!reply.cold_start);
    check(&reply, "engine");

    // Through the HTTP API.
    let metrics = Arc::new(Metrics::new());
    let router = app(AppState::ready(engine.clone(), metrics));
    let body = get(
        &router,
        &format!("/v1/recommendations?user_id={user}&limit=50"),
    )
    .await
    .json_ok();
    let http_ids: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"]["id"].as_str().unwrap().to_string())
        .collect();
    assert!(http_ids.len() >= 20, "{body}");
    let back: Vec<&String> = http_ids
        .iter()
        .filter(|id| seen_ids.contains(*id))
        .collect();
    assert!(back.is_empty(), "HTTP: seen films came back: {back:?}");

    // Similar items for this user exclude them too.
    let similar = engine.similar(&seen[0].id, 50, Some(user)).await.unwrap();
    let back: Vec<String> = item_ids(&similar)
        .into_iter()
        .filter(|id| seen_ids.contains(id))
        .collect();
    assert!(back.is_empty(), "similar: seen films came back: {back:?}");

    // The control: the same latest 50 events alone do not keep the older films out.
    let twin = "twin-of-long-history-user";
    let twin_events: Vec<InteractionEvent> = events[events.len() - 50..]
        .iter()
        .map(|e| event(twin, &e.item_id, e.action, e.timestamp.unwrap()))
        .collect();
    engine.record_events(twin_events).await.unwrap();
    let twin_reply = recommend_for(&engine, twin, 50).await;
    let would_come_back: Vec<String> = item_ids(&twin_reply)
        .into_iter()
        .filter(|id| older_only.contains(id))
        .collect();
    assert!(
        !would_come_back.is_empty(),
        "the older films are strong candidates for this taste, or this test proves nothing"
    );

    // After a restart the seen sets are rebuilt from the stored events.
    drop(router);
    drop(engine);
    let engine = open_engine(&config).await;
    check(&recommend_for(&engine, user, 50).await, "after restart");
}

/// One `like` changes the very next answer through the next-item transitions: many users
/// liked A then B (posted as events, so the transitions exist only through the online
/// update); once our user likes A, B is recommended "because you just watched A". No model
/// is trained here (`min_positives` unreachable), so nothing else learns A → B.
/// Fails if `record_events` did not update the transitions (`Learner::observe`): A would
/// have no successors and B stays out; if the reason were not the transition's; or, after
/// the restart, if the transitions were not replayed from the store.
#[tokio::test]
async fn a_new_event_changes_the_next_answer() {
    let dir = temp_dir("learn-next");
    let films = pool(200);
    let pick = |want: &str, avoid: &[&str], skip: &[&Item]| -> Item {
        films
            .iter()
            .find(|m| {
                has_genre(m, want)
                    && !avoid.iter().any(|g| has_genre(m, g))
                    && !skip.iter().any(|s| s.id == m.id)
            })
            .unwrap_or_else(|| panic!("a {want} film in the pool"))
            .clone()
    };
    let c = pick("Horror", &["Romance", "Documentary"], &[]);
    let a = pick("Romance", &["Horror", "Documentary"], &[&c]);
    let b = pick("Documentary", &["Horror", "Romance"], &[&a, &c]);
    let popular: Vec<Item> = films
        .iter()
        .filter(|m| ![&a.id, &b.id, &c.id].contains(&&m.id) && !has_genre(m, "Horror"))
        .take(20)
        .cloned()
        .collect();
    // 80 fans like 10 of the 20 popular films each: those, not B, are the popular ones.
    let t0 = 1_360_000_000;
    let mut ratings = Vec::new();
    for u in 0..80usize {
        for k in 0..10usize {
            let film = &popular[(u + k * 2) % popular.len()];
            ratings.push(rating(
                format!("fan{u}"),
                film,
                9,
                t0 + (u * 100 + k) as i64,
            ));
        }
    }
    let mut config = pool_config(&dir, &films, &ratings);
    config.learning.min_positives = usize::MAX;
    config.learning.retrain_every_secs = 0;
    let engine = open_engine(&config).await;
    assert_eq!(engine.catalog_len(), films.len());

    // 25 users like A, then B ten minutes later, twenty days ago.
    let t1 = now() - 20 * 86_400;
    let walks: Vec<InteractionEvent> = (0..25i64)
        .flat_map(|u| {
            let user = format!("ab{u}");
            [
                event(&user, &a.id, Action::Like, t1 + u * 3_600),
                event(&user, &b.id, Action::Like, t1 + u * 3_600 + 600),
            ]
        })
        .collect();
    engine.record_events(walks).await.unwrap();

    let user = "next-item-user";
    engine
        .record_events(vec![event(user, &c.id, Action::Like, now() - 3_600)])
        .await
        .unwrap();
    let first = recommend_for(&engine, user, 10).await;
    let second = recommend_for(&engine, user, 10).await;
    assert_eq!(
        item_ids(&first),
        item_ids(&second),
        "answers are stable without events"
    );
    assert!(
        !item_ids(&first).contains(&b.id),
        "B is not recommended before the event: {:?}",
        first
            .items
            .iter()
            .map(|i| &i.item.title)
            .collect::<Vec<_>>()
    );
    assert!(first.items.iter().all(|i| i.components.transition == 0.0));

    engine
        .record_events(vec![event(user, &a.id, Action::Like, now())])
        .await
        .unwrap();
    let after = recommend_for(&engine, user, 10).await;
    assert_ne!(
        item_ids(&after),
        item_ids(&second),
        "one event changes the next answer"
    );
    let because_of_a = |reply: &RecommendationResponse, when: &str| {
        let got = reply
            .items
            .iter()
            .find(|i| i.item.id == b.id)
            .unwrap_or_else(|| {
                panic!(
                    "{when}: B follows A for everyone who liked A: {:?}",
                    reply
                        .items
                        .iter()
                        .map(|i| (&i.item.title, &i.reason))
                        .collect::<Vec<_>>()
                )
            });
        assert_eq!(
            got.reason,
            format!("because you just watched {}", a.title),
            "{when}: {got:?}"
        );
        assert!(got.components.transition > 0.0, "{when}: {got:?}");
        assert!(!item_ids(reply).contains(&a.id), "{when}: A is seen now");
    };
    because_of_a(&after, "after the like");
    assert_eq!(engine.model_status().version, 0, "no model was trained");

    // The transitions are rebuilt from the stored events at the next start.
    drop(engine);
    let engine = open_engine(&config).await;
    because_of_a(&recommend_for(&engine, user, 10).await, "after a restart");
}

/// Retraining through the operator API: 202, the new version is served without a restart,
/// with a ranker, saved to disk, and its collaborative model shapes the answers.
/// Fails if the trained model were not swapped in (the version never increases and
/// `collaborative` stays 0), not saved, or trained without a ranker.
#[tokio::test]
async fn retraining_in_the_background_is_served_without_a_restart() {
    let dir = temp_dir("learn-retrain");
    let films = pool(120);
    let cycle = cycle_of(&films);
    // Too few positives at start (20 < 100): nothing is trained until events arrive.
    let ratings = cyclic_events("early", &cycle, 10, 2, 1_360_000_000);
    let mut config = pool_config(&dir, &films, &ratings);
    config.learning.min_positives = 100;
    config.learning.retrain_every_secs = 0;
    let engine = open_engine(&config).await;
    let router = app(AppState::ready(engine.clone(), Arc::new(Metrics::new())));

    // Nothing is served yet: training is on demand only, and the store has too little data
    // (a start-up attempt, if any, would find it so; give it time to end).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = get(&router, "/admin/model").await.json_ok();
    assert_eq!(status["version"], 0, "{status}");
    assert_eq!(status["has_ranker"], false, "{status}");
    let v0 = status["version"].as_u64().unwrap();

    // Control: without a trained model nothing is collaborative.
    let probe = "retrain-probe";
    let like_first = format!(
        r#"[{{"user_id":"{probe}","item_id":"{}","action":"like","timestamp":{}}}]"#,
        cycle[0].id,
        now() - 60
    );
    let posted = post(&router, "/v1/events", "application/json", like_first).await;
    assert_eq!(posted.status, StatusCode::ACCEPTED);
    let before = get(
        &router,
        &format!("/v1/recommendations?user_id={probe}&limit=10"),
    )
    .await
    .json_ok();
    for item in before["items"].as_array().unwrap() {
        assert_eq!(item["components"]["collaborative"], 0.0, "{item}");
    }

    // 60 users walk 6 steps of the cycle: 360 positives.
    let walks = cyclic_events("walker", &cycle, 60, 6, now() - 10 * 86_400);
    for batch in walks.chunks(150) {
        let body: Vec<serde_json::Value> = batch
            .iter()
            .map(|r| {
                serde_json::json!({
                    "user_id": r.user, "item_id": r.item, "action": "like", "timestamp": r.at
                })
            })
            .collect();
        let posted = post(
            &router,
            "/v1/events",
            "application/json",
            serde_json::to_string(&body).unwrap(),
        )
        .await;
        assert_eq!(posted.status, StatusCode::ACCEPTED);
    }

    let started = post(&router, "/admin/model/retrain", "application/json", "").await;
    assert_eq!(
        started.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&started.body)
    );
    assert_eq!(started.json()["training"], true);
    // The first request holds the training slot from its answer on: a second one while
    // it runs is refused (the demo data takes far longer to train than one request).
    let again = post(&router, "/admin/model/retrain", "application/json", "").await;
    again.assert_error(StatusCode::CONFLICT, "training_in_progress");

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = get(&router, "/admin/model").await.json_ok();
        if status["version"].as_u64().unwrap() > v0 && status["training"] == false {
            break status;
        }
        assert!(Instant::now() < deadline, "no new model in time: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let version = status["version"].as_u64().unwrap();
    assert_eq!(status["has_ranker"], true, "{status}");
    assert!(
        status["report"]["ranker_examples"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert!(
        status["report"]["interactions"].as_u64().unwrap() >= 380,
        "{status}"
    );
    assert!(
        saved_versions(&dir).contains(&version),
        "model file of version {version} in {}: {:?}",
        dir.join("models").display(),
        saved_versions(&dir)
    );

    // The same user, same history: the served model now shapes the answer.
    let after = get(
        &router,
        &format!("/v1/recommendations?user_id={probe}&limit=10"),
    )
    .await
    .json_ok();
    let items = after["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["components"]["collaborative"].as_f64().unwrap() > 0.0),
        "{after}"
    );
    assert!(
        items.iter().any(|i| {
            let reason = i["reason"].as_str().unwrap();
            reason.starts_with("people who watched")
                || reason.starts_with("because you just watched")
        }),
        "{after}"
    );
}

/// A model trained and saved by one process is served by the next one at start, without
/// training again. With a schedule (`retrain_every_secs > 0`) the engine trains at once
/// only when no model exists: the first start trains, the second loads.
/// Fails if the start did not load the newest file (the second start would then serve
/// version 0 and train a new version at once), or loaded it without its collaborative
/// neighbours.
#[tokio::test]
async fn a_saved_model_is_loaded_at_start() {
    let dir = temp_dir("learn-reload");
    let films = pool(100);
    let cycle = cycle_of(&films);
    let ratings = cyclic_events("walker", &cycle, 40, 6, 1_360_000_000);
    let mut config = pool_config(&dir, &films, &ratings);
    config.learning.min_positives = 20;
    config.learning.retrain_every_secs = 3_600;

    // No model on disk: the first start trains one in the background.
    let engine = open_engine(&config).await;
    let trained = wait_model(&engine, "a model trained at start", |s| s.version > 0).await;
    assert!(trained.has_ranker, "{trained:?}");
    assert_eq!(saved_versions(&dir), vec![trained.version]);
    drop(engine);

    let engine = open_engine(&config).await;
    let loaded = engine.model_status();
    assert_eq!(loaded.version, trained.version, "{loaded:?}");
    assert_eq!(loaded.trained_at, trained.trained_at);
    assert!(loaded.has_ranker);
    assert_eq!(
        loaded.report.ranker_examples,
        trained.report.ranker_examples
    );
    assert_eq!(loaded.report.interactions, trained.report.interactions);
    // It does not train again (without a model it would at once).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let later = engine.model_status();
    assert_eq!(later.version, trained.version, "{later:?}");
    assert!(!later.training);
    assert_eq!(saved_versions(&dir), vec![trained.version]);

    // The loaded collaborative neighbours serve: a like of one cycle film brings others.
    let user = "reload-probe";
    engine
        .record_events(vec![event(user, &cycle[3].id, Action::Like, now())])
        .await
        .unwrap();
    let reply = recommend_for(&engine, user, 10).await;
    assert!(
        reply.items.iter().any(|i| i.components.collaborative > 0.0),
        "{:?}",
        reply
            .items
            .iter()
            .map(|i| (&i.item.title, i.components.collaborative, &i.reason))
            .collect::<Vec<_>>()
    );
}

/// Training on a store with too few positive interactions is refused with
/// `not_enough_data`, by `Engine::retrain` and by `POST /admin/model/retrain` (409).
/// Fails if a model were trained from too little data or the error had another code.
#[tokio::test]
async fn retraining_without_enough_data_is_refused() {
    let dir = temp_dir("learn-too-few");
    let films = pool(80);
    let cycle = cycle_of(&films);
    // 10 positives; the default needs 50.
    let ratings = cyclic_events("few", &cycle, 5, 2, 1_360_000_000);
    let config = pool_config(&dir, &films, &ratings);
    assert_eq!(config.learning.min_positives, 50);
    let engine = open_engine(&config).await;

    // The start-up attempt may still hold the training lock for a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = loop {
        match engine.retrain().await {
            Err(EngineError::Conflict { code, .. })
                if code == shared_types::ErrorCode::TrainingInProgress
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => break e,
            Ok(report) => panic!("trained from 10 positives: {report:?}"),
        }
    };
    match &err {
        EngineError::Conflict { code, message } => {
            assert_eq!(code.as_str(), "not_enough_data", "{message}");
            assert!(
                message.contains("10") && message.contains("50"),
                "{message}"
            );
        }
        other => panic!("expected a conflict: {other:?}"),
    }

    let router = app(AppState::ready(engine.clone(), Arc::new(Metrics::new())));
    let refused = post(&router, "/admin/model/retrain", "application/json", "").await;
    refused.assert_error(StatusCode::CONFLICT, "not_enough_data");
    let status = engine.model_status();
    assert_eq!(status.version, 0, "{status:?}");
    assert!(!status.has_ranker);
    assert!(saved_versions(&dir).is_empty());
    let reported = get(&router, "/admin/model").await.json_ok();
    assert_eq!(reported["version"], 0);
}
