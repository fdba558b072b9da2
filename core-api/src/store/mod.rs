//! Storage seams of the engine. Each trait has an embedded implementation (used when no
//! external service is configured); the production backends (ScyllaDB, Neo4j, Redis)
//! implement the same traits.

mod embedded;
mod memory;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use shared_types::{Action, Item};

pub use embedded::EmbeddedStore;
pub use memory::{InProcessItemGraph, InProcessUserCache};
pub use redis::RedisUserCache;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// An interaction as stored: the server has filled in the timestamp.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interaction {
    pub user_id: String,
    pub item_id: String,
    pub action: Action,
    /// Unix seconds.
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation_id: Option<String>,
}

/// A catalogue item with its embedding and the version that identifies this vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub item: Item,
    pub version: u64,
    pub vector: Vec<f32>,
}

/// Durable log of user interactions.
#[async_trait]
pub trait InteractionStore: Send + Sync {
    /// Appends events; they are durable (survive a crash) once this returns `Ok`.
    async fn append(&self, events: Vec<Interaction>) -> Result<(), StoreError>;
    /// The user's most recent interactions, newest first.
    async fn recent(&self, user_id: &str, limit: usize) -> Result<Vec<Interaction>, StoreError>;
}

/// Durable catalogue: item metadata plus vectors, so restarts never re-embed.
#[async_trait]
pub trait ItemStore: Send + Sync {
    /// Inserts or replaces items; durable once this returns `Ok`.
    async fn upsert(&self, items: Vec<StoredItem>) -> Result<(), StoreError>;
    /// Deletes an item; `Ok(false)` when it did not exist.
    async fn delete(&self, item_id: &str) -> Result<bool, StoreError>;
    async fn load_all(&self) -> Result<Vec<StoredItem>, StoreError>;
    /// Next version number for an item vector (strictly increasing, never reused).
    fn next_version(&self) -> u64;
}

/// Cache of computed user vectors.
#[async_trait]
pub trait UserEmbeddingCache: Send + Sync {
    async fn get(&self, user_id: &str) -> Option<Vec<f32>>;
    async fn put(&self, user_id: &str, vector: &[f32]);
    async fn invalidate(&self, user_id: &str);
    /// Name reported by `/readyz`.
    fn name(&self) -> &'static str {
        "in-process"
    }
    /// Whether the backing service answers (always, in process).
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A neighbour found in the item graph: the item, its score and the seed it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNeighbour {
    pub item_id: Arc<str>,
    pub score: f32,
    pub via: Arc<str>,
}

/// Item-to-item graph (co-interactions today; the knowledge graph in Neo4j later).
#[async_trait]
pub trait ItemGraph: Send + Sync {
    /// Items linked to the weighted `seeds`, best first, at most `limit`.
    async fn neighbours(
        &self,
        seeds: &[(Arc<str>, f32)],
        limit: usize,
    ) -> Result<Vec<GraphNeighbour>, StoreError>;
    /// Records that a user engaged positively with `item` after `previous` items.
    async fn record(&self, previous: &[Arc<str>], item: &Arc<str>) -> Result<(), StoreError>;
}
