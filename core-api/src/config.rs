//! Configuration: built-in defaults, then an optional TOML file, then environment overrides
//! named `RECO__SECTION__KEY` (e.g. `RECO__INDEX__SHARDS=8`). Validated once at start.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    pub learning: crate::learn::LearningConfig,
}

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
    /// Shard nodes' internal addresses (`host:port`), for routers and for peer catch-up.
    pub nodes: Vec<String>,
    /// Or a DNS name (`host:port`, e.g. a Kubernetes headless service), resolved every round.
    pub nodes_dns: String,
    /// Time a query waits for a shard (retries and hedges included) before answering partial.
    pub shard_deadline_ms: u64,
    /// A shard request unanswered after this long is also sent to another replica.
    pub hedge_after_ms: u64,
    pub health_interval_ms: u64,
    /// Shard nodes pull missed writes from peer replicas, and routers pull catalogue changes,
    /// this often.
    pub sync_interval_ms: u64,
    /// Replicas of the owning shard that must store a write before it is acknowledged.
    pub min_write_replicas: usize,
    /// Vector dimension on shard nodes (they load no model); routers check it against theirs.
    pub dim: usize,
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
            sync_interval_ms: 2000,
            min_write_replicas: 1,
            dim: 384,
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

/// The online-learning ranking policy (see `policy.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Off: the static hybrid ranker alone decides the order.
    pub enabled: bool,
    /// Frozen: keeps serving (and exploring) with the current model, learns nothing.
    pub frozen: bool,
    /// Share of decisions that explore, at most 0.2.
    pub epsilon: f32,
    /// Candidates considered for the lead position.
    pub top_k: usize,
    /// Weight of the static ranker's weights as the prior, in pseudo-observations.
    pub prior_strength: f32,
    /// `none` (one global model), `device` or `time_of_day`.
    pub segment_by: SegmentBy,
    /// Rewards attributed to an impression by the events that reference it.
    pub reward_complete: f32,
    pub reward_like: f32,
    pub reward_view: f32,
    pub reward_skip: f32,
    pub reward_dislike: f32,
    /// Impressions remembered for attribution and off-policy evaluation.
    pub impression_capacity: usize,
    /// The state is saved to the data directory every this many updates (and at shutdown).
    pub save_every: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            frozen: false,
            epsilon: 0.05,
            top_k: 5,
            prior_strength: 20.0,
            segment_by: SegmentBy::None,
            reward_complete: 1.0,
            reward_like: 1.0,
            reward_view: 0.1,
            reward_skip: -0.5,
            reward_dislike: -1.0,
            impression_capacity: 100_000,
            save_every: 100,
        }
    }
}

/// What the ranking policy keeps a separate model for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentBy {
    /// One global model.
    #[default]
    None,
    Device,
    TimeOfDay,
}

impl SegmentBy {
    /// The segment a request falls in.
    pub fn segment(self, req: &shared_types::NormalisedRequest) -> String {
        match self {
            Self::None => "global".into(),
            Self::Device => format!("device:{}", req.device.map_or("unknown", |d| d.as_str())),
            Self::TimeOfDay => format!(
                "time_of_day:{}",
                req.time_of_day.map_or("unknown", |t| t.as_str())
            ),
        }
    }
}

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

/// Trust between the edge worker and the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Secret shared with the edge worker (its `EDGE_SHARED_SECRET`). When set, API requests
    /// must be signed by the edge; empty turns verification off.
    pub shared_secret: String,
    /// Largest accepted difference between the edge's signing time and the core's clock.
    pub max_clock_skew_secs: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            shared_secret: String::new(),
            max_clock_skew_secs: 30,
        }
    }
}

/// Operator keys, rate limits and the development switch (see `auth.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Operator API keys (hashed), sent in `x-api-key`.
    pub operator_keys: Vec<crate::auth::OperatorKey>,
    /// Serve a non-loopback bind with no edge secret and no operator keys: every caller is
    /// trusted. Development only; without it such a start is refused.
    pub insecure_development: bool,
    /// Sustained requests per second per identity (user, operator key, anonymous address).
    pub requests_per_sec: f64,
    /// Requests an idle identity may send at once.
    pub burst: f64,
    /// Events a user may record per minute (operator keys are not capped).
    pub events_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            operator_keys: Vec::new(),
            insecure_development: false,
            requests_per_sec: 50.0,
            burst: 100.0,
            events_per_minute: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    /// Whole-request deadline; slower requests get a 503 `timeout` error.
    pub request_timeout_ms: u64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    pub shards: usize,
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
    /// Vectors waiting in a shard's exact delta before it is rebuilt in the background.
    pub rebuild_threshold: usize,
}

