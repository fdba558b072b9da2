//! Storage seams of the engine. Each trait has an embedded implementation (used when no
//! external service is configured); the production backends (ScyllaDB, Neo4j, Redis)
//! implement the same traits.

mod embedded;
mod memory;
pub mod neo4j;
pub mod redis;
pub mod scylla;
pub mod scylla_catalog;
pub mod scylla_policy;

use std::sync::Arc;

use async_trait::async_trait;
use shared_types::{Action, Item};

pub use embedded::EmbeddedStore;
pub use memory::{InProcessItemGraph, InProcessUserCache};
pub use neo4j::Neo4jGraph;
pub use redis::{RedisNonces, RedisUserCache};
pub use scylla::ScyllaInteractionStore;
pub use scylla_catalog::{CatalogRecord, ScyllaCatalog};
pub use scylla_policy::ScyllaPolicyStore;

use crate::policy::{Attribution, Impression, LoggedDecision};

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
    /// Identifies the event per user: a second append of the same id stores nothing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event_id: String,
}

impl Interaction {
    /// The id of an event identified by its content: user, item, action, time and
    /// recommendation (`c:` and 24 hex digits of their SHA-256).
    pub fn content_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            self.user_id.as_str(),
            self.item_id.as_str(),
            self.action.as_str(),
            &self.timestamp.to_string(),
            self.recommendation_id.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest = h.finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("c:{hex}")
    }

    /// The event's id, its content's when it has none (how stores key an event).
    pub fn id(&self) -> std::borrow::Cow<'_, str> {
        if self.event_id.is_empty() {
            std::borrow::Cow::Owned(self.content_id())
        } else {
            std::borrow::Cow::Borrowed(&self.event_id)
        }
    }
}

/// A catalogue item with its embedding and the version that identifies this vector.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub item: Item,
    pub version: u64,
    pub vector: Vec<f32>,
}

/// What the store knows about a user without reading their history.
#[derive(Debug, Clone, PartialEq)]
pub struct UserProfile {
    /// Unix seconds of the newest event.
    pub last_seen: i64,
    pub last_item_id: String,
    pub last_action: Action,
}

/// What responses showed, kept so that a later event can reward the ranking policy for it:
/// in process on a single node, in ScyllaDB in a cluster (where any router attributes an
/// event to any router's response).
#[async_trait]
pub trait ImpressionStore: Send + Sync {
    /// Remembers response `id` (stored once this returns `Ok`).
    async fn record(&self, id: String, impression: Impression) -> Result<(), StoreError>;
    /// Attributes `reward` from `user` for `item` to impression `id`; `None` when the
    /// impression is unknown (or expired), was served to another user, did not show the
    /// item, already counted this user for it, or has collected
    /// [`crate::policy::MAX_REWARDS_PER_IMPRESSION`] rewards.
    async fn reward(
        &self,
        id: &str,
        user: &str,
        item: &str,
        reward: f32,
    ) -> Result<Option<Attribution>, StoreError>;
    /// Forgets the impressions served to a user and their part in others' rewards; returns
    /// the impressions dropped.
    async fn forget_user(&self, user: &str) -> Result<usize, StoreError>;
    /// Up to `limit` remembered lead decisions with the reward their lead item earned.
    async fn decisions(&self, limit: usize) -> Result<Vec<LoggedDecision>, StoreError>;
}

