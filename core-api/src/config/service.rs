//! The sections that shape this process's own service: HTTP server, vector index, ranking,
//! local storage, the embedding model and the demo data loaded into an empty store.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// The vectors the graph walk reads: `fp16`, or `int8-rerank` (INT8 rows walked, the
    /// best `rerank` candidates re-scored on the FP16 rows: faster, FP16's recall).
    pub precision: IndexPrecision,
    /// Candidates re-scored per shard and query with `int8-rerank`.
    pub rerank: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexPrecision {
    Fp16,
    Int8Rerank,
}

impl IndexConfig {
    /// The index library's precision for these settings.
    pub fn precision(&self) -> vector_index::Precision {
        match self.precision {
            IndexPrecision::Fp16 => vector_index::Precision::Fp16,
            IndexPrecision::Int8Rerank => vector_index::Precision::Int8Rerank {
                rerank: self.rerank,
            },
        }
    }
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
    /// Catalogue embedding batches (item upserts) run at once; more wait their turn, so
    /// ingestion cannot take every core from the queries' intent embeddings and ranking.
    pub ingest_concurrency: usize,
    /// Most items a `POST /v1/items` embeds within the request; a batch with more to embed
    /// becomes a job (202, `GET /v1/jobs/{id}`). About half a second of CPU embedding.
    pub sync_embed_max: usize,
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
            precision: IndexPrecision::Fp16,
            rerank: 40,
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
            ingest_concurrency: 1,
            sync_embed_max: 64,
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
