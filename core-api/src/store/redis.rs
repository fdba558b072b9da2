//! Redis (`deadpool-redis`) in two roles: the user-embedding cache (`user_emb:{user_id}`
//! holds the vector as FP16 little-endian bytes behind a one-byte format tag, with a TTL),
//! and the edge nonces every core process has seen (`edge_nonce:{nonce}`, `SET NX EX`), so a
//! signed request replayed to another process is refused too.
//!
//! A cache never fails a request: with Redis down or slow, reads are misses (the vector is
//! recomputed from the user's history) and writes are skipped, each bounded by the pool's
//! acquire timeout and a per-command timeout. The pool reconnects by itself when Redis returns.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::AsyncCommands;
use deadpool_redis::{Config as PoolSettings, Pool, PoolConfig, Runtime, Timeouts};
use half::f16;

use super::{StoreError, UserEmbeddingCache};

/// Format tag of the stored value; a different tag is treated as a miss.
const FORMAT_FP16_V1: u8 = 1;

pub struct RedisUserCache {
    pool: Pool,
    ttl_secs: u64,
    command_timeout: Duration,
}

/// `user_emb:{user_id}`.
pub fn key(user_id: &str) -> String {
    format!("user_emb:{user_id}")
}

pub fn encode(vector: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + vector.len() * 2);
    out.push(FORMAT_FP16_V1);
    for &x in vector {
        out.extend_from_slice(&f16::from_f32(x).to_le_bytes());
    }
    out
}

pub fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    let (&tag, body) = bytes.split_first()?;
    if tag != FORMAT_FP16_V1 || body.len() % 2 != 0 || body.is_empty() {
        return None;
    }
    Some(
        body.chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
    )
}

/// A connection pool; connections are opened on first use, so Redis may be down at start.
fn pool(url: &str, pool_size: usize, timeout: Duration) -> Result<Pool, StoreError> {
    let mut settings = PoolSettings::from_url(url);
    settings.pool = Some(PoolConfig {
        max_size: pool_size.max(1),
        timeouts: Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        },
        ..PoolConfig::default()
    });
    settings
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| StoreError::Unavailable(format!("redis pool: {e}")))
}

/// One command on a pooled connection, bounded by `timeout`.
async fn run<T, F, Fut>(pool: &Pool, timeout: Duration, command: F) -> Result<T, StoreError>
where
    F: FnOnce(deadpool_redis::Connection) -> Fut,
    Fut: std::future::Future<Output = deadpool_redis::redis::RedisResult<T>>,
{
    let unavailable = |e: String| StoreError::Unavailable(format!("redis: {e}"));
    let conn = pool.get().await.map_err(|e| unavailable(e.to_string()))?;
    tokio::time::timeout(timeout, command(conn))
        .await
        .map_err(|_| unavailable("command timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))
}

impl RedisUserCache {
    /// Builds the pool; connections are opened on first use, so Redis may be down at start.
    pub fn new(
        url: &str,
        pool_size: usize,
        timeout: Duration,
        ttl_secs: u64,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            pool: pool(url, pool_size, timeout)?,
            ttl_secs: ttl_secs.max(1),
            command_timeout: timeout,
        })
    }

    /// Round trip to Redis, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move {
            deadpool_redis::redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .map(drop)
        })
        .await
    }

    async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_redis::Connection) -> Fut,
        Fut: std::future::Future<Output = deadpool_redis::redis::RedisResult<T>>,
    {
        run(&self.pool, self.command_timeout, command).await
    }
}

/// Edge request nonces shared by every core process through Redis.
pub struct RedisNonces {
    pool: Pool,
    command_timeout: Duration,
}

impl RedisNonces {
    pub fn new(url: &str, pool_size: usize, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            pool: pool(url, pool_size, timeout)?,
            command_timeout: timeout,
        })
    }

    /// Claims `nonce` for `ttl_secs`: true when no process had claimed it before.
    pub async fn claim(&self, nonce: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        let key = format!("edge_nonce:{nonce}");
        let set: Option<String> = run(&self.pool, self.command_timeout, |mut c| async move {
            deadpool_redis::redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl_secs.max(1))
                .query_async(&mut c)
                .await
        })
        .await?;
        Ok(set.is_some())
    }
}

#[async_trait]
impl UserEmbeddingCache for RedisUserCache {
    async fn get(&self, user_id: &str) -> Option<Vec<f32>> {
        let key = key(user_id);
        match self
            .run(|mut c| async move { c.get::<_, Option<Vec<u8>>>(key).await })
            .await
        {
            Ok(bytes) => bytes.as_deref().and_then(decode),
            Err(e) => {
                tracing::warn!(error = %e, "user-embedding cache read failed; recomputing");
                None
            }
        }
    }

    async fn put(&self, user_id: &str, vector: &[f32]) {
        let (key, value, ttl) = (key(user_id), encode(vector), self.ttl_secs);
        if let Err(e) = self
            .run(|mut c| async move { c.set_ex::<_, _, ()>(key, value, ttl).await })
            .await
        {
            tracing::warn!(error = %e, "user-embedding cache write skipped");
        }
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.ping().await
    }

    async fn invalidate(&self, user_id: &str) {
        let key = key(user_id);
        if let Err(e) = self
            .run(|mut c| async move { c.del::<_, ()>(key).await })
            .await
        {
            tracing::warn!(error = %e, "user-embedding cache invalidation failed");
        }
    }

    async fn forget(&self, user_id: &str) -> Result<(), StoreError> {
        let key = key(user_id);
        self.run(|mut c| async move { c.del::<_, ()>(key).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_at_fp16_precision() {
        let v = vec![0.5f32, -0.25, 0.1234, 1.0];
        let bytes = encode(&v);
        assert_eq!(bytes.len(), 1 + 4 * 2);
        let back = decode(&bytes).unwrap();
        for (a, b) in v.iter().zip(&back) {
            assert!((a - b).abs() < 1e-3);
        }
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[2, 0, 0]), None, "unknown format tag");
        assert_eq!(decode(&[1, 0]), None, "odd length");
        assert_eq!(key("u7"), "user_emb:u7");
    }
}
