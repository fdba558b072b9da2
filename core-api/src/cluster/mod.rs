//! The core as a cluster. Shard nodes ([`node`]) host a configured set of index shards and
//! store those shards' items; routers ([`router`]) run the public API and the ranking
//! pipeline, scatter each vector search to one replica of every shard over the internal RPC
//! ([`rpc`], [`wire`]), and merge the answers.
//!
//! Items: a router embeds an upserted item and writes it to every replica of its shard (by
//! the stable hash of its id); the write is acknowledged once `min_write_replicas` stored it.
//! Shard nodes are the catalogue's store of record: a router pulls the catalogue from them
//! at start and follows their change feeds, so routers keep no state of their own and can
//! scale freely. A replica that missed writes (down, or unreachable) pulls them from its
//! peers before it reports ready, and every `sync_interval_ms` after that.

pub mod auth;
pub mod node;
pub mod router;
pub mod rpc;
mod store;
pub mod wire;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ClusterConfig;

pub use node::ShardNode;
pub use router::{ClusterIndex, SearchOutcome};

/// Records per page of a change feed.
pub const CHANGES_PAGE: usize = 1000;
/// How far back (µs of version) each round re-reads a feed: a write can reach a replica
/// after later-versioned ones (two routers, a retry), and must not be skipped.
pub const CHANGE_WINDOW_US: u64 = 10_000_000;

/// How far ahead of a shard node's clock a record's version (µs since the epoch) may be:
/// a version far in the future would win every later write of the item.
pub const MAX_VERSION_AHEAD_US: u64 = 60_000_000;

/// What a shard node says about itself on `/internal/v1/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Identity of the node's data (stable across restarts, new on a wiped volume).
    pub store_id: String,
    /// Changes at every start.
    pub boot_id: u64,
    pub shards: Vec<u32>,
    /// False while catching up with peer replicas.
    pub ready: bool,
    pub dim: usize,
    /// Live items per hosted shard.
    pub items: BTreeMap<u32, usize>,
}

/// The shard nodes' internal addresses now: the static list plus what `nodes_dns`
/// resolves to (a headless service lists every ready and unready pod).
pub async fn discover(cluster: &ClusterConfig) -> Vec<String> {
    let mut addrs: Vec<String> = cluster.nodes.clone();
    if !cluster.nodes_dns.is_empty() {
        match tokio::net::lookup_host(cluster.nodes_dns.as_str()).await {
            Ok(found) => addrs.extend(found.map(|a| a.to_string())),
            Err(e) => {
                tracing::warn!(name = %cluster.nodes_dns, error = %e, "shard nodes not resolved")
            }
        }
    }
    addrs.sort();
    addrs.dedup();
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn discovery_merges_the_static_list_and_what_dns_returns() {
        let config = ClusterConfig {
            nodes: vec!["10.0.0.9:8081".into(), "10.0.0.9:8081".into()],
            nodes_dns: "localhost:8081".into(),
            ..ClusterConfig::default()
        };
        let found = discover(&config).await;
        assert_eq!(found.iter().filter(|a| *a == "10.0.0.9:8081").count(), 1);
        assert!(found.contains(&"127.0.0.1:8081".to_string()), "{found:?}");
        let unresolvable = ClusterConfig {
            nodes_dns: "no-such-host.invalid:8081".into(),
            ..ClusterConfig::default()
        };
        assert!(discover(&unresolvable).await.is_empty());
    }
}
