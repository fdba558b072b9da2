//! Configuration: built-in defaults, then an optional TOML file, then environment overrides
//! named `RECO__SECTION__KEY` (e.g. `RECO__INDEX__SHARDS=8`). Validated once at start.
//!
//! Layout: this file holds [`Config`] itself, loading (file, then environment overlay) and the
//! checks across sections; each group of sections lives in its own file (`service`,
//! `backends`, `cluster`, `policy`, `access`) and is re-exported here.

mod access;
mod backends;
mod cluster;
mod error;
mod learning;
mod policy;
mod service;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use access::{is_loopback_bind, validate_keys, AuthConfig, EdgeConfig, OperatorKey, Scope};
pub use backends::{Consistency, GraphConfig, Neo4jConfig, RedisConfig, ScyllaConfig};
pub use cluster::{ClusterConfig, Role};
pub use error::ConfigError;
pub use learning::{CollabMethod, CollabParams, LearningConfig, RankerParams, TransitionParams};
pub use policy::{PolicyConfig, SegmentBy};
pub use service::{
    DemoConfig, IndexConfig, ModelConfig, RankingConfig, ServerConfig, StorageConfig,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub index: IndexConfig,
    pub ranking: RankingConfig,
    pub storage: StorageConfig,
    pub model: ModelConfig,
    pub demo: DemoConfig,
    pub edge: EdgeConfig,
    pub auth: AuthConfig,
    pub redis: RedisConfig,
    pub scylla: ScyllaConfig,
    pub neo4j: Neo4jConfig,
    pub graph: GraphConfig,
    pub policy: PolicyConfig,
    pub cluster: ClusterConfig,
    pub learning: LearningConfig,
}

const ENV_PREFIX: &str = "RECO__";

