//! The engine end to end without the real model: a fake embedder that maps words to fixed
//! directions, the embedded store in a temporary directory and the in-process graph and
//! cache. Fast, so the engine's own behaviour is tested apart from the model's.

use std::sync::Arc;

use shared_types::{Action, InteractionEvent, ItemInput, NormalisedRequest};

use super::{Backends, Engine};
use crate::config::Config;
use crate::embedding::Embedder;
use crate::metrics::Metrics;
use crate::store::{EmbeddedStore, InProcessItemGraph, InProcessUserCache};

/// Words → directions: each known word adds one axis, so texts that share words point the
/// same way and texts that share none are orthogonal.
struct FakeEmbedder;

const WORDS: [&str; 8] = [
    "space", "stars", "robot", "romance", "love", "wedding", "comedy", "war",
];

impl Embedder for FakeEmbedder {
    fn dim(&self) -> usize {
        WORDS.len() + 1
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, gpu_batch::EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let t = t.to_lowercase();
                let mut v: Vec<f32> = WORDS
                    .iter()
                    .map(|w| f32::from(u8::from(t.contains(w))))
                    .collect();
                v.push(0.1); // never the zero vector
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect())
    }
}

fn item(id: &str, title: &str, genre: &str) -> ItemInput {
    serde_json::from_value(serde_json::json!({
        "id": id, "title": title, "genres": [genre], "year": 2001, "maturity": "all"
    }))
    .unwrap()
}

fn request(user: &str) -> NormalisedRequest {
    NormalisedRequest {
        user_id: Some(user.into()),
        limit: 3,
        q: None,
        time_of_day: None,
        device: None,
        locale: None,
        language: None,
        exclude_genres: Vec::new(),
        max_maturity: None,
        genre: None,
        audience: None,
    }
}

async fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let mut config = Config::default();
    config.storage.data_dir = dir.to_path_buf();
    config.index.shards = 2;
    config.policy.enabled = false;
    let store = Arc::new(EmbeddedStore::open(dir).unwrap());
    let backends = Backends {
        items: store.clone(),
        interactions: store,
        graph: Arc::new(InProcessItemGraph::new(0.0)),
        user_cache: Arc::new(InProcessUserCache::new(
            100,
            std::time::Duration::from_secs(60),
        )),
    };
    Engine::open(
        config,
        backends,
        Arc::new(FakeEmbedder),
        Arc::new(Metrics::new()),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_users_taste_picks_the_nearest_unseen_items() {
    let dir = std::env::temp_dir().join(format!("engine-fake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let engine = engine(&dir).await;
    let items = vec![
        item("s1", "Space Stars", "Sci-Fi"),
        item("s2", "Space Robot", "Sci-Fi"),
        item("s3", "Robot Stars", "Sci-Fi"),
        item("s4", "Space Stars Robot", "Sci-Fi"),
        item("r1", "Romance Love", "Romance"),
        item("r2", "Love Wedding", "Romance"),
        item("r3", "Wedding Comedy", "Comedy"),
        item("w1", "War", "War"),
    ];
    assert_eq!(engine.upsert_items(items).await.unwrap(), 8);
    let liked = ["s1", "s2"].map(|id| InteractionEvent {
        user_id: "u1".into(),
        item_id: id.into(),
        action: Action::Like,
        timestamp: None,
        recommendation_id: None,
    });
    engine.record_events(liked.to_vec()).await.unwrap();

    let answer = engine.recommend(&request("u1")).await.unwrap();
    let ids: Vec<&str> = answer.items.iter().map(|s| s.item.id.as_str()).collect();
    assert!(!answer.cold_start);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(
        !ids.contains(&"s1") && !ids.contains(&"s2"),
        "seen items: {ids:?}"
    );
    assert!(
        ids[..2].iter().all(|id| id.starts_with('s')),
        "the two unseen space films lead: {ids:?}"
    );

    // A new user has no taste: the answer is the cold-start one, never an error.
    let cold = engine.recommend(&request("u2")).await.unwrap();
    assert!(cold.cold_start);

    // A deleted item is never served again.
    engine.delete_item("s3").await.unwrap();
    let after = engine.recommend(&request("u1")).await.unwrap();
    assert!(after.items.iter().all(|s| s.item.id != "s3"));
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}
