//! The optional external backends (Redis, ScyllaDB/Cassandra, Neo4j) and the graph settings
//! that apply whichever graph is used. Empty addresses keep everything in-process.

use serde::{Deserialize, Serialize};

/// How many replicas answer a CQL statement before it counts (CQL consistency levels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    #[default]
    LocalQuorum,
    Quorum,
    EachQuorum,
    LocalOne,
    One,
    Two,
    Three,
    All,
}

/// User interactions and profiles in ScyllaDB (or Cassandra); with no `nodes` they stay in
/// the embedded store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScyllaConfig {
    /// Comma-separated contact points, e.g. `10.0.0.1:9042,10.0.0.2:9042`; empty = embedded.
    pub nodes: String,
    pub keyspace: String,
    /// CQL replication map used when the keyspace is created.
    pub replication: String,
    /// `local_quorum` (production), `quorum`, `each_quorum`, `local_one`, `one`, `two`,
    /// `three`, `all`.
    pub consistency: Consistency,
    /// Connections per node (per shard on ScyllaDB).
    pub pool_size: usize,
    /// Bound on each statement, connection set-up included.
    pub timeout_ms: u64,
    /// Rows fetched per page when scanning.
    pub page_size: i32,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self {
            nodes: String::new(),
            keyspace: "semrec".into(),
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".into(),
            consistency: Consistency::LocalQuorum,
            pool_size: 4,
            timeout_ms: 200,
            page_size: 1000,
        }
    }
}

/// The knowledge graph in Neo4j; with no `uri` the in-process item graph is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Neo4jConfig {
    /// Bolt address, e.g. `127.0.0.1:7687`; empty = in-process graph.
    pub uri: String,
    pub user: String,
    pub password: String,
    pub pool_size: usize,
    /// Bound on acquiring a connection plus running one hot-path query.
    pub timeout_ms: u64,
}

impl Default for Neo4jConfig {
    fn default() -> Self {
        Self {
            uri: String::new(),
            user: "neo4j".into(),
            password: String::new(),
            pool_size: 16,
            timeout_ms: 100,
        }
    }
}

/// How graph candidates are found, whichever graph backs them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// `SIMILAR_TO` edges written per item from its nearest vectors (0 = none).
    pub similar_edges: usize,
    /// Neighbours below this quality are never graph candidates.
    pub min_quality: f32,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            similar_edges: 10,
            min_quality: 0.0,
        }
    }
}

/// The Redis user-embedding cache; with no `url` the in-process cache is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// e.g. `redis://127.0.0.1:6379/0`; empty = in-process cache.
    pub url: String,
    pub pool_size: usize,
    /// Bound on acquiring a connection and on each command.
    pub timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            pool_size: 16,
            timeout_ms: 100,
        }
    }
}
