//! Latency of the production backends on loopback, beside the embedded defaults measured in
//! the same run: history fetch for 1 and 5 users (batched vs sequential) in ScyllaDB/Cassandra,
//! the 1-hop graph-candidate query in Neo4j, and the user-embedding fetch from Redis.
//! Prints one JSON object.
//!
//!   backend_latency --cql 127.0.0.1:19042 --bolt 127.0.0.1:17687 --redis redis://127.0.0.1:6379/0

use std::sync::Arc;
use std::time::{Duration, Instant};

use core_api::config::{Neo4jConfig, ScyllaConfig};
use core_api::store::{
    ContentNode, EmbeddedStore, InProcessItemGraph, InProcessUserCache, Interaction,
    InteractionStore, ItemGraph, Neo4jGraph, RedisUserCache, ScyllaInteractionStore,
    UserEmbeddingCache,
};
use shared_types::Action;

const USERS: usize = 200;
const EVENTS_PER_USER: usize = 50;
const ITEMS: usize = 5_000;
const SIMILAR_PER_ITEM: usize = 10;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A small deterministic generator (no dependency needed for synthetic ids).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs `op` `n` times (after a warm-up) and reports p50/p99 in milliseconds.
async fn measure<F, Fut>(n: usize, mut op: F) -> serde_json::Value
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..n / 10 {
        op(i).await;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        op(i).await;
        samples.push(t.elapsed());
    }
    samples.sort();
    let ms =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    serde_json::json!({"n": n, "p50_ms": ms(0.5), "p99_ms": ms(0.99)})
}

fn user(i: usize) -> String {
    format!("bench-user-{i}")
}

async fn fill_interactions(store: &dyn InteractionStore) {
    let mut rng = Lcg(7);
    for u in 0..USERS {
        let events = (0..EVENTS_PER_USER)
            .map(|t| Interaction {
                user_id: user(u),
                item_id: format!("item-{}", rng.below(ITEMS)),
                action: if t % 4 == 0 {
                    Action::View
                } else {
                    Action::Like
                },
                timestamp: 1_700_000_000 + t as i64 * 60,
                recommendation_id: None,
                event_id: format!("e{t}"),
            })
            .collect();
        store.append(events).await.expect("append");
    }
}

async fn history(store: &dyn InteractionStore, n: usize) -> serde_json::Value {
    let one = measure(n, |i| async move {
        let h = store.recent(&user(i % USERS), 50).await.unwrap();
        assert_eq!(h.len(), EVENTS_PER_USER);
    })
    .await;
    let five = |i: usize| {
        (0..5)
            .map(|k| user((i * 5 + k) % USERS))
            .collect::<Vec<_>>()
    };
    let batched = measure(n, |i| {
        let users = five(i);
        async move {
            let h = store.recent_many(&users, 50).await.unwrap();
            assert_eq!(h.len(), 5);
        }
    })
    .await;
    let sequential = measure(n, |i| {
        let users = five(i);
        async move {
            for u in &users {
                store.recent(u, 50).await.unwrap();
            }
        }
    })
    .await;
    serde_json::json!({"one_user": one, "five_batched": batched, "five_sequential": sequential})
}

async fn graph_query(graph: &dyn ItemGraph, n: usize) -> serde_json::Value {
    let mut rng = Lcg(11);
    let nodes: Vec<ContentNode> = (0..ITEMS)
        .map(|i| ContentNode {
            id: format!("item-{i}").into(),
            title: format!("Film {i}"),
            genres: vec![["Drama", "Comedy", "Action"][i % 3].into()],
            quality: 0.5 + (i % 5) as f32 / 10.0,
            similar: (0..SIMILAR_PER_ITEM)
                .map(|k| {
                    let to = rng.below(ITEMS);
                    (Arc::from(format!("item-{to}")), 0.9 - k as f32 * 0.05)
                })
                .collect(),
        })
        .collect();
    for chunk in nodes.chunks(500) {
        graph
            .upsert_content(chunk.to_vec())
            .await
            .expect("graph fill");
    }
    let seeds = |i: usize| -> Vec<(Arc<str>, f32)> {
        (0..5)
            .map(|k| {
                (
                    Arc::from(format!("item-{}", (i * 37 + k * 101) % ITEMS)),
                    1.0 / (1.0 + k as f32),
                )
            })
            .collect()
    };
    measure(n, |i| {
        let seeds = seeds(i);
        async move {
            let found = graph.neighbours(&seeds, 100).await.unwrap();
            assert!(!found.is_empty());
        }
    })
    .await
}

async fn cache_fetch(cache: &dyn UserEmbeddingCache, n: usize) -> serde_json::Value {
    let vector: Vec<f32> = (0..384).map(|i| (i as f32 / 384.0) - 0.5).collect();
    for u in 0..USERS {
        cache.put(&user(u), &vector).await;
    }
    measure(n, |i| async move {
        assert!(cache.get(&user(i % USERS)).await.is_some());
    })
    .await
}

#[tokio::main]
async fn main() {
    let n: usize = arg("--iterations").map_or(2_000, |v| v.parse().expect("--iterations"));
    let mut out = serde_json::Map::new();

    let dir = std::env::temp_dir().join(format!("backend-latency-{}", std::process::id()));
    let embedded = EmbeddedStore::open(&dir).expect("embedded store");
    fill_interactions(&embedded).await;
    out.insert("embedded_history".into(), history(&embedded, n).await);
    drop(embedded);
    let _ = std::fs::remove_dir_all(&dir);
    out.insert(
        "in_process_graph".into(),
        graph_query(&InProcessItemGraph::new(0.0), n).await,
    );
    out.insert(
        "in_process_cache".into(),
        cache_fetch(
            &InProcessUserCache::new(10_000, Duration::from_secs(3600)),
            n,
        )
        .await,
    );

    if let Some(nodes) = arg("--cql") {
        let store = ScyllaInteractionStore::new(ScyllaConfig {
            nodes,
            keyspace: "semrec_bench".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            timeout_ms: 5_000,
            ..Default::default()
        })
        .expect("scylla config");
        store.connect().await.expect("CQL server");
        fill_interactions(&store).await;
        out.insert("scylla_history".into(), history(&store, n).await);
    }
    if let Some(uri) = arg("--bolt") {
        let graph = Neo4jGraph::new(
            &Neo4jConfig {
                uri,
                timeout_ms: 5_000,
                ..Default::default()
            },
            0.0,
        )
        .await
        .expect("neo4j config");
        graph.ensure_schema().await.expect("Neo4j");
        out.insert("neo4j_graph".into(), graph_query(&graph, n).await);
    }
    if let Some(url) = arg("--redis") {
        let cache =
            RedisUserCache::new(&url, 16, Duration::from_millis(500), 3600).expect("redis config");
        cache.ping().await.expect("Redis");
        out.insert("redis_cache".into(), cache_fetch(&cache, n).await);
    }
    println!("{}", serde_json::Value::Object(out));
}