impl Config {
    /// Defaults, overlaid by `file` (if any), overlaid by `RECO__…` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut merged = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            })?;
            let overlay: toml::Value = toml::from_str(&text)
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            merge(&mut merged, overlay);
        }
        for (key, value) in env {
            let Some(path) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let parts: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            let [section, field] = parts.as_slice() else {
                return Err(ConfigError::Invalid(format!(
                    "{key}: expected {ENV_PREFIX}SECTION__KEY"
                )));
            };
            let table = merged
                .get_mut(section.as_str())
                .and_then(toml::Value::as_table_mut)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!("{key}: unknown section '{section}'"))
                })?;
            // A key whose default is a string stays a string (a numeric secret, say).
            let typed = match table.get(field.as_str()) {
                Some(toml::Value::String(_)) => toml::Value::String(value),
                // Lists are comma-separated: `RECO__CLUSTER__NODES=10.0.0.2:8081,10.0.0.3:8081`.
                Some(toml::Value::Array(_)) => toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(parse_env_value)
                        .collect(),
                ),
                _ => parse_env_value(&value),
            };
            table.insert(field.clone(), typed);
        }
        let config: Config = merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.index.shards == 0 || self.index.shards > 1024 {
            return invalid("index.shards must be between 1 and 1024");
        }
        if !(2..=128).contains(&self.index.m) {
            return invalid("index.m must be between 2 and 128");
        }
        if self.index.ef_construction < self.index.m || self.index.ef_search == 0 {
            return invalid("index.ef_construction must be >= m and index.ef_search > 0");
        }
        if !(1..=10_000).contains(&self.index.rerank) {
            return invalid("index.rerank must be between 1 and 10000");
        }
        if !(0.0..=1.0).contains(&self.ranking.mmr_lambda)
            || !(0.0..=1.0).contains(&self.ranking.query_blend)
        {
            return invalid("ranking.mmr_lambda and ranking.query_blend must be within [0, 1]");
        }
        if let Err(why) = self.learning.validate() {
            return invalid(&why);
        }
        if let Err(why) = validate_keys(&self.auth.operator_keys) {
            return invalid(&why);
        }
        if !(self.auth.requests_per_sec > 0.0 && self.auth.burst >= 1.0)
            || self.auth.events_per_minute == 0
        {
            return invalid(
                "auth.requests_per_sec must be > 0, auth.burst >= 1, auth.events_per_minute > 0",
            );
        }
        if self.cluster.role != Role::Shard
            && !is_loopback_bind(&self.server.bind)
            && self.edge.shared_secret.is_empty()
            && self.auth.operator_keys.is_empty()
            && !self.auth.insecure_development
        {
            return Err(ConfigError::Invalid(format!(
                "refusing to serve {} without authentication: set edge.shared_secret \
                 (RECO__EDGE__SHARED_SECRET, the edge worker's EDGE_SHARED_SECRET) and/or \
                 auth.operator_keys, or bind to 127.0.0.1; auth.insecure_development = true \
                 (RECO__AUTH__INSECURE_DEVELOPMENT) allows it for development only",
                self.server.bind
            )));
        }
        if let Some(exposed) = self.unsigned_cluster_rpc() {
            return Err(ConfigError::Invalid(format!(
                "refusing an unauthenticated internal RPC on {exposed}: set cluster.secret \
                 (RECO__CLUSTER__SECRET, the same on every router and shard node), or keep the \
                 cluster on 127.0.0.1; auth.insecure_development = true allows it for \
                 development only"
            )));
        }
        if self.ranking.ann_candidates == 0 || self.ranking.history_half_life_days <= 0.0 {
            return invalid(
                "ranking.ann_candidates and ranking.history_half_life_days must be positive",
            );
        }
        if self.scylla.keyspace.is_empty()
            || !self
                .scylla
                .keyspace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return invalid("scylla.keyspace must be letters, digits and underscores");
        }
        if !(0.0..=0.2).contains(&self.policy.epsilon) || self.policy.top_k == 0 {
            return invalid("policy.epsilon must be within [0, 0.2] and policy.top_k > 0");
        }
        if self.policy.prior_strength <= 0.0 {
            return invalid("policy.prior_strength must be positive");
        }
        if self.policy.sync_secs == 0 || self.policy.impression_ttl_secs < 60 {
            return invalid(
                "policy.sync_secs must be at least 1 and policy.impression_ttl_secs at least 60",
            );
        }
        if self
            .cluster
            .hosted_shards
            .iter()
            .any(|&s| s >= self.index.shards)
        {
            return invalid("cluster.hosted_shards must be below index.shards");
        }
        if self.cluster.role == Role::Router
            && self.cluster.nodes.is_empty()
            && self.cluster.nodes_dns.is_empty()
        {
            return invalid("a router needs cluster.nodes or cluster.nodes_dns");
        }
        if self.cluster.replication == 0 || self.cluster.shard_deadline_ms == 0 {
            return invalid("cluster.replication and shard_deadline_ms must be positive");
        }
        if self.cluster.role != Role::Single && self.scylla.nodes.trim().is_empty() {
            return invalid(
                "a router or shard node needs scylla.nodes (RECO__SCYLLA__NODES): the cluster's \
                 catalogue and events live in ScyllaDB",
            );
        }
        if self.server.request_timeout_ms == 0 || self.server.max_body_bytes < 1024 {
            return invalid(
                "server.request_timeout_ms must be > 0 and server.max_body_bytes >= 1024",
            );
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Environment values are typed like TOML scalars: `8` is an integer, `0.5` a float,
/// `true` a boolean, anything else a string.
fn parse_env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = raw.parse::<f64>() {
        toml::Value::Float(f)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_string())
    }
}

impl Config {
    /// The address an unsigned internal RPC would be reachable on from other machines, if
    /// any: a shard node listening off loopback, or a router calling shard nodes off it,
    /// with no `cluster.secret` (and no development switch).
    fn unsigned_cluster_rpc(&self) -> Option<String> {
        if !self.cluster.secret.is_empty() || self.auth.insecure_development {
            return None;
        }
        match self.cluster.role {
            Role::Single => None,
            Role::Shard => (!is_loopback_bind(&self.cluster.internal_bind))
                .then(|| self.cluster.internal_bind.clone()),
            Role::Router => {
                if !self.cluster.nodes_dns.is_empty() {
                    return Some(self.cluster.nodes_dns.clone());
                }
                self.cluster
                    .nodes
                    .iter()
                    .find(|node| !is_loopback_bind(node))
                    .cloned()
            }
        }
    }
}