/// Weights of the hybrid ranker and the knobs of the other ranking stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankingConfig {
    pub semantic_weight: f32,
    pub graph_weight: f32,
    pub popularity_weight: f32,
    pub freshness_weight: f32,
    pub quality_weight: f32,
    /// Static weights of the learned sources, used until a ranker is trained.
    pub collaborative_weight: f32,
    pub transition_weight: f32,
    /// Weight of the free-text intent's semantic match on top of the learned ranker's score
    /// (the ranker learns from interactions, which carry no intent).
    pub intent_weight: f32,
    /// MMR trade-off: 1.0 is pure relevance, 0.0 pure diversity.
    pub mmr_lambda: f32,
    /// Candidates fetched from the vector index per request.
    pub ann_candidates: usize,
    /// Candidates fetched from the item graph per request.
    pub graph_candidates: usize,
    /// Share of the free-text intent in the query vector when the user also has history.
    pub query_blend: f32,
    /// Recent interactions used to build the user vector.
    pub history_limit: usize,
    /// Half-life of an interaction's weight in the user vector, in days.
    pub history_half_life_days: f32,
    /// Genre ontology (OWL/XML) behind the `genre` and `audience` request filters; empty =
    /// the bundled `data/ontology/genres.owl`.
    pub ontology_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Embedded database and index snapshots live here.
    pub data_dir: PathBuf,
    /// Capacity of the in-process user-embedding cache (entries).
    pub user_cache_entries: usize,
    pub user_cache_ttl_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub dir: PathBuf,
    /// Largest batch of concurrent free-text intents embedded together.
    pub query_batch_max: usize,
    /// Longest wait of an intent for others to share its batch, in microseconds.
    pub query_batch_wait_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Load the demo catalogue and ratings when the store holds no items.
    pub load_if_empty: bool,
    pub catalog: PathBuf,
    pub ratings: PathBuf,
    /// Load at most this many catalogue films (0 = all); handy for quick trials.
    pub max_items: usize,
    /// Films (the most rated first) embedded before the node turns ready; the rest are
    /// added in the background through the engine's write path (0 = all before ready).
    pub first_batch: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            request_timeout_ms: 2_000,
            max_body_bytes: 8 << 20,
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            shards: 4,
            m: 16,
            ef_construction: 200,
            ef_search: 100,
            rebuild_threshold: 2_000,
        }
    }
}

