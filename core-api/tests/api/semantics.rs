//! Semantic sanity on the real model and the real film catalogue.

use axum::http::StatusCode;

use crate::common::*;

fn sci_fi_share(reply: &serde_json::Value) -> usize {
    genres_of(reply)
        .iter()
        .filter(|g| g.iter().any(|x| x == "Sci-Fi"))
        .count()
}

#[tokio::test]
async fn a_user_who_liked_space_films_gets_space_films() {
    let app = demo_app();
    // 2001: A Space Odyssey, Star Trek II, Apollo 13, Forbidden Planet.
    let events: Vec<String> = ["tt0062622", "tt0084726", "tt0112384", "tt0049223"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                r#"{{"user_id":"space-fan","item_id":"{id}","action":"like","timestamp":{}}}"#,
                1_700_000_000 + i
            )
        })
        .collect();
    let r = post(
        &app,
        "/v1/events",
        "application/json",
        format!("[{}]", events.join(",")),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let recs = get(&app, "/v1/recommendations?user_id=space-fan&limit=10")
        .await
        .json_ok();
    let sci_fi = sci_fi_share(&recs);
    // Sci-Fi is 9% of these films; a semantic recommender must do far better than chance.
    assert!(sci_fi >= 6, "only {sci_fi}/10 Sci-Fi: {:?}", titles(&recs));
    assert!(recs["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["reason"].as_str().unwrap().len() > 5));
}

#[tokio::test]
async fn free_text_intent_steers_anonymous_results() {
    let app = demo_app();
    let space = get(
        &app,
        "/v1/recommendations?q=space%20adventure%20among%20the%20stars&limit=10",
    )
    .await
    .json_ok();
    assert!(sci_fi_share(&space) >= 5, "{:?}", titles(&space));
    assert!(space["items"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("matches"));
    let romance = get(
        &app,
        "/v1/recommendations?q=a%20romantic%20love%20story&limit=10",
    )
    .await
    .json_ok();
    let romantic = genres_of(&romance)
        .iter()
        .filter(|g| g.iter().any(|x| x == "Romance"))
        .count();
    assert!(romantic >= 5, "{:?}", titles(&romance));
}

#[tokio::test]
async fn similar_items_of_a_franchise_film_include_the_franchise() {
    let app = demo_app();
    let r = get(&app, "/v1/similar/tt0076759?limit=10").await.json_ok();
    let t = titles(&r);
    assert!(
        t.iter().filter(|x| x.starts_with("Star Wars")).count() >= 2,
        "{t:?}"
    );
    assert!(
        !t.contains(&"Star Wars".to_string()),
        "the seed itself is excluded"
    );
}
