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
        years: None,
    }
}

async fn engine(dir: &std::path::Path) -> Arc<Engine> {
    engine_with(dir, Arc::new(FakeEmbedder), 1).await
}

async fn engine_with(
    dir: &std::path::Path,
    embedder: Arc<dyn Embedder>,
    ingest_concurrency: usize,
) -> Arc<Engine> {
    let mut config = Config::default();
    config.model.ingest_concurrency = ingest_concurrency;
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
    Engine::open(config, backends, embedder, Arc::new(Metrics::new()))
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
        event_id: None,
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

/// The fake embedder, slowed down, counting how many calls run at once.
#[derive(Default)]
struct CountingEmbedder {
    running: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl Embedder for CountingEmbedder {
    fn dim(&self) -> usize {
        FakeEmbedder.dim()
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, gpu_batch::EmbedError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(50));
        self.running.fetch_sub(1, SeqCst);
        FakeEmbedder.embed_batch(texts)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalogue_embedding_runs_within_its_concurrency_bound() {
    for bound in [1, 2] {
        let dir =
            std::env::temp_dir().join(format!("engine-ingest-{bound}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let embedder = Arc::new(CountingEmbedder::default());
        let engine = engine_with(&dir, embedder.clone(), bound).await;
        embedder.most.store(0, std::sync::atomic::Ordering::SeqCst);
        let uploads: Vec<_> = (0..6)
            .map(|i| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    let batch = vec![item(&format!("i{i}"), "Space Robot", "Sci-Fi")];
                    engine.upsert_items(batch).await.unwrap()
                })
            })
            .collect();
        for upload in uploads {
            assert_eq!(upload.await.unwrap(), 1);
        }
        let most = embedder.most.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(most, bound, "at most {bound} catalogue embeddings at once");
        drop(engine);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn a_cached_taste_vector_of_the_wrong_shape_is_recomputed() {
    let dir = std::env::temp_dir().join(format!("engine-cached-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let engine = engine(&dir).await;
    let items = vec![
        item("s1", "Space Stars", "Sci-Fi"),
        item("s2", "Space Robot", "Sci-Fi"),
        item("r1", "Romance Love", "Romance"),
    ];
    engine.upsert_items(items).await.unwrap();
    let like = InteractionEvent {
        user_id: "u1".into(),
        item_id: "s1".into(),
        action: Action::Like,
        timestamp: None,
        recommendation_id: None,
        event_id: None,
    };
    engine.record_events(vec![like]).await.unwrap();
    // What a cache shared with another model (or a corrupt entry) would hold.
    let cache = &engine.backends().user_cache;
    for bad in [vec![0.5; 3], vec![f32::NAN; FakeEmbedder.dim()]] {
        cache.put("u1", &bad).await;
        let answer = engine.recommend(&request("u1")).await.unwrap();
        assert!(!answer.cold_start);
        assert_eq!(
            answer.items[0].item.id, "s2",
            "the taste comes from the history"
        );
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A genre filter runs inside the vector search: the nearest items of a rare genre are found
/// even when many closer-or-equal items of other genres, and every popular one, fail it.
#[tokio::test]
async fn a_rare_genre_finds_its_nearest_items_however_unpopular() {
    let dir = std::env::temp_dir().join(format!("engine-rare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let engine = engine(&dir).await;
    let quality = |mut input: ItemInput, q: f32| {
        input.quality = Some(q);
        input
    };
    // 1,500 dramas with the very same text as the query: the nearest items, and (by
    // quality) the most popular; then three unpopular noir films a little further away.
    let mut items: Vec<ItemInput> = (0..1_500)
        .map(|i| quality(item(&format!("d{i:04}"), "Space Robot", "Drama"), 0.9))
        .collect();
    items.extend(
        ["zz1", "zz2", "zz3"].map(|id| quality(item(id, "Space Robot Stars", "Film-Noir"), 0.0)),
    );
    items.push(quality(item("zz4", "Wedding", "Film-Noir"), 0.0));
    engine.upsert_items(items).await.unwrap();
    let req = NormalisedRequest {
        user_id: None,
        q: Some("space robot".into()),
        genre: Some("film-noir".into()),
        ..request("anyone")
    };
    let answer = engine.recommend(&req).await.unwrap();
    let ids: Vec<&str> = answer.items.iter().map(|i| i.item.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(
        ids.iter().all(|id| ["zz1", "zz2", "zz3"].contains(id)),
        "{ids:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A retried batch stores nothing twice: events are recognised by their `event_id`, or by
/// their content when they carry their own timestamp.
#[tokio::test]
async fn a_retried_events_batch_is_stored_once() {
    use shared_types::{ErrorCode, EventsAccepted};
    let dir = std::env::temp_dir().join(format!("engine-retry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let engine = engine(&dir).await;
    engine
        .upsert_items(vec![
            item("s1", "Space Stars", "Sci-Fi"),
            item("s2", "Space Robot", "Sci-Fi"),
            item("r1", "Romance Love", "Romance"),
        ])
        .await
        .unwrap();
    let event = |item: &str, event_id: Option<&str>, timestamp: Option<i64>| InteractionEvent {
        user_id: "u1".into(),
        item_id: item.into(),
        action: Action::Like,
        timestamp,
        recommendation_id: None,
        event_id: event_id.map(Into::into),
    };
    let batch = vec![
        event("s1", Some("client-1"), None),
        event("s2", None, Some(1_700_000_000)),
        event("r1", None, None),
    ];
    let first = engine.record_events(batch.clone()).await.unwrap();
    assert_eq!(
        first,
        EventsAccepted {
            accepted: 3,
            duplicates: 0
        }
    );
    let retry = engine.record_events(batch).await.unwrap();
    // The event with neither an id nor a timestamp cannot be told from a new one.
    assert_eq!(
        retry,
        EventsAccepted {
            accepted: 3,
            duplicates: 2
        }
    );
    assert_eq!(engine.export_user("u1").await.unwrap().len(), 4);
    for bad in ["", "has space", &"x".repeat(65)] {
        let Err(super::EngineError::Invalid { code, .. }) = engine
            .record_events(vec![event("s1", Some(bad), None)])
            .await
        else {
            panic!("event_id {bad:?} must be refused");
        };
        assert_eq!(code, ErrorCode::InvalidEventId);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
