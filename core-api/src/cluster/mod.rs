//! The core as a cluster. Shard nodes ([`node`]) host a configured set of index shards;
//! routers ([`router`]) run the public API and the ranking pipeline, scatter each vector
//! search to one replica of every shard over the internal RPC ([`rpc`], [`wire`]), and
//! merge the answers.
//!
//! The cluster's durable state is in ScyllaDB only ([`crate::store::ScyllaCatalog`] for the
//! catalogue, the interaction store for events). A router stores an upserted item there
//! and acknowledges it once ScyllaDB confirmed the write; shard nodes and routers load the
//! catalogue from it at start and follow its change log ([`follow`]) every
//! `sync_interval_ms`. Shard nodes and routers keep nothing that cannot be rebuilt from it.

pub mod auth;
pub mod follow;
pub mod node;
pub mod router;
pub mod rpc;
pub mod wire;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ClusterConfig;

pub use node::ShardNode;
pub use router::{ClusterIndex, SearchOutcome};

/// What a shard node says about itself on `/internal/v1/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Changes at every start.
    pub boot_id: u64,
    pub shards: Vec<u32>,
    /// False until its shards are loaded from the catalogue.
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
