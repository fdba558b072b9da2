//! Store contracts: the same assertions against the in-process implementation and a real
//! Redis server (started by the test on a free loopback port; `redis-server` must be
//! installed, which `scripts/test.sh` does).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use core_api::store::{InProcessUserCache, RedisUserCache, UserEmbeddingCache};

use crate::common::free_port;

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 2e-3)
}

/// What every user-embedding cache must do.
async fn user_cache_contract(cache: &dyn UserEmbeddingCache) {
    let v1: Vec<f32> = (0..384).map(|i| ((i % 17) as f32 - 8.0) / 9.0).collect();
    let v2: Vec<f32> = v1.iter().map(|x| -x).collect();
    assert_eq!(cache.get("contract-nobody").await, None);
    cache.put("contract-a", &v1).await;
    cache.put("contract-b", &v2).await;
    assert!(close(&cache.get("contract-a").await.unwrap(), &v1));
    assert!(close(&cache.get("contract-b").await.unwrap(), &v2));
    cache.put("contract-a", &v2).await;
    assert!(
        close(&cache.get("contract-a").await.unwrap(), &v2),
        "overwrite"
    );
    cache.invalidate("contract-a").await;
    assert_eq!(cache.get("contract-a").await, None);
    assert!(
        cache.get("contract-b").await.is_some(),
        "users are independent"
    );
    cache.invalidate("contract-never-stored").await;
    // Erasure: the vector is gone and the call says so; forgetting nothing is no error.
    cache.put("contract-erased", &v1).await;
    cache.forget("contract-erased").await.unwrap();
    assert_eq!(cache.get("contract-erased").await, None);
    assert!(cache.get("contract-b").await.is_some());
    cache.forget("contract-never-stored").await.unwrap();
}

#[tokio::test]
async fn in_process_user_cache_meets_the_contract() {
    user_cache_contract(&InProcessUserCache::new(100, Duration::from_secs(3600))).await;
}

pub(crate) struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    pub(crate) fn start(port: u16) -> Self {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("redis-server is not installed: scripts/test.sh installs it (apt-get install redis-server)");
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = Self { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_user_cache_meets_the_contract_and_rides_out_an_outage() {
    let port = free_port();
    let server = RedisServer::start(port);
    let cache = RedisUserCache::new(&server.url(), 4, Duration::from_millis(200), 3600).unwrap();
    cache.ping().await.unwrap();
    user_cache_contract(&cache).await;

    // Stored compactly (FP16 behind a format tag) under the documented key, with the TTL.
    let client = deadpool_redis::redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let bytes: Vec<u8> = deadpool_redis::redis::cmd("GET")
        .arg("user_emb:contract-b")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(bytes.len(), 1 + 384 * 2);
    let ttl: i64 = deadpool_redis::redis::cmd("TTL")
        .arg("user_emb:contract-b")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((3500..=3600).contains(&ttl), "ttl {ttl}");

    // Redis goes away: reads are quick misses and writes are skipped, never errors or hangs.
    drop(server);
    let t = Instant::now();
    assert_eq!(cache.get("contract-b").await, None);
    cache.put("contract-c", &[0.5; 4]).await;
    cache.invalidate("contract-b").await;
    // An erasure, unlike an invalidation, must know it did not happen.
    assert!(cache.forget("contract-b").await.is_err());
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "bounded by timeouts: {:?}",
        t.elapsed()
    );
    assert!(cache.ping().await.is_err());

    // It comes back (empty): the same cache reconnects without being rebuilt.
    let _server = RedisServer::start(port);
    let started = Instant::now();
    while cache.ping().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "no reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cache.put("contract-d", &[0.25; 8]).await;
    assert!(close(&cache.get("contract-d").await.unwrap(), &[0.25; 8]));
}

#[tokio::test]
async fn recommendations_keep_answering_while_redis_is_down() {
    use crate::common::{demo_config, encoder, get, post, temp_dir};
    use axum::http::StatusCode;
    use core_api::metrics::Metrics;
    use core_api::{app, AppState};
    use std::sync::Arc;

    let port = free_port();
    let server = RedisServer::start(port);
    let mut config = demo_config(&temp_dir("redis-engine"), 300);
    config.index.shards = 2;
    config.redis.url = server.url();
    let metrics = Arc::new(Metrics::new());
    let engine = core_api::bootstrap::open_embedded(config, encoder(), metrics.clone())
        .await
        .unwrap();
    // Answers are compared across the outage: let the graph fill finish first.
    engine.graph_filled().await;
    let router = app(AppState::ready(engine.clone(), metrics));
    let ready = get(&router, "/readyz").await.json_ok();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["dependencies"]["redis"], "ok");

    // A user with history: the taste vector lands in Redis.
    let first = get(&router, "/v1/recommendations?limit=3").await.json_ok();
    let liked = first["items"][0]["item"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let event = format!(r#"{{"user_id":"redis-user","item_id":"{liked}","action":"like"}}"#);
    let posted = post(&router, "/v1/events", "application/json", event).await;
    assert!(posted.status.is_success(), "{}", posted.status);
    let personal = get(&router, "/v1/recommendations?user_id=redis-user&limit=5")
        .await
        .json_ok();
    assert_eq!(personal["cold_start"], false);
    let client = deadpool_redis::redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let exists: i64 = deadpool_redis::redis::cmd("EXISTS")
        .arg("user_emb:redis-user")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(exists, 1, "taste vector cached in Redis");

    // Redis down: same answer from the recomputed vector, readiness names the failure.
    drop(server);
    let during = get(&router, "/v1/recommendations?user_id=redis-user&limit=5")
        .await
        .json_ok();
    assert_eq!(during["items"], personal["items"]);
    let ready = get(&router, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    let ready = ready.json();
    assert_eq!(ready["status"], "degraded");
    assert_ne!(ready["dependencies"]["redis"], "ok");

    // Back: the service recovers without a restart.
    let _server = RedisServer::start(port);
    let started = Instant::now();
    loop {
        let ready = get(&router, "/readyz").await.json();
        if ready["dependencies"]["redis"] == "ok" {
            assert_eq!(ready["status"], "ready");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis not back: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
