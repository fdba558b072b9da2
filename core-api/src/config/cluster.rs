//! A node's part in a cluster and the shard placement derived from it.

use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// The node's part in a cluster (see `cluster/`). `single` keeps everything in one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `single`, `router` (public API, shards on other nodes) or `shard` (hosts shards).
    pub role: Role,
    /// Shards this node hosts; empty = computed from `shard_nodes`/`replication`/`ordinal`
    /// (or every shard when `shard_nodes` is 0).
    pub hosted_shards: Vec<usize>,
    /// Shard nodes in the placement ring; node `i` hosts shard `s` iff
    /// `i == (s + j) % shard_nodes` for some `j < replication`.
    pub shard_nodes: usize,
    pub replication: usize,
    /// This node's place in the ring; -1 = the trailing `-N` of `HOSTNAME` (StatefulSet pods).
    pub ordinal: i64,
    /// Internal RPC listener of a shard node.
    pub internal_bind: String,
    /// Shard nodes' internal addresses (`host:port`), for routers.
    pub nodes: Vec<String>,
    /// Or a DNS name (`host:port`, e.g. a Kubernetes headless service), resolved every round.
    pub nodes_dns: String,
    /// Time a query waits for a shard (retries and hedges included) before answering partial.
    pub shard_deadline_ms: u64,
    /// A shard request unanswered after this long is also sent to another replica.
    pub hedge_after_ms: u64,
    pub health_interval_ms: u64,
    /// Shard nodes and routers read the catalogue's change log in ScyllaDB this often: an
    /// item written through one router is searchable about this long after its 2xx.
    pub sync_interval_ms: u64,
    /// Vector dimension on shard nodes (they load no model); routers check it against theirs.
    pub dim: usize,
    /// Key shared by routers and shard nodes: every internal RPC call is signed with it
    /// (HMAC-SHA256). Required unless the internal RPC stays on loopback.
    pub secret: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            role: Role::Single,
            hosted_shards: Vec::new(),
            shard_nodes: 0,
            replication: 2,
            ordinal: -1,
            internal_bind: "0.0.0.0:8081".into(),
            nodes: Vec::new(),
            nodes_dns: String::new(),
            shard_deadline_ms: 80,
            hedge_after_ms: 20,
            health_interval_ms: 500,
            sync_interval_ms: 250,
            dim: 384,
            secret: String::new(),
        }
    }
}

/// What this process does in a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in one process.
    #[default]
    Single,
    /// The public API; the shards live on shard nodes.
    Router,
    /// Hosts shards behind the internal RPC.
    Shard,
}

impl ClusterConfig {
    /// The shards this node hosts, out of `total`.
    pub fn hosted(&self, total: usize) -> Result<Vec<usize>, ConfigError> {
        if !self.hosted_shards.is_empty() {
            return Ok(self.hosted_shards.clone());
        }
        if self.shard_nodes == 0 {
            return Ok((0..total).collect());
        }
        let ordinal = match self.ordinal {
            o if o >= 0 => o as usize,
            _ => std::env::var("HOSTNAME")
                .ok()
                .and_then(|h| h.rsplit('-').next()?.parse().ok())
                .ok_or_else(|| {
                    ConfigError::Invalid(
                        "cluster.ordinal is -1 but HOSTNAME has no trailing -N".into(),
                    )
                })?,
        };
        if ordinal >= self.shard_nodes {
            return Err(ConfigError::Invalid(format!(
                "cluster.ordinal {ordinal} is outside 0..{}",
                self.shard_nodes
            )));
        }
        Ok((0..total)
            .filter(|s| (0..self.replication).any(|j| (s + j) % self.shard_nodes == ordinal))
            .collect())
    }
}
