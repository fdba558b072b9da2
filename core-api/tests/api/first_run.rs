//! The first start on the demo catalogue: the node serves once the most rated films are
//! loaded while the rest follow in the background (durable, indexed, with their ratings,
//! reported in `/readyz`), and a start after an interruption resumes without embedding the
//! stored films again.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use core_api::embedding::{item_text, Embedder};
use core_api::metrics::Metrics;
use core_api::store::{EmbeddedStore, ItemStore};
use core_api::{app, AppState, Config, Engine};
use shared_types::Item;

use crate::common::*;

const FILMS: usize = 600;
const FIRST_BATCH: usize = 200;

/// The encoder, recording every text it embeds.
struct Recording {
    texts: Mutex<Vec<String>>,
}

impl Embedder for Recording {
    fn dim(&self) -> usize {
        encoder().dim()
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, gpu_batch::EmbedError> {
        self.texts.lock().unwrap().extend_from_slice(texts);
        encoder().embed_batch(texts)
    }
}

fn config(dir: &Path) -> Config {
    let mut c = demo_config(dir, FILMS);
    c.demo.first_batch = FIRST_BATCH;
    c
}

/// The demo films `config` loads (the rated ones first, as the loader keeps them) and the
/// number of ratings they have.
fn demo_films(config: &Config) -> (Vec<Item>, usize) {
    let ratings: Vec<_> = std::fs::read_to_string(&config.demo.ratings)
        .unwrap()
        .lines()
        .filter_map(core_api::demo::parse_rating)
        .map(|(r, _)| r.item_id)
        .collect();
    let rated: HashSet<&str> = ratings.iter().map(String::as_str).collect();
    let mut films: Vec<Item> = std::fs::read_to_string(&config.demo.catalog)
        .unwrap()
        .lines()
        .filter_map(core_api::demo::parse_movie)
        .collect();
    films.sort_by_key(|f| !rated.contains(f.id.as_str()));
    films.truncate(FILMS);
    let ids: HashSet<&str> = films.iter().map(|f| f.id.as_str()).collect();
    let count = ratings.iter().filter(|i| ids.contains(i.as_str())).count();
    (films, count)
}

async fn open(config: &Config, embedder: Arc<dyn Embedder>) -> Arc<Engine> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let opened = core_api::bootstrap::open_embedded(
            config.clone(),
            embedder.clone(),
            Arc::new(Metrics::new()),
        )
        .await;
        match opened {
            Ok(engine) => return engine,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("reopening: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("engine not opened: {e}"),
        }
    }
}

async fn loaded(engine: &Engine) {
    tokio::time::timeout(Duration::from_secs(600), engine.catalogue_loaded())
        .await
        .expect("background load finished in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_while_the_catalogue_loads_and_ends_with_every_film() {
    let dir = temp_dir("first-run");
    let config = config(&dir);
    let (films, ratings) = demo_films(&config);
    let engine = open(&config, encoder()).await;
    let router = app(AppState::ready(engine.clone(), Arc::new(Metrics::new())));
    let later: Vec<&Item> = films.iter().filter(|f| !engine.has_item(&f.id)).collect();

    // Ready after the first batch, the rest still to come.
    let ready = get(&router, "/readyz").await.json_ok();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["catalogue"]["loading"], true, "{ready}");
    assert_eq!(ready["catalogue"]["total"], FILMS, "{ready}");
    let first = ready["catalogue"]["loaded"].as_u64().unwrap() as usize;
    assert!((FIRST_BATCH..FILMS).contains(&first), "{ready}");
    // And it serves meanwhile.
    let recs = get(&router, "/v1/recommendations?limit=5&q=space%20adventure").await;
    assert_eq!(recs.json_ok()["items"].as_array().unwrap().len(), 5);

    loaded(&engine).await;
    let ready = get(&router, "/readyz").await.json_ok();
    assert_eq!(ready["catalogue"]["loading"], false, "{ready}");
    assert_eq!(ready["catalogue"]["loaded"], FILMS, "{ready}");
    assert_eq!(ready["catalogue"]["total"], FILMS, "{ready}");
    let missing: Vec<&str> = films
        .iter()
        .filter(|f| !engine.has_item(&f.id))
        .map(|f| f.id.as_str())
        .collect();
    assert!(missing.is_empty(), "films not loaded: {missing:?}");
    // Indexed: a film loaded in the background is found by its own text.
    let late = later.last().expect("films loaded in the background");
    let similar = engine.local_index().unwrap().search(
        &encoder().embed_batch(&[item_text(late)]).unwrap()[0],
        5,
        None,
        &Default::default(),
    );
    assert!(
        similar.iter().any(|h| *h.item_id == *late.id),
        "{} not indexed",
        late.id
    );
    // Every rating stored once, and the load marked done.
    let log = engine.backends().interactions.log().await.unwrap();
    assert_eq!(log.len(), ratings);
    assert!(!dir.join("demo-loading").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_the_load_without_embedding_stored_films_again() {
    let dir = temp_dir("first-run-resume");
    let config = config(&dir);
    let (films, ratings) = demo_films(&config);
    // Stopped right after turning ready: the background load ends with its engine.
    drop(open(&config, encoder()).await);
    let stored: HashSet<String> = loop {
        match EmbeddedStore::open(&config.storage.data_dir) {
            Ok(store) => break store.load_all().await.unwrap(),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    .into_iter()
    .map(|s| s.item.id)
    .collect();
    assert!(
        (FIRST_BATCH..FILMS).contains(&stored.len()),
        "{} stored",
        stored.len()
    );
    assert!(dir.join("demo-loading").exists(), "the load is unfinished");

    let recording = Arc::new(Recording {
        texts: Mutex::new(Vec::new()),
    });
    let engine = open(&config, recording.clone()).await;
    loaded(&engine).await;
    assert_eq!(engine.catalogue_load().pending, 0);
    assert!(films.iter().all(|f| engine.has_item(&f.id)));
    let embedded: HashSet<String> = recording.texts.lock().unwrap().iter().cloned().collect();
    for film in &films {
        let text = item_text(film);
        assert_eq!(
            embedded.contains(&text),
            !stored.contains(&film.id),
            "{} embedded again, or not at all",
            film.id
        );
    }
    let log = engine.backends().interactions.log().await.unwrap();
    assert_eq!(log.len(), ratings, "no rating stored twice");
    assert!(!dir.join("demo-loading").exists());
}