impl Default for RankingConfig {
    fn default() -> Self {
        Self {
            semantic_weight: 0.55,
            graph_weight: 0.15,
            popularity_weight: 0.12,
            freshness_weight: 0.05,
            quality_weight: 0.13,
            collaborative_weight: 0.3,
            transition_weight: 0.3,
            intent_weight: 3.0,
            mmr_lambda: 0.9,
            ann_candidates: 200,
            graph_candidates: 100,
            query_blend: 0.6,
            history_limit: 50,
            history_half_life_days: 30.0,
            ontology_file: PathBuf::new(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: "var/data".into(),
            user_cache_entries: 100_000,
            user_cache_ttl_secs: 3_600,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            dir: gpu_batch::DEFAULT_MODEL_DIR.into(),
            query_batch_max: 64,
            query_batch_wait_us: 2_000,
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            load_if_empty: true,
            catalog: "data/movietweetings/catalog-movies.dat".into(),
            ratings: "data/movietweetings/snapshot-20k/ratings.dat".into(),
            max_items: 0,
            first_batch: 3_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
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
        if !(0.0..=1.0).contains(&self.ranking.mmr_lambda)
            || !(0.0..=1.0).contains(&self.ranking.query_blend)
        {
            return invalid("ranking.mmr_lambda and ranking.query_blend must be within [0, 1]");
        }
        if let Err(why) = self.learning.validate() {
            return invalid(&why);
        }
        if let Err(why) = crate::auth::validate_keys(&self.auth.operator_keys) {
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
            && !crate::auth::is_loopback_bind(&self.server.bind)
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
        if self.cluster.replication == 0
            || self.cluster.min_write_replicas == 0
            || self.cluster.shard_deadline_ms == 0
        {
            return invalid(
                "cluster.replication, min_write_replicas and shard_deadline_ms must be positive",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cluster_placement_and_list_overrides() {
        let c = Config::load(
            None,
            env(&[
                ("RECO__INDEX__SHARDS", "20"),
                ("RECO__CLUSTER__ROLE", "shard"),
                ("RECO__CLUSTER__SHARD_NODES", "10"),
                ("RECO__CLUSTER__ORDINAL", "3"),
                ("RECO__CLUSTER__NODES", "10.0.0.2:8081, 10.0.0.3:8081"),
            ]),
        )
        .unwrap();
        assert_eq!(c.cluster.role, Role::Shard);
        assert_eq!(c.cluster.nodes, ["10.0.0.2:8081", "10.0.0.3:8081"]);
        // Replication 2 on a ring of 10: node 3 holds shards 2, 3, 12, 13.
        assert_eq!(c.cluster.hosted(20).unwrap(), [2, 3, 12, 13]);
        let every_shard_twice = (0..10)
            .map(|o| ClusterConfig {
                ordinal: o,
                ..c.cluster.clone()
            })
            .flat_map(|n| n.hosted(20).unwrap())
            .fold(vec![0; 20], |mut seen, s| {
                seen[s] += 1;
                seen
            });
        assert_eq!(every_shard_twice, vec![2; 20]);
        assert!(Config::load(None, env(&[("RECO__CLUSTER__ROLE", "router")])).is_err());
        assert!(Config::load(None, env(&[("RECO__CLUSTER__ROLE", "leader")])).is_err());
        assert!(Config::load(
            None,
            env(&[
                ("RECO__CLUSTER__HOSTED_SHARDS", "0,4"),
                ("RECO__INDEX__SHARDS", "4")
            ])
        )
        .is_err());
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(
            (c.index.m, c.index.ef_construction, c.index.ef_search),
            (16, 200, 100)
        );
    }

    #[test]
    fn file_then_env_override() {
        let dir = std::env::temp_dir().join(format!("reco-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[index]\nshards = 8\nef_search = 64\n[ranking]\nmmr_lambda = 0.5\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[
                ("RECO__INDEX__SHARDS", "20"),
                ("RECO__SERVER__BIND", "0.0.0.0:9000"),
                ("OTHER", "x"),
                ("RECO__EDGE__SHARED_SECRET", "12345"),
            ]),
        )
        .unwrap();
        assert_eq!(c.index.shards, 20, "env wins over file");
        assert_eq!(c.index.ef_search, 64, "file wins over defaults");
        assert_eq!(c.ranking.mmr_lambda, 0.5);
        assert_eq!(c.server.bind, "0.0.0.0:9000");
        assert_eq!(c.edge.shared_secret, "12345", "string keys stay strings");
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config.example.toml");
        // It binds every interface, so it starts only with authentication configured.
        let refused = Config::load(Some(&example), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("edge.shared_secret"), "{refused}");
        assert!(refused.contains("auth.insecure_development"), "{refused}");
        let c = Config::load(
            Some(&example),
            env(&[("RECO__EDGE__SHARED_SECRET", "a-long-random-secret")]),
        )
        .unwrap();
        assert_eq!(c.index.shards, 20);
        assert!(!c.demo.load_if_empty);
    }

    /// The Kubernetes ConfigMap's `core.toml`, as shard nodes and routers load it.
    #[test]
    fn kubernetes_config_loads_for_both_roles() {
        let yaml = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/config.yaml"),
        )
        .unwrap();
        let toml: String = yaml
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("core.toml: |"))
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        let file = std::env::temp_dir().join(format!("k8s-core-{}.toml", std::process::id()));
        std::fs::write(&file, toml).unwrap();
        let shard = Config::load(
            Some(&file),
            env(&[
                ("RECO__CLUSTER__ROLE", "shard"),
                ("HOSTNAME", "core-shard-3"),
            ]),
        )
        .unwrap();
        assert_eq!(shard.cluster.role, Role::Shard);
        assert_eq!(shard.index.shards, 20);
        let mut node_3 = shard.cluster.clone();
        node_3.ordinal = 3;
        assert_eq!(node_3.hosted(20).unwrap(), [2, 3, 12, 13]);
        let router = Config::load(
            Some(&file),
            env(&[
                ("RECO__CLUSTER__ROLE", "router"),
                ("RECO__EDGE__SHARED_SECRET", "from-the-secret"),
            ]),
        )
        .unwrap();
        assert_eq!(router.cluster.role, Role::Router);
        assert!(!router.cluster.nodes_dns.is_empty());
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(Config::load(None, env(&[("RECO__INDEX__SHARDS", "0")])).is_err());
        assert!(Config::load(None, env(&[("RECO__NOPE__X", "1")])).is_err());
        assert!(Config::load(None, env(&[("RECO__INDEX__NOPE", "1")])).is_err());
        assert!(Config::load(None, env(&[("RECO__INDEX__SHARDS", "many")])).is_err());
    }

    #[test]
    fn a_public_bind_needs_authentication_or_the_explicit_switch() {
        let public = ("RECO__SERVER__BIND", "0.0.0.0:8080");
        let err = Config::load(None, env(&[public])).unwrap_err().to_string();
        assert!(err.contains("refusing to serve 0.0.0.0:8080"), "{err}");
        assert!(
            Config::load(None, env(&[])).is_ok(),
            "loopback stays zero-config"
        );
        assert!(Config::load(None, env(&[public, ("RECO__EDGE__SHARED_SECRET", "s")])).is_ok());
        assert!(Config::load(
            None,
            env(&[public, ("RECO__AUTH__INSECURE_DEVELOPMENT", "true")])
        )
        .is_ok());
        assert!(
            Config::load(None, env(&[public, ("RECO__CLUSTER__ROLE", "shard")])).is_ok(),
            "shard nodes serve no public API on server.bind"
        );
    }
}