/// Durable log of user interactions.
#[async_trait]
pub trait InteractionStore: Send + Sync {
    /// Appends events; they are durable (survive a crash) once this returns `Ok`. An event
    /// whose (user, event id) is already stored is not stored again: the result holds the
    /// events stored by this call, in order. An event without an id is identified by its
    /// content ([`Interaction::id`]).
    async fn append(&self, events: Vec<Interaction>) -> Result<Vec<Interaction>, StoreError>;
    /// The user's most recent interactions, newest first.
    async fn recent(&self, user_id: &str, limit: usize) -> Result<Vec<Interaction>, StoreError>;
    /// Several users' recent interactions in one call, in the order asked.
    async fn recent_many(
        &self,
        user_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Vec<Interaction>>, StoreError> {
        let mut out = Vec::with_capacity(user_ids.len());
        for user in user_ids {
            out.push(self.recent(user, limit).await?);
        }
        Ok(out)
    }
    /// The user's profile, `None` for a user with no events.
    async fn profile(&self, user_id: &str) -> Result<Option<UserProfile>, StoreError> {
        Ok(self.recent(user_id, 1).await?.pop().map(|e| UserProfile {
            last_seen: e.timestamp,
            last_item_id: e.item_id,
            last_action: e.action,
        }))
    }
    /// Every stored event of one user, oldest first: what the service keeps about them
    /// (their data export).
    async fn user_events(&self, user_id: &str) -> Result<Vec<Interaction>, StoreError> {
        let mut events = self.recent(user_id, usize::MAX).await?;
        events.reverse();
        Ok(events)
    }
    /// Deletes every event of the user and their profile, durably (a restart does not bring
    /// them back); returns the events removed. Idempotent: erasing an unknown user removes 0.
    async fn erase_user(&self, user_id: &str) -> Result<usize, StoreError>;
    /// Every stored event, grouped by user and oldest first within a user (rebuilds
    /// popularity and the in-process graph at start).
    async fn replay(&self, f: &mut (dyn FnMut(Interaction) + Send)) -> Result<(), StoreError>;
    /// Every stored event as a list (grouped by user, oldest first within a user), read
    /// without blocking the async runtime (the training reads the whole log).
    async fn log(&self) -> Result<Vec<Interaction>, StoreError> {
        let mut out = Vec::new();
        self.replay(&mut |e| out.push(e)).await?;
        Ok(out)
    }
    /// Name reported by `/readyz`.
    fn name(&self) -> &'static str {
        "embedded"
    }
    /// Whether the backing service answers (always, embedded).
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
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
    /// Whether writes are being stored. A node whose store of record refuses writes (a full
    /// disk) must stop reporting ready; stores that fail per request need not say so here.
    async fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Cache of computed user vectors.
#[async_trait]
pub trait UserEmbeddingCache: Send + Sync {
    async fn get(&self, user_id: &str) -> Option<Vec<f32>>;
    async fn put(&self, user_id: &str, vector: &[f32]);
    /// Drops the user's vector because it is stale (best effort: a miss only costs a
    /// recomputation, so failures are logged, not returned).
    async fn invalidate(&self, user_id: &str);
    /// Drops the user's vector because the user was erased. Unlike [`Self::invalidate`] a
    /// failure is returned, so the erasure can report it and be retried.
    async fn forget(&self, user_id: &str) -> Result<(), StoreError>;
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

/// A catalogue item as a graph node, with its `SIMILAR_TO` neighbours (item, similarity).
#[derive(Debug, Clone, PartialEq)]
pub struct ContentNode {
    pub id: Arc<str>,
    pub title: String,
    pub genres: Vec<String>,
    pub quality: f32,
    pub similar: Vec<(Arc<str>, f32)>,
}

/// The item graph: `SIMILAR_TO` edges (nearest vectors, written at ingest) and
/// co-engagement edges (items the same user liked close together, from events).
///
/// Scores: a neighbour's score is the sum over seeds and edges of `seed weight × edge
/// weight`; `via` is the seed of its largest contribution. Seeds are never neighbours and
/// neighbours below the graph's quality threshold are left out.
#[async_trait]
pub trait ItemGraph: Send + Sync {
    /// Items linked to the weighted `seeds`, best first, at most `limit`.
    async fn neighbours(
        &self,
        seeds: &[(Arc<str>, f32)],
        limit: usize,
    ) -> Result<Vec<GraphNeighbour>, StoreError>;
    /// Records that `user_id` engaged positively with `item` after `previous` items (newest
    /// first): co-engagement weights `1 / (1 + distance)`.
    async fn record(
        &self,
        user_id: &str,
        previous: &[Arc<str>],
        item: &Arc<str>,
    ) -> Result<(), StoreError>;
    /// Removes what the graph keeps about one user (their `User` node and `WATCHED` edges);
    /// returns the per-user edges removed. Co-engagement weights between items carry no user
    /// and stay, as anonymous aggregates like popularity.
    async fn forget_user(&self, user_id: &str) -> Result<usize, StoreError>;
    /// Inserts or replaces content nodes and their outgoing `SIMILAR_TO` edges.
    async fn upsert_content(&self, nodes: Vec<ContentNode>) -> Result<(), StoreError>;
    /// Removes an item and its edges.
    async fn remove_content(&self, item_id: &str) -> Result<(), StoreError>;
    /// Number of content nodes (a persistent graph that is behind the catalogue is refilled).
    async fn content_count(&self) -> Result<usize, StoreError>;
    /// Whether edges survive a restart (else co-engagement is rebuilt from the event log).
    fn persistent(&self) -> bool {
        false
    }
    /// Name reported by `/readyz`.
    fn name(&self) -> &'static str {
        "in-process"
    }
    /// Whether the backing service answers.
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A connection URL fit for logs: any password (`scheme://user:password@host`) is masked.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            if credentials.contains(':') {
                format!("{scheme}://{user}:***@{host}")
            } else {
                url.to_string()
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_url("redis://default:s3cr3t@cache:6379/0"),
            "redis://default:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("redis://:s3cr3t@cache:6379"),
            "redis://:***@cache:6379"
        );
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        assert!(!redact_url("rediss://u:p%40ss@h:1").contains("p%40ss"));
    }
}
