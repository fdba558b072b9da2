//! Shared fixtures: temporary directories, the real model, and one demo engine per test
//! binary (loading the model and embedding the demo films once keeps the suite fast).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use core_api::metrics::Metrics;
use core_api::{app, AppState, Config, Engine};
use http_body_util::BodyExt;
use shared_types::{RecommendationQuery, RecommendationResponse};
use tower::ServiceExt;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "core-api-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The films rated in the demo snapshot (4,730), so ratings, graph and popularity are real.
pub const DEMO_FILMS: usize = 4_730;

pub fn demo_config(data_dir: &Path, max_items: usize) -> Config {
    let root = repo_root();
    let mut c = Config::default();
    c.storage.data_dir = data_dir.to_path_buf();
    c.model.dir = root.join(gpu_batch::DEFAULT_MODEL_DIR);
    c.demo.catalog = root.join("data/movietweetings/catalog-movies.dat");
    c.demo.ratings = root.join("data/movietweetings/snapshot-20k/ratings.dat");
    c.demo.max_items = max_items;
    // Every film before the engine opens, so tests see the whole catalogue at once (the
    // background load has its own tests in `first_run.rs`).
    c.demo.first_batch = 0;
    c.server.max_body_bytes = 64 * 1024;
    // Tests run many heavy things at once on few cores; the deadline is not under test here.
    c.server.request_timeout_ms = 120_000;
    // Deterministic answers: the policy exploits only (tests of exploration set their own).
    c.policy.epsilon = 0.0;
    // No background training: a training holds its engine (and the embedded database) until
    // it ends, which would race tests that reopen the store. Tests of training ask for it.
    c.learning.retrain_every_secs = 0;
    c
}

pub fn encoder() -> Arc<gpu_batch::TextEncoder> {
    static ENCODER: OnceLock<Arc<gpu_batch::TextEncoder>> = OnceLock::new();
    ENCODER
        .get_or_init(|| {
            Arc::new(
                gpu_batch::TextEncoder::load(&repo_root().join(gpu_batch::DEFAULT_MODEL_DIR))
                    .expect("model present (scripts/fetch-model.sh)"),
            )
        })
        .clone()
}

/// One engine over the demo snapshot films, shared by the tests of this binary. It is
/// created on its own runtime thread because each `#[tokio::test]` has its own runtime.
pub fn demo_engine() -> (Arc<Engine>, Arc<Metrics>) {
    static ENGINE: OnceLock<(Arc<Engine>, Arc<Metrics>)> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            std::thread::spawn(|| {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    let metrics = Arc::new(Metrics::new());
                    let config = demo_config(&temp_dir("demo"), DEMO_FILMS);
                    let engine =
                        core_api::bootstrap::open_embedded(config, encoder(), metrics.clone())
                            .await
                            .unwrap();
                    // Filled on this runtime, which ends with this thread.
                    engine.graph_filled().await;
                    (engine, metrics)
                })
            })
            .join()
            .unwrap()
        })
        .clone()
}

pub fn demo_app() -> axum::Router {
    let (engine, metrics) = demo_engine();
    app(AppState::ready(engine, metrics))
}

/// A response decoded for assertions.
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts a 200 and returns the JSON body.
    pub fn json_ok(&self) -> serde_json::Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    /// Asserts a client error with the `{code, message}` body.
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["code"], code, "body: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message present: {body}"
        );
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "exactly code and message: {body}"
        );
    }
}

pub async fn send(app: &axum::Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(app: &axum::Router, uri: &str) -> Reply {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub async fn post(
    app: &axum::Router,
    uri: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> Reply {
    send(
        app,
        Request::post(uri)
            .header("content-type", content_type)
            .body(body.into())
            .unwrap(),
    )
    .await
}

pub fn titles(reply: &serde_json::Value) -> Vec<String> {
    reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"]["title"].as_str().unwrap().to_string())
        .collect()
}

pub fn genres_of(reply: &serde_json::Value) -> Vec<Vec<String>> {
    reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["item"]["genres"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

pub use test_support::servers::test_server;

/// A name unique to this test run, for rows and nodes in shared servers.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{}-{nanos:x}", std::process::id())
}

/// Configuration of the ScyllaDB store for a test CQL server (single node).
pub fn scylla_test_config(nodes: &str) -> core_api::config::ScyllaConfig {
    core_api::config::ScyllaConfig {
        nodes: nodes.to_string(),
        keyspace: "semrec_test".into(),
        replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
        consistency: core_api::config::Consistency::LocalQuorum,
        timeout_ms: 5_000,
        ..Default::default()
    }
}

/// Configuration of the Neo4j graph for a test Bolt server.
pub fn neo4j_test_config(uri: &str) -> core_api::config::Neo4jConfig {
    core_api::config::Neo4jConfig {
        uri: uri.to_string(),
        timeout_ms: 5_000,
        ..Default::default()
    }
}

/// Opens the engine on `config`, retrying while the previous engine on the same data
/// directory still holds the store (a background task may keep it a moment after drop), and
/// waits for the graph fill: graph candidates change while it runs.
pub async fn open_engine(config: &Config) -> Arc<Engine> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match core_api::bootstrap::open_embedded(
            config.clone(),
            encoder(),
            Arc::new(Metrics::new()),
        )
        .await
        {
            Ok(engine) => {
                engine.graph_filled().await;
                return engine;
            }
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("reopening: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("engine not opened: {e}"),
        }
    }
}

/// The engine's answer for `user`, with no intent or filters.
pub async fn recommend_for(engine: &Arc<Engine>, user: &str, limit: u32) -> RecommendationResponse {
    let query = RecommendationQuery {
        user_id: Some(user.to_string()),
        limit: Some(limit),
        ..Default::default()
    }
    .normalise()
    .unwrap();
    engine.recommend(&query).await.unwrap()
}

pub fn item_ids(reply: &RecommendationResponse) -> Vec<String> {
    reply.items.iter().map(|i| i.item.id.clone()).collect()
}
