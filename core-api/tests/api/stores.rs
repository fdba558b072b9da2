//! Store contracts: the same assertions against the in-process implementation and a real
//! Redis server (started by the test on a free loopback port; `redis-server` must be
//! installed, which `scripts/test.sh` does).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use core_api::store::{InProcessUserCache, RedisUserCache, UserEmbeddingCache};

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
}

#[tokio::test]
async fn in_process_user_cache_meets_the_contract() {
    user_cache_contract(&InProcessUserCache::new(100, Duration::from_secs(3600))).await;
}

struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(port: u16) -> Self {
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

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
